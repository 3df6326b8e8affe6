"""Strict recipes: YAML files read into frozen dataclasses, unknown keys and wrong types refused by dotted path.

Every recipe kind of the project (data, question sets, the evaluation protocol) builds on these helpers, so a
typo never silently falls back to a default. Secrets are never part of a recipe: it names the environment
variable that holds a key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class RecipeError(ValueError):
    """The recipe is invalid; the message names the offending key."""


def _build(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where or 'recipe'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        hint = ""
        if any("key" in k and "env" not in k for k in unknown):
            hint = " (keys never go in a recipe: put the key in an environment variable and name it in api_key_env)"
        raise RecipeError(f"{where or 'recipe'}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}{hint}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}" if where else name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise RecipeError(f"{where or 'recipe'}: {e}") from None


def build_dataclass(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping with this module's checks (other recipes reuse them)."""
    return _build(cls, data, where)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise RecipeError(f"{where}: expected a list")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise RecipeError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested mappings and lists (creating mappings on the way)."""
    keys = dotted.split(".")
    node: Any = data
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file's mapping (empty file: empty mapping); RecipeError when absent, not YAML or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys to values")
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["respond.base_url=http://...", "sources.0.limit=5"]`` -> mapping; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise RecipeError(f"override {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out
