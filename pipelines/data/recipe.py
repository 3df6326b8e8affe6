"""The data recipe: one YAML file describing sources, languages, backends, limits and the output folder.

Read by the project's one recipe loader (``bactrian.recipes.load``) into frozen dataclasses: unknown keys are
rejected with their dotted path, so a typo never silently falls back to a default. Secrets are never part of a
recipe: it names the environment variable that holds a key (the endpoints' ``api_key_env``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.client import Endpoint
from bactrian.languages import parse_languages
from bactrian.recipes import Overrides, RecipeError, build_dataclass, load, parse_overrides, read_yaml, set_dotted

__all__ = ["RecipeError", "Recipe", "build_dataclass", "load_recipe", "parse_overrides", "parse_recipe", "read_yaml",
           "set_dotted"]


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # alpaca | dolly
    path: str | None = None  # local .json / .jsonl; otherwise `hub` is loaded through `datasets`
    hub: str | None = None
    limit: int | None = None  # first N rows (small runs)


@dataclass(frozen=True)
class TranslateSpec:
    backend: str = "llm"  # google | llm | seq2seq | none
    model: str = ""  # llm: served model id; seq2seq: folder/Hub id (may contain {lang} for Marian pairs)
    base_url: str | None = None  # llm: OpenAI-compatible endpoint; google: API root (tests use a local one)
    api_key_env: str | None = None  # name of the environment variable with the key (never the key)
    service_account_file: str | None = None  # google: a service-account JSON (needs google-auth)
    batch_size: int = 64  # google: strings per request (the API takes at most 128)
    concurrency: int = 8
    max_tokens: int = 1024
    timeout_s: float = 60.0
    max_retries: int = 5
    skip_code: bool = True  # rows with programming content stay in English, as in the paper

    @property
    def endpoint(self) -> Endpoint:
        """The llm backend's endpoint (base_url None: OpenAI's own API)."""
        return Endpoint(self.base_url, self.model, self.api_key_env, self.timeout_s)


@dataclass(frozen=True)
class RespondSpec:
    model: str = "gpt-3.5-turbo"
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 32
    rpm: float | None = None  # requests per minute; None = unlimited
    tpm: float | None = None  # tokens per minute (prompt estimate + max_tokens); None = unlimited
    max_tokens: int = 1024
    temperature: float = 0.7
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    use_batch_api: bool = False  # OpenAI Batch API (50% cheaper, up to 24 h)
    batch_poll_s: float = 30.0

    @property
    def endpoint(self) -> Endpoint:
        """Where the responses come from (base_url None: OpenAI's own API)."""
        return Endpoint(self.base_url, self.model, self.api_key_env, self.timeout_s)


@dataclass(frozen=True)
class FilterSpec:
    langid: bool = True
    keep_langid_failures: bool = False  # keep rows whose language id disagrees (e.g. tiny test models)
    min_confidence: float = 0.5
    min_chars: int = 1
    max_chars: int = 20000
    outlier_mad: float = 5.0  # drop lengths this many robust deviations from the language's median (log chars)
    drop_truncated: bool = False  # finish_reason == "length"
    dedupe: bool = True


@dataclass(frozen=True)
class ReportSpec:
    tokenizer: str | None = "gemma-3-270m"  # the target base model whose tokenizer measures lengths


@dataclass(frozen=True)
class ExportSpec:
    parquet: bool = True
    save_to_disk: bool = True
    push_to_hub: str | None = None  # repo id; the token comes from HF_TOKEN
    pretty_name: str = "Bactrian-X (regenerated)"


@dataclass(frozen=True)
class Recipe:
    name: str
    output: str
    languages: tuple[str, ...]
    sources: tuple[SourceSpec, ...]
    translate: TranslateSpec = field(default_factory=TranslateSpec)
    respond: RespondSpec = field(default_factory=RespondSpec)
    filter: FilterSpec = field(default_factory=FilterSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    export: ExportSpec = field(default_factory=ExportSpec)
    include_english: bool = False  # also export the English originals with generated responses

    @property
    def out(self) -> Path:
        return Path(self.output)

    @property
    def work_languages(self) -> list[str]:
        """Languages that get responses: targets, plus English when asked."""
        return (["en"] if self.include_english else []) + [c for c in self.languages if c != "en"]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _languages(data: dict[str, Any]) -> dict[str, Any]:
    """``languages`` as codes (groups such as ``G1`` or ``all-non-en`` expanded)."""
    langs = data.get("languages")
    try:
        data["languages"] = parse_languages(langs if langs is not None else [])
    except KeyError as e:
        raise RecipeError(str(e.args[0]), key="languages") from None
    if not data["languages"]:
        raise RecipeError("at least one language is needed (e.g. [zh, es] or all-non-en)", key="languages")
    return data


def _check(recipe: Recipe) -> None:
    for i, s in enumerate(recipe.sources):
        if s.kind not in ("alpaca", "dolly"):
            raise RecipeError(f"{s.kind!r} is not alpaca or dolly", key=f"sources[{i}].kind")
        if not s.path and not s.hub:
            raise RecipeError("give a local path or a hub id", key=f"sources[{i}]")
    if recipe.translate.backend not in ("google", "llm", "seq2seq", "none"):
        raise RecipeError(f"{recipe.translate.backend!r} is not google, llm, seq2seq or none", key="translate.backend")
    if not recipe.sources:
        raise RecipeError("at least one source is needed", key="sources")


def parse_recipe(data: dict[str, Any], overrides: Overrides = None) -> Recipe:
    """Validate a recipe mapping (plus ``{"respond.base_url": ...}``-style overrides)."""
    return load(Recipe, data, overrides, prepare=_languages, check=_check)


def load_recipe(path: str | Path, overrides: Overrides = None) -> Recipe:
    return load(Recipe, path, overrides, prepare=_languages, check=_check)
