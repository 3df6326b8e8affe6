"""The library's own subcommands: ``bactrian chat``, ``bactrian serve``, ``bactrian models``."""

from __future__ import annotations

import argparse
import json
import sys

from .models import DEFAULT_BASE


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=DEFAULT_BASE, help="embedded name, local folder or Hub id (default: %(default)s)")
    p.add_argument("--adapters-dir", action="append", default=[], help="extra folder of adapters (repeatable)")
    p.add_argument("--load-adapter", action="append", default=[], metavar="PATH_OR_HUB_ID", help="one adapter folder or Hub id, e.g. MBZUAI/bactrian-x-bloom-7b1-lora (repeatable)")
    p.add_argument("--template", default=None, help="prompt template: bactrian-x, alpaca or chat (default: the base's)")
    p.add_argument("--max-adapters", type=int, default=16, help="adapters kept loaded at once (LRU beyond)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 avoids thread-barrier stalls on a busy small machine)")


def _gen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--repetition-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=None)


def _load_engine(args: argparse.Namespace):
    import torch

    from .engine import Engine

    if args.threads:
        torch.set_num_threads(args.threads)

    return Engine.load(args.base, args.adapters_dir, template=args.template, max_loaded=args.max_adapters, adapters=args.load_adapter)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def register_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with a base model and an optional adapter")
    _engine_args(p)
    _gen_args(p)
    p.add_argument("--adapter", default=None, help="adapter name (default: the bare base)")
    p.add_argument("message", nargs="?", help="one-shot message; omit for an interactive session")
    p.set_defaults(func=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    from .adapters import AdapterError
    from .engine import InputError
    from .generation import GenerationParams
    from .models import ModelError

    if args.message is not None and not args.message.strip():
        return _fail("the message is empty")
    try:
        params = GenerationParams(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
            top_k=args.top_k, repetition_penalty=args.repetition_penalty, seed=args.seed,
        ).validate()
        engine = _load_engine(args)
        engine.resolve_adapter(args.adapter)
    except (ValueError, ModelError, AdapterError) as e:
        return _fail(str(e))

    def answer(messages: list[dict]) -> str:
        text = ""
        for delta in engine.chat(messages, args.adapter, params):
            text += delta
            print(delta, end="", flush=True)
        print()
        return text

    try:
        if args.message is not None:
            answer([{"role": "user", "content": args.message}])
            return 0
        history: list[dict] = []
        print(f"chatting with {args.adapter or engine.base_name}; empty line or Ctrl-D quits, /reset clears")
        while True:
            try:
                line = input("> ")
            except EOFError:
                return 0
            if not line.strip():
                return 0
            if line.strip() == "/reset":
                history = []
                continue
            history.append({"role": "user", "content": line})
            try:
                history.append({"role": "assistant", "content": answer(history)})
            except (InputError, AdapterError) as e:
                history.pop()
                print(f"error: {e}", file=sys.stderr)
    except (InputError, AdapterError) as e:
        return _fail(str(e))


def register_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server (base + every adapter as a model id)")
    _engine_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=8, help="requests decoded together at most")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .models import ModelError
    from .server import create_app

    try:
        engine = _load_engine(args)
    except (ModelError, ValueError) as e:  # AdapterError is a ValueError
        return _fail(str(e))
    print(f"serving {', '.join(engine.variants())} on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(create_app(engine, max_batch=args.max_batch), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list base models and adapters")
    p.add_argument("--base", default=DEFAULT_BASE, help="list adapters for this base (default: %(default)s)")
    p.add_argument("--adapters-dir", action="append", default=[])
    p.add_argument("--json", action="store_true")
    p.add_argument("--prepare", action="append", default=[], metavar="NAME", help="build the cache of an embedded base now (repeatable)")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from .adapters import default_search_dirs, discover, matches_base
    from .models import ModelError, get_spec, list_bases, materialize

    try:
        for name in args.prepare:
            print(f"[bactrian] {name}: cache at {materialize(name)}", flush=True)
        if args.prepare:
            return 0
        spec = get_spec(args.base)
    except ModelError as e:
        return _fail(str(e))
    infos, problems = discover(list(args.adapters_dir) + default_search_dirs(spec.name))
    adapters = [
        {"name": i.name, "base_model": i.base_model, "languages": list(i.languages), "path": i.path,
         "description": i.description, "fits_base": matches_base(i, spec)}
        for i in infos
    ]
    out = {"bases": list_bases(), "adapters": adapters, "problems": problems}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    print("Base models:")
    for b in out["bases"]:
        state = "cached" if b["cached"] else ("installed" if b["installed"] else "not installed")
        print(f"  {b['name']:<24} {state:<14} {b['description']}")
    print(f"Adapters for {spec.name}:")
    for a in adapters:
        flag = "" if a["fits_base"] else f"  (other base: {a['base_model']})"
        print(f"  {a['name']:<24} {','.join(a['languages']) or '-':<12} {a['path']}{flag}")
    for p in problems:
        print(f"  problem: {p}")
    return 0
