"""Acceptance: a new visitor's walk through the studio in headless Chromium, and the README's screenshots.

The app serves a random Llama with a 2048-token context (slow enough on a CPU that a 1000-token reply is still
streaming when Stop is pressed) and three adapters named and tagged like the demo ones. The visitor sees the
multilingual adapter chosen and three example prompts, starts one and stops it (the service decodes no further
step and nothing is stored), sends Arabic (its bubble renders right to left), lets the Arena detect a Chinese
question's language, switches to 中文 and reads the Leaderboard in Chinese. An admin signs in (a reload keeps
the session), annotates, sees the judge's failed calls with their raw outputs and a fresh store table. Every tab's screenshot goes to assets/screenshots/.
"""

from __future__ import annotations

import time

import pytest

from tests.keys_support import FakeOpenAI
from tests.ui_support import (
    PASSWORDS,
    SCREENSHOTS,
    RunningStudio,
    demo_pairs,
    have_chromium,
    make_long_base,
    make_random_adapter,
    studio_page,
    studio_settings,
    write_pairs,
)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")]

TIMEOUT = 60_000
ADAPTERS = {"demo-multi": ["ar", "en", "es", "id", "ja", "zh"], "demo-ar": ["ar"], "demo-zh": ["zh"]}


@pytest.fixture(scope="module")
def studio(tiny_base, tmp_path_factory):
    from eval_studio.io import import_pairs_file

    tmp = tmp_path_factory.mktemp("visitor")
    base = make_long_base(tiny_base, tmp / "long-llama")
    for seed, (name, langs) in enumerate(ADAPTERS.items()):
        make_random_adapter(base, tmp / "adapters" / name, name, langs, seed)
    settings = studio_settings(base, {"root": tmp / "adapters"}, tmp / "studio.db", external_models=(), demo_note=True,
                               gen_defaults={"max_new_tokens": 1000, "ignore_eos": True, "temperature": 0.7})
    with RunningStudio(settings) as app:
        import_pairs_file(app.ctx.db, write_pairs(tmp / "pairs.jsonl", demo_pairs(5)), task=settings.task, overlap=2)
        yield app


@pytest.fixture
def page(studio):
    with studio_page(studio.url, TIMEOUT) as pg:
        yield pg


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => document.querySelectorAll('[class*=toast]').forEach(e => e.remove())")  # no stale notices
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def settled_steps(service, quiet: float = 1.0) -> int:
    """The service's decode-step count once it has not moved for ``quiet`` seconds."""
    deadline = time.time() + 30
    last = service.stats["steps"]
    while time.time() < deadline:
        time.sleep(quiet)
        if service.stats["steps"] == last:
            return last
        last = service.stats["steps"]
    raise AssertionError("the service kept decoding after Stop")


