"""The one recipe loader: a YAML file (or a mapping) plus ``--set key=value`` overrides, read into typed dataclasses.

Every recipe kind of the project (data, training, question sets, the evaluation protocol, the run) goes through
``load``: read the file, apply the dotted overrides, let the kind prepare its mapping (a preset, a language group),
coerce it into the kind's nested dataclasses, then run the kind's own checks. Unknown keys and wrong types are
refused by dotted path, so a typo never silently falls back to a default, and every error has one format:
``FILE: KEY: problem`` (:class:`RecipeError`). Secrets are never part of a recipe: it names the environment
variable that holds a key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
Overrides = Mapping[str, Any] | Iterable[str] | None  # {"a.b": value} or ["a.b=value", ...] (from --set)

__all__ = ["Overrides", "RecipeError", "apply_overrides", "build_dataclass", "coerce", "load", "parse_overrides",
           "read_yaml", "set_dotted"]


class RecipeError(ValueError):
    """The recipe cannot be used. ``str(e)`` is ``FILE: KEY: problem`` (file and key when known), so every recipe
    kind reports its problems the same way and the command line prints them as they are."""

    def __init__(self, problem: str, key: str | None = None, file: str | Path | None = None) -> None:
        self.problem, self.key = problem, key or None
        self.file = None if file is None else str(file)
        super().__init__(": ".join(p for p in (self.file, self.key, problem) if p))

    def in_file(self, file: str | Path) -> RecipeError:
        """This error naming ``file`` (one that already names a file, e.g. an included recipe's, is kept)."""
        return self if self.file else RecipeError(self.problem, self.key, file)


# -- reading and overriding ---------------------------------------------------------------------------------------
def read_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file's mapping (empty file: empty mapping); RecipeError when absent, not YAML or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError("recipe not found", file=path)
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"not valid YAML: {e}", file=path) from None
    if not isinstance(data, dict):
        raise RecipeError("a recipe is a mapping of keys to values", file=path)
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["respond.base_url=http://...", "sources.0.limit=5"]`` -> mapping; values parsed as YAML (numbers, lists,
    null; an empty value is null, as an empty value in a YAML file)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested mappings and lists (creating mappings on the way)."""
    keys = dotted.split(".")
    node: Any = data
    try:
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value
    except (AttributeError, TypeError, ValueError, IndexError):
        # the path runs through a scalar (``name.x``) or past a list's end: say which override, not a traceback
        raise RecipeError("--set: the path does not lead into a section of the recipe", key=dotted) from None


def apply_overrides(data: Mapping[str, Any], overrides: Overrides) -> dict[str, Any]:
    """A copy of ``data`` with the overrides set (``{"a.b": 1}``, or ``["a.b=1"]`` as given to ``--set``)."""
    out = copy.deepcopy(dict(data))
    if overrides is None:
        return out
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    for k, v in overrides.items():
        set_dotted(out, k, v)
    return out


# -- typed building -----------------------------------------------------------------------------------------------
def build_dataclass(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` (and the dataclasses it nests) from a mapping, refusing unknown keys, missing
    required keys and wrong types; ``where`` is the mapping's dotted path in the recipe (top level: empty)."""
    if not isinstance(data, dict):
        raise RecipeError(f"expected a mapping, got {type(data).__name__}", key=where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        hint = ""
        if any("key" in k and "env" not in k for k in unknown):
            hint = " (keys never go in a recipe: put the key in an environment variable and name it in api_key_env)"
        raise RecipeError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}{hint}", key=where)
    missing = [n for n, f in fields.items() if n not in data and f.init
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecipeError(f"missing required key(s) {', '.join(missing)}", key=where)
    kwargs = {name: coerce(hints[name], value, f"{where}.{name}" if where else name) for name, value in data.items()}
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (a dataclass, ``X | None``, ``A | B``, ``list[X]``, ``tuple[X, ...]``, a scalar), or
    RecipeError naming ``where``. YAML's spellings are accepted where unambiguous: an int for a float, and a
    string such as ``3e-4`` for a float (YAML 1.1 reads an exponent without a dot as a string)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return coerce(inner[0], value, where)
        for option in inner:  # e.g. ``list[str] | str``: the first that fits, in the order written
            try:
                return coerce(option, value, where)
            except RecipeError:
                continue
        raise RecipeError(f"expected {' or '.join(_type_name(a) for a in inner)}, got {value!r}", key=where)
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise RecipeError(f"expected a list, got {value!r}", key=where)
        items = [coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
        return tuple(items) if origin is tuple else items
    if tp is float:
        if isinstance(value, bool):
            raise RecipeError(f"expected float, got {value!r}", key=where)
        try:
            out = float(value) if isinstance(value, (int, float, str)) else math.nan
        except ValueError:
            out = math.nan
        if math.isnan(out) or math.isinf(out):
            raise RecipeError(f"expected float, got {value!r}", key=where)
        return out
    if tp in (int, str, bool) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise RecipeError(f"expected {tp.__name__}, got {value!r}", key=where)
    return value


# -- the loader ---------------------------------------------------------------------------------------------------
def load(cls: type[T], source: str | Path | Mapping[str, Any], overrides: Overrides = None, *,
         prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
         check: Callable[[T], None] | None = None) -> T:
    """Read a recipe of kind ``cls``: ``source`` is a YAML file or an already-read mapping; ``overrides`` are set
    by dotted path; ``prepare`` may rewrite the mapping before it is typed (a preset, a language group); ``check``
    refuses impossible values of the typed recipe. Every RecipeError raised on the way names the file."""
    file = None if isinstance(source, Mapping) else Path(source)
    try:
        data = read_yaml(file) if file is not None else source
        data = apply_overrides(data, overrides)
        if prepare is not None:
            data = prepare(data)
        recipe = build_dataclass(cls, data)
        if check is not None:
            check(recipe)
        return recipe
    except RecipeError as e:
        if file is None:
            raise
        raise e.in_file(file) from None
