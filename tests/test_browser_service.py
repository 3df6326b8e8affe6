"""Browser acceptance for the generation service: Playwright drives Debian's headless Chromium.

- two studio sessions chatting at once both stream (neither waits for the other to finish);
- the studio's Chat and Arena on a remote engine: a second ``bactrian serve`` process stands in for vLLM.

Screenshots go to each test's tmp dir (assets/screenshots/ is for the tab tests).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.ui_support import (CHROMIUM, RunningStudio, alnum, ask_named_arena, have_chromium, make_long_base, pick,
                              studio_settings)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")]

TIMEOUT = 60_000

# Every change of the chat's bot bubbles, stamped with the browser's clock (one clock for all pages).
RECORD_JS = """
() => {
  window.__samples = [];
  const take = () => {
    const bots = document.querySelectorAll('#chat-bot [data-testid=bot]');
    const text = bots.length ? bots[bots.length - 1].innerText : '';
    const last = window.__samples[window.__samples.length - 1];
    if (!last || last[1] !== text.length) window.__samples.push([Date.now(), text.length]);
  };
  new MutationObserver(take).observe(document.querySelector('#chat-bot'), {subtree: true, childList: true, characterData: true});
  setInterval(take, 25);
}
"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # background pages must not have their timers throttled: both sessions are watched at once
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"])
        yield b
        b.close()


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(url)
    page.get_by_role("tab", name="Arena").wait_for()
    return page


def bot_text(page, column: str) -> str:
    return "\n".join(page.locator(f"#{column} [data-testid=bot]").all_inner_texts())


def shot(page, path) -> None:
    page.evaluate("() => document.querySelectorAll('[class*=toast]').forEach(e => e.remove())")
    page.screenshot(path=str(path), full_page=True)


def growth(samples: list) -> list[float]:
    """The times at which a bubble's text grew."""
    return [t for (t, n), (_, prev) in zip(samples[1:], samples) if n > prev]


@pytest.fixture(scope="module")
def long_base(tiny_base, tmp_path_factory):
    return make_long_base(tiny_base, tmp_path_factory.mktemp("bases") / "long-llama")


def test_two_sessions_chatting_at_once_both_stream(browser, long_base, tmp_path):
    tokens = 240
    settings = studio_settings(long_base, {"root": ""}, tmp_path / "studio.db", adapters_dirs=(),  # the bare base only
                               gen_defaults={"max_new_tokens": tokens, "min_tokens": tokens, "temperature": 0.7})
    with RunningStudio(settings) as studio:
        pages = [open_page(browser, studio.url) for _ in range(2)]
        try:
            for page in pages:
                page.evaluate(RECORD_JS)
                page.locator("#chat-input textarea").fill("Tell me a long story about camels.")
            for page in pages:  # send in both, one right after the other
                page.locator("#chat-send").click()
            deadline = time.time() + 120
            while len(replies(studio)) < 2:  # a reply is stored once it is complete
                assert time.time() < deadline, "the two replies did not complete"
                time.sleep(0.2)
            stored = replies(studio)
            whole = {alnum(text) for text, _ in stored}
            for page in pages:  # each page ends showing a whole stored reply
                wait_until(lambda: alnum(bot_text(page, "chat-bot")) in whole, what="the whole reply in the page")
            shown = [alnum(bot_text(page, "chat-bot")) for page in pages]
            samples = [page.evaluate("() => window.__samples") for page in pages]
            for i, page in enumerate(pages):
                shot(page, tmp_path / f"session-{i}.png")
        finally:
            for page in pages:
                page.context.close()
        grew = [growth(s) for s in samples]
        assert all(len(g) >= 3 for g in grew), samples  # each bubble streamed in several steps
        (a, b) = grew
        # each bubble grew several times while the other had started and not yet finished: neither waited
        assert sum(b[0] < t < b[-1] for t in a) >= 2, samples
        assert sum(a[0] < t < a[-1] for t in b) >= 2, samples
        stats = getattr(studio.ctx.service, "stats", {})
        if "largest_batch" in stats:
            assert stats["largest_batch"] >= 2  # the two rows decoded in one batch
        assert sorted(shown) == sorted(alnum(text) for text, _ in stored)  # each page shows its own reply
        assert all(json.loads(p)["max_new_tokens"] == tokens and json.loads(p)["finish_reason"] == "length" for _, p in stored)


def replies(studio) -> list[tuple[str, str]]:
    return studio.sql("SELECT content, params FROM turns WHERE role = 'assistant'")


def wait_until(check, timeout: float = 60, what: str = "condition"):
    deadline = time.time() + timeout
    while not (value := check()):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def test_chat_and_arena_on_a_served_engine(browser, tiny_base, tiny_adapters, tmp_path):
    """A second `bactrian serve` process stands in for vLLM (the same API); the studio loads no model of its own."""
    from bactrian.remote import RemoteService
    from tests.serve_support import ServeProcess

    with ServeProcess(tiny_base, tiny_adapters["root"], tmp_path) as engine:
        settings = studio_settings(tiny_base, tiny_adapters, tmp_path / "studio.db", engine_url=engine.base_url, adapters_dirs=(),
                                   gen_defaults={"max_new_tokens": 16, "min_tokens": 4, "temperature": 0.7})
        with RunningStudio(settings) as studio:
            assert isinstance(studio.ctx.service, RemoteService) and not hasattr(studio.ctx.service, "engine")
            page = open_page(browser, studio.url)
            try:
                # Chat with an adapter the remote engine serves
                pick(page, "chat-model", "alpha")
                page.locator("#chat-input textarea").fill("Hi there")
                page.locator("#chat-send").click()
                (reply,) = wait_until(lambda: studio.sql("SELECT t.content FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                                                         "WHERE t.role = 'assistant' AND c.model = 'alpha'"), what="the chat reply")
                wait_until(lambda: alnum(bot_text(page, "chat-bot")) == alnum(reply[0]), what="the reply in the page")
                assert alnum(reply[0])  # a random tiny model may answer in symbols, but it answers
                shot(page, tmp_path / "remote-chat.png")

                # one Arena round, named, and a vote
                ask_named_arena(page, "alpha", "beta", "What is the capital of France?")
                shown_a, shown_b = bot_text(page, "arena-a"), bot_text(page, "arena-b")
                page.locator("#arena-vote-b").click()
                page.locator("#arena-reveal").get_by_text("your vote is recorded").wait_for()
                shot(page, tmp_path / "remote-arena.png")
            finally:
                page.context.close()
            (row,) = studio.sql("SELECT b.model_a, b.model_b, b.answer_a, b.answer_b, b.digest_a, b.digest_b, v.winner "
                                "FROM votes v JOIN battles b ON b.id = v.battle_id")
            catalog = studio.ctx.catalog
            assert row[:2] == ("alpha", "beta") and row[6] == "b"
            assert (alnum(row[2]), alnum(row[3])) == (alnum(shown_a), alnum(shown_b))  # exactly what was shown
            assert row[4:6] == (catalog.get("alpha").digest, catalog.get("beta").digest) and row[4]  # lineage from /v1/models
        # the served engine did the work: one chat and two arena columns
        assert engine.health()["stats"]["requests"] >= 3
        assert (tmp_path / "remote-chat.png").stat().st_size > 0 and (tmp_path / "remote-arena.png").stat().st_size > 0
