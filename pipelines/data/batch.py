"""The OpenAI Batch API path: write the batch JSONL, upload, create the batch, poll, ingest (half the price).

Batch ids are stored as soon as a batch is created, so a rerun after a crash polls the open batches instead of
submitting (and paying for) the same requests again; new items are only submitted once none is open.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from .limits import redact
from .recipe import RespondSpec
from .respond import Item, RespondStats, make_client
from .store import Store

MAX_REQUESTS_PER_BATCH = 50_000  # the API's limit per input file
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def write_batch_files(spec: RespondSpec, items: list[Item], folder: Path) -> list[Path]:
    """One ``/v1/chat/completions`` request per line, ``custom_id`` = row|lang|prompt hash."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n, start in enumerate(range(0, len(items), MAX_REQUESTS_PER_BATCH)):
        path = folder / f"batch-{stamp}-{n:03d}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for it in items[start:start + MAX_REQUESTS_PER_BATCH]:
                body = {"model": spec.model, "messages": list(it.messages), "max_tokens": spec.max_tokens,
                        "temperature": spec.temperature}
                f.write(json.dumps({"custom_id": it.custom_id, "method": "POST", "url": "/v1/chat/completions",
                                    "body": body}, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths


def _parse_output(text: str, model: str) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """Batch output lines -> (responses to store, (row_id, lang, error) failures)."""
    ok: list[dict[str, Any]] = []
    bad: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        row_id, lang, phash = rec["custom_id"].split("|")
        resp = rec.get("response") or {}
        body = resp.get("body") or {}
        if rec.get("error") or resp.get("status_code", 200) != 200 or not body.get("choices"):
            bad.append((row_id, lang, json.dumps(rec.get("error") or body.get("error") or resp)[:500]))
            continue
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        ok.append({"row_id": row_id, "lang": lang, "model": model, "prompt_hash": phash,
                   "prompt": "", "response": choice["message"].get("content") or "",
                   "finish_reason": choice.get("finish_reason"), "prompt_tokens": usage.get("prompt_tokens"),
                   "completion_tokens": usage.get("completion_tokens"), "via": "batch"})
    return ok, bad


async def _ingest(client: Any, store: Store, spec: RespondSpec, batch: Any, prompts: dict[str, str],
                  stats: RespondStats) -> None:
    for file_id, is_error in ((batch.output_file_id, False), (batch.error_file_id, True)):
        if not file_id:
            continue
        text = (await client.files.content(file_id)).text
        ok, bad = _parse_output(text, spec.model)
        for r in ok:
            r["prompt"] = prompts.get(f"{r['row_id']}|{r['lang']}|{r['prompt_hash']}", "")
        if ok:
            stats.stored += await asyncio.to_thread(store.add_responses, ok)
            stats.prompt_tokens += sum(r["prompt_tokens"] or 0 for r in ok)
            stats.completion_tokens += sum(r["completion_tokens"] or 0 for r in ok)
        for row_id, lang, err in bad:
            stats.failed += 1
            await asyncio.to_thread(store.add_failure, "respond-batch", row_id, lang, err, 1)


async def _run(spec: RespondSpec, store: Store, pending: list[Item], folder: Path, stats: RespondStats) -> RespondStats:
    client, secrets = make_client(spec)
    prompts = {it.custom_id: it.prompt for it in pending}
    t0 = time.perf_counter()
    try:
        open_ids = store.open_batches(spec.model)
        if not open_ids and pending:
            for path in write_batch_files(spec, pending, folder):
                with path.open("rb") as f:
                    up = await client.files.create(file=f, purpose="batch")
                batch = await client.batches.create(input_file_id=up.id, endpoint="/v1/chat/completions",
                                                    completion_window="24h")
                store.set_batch(batch.id, spec.model, up.id, batch.status, sum(1 for _ in path.open()))
                open_ids.append(batch.id)
                stats.requested += sum(1 for _ in path.open())
        while open_ids:
            for bid in list(open_ids):
                batch = await client.batches.retrieve(bid)
                store.set_batch(bid, spec.model, batch.input_file_id, batch.status)
                if batch.status in TERMINAL:
                    await _ingest(client, store, spec, batch, prompts, stats)
                    store.set_batch(bid, spec.model, batch.input_file_id, batch.status, ingested=True)
                    open_ids.remove(bid)
            if open_ids:
                await asyncio.sleep(spec.batch_poll_s)
    except Exception as e:  # noqa: BLE001 - keep the batch ids; the next run resumes polling
        stats.errors.append(redact(f"{type(e).__name__}: {e}", secrets))
        raise
    finally:
        stats.seconds = time.perf_counter() - t0
        await client.close()
    return stats


def run_batch(spec: RespondSpec, store: Store, pending: list[Item], folder: Path, stats: RespondStats) -> RespondStats:
    return asyncio.run(_run(spec, store, pending, folder, stats))
