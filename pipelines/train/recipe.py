"""Training recipes: one YAML file per run, read into dataclasses and checked before any training starts.

A recipe may name a ``preset`` (``multilingual`` or ``monolingual``, the paper's settings, stored in
``presets.yaml``); the file's own values override the preset's, and ``--set section.key=value`` overrides both.
Read by the project's one recipe loader (``bactrian.recipes.load``); unknown keys and impossible values raise
its :class:`RecipeError`, naming the file and the key.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bactrian.recipes import Overrides, RecipeError, load, parse_overrides

SOURCES = ("jsonl", "pipeline", "hub")
BATCHING = ("grouped", "padded")
SCHEDULERS = ("linear", "cosine", "constant_with_warmup")
PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class DataSettings:
    source: str = "jsonl"  # jsonl | pipeline (DatasetDict folder) | hub (MBZUAI/Bactrian-X)
    path: str = ""  # jsonl file, DatasetDict folder, or Hub dataset id
    languages: list[str] | str = "all"  # "all", a code, or a list of codes
    template: str = "bactrian-x"
    eval_fraction: float = 0.05
    eval_max: int = 200  # cap on held-out examples, so eval stays cheap on big sets
    max_examples: int | None = None  # per language, for short runs
    seed: int = 42
    skip_empty: bool = False  # drop rows whose instruction/output is blank instead of refusing the data


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 16
    dropout: float = 0.05
    # "paper" (the paper's choice per architecture), "attention", "all-linear", or module names.
    target_modules: str | list[str] = "paper"


@dataclass
class TrainSettings:
    lr: float = 3e-4
    batch_size: int = 128  # effective: micro_batch_size * accumulation * processes
    micro_batch_size: int = 4
    max_length: int = 1024
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs
    warmup_steps: int = 100
    scheduler: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batching: str = "grouped"  # grouped (by length) | padded (plain shuffled baseline)
    precision: str = "no"
    dtype: str = "float32"  # how the frozen base is loaded
    gradient_checkpointing: bool = False
    response_only_logits: bool = True  # run the LM head only where a response token is predicted
    seed: int = 42
    log_every: int = 10
    eval_every: int | None = None  # None: only before and after training
    save_every: int = 50
    keep_checkpoints: int = 2


@dataclass
class OutputSettings:
    dir: str = ""  # the adapter folder; default runs/<name>/adapter
    run_dir: str = ""  # checkpoints and logs; default runs/<name>
    description: str = ""
    push_to_hub: bool = False
    hub_repo: str | None = None
    hub_private: bool = True


@dataclass
class Recipe:
    name: str
    base: str = "gemma-3-270m"
    preset: str | None = None
    data: DataSettings = field(default_factory=DataSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    output: OutputSettings = field(default_factory=OutputSettings)

    @property
    def adapter_dir(self) -> Path:
        return Path(self.output.dir).expanduser() if self.output.dir else self.run_dir / "adapter"

    @property
    def run_dir(self) -> Path:
        return Path(self.output.run_dir).expanduser() if self.output.run_dir else Path("runs") / self.name

    def accumulation(self, processes: int) -> int:
        """Micro-batches per optimizer step on each process, so the effective batch is ``batch_size``."""
        per_step = self.train.micro_batch_size * processes
        if self.train.batch_size % per_step:
            raise RecipeError(
                f"train.batch_size ({self.train.batch_size}) must be a multiple of train.micro_batch_size "
                f"({self.train.micro_batch_size}) x processes ({processes})"
            )
        return self.train.batch_size // per_step

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _presets_file() -> dict[str, dict]:
    return yaml.safe_load(resources.files("pipelines.train").joinpath("presets.yaml").read_text("utf-8"))


def presets() -> dict[str, dict]:
    """The paper's settings by name (``multilingual``, ``monolingual``)."""
    return _presets_file()["presets"]


