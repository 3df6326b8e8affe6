"""lm-eval's HFLM, projecting onto the vocabulary only where a continuation is scored.

HFLM asks the model for logits at every input position and log-softmaxes all of them, then keeps the few
positions of the continuation. With Gemma's 262K-token vocabulary the LM head is ~60% of the weights, so most of
the time went into logits that were thrown away. This class passes ``logits_to_keep`` (transformers' own
argument, the one ``generate`` uses) so the model projects only the trailing positions that the batch needs;
lm-eval's own slicing (``inplen + (len(logits) - padding_len_inp)``) already handles the shorter tensor. The
scored logits are the same numbers: the transformer runs over the same inputs and each kept position is
projected with the same weights. Everything else (batching, order, caching, metrics) is lm-eval's.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from lm_eval.models.huggingface import HFLM


def _accepts_logits_to_keep(model: Any) -> bool:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the base
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False


class ContinuationScoringHFLM(HFLM):
    """HFLM whose causal forward passes compute logits only for the trailing positions that get scored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._starts: dict[tuple[int, ...], int] | None = None  # model input -> first scored position
        self._trim = self.backend == "causal" and _accepts_logits_to_keep(self.model)

    def _loglikelihood_tokens(self, requests: list, disable_tqdm: bool = False, override_bs: int | None = None) -> list:
        if not self._trim:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        starts: dict[tuple[int, ...], int] = {}
        for _, context, continuation in requests:
            # The same input HFLM builds: left-truncated to the window, last token dropped.
            inp = tuple((context + continuation)[-(self.max_length + 1):][:-1])
            start = len(inp) - len(continuation)
            starts[inp] = min(start, starts.get(inp, start))
        self._starts = starts
        try:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        finally:
            self._starts = None

    def _keep(self, inps: torch.Tensor) -> int:
        """How many trailing positions cover every row's continuation; 0 (all) when a row is not recognised."""
        width = inps.shape[1]
        first = width
        for row in inps.tolist():
            # HFLM right-pads with token 0. A real input may itself end in 0s, so try every length of the
            # trailing run of zeros and take the earliest start among the inputs that match.
            end = len(row)
            while end > 0 and row[end - 1] == 0:
                end -= 1
            found = [self._starts[k] for n in range(end, len(row) + 1) if (k := tuple(row[:n])) in self._starts]
            if not found:
                return 0
            first = min(first, min(found))
        return width - max(first, 0)

    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self._starts is None or attn_mask is not None or labels is not None:
            return super()._model_call(inps, attn_mask=attn_mask, labels=labels)
        keep = self._keep(inps)
        with (
            torch.no_grad(),
            torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                           enabled=self.mixed_precision_dtype is not None),
        ):
            return self.model(inps, logits_to_keep=keep).logits
