"""The studio in Chromium with the real embedded Gemma 3 270M and the shipped demo adapters (slow: real model on CPU).

What a visitor of the Space sees: a Chinese question to the Chinese demo adapter in Chat, and the multilingual
adapter against the bare base in the Arena (screenshots into the tmp dir).
"""

from __future__ import annotations

import time

import pytest

from tests.ui_support import RunningStudio, ask_named_arena, have_chromium, pick, studio_page, users_text

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")]

TIMEOUT = 240_000  # a real model on two shared CPU cores


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """The studio as `python app.py` builds it: its own service, on the CPU the llama.cpp fast path (issue 15)."""
    from bactrian.llamacpp import LlamaCppService
    from bactrian.llamacpp_lib import unavailable_reason
    from bactrian.models import is_cached
    from eval_studio.settings import Settings

    if not is_cached("gemma-3-270m"):
        pytest.skip("gemma-3-270m is not cached yet (set BACTRIAN_CACHE, or run the README's set-up command)")
    settings = Settings(
        db_url=f"sqlite:///{tmp_path_factory.mktemp('gemma-browser') / 'studio.db'}", users_text=users_text(),
        pregenerate=0, questions_file=None,
        gen_defaults={"max_new_tokens": 48, "temperature": 0.0, "repetition_penalty": 1.1},
    )
    with RunningStudio(settings) as app:
        service = app.ctx.service
        if "demo-zh" not in service.engine.adapters.names():
            pytest.skip("the demo adapters are not in bactrian/data/adapters/gemma-3-270m (scripts/build_demo_adapters.sh)")
        # the default engine on a CPU for the embedded base, where llama.cpp loads: what a Space visitor is served by
        assert isinstance(service, LlamaCppService) == (unavailable_reason() is None), service.describe()
        yield app


@pytest.fixture
def page(studio, tmp_path):
    with studio_page(studio.url, TIMEOUT) as pg:
        pg.shots = tmp_path  # the README's screenshots come from test_browser_visitor.py
        yield pg


def settled_text(page, selector: str, quiet_s: float = 3.0) -> str:
    """The bot text once it is non-empty and has stopped changing (the stream ended)."""
    deadline = time.monotonic() + TIMEOUT / 1000
    last, since = "", time.monotonic()
    while time.monotonic() < deadline:
        text = "\n".join(page.locator(selector).all_inner_texts()).strip()
        if text != last:
            last, since = text, time.monotonic()
        elif text and time.monotonic() - since >= quiet_s:
            return text
        time.sleep(0.5)
    raise AssertionError(f"{selector}: the reply did not settle, last text {last!r}")


def shot(page, name: str) -> None:
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=True)


def test_chat_with_the_chinese_demo_adapter(page, studio):
    page.get_by_role("tab", name="Chat").click()
    pick(page, "chat-model", "demo-zh")
    page.locator("#chat-input textarea").fill("用一句话介绍骆驼。")
    page.locator("#chat-send").click()
    reply = settled_text(page, "#chat-bot [data-testid=bot]")
    assert reply and "failed" not in reply.lower()
    shot(page, "chat")
    turns = studio.sql("SELECT role, content FROM turns ORDER BY id")
    assert [r for r, _ in turns] == ["user", "assistant"] and turns[0][1] == "用一句话介绍骆驼。"


def test_arena_multilingual_adapter_against_the_bare_base(page, studio):
    ask_named_arena(page, "demo-multi", "gemma-3-270m", "¿Por qué los camellos pueden vivir en el desierto?")
    shot(page, "arena")
    page.locator("#arena-vote-a").click()
    page.locator("#arena-reveal").get_by_text("your vote is recorded").wait_for()
    (model_a, model_b, answer_a, answer_b, winner), = studio.sql(
        "SELECT b.model_a, b.model_b, b.answer_a, b.answer_b, v.winner FROM votes v JOIN battles b ON b.id = v.battle_id")
    assert (model_a, model_b, winner) == ("demo-multi", "gemma-3-270m", "a")
    assert answer_a.strip() and answer_b.strip()
