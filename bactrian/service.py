"""One generation service: every request of the server, the studio and the CLI goes through ``submit``.

``LocalService`` owns the in-process engine: one worker thread is the only code that touches the model, so it
is the only lock there is. It batches at the iteration level, as vLLM and LoRAX do: a new request joins the
running batch at the next decode step, a finished or cancelled row leaves it at once, and rows may use
different adapters and sampling parameters. Admission is capped (rows per step, prompt tokens prefilled per
step, waiting requests); a full queue refuses at once with ``Busy`` ("retry").

``bactrian.remote.RemoteService`` offers the same interface over any OpenAI-compatible server (vLLM,
another ``bactrian serve``), so the studio and ``bactrian chat`` run on either.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import torch

from .adapters import BASE_ADAPTER
from .engine import Batch, Engine
from .generation import GenerationParams, StopChecker, sample_next
from .prompter import InputError

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """The service is at capacity; the caller should retry shortly (HTTP 429)."""


class ServiceClosed(RuntimeError):
    """The service was shut down while the request waited or ran."""


@dataclass
class GenRequest:
    model: str  # a variant: the base's name or an adapter's (for a remote service: a served model id)
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None  # a ready prompt instead of messages (in-process engines only)
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass(frozen=True)
class StreamEvent:
    delta: str
    finished: bool = False
    finish_reason: str | None = None  # "stop" | "length" | "cancelled"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class GenResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class VariantInfo:
    """A model id a service serves: the bare base or an adapter (with its weight digest when known)."""

    name: str
    kind: str  # base | adapter
    languages: tuple[str, ...] = ()
    description: str = ""
    digest: str | None = None


class Stream:
    """The events of one request, in order; the last one is ``finished``. An error arrives as an exception.

    Iterate it, or pass ``on_event`` to ``submit`` to receive events (and exceptions) from the worker thread.
    Leaving a ``with`` block, or ``cancel()``, stops the row at the service's next step.
    """

    def __init__(self, on_event: Callable[[StreamEvent | Exception], None] | None = None):
        self._queue: queue.Queue[StreamEvent | Exception] = queue.Queue()
        self._on_event = on_event
        self._cancel = threading.Event()
        self._on_cancel: list[Callable[[], None]] = []
        self.closed = False

    def put(self, item: StreamEvent | Exception) -> None:
        """Called by the service only; nothing is delivered after the final event or an error."""
        if self.closed:
            return
        self.closed = isinstance(item, Exception) or item.finished
        (self._on_event or self._queue.put)(item)

    def cancel(self) -> None:
        self._cancel.set()
        for fn in self._on_cancel:  # e.g. close a remote request still waiting for its first byte
            fn()

    def on_cancel(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the stream is cancelled (at once if it already is)."""
        self._on_cancel.append(fn)
        if self.cancelled:
            fn()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def __iter__(self) -> Iterator[StreamEvent]:
        if self._on_event is not None:
            raise TypeError("this stream delivers its events to on_event")
        while True:
            item = self._queue.get()
            if isinstance(item, Exception):
                raise item
            yield item
            if item.finished:
                return

    def result(self) -> GenResult:
        text, last = "", None
        for last in self:
            text += last.delta
        assert last is not None
        return GenResult(text, last.finish_reason or "stop", last.prompt_tokens, last.completion_tokens)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class GenerationService(Protocol):
    base_name: str

    def variants(self) -> list[VariantInfo]: ...

    def submit(self, request: GenRequest, on_event: Callable[[StreamEvent | Exception], None] | None = None) -> Stream: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def generate(service: GenerationService, request: GenRequest) -> GenResult:
    """Submit and wait for the whole text (scripts, tests, judging)."""
    return service.submit(request).result()


@dataclass
class _Ticket:
    request: GenRequest
    stream: Stream
    prompt: str
    adapter: str
    ids: list[int] | None = None  # tokenized by the worker, kept if the ticket has to wait another step


