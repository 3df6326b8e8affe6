"""The CPU fast path: the embedded GGUF bases decoded by llama.cpp, behind the same generation service.

``LlamaCppEngine`` offers the model-math half of ``bactrian.engine.Engine`` (prefill, decode, join, keep; the
registry, prompts, length checks and token rules are the Engine's own), so ``LlamaCppService`` is the
generation service's worker unchanged: iteration-level batching, caps, ``Busy``, cancellation, per-row
sampling (``sample_next`` on llama.cpp's logits, greedy an exact argmax), stop/ban rules (``TokenCodec``) and
detokenization (``StopChecker``) with the base's Hugging Face tokenizer. Prompts are tokenized by that tokenizer
too, so both engines feed the model the same ids.

llama.cpp reads the Q4_K_M file as it is (about a quarter of the bytes per token of the dequantized float32
model); peft adapters are converted to GGUF LoRA once (``bactrian.llamacpp_lora``); the native library is loaded
by ``bactrian.llamacpp_lib``; lanes and model math are in ``bactrian.llamacpp_engine``.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable

import torch

from .engine import Engine
from .llamacpp_engine import LlamaCppEngine, cpu_count
from .llamacpp_lib import unavailable_reason
from .models import ModelError, get_spec
from .service import LocalService

__all__ = ["ENGINES", "LlamaCppEngine", "LlamaCppService", "choose_engine", "cpu_count", "open_local_service"]

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "llamacpp")


def choose_engine(choice: str, base: str, device: str = "auto", dtype: str = "auto") -> str:
    """``torch`` or ``llamacpp`` for ``--engine``/``BACTRIAN_ENGINE`` (``auto``: llama.cpp for an embedded GGUF base
    on the CPU when the library loads here, with no explicit torch dtype). A forced choice that cannot work raises
    ``ModelError`` naming why."""
    if choice not in ENGINES:
        raise ModelError(f"unknown engine {choice!r}; choose one of {', '.join(ENGINES)}")
    if choice == "torch":
        return "torch"
    from .devices import resolve_device

    spec = get_spec(base)
    on_cpu = resolve_device(device).type == "cpu"
    reason = None
    if spec.kind != "pypi-gguf":
        reason = f"{base} is not an embedded GGUF base (llama.cpp serves {', '.join(_embedded_names())})"
    elif not on_cpu:
        reason = f"device {device!r} is not the CPU (llama.cpp is the CPU path; GPUs use torch)"
    elif choice == "auto" and dtype not in ("auto", "float32"):
        reason = f"dtype {dtype!r} was asked for, a torch setting"
    else:
        reason = unavailable_reason()
    if reason is None:
        return "llamacpp"
    if choice == "llamacpp":
        raise ModelError(f"the llama.cpp engine cannot serve here: {reason}; use --engine torch")
    log.info("engine auto: torch (%s)", reason)
    return "torch"


def _embedded_names() -> list[str]:
    from .models import embedded_specs

    return list(embedded_specs())


class LlamaCppService(LocalService):
    """The generation service over ``LlamaCppEngine``: the same worker, batching and rules as the torch path."""

    engine: LlamaCppEngine

    def __init__(self, engine: LlamaCppEngine, **limits: int):
        # The worker only samples with torch (262K-wide rows). torch's own OpenMP pool would spin on the cores
        # llama.cpp's threads decode on (measured: 1 llama.cpp thread 14 -> 24 tok/s on a busy 2-core machine),
        # so the worker samples single-threaded. torch.set_num_threads also sets the default of threads started
        # later, so the caller's value is put back once the worker has taken its own.
        self._caller_threads = torch.get_num_threads()
        self._sampling_ready = threading.Event()
        super().__init__(engine, **limits)
        self._sampling_ready.wait(timeout=30)
        torch.set_num_threads(self._caller_threads)

    def _run(self) -> None:
        torch.set_num_threads(1)
        self._sampling_ready.set()
        super()._run()

    def close(self) -> None:
        super().close()
        if not self._thread.is_alive():  # never free the model under a step still running
            self.engine.close()


def open_local_service(engine: str, base: str, adapter_dirs: Iterable[str] = (), *, template: str | None = None,
                       max_loaded: int = 16, include_default_dirs: bool = True, adapters: Iterable[str] = (),
                       device: str = "auto", dtype: str = "auto", threads: int | None = None,
                       **limits: int) -> LocalService:
    """The in-process generation service for ``--engine``/``BACTRIAN_ENGINE``: llama.cpp or the torch engine."""
    if choose_engine(engine, base, device, dtype) == "llamacpp":
        eng = LlamaCppEngine.load(base, adapter_dirs, template, max_loaded, include_default_dirs, adapters, threads)
        return LlamaCppService(eng, **limits)
    if threads:
        torch.set_num_threads(threads)
    return LocalService(Engine.load(base, adapter_dirs, template, max_loaded, include_default_dirs, adapters,
                                    device=device, dtype=dtype), **limits)
