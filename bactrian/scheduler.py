"""Continuous request batching for the server: requests that arrive together decode in one batch.

A worker thread takes the first waiting request, waits a short window for others, then decodes them all
in one mixed-adapter batch (as LoRAX does). Results flow back to each caller through its own queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable

from .engine import Engine, GenRequest, StreamEvent

log = logging.getLogger(__name__)


@dataclass
class Ticket:
    request: GenRequest
    emit: Callable[[StreamEvent | Exception], None]  # called from the worker thread
    cancelled: threading.Event = field(default_factory=threading.Event)


class BatchScheduler:
    def __init__(self, engine: Engine, max_batch: int = 8, window_s: float = 0.02):
        self.engine = engine
        self.max_batch = max_batch
        self.window_s = window_s
        self._queue: queue.Queue[Ticket | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="bactrian-batcher", daemon=True)
        self.batches_run = 0
        self.largest_batch = 0
        self._thread.start()

    def submit(self, ticket: Ticket) -> None:
        ticket.request.cancelled = ticket.cancelled.is_set
        self._queue.put(ticket)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _collect(self) -> list[Ticket] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get(timeout=self.window_s)
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)
                break
            batch.append(nxt)
        return batch

    def _prepared(self, ticket: Ticket) -> bool:
        try:
            self.engine.prepare(ticket.request)
            return True
        except Exception as e:  # reported to that caller alone; the rest of the batch goes on
            ticket.emit(e)
            return False

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            batch = [t for t in batch if not t.cancelled.is_set() and self._prepared(t)]
            if not batch:
                continue
            self.batches_run += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            try:
                for ev in self.engine.stream_batch([t.request for t in batch]):
                    batch[ev.index].emit(ev)
            except Exception as e:  # one bad batch must not kill the server: every caller gets the error
                log.exception("batch failed")
                for t in batch:
                    t.emit(e)
