"""The generation engine: one base model, its adapters, and batched streaming decoding.

Rows of one batch may use different adapters (peft mixed-batch inference, ``adapter_names=``) and
different sampling parameters; every row streams its own tokens. One forward pass per step serves all rows.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch

from .adapters import BASE_ADAPTER, AdapterError, AdapterSet, default_search_dirs, discover
from .generation import GenerationParams, StopChecker, sample_next
from .models import DEFAULT_BASE, LoadedBase, load_base
from .prompter import Prompter

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 20_000  # a friendly cap on one message, before tokenizing anything


class InputError(ValueError):
    """The request itself is bad (empty, too long, unknown variant); safe to show to the user."""


@dataclass
class GenRequest:
    prompt: str
    adapter: str | None = None  # None or the base name: the bare base model
    params: GenerationParams = field(default_factory=GenerationParams)
    cancelled: Callable[[], bool] = lambda: False


@dataclass
class StreamEvent:
    index: int
    delta: str
    finished: bool = False
    finish_reason: str | None = None  # "stop" | "length" | "cancelled"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class GenResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class Engine:
    """Base model + adapters + prompter. Thread-safe: one batch runs on the model at a time."""

    def __init__(self, base: LoadedBase, adapters: AdapterSet | None = None, template: str | None = None):
        self.base = base
        self.adapters = adapters or AdapterSet(base)
        self.tokenizer = base.tokenizer
        self.prompter = Prompter.for_tokenizer(self.tokenizer, template or base.spec.template)
        self.lock = threading.Lock()
        # Fast tokenizers flip padding/truncation state inside Rust while encoding: concurrent calls from
        # server threads or UI sessions raise "Already borrowed". Encoding is cheap, so one small lock suffices.
        self.tokenizer_lock = threading.Lock()
        self.context_length = int(getattr(base.model.config, "max_position_embeddings", 2048) or 2048)
        self._stop_ids = self._stop_token_ids()
        self._banned = self._banned_token_ids()
        # index tensors built once, not a ~6K-id Python list per row and decode step
        self._banned_t = torch.tensor(self._banned, dtype=torch.long)
        self._banned_stop_t = torch.tensor(sorted(set(self._banned) | self._stop_ids), dtype=torch.long)

    @classmethod
    def load(
        cls,
        base: str = DEFAULT_BASE,
        adapter_dirs: Iterable[str] = (),
        template: str | None = None,
        max_loaded: int = 16,
        include_default_dirs: bool = True,
        adapters: Iterable[str] = (),
    ) -> "Engine":
        """Load a base and register adapters: every one found in ``adapter_dirs`` (and the default folders),
        plus ``adapters`` given one by one as folders or Hub ids (those must succeed)."""
        loaded = load_base(base)
        dirs = list(adapter_dirs) + (default_search_dirs(loaded.spec.name) if include_default_dirs else [])
        infos, problems = discover(dirs)
        for p in problems:
            log.warning("skipping adapter: %s", p)
        aset = AdapterSet(loaded, max_loaded=max_loaded)
        for info in infos:
            try:
                aset.register(info)
            except AdapterError as e:
                log.warning("skipping adapter: %s", e)
        for source in adapters:
            aset.register_path(source)
        return cls(loaded, aset, template)

    @property
    def base_name(self) -> str:
        return self.base.spec.name

    def variants(self) -> list[str]:
        """Model ids this engine serves: the bare base, then every adapter."""
        return [self.base_name] + self.adapters.names()

    # -- prompts ----------------------------------------------------------------------------------
    def prompt_for(self, messages: list[dict[str, str]]) -> str:
        if not messages:
            raise InputError("messages must not be empty")
        for m in messages:
            if m.get("role") not in ("system", "user", "assistant"):
                raise InputError(f"unknown message role {m.get('role')!r}")
            if not isinstance(m.get("content"), str):
                raise InputError("message content must be a string")
            if len(m["content"]) > MAX_MESSAGE_CHARS:
                raise InputError(f"a message has {len(m['content'])} characters; the limit is {MAX_MESSAGE_CHARS}")
        if not messages[-1]["content"].strip():
            raise InputError("the last message is empty")
        try:
            return self.prompter.build_chat(messages)
        except ValueError as e:
            raise InputError(str(e)) from e

    def extract(self, text: str) -> str:
        return self.prompter.extract(text)

    # -- tokens -----------------------------------------------------------------------------------
    def _stop_token_ids(self) -> set[int]:
        ids = set(self.base.spec.stop_token_ids)
        for src in (self.tokenizer.eos_token_id, getattr(self.base.model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif isinstance(src, (list, tuple)):
                ids.update(int(i) for i in src)
        return ids

    def _banned_token_ids(self) -> list[int]:
        """Token ids never to sample: padding and, for Gemma after LoRA, the ``<unusedNNNN>`` tokens."""
        banned = set()
        if self.tokenizer.pad_token_id is not None and self.tokenizer.pad_token_id not in self._stop_ids:
            banned.add(self.tokenizer.pad_token_id)
        prefix = self.base.spec.suppress_token_prefix
        if prefix:
            banned.update(i for t, i in self.tokenizer.get_vocab().items() if t.startswith(prefix))
        return sorted(banned)

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        bos = self.tokenizer.bos_token
        add_special = not all(bos and p.startswith(bos) for p in prompts)  # chat templates add BOS themselves
        with self.tokenizer_lock:
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special)
        lengths = enc["attention_mask"].sum(-1).tolist()
        return enc["input_ids"], enc["attention_mask"], [int(n) for n in lengths]

    def check_length(self, prompt_tokens: int, params: GenerationParams) -> None:
        if prompt_tokens + params.max_new_tokens > self.context_length:
            raise InputError(
                f"input is {prompt_tokens} tokens and max_new_tokens is {params.max_new_tokens}; "
                f"together they exceed the context length of {self.context_length} tokens"
            )

    # -- decoding ---------------------------------------------------------------------------------
    def resolve_adapter(self, name: str | None) -> str:
        if name in (None, "", self.base_name, BASE_ADAPTER):
            return BASE_ADAPTER
        self.adapters.info(name)  # raises AdapterError naming the known ones
        return name

    def prepare(self, request: GenRequest) -> int:
        """Validate one request alone (parameters, adapter loadable, length); returns its prompt tokens.

        The server calls this before batching, so one bad request fails alone instead of failing its batch.
        """
        request.params.validate()
        name = self.resolve_adapter(request.adapter)
        if name != BASE_ADAPTER:
            with self.lock:  # loading mutates the shared PeftModel: never while a batch decodes
                self.adapters.ensure_loaded([name])
        with self.tokenizer_lock:
            n = len(self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]) + 1
        self.check_length(n, request.params)
        return n

    def stream_batch(self, requests: list[GenRequest]) -> Iterator[StreamEvent]:
        """Decode all requests together, one forward pass per step; yields each row's text deltas."""
        if not requests:
            return
        for r in requests:
            r.params.validate()
        names = [self.resolve_adapter(r.adapter) for r in requests]
        input_ids, attn, lengths = self.encode([r.prompt for r in requests])
        for n, r in zip(lengths, requests):
            self.check_length(n, r.params)
        with self.lock:
            yield from self._decode(requests, names, input_ids, attn, lengths)

    def _forward_fn(self, names: list[str], stack: ExitStack) -> Callable[..., Any]:
        if any(n != BASE_ADAPTER for n in names):
            self.adapters.ensure_loaded(names)  # may wrap the base in a PeftModel: fetch the model after
        model = self.adapters.model
        if all(n == BASE_ADAPTER for n in names) or not hasattr(model, "peft_config"):
            if hasattr(model, "peft_config"):
                return lambda **kw: _with_disabled(model, kw)
            return lambda **kw: model(**kw)
        if len(set(names)) == 1:  # one adapter: plain set_adapter is cheaper than mixed-batch hooks
            model.set_adapter(names[0], inference_mode=True)
            return lambda **kw: model(**kw)
        hooks = getattr(model.base_model, "_enable_peft_forward_hooks", None)
        if hooks is None:  # another peft layout: per-call adapter_names (correct, slower)
            return lambda **kw: model(adapter_names=names, **kw)
        # peft registers the per-row adapter hooks by walking every module on each call (~13 ms a step on
        # Gemma 270M). The rows' adapters do not change during a decode, so register them once for all steps;
        # the engine lock keeps any other forward off the model meanwhile.
        stack.enter_context(hooks(adapter_names=names))
        inner = model.base_model.model
        return lambda **kw: inner(**kw)

    @torch.inference_mode()
    def _decode(self, requests, names, input_ids, attn, lengths) -> Iterator[StreamEvent]:
        with ExitStack() as stack:
            forward = self._forward_fn(names, stack)
            yield from self._steps(forward, requests, input_ids, attn, lengths)

    def _steps(self, forward, requests, input_ids, attn, lengths) -> Iterator[StreamEvent]:
        n = len(requests)
        params = [r.params for r in requests]
        gens = []
        for p in params:
            g = None
            if p.seed is not None and p.temperature > 0:
                g = torch.Generator().manual_seed(p.seed)
            gens.append(g)
        stops = [StopChecker(self.tokenizer, list(self.prompter.stop) + p.stop) for p in params]
        history = [input_ids[i, input_ids.shape[1] - lengths[i] :].tolist() for i in range(n)]
        done = [False] * n
        counts = [0] * n
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
        past = None
        cur_ids = input_ids
        max_steps = max(p.max_new_tokens for p in params)
        for _step in range(max_steps):
            # logits_to_keep=1: the prefill must not build (prompt length x vocabulary) logits
            out = forward(input_ids=cur_ids, attention_mask=attn, position_ids=position_ids, past_key_values=past, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            logits = out.logits[:, -1, :]
            banned = [self._banned_stop_t if (p.ignore_eos or counts[i] < p.min_tokens) else self._banned_t for i, p in enumerate(params)]
            chosen = sample_next(logits, params, history, gens, banned)
            next_ids = []
            for i in range(n):
                tok = chosen[i]
                if done[i]:
                    next_ids.append(pad)
                    continue
                if requests[i].cancelled():
                    done[i] = True
                    next_ids.append(pad)
                    yield StreamEvent(i, "", True, "cancelled", lengths[i], counts[i])
                    continue
                next_ids.append(tok)
                if tok in self._stop_ids and not params[i].ignore_eos:
                    done[i] = True
                    yield StreamEvent(i, stops[i].finish(), True, "stop", lengths[i], counts[i])
                    continue
                counts[i] += 1
                history[i].append(tok)
                delta = stops[i].push(tok)
                if stops[i].stopped and counts[i] >= params[i].min_tokens:
                    done[i] = True
                    yield StreamEvent(i, delta, True, "stop", lengths[i], counts[i])
                elif counts[i] >= params[i].max_new_tokens:
                    done[i] = True
                    yield StreamEvent(i, delta + stops[i].finish(), True, "length", lengths[i], counts[i])
                elif delta:
                    yield StreamEvent(i, delta, False, None, lengths[i], counts[i])
            if all(done):
                return
            cur_ids = torch.tensor(next_ids, dtype=torch.long).unsqueeze(1)
            attn = torch.cat([attn, torch.ones((n, 1), dtype=attn.dtype)], dim=1)
            position_ids = position_ids[:, -1:] + 1

    def generate_batch(self, requests: list[GenRequest]) -> list[GenResult]:
        texts = [""] * len(requests)
        results: list[GenResult | None] = [None] * len(requests)
        for ev in self.stream_batch(requests):
            texts[ev.index] += ev.delta
            if ev.finished:
                results[ev.index] = GenResult(texts[ev.index], ev.finish_reason or "stop", ev.prompt_tokens, ev.completion_tokens)
        return [r for r in results if r is not None]

    def generate(self, prompt: str, adapter: str | None = None, params: GenerationParams | None = None) -> GenResult:
        return self.generate_batch([GenRequest(prompt, adapter, params or GenerationParams())])[0]

    def chat(self, messages: list[dict[str, str]], adapter: str | None = None, params: GenerationParams | None = None) -> Iterator[str]:
        """Stream the reply to OpenAI-style messages (text deltas)."""
        req = GenRequest(self.prompt_for(messages), adapter, params or GenerationParams())
        for ev in self.stream_batch([req]):
            if ev.delta:
                yield ev.delta

    def timed(self, requests: list[GenRequest]) -> tuple[list[GenResult], float]:
        t0 = time.perf_counter()
        res = self.generate_batch(requests)
        return res, time.perf_counter() - t0


def _with_disabled(model: Any, kw: dict) -> Any:
    with model.disable_adapter():
        return model(**kw)