def target_module_table() -> dict[str, dict[str, list[str]]]:
    """``{"paper" | "attention": {model_type: [module names]}}``."""
    return _presets_file()["target_modules"]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``train.lr=1e-4`` -> (["train", "lr"], 0.0001); the value is parsed as YAML (numbers, lists, null)."""
    ((key, value),) = parse_overrides([item]).items()
    return key.split("."), value


def _check(r: Recipe) -> None:
    """Impossible values, each named."""
    from bactrian.languages import parse_languages
    from bactrian.prompter import template_names

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise RecipeError(msg)

    need(bool(r.name.strip()) and "/" not in r.name, f"name must be a non-empty folder name, got {r.name!r}")
    d, lo, t = r.data, r.lora, r.train
    need(d.source in SOURCES, f"data.source must be one of {', '.join(SOURCES)}, got {d.source!r}")
    need(bool(d.path) or d.source == "hub", "data.path is required for data.source " + repr(d.source))
    need(0.0 <= d.eval_fraction < 1.0, f"data.eval_fraction must be in [0, 1), got {d.eval_fraction}")
    need(d.eval_max >= 0, f"data.eval_max must be >= 0, got {d.eval_max}")
    need(d.max_examples is None or d.max_examples > 0, f"data.max_examples must be positive, got {d.max_examples}")
    need(d.template in template_names(), f"data.template must be one of {', '.join(template_names())}, got {d.template!r}")
    if d.languages != "all":
        try:
            parse_languages(d.languages)
        except KeyError as e:
            raise RecipeError(f"data.languages: {e.args[0]}") from None
    need(lo.r > 0, f"lora.r must be positive, got {lo.r}")
    need(lo.alpha > 0, f"lora.alpha must be positive, got {lo.alpha}")
    need(0.0 <= lo.dropout < 1.0, f"lora.dropout must be in [0, 1), got {lo.dropout}")
    need(lo.target_modules != [] and lo.target_modules != "" and all(lo.target_modules),
         "lora.target_modules must not be empty")
    need(0.0 < t.lr < 1.0, f"train.lr must be in (0, 1), got {t.lr}")
    need(t.batch_size > 0, f"train.batch_size must be positive, got {t.batch_size}")
    need(t.micro_batch_size > 0, f"train.micro_batch_size must be positive, got {t.micro_batch_size}")
    need(t.batch_size % t.micro_batch_size == 0,
         f"train.batch_size ({t.batch_size}) must be a multiple of train.micro_batch_size ({t.micro_batch_size})")
    need(16 <= t.max_length <= 131072, f"train.max_length must be between 16 and 131072, got {t.max_length}")
    need(t.epochs > 0, f"train.epochs must be positive, got {t.epochs}")
    need(t.max_steps is None or t.max_steps > 0, f"train.max_steps must be positive, got {t.max_steps}")
    need(t.warmup_steps >= 0, f"train.warmup_steps must be >= 0, got {t.warmup_steps}")
    need(t.scheduler in SCHEDULERS, f"train.scheduler must be one of {', '.join(SCHEDULERS)}, got {t.scheduler!r}")
    need(t.weight_decay >= 0, f"train.weight_decay must be >= 0, got {t.weight_decay}")
    need(t.max_grad_norm >= 0, f"train.max_grad_norm must be >= 0, got {t.max_grad_norm}")
    need(t.batching in BATCHING, f"train.batching must be one of {', '.join(BATCHING)}, got {t.batching!r}")
    need(t.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    need(t.dtype in ("float32", "bfloat16", "float16"), f"train.dtype must be float32, bfloat16 or float16, got {t.dtype!r}")
    need(t.log_every > 0, f"train.log_every must be positive, got {t.log_every}")
    need(t.eval_every is None or t.eval_every > 0, f"train.eval_every must be positive, got {t.eval_every}")
    need(t.save_every > 0, f"train.save_every must be positive, got {t.save_every}")
    need(t.keep_checkpoints > 0, f"train.keep_checkpoints must be positive, got {t.keep_checkpoints}")
    need(not r.output.push_to_hub or bool(r.output.hub_repo), "output.push_to_hub needs output.hub_repo")


def _with_preset(raw: dict[str, Any]) -> dict[str, Any]:
    """The named preset's values under the recipe's own (which win)."""
    preset = raw.get("preset")
    if preset is None:
        return raw
    known = presets()
    if preset not in known:
        raise RecipeError(f"unknown preset {preset!r}; known: {', '.join(known)}", key="preset")
    return _merge(known[preset], raw)


def recipe_from_dict(raw: dict, overrides: Overrides = ()) -> Recipe:
    """Build and check a recipe from a mapping (a preset, if named, fills what the mapping leaves out)."""
    if not isinstance(raw, dict):
        raise RecipeError("a recipe must be a YAML mapping")
    return load(Recipe, raw, overrides, prepare=_with_preset, check=_check)


def load_recipe(path: str | Path, overrides: Overrides = ()) -> Recipe:
    """Read a YAML recipe; ``overrides`` are ``section.key=value`` strings (from ``--set``). The run's name
    defaults to the file's stem."""
    def prepare(raw: dict[str, Any]) -> dict[str, Any]:
        raw.setdefault("name", Path(path).stem)
        return _with_preset(raw)

    return load(Recipe, path, overrides, prepare=prepare, check=_check)
