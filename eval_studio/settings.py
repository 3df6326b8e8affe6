"""Studio settings, read once from environment variables (``Settings.from_env()``); tests build them directly.

| variable | meaning | default |
|---|---|---|
| ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` | where ``python app.py`` listens | 127.0.0.1 / 7860 |
| ``BACTRIAN_DB`` (or ``BACTRIAN_STUDIO_DB``) | SQLAlchemy URL of the store | ``sqlite:///$BACTRIAN_HOME/studio.db`` |
| ``BACTRIAN_BASE`` | base model name, folder or Hub id | ``gemma-3-270m`` |
| ``BACTRIAN_ADAPTERS_DIR`` | extra adapter folders (``os.pathsep``-separated) | none |
| ``BACTRIAN_DEVICE`` | where the local model runs: ``auto`` (CUDA, else Apple ``mps``, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps`` | ``auto`` |
| ``BACTRIAN_DTYPE`` | its dtype: ``auto`` (bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU/mps), ``float32``, ``bfloat16``, ``float16`` | ``auto`` |
| ``BACTRIAN_ENGINE_URL`` | run on an OpenAI-compatible server (vLLM, another ``bactrian serve``) instead of a local model; variants come from its ``/v1/models`` | none: the local model |
| ``BACTRIAN_ENGINE_API_KEY_ENV`` | the *name* of the variable holding that server's key | none |
| ``BACTRIAN_MAX_ROWS`` / ``BACTRIAN_MAX_QUEUE`` | local engine: rows decoded together / requests waiting before "busy, retry" | 16 / 64 |
| ``BACTRIAN_EXTERNAL_MODELS`` | JSON list of ``{name, base_url, model, api_key_env}`` | none |
| ``BACTRIAN_BATTLE_EXTERNAL`` | random battles may draw external models | true |
| ``BACTRIAN_USERS_FILE`` / ``BACTRIAN_USERS`` | annotator accounts (see ``eval_studio.auth``) | none |
| ``BACTRIAN_ANON_VOTES`` | anonymous visitors may vote in the arena | true |
| ``BACTRIAN_MAX_MESSAGE_CHARS`` | longest accepted message | the engine's cap |
| ``BACTRIAN_OVERLAP`` | k: annotators per pair | 2 |
| ``BACTRIAN_TASK`` | the annotation task the Annotate tab serves | ``demo`` |
| ``BACTRIAN_QUESTIONS`` | question set imported at start (JSONL) | ``assets/questions/demo_questions.jsonl`` |
| ``BACTRIAN_PREGENERATE`` | questions answered by two local variants at start, in the background | 12 |
| ``BACTRIAN_BENCH_RESULTS`` | ``bactrian bench`` JSON files or folders (``os.pathsep``-separated) ingested at start; empty: none | ``bench/results`` |
| ``BACTRIAN_GEN_DEFAULTS`` | JSON object of default generation parameters | ``{}`` |
| ``BACTRIAN_UI_LANG`` | initial UI language (``en``/``zh``) | ``en`` |

API keys are never settings: an external model names the *variable* holding its key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_QUESTIONS = REPO / "assets" / "questions" / "demo_questions.jsonl"
DEFAULT_BENCH_RESULTS = REPO / "bench" / "results"  # the results recorded in bench/RESULTS.md


class SettingsError(ValueError):
    """A setting is malformed; the message names the variable."""


@dataclass(frozen=True)
class ExternalModel:
    """An OpenAI-compatible model shown next to local variants (e.g. GPT-4o)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None  # the variable's name, never its value


