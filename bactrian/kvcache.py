"""Row surgery on transformers' ``DynamicCache`` for continuous batching: join two batches, drop rows, trim.

Every batch is kept right-aligned on one time axis: a row's tokens end at the last column and the columns
before its first token are padding (masked out by the attention mask). Two batches of different lengths are
joined by left-padding the shorter one with zeros; masked keys contribute exactly nothing to attention, so
each row computes what it would alone. Sliding-window layers keep only the last ``window - 1`` positions of
the shared axis, which are the same last positions for every right-aligned row.
"""

from __future__ import annotations

from typing import Any

import torch

try:  # the two layer kinds whose tensors we know how to re-shape
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer
except ImportError:  # pragma: no cover - older transformers: joining is simply not offered
    DynamicCache = DynamicLayer = DynamicSlidingWindowLayer = None  # type: ignore[assignment,misc]


def supports_joining(cache: Any) -> bool:
    """Whether rows can join and leave this cache (else the service runs each batch to its end)."""
    if DynamicCache is None or type(cache) is not DynamicCache or getattr(cache, "layers", None) is None:
        return False
    return all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers)


def _pad_left(t: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - t.shape[-2]
    if missing <= 0:
        return t
    pad = t.new_zeros(*t.shape[:-2], missing, t.shape[-1])
    return torch.cat([pad, t], dim=-2)


def join(a: Any, b: Any) -> Any:
    """A cache holding a's rows then b's rows (``a`` is changed in place and returned)."""
    for la, lb in zip(a.layers, b.layers):
        if not lb.is_initialized:
            continue
        if not la.is_initialized:  # cannot happen for caches that went through a forward pass; be safe
            raise ValueError("cannot join an empty cache layer")
        length = max(la.keys.shape[-2], lb.keys.shape[-2])
        la.keys = torch.cat([_pad_left(la.keys, length), _pad_left(lb.keys, length)], dim=0)
        la.values = torch.cat([_pad_left(la.values, length), _pad_left(lb.values, length)], dim=0)
        if isinstance(la, DynamicSlidingWindowLayer):
            la.cumulative_length = max(la.cumulative_length, lb.cumulative_length)
    return a


def select(cache: Any, rows: list[int]) -> Any:
    """Keep only ``rows`` (in that order), in place."""
    index = None
    for layer in cache.layers:
        if layer.is_initialized and layer.keys.numel():
            if index is None or index.device != layer.keys.device:
                index = torch.tensor(rows, dtype=torch.long, device=layer.keys.device)
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
    return cache


def trim_left(cache: Any, columns: int) -> Any:
    """Drop the first ``columns`` positions of the shared time axis (padding no remaining row needs)."""
    if columns <= 0:
        return cache
    for layer in cache.layers:
        if not layer.is_initialized:
            continue
        if isinstance(layer, DynamicSlidingWindowLayer):
            layer.cumulative_length -= columns
            keep = min(layer.cumulative_length, layer.keys.shape[-2])
        else:
            keep = layer.keys.shape[-2] - columns
        layer.keys = layer.keys[..., layer.keys.shape[-2] - keep:, :]
        layer.values = layer.values[..., layer.values.shape[-2] - keep:, :]
    return cache
