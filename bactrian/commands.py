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
                   help="CPU threads (default: llama.cpp all cores, torch its own choice; 1 avoids thread-barrier "
                        "stalls on a busy small machine)")
    p.add_argument("--engine", default="auto", choices=("auto", "torch", "llamacpp"),
                   help="auto: llama.cpp for an embedded base on the CPU (the fast path), else torch; torch forces "
                        "transformers + peft (default: %(default)s)")
    _placement_args(p)


def _placement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="auto (CUDA, else Apple mps, else CPU), cpu, cuda, cuda:N or mps (default: %(default)s)")
    p.add_argument("--dtype", default="auto",
                   help="auto (bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU/mps), "
                        "float32, bfloat16 or float16 (default: %(default)s)")


def _gen_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--repetition-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=None)


def _fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def register_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="chat with a base model and an optional adapter")
    _engine_args(p)
    _gen_args(p)
    p.add_argument("--url", default=None, metavar="BASE_URL",
                   help="chat with a model on an OpenAI-compatible server (vLLM, bactrian serve) instead of loading one")
    p.add_argument("--api-key-env", default=None, help="with --url: the variable that holds the server's key")
    p.add_argument("--adapter", default=None, help="adapter name (default: the bare base)")
    p.add_argument("message", nargs="?", help="one-shot message; omit for an interactive session")
    p.set_defaults(func=run_chat)


def _open_service(args: argparse.Namespace, **limits: int):
    """The generation service the command runs on: a remote server (``--url``) or the local model."""
    if getattr(args, "url", None):
        from .remote import RemoteService

        return RemoteService(args.url, api_key_env=args.api_key_env)
    from .llamacpp import open_local_service

    return open_local_service(args.engine, args.base, args.adapters_dir, template=args.template,
                              max_loaded=args.max_adapters, adapters=args.load_adapter, device=args.device,
                              dtype=args.dtype, threads=args.threads, **limits)


def run_chat(args: argparse.Namespace) -> int:
    from .client import EndpointError
    from .generation import GenerationParams
    from .models import ModelError
    from .service import Busy, GenRequest

    if args.message is not None and not args.message.strip():
        return _fail("the message is empty")
    try:
        params = GenerationParams(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
            top_k=args.top_k, repetition_penalty=args.repetition_penalty, seed=args.seed,
        ).validate()
        service = _open_service(args)
        model = args.adapter or service.base_name
        names = [v.name for v in service.variants()]
        if model not in names:
            return _fail(f"unknown adapter {model!r}; known: {', '.join(names)}")
    except (ValueError, ModelError, EndpointError) as e:  # AdapterError, InputError, DeviceError are ValueErrors
        return _fail(str(e))

    def answer(messages: list[dict]) -> str:
        text = ""
        with service.submit(GenRequest(model, messages, params=params)) as stream:
            for ev in stream:
                text += ev.delta
                print(ev.delta, end="", flush=True)
        print()
        return text

    try:
        if args.message is not None:
            answer([{"role": "user", "content": args.message}])
            return 0
        history: list[dict] = []
        print(f"chatting with {model} ({service.describe()}); empty line or Ctrl-D quits, /reset clears")
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
            except (ValueError, EndpointError, Busy) as e:
                history.pop()
                print(f"error: {e}", file=sys.stderr)
    except (ValueError, EndpointError, Busy) as e:
        return _fail(str(e))
    finally:
        service.close()


def register_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server (base + every adapter as a model id)")
    _engine_args(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-rows", type=int, default=16, help="rows decoded together at most (default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests waiting before new ones get 429 busy (default: %(default)s)")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .models import ModelError
    from .server import create_app

    try:
        service = _open_service(args, max_rows=args.max_rows, max_queue=args.max_queue)
    except (ModelError, ValueError) as e:  # AdapterError and DeviceError are ValueErrors
        return _fail(str(e))
    print(f"serving {', '.join(v.name for v in service.variants())} ({service.describe()}) "
          f"on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list base models and adapters")
    p.add_argument("--base", default=DEFAULT_BASE, help="list adapters for this base (default: %(default)s)")
    p.add_argument("--adapters-dir", action="append", default=[])
    p.add_argument("--json", action="store_true")
    p.add_argument("--prepare", action="append", default=[], metavar="NAME", help="build the cache of an embedded base now (repeatable)")
    _placement_args(p)  # show what these would resolve to on this machine
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from .adapters import default_search_dirs, discover, matches_base
    from .devices import available_devices, resolve_placement
    from .models import ModelError, get_spec, list_bases, materialize

    try:
        placement = resolve_placement(args.device, args.dtype)  # DeviceError is a ModelError
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
    out = {"bases": list_bases(), "adapters": adapters, "problems": problems,
           "placement": {**placement.as_dict(), "available_devices": available_devices()}}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    print(f"Placement: {placement.summary()}  (available: {', '.join(out['placement']['available_devices'])})")
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
