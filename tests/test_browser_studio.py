"""Browser acceptance tests: Playwright drives Debian's headless Chromium against the real studio on 127.0.0.1.

One app (tiny model + two tiny adapters + a dead external model, temp SQLite) and one browser serve the module.
Tests take screenshots of their tab into their tmp dir (the README's come from test_browser_visitor.py).
"""

from __future__ import annotations

import re

import pytest

from tests.ui_support import (
    PASSWORDS,
    RunningStudio,
    alnum,
    demo_pairs,
    have_chromium,
    pick,
    launch_browser,
    studio_settings,
    write_pairs,
)

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_chromium(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")]

TIMEOUT = 60_000


@pytest.fixture(scope="module")
def studio(tiny_base, tiny_adapters, tmp_path_factory):
    from eval_studio.io import import_pairs_file

    tmp = tmp_path_factory.mktemp("browser-studio")
    settings = studio_settings(tiny_base, tiny_adapters, tmp / "studio.db")
    with RunningStudio(settings) as app:
        import_pairs_file(app.ctx.db, write_pairs(tmp / "pairs.jsonl", demo_pairs(5)), task=settings.task, overlap=2)
        yield app


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()


@pytest.fixture
def page(browser, studio, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.shots = tmp_path  # the README's screenshots come from test_browser_visitor.py
    pg.set_default_timeout(TIMEOUT)
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    pg.goto(studio.url)
    pg.get_by_role("tab", name="Arena").wait_for()
    yield pg
    context.close()


def shot(page, name: str) -> None:
    page.evaluate("() => document.querySelectorAll('[class*=toast]').forEach(e => e.remove())")  # no stale notices
    page.screenshot(path=str(page.shots / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def sign_in(page, name: str) -> None:
    page.locator("#account").get_by_text("Sign in").first.click()
    fill(page, "login-user", name)
    fill(page, "login-password", PASSWORDS[name])
    page.locator("#login-button").click()
    page.locator("#login-status").get_by_text(f"Signed in as {name}").wait_for()


def fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id}").locator("textarea, input").first.fill(text)


def bot_text(page, column: str) -> str:
    return "\n".join(page.locator(f"#{column} [data-testid=bot]").all_inner_texts())


def toast(page, text: str) -> None:
    page.get_by_text(text).first.wait_for()


def ask_arena(page, message: str) -> None:
    page.locator("#arena-input textarea").fill(message)
    page.locator("#arena-send").click()


def test_arena_named_both_columns_fill_and_vote_is_stored(page, studio):
    open_tab(page, "Arena")
    page.locator("#arena-mode").get_by_text("Named").click()
    pick(page, "arena-pick-a", "[other] alpha")
    pick(page, "arena-pick-b", "[other] beta")
    before = studio.sql("SELECT count(*) FROM votes")[0][0]
    ask_arena(page, "What is the capital of France?")
    page.locator("#arena-vote-a").wait_for(state="visible")  # appears only once both answers are complete
    shown_a, shown_b = bot_text(page, "arena-a"), bot_text(page, "arena-b")
    assert shown_a.strip() and shown_b.strip()  # both filled (a random tiny model may answer in punctuation only)
    page.locator("#arena-vote-a").click()
    page.locator("#arena-reveal").get_by_text("your vote is recorded").wait_for()
    page.locator("#arena-vote-a").wait_for(state="hidden")
    rows = studio.sql("SELECT b.model_a, b.model_b, b.answer_a, b.answer_b, b.question, v.winner, b.mode, b.params, v.annotator_id "
                      "FROM votes v JOIN battles b ON b.id = v.battle_id ORDER BY v.id DESC LIMIT 1")
    model_a, model_b, answer_a, answer_b, question, winner, mode, params, annotator = rows[0]
    assert studio.sql("SELECT count(*) FROM votes")[0][0] == before + 1
    assert (model_a, model_b, winner, mode, question) == ("alpha", "beta", "a", "named", "What is the capital of France?")
    assert annotator is None  # anonymous visitor
    assert alnum(answer_a) == alnum(shown_a) and alnum(answer_b) == alnum(shown_b)  # exactly the outputs shown
    assert '"max_new_tokens": 10' in params


def test_battle_mode_hides_then_reveals_names(page, studio):
    open_tab(page, "Arena")
    ask_arena(page, "¿Cuál es la capital de España?")
    page.locator("#arena-vote-tie").wait_for(state="visible")
    assert page.locator("#arena-a").get_by_text("Model A (hidden)").is_visible()
    assert page.locator("#arena-b").get_by_text("Model B (hidden)").is_visible()
    battle = studio.sql("SELECT model_a, model_b, mode FROM battles ORDER BY id DESC LIMIT 1")[0]
    assert battle[2] == "battle"
    reveal_area = page.locator("#arena-reveal").inner_text()
    assert battle[0] not in reveal_area and battle[1] not in reveal_area
    page.locator("#arena-vote-tie").click()
    page.locator("#arena-reveal").get_by_text(f"A was {battle[0]}, B was {battle[1]}").wait_for()
    page.locator("#arena-a").get_by_text(f"A · {battle[0]}").wait_for()
    page.locator("#arena-b").get_by_text(f"B · {battle[1]}").wait_for()
    assert studio.sql("SELECT v.winner FROM votes v JOIN battles b ON b.id = v.battle_id WHERE b.mode = 'battle' ORDER BY v.id DESC LIMIT 1") == [("tie",)]


def test_annotate_keyboard_shortcuts_progress_and_no_repeats(page, studio):
    sign_in(page, "bob")
    open_tab(page, "Annotate")
    page.locator("#ann-vote-a").wait_for(state="visible")
    shot(page, "annotate")
    seen, progress = [], []
    for key in ["1", "2", "3", "4", "s"]:
        question = page.locator("#ann-question").inner_text()
        assert "Question number" in question
        seen.append(re.search(r"Question number (\d+)", question).group(1))
        progress.append(page.locator("#ann-progress").inner_text())
        page.locator("body").click(position={"x": 5, "y": 5})  # focus outside any text field
        page.keyboard.press(key)
        page.wait_for_function("q => !document.querySelector('#ann-question') || !document.querySelector('#ann-question').innerText.includes(q)",
                               arg=question.splitlines()[-1])
    page.locator("#ann-status").get_by_text("Nothing left for you").wait_for()
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 5  # every pair once, none twice
    done = [int(re.search(r"(\d+) done", p).group(1)) for p in progress]
    assert done == [0, 1, 2, 3, 4]
    assert "4 done" in page.locator("#ann-progress").inner_text()
    winners = studio.sql("SELECT v.winner, a.swapped FROM votes v JOIN assignments a ON a.battle_id = v.battle_id "
                         "JOIN annotators n ON n.id = a.annotator_id WHERE n.name = 'bob' ORDER BY v.id")
    assert [w for w, _ in winners] == ["a", "b", "tie", "both_bad"]
    statuses = studio.sql("SELECT a.status, count(*) FROM assignments a JOIN annotators n ON n.id = a.annotator_id "
                          "WHERE n.name = 'bob' GROUP BY a.status")
    assert dict(statuses) == {"done": 4, "skipped": 1}
    assert studio.sql("SELECT count(*), count(DISTINCT pair_id) FROM assignments a JOIN annotators n ON n.id = a.annotator_id WHERE n.name = 'bob'") == [(5, 5)]


def test_bad_inputs_empty_too_long_and_html_is_inert(page, studio):
    open_tab(page, "Chat")
    counts = lambda: studio.sql("SELECT (SELECT count(*) FROM conversations), (SELECT count(*) FROM turns)")[0]  # noqa: E731
    start = counts()
    page.locator("#chat-send").click()  # empty
    toast(page, "Type a message first.")
    page.locator("#chat-input textarea").fill("x" * 501)  # the test app's cap is 500
    page.locator("#chat-send").click()
    toast(page, "The message has 501 characters; the limit is 500")
    assert counts() == start  # nothing stored
    assert page.locator("#chat-bot [data-testid=user]").count() == 0
    evil = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2;alert(2)</script><b id="injected">bold</b>'
    page.locator("#chat-input textarea").fill(evil)
    page.locator("#chat-send").click()
    page.locator("#chat-bot [data-testid=bot]").first.wait_for()
    page.wait_for_function("() => document.querySelector('#chat-send') && !document.querySelector('#chat-bot .generating')")
    user_msg = page.locator("#chat-bot [data-testid=user]").first
    user_msg.get_by_text("<script>", exact=False).wait_for()  # shown as text
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#chat-bot img[src=x]").count() == 0 and page.locator("#injected").count() == 0
    assert page.locator("#chat-bot script").count() == 0
    assert page.dialogs == []
    page.wait_for_function("n => document.querySelectorAll('#chat-bot [data-testid=bot]').length >= 1", arg=1)
    page.wait_for_timeout(500)
    assert studio.sql("SELECT content FROM turns WHERE role = 'user' ORDER BY id DESC LIMIT 1") == [(evil,)]  # stored raw


def test_one_arena_column_failing(page, studio):
    open_tab(page, "Arena")
    page.locator("#arena-mode").get_by_text("Named").click()
    pick(page, "arena-pick-a", "[other] alpha")
    pick(page, "arena-pick-b", "[external] offline-gpt")
    battles = studio.sql("SELECT count(*) FROM battles")[0][0]
    ask_arena(page, "Hello there")
    page.locator("#arena-b").get_by_text("This model failed").wait_for()
    page.locator("#arena-reveal").get_by_text("cannot be voted on").wait_for()
    assert alnum(bot_text(page, "arena-a"))  # the other column still answered
    assert page.locator("#arena-vote-a").is_hidden()
    assert studio.sql("SELECT count(*) FROM battles")[0][0] == battles  # nothing to vote on was stored


def test_judge_endpoint_down_and_app_keeps_serving(page, studio):
    open_tab(page, "Judge")
    page.locator("#judge-start").click()
    toast(page, "Admins only")  # anonymous visitors cannot spend the server's keys
    sign_in(page, "ana")
    fill(page, "judge-url", "http://127.0.0.1:9/v1")
    fill(page, "judge-key-env", "")
    page.locator("#judge-start").click()
    page.locator("#judge-status").get_by_text(re.compile(r": error — .*unreachable")).wait_for()
    shot(page, "judge")
    open_tab(page, "Chat")  # the app still answers
    page.locator("#chat-input textarea").fill("Still there?")
    page.locator("#chat-send").click()
    page.locator("#chat-bot [data-testid=bot]").first.wait_for()


def test_admin_export_requires_admin_and_downloads(page, studio):
    open_tab(page, "Admin")
    page.locator("#admin-export").click()
    toast(page, "Admins only")
    sign_in(page, "ana")
    page.locator("#admin-export").click()
    page.locator("#admin-result").get_by_text("Exported 4 file(s).").wait_for()
    page.locator("#admin-files").get_by_text("conversations").wait_for()
    listed = re.sub(r"\s+", "", page.locator("#admin-files").inner_text())
    assert all(f"{name}.jsonl" in listed for name in ("votes", "judgments", "conversations", "pairs"))
    shot(page, "admin")


def test_leaderboard_tab_and_ui_language_switch(page, studio):
    open_tab(page, "Leaderboard")
    page.locator("#leaderboard-refresh").click()
    page.locator("#leaderboard-status").get_by_text("battles match").wait_for()
    from eval_studio.analysis.plots import FIGURE_IDS

    for name in FIGURE_IDS:  # every chart is drawn: a rendered plotly figure has an SVG main layer
        page.locator(f"#leaderboard-{name} .main-svg").first.wait_for()
    shot(page, "leaderboard")
    page.locator("#ui-lang").get_by_text("中文").click()
    page.get_by_role("tab", name="竞技场").wait_for()
    open_tab(page, "竞技场")
    page.locator("#arena-send").get_by_text("发送").wait_for()