@dataclass
class _Row:
    stream: Stream
    params: GenerationParams
    adapter: str
    ids: list[int]  # prompt then generated ids (the repetition penalty looks at both)
    prompt_tokens: int
    detok: StopChecker
    generator: torch.Generator | None
    count: int = 0
    last: int = 0  # the token fed at the next step


class LocalService:
    """The in-process engine behind one worker thread, with iteration-level batching."""

    def __init__(self, engine: Engine, *, max_rows: int = 16, max_step_tokens: int = 4096, max_queue: int = 64):
        if min(max_rows, max_step_tokens, max_queue) < 1:
            raise ValueError("max_rows, max_step_tokens and max_queue must be at least 1")
        self.engine = engine
        self.base_name = engine.base_name
        self.max_rows, self.max_step_tokens, self.max_queue = max_rows, max_step_tokens, max_queue
        self.stats = {"steps": 0, "prefills": 0, "largest_batch": 0, "joined_running": 0, "requests": 0}
        self._waiting: deque[_Ticket] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="bactrian-generation", daemon=True)
        self._thread.start()

    # -- the interface ----------------------------------------------------------------------------
    def variants(self) -> list[VariantInfo]:
        out = [VariantInfo(self.base_name, "base", (), "bare base model")]
        for info in self.engine.adapters.infos():
            out.append(VariantInfo(info.name, "adapter", tuple(info.languages), info.description, getattr(info, "digest", None)))
        return out

    def describe(self) -> str:
        return f"in-process: {self.engine.describe()}"

    def submit(self, request: GenRequest, on_event: Callable[[StreamEvent | Exception], None] | None = None) -> Stream:
        """Queue one request. Bad input (parameters, messages, unknown model) raises here, before queueing;
        length and adapter-loading problems arrive as the stream's error; a full queue raises ``Busy``."""
        request.params.validate()
        adapter = self.engine.resolve_adapter(request.model)
        if request.prompt is not None:
            if not request.prompt.strip():
                raise InputError("the prompt is empty")
            prompt = request.prompt
        else:
            prompt = self.engine.prompter.prompt_for(request.messages or [])
        stream = Stream(on_event)
        with self._cv:
            if self._closed:
                raise ServiceClosed("the generation service is shut down")
            if len(self._waiting) >= self.max_queue:
                raise Busy(f"the server is busy ({len(self._waiting)} requests waiting); retry in a moment")
            self._waiting.append(_Ticket(request, stream, prompt, adapter))
            self.stats["requests"] += 1
            self._cv.notify()
        return stream

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=30)

    # -- the worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        batch: Batch | None = None
        rows: list[_Row] = []
        while True:
            tickets = self._admit(rows, batch)
            if tickets is None:
                for r in rows:
                    r.stream.put(ServiceClosed("the generation service was shut down"))
                return
            new: list[_Row] = []
            for t in tickets:
                row = self._prepare(t, rows + new)
                if row is not None:
                    new.append(row)
            try:
                if new:
                    group, logits = self.engine.prefill([r.ids for r in new], [r.adapter for r in new])
                    self.stats["prefills"] += 1
                    self.stats["joined_running"] += bool(rows)
                    alive = self._advance(new, logits)
                    group = self.engine.keep(group, alive)
                    if group is not None:
                        batch = self.engine.join(batch, group)
                        rows += [new[i] for i in alive]
                    new = []
                if batch is not None:
                    self.stats["steps"] += 1
                    self.stats["largest_batch"] = max(self.stats["largest_batch"], len(rows))
                    logits = self.engine.decode(batch, [r.last for r in rows])
                    alive = self._advance(rows, logits)
                    batch = self.engine.keep(batch, alive)
                    rows = [rows[i] for i in alive]
            except Exception as e:  # one failing step must not kill the service: its rows get the error
                log.exception("generation step failed")
                for r in rows + new:
                    r.stream.put(e)
                batch, rows = None, []

    def _admit(self, rows: list[_Row], batch: Batch | None) -> list[_Ticket] | None:
        """Waiting requests that join at this step (None: shut down). Blocks only when nothing runs."""
        with self._cv:
            while not self._closed and not self._waiting and batch is None:
                self._cv.wait()
            if self._closed:
                for t in self._waiting:
                    t.stream.put(ServiceClosed("the generation service was shut down"))
                self._waiting.clear()
                return None
            if batch is not None and not batch.joinable:
                return []  # this model's cache cannot take rows mid-flight: the batch runs to its end first
            taken: list[_Ticket] = []
            budget = self.max_step_tokens
            while self._waiting and len(rows) + len(taken) < self.max_rows:
                t = self._waiting[0]
                if t.stream.cancelled:
                    self._waiting.popleft()
                    t.stream.put(StreamEvent("", True, "cancelled"))
                    continue
                if t.ids is None:
                    try:
                        t.ids = self.engine.codec.encode(t.prompt)
                    except Exception as e:  # noqa: BLE001 - a prompt the tokenizer refuses fails alone
                        self._waiting.popleft()
                        t.stream.put(InputError(f"cannot tokenize the prompt: {e}"))
                        continue
                if taken and len(t.ids) > budget:
                    break  # the prefill of this step is full; it joins at the next one
                budget -= len(t.ids)
                taken.append(self._waiting.popleft())
            return taken

    def _prepare(self, t: _Ticket, rows: list[_Row]) -> _Row | None:
        """Check length and load the adapter (beside those of ``rows``); a failing request gets its error alone."""
        p = t.request.params
        try:
            assert t.ids is not None
            self.engine.check_length(len(t.ids), p)
            resident = {r.adapter for r in rows} | {t.adapter}
            if len(resident - {BASE_ADAPTER}) > self.engine.adapters.max_loaded:
                with self._cv:  # more adapters than fit at once: wait until a running row finishes
                    self._waiting.appendleft(t)
                return None
            self.engine.load_adapters(resident)
        except Exception as e:  # noqa: BLE001 - InputError, AdapterError (corrupt or mismatched weights)
            t.stream.put(e)
            return None
        gen = None
        if p.seed is not None and p.temperature > 0:
            gen = torch.Generator(device=self.engine.device).manual_seed(p.seed)
        return _Row(t.stream, p, t.adapter, list(t.ids), len(t.ids), self.engine.codec.detokenizer(p.stop), gen)

    def _advance(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        """Sample one token per row and stream it; returns the indices of rows still running."""
        codec = self.engine.codec
        banned = [codec.banned_for(allow_stop=not (r.params.ignore_eos or r.count < r.params.min_tokens)) for r in rows]
        chosen = sample_next(logits, [r.params for r in rows], [r.ids for r in rows], [r.generator for r in rows], banned)
        return [i for i, (r, tok) in enumerate(zip(rows, chosen)) if not self._push(r, tok)]

    def _push(self, r: _Row, tok: int) -> bool:
        """Stream one token of a row; True when the row has finished."""
        p = r.params
        if r.stream.cancelled:
            return self._finish(r, "", "cancelled")
        if tok in self.engine.codec.stop_ids and not p.ignore_eos:
            return self._finish(r, r.detok.finish(), "stop")
        r.count += 1
        r.ids.append(tok)
        r.last = tok
        delta = r.detok.push(tok)
        if r.detok.stopped and r.count >= p.min_tokens:
            return self._finish(r, delta, "stop")
        if r.count >= p.max_new_tokens:
            return self._finish(r, delta + r.detok.finish(), "length")
        if delta:
            r.stream.put(StreamEvent(delta, False, None, r.prompt_tokens, r.count))
        return False

    @staticmethod
    def _finish(r: _Row, delta: str, reason: str) -> bool:
        r.stream.put(StreamEvent(delta, True, reason, r.prompt_tokens, r.count))
        return True
