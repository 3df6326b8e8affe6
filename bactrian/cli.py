"""The ``bactrian`` command: a thin dispatcher over subcommands registered as entry points.

Subcommands live with their code (``bactrian.commands``, ``pipelines.*.cli``, ``eval_studio.cli``) and are
found through the ``bactrian.commands`` entry-point group, so this library never imports those packages.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from importlib.metadata import entry_points

DIST = "bactrian-studio"  # the distribution whose extras bring each part's dependencies (pyproject.toml)
EXTRAS = ("studio", "data", "bench")  # a part named like an extra needs that extra


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """All subcommands, or only ``command``'s: importing every part (pandas, openai, torch) costs seconds."""
    parser = argparse.ArgumentParser(prog="bactrian", description="Bactrian-X Studio: multilingual instruction-tuned models")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    eps = sorted(entry_points(group="bactrian.commands"), key=lambda e: e.name)
    if any(ep.name == command for ep in eps):
        eps = [ep for ep in eps if ep.name == command]
    for ep in eps:
        try:
            ep.load()(sub)
        except ImportError as e:  # a part whose optional dependencies are missing stays listed, with why
            why = missing_extra(ep.name, e)
            p = sub.choices.get(ep.name)
            if p is None:
                p = sub.add_parser(ep.name, help=f"(unavailable: {why})")
                p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # whatever follows: same answer
            p.set_defaults(func=lambda args, why=why, name=ep.name: _unavailable(name, why))
    return parser


def missing_extra(command: str, err: ImportError) -> str:
    """Why a subcommand cannot load, naming the extra that brings the missing module (from our package's metadata)."""
    from importlib.metadata import PackageNotFoundError, requires

    module = (getattr(err, "name", None) or "").split(".")[0]
    extras: list[str] = []
    try:
        for req in requires(DIST) or []:
            name = re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
            if extra and module and _norm(name) == _norm(module) and extra.group(1) not in extras:
                extras.append(extra.group(1))
    except PackageNotFoundError:
        pass
    extra = command if command in extras or (not extras and command in EXTRAS) else (extras[0] if extras else None)
    if extra is None:
        return f"{err}"
    return f"needs the '{extra}' extra: pip install '{DIST}[{extra}]' ({err})"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _unavailable(name: str, why: str) -> int:
    print(f"error: `bactrian {name}` {why if why.startswith('needs') else 'is unavailable: ' + why}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ImportError as e:  # a part that imports its optional dependencies late
        return _unavailable(args.command, missing_extra(args.command, e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
