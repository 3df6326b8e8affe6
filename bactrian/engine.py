"""The engine: one base model and its adapters, and the model math of batched decoding.

Rows of one batch may use different adapters (peft mixed-batch inference) and different sampling
parameters. The engine only computes: prefill a group of new rows, run one decode step for a running batch,
join two batches, drop rows. Which rows run when is decided by ``bactrian.service``; prompts are built by
``bactrian.prompter`` and tokens handled by ``bactrian.tokens``.

Not thread-safe by design: the generation service's one worker thread is the only caller of the model math.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch

from . import kvcache
from .cpu_linear import speed_up_large_linears
from .adapters import BASE_ADAPTER, AdapterError, AdapterSet, default_search_dirs, discover
from .generation import GenerationParams
from .models import DEFAULT_BASE, LoadedBase, load_base
from .prompter import InputError, Prompter
from .tokens import TokenCodec

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """The running rows' shared state: KV cache, attention mask, last position and adapter of every row."""

    adapters: list[str]
    cache: Any
    attention: torch.Tensor  # (rows, time) 1 for real tokens, 0 for left padding
    positions: torch.Tensor  # (rows, 1) position id of each row's last token

    def __len__(self) -> int:
        return len(self.adapters)

    @property
    def joinable(self) -> bool:
        return kvcache.supports_joining(self.cache)


def register_adapters(aset: AdapterSet, adapter_dirs: Iterable[str] = (), include_default_dirs: bool = True,
                      adapters: Iterable[str] = ()) -> AdapterSet:
    """Register every adapter found in ``adapter_dirs`` (and the base's default folders; broken ones are logged and
    skipped), then ``adapters`` given one by one as folders or Hub ids (those must succeed). Shared by engines."""
    dirs = list(adapter_dirs) + (default_search_dirs(aset.base.spec.name) if include_default_dirs else [])
    infos, problems = discover(dirs)
    for p in problems:
        log.warning("skipping adapter: %s", p)
    for info in infos:
        try:
            aset.register(info)
        except AdapterError as e:
            log.warning("skipping adapter: %s", e)
    for source in adapters:
        aset.register_path(source)
    return aset


