"""Every environment variable of the project, in one table: its name, meaning, type and default.

The library, the pipelines, the ``bactrian`` command and the studio read variables only through ``get(name)``
(or ``home()``), so one name means one thing everywhere. An old name (an *alias*) is still read, with a
``DeprecationWarning`` naming the new one; when both are set the new one wins. A malformed value raises
``SettingsError`` naming the variable. API keys are never settings: an endpoint names the *variable* that holds
its key (``*_API_KEY_ENV``, ``api_key_env``), and that variable is read only when a request is made.

The table (generated from ``VARIABLES`` below, so it cannot drift from what the code reads):
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["VARIABLES", "SettingsError", "Var", "get", "home", "markdown_table", "raw"]


class SettingsError(ValueError):
    """A variable is malformed; the message names it."""


def _text(name: str, raw: str) -> str:
    return raw


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _count(name: str, raw: str) -> int:
    value = _int(name, raw)
    if value < 0:
        raise SettingsError(f"{name} must be 0 or more, got {value}")
    return value


def _bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def _paths(name: str, raw: str) -> tuple[str, ...]:
    return tuple(p for p in raw.split(os.pathsep) if p)


def _json(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{name} is not valid JSON ({e.msg})") from None


PARSERS: dict[str, Callable[[str, str], Any]] = {"text": _text, "int": _int, "count": _count, "bool": _bool,
                                                 "path": _path, "paths": _paths, "json": _json}


@dataclass(frozen=True)
class Var:
    name: str
    kind: str  # a key of PARSERS
    default: Any  # the typed value when unset or empty (None: none); a caller may pass its own
    meaning: str
    default_doc: str = ""  # how the table shows the default, when the value alone does not say it
    aliases: tuple[str, ...] = ()  # old names, still read with a DeprecationWarning
    part: str = "library"  # who reads it: library | studio | pipelines
    empty_is_value: bool = False  # set but empty means "none", not "the default"

    @property
    def default_text(self) -> str:
        if self.default_doc:
            return self.default_doc
        return f"`{str(self.default).lower() if isinstance(self.default, bool) else self.default}`"


_ROWS = (
    # library and command line
    Var("BACTRIAN_HOME", "path", None, "adapters (`adapters/`), the studio database (`studio.db`), bench caches",
        "`~/.bactrian`"),
    Var("BACTRIAN_CACHE", "path", None, "dequantized embedded models", "the user cache dir / bactrian"),
    Var("BACTRIAN_DB", "text", None, "SQLAlchemy URL of the studio store (app, `bactrian studio`, `bactrian run`)",
        "`sqlite:///$BACTRIAN_HOME/studio.db`", ("BACTRIAN_STUDIO_DB",)),
    # the studio: model and engine
    Var("BACTRIAN_BASE", "text", "gemma-3-270m", "studio: base model name, folder or Hub id", part="studio"),
    Var("BACTRIAN_ADAPTERS_DIR", "paths", (), "studio: extra adapter folders (`os.pathsep`-separated)", "none",
        part="studio"),
    Var("BACTRIAN_DEVICE", "text", "auto", "studio: where the local model runs: `auto` (CUDA, else `mps`, else CPU), "
        "`cpu`, `cuda`, `cuda:N`, `mps`", part="studio"),
    Var("BACTRIAN_DTYPE", "text", "auto", "studio: the model's dtype: `auto`, `float32`, `bfloat16`, `float16`",
        part="studio"),
    Var("BACTRIAN_ENGINE", "text", "auto", "studio: the local engine: `auto` (llama.cpp for an embedded base on the "
        "CPU, else torch), `torch` (force transformers + peft), `llamacpp`", part="studio"),
    Var("BACTRIAN_ENGINE_URL", "text", None, "studio: run on an OpenAI-compatible server (vLLM, `bactrian serve`) "
        "instead of a local model", "none: the local model", part="studio"),
    Var("BACTRIAN_ENGINE_API_KEY_ENV", "text", None, "studio: the *name* of the variable holding that server's key",
        "none", part="studio"),
    Var("BACTRIAN_MAX_ROWS", "int", 16, "studio: rows the local engine decodes together", part="studio"),
    Var("BACTRIAN_MAX_QUEUE", "int", 64, "studio: requests waiting before \"busy, retry\"", part="studio"),
    Var("BACTRIAN_EXTERNAL_MODELS", "text", "", "studio: JSON list of `{name, base_url, model, api_key_env}` "
        "(paid APIs shown next to local variants)", "none", part="studio"),
    Var("BACTRIAN_BATTLE_EXTERNAL", "bool", False, "studio: anonymous arena battles may draw external (paid) models "
        "(signed-in annotators and admins always may)", part="studio"),
    # the studio: people, limits
    Var("BACTRIAN_USERS_FILE", "text", None, "studio: annotator accounts file (`bactrian studio add-user`)", "none",
        ("BACTRIAN_STUDIO_USERS_FILE",), "studio"),
    Var("BACTRIAN_USERS", "text", None, "studio: accounts inline, `name:scrypt_hash[:role]`, comma-separated", "none",
        ("BACTRIAN_STUDIO_USERS",), "studio"),
    Var("BACTRIAN_ADMINS", "text", "", "studio on Spaces: Hugging Face user names given the admin role "
        "(comma-separated)", "none", ("BACTRIAN_STUDIO_ADMINS",), "studio"),
    Var("BACTRIAN_ANON_VOTES", "bool", True, "studio: anonymous visitors may vote in the arena", part="studio"),
    Var("BACTRIAN_RATE_GENERATE", "count", 20, "studio: generation requests (chat, arena, regenerate) per visitor "
        "session per minute; 0 = no limit; admins are not limited", part="studio"),
    Var("BACTRIAN_RATE_GENERATE_GLOBAL", "count", 300, "studio: generation requests per minute, all visitors together",
        part="studio"),
    Var("BACTRIAN_RATE_VOTE", "count", 30, "studio: arena and annotation votes per session per minute", part="studio"),
    Var("BACTRIAN_RATE_VOTE_GLOBAL", "count", 600, "studio: votes per minute, all visitors together", part="studio"),
    Var("BACTRIAN_RATE_LOGIN", "count", 5, "studio: sign-in attempts per session per minute", part="studio"),
    Var("BACTRIAN_RATE_LOGIN_GLOBAL", "count", 30, "studio: sign-in attempts per minute, all visitors together",
        part="studio"),
    Var("BACTRIAN_MAX_MESSAGE_CHARS", "int", None, "studio: longest accepted message", "the engine's cap (20000)",
        part="studio"),
    # the studio: content
    Var("BACTRIAN_OVERLAP", "int", 2, "studio: k, annotators per pair", part="studio"),
    Var("BACTRIAN_TASK", "text", "demo", "studio: the annotation task the Annotate tab serves", part="studio"),
    Var("BACTRIAN_QUESTIONS", "text", None, "studio: question set imported at start (JSONL)",
        "the demo questions (package data: `eval_studio/data/questions/demo_questions.jsonl`)", part="studio"),
    Var("BACTRIAN_PREGENERATE", "int", 12, "studio: questions answered by two local variants at start, in the "
        "background", part="studio"),
    Var("BACTRIAN_BENCH_RESULTS", "paths", None, "studio: `bactrian bench` JSON files or folders ingested at start "
        "(`os.pathsep`-separated); empty: none", "the recorded results (`eval_studio/data/bench_results`)", part="studio",
        empty_is_value=True),
    Var("BACTRIAN_GEN_DEFAULTS", "json", None, "studio: JSON object of default generation parameters", "`{}`",
        part="studio"),
    Var("BACTRIAN_UI_LANG", "text", "en", "studio: initial UI language (`en`, `zh`)", part="studio"),
    # third-party names the studio reads
    Var("GRADIO_SERVER_NAME", "text", "127.0.0.1", "studio: where `python app.py` listens", part="studio"),
    Var("GRADIO_SERVER_PORT", "int", 7860, "studio: its port", part="studio"),
    Var("SPACE_ID", "text", None, "set by Hugging Face Spaces: the studio turns on OAuth sign-in", "unset",
        part="studio"),
    # the studio as a Space: what survives a restart
    Var("BACTRIAN_PERSISTENT_DIR", "path", None, "studio: a folder that survives restarts; without `BACTRIAN_DB` the "
        "database goes to `<it>/bactrian/studio.db`", "`/data` on a Space with persistent storage, else none",
        part="studio"),
    Var("BACTRIAN_BACKUP_REPO", "text", None, "studio: Hub dataset repo (`user/name`, created private) that votes, "
        "judgments and the database are backed up to (needs `HF_TOKEN` with write access)", "none: no backup",
        part="studio"),
    Var("BACTRIAN_BACKUP_MINUTES", "int", 10, "studio: minutes between two backups", part="studio"),
    Var("BACTRIAN_SESSION_SECRET", "text", None, "studio: key that signs sign-in sessions kept in the browser (a "
        "reload keeps you signed in); changing it signs everyone out", "a random key kept in `session.key` in the "
        "persistent folder or `$BACTRIAN_HOME`", part="studio"),
)
VARIABLES: dict[str, Var] = {v.name: v for v in _ROWS}
_ALIASES: dict[str, str] = {a: v.name for v in _ROWS for a in v.aliases}
_MISSING = object()


def raw(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's text as set (new name first, then its old names); None when unset or empty."""
    var = VARIABLES[name]
    env = os.environ if env is None else env
    if env.get(name) or (var.empty_is_value and name in env):
        return env[name]
    for old in var.aliases:
        if env.get(old):
            warnings.warn(f"{old} is deprecated: use {name}", DeprecationWarning, stacklevel=3)
            return env[old]
    return None


def get(name: str, env: Mapping[str, str] | None = None, default: Any = _MISSING) -> Any:
    """The typed value of ``name`` (see the table); its default (or ``default``) when unset or empty."""
    if name not in VARIABLES:
        hint = f" (it is now {_ALIASES[name]})" if name in _ALIASES else ""
        raise KeyError(f"{name} is not a setting{hint}; see bactrian/settings.py")
    text = raw(name, env)
    if text is None:
        return VARIABLES[name].default if default is _MISSING else default
    return PARSERS[VARIABLES[name].kind](name, text)


def home(env: Mapping[str, str] | None = None) -> Path:
    """``$BACTRIAN_HOME`` (``~`` expanded; unset or empty: ``~/.bactrian``)."""
    return get("BACTRIAN_HOME", env) or Path.home() / ".bactrian"


def markdown_table() -> str:
    lines = ["| variable | meaning | default | old names |", "|---|---|---|---|"]
    for v in _ROWS:
        old = ", ".join(f"`{a}`" for a in v.aliases)
        lines.append(f"| `{v.name}` | {v.meaning} | {v.default_text} | {old} |")
    return "\n".join(lines)


__doc__ += "\n" + markdown_table() + "\n"
