"""Test helpers: tiny LoRA training and a live server on 127.0.0.1 (real parts, no mocks)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_tiny_adapter(base_dir: Path, out_dir: Path, texts: list[str], steps: int = 30, seed: int = 0, name: str | None = None) -> Path:
    """A few real optimisation steps of LoRA on ``texts`` (so two adapters learn different things)."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model

    from bactrian.models import load_base

    if (out_dir / "adapter_config.json").exists():
        return out_dir
    base = load_base(str(base_dir))
    torch.manual_seed(seed)
    model = get_peft_model(base.model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0))
    model.train()
    tok = base.tokenizer
    tok.padding_side = "right"
    batch = tok(texts, return_tensors="pt", padding=True).to(base.device)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    # 1e-2: at 5e-2 the loss stalled near 1.7 on some CPUs (AVX-512 EPYC) and alpha and beta both answered "\n"
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out_dir)
    manifest = {"name": name or out_dir.name, "base_model": str(Path(base_dir).resolve()), "languages": [], "description": "test adapter"}
    (out_dir / "bactrian_adapter.json").write_text(json.dumps(manifest), "utf-8")
    return out_dir


class LiveServer:
    """uvicorn serving an app in a thread on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class LoopbackHTTPServer:
    """A stdlib HTTP server on a free 127.0.0.1 port, in a thread: the base of the tests' fake upstream APIs."""

    def start_server(self, handler: type) -> None:
        from http.server import ThreadingHTTPServer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
