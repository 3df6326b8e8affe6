"""Tokenizing and detokenizing for one base model: prompt ids, stop ids, never-sampled ids, streaming text.

Only the generation service's worker thread encodes (fast tokenizers raise "Already borrowed" when two
threads change their padding state at once), so nothing here needs a lock. Padding is done by the engine on
id lists, never by the tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch

from .generation import StopChecker


class TokenCodec:
    def __init__(self, tokenizer: Any, *, stop_token_ids: tuple[int, ...] = (), eos_sources: tuple[Any, ...] = (),
                 suppress_prefix: str | None = None, template_stops: tuple[str, ...] = (), device: torch.device | str = "cpu"):
        self.tokenizer = tokenizer
        self.template_stops = tuple(template_stops)
        self.stop_ids = set(stop_token_ids)
        for src in (tokenizer.eos_token_id, *eos_sources):
            if isinstance(src, int):
                self.stop_ids.add(src)
            elif isinstance(src, (list, tuple)):
                self.stop_ids.update(int(i) for i in src)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        banned = set()
        if tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in self.stop_ids:
            banned.add(tokenizer.pad_token_id)
        if suppress_prefix:  # Gemma after LoRA may emit <unusedNNNN> instead of <end_of_turn>
            banned.update(i for t, i in tokenizer.get_vocab().items() if t.startswith(suppress_prefix))
        self.banned_ids = sorted(banned)
        # index tensors built once on the model's device, not a ~6K-id list per row and step
        self.banned = torch.tensor(self.banned_ids, dtype=torch.long, device=device)
        self.banned_and_stops = torch.tensor(sorted(banned | self.stop_ids), dtype=torch.long, device=device)

    def encode(self, prompt: str) -> list[int]:
        """Prompt ids; BOS is added unless the prompt (a rendered chat template) already starts with it."""
        bos = self.tokenizer.bos_token
        add_special = not (bos and prompt.startswith(bos))
        return list(self.tokenizer(prompt, add_special_tokens=add_special)["input_ids"])

    def detokenizer(self, extra_stops: list[str]) -> StopChecker:
        """Incremental text for one row, cut at the template's and the request's stop strings."""
        return StopChecker(self.tokenizer, list(self.template_stops) + list(extra_stops))

    def banned_for(self, allow_stop: bool) -> torch.Tensor:
        return self.banned if allow_stop else self.banned_and_stops
