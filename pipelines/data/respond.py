"""The respond step: one chat completion per (row, language), async, rate-limited, retried, durable, resumable.

Work items are keyed by (row id, language, model, prompt hash). Finished items are committed by a writer task
as soon as they arrive (one transaction per group that arrived together), so a killed run loses only the
requests in flight, and a rerun never sends a request for an item that is already stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from bactrian.client import openai_client

from .ledger import english_tokens
from .limits import PermanentError, RateLimiter, RetryPolicy, call_with_retries, redact
from .recipe import Recipe, RespondSpec
from .sources import Row
from .store import Store
from .translate import translator_name
from .translate.backends import read_key


@dataclass(frozen=True)
class Item:
    row_id: str
    lang: str
    messages: tuple[dict[str, str], ...]
    prompt_hash: str

    @property
    def prompt(self) -> str:
        return "\n\n".join(m["content"] for m in self.messages)

    @property
    def custom_id(self) -> str:
        return f"{self.row_id}|{self.lang}|{self.prompt_hash}"


@lru_cache(maxsize=1)
def _respond_prompt() -> dict[str, Any]:
    return json.loads(resources.files("pipelines.data.resources").joinpath("respond_prompt.json").read_text("utf-8"))


def build_messages(instruction: str, input: str) -> tuple[dict[str, str], ...]:
    p = _respond_prompt()
    user = p["user_input"].format(instruction=instruction, input=input) if input else p["user_no_input"].format(
        instruction=instruction)
    system = [{"role": "system", "content": p["system"]}] if p.get("system") else []
    return tuple(system + [{"role": "user", "content": user}])


def prompt_hash(messages: tuple[dict[str, str], ...], spec: RespondSpec) -> str:
    """Hash of everything that changes the answer: the messages and the sampling settings."""
    key = json.dumps({"m": messages, "t": spec.temperature, "n": spec.max_tokens}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class Plan:
    items: list[Item]  # every (row, language) that can be answered
    pending: list[Item]  # not yet stored
    missing_translation: int  # (row, language) pairs still waiting for the translate step


def plan(recipe: Recipe, store: Store, rows: list[Row]) -> Plan:
    spec = recipe.respond
    done = store.response_keys(spec.model)
    items: list[Item] = []
    missing = 0
    tname = translator_name(recipe)
    for lang in recipe.work_languages:
        trans = {} if lang == "en" else store.translations(tname, lang)
        for r in rows:
            if lang == "en":
                instruction, inp = r.instruction, r.input
            elif r.id in trans:
                instruction, inp = trans[r.id]["instruction"], trans[r.id]["input"]
            else:
                missing += 1
                continue
            msgs = build_messages(instruction, inp)
            items.append(Item(r.id, lang, msgs, prompt_hash(msgs, spec)))
    pending = [it for it in items if (it.row_id, it.lang, it.prompt_hash) not in done]
    return Plan(items, pending, missing)


def make_client(spec: RespondSpec) -> tuple[Any, list[str]]:
    """An AsyncOpenAI client (its own retries off: ours honour the recipe) and the secrets to redact."""
    import httpx
    import openai

    key = read_key(spec.api_key_env, required=spec.base_url is None)  # OpenAI's own API needs one; PermanentError
    try:
        # aiohttp transport (openai[aiohttp]): httpcore's pool costs O(connections x waiters) per request and
        # halves the achievable rate at C=32 on a small CPU (bench/p4_request_rate.py).
        import httpx_aiohttp  # noqa: F401

        http_client: httpx.AsyncClient = openai.DefaultAioHttpClient(timeout=spec.timeout_s)
    except ImportError:
        limits = httpx.Limits(max_connections=spec.concurrency + 8, max_keepalive_connections=spec.concurrency + 8)
        http_client = httpx.AsyncClient(limits=limits, timeout=spec.timeout_s)
    client = openai_client(spec.endpoint, asynchronous=True, http_client=http_client)
    return client, [key] if key else []


@dataclass
class RespondStats:
    planned: int = 0
    already_done: int = 0
    requested: int = 0
    stored: int = 0
    failed: int = 0
    retries: int = 0
    missing_translation: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["errors"] = self.errors[:20]
        return d


async def respond_items(spec: RespondSpec, store: Store, pending: list[Item], progress: bool = True,
                        stats: RespondStats | None = None) -> RespondStats:
    """Answer ``pending`` with at most ``spec.concurrency`` requests in flight, within the RPM/TPM limits."""
    import httpx
    from tqdm.auto import tqdm

    stats = stats or RespondStats()
    client, secrets = make_client(spec)
    rpm, tpm = RateLimiter(spec.rpm), RateLimiter(spec.tpm)
    policy = RetryPolicy(spec.max_retries, spec.backoff_base_s, spec.backoff_max_s)
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for it in pending:
        queue.put_nowait(it)
    finished: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    bar = tqdm(total=len(pending), desc="respond", unit="call", disable=not progress)
    t0 = time.perf_counter()

    async def ask(item: Item) -> dict[str, Any]:
        stats.requested += 1
        # The official client's raw route (openai README, "undocumented requests") instead of the typed
        # ``chat.completions.create``: it skips the SDK's per-request TypedDict transform of the messages and
        # the pydantic build of the answer. That cut the respond step's CPU from ~2.7 to ~1.7 ms per request on
        # this project's 2-core box, where client CPU is what bounds the rate at C=32, L=200 ms
        # (bench/p4_request_rate.py). Auth, base URL, timeouts and status errors (APIStatusError on 4xx/5xx,
        # classified by call_with_retries) are unchanged.
        resp = await client.post("/chat/completions", cast_to=httpx.Response, body={
            "model": spec.model, "messages": list(item.messages), "max_tokens": spec.max_tokens,
            "temperature": spec.temperature})
        return resp.json()

    async def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await rpm.acquire(1)
            if spec.tpm:
                await tpm.acquire(sum(english_tokens(m["content"]) for m in item.messages) + spec.max_tokens)
            try:
                resp, attempts = await call_with_retries(lambda: ask(item), policy)
            except Exception as e:  # noqa: BLE001 - recorded; the item stays pending for the next run
                msg = redact(f"{type(e).__name__}: {e}", secrets)
                stats.failed += 1
                stats.errors.append(f"{item.row_id}/{item.lang}: {msg}")
                await asyncio.to_thread(store.add_failure, "respond", item.row_id, item.lang, msg, policy.max_retries + 1)
                continue
            stats.retries += attempts - 1
            choice = (resp.get("choices") or [{}])[0] or {}
            usage = resp.get("usage") or {}
            await finished.put({
                "row_id": item.row_id, "lang": item.lang, "model": spec.model, "prompt_hash": item.prompt_hash,
                "prompt": item.prompt, "response": (choice.get("message") or {}).get("content") or "",
                "finish_reason": choice.get("finish_reason"), "prompt_tokens": usage.get("prompt_tokens"),
                "completion_tokens": usage.get("completion_tokens"), "via": "online",
            })

    async def writer() -> None:
        while True:
            batch = [await finished.get()]
            while not finished.empty():
                batch.append(finished.get_nowait())
            done = batch[-1] is None
            batch = [b for b in batch if b is not None]
            if batch:
                stats.stored += await asyncio.to_thread(store.add_responses, batch)
                for b in batch:
                    stats.prompt_tokens += b["prompt_tokens"] or 0
                    stats.completion_tokens += b["completion_tokens"] or 0
                bar.update(len(batch))
            if done:
                return

    writer_task = asyncio.create_task(writer())
    try:
        await asyncio.gather(*(worker() for _ in range(max(1, spec.concurrency))))
    finally:
        await finished.put(None)
        await writer_task
        bar.close()
        await client.close()
        stats.seconds = time.perf_counter() - t0
    return stats


def run_respond(recipe: Recipe, store: Store, rows: list[Row], progress: bool = True) -> RespondStats:
    """Plan, then answer every pending item online, or through the Batch API when the recipe says so."""
    p = plan(recipe, store, rows)
    stats = RespondStats(planned=len(p.items), already_done=len(p.items) - len(p.pending),
                         missing_translation=p.missing_translation)
    if recipe.respond.use_batch_api:
        from .batch import run_batch

        return run_batch(recipe.respond, store, p.pending, recipe.out / "batches", stats)
    if not p.pending:
        return stats
    try:
        return asyncio.run(respond_items(recipe.respond, store, p.pending, progress, stats))
    except PermanentError as e:
        stats.errors.append(str(e))
        raise
