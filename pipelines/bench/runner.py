"""Run the benchmarks through lm-evaluation-harness on a base model, with or without a LoRA adapter.

Order of work: check the model and adapter names, the tasks, languages and data files (cheap, so bad input
fails at once); then load the base and the adapter once, wrap the loaded model in lm-eval's ``HFLM`` (the
subclass in ``scoring_lm`` that skips the logits nobody scores), and call
``lm_eval.simple_evaluate`` with the shipped task files and lm-eval's response cache (``use_cache``), keyed by
a fingerprint of the weights, so a rerun of the same model is free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bactrian.adapters import AdapterError, AdapterInfo, matches_base
from bactrian.adapters import resolve_adapter as find_adapter
from bactrian.models import BaseSpec, ModelError, get_spec, load_base, materialize

from .catalog import SENTIMENTX, BenchError, Selection, select, tasks_dir
from .results import SCHEMA, BenchRun, Record, average_records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRequest:
    model: str
    tasks: str | list[str]
    adapter: str | None = None
    languages: str | list[str] | None = None
    source: str = "local"
    data_root: str | None = None
    sentimentx_file: str | None = None
    limit: int | None = None
    batch_size: int = 8
    cache_dir: str | None = None  # None: $BACTRIAN_HOME/bench/cache; "" disables the cache
    device: str | None = None  # None or "auto": bactrian.devices' auto rule
    adapters_dirs: tuple[str, ...] = ()
    dtype: str | None = None  # None or "auto": bfloat16/float16 on a GPU, float32 on CPU


@dataclass(frozen=True)
class Plan:
    """A checked request: everything resolved, nothing loaded yet."""

    request: BenchRequest
    spec: BaseSpec
    adapter: AdapterInfo | None
    selections: list[Selection]
    placement: Any = None  # bactrian.devices.Placement, resolved by plan()


def default_cache_dir() -> Path:
    from bactrian.settings import home

    return home() / "bench" / "cache"


def resolve_adapter(value: str, spec: BaseSpec, extra_dirs: tuple[str, ...] = ()) -> AdapterInfo:
    """An adapter given as a folder, a name in the adapter search path, or a Hub id; it must fit ``spec``."""
    try:
        info = find_adapter(value, spec.name, extra_dirs)
    except AdapterError as e:
        raise BenchError(str(e)) from e
    if not matches_base(info, spec):
        raise BenchError(f"adapter {info.name!r} was trained for base {info.base_model!r}, not for {spec.name!r}; "
                         f"pass --model {info.base_model} or an adapter made for {spec.name}")
    return info


def plan(request: BenchRequest) -> Plan:
    """Check every input without loading a model; raises ``BenchError`` with what is wrong."""
    if request.limit is not None and request.limit < 1:
        raise BenchError("--limit must be at least 1")
    if request.batch_size < 1:
        raise BenchError("--batch-size must be at least 1")
    from bactrian.devices import resolve_placement

    try:
        spec = get_spec(request.model)
        placement = resolve_placement(request.device, request.dtype)  # DeviceError is a ModelError
    except ModelError as e:
        raise BenchError(str(e)) from e
    selections = select(request.tasks, request.languages, request.source, request.data_root, request.sentimentx_file)
    adapter = resolve_adapter(request.adapter, spec, request.adapters_dirs) if request.adapter else None
    return Plan(request, spec, adapter, selections, placement)


def _weights_fingerprint(folder: Path, full_hash: bool) -> list:
    """Adapters are small: hash their bytes. Bases are large: name, size and mtime of each weight file."""
    out = []
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        if full_hash:
            out.append([f.name, hashlib.sha256(f.read_bytes()).hexdigest()])
        else:
            st = f.stat()
            out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def cache_key(p: Plan, base_folder: str) -> str:
    """Names lm-eval's response cache; it must change whenever the weights or the scoring could."""
    import lm_eval

    folder = Path(base_folder)
    ident: dict[str, Any] = {
        "base": p.spec.name,
        "base_weights": _weights_fingerprint(folder, False) if folder.is_dir() else base_folder,
        "adapter": _weights_fingerprint(Path(p.adapter.path), True) if p.adapter else None,
        "lm_eval": getattr(lm_eval, "__version__", "?"),
        "dtype": str(p.placement.dtype).removeprefix("torch.") if p.placement else "float32",
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return f"{p.spec.name.replace('/', '_')}-{digest}"


def build_lm(p: Plan, device: str | None = None):
    """The base (and adapter) loaded once by bactrian, wrapped as lm-eval's HFLM (scoring only the continuations)."""
    from .scoring_lm import ContinuationScoringHFLM

    if p.placement is not None:
        device, dtype = p.placement.device, p.placement.dtype
    else:
        dtype = p.request.dtype
    base = load_base(p.spec.name, device=device, dtype=dtype)  # HFLM then scores on the model's device
    model = base.model
    if p.adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, p.adapter.path)
        except Exception as e:  # shapes or target modules that do not fit this base
            raise BenchError(f"adapter {p.adapter.name!r} does not fit base {p.spec.name!r}: {str(e).splitlines()[0][:300]}") from e
        model.eval()
    return ContinuationScoringHFLM(pretrained=model, tokenizer=base.tokenizer, batch_size=p.request.batch_size)


