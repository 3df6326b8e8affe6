"""Stream several columns at once: all local variants in ONE batched decode, each external model in a thread.

A column whose model fails (bad adapter, unreachable endpoint) ends with an error; the others go on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from bactrian.client import EndpointError, stream_chat
from bactrian.engine import GenRequest, InputError
from bactrian.generation import GenerationParams

from eval_studio.ui.catalog import Catalog

log = logging.getLogger(__name__)


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


def _external_params(p: GenerationParams) -> dict:
    out = {"max_tokens": p.max_new_tokens, "temperature": p.temperature, "top_p": p.top_p}
    if p.seed is not None:
        out["seed"] = p.seed
    return out


def stream_columns(catalog: Catalog, jobs: list[Job], local_lock: threading.Lock) -> Iterator[list[Column]]:
    """Yield a snapshot of every column whenever any of them changes; the last snapshot has all done.

    ``local_lock`` serialises local work (prepare + batched decode): the engine shares one tokenizer, whose
    padding state must not be changed by two threads at once.
    """
    cols = [Column() for _ in jobs]
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()
    local = [(i, j) for i, j in enumerate(jobs) if not catalog.is_external(j.variant)]
    workers = []
    if local:
        workers.append(threading.Thread(target=_run_local, args=(catalog, local, events, cancel, local_lock), daemon=True))
    for i, j in enumerate(jobs):
        if catalog.is_external(j.variant):
            workers.append(threading.Thread(target=_run_external, args=(catalog, i, j, events, cancel), daemon=True))
    for w in workers:
        w.start()
    try:
        while not all(c.done for c in cols):
            batch = [events.get()]
            while True:  # coalesce whatever else arrived: one UI update per burst
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            for i, delta, finished, error, reason in batch:
                c = cols[i]
                cols[i] = replace(c, text=c.text + delta, done=c.done or finished, error=error or c.error,
                                  finish_reason=reason or c.finish_reason)
            yield list(cols)
    finally:
        cancel.set()  # the visitor left or started a new round: stop decoding


def _run_local(catalog: Catalog, local: list[tuple[int, Job]], events: queue.Queue, cancel: threading.Event,
               lock: threading.Lock) -> None:
    engine = catalog.engine
    with lock:
        rows: list[tuple[int, GenRequest]] = []
        for i, job in local:
            try:
                req = GenRequest(engine.prompt_for(job.messages), job.variant, job.params, cancelled=cancel.is_set)
                engine.prepare(req)  # alone first: one bad variant must not fail the other column
                rows.append((i, req))
            except (InputError, ValueError) as e:
                events.put((i, "", True, str(e), "error"))
            except Exception as e:  # noqa: BLE001 - a broken adapter file etc.: show it in that column only
                log.exception("local variant %s failed", job.variant)
                events.put((i, "", True, f"{type(e).__name__}: {e}", "error"))
        if not rows:
            return
        finished: set[int] = set()
        try:
            for ev in engine.stream_batch([r for _, r in rows]):
                col = rows[ev.index][0]
                finished |= {col} if ev.finished else set()
                events.put((col, ev.delta, ev.finished, None, ev.finish_reason))
            for col, _ in rows:  # defensive: a row the decoder never closed must not hang the UI
                if col not in finished:
                    events.put((col, "", True, None, "stop"))
        except Exception as e:  # noqa: BLE001 - end every unfinished column with the error, never hang the UI
            log.exception("batched decode failed")
            for col, _ in rows:
                events.put((col, "", True, f"{type(e).__name__}: {e}", "error"))


def _run_external(catalog: Catalog, i: int, job: Job, events: queue.Queue, cancel: threading.Event) -> None:
    endpoint = catalog.endpoint(job.variant)
    try:
        for delta in stream_chat(endpoint, job.messages, **_external_params(job.params)):
            if cancel.is_set():
                events.put((i, "", True, None, "cancelled"))
                return
            events.put((i, delta, False, None, None))
        events.put((i, "", True, None, "stop"))
    except EndpointError as e:
        events.put((i, "", True, str(e), "error"))
    except Exception as e:  # noqa: BLE001 - whatever the client raised, that column shows it
        events.put((i, "", True, f"{type(e).__name__}: {e}", "error"))
