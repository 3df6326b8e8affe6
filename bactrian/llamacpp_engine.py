"""llama.cpp model math for the generation service: ``LlamaCppEngine`` (see ``bactrian.llamacpp`` for the why).

``LlamaCppEngine`` offers the model-math half of ``bactrian.engine.Engine`` (prefill, decode, join, keep; the
registry, prompts, length checks and token rules are the Engine's own). It keeps *lanes*: one llama.cpp context
for one adapter with up to ``LANE_ROWS`` sequences, all over one loaded model (llama.cpp applies a LoRA per
context). Rows of one adapter share a lane; rows of different adapters use different lanes, decoded in parallel
threads that split the CPU threads between them (cffi releases the GIL). Measured on 2 cores (bench/RESULTS.md):
two lanes of one row in parallel, one thread each, beat the same two one after the other with two threads each,
and one call with 2 or 3 rows costs more than that many one-row calls (only 4 and more rows share the weight
reads well), so a lane with fewer than ``BATCH_MIN`` rows decodes them one call each. Idle lanes are kept for
reuse (an adapter is re-pointed on an empty context at once; a new context takes ~80 ms) and freed beyond
``max_idle_lanes``.

Not thread-safe by design, like ``Engine``: the service's worker thread is the only caller.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .adapters import BASE_ADAPTER, AdapterError, AdapterSet
from .engine import Engine, register_adapters
from .llamacpp_lib import LlamaCppUnavailable, Native, native
from .llamacpp_lora import BaseLayout, ensure_gguf_lora
from .models import (DEFAULT_BASE, BaseSpec, LoadedBase, ModelError, cache_root, cached_dir, get_spec, gguf_path,
                     load_tokenizer)
from .prompter import Prompter
from .tokens import TokenCodec

log = logging.getLogger(__name__)

LANE_ROWS = 4  # sequences per llama.cpp context
BATCH_MIN = 4  # fewer rows of a lane are decoded one call each (see the module docstring)
N_BATCH = 512  # prompt tokens per llama_decode call; also the KV headroom of the sliding-window layers
DEFAULT_CONTEXT = 4096  # tokens per sequence (prompt + reply); the KV cache is allocated up front
FLASH_ATTN = 1  # measured ~4% faster decode than without on 1-2 threads; both agree with torch equally


def cpu_count() -> int:
    """The cores this process may run on (a container's CPU set, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def base_tokenizer(spec: BaseSpec, model_file: Path) -> tuple[Any, Path]:
    """The base's Hugging Face tokenizer (``bactrian.models.load_tokenizer``, as the torch path) and its folder: the
    dequantized cache when it exists, else a tokenizer-only cache converted from the GGUF once."""
    from transformers import AutoTokenizer

    folder = cached_dir(spec)
    if not (folder / "config.json").is_file():
        folder = cache_root() / "tokenizers" / spec.name
        if not (folder / "tokenizer_config.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=folder.parent))
            try:
                AutoTokenizer.from_pretrained(str(model_file.parent), gguf_file=model_file.name).save_pretrained(tmp)
                tmp.rename(folder)  # atomic publish, as the model cache
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return load_tokenizer(folder), folder


@dataclass(eq=False)
class _Lane:
    """One llama.cpp context serving one adapter, with its own token batch and free sequence ids."""

    ctx: Any
    batch: Any  # llama_batch of N_BATCH tokens
    adapter: str
    free: list[int] = field(default_factory=lambda: list(range(LANE_ROWS - 1, -1, -1)))
    threads: int = 0

    @property
    def used(self) -> int:
        return LANE_ROWS - len(self.free)


@dataclass(eq=False)
class _Seq:
    lane: _Lane
    seq: int
    pos: int = 0  # the position of the next token fed


@dataclass
class SeqBatch:
    """The running rows: a llama.cpp sequence each (their KV lives in the lanes)."""

    rows: list[_Seq]
    joinable: bool = True  # a sequence joins or leaves a lane at any step

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def adapters(self) -> list[str]:
        return [r.lane.adapter for r in self.rows]


class LlamaCppEngine(Engine):
    """An embedded GGUF base and its adapters on llama.cpp; the Engine's registry and rules, llama.cpp's math."""

    def __init__(self, spec: BaseSpec, model_file: Path, adapters_of: Callable[[LoadedBase], AdapterSet],
                 template: str | None = None, *, threads: int | None = None, context_tokens: int = DEFAULT_CONTEXT,
                 max_idle_lanes: int = 4):
        self.native: Native = native()
        lib, ffi = self.native.lib, self.native.ffi
        self.model_file = model_file
        self.tokenizer, folder = base_tokenizer(spec, model_file)
        self.base = LoadedBase(spec=spec, model=None, tokenizer=self.tokenizer)
        self.adapters = adapters_of(self.base)
        self.prompter = Prompter.for_tokenizer(self.tokenizer, template or spec.template)
        self.device = torch.device("cpu")
        params = lib.llama_model_default_params()
        params.n_gpu_layers = 0
        self._model = lib.llama_model_load_from_file(str(model_file).encode(), params)
        if self._model == ffi.NULL:
            raise ModelError(f"llama.cpp cannot load {model_file}: {self.native.last_error()}")
        vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = lib.llama_vocab_n_tokens(vocab)
        self.codec = TokenCodec(
            self.tokenizer, stop_token_ids=spec.stop_token_ids, eos_sources=_generation_eos(folder),
            suppress_prefix=spec.suppress_token_prefix, template_stops=self.prompter.stop, device=self.device)
        self.threads = max(1, threads or cpu_count())
        trained = lib.llama_model_n_ctx_train(self._model)
        self.context_length = min(context_tokens, trained) if trained > 0 else context_tokens
        arch = self._meta("general.architecture")
        self.layout = BaseLayout(arch, int(self._meta(f"{arch}.block_count")), int(self._meta(f"{arch}.attention.head_count")),
                                 int(self._meta(f"{arch}.attention.head_count_kv") or self._meta(f"{arch}.attention.head_count")))
        self.max_idle_lanes = max_idle_lanes
        self._loras: dict[str, Any] = {}  # adapter digest -> llama_adapter_lora* (freed with the model)
        self._lanes: list[_Lane] = []
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="bactrian-llamacpp")

    @classmethod
    def load(cls, base: str = DEFAULT_BASE, adapter_dirs: Iterable[str] = (), template: str | None = None,
             max_loaded: int = 16, include_default_dirs: bool = True, adapters: Iterable[str] = (),
             threads: int | None = None, context_tokens: int = DEFAULT_CONTEXT) -> "LlamaCppEngine":
        """Load an embedded base's GGUF and register adapters as ``Engine.load`` does."""
        spec = get_spec(base)
        if spec.kind != "pypi-gguf":
            raise ModelError(f"the llama.cpp engine serves embedded GGUF bases only, not {base!r}")
        try:
            return cls(spec, gguf_path(spec), lambda loaded: register_adapters(
                AdapterSet(loaded, max_loaded=max_loaded), adapter_dirs, include_default_dirs, adapters),
                template, threads=threads, context_tokens=context_tokens)
        except LlamaCppUnavailable as e:
            raise ModelError(str(e)) from e

    def describe(self) -> str:
        return f"{self.base_name} on cpu via llama.cpp ({self.model_file.name}, {self.threads} threads)"

    def _meta(self, key: str) -> str:
        buf = self.native.ffi.new("char[256]")
        n = self.native.lib.llama_model_meta_val_str(self._model, key.encode(), buf, 256)
        return self.native.ffi.string(buf).decode() if n >= 0 else ""

    # -- adapters ---------------------------------------------------------------------------------
    def load_adapters(self, names: Iterable[str]) -> None:
        """Convert (once, cached by digest) and load the GGUF LoRA of every adapter in ``names``."""
        for name in names:
            if name != BASE_ADAPTER:
                self._lora(name)

    def _lora(self, name: str) -> Any:
        info = self.adapters.info(name)
        handle = self._loras.get(info.digest or "")
        if handle is not None:
            return handle
        lib, ffi = self.native.lib, self.native.ffi
        for attempt in (1, 2):
            path = ensure_gguf_lora(info, self.base_name, self.layout, cache_root())
            handle = lib.llama_adapter_lora_init(self._model, str(path).encode())
            if handle != ffi.NULL:
                self._loras[info.digest or ""] = handle
                return handle
            reason = self.native.last_error()
            if attempt == 1:  # a damaged file that still reads back: convert again once
                log.warning("llama.cpp refused %s (%s); converting %s again", path, reason, name)
                path.unlink(missing_ok=True)
        raise AdapterError(f"adapter {name!r} does not fit base {self.base_name!r} on llama.cpp: {reason}")

    # -- lanes --------------------------------------------------------------------------------------
    @property
    def active_sequences(self) -> int:
        """Sequences holding KV in some lane (0 once every row has finished or been cancelled)."""
        return sum(lane.used for lane in self._lanes)

    def _lane_for(self, adapter: str) -> _Lane:
        """A lane of ``adapter`` with a free sequence: a partly used one, else an idle one re-pointed, else new."""
        mine = [lane for lane in self._lanes if lane.adapter == adapter and lane.free]
        if mine:
            return max(mine, key=lambda lane: lane.used)
        idle = next((lane for lane in self._lanes if lane.used == 0 and lane.adapter == adapter), None)
        idle = idle or next((lane for lane in self._lanes if lane.used == 0), None)
        lane = idle or self._new_lane()
        if lane.adapter != adapter:
            self._point(lane, adapter)
        return lane

    def _new_lane(self) -> _Lane:
        lib, ffi = self.native.lib, self.native.ffi
        p = lib.llama_context_default_params()
        p.n_ctx = self.context_length * LANE_ROWS
        p.n_batch = p.n_ubatch = N_BATCH
        p.n_seq_max = LANE_ROWS
        p.n_threads = p.n_threads_batch = self.threads
        p.kv_unified = False  # each sequence owns context_length cells: a full lane cannot run out mid-reply
        p.swa_full = False  # sliding-window layers keep only their window (+ N_BATCH), not the whole context
        p.flash_attn_type = FLASH_ATTN
        p.no_perf = True
        ctx = lib.llama_init_from_model(self._model, p)
        if ctx == ffi.NULL:
            raise ModelError(f"llama.cpp cannot create a context: {self.native.last_error()}")
        lane = _Lane(ctx, lib.llama_batch_init(N_BATCH, 0, 1), BASE_ADAPTER, threads=self.threads)
        self._lanes.append(lane)
        return lane

    def _point(self, lane: _Lane, adapter: str) -> None:
        """Make an empty lane serve ``adapter`` (llama.cpp applies a LoRA per context)."""
        lib, ffi = self.native.lib, self.native.ffi
        if adapter == BASE_ADAPTER:
            rc = lib.llama_set_adapters_lora(lane.ctx, ffi.NULL, 0, ffi.NULL)
        else:
            handles = ffi.new("struct llama_adapter_lora *[1]", [self._lora(adapter)])
            rc = lib.llama_set_adapters_lora(lane.ctx, handles, 1, ffi.new("float[1]", [1.0]))
        if rc != 0:
            raise AdapterError(f"llama.cpp cannot apply adapter {adapter!r}: {self.native.last_error()}")
        lane.adapter = adapter

    def _release(self, row: _Seq) -> None:
        lib = self.native.lib
        lib.llama_memory_seq_rm(lib.llama_get_memory(row.lane.ctx), row.seq, -1, -1)
        row.lane.free.append(row.seq)

    def _trim_idle(self) -> None:
        idle = [lane for lane in self._lanes if lane.used == 0]
        for lane in idle[: max(0, len(idle) - self.max_idle_lanes)]:
            self._lanes.remove(lane)
            self._free_lane(lane)

    def _free_lane(self, lane: _Lane) -> None:
        self.native.lib.llama_batch_free(lane.batch)
        self.native.lib.llama_free(lane.ctx)

    def _reset(self) -> None:
        """After a failed step the service drops every row: free every sequence too."""
        lib = self.native.lib
        for lane in self._lanes:
            lib.llama_memory_clear(lib.llama_get_memory(lane.ctx), True)
            lane.free = list(range(LANE_ROWS - 1, -1, -1))

    # -- model math -------------------------------------------------------------------------------
    def prefill(self, prompts: list[list[int]], adapters: list[str]) -> tuple[SeqBatch, torch.Tensor]:
        """Start new rows: a sequence each in a lane of its adapter; returns them and their next-token logits."""
        rows: list[_Seq] = []
        try:
            for adapter in adapters:
                lane = self._lane_for(adapter)
                rows.append(_Seq(lane, lane.free.pop()))
            out = torch.empty((len(rows), self.n_vocab), dtype=torch.float32)
            self._run_lanes(rows, lambda lane, idx: self._feed(lane, [(i, rows[i].seq, prompts[i], 0) for i in idx], out))
        except BaseException:
            self._reset()
            raise
        for row, prompt in zip(rows, prompts):
            row.pos = len(prompt)
        return SeqBatch(rows), out

    def decode(self, batch: SeqBatch, tokens: list[int]) -> torch.Tensor:
        """One step: each row's last token in; next-token logits out (rows x vocabulary)."""
        out = torch.empty((len(batch), self.n_vocab), dtype=torch.float32)
        rows = batch.rows

        def step(lane: _Lane, idx: list[int]) -> None:
            calls = [idx] if len(idx) >= BATCH_MIN else [[i] for i in idx]
            for call in calls:
                self._feed(lane, [(i, rows[i].seq, [tokens[i]], rows[i].pos) for i in call], out)

        try:
            self._run_lanes(rows, step)
        except BaseException:
            self._reset()
            raise
        for r in rows:
            r.pos += 1
        return out

    @staticmethod
    def join(a: SeqBatch | None, b: SeqBatch) -> SeqBatch:
        return b if a is None or not len(a) else SeqBatch(a.rows + b.rows)

    def keep(self, batch: SeqBatch, rows: list[int]) -> SeqBatch | None:
        """The batch with only ``rows`` left; the others' sequences leave their lanes (KV freed) at once."""
        kept = set(rows)
        for i, r in enumerate(batch.rows):
            if i not in kept:
                self._release(r)
        self._trim_idle()
        return SeqBatch([batch.rows[i] for i in rows]) if rows else None

    def _run_lanes(self, rows: list[_Seq], fn: Callable[[_Lane, list[int]], None]) -> None:
        """``fn(lane, row indices)`` for every lane in use: in parallel, the CPU threads split between lanes."""
        by_lane: dict[_Lane, list[int]] = {}
        for i, r in enumerate(rows):
            by_lane.setdefault(r.lane, []).append(i)
        each = max(1, self.threads // len(by_lane))
        for lane in by_lane:
            if lane.threads != each:
                self.native.lib.llama_set_n_threads(lane.ctx, each, each)
                lane.threads = each
        if len(by_lane) == 1:
            fn(*next(iter(by_lane.items())))
            return
        for f in [self._pool.submit(fn, lane, idx) for lane, idx in by_lane.items()]:
            f.result()  # re-raises a lane's error

    def _feed(self, lane: _Lane, items: list[tuple[int, int, list[int], int]], out: torch.Tensor) -> None:
        """Decode ``(row, sequence, tokens, first position)`` items in one lane, N_BATCH tokens per call; each
        item's last-token logits go to ``out[row]``."""
        lib, ffi, batch = self.native.lib, self.native.ffi, lane.batch
        flat = [(row, seq, tok, pos + j, j == len(toks) - 1) for row, seq, toks, pos in items for j, tok in enumerate(toks)]
        for start in range(0, len(flat), N_BATCH):
            chunk = flat[start:start + N_BATCH]
            batch.n_tokens = len(chunk)
            for k, (_, seq, tok, pos, last) in enumerate(chunk):
                batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = tok, pos, 1, last
                batch.seq_id[k][0] = seq
            rc = lib.llama_decode(lane.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed ({rc}): {self.native.last_error()}")
            for k, (row, *_rest, last) in enumerate(chunk):
                if last:
                    ptr = lib.llama_get_logits_ith(lane.ctx, k)
                    out[row] = torch.from_numpy(np.frombuffer(ffi.buffer(ptr, self.n_vocab * 4), dtype=np.float32))

    def close(self) -> None:
        """Free every context and the model (only once no step runs any more)."""
        self._pool.shutdown(wait=True)
        for lane in self._lanes:
            self._free_lane(lane)
        self._lanes = []
        if self._model is not None:
            self.native.lib.llama_model_free(self._model)
            self._model = None


def _generation_eos(folder: Path) -> tuple[Any, ...]:
    """The eos ids the torch path adds from the model's generation config (as ``Engine`` does)."""
    f = folder / "generation_config.json"
    try:
        return (json.loads(f.read_text("utf-8")).get("eos_token_id"),) if f.is_file() else ()
    except (OSError, ValueError):
        return ()
