"""Stream several columns at once: each column is one request to the generation service that serves its model.

Local columns submitted together join the same running batch (one decode step serves all of them, and any
other visitor's rows); an external model streams from its own server. A column whose model fails (bad
adapter, unreachable endpoint, busy server) ends with an error; the others go on.
"""

from __future__ import annotations

import logging
import queue
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from bactrian.adapters import AdapterError
from bactrian.client import Unreachable, redact
from bactrian.generation import GenerationParams
from bactrian.prompter import InputError
from bactrian.service import Busy, GenRequest, Stream

from eval_studio.ui.catalog import Catalog

log = logging.getLogger(__name__)
UPDATE_EVERY_S = 0.05
# With nothing new for this long, the same snapshot is yielded again: Gradio's Stop closes the generator only
# between two yields (it retries while the generator is running), so a column waiting in the queue or in a long
# prefill must still come back to a yield now and then, or Stop would wait for its first token.
HEARTBEAT_S = 0.5
SAFE_ERRORS = (InputError, AdapterError, Busy, ValueError)  # refused input, a busy engine: written for users


@dataclass(frozen=True)
class Job:
    variant: str
    messages: list[dict[str, str]]
    params: GenerationParams = field(default_factory=GenerationParams)


@dataclass(frozen=True)
class Column:
    text: str = ""
    done: bool = False
    error: str | None = None
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.done and self.error is None


def public_error(e: Exception, variant: str) -> str:
    """What a visitor may read about a failure of ``variant``; the detail goes to the operator's log only.

    Refused input and a busy engine explain themselves. Anything else, above all an upstream's error (its body
    may repeat the operator's key), reads ``model X is unavailable right now (error id 1a2b3c4d)``; an endpoint
    that could not be reached at all (nothing came back from it) also says where. The log line carries the same
    error id and the detail, with anything key-like redacted (``bactrian.client.redact``).
    """
    if isinstance(e, SAFE_ERRORS):
        return redact(str(e))
    error_id = secrets.token_hex(4)
    said = getattr(e, "detail", None)
    log.warning("model %s unavailable (error id %s): %s: %s%s", variant, error_id, type(e).__name__, redact(str(e)),
                f"; upstream said: {redact(said)}" if said else "")
    where = f": {redact(str(e))}" if isinstance(e, Unreachable) else ""
    return f"model {variant} is unavailable right now{where} (error id {error_id})"


def stream_columns(catalog: Catalog, jobs: list[Job]) -> Iterator[list[Column]]:
    """Yield a snapshot of every column whenever any of them changes; the last snapshot has all done.

    Leaving the loop early (the visitor closed the tab, pressed Stop, or started a new round) cancels every
    column's request at the service's next step.
    """
    cols = [Column() for _ in jobs]
    events: queue.Queue = queue.Queue()
    streams: list[Stream] = []
    try:
        for i, job in enumerate(jobs):
            try:
                service, model = catalog.route(job.variant)
                streams.append(service.submit(GenRequest(model, job.messages, params=job.params),
                                              on_event=lambda ev, i=i: events.put((i, ev))))
            except Exception as e:  # noqa: BLE001 - refused at once (bad input, busy): that column only
                cols[i] = Column(done=True, error=public_error(e, job.variant), finish_reason="error")
        if all(c.done for c in cols):
            yield list(cols)
        last = 0.0
        while not all(c.done for c in cols):
            try:
                batch = [events.get(timeout=HEARTBEAT_S)]
            except queue.Empty:
                yield list(cols)
                continue
            # coalesce what arrives within UPDATE_EVERY_S: one UI update per burst, so re-rendering the page does
            # not compete with the decode worker for the interpreter on every token
            until = max(time.monotonic(), last + UPDATE_EVERY_S)
            while True:
                try:
                    batch.append(events.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
                if isinstance(batch[-1][1], Exception) or batch[-1][1].finished:
                    break
            last = time.monotonic()
            for i, ev in batch:
                c = cols[i]
                if isinstance(ev, Exception):
                    cols[i] = replace(c, done=True, error=public_error(ev, jobs[i].variant), finish_reason="error")
                else:
                    cols[i] = replace(c, text=c.text + ev.delta, done=c.done or ev.finished,
                                      finish_reason=ev.finish_reason or c.finish_reason)
            yield list(cols)
    finally:
        for s in streams:
            s.cancel()
