"""The ``bactrian`` command: a thin dispatcher over subcommands registered as entry points.

Subcommands live with their code (``bactrian.commands``, ``pipelines.*.cli``, ``eval_studio.cli``) and are
found through the ``bactrian.commands`` entry-point group, so this library never imports those packages.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points


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
            register = ep.load()
        except ImportError as e:  # a part whose optional dependencies are missing stays listed, with why
            p = sub.add_parser(ep.name, help=f"(unavailable: {e})")
            p.set_defaults(func=lambda args, err=e, name=ep.name: _unavailable(name, err))
            continue
        register(sub)
    return parser


def _unavailable(name: str, err: Exception) -> int:
    print(f"error: `bactrian {name}` is unavailable: {err}", file=sys.stderr)
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
