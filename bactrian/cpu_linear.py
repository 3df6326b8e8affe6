"""A faster CPU path for the large linear layers of decoding (Gemma's 262K-word LM head, BLOOM-7B's layers).

Decoding multiplies a few rows (one per running request) by a large weight. ``F.linear(x, W)`` asks MKL for
``x @ W.T``; for 2-16 rows MKL packs the whole weight first, so on an AMD EPYC (2 cores) the LM head took
136 ms for 2 rows against 62 ms for 1: a batch of two cost as much as two requests, which is why mixed
batching gained nothing there (issue 14). Asking for ``W @ x.T`` instead (the same numbers, transposed) reads
the weight once with every row: 21 ms for 2 rows, 48 ms for 8 on 2 threads. One row is the slowest case of
all (MKL's matrix-vector kernel, 62 ms, one core), so a single row is padded to two. Measured by
``bench/cpu_linear_bench.py``.

Only weights larger than the CPU caches gain; small layers keep ``F.linear``. Training (gradients enabled)
and other devices are untouched.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

MIN_WEIGHT_BYTES = 16 * 1024 * 1024  # below this the weight is cache-resident and F.linear is as fast
MAX_ROWS = 32  # beyond this many rows the GEMM is compute-bound and MKL's own blocking wins


def skinny_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` for a few rows on the CPU, computed as ``(W @ x.T).T``."""
    rows = x.numel() // x.shape[-1]
    if rows > MAX_ROWS or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
        return F.linear(x, weight, bias)
    flat = x.reshape(rows, x.shape[-1])
    if rows == 1:
        flat = torch.cat([flat, flat])  # two rows take MKL's matrix-matrix path: about 3x faster than one
    out = torch.mm(weight, flat.t()).t()[:rows]
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def speed_up_large_linears(model: Any) -> list[str]:
    """Route every large ``nn.Linear`` of a CPU float32 model through ``skinny_linear``; returns their names."""
    patched = []
    for name, module in model.named_modules():
        if type(module) is not torch.nn.Linear or module.weight.device.type != "cpu":
            continue
        if module.weight.dtype != torch.float32 or module.weight.numel() * 4 < MIN_WEIGHT_BYTES:
            continue
        module.forward = _forward_of(module)
        patched.append(name)
    return patched


def _forward_of(module: torch.nn.Linear):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return skinny_linear(x, module.weight, module.bias)  # looked up per call: tied or swapped weights stay right

    return forward