def test_a_new_visitor(page, studio):
    from eval_studio.ui.text import examples

    service = studio.ctx.service
    # the multilingual adapter is chosen, the demo note and three example prompts are shown
    assert "demo-multi" in page.locator("#chat-model input").input_value()
    page.locator("#chat-demo-note").get_by_text("small demo models").wait_for()
    assert [page.locator(f"#chat-example-{i}").inner_text() for i in range(3)] == examples("en")

    # an example starts a reply; Stop ends it mid-stream: no further decode step, nothing stored
    page.locator("#chat-example-0").click()
    page.wait_for_function("() => (document.querySelector('#chat-bot [data-testid=bot]') || {innerText: ''}).innerText.length > 20")
    page.locator("#chat-stop").click()
    steps = settled_steps(service)
    assert steps < 900, "the reply ran (nearly) to its 1000 tokens"
    shown = page.locator("#chat-bot [data-testid=bot]").inner_text()
    time.sleep(1)
    assert page.locator("#chat-bot [data-testid=bot]").inner_text() == shown and service.stats["steps"] == steps
    assert studio.sql("SELECT count(*) FROM turns") == [(0,)]  # a stopped reply is not stored

    # Arabic is rendered right to left, bubble by bubble
    page.locator("#chat-input textarea").fill("مرحبا، ما هي عاصمة مصر؟")
    page.locator("#chat-send").click()
    user = page.locator("#chat-bot [data-testid=user]").filter(has_text="مرحبا")
    user.wait_for()
    page.wait_for_function("() => (document.querySelector('#chat-bot [data-testid=bot]') || {innerText: ''}).innerText.length > 20")
    page.locator("#chat-stop").click()
    assert user.evaluate("e => getComputedStyle(e).direction") == "rtl"
    shot(page, "chat")

    # the Arena fills "Language of your question" from the question; a short round, one blind vote
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-params").get_by_text("Generation parameters").click()
    page.locator("#arena-max-tokens input[type=number]").fill("16")
    page.locator("#arena-max-tokens input[type=number]").press("Enter")
    page.locator("#arena-input textarea").fill("为什么天空是蓝色的？")
    page.locator("#arena-send").click()
    page.locator("#arena-vote-a").wait_for(state="visible")
    assert "中文" in page.locator("#arena-language input").input_value()
    page.locator("#arena-vote-a").click()
    page.locator("#arena-reveal").get_by_text("your vote is recorded").wait_for()
    assert studio.sql("SELECT language, mode FROM battles") == [("zh", "battle")]
    shot(page, "arena")

    # the Leaderboard: one vote rated; then the whole tab in Chinese
    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#leaderboard-refresh").click()
    page.locator("#leaderboard-status").get_by_text("1 of 1 battles match").wait_for()
    page.locator("#leaderboard-ratings .main-svg").first.wait_for()
    shot(page, "leaderboard")
    page.locator("#ui-lang").get_by_text("中文").click()
    page.get_by_role("tab", name="排行榜").wait_for()
    page.locator("#leaderboard-status").get_by_text("1 场对战中 1 场符合").wait_for()
    page.locator("#leaderboard-filters").get_by_text("筛选与评分选项").wait_for()
    page.locator("#leaderboard-refresh").get_by_text("刷新").wait_for()
    assert page.locator("#leaderboard-ratings").get_by_text("评分").first.is_visible()
    page.locator("#ui-lang").get_by_text("English").click()
    page.get_by_role("tab", name="Leaderboard").wait_for()

    # an admin: annotation, the judge's failed calls with raw outputs, a fresh store table
    page.locator("#account").get_by_text("Sign in").first.click()
    page.locator("#login-user input, #login-user textarea").first.fill("ana")
    page.locator("#login-password input").fill(PASSWORDS["ana"])
    page.locator("#login-button").click()
    page.locator("#login-status").get_by_text("Signed in as ana").wait_for()
    page.reload()  # the session survives a reload (a token the server signed, kept in the browser)
    page.locator("#login-status").get_by_text("Signed in as ana").wait_for()
    page.get_by_role("tab", name="Annotate").click()
    page.locator("#ann-vote-a").wait_for(state="visible")
    shot(page, "annotate")
    with FakeOpenAI(reply="Both answers have merits; I cannot pick one.") as judge:
        page.get_by_role("tab", name="Judge").click()
        page.locator("#judge-url input, #judge-url textarea").first.fill(judge.base_url)
        page.locator("#judge-key-env input, #judge-key-env textarea").first.fill("")
        page.locator("#judge-limit input").fill("2")
        page.locator("#judge-start").click()
        page.locator("#judge-status").get_by_text("done").wait_for()
        page.wait_for_function("() => document.querySelector('#judge-failures').innerText.includes('I cannot pick one')")
        assert "unparseable" in page.locator("#judge-failures").inner_text()
        shot(page, "judge")
    page.get_by_role("tab", name="Admin").click()
    # the store table is read when the tab opens, without pressing Refresh: task demo, overlap 2, 5 pairs
    page.wait_for_function("() => /demo\\s+2\\s+5/.test(document.querySelector('#admin-tasks').innerText)")
    shot(page, "admin")
