"""Run a judge prompt over stored pairs through any OpenAI-compatible endpoint, in a background thread.

Each pair is judged twice (both presentation orders, or each answer alone for single-answer prompts).
Responses are cached by (endpoint, judge model, prompt content hash, params): a rerun against another URL asks
that endpoint. Only parseable outputs are cached unless ``cache_errors`` is set, and a cached output that does
not parse is never replayed (the call is made again), so a resumed run retries its failures. Every call goes into
the token/cost ledger. Cancelling (``cancel()``, or Ctrl-C while ``join()`` waits) sends no further requests: the
calls in flight finish and the run ends ``cancelled``. A run whose process died is marked ``error`` with an
``interrupted: ...`` message when the next run starts (``judging.mark_interrupted_runs``). The API key is read
from an environment variable at run time and is never stored: it is not part of any config that is persisted,
and it is redacted from anything the endpoint sends back before storage.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from sqlalchemy import Engine

# redact: the key that was sent, and anything key-like, out of whatever comes back. EndpointError is the project's
# one endpoint error (re-exported here: the run stops on it); NO_KEY the one dummy key.
from bactrian.client import (NO_KEY, OPENAI_KEY_ENV, Endpoint, EndpointError, MissingKey, is_openai, openai_client,
                             redact)

from eval_studio.judge.parse import Parsed, ParseError, parse_output
from eval_studio.judge.prompts import (
    SINGLE,
    JudgePrompt,
    content_key,
    get_prompt,
    new_boundary,
    render,
)
from eval_studio.store import judging
from eval_studio.store.judging import CachedResponse, JudgeTarget, RunStatus, stable_hash

log = logging.getLogger(__name__)
__all__ = ["NO_KEY", "EndpointError", "JudgeConfig", "JudgeRunner", "Progress", "judge_pairs", "price_for",
           "public_url", "resolve_api_key"]


@dataclass(frozen=True)
class JudgeConfig:
    prompt: str
    model: str
    base_url: str
    api_key_env: str | None = None  # name of the variable holding the key; default OPENAI_API_KEY for api.openai.com
    temperature: float = 0.0
    max_tokens: int = 1024
    seed: int | None = None
    concurrency: int = 4
    use_cache: bool = True
    cache_errors: bool = False  # also cache (and replay) outputs that do not parse
    timeout_s: float = 120.0
    max_retries: int = 2
    price_in: float | None = None  # USD per 1M prompt tokens (default: data/prices.json)
    price_out: float | None = None

    def params(self) -> dict[str, Any]:
        """The settings that change what the judge answers (part of the cache key)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}

    @property
    def endpoint(self) -> Endpoint:
        """The judge's endpoint; with no variable named, OpenAI's own API reads OPENAI_API_KEY."""
        env = self.api_key_env
        if env is None and is_openai(self.base_url):
            env = OPENAI_KEY_ENV
        return Endpoint(self.base_url, self.model, env, self.timeout_s)


@dataclass(frozen=True)
class Progress:
    run_id: int
    done: int
    total: int
    errors: int
    status: str  # running | done | error | cancelled
    message: str | None = None


def public_url(url: str) -> str:
    """The endpoint URL without credentials, query or fragment (what may be stored)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def resolve_api_key(config: JudgeConfig) -> str:
    """The key the judge will send (NO_KEY when no variable is named); a named variable that is unset stops the
    run before any call (EndpointError)."""
    endpoint = config.endpoint
    try:
        return endpoint.api_key(required=endpoint.api_key_env is not None) or NO_KEY
    except MissingKey as e:
        raise MissingKey(f"the judge API key: {e}") from None


@lru_cache(maxsize=1)
def _prices() -> dict[str, tuple[float, float]]:
    raw = json.loads(resources.files("eval_studio.judge.data").joinpath("prices.json").read_text("utf-8"))
    return {k: (float(v[0]), float(v[1])) for k, v in raw.items() if not k.startswith("_")}


def price_for(config: JudgeConfig) -> tuple[float, float] | None:
    if config.price_in is not None or config.price_out is not None:
        return (config.price_in or 0.0, config.price_out or 0.0)
    matches = [k for k in _prices() if config.model == k or config.model.startswith(k + "-")]
    return _prices()[max(matches, key=len)] if matches else None


def _to_pair_terms(prompt: JudgePrompt, ordering: str, parsed: Parsed) -> tuple[str | None, float | None, float | None]:
    """Map a verdict/scores given on the shown order back to the pair's own a/b."""
    if prompt.type == SINGLE:
        return None, (parsed.rating if ordering == "a" else None), (parsed.rating if ordering == "b" else None)
    first, second = ("a", "b") if ordering == "ab" else ("b", "a")
    verdict = {"A": first, "B": second, "tie": "tie"}[parsed.verdict]
    scores = {first: parsed.score_a, second: parsed.score_b}
    return verdict, scores["a"], scores["b"]


