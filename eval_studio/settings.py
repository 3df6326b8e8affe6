"""Studio settings, read once from environment variables (``Settings.from_env()``); tests build them directly.

Every variable (name, meaning, default, old names) is in the one table of ``bactrian/settings.py``; this module
reads them through ``bactrian.settings.get`` and adds the studio's own checks (ranges, JSON shapes, device).
The studio's variables, briefly: ``BACTRIAN_DB`` (the store; ``bactrian studio`` reads the same one),
``BACTRIAN_BASE``, ``BACTRIAN_ADAPTERS_DIR``, ``BACTRIAN_DEVICE``, ``BACTRIAN_DTYPE``, ``BACTRIAN_ENGINE`` (the local
engine: ``auto``, ``torch``, ``llamacpp``), ``BACTRIAN_ENGINE_URL``, ``BACTRIAN_ENGINE_API_KEY_ENV``,
``BACTRIAN_MAX_ROWS``, ``BACTRIAN_MAX_QUEUE``, ``BACTRIAN_EXTERNAL_MODELS``,
``BACTRIAN_BATTLE_EXTERNAL`` (default false: anonymous battles never draw paid external models; signed-in
annotators and admins may), ``BACTRIAN_USERS_FILE``, ``BACTRIAN_USERS``, ``BACTRIAN_ANON_VOTES``, the rate limits
(per visitor session and for all visitors together, per minute, 0 = none; admins are not limited):

| variable | per session | all visitors (``..._GLOBAL``) |
|---|---|---|
| ``BACTRIAN_RATE_GENERATE``: chat, arena and regenerate requests | 20 | 300 |
| ``BACTRIAN_RATE_VOTE``: arena and annotation votes | 30 | 600 |
| ``BACTRIAN_RATE_LOGIN``: sign-in attempts | 5 | 30 |

then ``BACTRIAN_MAX_MESSAGE_CHARS``, ``BACTRIAN_OVERLAP``, ``BACTRIAN_TASK``, ``BACTRIAN_QUESTIONS``,
``BACTRIAN_PREGENERATE``, ``BACTRIAN_BENCH_RESULTS``, ``BACTRIAN_GEN_DEFAULTS``, ``BACTRIAN_UI_LANG``,
``GRADIO_SERVER_NAME``, ``GRADIO_SERVER_PORT``.

API keys are never settings: an external model names the *variable* holding its key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bactrian.client import Endpoint
from bactrian.settings import VARIABLES, SettingsError, get

# Package data (eval_studio/data/), so a non-editable install has them too; plain folders, as the readers open files.
_DATA = Path(str(resources.files("eval_studio.data")))
DEFAULT_QUESTIONS = _DATA / "questions" / "demo_questions.jsonl"
DEFAULT_BENCH_RESULTS = _DATA / "bench_results"  # the results recorded in bench/RESULTS.md


__all__ = ["DEFAULT_BENCH_RESULTS", "DEFAULT_QUESTIONS", "ExternalModel", "Settings", "SettingsError", "parse_external_models"]


@dataclass(frozen=True)
class ExternalModel:
    """An OpenAI-compatible model shown next to local variants (e.g. GPT-4o)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None  # the variable's name, never its value

    @property
    def endpoint(self) -> Endpoint:
        """The project's one endpoint type (``bactrian.client``): what clients for this model are built from."""
        return Endpoint(self.base_url, self.model, self.api_key_env)


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
    engine: str = "auto"  # the local engine: auto | torch | llamacpp (bactrian.llamacpp.choose_engine)
    include_default_adapters: bool = True
    external_models: tuple[ExternalModel, ...] = ()
    battle_external: bool = VARIABLES["BACTRIAN_BATTLE_EXTERNAL"].default  # may anonymous battles draw paid models?
    users_file: str | None = None
    users_text: str | None = None
    anon_votes: bool = True
    # rate limits, per minute: (per visitor session, all visitors together); 0 = no limit
    rate_generate: int = VARIABLES["BACTRIAN_RATE_GENERATE"].default
    rate_generate_global: int = VARIABLES["BACTRIAN_RATE_GENERATE_GLOBAL"].default
    rate_vote: int = VARIABLES["BACTRIAN_RATE_VOTE"].default
    rate_vote_global: int = VARIABLES["BACTRIAN_RATE_VOTE_GLOBAL"].default
    rate_login: int = VARIABLES["BACTRIAN_RATE_LOGIN"].default
    rate_login_global: int = VARIABLES["BACTRIAN_RATE_LOGIN_GLOBAL"].default
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
    demo_note: bool | None = None  # the "small demo models" note in Chat; None: when an embedded base runs in-process
    admins: tuple[str, ...] = ()  # Hugging Face user names given the admin role when they sign in on a Space
    persistent_dir: str | None = None  # survives restarts: the database (without BACTRIAN_DB), session key, backups
    backup_repo: str | None = None  # Hub dataset repo the store is backed up to (eval_studio.space.StoreBackup)
    backup_minutes: int = 10
    session_secret: str | None = None  # signs browser-kept sessions; None: a key kept in the persistent folder

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        from bactrian.prompter import MAX_MESSAGE_CHARS

        cap = get("BACTRIAN_MAX_MESSAGE_CHARS", env, MAX_MESSAGE_CHARS)
        if not 1 <= cap <= MAX_MESSAGE_CHARS:
            raise SettingsError(f"BACTRIAN_MAX_MESSAGE_CHARS must be between 1 and {MAX_MESSAGE_CHARS}, got {cap}")
        device, dtype = get("BACTRIAN_DEVICE", env), get("BACTRIAN_DTYPE", env)
        from bactrian.devices import DeviceError, resolve_placement

        try:
            resolve_placement(device, dtype)  # fail at start, naming the variable, not at the first load
        except DeviceError as e:
            raise SettingsError(f"BACTRIAN_DEVICE={device!r} / BACTRIAN_DTYPE={dtype!r}: {e}") from e
        engine = get("BACTRIAN_ENGINE", env)
        if engine not in ("auto", "torch", "llamacpp"):
            raise SettingsError(f"BACTRIAN_ENGINE must be auto, torch or llamacpp, got {engine!r}")
        lang = get("BACTRIAN_UI_LANG", env)
        if lang not in ("en", "zh"):
            raise SettingsError(f"BACTRIAN_UI_LANG must be en or zh, got {lang!r}")
        gen_defaults = get("BACTRIAN_GEN_DEFAULTS", env, {})
        if not isinstance(gen_defaults, dict):
            raise SettingsError("BACTRIAN_GEN_DEFAULTS must be a JSON object")
        rates = {f"rate_{k}": get(f"BACTRIAN_RATE_{k.upper()}", env) for k in
                 ("generate", "generate_global", "vote", "vote_global", "login", "login_global")}
        from eval_studio.space import persistent_db_url, persistent_dir

        keep = persistent_dir(env)  # a Space's /data: the database must not live in the container's lost disk
        return cls(
            db_url=get("BACTRIAN_DB", env) or (persistent_db_url(keep) if keep else None),
            persistent_dir=str(keep) if keep else None,
            backup_repo=get("BACTRIAN_BACKUP_REPO", env),
            backup_minutes=_at_least(1, "BACTRIAN_BACKUP_MINUTES", env),
            session_secret=get("BACTRIAN_SESSION_SECRET", env),
            admins=tuple(a.strip() for a in get("BACTRIAN_ADMINS", env).split(",") if a.strip()),
            base=get("BACTRIAN_BASE", env),
            adapters_dirs=get("BACTRIAN_ADAPTERS_DIR", env),
            engine_url=get("BACTRIAN_ENGINE_URL", env),
            engine_api_key_env=get("BACTRIAN_ENGINE_API_KEY_ENV", env),
            max_rows=_at_least(1, "BACTRIAN_MAX_ROWS", env),
            max_queue=_at_least(1, "BACTRIAN_MAX_QUEUE", env),
            device=device,
            dtype=dtype,
            engine=engine,
            external_models=parse_external_models(get("BACTRIAN_EXTERNAL_MODELS", env)),
            battle_external=get("BACTRIAN_BATTLE_EXTERNAL", env),
            users_file=get("BACTRIAN_USERS_FILE", env),
            users_text=get("BACTRIAN_USERS", env),
            anon_votes=get("BACTRIAN_ANON_VOTES", env),
            **rates,
            max_message_chars=cap,
            overlap=_at_least(1, "BACTRIAN_OVERLAP", env),
            task=get("BACTRIAN_TASK", env),
            questions_file=get("BACTRIAN_QUESTIONS", env, str(DEFAULT_QUESTIONS)),
            pregenerate=get("BACTRIAN_PREGENERATE", env),
            bench_results=get("BACTRIAN_BENCH_RESULTS", env, (str(DEFAULT_BENCH_RESULTS),)),
            gen_defaults=gen_defaults,
            ui_lang=lang,
            server_name=get("GRADIO_SERVER_NAME", env),
            server_port=get("GRADIO_SERVER_PORT", env),
            on_spaces=bool(get("SPACE_ID", env)),
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


def _at_least(low: int, name: str, env: Mapping[str, str] | None) -> int:
    value = get(name, env)
    if value < low:
        raise SettingsError(f"{name} must be at least {low}, got {value}")
    return value
