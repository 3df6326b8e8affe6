"""Generation parameters, per-row sampling and incremental detokenization (model-free helpers)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

LIMITS = {"max_new_tokens": (1, 8192), "temperature": (0.0, 5.0), "top_p": (0.0, 1.0), "top_k": (0, 100000), "repetition_penalty": (0.5, 5.0), "min_tokens": (0, 8192)}


@dataclass
class GenerationParams:
    """Sampling settings of one request. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.0  # neutral, as OpenAI and vLLM; the chat UI and CLI ask for 1.1
    seed: int | None = None
    min_tokens: int = 0  # vLLM extra: do not stop before this many tokens
    ignore_eos: bool = False  # vLLM extra: run to max_new_tokens
    stop: list[str] = field(default_factory=list)

    def validate(self) -> "GenerationParams":
        """Raise ``ValueError`` naming the first bad parameter."""
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
        if self.top_p == 0:
            raise ValueError("top_p must be greater than 0")
        if self.min_tokens > self.max_new_tokens:
            raise ValueError(f"min_tokens ({self.min_tokens}) exceeds max_new_tokens ({self.max_new_tokens})")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.stop, list) or not all(isinstance(s, str) and s for s in self.stop) or len(self.stop) > 8:
            raise ValueError("stop must be a list of at most 8 non-empty strings")
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GenerationParams":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown generation parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data).validate()


def sample_next(
    logits: torch.Tensor,
    params: list[GenerationParams],
    history: list[list[int]],
    generators: list[torch.Generator | None],
    banned: list[list[int] | torch.Tensor],
) -> list[int]:
    """Pick one token per row, each row with its own parameters (rows of a mixed batch differ).

    Works on the logits' device; ``banned`` tensors and ``generators`` must live there too.
    """
    logits = logits.float()
    out: list[int] = []
    for i, p in enumerate(params):
        row = logits[i].clone()
        if p.repetition_penalty != 1.0 and history[i]:
            idx = torch.tensor(sorted(set(history[i])), dtype=torch.long, device=row.device)
            vals = row[idx]
            row[idx] = torch.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
        if len(banned[i]):
            row[banned[i]] = -float("inf")
        if p.temperature == 0:
            out.append(int(torch.argmax(row)))
            continue
        row = row / p.temperature
        # top-k first: top-p then sorts k values instead of the whole (262K for Gemma) vocabulary
        k = p.top_k if p.top_k and p.top_k < row.numel() else row.numel()
        vals, idx = torch.topk(row, k)
        if p.top_p < 1.0:
            probs = torch.softmax(vals, -1)
            drop = probs.cumsum(-1) - probs > p.top_p  # keep the token that crosses top_p
            vals = vals.masked_fill(drop, -float("inf"))
        choice = torch.multinomial(torch.softmax(vals, -1), 1, generator=generators[i])
        out.append(int(idx[choice]))
    return out


class StopChecker:
    """Incremental detokenization with stop strings: emits only text that can no longer be a stop prefix."""

    def __init__(self, tokenizer: Any, stops: list[str]):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.ids: list[int] = []
        self.emitted = 0
        self.text = ""
        self.stopped = False

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        return self._advance(final=False)

    def finish(self) -> str:
        return self._advance(final=True)

    def _advance(self, final: bool) -> str:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        for s in self.stops:
            at = text.find(s)
            if at != -1:
                text = text[:at]
                self.stopped = True
                final = True
        if not final:
            if text.endswith("\ufffd"):  # a multi-byte character is still incomplete
                return ""
            hold = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            text = text[: len(text) - hold]
        delta = text[self.emitted :] if len(text) > self.emitted else ""
        self.emitted = max(self.emitted, len(text))
        self.text += delta
        return delta