def _task_specs(p: Plan, folder: Path) -> list[str | dict]:
    """Task names for lm-eval; SentimentX becomes one inline copy of its YAML per language."""
    from lm_eval.tasks._yaml_loader import load_yaml

    specs: list[str | dict] = []
    sentiment_cfg = None
    for s in p.selections:
        if s.benchmark != SENTIMENTX:
            specs.append(s.task)
            continue
        if sentiment_cfg is None:
            sentiment_cfg = load_yaml(folder / "sentimentx" / "sentimentx.yaml", resolve_func=True)
        specs.append({**sentiment_cfg, "task": s.task, "dataset_kwargs": {"language": s.language}})
    return specs


def evaluate(p: Plan, lm: Any = None, run_id: str | None = None) -> BenchRun:
    """Run the plan (loading the model unless ``lm`` is given) and collect per-language records."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    r = p.request
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run_id = run_id or uuid.uuid4().hex[:12]
    t0 = time.time()
    base_folder = str(materialize(p.spec.name))  # a folder, or the Hub id of a Hub base
    if lm is None:
        lm = build_lm(p, r.device)
    use_cache = None
    if r.cache_dir != "":
        cache_root = Path(r.cache_dir).expanduser() if r.cache_dir else default_cache_dir()
        use_cache = str(cache_root / cache_key(p, base_folder))
    metadata = {k: v for k, v in {"data_root": r.data_root and str(Path(r.data_root).expanduser().resolve()),
                                   "sentimentx_file": r.sentimentx_file and str(Path(r.sentimentx_file).expanduser().resolve())}.items() if v}
    with ExitStack() as stack:
        folder = tasks_dir(stack)
        manager = TaskManager(include_path=str(folder), include_defaults=False, metadata=metadata)
        out = lm_eval.simple_evaluate(
            model=lm, tasks=_task_specs(p, folder), limit=r.limit, batch_size=r.batch_size, use_cache=use_cache,
            task_manager=manager, log_samples=False, bootstrap_iters=100, verbosity="WARNING",
        )
    records = [_record(s, out, p, run_id, created) for s in p.selections]
    return BenchRun(
        schema=SCHEMA, run_id=run_id, created=created, model=p.spec.name, adapter=p.adapter.name if p.adapter else None,
        adapter_path=p.adapter.path if p.adapter else None, source=r.source, limit=r.limit, batch_size=r.batch_size,
        lm_eval_version=getattr(lm_eval, "__version__", "?"), seconds=round(time.time() - t0, 1), cache=use_cache,
        records=records, averages=average_records(records),
    )


def _record(s: Selection, out: dict, p: Plan, run_id: str, created: str) -> Record:
    res = out["results"][s.task]
    value = res.get(f"{s.metric},none")
    if value is None:
        raise BenchError(f"lm-eval returned no {s.metric!r} for {s.task} (got {sorted(res)})")
    stderr = res.get(f"{s.metric}_stderr,none")
    n = out.get("n-samples", {}).get(s.task, {}).get("effective")
    return Record(
        run_id=run_id, created=created, model=p.spec.name, adapter=p.adapter.name if p.adapter else None,
        task=s.benchmark, language=s.language, metric=s.metric, value=float(value),
        stderr=float(stderr) if isinstance(stderr, (int, float)) else None, n=int(n) if n is not None else None,
        lm_eval_task=s.task,
    )


def run(request: BenchRequest) -> BenchRun:
    """Check, load, evaluate: the whole of ``bactrian bench``."""
    return evaluate(plan(request))