class Engine:
    """Base model + adapters + prompter + token codec."""

    def __init__(self, base: LoadedBase, adapters: AdapterSet | None = None, template: str | None = None):
        self.base = base
        self.adapters = adapters or AdapterSet(base)
        self.tokenizer = base.tokenizer
        self.prompter = Prompter.for_tokenizer(self.tokenizer, template or base.spec.template)
        self.device = base.device
        self.context_length = int(getattr(base.model.config, "max_position_embeddings", 2048) or 2048)
        self.codec = TokenCodec(
            self.tokenizer, stop_token_ids=base.spec.stop_token_ids,
            eos_sources=(getattr(base.model.generation_config, "eos_token_id", None),),
            suppress_prefix=base.spec.suppress_token_prefix, template_stops=self.prompter.stop, device=self.device)
        if self.device.type == "cpu":  # a batch of rows must cost less than the rows one by one (see cpu_linear)
            patched = speed_up_large_linears(base.model)
            if patched:
                log.info("CPU decoding: %d large linear layer(s) use the few-rows path (%s)", len(patched), ", ".join(patched[:3]))
        self._route_key: tuple[str, ...] | None = None
        self._route_stack = ExitStack()
        self._route_fn: Callable[..., Any] | None = None

    @classmethod
    def load(
        cls,
        base: str = DEFAULT_BASE,
        adapter_dirs: Iterable[str] = (),
        template: str | None = None,
        max_loaded: int = 16,
        include_default_dirs: bool = True,
        adapters: Iterable[str] = (),
        device: str = "auto",
        dtype: str = "auto",
    ) -> "Engine":
        """Load a base (on ``device`` in ``dtype``, see ``bactrian.devices``) and register adapters: every one
        found in ``adapter_dirs`` (and the default folders), plus ``adapters`` given one by one as folders or
        Hub ids (those must succeed)."""
        loaded = load_base(base, dtype=dtype, device=device)
        aset = register_adapters(AdapterSet(loaded, max_loaded=max_loaded), adapter_dirs, include_default_dirs, adapters)
        return cls(loaded, aset, template)

    @property
    def base_name(self) -> str:
        return self.base.spec.name

    def variants(self) -> list[str]:
        """Model ids this engine serves: the bare base, then every adapter."""
        return [self.base_name] + self.adapters.names()

    def describe(self) -> str:
        placement = self.base.placement
        return f"{self.base_name} on {placement.describe() if placement is not None else self.device}"

    def resolve_adapter(self, name: str | None) -> str:
        """The adapter a row runs with: ``BASE_ADAPTER`` for the bare base; unknown names raise AdapterError."""
        if name in (None, "", self.base_name, BASE_ADAPTER):
            return BASE_ADAPTER
        self.adapters.info(name)  # raises AdapterError naming the known ones
        return name

    def check_length(self, prompt_tokens: int, params: GenerationParams) -> None:
        if prompt_tokens + params.max_new_tokens > self.context_length:
            raise InputError(
                f"input is {prompt_tokens} tokens and max_new_tokens is {params.max_new_tokens}; "
                f"together they exceed the context length of {self.context_length} tokens"
            )

    # -- adapters ---------------------------------------------------------------------------------
    def load_adapters(self, names: Iterable[str]) -> None:
        """Make all ``names`` resident at once (LRU-evicting others); never while a routing is registered."""
        self._release_routing()
        self.adapters.ensure_loaded([n for n in names if n != BASE_ADAPTER])

    def _release_routing(self) -> None:
        self._route_stack.close()
        self._route_stack = ExitStack()
        self._route_key = self._route_fn = None

    def _forward(self, names: list[str], **kw: Any) -> Any:
        """One forward pass with row i using adapter ``names[i]``; the routing is rebuilt only when rows change."""
        key = tuple(names)
        if key != self._route_key:
            self._release_routing()
            self._route_fn = self._routing(names, self._route_stack)
            self._route_key = key
        return self._route_fn(**kw)

    def _routing(self, names: list[str], stack: ExitStack) -> Callable[..., Any]:
        if any(n != BASE_ADAPTER for n in names):
            self.adapters.ensure_loaded(names)  # may wrap the base in a PeftModel: fetch the model after
        model = self.adapters.model
        if all(n == BASE_ADAPTER for n in names) or not hasattr(model, "peft_config"):
            if hasattr(model, "peft_config"):
                stack.enter_context(model.disable_adapter())
            return lambda **kw: model(**kw)
        if len(set(names)) == 1:  # one adapter: plain set_adapter is cheaper than mixed-batch hooks
            model.set_adapter(names[0], inference_mode=True)
            return lambda **kw: model(**kw)
        hooks = getattr(model.base_model, "_enable_peft_forward_hooks", None)
        if hooks is None:  # another peft layout: per-call adapter_names (correct, slower)
            return lambda **kw: model(adapter_names=names, **kw)
        # peft registers the per-row adapter hooks by walking every module on each call (~13 ms a step on
        # Gemma 270M). Rows change only when one joins or leaves, so register them once per composition.
        stack.enter_context(hooks(adapter_names=names))
        inner = model.base_model.model
        return lambda **kw: inner(**kw)

    # -- model math -------------------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(self, prompts: list[list[int]], adapters: list[str]) -> tuple[Batch, torch.Tensor]:
        """Run new rows' prompts (left-padded together); returns their batch and last-position logits."""
        width = max(len(p) for p in prompts)
        pad = self.codec.pad_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        # logits_to_keep=1: the prefill must not build (prompt length x vocabulary) logits
        out = self._forward(adapters, input_ids=ids, attention_mask=attention, position_ids=positions,
                            use_cache=True, logits_to_keep=1)
        return Batch(list(adapters), out.past_key_values, attention, positions[:, -1:]), out.logits[:, -1, :]

    @torch.inference_mode()
    def decode(self, batch: Batch, tokens: list[int]) -> torch.Tensor:
        """One step: feed each row its last chosen token; returns next-token logits (rows x vocabulary)."""
        ids = torch.tensor(tokens, dtype=torch.long, device=self.device).unsqueeze(1)
        batch.attention = torch.cat([batch.attention, batch.attention.new_ones((len(batch), 1))], dim=1)
        batch.positions = batch.positions + 1
        out = self._forward(batch.adapters, input_ids=ids, attention_mask=batch.attention, position_ids=batch.positions,
                            past_key_values=batch.cache, use_cache=True, logits_to_keep=1)
        batch.cache = out.past_key_values
        return out.logits[:, -1, :]

    @staticmethod
    def join(a: Batch | None, b: Batch) -> Batch:
        """One batch with a's rows then b's rows (right-aligned on one time axis)."""
        if a is None or not len(a):
            return b
        width = max(a.attention.shape[1], b.attention.shape[1])

        def pad(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t.new_zeros((t.shape[0], width - t.shape[1])), t], dim=1)

        return Batch(a.adapters + b.adapters, kvcache.join(a.cache, b.cache),
                     torch.cat([pad(a.attention), pad(b.attention)]), torch.cat([a.positions, b.positions]))

    @staticmethod
    def keep(batch: Batch, rows: list[int]) -> Batch | None:
        """The batch with only ``rows`` left (None when empty); columns no row needs any more are dropped."""
        if not rows:
            return None
        if rows == list(range(len(batch))):
            return batch
        index = torch.tensor(rows, dtype=torch.long, device=batch.attention.device)
        attention = batch.attention.index_select(0, index)
        cache = kvcache.select(batch.cache, rows)
        unused = int((attention.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        if unused:
            cache = kvcache.trim_left(cache, unused)
            attention = attention[:, unused:]
        return Batch([batch.adapters[i] for i in rows], cache, attention, batch.positions.index_select(0, index))
