"""The import rule and module size, checked on the source (the layout is part of the design)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"bactrian": {"pipelines", "eval_studio", "app"}, "pipelines": {"eval_studio", "app"}, "eval_studio": {"pipelines", "app"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_imports_point_inward_only():
    bad = []
    for pkg, forbidden in FORBIDDEN.items():
        for f in (ROOT / pkg).rglob("*.py"):
            hits = _imports(f) & forbidden
            if hits:
                bad.append(f"{f.relative_to(ROOT)} imports {sorted(hits)}")
    assert not bad, "\n".join(bad)


# Inside eval_studio the rooms run store -> analysis -> ui: the store fills the battle table (eval_studio/battle_table.py,
# the contract both sides speak), analysis reads it, the UI and the CLI show it. No arrow runs back up.
ROOMS_BELOW = {"eval_studio.store": ("eval_studio.analysis", "eval_studio.ui", "eval_studio.cli", "eval_studio.protocol"),
               "eval_studio.battle_table": ("eval_studio.store", "eval_studio.analysis", "eval_studio.ui", "eval_studio.cli"),
               "eval_studio.analysis": ("eval_studio.ui", "eval_studio.cli", "eval_studio.protocol")}


def _full_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_eval_studio_rooms_point_down_only():
    bad = []
    for room, above in ROOMS_BELOW.items():
        target = ROOT / room.replace(".", "/")
        files = [target.with_suffix(".py")] if target.with_suffix(".py").is_file() else list(target.rglob("*.py"))
        assert files, room
        for f in files:
            hits = sorted(m for m in _full_imports(f) if any(m == a or m.startswith(a + ".") for a in above))
            if hits:
                bad.append(f"{f.relative_to(ROOT)} ({room}) imports {hits}")
    assert not bad, "\n".join(bad)


def test_no_module_is_huge():
    big = []
    for pkg in ("bactrian", "pipelines", "eval_studio"):
        for f in (ROOT / pkg).rglob("*.py"):
            n = len(f.read_text("utf-8").splitlines())
            if n > 550:
                big.append(f"{f.relative_to(ROOT)}: {n} lines")
    assert not big, "\n".join(big)


def _path_escapes(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a module builds a path above its own package folder: ``.parent.parent``, ``.parents[1]`` (or any
    ``parents[...]`` but ``[0]``), ``os.path.dirname`` twice, or a ``..`` path part (in ``/``, ``Path(...)``,
    ``joinpath`` or ``os.path.join``). Installed packages have no repository around them: use package data."""
    hits: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "parent" and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "parent":
            hits.append((node.lineno, ".parent.parent"))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents" \
                and not (isinstance(node.slice, ast.Constant) and node.slice.value == 0):
            hits.append((node.lineno, "parents[...]"))
        elif isinstance(node, ast.Call) and _call_name(node) == "dirname" and node.args \
                and isinstance(node.args[0], ast.Call) and _call_name(node.args[0]) == "dirname":
            hits.append((node.lineno, "dirname(dirname(...))"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and (_is_up(node.left) or _is_up(node.right)):
            hits.append((node.lineno, "/ '..'"))
        elif isinstance(node, ast.Call) and _call_name(node) in ("Path", "PurePath", "joinpath", "join") \
                and any(_is_up(a) for a in node.args):
            hits.append((node.lineno, f"{_call_name(node)}(..., '..')"))
    return hits


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None


def _is_up(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.replace("\\", "/").split("/")[0] == ".."


def test_no_package_module_builds_a_path_out_of_its_package():
    """bactrian/, pipelines/ and eval_studio/ find their files as package data (importlib.resources), so a
    non-editable install works (tests/test_install.py); app.py, bench/ and tests/ may use the repository."""
    bad = []
    for pkg in ("bactrian", "pipelines", "eval_studio"):
        for f in (ROOT / pkg).rglob("*.py"):
            for line, what in _path_escapes(ast.parse(f.read_text("utf-8"))):
                bad.append(f"{f.relative_to(ROOT)}:{line}: {what}")
    assert not bad, "\n".join(bad)


def test_the_path_check_sees_the_usual_ways_out():
    code = """
from pathlib import Path
import os
a = Path(__file__).resolve().parent.parent / "assets"
b = Path(__file__).parents[1]
c = os.path.dirname(os.path.dirname(__file__))
d = Path(__file__).parent / ".." / "bench"
e = os.path.join(os.path.dirname(__file__), "../assets")
ok = Path(__file__).parent / "migrations"
ok2 = Path(__file__).parents[0]
"""
    assert sorted({line for line, _ in _path_escapes(ast.parse(code))}) == [4, 5, 6, 7, 8]