class JudgeRunner:
    """``start()`` returns the run id at once; the work happens in a daemon thread. ``on_progress`` is called
    (from that thread) after every call and once at the end."""

    def __init__(self, engine: Engine, config: JudgeConfig, targets: Sequence[JudgeTarget],
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.engine, self.config, self.targets = engine, config, list(targets)
        self.prompt = get_prompt(config.prompt)
        self.on_progress = on_progress
        self._stop = threading.Event()
        self._finished = threading.Event()  # set when the run has its final status
        self._thread: threading.Thread | None = None
        self.run_id: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> int:
        if self._thread is not None:
            raise RuntimeError("this runner was already started")
        params = self.config.params()
        judging.mark_interrupted_runs(self.engine)  # runs left "running" by a process that is gone
        done = judging.completed_calls(self.engine, prompt_name=self.prompt.name, prompt_hash=self.prompt.hash,
                                       judge_model=self.config.model, params_hash=stable_hash(params),
                                       base_url=public_url(self.config.base_url))
        self._calls = [(t, o) for t in self.targets for o in self.prompt.orderings if (t.pair_id, o) not in done]
        self.run_id = judging.create_run(
            self.engine, prompt_name=self.prompt.name, prompt_hash=self.prompt.hash, judge_model=self.config.model,
            base_url=public_url(self.config.base_url), params=params, n_total=len(self._calls), live=True,
        )
        self._thread = threading.Thread(target=self._main, name=f"judge-run-{self.run_id}", daemon=True)
        self._thread.start()
        return self.run_id

    def cancel(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> RunStatus:
        """Wait for the run. Ctrl-C (KeyboardInterrupt) while waiting cancels it: no further requests are sent,
        the calls in flight finish, the run is recorded as ``cancelled``, then the KeyboardInterrupt goes on."""
        if self._thread is None:
            raise RuntimeError("start() the runner first")
        # An Event, not Thread.join: a join interrupted by Ctrl-C may mark a live thread as stopped (bpo-45274),
        # after which a second join returns at once, before the run is recorded as cancelled.
        try:
            self._finished.wait(timeout)
        except KeyboardInterrupt:
            self.cancel()
            self._finished.wait()
            raise
        return judging.run_status(self.engine, self.run_id)

    def run(self) -> RunStatus:
        """Start and wait (for the command line)."""
        self.start()
        return self.join()

    # -- work --------------------------------------------------------------------------------------
    def _main(self) -> None:
        status, message, key = "done", None, ""
        try:
            key = resolve_api_key(self.config)  # checked first: an unset variable ends the run with its name
            client = openai_client(self.config.endpoint, max_retries=self.config.max_retries)
            with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency), thread_name_prefix="judge-call") as pool:
                futures = [pool.submit(self._call, client, key, t, o) for t, o in self._calls]
                for fut in as_completed(futures):
                    try:
                        fut.result()
                    except BaseException:
                        self._stop.set()  # queued calls return at once instead of hitting a dead endpoint
                        for f in futures:
                            f.cancel()
                        raise
                    self._report("running")
            if self._stop.is_set():
                st = judging.run_status(self.engine, self.run_id)
                status, message = "cancelled", f"cancelled after {st.n_done} of {st.n_total} calls"
        except EndpointError as e:
            self._stop.set()
            status, message = "error", redact(str(e), key)
        except Exception as e:  # noqa: BLE001 - the run must end with a status, whatever happened
            self._stop.set()
            log.exception("judge run %s failed", self.run_id)
            status, message = "error", redact(f"{type(e).__name__}: {e}", key)
        if status == "done":
            st = judging.run_status(self.engine, self.run_id)
            message = f"{st.n_done} calls, {st.n_errors} unparseable or failed"
        try:
            judging.finish_run(self.engine, self.run_id, status, message)
            self._report(status, message)
        finally:
            judging.forget_live_run(self.run_id)
            self._finished.set()

    def _report(self, status: str, message: str | None = None) -> None:
        if self.on_progress is None:
            return
        st = judging.run_status(self.engine, self.run_id)
        try:
            self.on_progress(Progress(st.id, st.n_done, st.n_total, st.n_errors, status, message))
        except Exception:  # noqa: BLE001 - a broken UI callback must not kill the run
            log.exception("judge progress callback failed")

    def _call(self, client: openai.OpenAI, key: str, target: JudgeTarget, ordering: str) -> None:
        if self._stop.is_set():
            return
        cfg, prompt = self.config, self.prompt
        shown = {"ab": (target.answer_a, target.answer_b), "ba": (target.answer_b, target.answer_a),
                 "a": (target.answer_a,), "b": (target.answer_b,)}[ordering]
        params = cfg.params()
        cache_key = stable_hash([public_url(cfg.base_url), content_key(prompt, target.question, shown, target.language),
                           cfg.model, params])
        response = judging.cache_get(self.engine, cache_key) if cfg.use_cache else None
        cached = response is not None
        error: str | None = None
        result: tuple[str | None, float | None, float | None] | str | None = None  # pair terms, or why unparseable
        if cached:
            response = CachedResponse(redact(response.raw_output, key, key_like=False), response.prompt_tokens, response.completion_tokens)
            result = self._parse(ordering, response, target, shown)
            if isinstance(result, str) and not cfg.cache_errors:
                response, cached = None, False  # a cached failure is not replayed: ask again
        if response is None:
            if self._stop.is_set():
                return  # cancelled meanwhile: send nothing more
            try:
                response = self._ask(client, target, shown)
            except openai.APIStatusError as e:  # one call refused (e.g. a too-long prompt): an error row, run goes on
                error = redact(f"api error {e.status_code}: {e.message}", key)  # never cached
            if response is not None:
                response = CachedResponse(redact(response.raw_output, key, key_like=False), response.prompt_tokens, response.completion_tokens)
                result = self._parse(ordering, response, target, shown)
                if not isinstance(result, str) or cfg.cache_errors:
                    judging.cache_put(self.engine, cache_key, judge_model=cfg.model, params=params, response=response)
        verdict = score_a = score_b = None
        if error is None:
            if isinstance(result, str):
                error = f"unparseable: {result}"
            else:
                verdict, score_a, score_b = result
        pt, ct = (response.prompt_tokens, response.completion_tokens) if response else (0, 0)
        price = price_for(cfg)
        judging.record_judgment(
            self.engine, run_id=self.run_id, pair_id=target.pair_id, prompt_name=prompt.name, prompt_hash=prompt.hash,
            judge_model=cfg.model, params=params, params_hash=stable_hash(params), ordering=ordering,
            raw_output=response.raw_output if response else None, verdict=verdict, score_a=score_a, score_b=score_b,
            error=error, cached=cached, prompt_tokens=pt, completion_tokens=ct,
            cost_usd=None if price is None else (pt * price[0] + ct * price[1]) / 1e6,
        )

    def _parse(self, ordering: str, response: CachedResponse, target: JudgeTarget,
               shown: tuple[str, ...]) -> tuple[str | None, float | None, float | None] | str:
        """The verdict and scores in the pair's own terms, or the reason the output does not parse."""
        try:
            parsed = parse_output(self.prompt.type, response.raw_output, (target.question, *shown))
        except ParseError as e:
            return str(e)
        return _to_pair_terms(self.prompt, ordering, parsed)

    def _ask(self, client: openai.OpenAI, target: JudgeTarget, shown: tuple[str, ...]) -> CachedResponse:
        cfg = self.config
        boundary = new_boundary(target.question, *shown)
        messages = render(self.prompt, target.question, shown, target.language, boundary)
        extra = {"seed": cfg.seed} if cfg.seed is not None else {}
        try:
            resp = client.chat.completions.create(model=cfg.model, messages=messages, temperature=cfg.temperature,
                                                  max_tokens=cfg.max_tokens, **extra)
        except (openai.APIConnectionError, openai.APITimeoutError) as e:
            raise EndpointError(f"judge endpoint unreachable at {public_url(cfg.base_url)}: {e}") from e
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise EndpointError(f"judge endpoint refused the API key ({e.status_code}): {e.message}") from e
        except openai.NotFoundError as e:
            raise EndpointError(f"judge endpoint or model {cfg.model!r} not found (404): {e.message}") from e
        except openai.BadRequestError as e:
            if getattr(e, "code", None) == "model_not_found":
                raise EndpointError(f"judge model {cfg.model!r} not served at {public_url(cfg.base_url)}: {e.message}") from e
            raise
        content = resp.choices[0].message.content if resp.choices else None
        usage = resp.usage
        return CachedResponse(content or "", getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)


def judge_pairs(engine: Engine, config: JudgeConfig, task: str | None = None, language: str | None = None,
                limit: int | None = None, on_progress: Callable[[Progress], None] | None = None) -> JudgeRunner:
    """Start a background run over the stored pairs (optionally one task/language); returns the runner."""
    runner = JudgeRunner(engine, config, judging.targets(engine, task=task, language=language, limit=limit), on_progress)
    runner.start()
    return runner
