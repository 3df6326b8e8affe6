"""A faster CPU path for the large linear layers of decoding (Gemma's 262K-word LM head, BLOOM-7B's layers).

Decoding multiplies a few rows (one per running request) by a large weight. ``F.linear(x, W)`` asks MKL for
``x @ W.T``; for 2-16 rows MKL packs the whole weight first, so on an AMD EPYC (2 cores) the LM head took
136 ms for 2 rows against 62 ms for 1: a batch of two cost as much as two requests, which is why mixed
batching gained nothing there (issue 14). Asking for ``W @ x.T`` instead (the same numbers, transposed) reads
the weight once with every row: 21 ms for 2 rows, 48 ms for 8 on 2 threads. One row is the slowest case of
all (MKL's matrix-vector kernel, 62 ms, one core), so a single row is padded to two. Measured by
``bench/cpu_linear_bench.py``.

Weights that fit in the CPU caches gain only with several threads: ``F.linear`` runs a small product on one
thread however many there are, the transposed product is split across them (640 x 2048, 2 rows: 174 us vs
127 us on 2 threads; on 1 thread ``F.linear`` is faster, so it keeps it). Training (gradients enabled) and other
devices are untouched.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

MIN_WEIGHT_BYTES = 16 * 1024 * 1024  # from here on the weight streams from memory: always worth it
MIN_THREADED_BYTES = 256 * 1024  # cache-resident weights: worth it with 2+ threads and 2+ rows (not LoRA's r x d)
MAX_ROWS = 32  # beyond this many rows the GEMM is compute-bound and MKL's own blocking wins


def skinny_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` for a few rows on the CPU, computed as ``(W @ x.T).T`` where that is faster."""
    rows = x.numel() // x.shape[-1]
    if rows > MAX_ROWS or torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32:
        return F.linear(x, weight, bias)
    large = weight.numel() * weight.element_size() >= MIN_WEIGHT_BYTES
    if not large and (rows < 2 or torch.get_num_threads() < 2):
        return F.linear(x, weight, bias)
    flat = x.reshape(rows, x.shape[-1])
    if rows == 1:
        flat = torch.cat([flat, flat])  # two rows take MKL's matrix-matrix path: about 3x faster than one
    out = torch.mm(weight, flat.t()).t()[:rows]
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def speed_up_large_linears(model: Any) -> list[str]:
    """Route the ``nn.Linear`` layers of a CPU float32 model that can gain through ``skinny_linear`` (which
    decides per call); returns their names."""
    patched = []
    for name, module in model.named_modules():
        if type(module) is not torch.nn.Linear or module.weight.device.type != "cpu":
            continue
        if module.weight.dtype != torch.float32 or module.weight.numel() * 4 < MIN_THREADED_BYTES:
            continue
        module.forward = _forward_of(module)
        patched.append(name)
    return patched


def _forward_of(module: torch.nn.Linear):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return skinny_linear(x, module.weight, module.bias)  # looked up per call: tied or swapped weights stay right

    return forward