@dataclass(frozen=True)
class Settings:
    db_url: str | None = None  # None: eval_studio.store.db.default_url()
    base: str = "gemma-3-270m"
    adapters_dirs: tuple[str, ...] = ()
    engine_url: str | None = None  # a remote OpenAI-compatible engine instead of the local model
    engine_api_key_env: str | None = None
    max_rows: int = 16
    max_queue: int = 64
    device: str = "auto"  # bactrian.devices.resolve_device
    dtype: str = "auto"  # bactrian.devices.resolve_dtype
    include_default_adapters: bool = True
    external_models: tuple[ExternalModel, ...] = ()
    battle_external: bool = True  # may random battles draw external (paid) models?
    users_file: str | None = None
    users_text: str | None = None
    anon_votes: bool = True
    max_message_chars: int = 20_000
    overlap: int = 2
    task: str = "demo"
    questions_file: str | None = str(DEFAULT_QUESTIONS)
    pregenerate: int = 12
    bench_results: tuple[str, ...] = ()  # from_env defaults to DEFAULT_BENCH_RESULTS
    gen_defaults: dict[str, Any] = field(default_factory=dict)
    ui_lang: str = "en"
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    on_spaces: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        from bactrian.prompter import MAX_MESSAGE_CHARS

        cap = _int(env, "BACTRIAN_MAX_MESSAGE_CHARS", MAX_MESSAGE_CHARS)
        if not 1 <= cap <= MAX_MESSAGE_CHARS:
            raise SettingsError(f"BACTRIAN_MAX_MESSAGE_CHARS must be between 1 and {MAX_MESSAGE_CHARS}, got {cap}")
        overlap = _int(env, "BACTRIAN_OVERLAP", 2)
        if overlap < 1:
            raise SettingsError(f"BACTRIAN_OVERLAP must be at least 1, got {overlap}")
        device, dtype = env.get("BACTRIAN_DEVICE") or "auto", env.get("BACTRIAN_DTYPE") or "auto"
        from bactrian.devices import DeviceError, resolve_placement

        try:
            resolve_placement(device, dtype)  # fail at start, naming the variable, not at the first load
        except DeviceError as e:
            raise SettingsError(f"BACTRIAN_DEVICE={device!r} / BACTRIAN_DTYPE={dtype!r}: {e}") from e
        lang = env.get("BACTRIAN_UI_LANG", "en")
        if lang not in ("en", "zh"):
            raise SettingsError(f"BACTRIAN_UI_LANG must be en or zh, got {lang!r}")
        return cls(
            db_url=env.get("BACTRIAN_DB") or env.get("BACTRIAN_STUDIO_DB") or None,
            base=env.get("BACTRIAN_BASE") or "gemma-3-270m",
            adapters_dirs=tuple(p for p in env.get("BACTRIAN_ADAPTERS_DIR", "").split(os.pathsep) if p),
            engine_url=env.get("BACTRIAN_ENGINE_URL") or None,
            engine_api_key_env=env.get("BACTRIAN_ENGINE_API_KEY_ENV") or None,
            max_rows=_positive(env, "BACTRIAN_MAX_ROWS", 16),
            max_queue=_positive(env, "BACTRIAN_MAX_QUEUE", 64),
            device=device,
            dtype=dtype,
            external_models=parse_external_models(env.get("BACTRIAN_EXTERNAL_MODELS", "")),
            battle_external=_bool(env, "BACTRIAN_BATTLE_EXTERNAL", True),
            users_file=env.get("BACTRIAN_USERS_FILE") or env.get("BACTRIAN_STUDIO_USERS_FILE") or None,
            users_text=env.get("BACTRIAN_USERS") or env.get("BACTRIAN_STUDIO_USERS") or None,
            anon_votes=_bool(env, "BACTRIAN_ANON_VOTES", True),
            max_message_chars=cap,
            overlap=overlap,
            task=env.get("BACTRIAN_TASK") or "demo",
            questions_file=env.get("BACTRIAN_QUESTIONS") or str(DEFAULT_QUESTIONS),
            pregenerate=_int(env, "BACTRIAN_PREGENERATE", 12),
            bench_results=tuple(p for p in env.get("BACTRIAN_BENCH_RESULTS", str(DEFAULT_BENCH_RESULTS)).split(os.pathsep) if p),
            gen_defaults=_json_object(env, "BACTRIAN_GEN_DEFAULTS"),
            ui_lang=lang,
            server_name=env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
            server_port=_int(env, "GRADIO_SERVER_PORT", 7860),
            on_spaces=bool(env.get("SPACE_ID")),
        )


def parse_external_models(text: str) -> tuple[ExternalModel, ...]:
    """``[{"name": "gpt-4o", "base_url": "https://api.openai.com/v1", "model": "gpt-4o", "api_key_env": "OPENAI_API_KEY"}]``."""
    if not text.strip():
        return ()
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"BACTRIAN_EXTERNAL_MODELS is not valid JSON ({e.msg})") from e
    if not isinstance(rows, list):
        raise SettingsError("BACTRIAN_EXTERNAL_MODELS must be a JSON list of objects")
    out: list[ExternalModel] = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) and row.get(k) for k in ("name", "base_url", "model")):
            raise SettingsError(f"BACTRIAN_EXTERNAL_MODELS[{i}] needs string fields name, base_url and model")
        if "api_key" in row:
            raise SettingsError(f"BACTRIAN_EXTERNAL_MODELS[{i}]: give api_key_env (a variable name), never the key itself")
        out.append(ExternalModel(row["name"], row["base_url"], row["model"], row.get("api_key_env") or None))
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise SettingsError("BACTRIAN_EXTERNAL_MODELS has duplicate names")
    return tuple(out)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name, "")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{name} is not valid JSON ({e.msg})") from e
    if not isinstance(data, dict):
        raise SettingsError(f"{name} must be a JSON object")
    return data
