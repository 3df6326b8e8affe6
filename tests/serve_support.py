"""A real ``bactrian serve`` process on 127.0.0.1 (the stand-in for vLLM: the same OpenAI API), for remote-engine tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import free_port


class ServeProcess:
    """``python -m bactrian.cli serve --base BASE --adapters-dir DIR --port P`` as a subprocess; waits for ``/health``.

    ``$BACTRIAN_HOME`` points at an empty folder, so only the given adapters are served. ``pause()`` (SIGSTOP)
    freezes it mid-answer; ``kill()`` (SIGKILL) makes the kernel drop its connections, as a crashed server does.
    """

    def __init__(self, base: Path, adapters_dir: Path, workdir: Path, *extra: str, port: int | None = None):
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.args = [sys.executable, "-m", "bactrian.cli", "serve", "--base", str(base), "--adapters-dir", str(adapters_dir),
                     "--host", "127.0.0.1", "--port", str(self.port), *extra]
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / f"serve-{self.port}.log"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    def start(self, timeout: float = 90.0) -> "ServeProcess":
        home = self.workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "BACTRIAN_HOME": str(home), "PYTHONIOENCODING": "utf-8",
               "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=Path(__file__).resolve().parents[1])
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bactrian serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.root}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"bactrian serve did not answer /health within {timeout:.0f} s:\n{self.log_tail()}")

    def health(self) -> dict:
        return httpx.get(f"{self.root}/health", timeout=5).json()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL (also ends a stopped process)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text("utf-8", errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
