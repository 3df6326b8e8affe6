"""The run recipe: one YAML file for the whole flow, naming a data recipe, a training recipe, the benchmarks, the
studio database and the Hub repositories.

``data`` and ``train`` are either a recipe of their own kind written inline, or ``{recipe: PATH, set: {KEY: VALUE}}``
(a recipe file plus overrides with the keys of ``bactrian data/train --set``). The run owns its folder: the data
output is ``<workdir>/data``, training reads ``<workdir>/data/export`` and writes ``<workdir>/train``, results go
to ``<workdir>/bench``. ``bench``, ``studio`` and ``push`` are optional; an absent section skips its stage.
Paths are relative to the current folder, as in every other recipe (run from the repository root).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.recipes import RecipeError, build_dataclass, read_yaml, set_dotted  # the one loader's parts

STAGES = ("translate", "respond", "filter", "report", "export", "train", "bench", "studio", "push")


class RunError(RuntimeError):
    """The run cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class BenchSpec:
    tasks: str = "xcopa,xstorycloze,xwinograd"
    languages: str | None = None  # comma list; default: every language a task has
    source: str = "local"  # local (data_root) | hub
    data_root: str | None = None
    sentimentx_file: str | None = None
    limit: int | None = None  # items per language (None: the full test sets)
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    cache_dir: str | None = None  # lm-eval response cache (None: $BACTRIAN_HOME/bench/cache)
    compare_base: bool = False  # also benchmark the bare base, the paper's comparison


@dataclass(frozen=True)
class StudioSpec:
    db: str | None = None  # SQLAlchemy URL; None: the studio's default ($BACTRIAN_DB or $BACTRIAN_HOME/studio.db)


@dataclass(frozen=True)
class PushSpec:
    dataset: str | None = None  # Hub dataset repo for the export (a parquet config per language + card)
    adapter: str | None = None  # Hub model repo for the adapter (peft folder + manifest + card)
    private: bool = True  # the token comes from HF_TOKEN (or a `hf auth login`), never from a recipe


@dataclass(frozen=True)
class EstimateSpec:
    """Assumptions behind the training compute estimate of ``--dry-run`` (6 x parameters x tokens)."""

    params: float | None = None  # parameters of the base; None: no FLOP estimate
    gpu: str = "A100"
    gpu_tflops: float = 312.0  # peak dense bf16 TFLOP/s of one GPU
    mfu: float = 0.35  # fraction of the peak a LoRA run reaches
    gpu_hour_usd: float | None = None


@dataclass
class RunRecipe:
    name: str
    workdir: Path
    data: Any  # pipelines.data.recipe.Recipe
    train: Any  # pipelines.train.recipe.Recipe
    bench: BenchSpec | None = None
    studio: StudioSpec | None = None
    push: PushSpec | None = None
    estimate: EstimateSpec = field(default_factory=EstimateSpec)
    path: str = ""  # the recipe file

    @property
    def export_dir(self) -> Path:
        return self.workdir / "data" / "export"

    @property
    def bench_dir(self) -> Path:
        return self.workdir / "bench"


_TOP = {"name", "workdir", "data", "train", "bench", "studio", "push", "estimate"}


def _set_override(raw: dict[str, Any], key: str, value: Any) -> None:
    """``data.respond.base_url=...``: into the section's ``set`` when it names a recipe file, else into the mapping."""
    head, _, rest = key.partition(".")
    if head not in _TOP:
        raise RecipeError(f"--set {key}: unknown section {head!r}; known: {', '.join(sorted(_TOP))}")
    if not rest:
        raw[head] = value
        return
    section = raw.setdefault(head, {})
    if not isinstance(section, dict):
        raise RecipeError(f"--set {key}: {head} is not a mapping")
    if head in ("data", "train") and "recipe" in section and rest not in ("recipe", "set"):
        section.setdefault("set", {})[rest] = value
        return
    set_dotted(section, rest, value)


