"""Where a model runs and in which dtype, chosen once (``--device`` / ``--dtype``, studio settings).

``auto`` rules:
- device: CUDA when a GPU is visible (the current CUDA device, so ``accelerate``/``torchrun`` ranks keep their
  own GPU), else Apple ``mps``, else the CPU;
- dtype: on CUDA bfloat16 where the GPU does it natively (Ampere and newer, ROCm), float16 on older GPUs;
  float32 on the CPU and on ``mps``.

Explicit choices are checked before anything loads: an unknown device, a device this machine does not have, or
a dtype the device cannot do raise :class:`DeviceError` naming what is available. float16 on the CPU is refused:
most CPUs have no half-precision matmul kernels, so it runs 10-30x slower than float32 (measured 30x on an AMD
EPYC with torch 2.13) while saving no more memory than bfloat16, which CPUs do run well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import ModelError

DEVICE_TYPES = ("cpu", "cuda", "mps")
DTYPE_ALIASES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")  # the spellings shown in --help (aliases: fp32 bf16 fp16)


class DeviceError(ValueError, ModelError):
    """A device or dtype cannot be used here; the message says what is available.

    Also a ``ModelError``, so every command that reports "this model cannot load" reports this cleanly too.
    """


def available_devices() -> list[str]:
    """The device names this machine offers, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        out.append("mps")
    return out


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: Any = "auto") -> "torch.device":  # noqa: F821
    """``auto`` or an explicit ``cpu``/``cuda``/``cuda:N``/``mps``, checked against this machine."""
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    avail = ", ".join(available_devices())
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in DEVICE_TYPES:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps (available here: {avail})")
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None and torch.version.hip is None else "no GPU is visible"
            raise DeviceError(f"device {name!r} requested but CUDA is not available ({why}, torch {torch.__version__}); "
                              f"available here: {avail}")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) visible; available here: {avail}")
        return torch.device("cuda", index)
    if not _mps_available():  # mps
        raise DeviceError(f"device {name!r} requested but Apple MPS is not available; available here: {avail}")
    return torch.device("mps")


def dtype_name(dtype: "torch.dtype") -> str:  # noqa: F821
    return str(dtype).removeprefix("torch.")


def _cuda_native_bf16(device: "torch.device") -> bool:  # noqa: F821
    import torch

    if torch.version.hip:
        return True
    with torch.cuda.device(device):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # older torch: no emulation flag, answers for native support
            return bool(torch.cuda.is_bf16_supported())


def _mps_can(dtype: "torch.dtype") -> bool:  # noqa: F821
    import torch

    try:
        (torch.ones(2, 2, dtype=dtype, device="mps") @ torch.ones(2, 2, dtype=dtype, device="mps")).cpu()
        return True
    except Exception:  # noqa: BLE001 - an older macOS without bfloat16 on MPS, for one
        return False


def resolve_dtype(name: Any = "auto", device: Any = None) -> "torch.dtype":  # noqa: F821
    """``auto`` or an explicit dtype (float32/fp32, bfloat16/bf16, float16/fp16), checked against ``device``.

    ``device`` is a ``torch.device`` or a name (``None``: ``auto``)."""
    import torch

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if isinstance(name, torch.dtype):
        name = dtype_name(name)
    text = (name or "auto").strip().lower()
    if text == "auto":
        if dev.type == "cuda":
            return torch.bfloat16 if _cuda_native_bf16(dev) else torch.float16
        return torch.float32
    if text not in DTYPE_ALIASES:
        raise DeviceError(f"unknown dtype {name!r}: use auto, float32 (fp32), bfloat16 (bf16) or float16 (fp16)")
    dtype = getattr(torch, DTYPE_ALIASES[text])
    if dev.type == "cpu" and dtype == torch.float16:
        raise DeviceError("dtype float16 on cpu is refused: CPUs have no fast half-precision matmul (10-30x slower "
                          "than float32); use bfloat16 (same memory) or float32")
    if dev.type == "cuda" and dtype == torch.bfloat16 and not _cuda_native_bf16(dev):
        major, minor = torch.cuda.get_device_capability(dev)
        raise DeviceError(f"dtype bfloat16 on {dev} ({torch.cuda.get_device_name(dev)}, compute capability "
                          f"{major}.{minor}) is not supported natively (needs 8.0+); use float16 or float32")
    if dev.type == "mps" and dtype != torch.float32 and not _mps_can(dtype):
        raise DeviceError(f"dtype {dtype_name(dtype)} does not run on mps with this macOS/torch; use float32")
    return dtype


@dataclass(frozen=True)
class Placement:
    """The device and dtype a model is loaded with, and what was asked for (``auto`` or an explicit name)."""

    device: Any  # torch.device
    dtype: Any  # torch.dtype
    requested_device: str = "auto"
    requested_dtype: str = "auto"

    def describe(self) -> str:
        """``"cuda:0 bfloat16"``."""
        return f"{self.device} {dtype_name(self.dtype)}"

    def summary(self) -> str:
        """``"device: cpu (auto), dtype: float32 (auto)"``: what was chosen and whether it was chosen for you."""
        dev = f"device: {self.device}" + (" (auto)" if self.requested_device == "auto" else "")
        dt = f"dtype: {dtype_name(self.dtype)}" + (" (auto)" if self.requested_dtype == "auto" else "")
        return f"{dev}, {dt}"

    def as_dict(self) -> dict:
        return {"device": str(self.device), "dtype": dtype_name(self.dtype),
                "requested_device": self.requested_device, "requested_dtype": self.requested_dtype}


def resolve_placement(device: Any = "auto", dtype: Any = "auto") -> Placement:
    """Both choices at once; raises :class:`DeviceError` before anything is loaded."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    req_dev = str(device if device is not None else "auto").strip().lower() or "auto"
    req_dt = "auto" if dtype is None else (dtype.strip().lower() or "auto") if isinstance(dtype, str) else dtype_name(dtype)
    return Placement(dev, dt, req_dev, req_dt)
