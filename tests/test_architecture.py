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


def test_no_module_is_huge():
    big = []
    for pkg in ("bactrian", "pipelines", "eval_studio"):
        for f in (ROOT / pkg).rglob("*.py"):
            n = len(f.read_text("utf-8").splitlines())
            if n > 550:
                big.append(f"{f.relative_to(ROOT)}: {n} lines")
    assert not big, "\n".join(big)