def _source(section: Any, kind: str) -> tuple[Any, dict[str, Any]]:
    """(a recipe file path or an inline mapping, overrides) of a ``data`` / ``train`` section."""
    if not isinstance(section, dict):
        raise RecipeError(f"{kind}: expected a mapping (an inline {kind} recipe, or recipe: PATH with set: ...)")
    if "recipe" not in section:
        return copy.deepcopy(section), {}
    extra = sorted(set(section) - {"recipe", "set"})
    if extra:
        raise RecipeError(f"{kind}: with 'recipe' only 'set' may follow (got {', '.join(extra)})")
    overrides = section.get("set") or {}
    if not isinstance(overrides, dict):
        raise RecipeError(f"{kind}.set: expected a mapping of KEY: VALUE")
    return str(section["recipe"]), dict(overrides)


def _data_recipe(section: Any, workdir: Path) -> Any:
    from pipelines.data.recipe import load_recipe, parse_recipe

    src, overrides = _source(section, "data")
    overrides = {"output": str(workdir / "data"), **overrides}
    recipe = load_recipe(src, overrides) if isinstance(src, str) else parse_recipe(src, overrides)
    if recipe.export.push_to_hub:
        raise RecipeError("data: export.push_to_hub is set; in a run the dataset is pushed at the end: use push.dataset")
    return recipe


def _train_recipe(section: Any, workdir: Path, name: str) -> Any:
    from pipelines.train.recipe import RecipeError as TrainRecipeError
    from pipelines.train.recipe import load_recipe, recipe_from_dict

    src, overrides = _source(section, "train")
    if isinstance(src, dict):
        src.setdefault("name", name)
    forced = {"data.source": "pipeline", "data.path": str(workdir / "data" / "export"),
              "output.dir": str(workdir / "train" / "adapter"), "output.run_dir": str(workdir / "train"),
              "output.push_to_hub": False}
    # YAML reads JSON, so each value keeps its type through `bactrian train --set`'s KEY=VALUE form
    items = [f"{k}={json.dumps(v)}" for k, v in {**forced, **overrides}.items()]
    try:
        return load_recipe(src, items) if isinstance(src, str) else recipe_from_dict(src, items)
    except TrainRecipeError as e:
        raise RecipeError(f"train: {e}") from None


def parse_run(raw: dict[str, Any], overrides: dict[str, Any] | None = None, path: str = "") -> RunRecipe:
    raw = copy.deepcopy(raw)
    for k, v in (overrides or {}).items():
        _set_override(raw, k, v)
    unknown = sorted(set(raw) - _TOP)
    if unknown:
        raise RecipeError(f"run recipe: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TOP))}")
    for key in ("name", "workdir", "data", "train"):
        if not raw.get(key):
            raise RecipeError(f"run recipe: {key!r} is required")
    workdir = Path(str(raw["workdir"])).expanduser()
    run = RunRecipe(
        name=str(raw["name"]), workdir=workdir, data=_data_recipe(raw["data"], workdir),
        train=_train_recipe(raw["train"], workdir, str(raw["name"])), path=path,
        bench=None if raw.get("bench") is None else build_dataclass(BenchSpec, raw["bench"], "bench"),
        studio=None if raw.get("studio") is None else build_dataclass(StudioSpec, raw["studio"], "studio"),
        push=None if raw.get("push") is None else build_dataclass(PushSpec, raw["push"], "push"),
        estimate=build_dataclass(EstimateSpec, raw.get("estimate") or {}, "estimate"),
    )
    if run.bench is not None and run.bench.source not in ("local", "hub"):
        raise RecipeError(f"bench.source: {run.bench.source!r} is not local or hub")
    if run.studio is not None and run.bench is None:
        raise RecipeError("studio: importing results needs a bench section")
    return run


def load_run(path: str | Path, overrides: dict[str, Any] | None = None) -> RunRecipe:
    return parse_run(read_yaml(path), overrides, str(path))
