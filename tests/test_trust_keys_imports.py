"""Issue 16, points 7-9 and 13: the operator's keys and money, and one name per setting.

Real parts: an OpenAI-compatible server on 127.0.0.1 (``tests/keys_support.py``) that is the studio's engine, an
external "paid" model whose error body repeats the key it received, and a judge; a real SQLite file; the real
Gradio app driven over HTTP with ``gradio_client``; ``bactrian`` subprocesses. Points 10-12 (imports of real
data) are in ``tests/test_trust_imports.py``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.keys_support import FakeOpenAI
from tests.ui_support import PASSWORDS, RunningStudio, demo_pairs, users_text, write_pairs

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-test-" + secrets.token_hex(20)  # the operator's key for the paid model and the judge
KEY_ENV = "TRUST_PAID_KEY"


@pytest.fixture
def server():
    with FakeOpenAI(deny={"paid-model": 401, "refusing-judge": 400}) as s:
        yield s


def studio_settings(server: FakeOpenAI, tmp_path: Path, **over):
    from eval_studio.settings import ExternalModel, Settings

    values = dict(db_url=f"sqlite:///{tmp_path / 'studio.db'}", engine_url=server.base_url, users_text=users_text(),
                  external_models=(ExternalModel("paid", server.base_url, "paid-model", KEY_ENV),),
                  questions_file=None, pregenerate=0, bench_results=(), gen_defaults={"max_new_tokens": 16})
    values.update(over)
    return Settings(**values)


@pytest.fixture
def ctx(server, tmp_path, monkeypatch):
    from eval_studio.ui.context import create_context

    monkeypatch.setenv(KEY_ENV, KEY)
    context = create_context(studio_settings(server, tmp_path))
    yield context
    context.db.dispose()


def params():
    from eval_studio.ui.common import make_params

    return make_params({}, 16, 0.0, 1.0, 0, 1.0, -1)


def stored_bytes(db_url: str) -> bytes:
    """The database file and its WAL: everything the store holds on disk."""
    path = Path(db_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.is_file())


# -- 7. an upstream error never echoes the key -----------------------------------------------------------
def test_7_redact_removes_the_key_bearer_tokens_and_key_like_strings():
    from bactrian.client import redact

    text = (f"Incorrect API key provided: Bearer {KEY}. Also sk-proj-AbCdEf0123456789xyz, "
            "authorization: Bearer eyJhbGciOi.J9x-y_z and key=AIzaSyD-1234567890abcdefghijklmno")
    out = redact(text, KEY)
    assert KEY not in out and "sk-proj-AbCdEf" not in out and "eyJhbGciOi" not in out and "AIzaSyD-1234" not in out
    assert out.startswith("Incorrect API key provided:") and "[REDACTED]" in out
    assert redact("model gpt-4o answered 401", KEY) == "model gpt-4o answered 401"  # ordinary text is left alone


def test_7_a_key_echoed_by_the_upstream_reaches_no_visitor_store_export_or_log(ctx, server, tmp_path, caplog):
    from eval_studio.io import TABLES, export, import_pairs_file
    from eval_studio.judge import JudgeConfig, judge_pairs
    from eval_studio.ui.chat_tab import ChatState, chat_turn
    from eval_studio.ui.streaming import Job, stream_columns

    caplog.set_level(logging.DEBUG)
    # the studio's chat path: one visitor, the paid external model
    *_, (history, state, col) = chat_turn(ctx, ChatState(), "hello", "paid", params(), None)
    assert col.done and not col.ok and state.conversation_id is None
    assert re.fullmatch(r"model paid is unavailable right now \(error id [0-9a-f]{8}\)", col.error), col.error
    error_id = col.error[-9:-1]
    assert error_id in caplog.text and "401" in caplog.text  # the operator can find the detail by the id
    # the same through stream_columns, next to a column that works
    *_, (paid, local) = list(stream_columns(ctx.catalog, [Job("paid", [{"role": "user", "content": "hi"}], params()),
                                                          Job("local-a", [{"role": "user", "content": "hi"}], params())]))
    assert paid.error and "unavailable right now" in paid.error and local.ok and local.text
    assert any(KEY in a for a in server.auth)  # the key really was sent, and really came back in the error body
    shown = " ".join([col.error, paid.error, json.dumps(history)])

    # the judge path: a run refused with the key echoed (401), and single calls refused with it echoed (400)
    import_pairs_file(ctx.db, write_pairs(tmp_path / "pairs.jsonl", demo_pairs(2)), task="keys")
    runs = [judge_pairs(ctx.db, JudgeConfig(prompt="pair-v2", model=m, base_url=server.base_url, api_key_env=KEY_ENV),
                        task="keys").join(timeout=60) for m in ("paid-model", "refusing-judge")]
    assert runs[0].status == "error" and "401" in runs[0].message
    assert runs[1].status == "done" and runs[1].n_errors == 4

    paths = export(ctx.db, "jsonl", tmp_path / "exports", TABLES)
    exported = "".join(Path(p).read_text("utf-8") for p in paths)
    assert "api error 400" in exported  # the refusals are there, without the key
    for where, text in (("visitor", shown), ("export", exported), ("log", caplog.text),
                        ("run messages", " ".join(r.message or "" for r in runs))):
        assert KEY not in text and "Bearer sk-" not in text, where
    assert KEY.encode() not in stored_bytes(ctx.settings.db_url)


# -- 8. paid models and rate limits ----------------------------------------------------------------------
def test_8_external_models_stay_out_of_anonymous_battles_by_default(ctx, server, tmp_path):
    from eval_studio.settings import Settings
    from eval_studio.ui.arena_tab import ArenaState, pick_models
    from eval_studio.ui.context import create_context

    assert Settings.from_env({}).battle_external is False
    assert Settings.from_env({"BACTRIAN_BATTLE_EXTERNAL": "true"}).battle_external is True
    rng = random.Random(0)

    def drawn(context, user):
        return {m for _ in range(40) for m in (lambda st: (st.model_a, st.model_b))(
            pick_models(context, ArenaState(), "battle", ("", ""), "en", rng, user=user))}

    assert drawn(ctx, None) == {"local-a", "local-b"}
    assert "paid" in drawn(ctx, ctx.users["bob"]) and "paid" in drawn(ctx, ctx.users["ana"])  # signed-in: allowed
    opened = create_context(studio_settings(server, tmp_path / "open", battle_external=True))
    assert "paid" in drawn(opened, None)  # the operator may open them to everyone


def test_8_limiter_is_a_token_bucket_per_session_and_global_with_an_injected_clock():
    from eval_studio.ratelimit import RateLimited, RateLimiter

    now = [1000.0]
    limiter = RateLimiter({"generate": (3, 5)}, clock=lambda: now[0])
    for _ in range(3):
        limiter.take("generate", "s1")
    with pytest.raises(RateLimited) as e:
        limiter.take("generate", "s1")
    assert e.value.retry_after == 20  # 3 per minute: one more in 20 s
    limiter.take("generate", "s2")
    limiter.take("generate", "s2")
    with pytest.raises(RateLimited) as e:  # the global bucket (5 per minute) is empty now
        limiter.take("generate", "s3")
    assert e.value.retry_after == 12
    now[0] += 12
    limiter.take("generate", "s3")  # a refusal by the global bucket took nothing from the session's
    limiter.take("vote", "s1")  # an action without limits is never refused
    now[0] += 60
    for _ in range(3):
        limiter.take("generate", "s1")
    off = RateLimiter({"generate": (0, 0)}, clock=lambda: now[0])
    for _ in range(1000):
        off.take("generate", "s1")


def test_8_limited_visitors_get_a_translated_message_and_nothing_is_half_written(server, tmp_path, monkeypatch):
    from dataclasses import replace

    from sqlalchemy import func, select

    from eval_studio.settings import Settings
    from eval_studio.store import read_session
    from eval_studio.store.models import Battle, Conversation, Turn, Vote
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, arena_vote, pick_models
    from eval_studio.ui.chat_tab import ChatState, chat_turn
    from eval_studio.ui.common import Rejected
    from eval_studio.ui.context import create_context

    env = {"BACTRIAN_RATE_GENERATE": "2", "BACTRIAN_RATE_VOTE": "1", "BACTRIAN_RATE_LOGIN": "3"}
    s = Settings.from_env(env)
    assert (s.rate_generate, s.rate_vote, s.rate_login) == (2, 1, 3)
    defaults = Settings.from_env({})
    assert all(v > 0 for v in (defaults.rate_generate, defaults.rate_generate_global, defaults.rate_vote,
                               defaults.rate_vote_global, defaults.rate_login, defaults.rate_login_global))
    ctx = create_context(studio_settings(server, tmp_path, rate_generate=2, rate_vote=1))

    def counts():
        with read_session(ctx.db) as ses:
            return [ses.scalar(select(func.count()).select_from(t)) for t in (Conversation, Turn, Battle, Vote)]

    state = ChatState()
    for _ in range(2):
        *_, (_, state, col) = chat_turn(ctx, state, "hi", "local-a", params(), None, session="visitor-1")
        assert col.ok
    before, calls = counts(), server.calls
    with pytest.raises(Rejected) as e:
        list(chat_turn(ctx, state, "hi again", "local-a", params(), None, session="visitor-1"))
    assert e.value.key == "rate_limited"
    assert re.fullmatch(r"Too many requests: try again in \d+ s\.", e.value.text("en"))
    assert re.fullmatch(r"请求过多，请 \d+ 秒后再试。", e.value.text("zh"))
    assert counts() == before and server.calls == calls  # nothing sent, nothing stored

    st = pick_models(ctx, ArenaState(), "named", ("local-a", "local-b"), "en", random.Random(0))
    *_, (_, st) = arena_turn(ctx, st, "Which is better?", params(), None, session="visitor-2")
    st = arena_vote(ctx, st, "a", None, session="visitor-2")
    *_, (_, st2) = arena_turn(ctx, replace(st, voted=False), "And now?", params(), None, session="visitor-2")
    before = counts()
    with pytest.raises(Rejected, match="rate_limited"):
        arena_vote(ctx, st2, "b", None, session="visitor-2")
    assert counts() == before  # the vote was not written; the round can still be voted on later
    assert arena_vote(ctx, st2, "b", None, session="visitor-3").voted  # another visitor is not affected
    # an admin (the operator) is never throttled
    for _ in range(3):
        *_, (_, _, col) = chat_turn(ctx, ChatState(), "hi", "local-a", params(), ctx.users["ana"], session="admin")
        assert col.ok


# -- 9. anonymous visitors see no paths or store summaries; limits on /login -------------------------------
def test_9_anonymous_api_calls_get_no_store_summary_or_path_and_login_is_throttled(server, tmp_path, monkeypatch):
    from gradio_client import Client

    monkeypatch.setenv(KEY_ENV, KEY)
    questions = tmp_path / "secret-folder" / "my_questions.jsonl"
    questions.parent.mkdir()
    questions.write_text(json.dumps({"id": "q1", "language": "en", "question": "What is 2 + 2?"}) + "\n", "utf-8")
    settings = studio_settings(server, tmp_path, questions_file=str(questions), rate_login=3)
    with RunningStudio(settings) as app:
        import httpx

        page = httpx.get(app.url + "config", timeout=60).text + httpx.get(app.url, timeout=60).text
        assert "secret-folder" not in page and str(tmp_path) not in page  # nothing in the page or its config
        anon = Client(app.url, verbose=False, httpx_kwargs={"timeout": 120})
        calls = {
            "/admin_refresh": ("en",),
            "/admin_export": ("jsonl", ["votes"], "en"),
            "/admin_generate": ("demo", "local-a", "local-b", "demo", 1, "en"),
            "/judge_start": ("pair-v2", server.base_url, "m", "", "", 0, "en"),
        }
        for api, args in calls.items():
            out = json.dumps(anon.predict(*args, api_name=api), default=str)
            assert "secret-folder" not in out and "my_questions" not in out and str(tmp_path) not in out, (api, out)
        # the same call from an admin's session does show the summary (so the check above can see a leak)
        admin = Client(app.url, verbose=False, httpx_kwargs={"timeout": 120})
        admin.predict("ana", PASSWORDS["ana"], "en", api_name="/login")
        assert "secret-folder" in json.dumps(admin.predict("en", api_name="/admin_refresh"), default=str)

        # /login: 3 attempts per session per minute, then a clear message (the password is not even checked)
        guesser = Client(app.url, verbose=False, httpx_kwargs={"timeout": 120})
        said = [guesser.predict("ana", f"guess-{i}", "en", api_name="/login")[0] for i in range(4)]
        assert all("Wrong user name or password" in s for s in said[:3]), said
        assert re.search(r"Too many requests: try again in \d+ s\.", said[3]), said


# -- 13. one name per setting ------------------------------------------------------------------------------
def test_13_every_variable_read_anywhere_is_in_the_one_settings_table():
    from bactrian import settings

    names = set(settings.VARIABLES) | {a for v in settings.VARIABLES.values() for a in v.aliases}
    read = set()
    for part in ("bactrian", "eval_studio", "pipelines", "app.py"):
        for path in ([REPO / part] if part.endswith(".py") else (REPO / part).rglob("*.py")):
            read |= set(re.findall(r"\b(BACTRIAN_[A-Z0-9_]*[A-Z0-9])\b", path.read_text("utf-8")))
    assert read - names == set(), "variables without a row in bactrian/settings.py"
    for var in settings.VARIABLES.values():  # the table is the module's docstring: meaning and default shown
        assert var.name in settings.__doc__ and var.meaning and var.default_text
    readme = (REPO / "README.md").read_text("utf-8")
    for name in ("BACTRIAN_RATE_GENERATE", "BACTRIAN_RATE_VOTE", "BACTRIAN_RATE_LOGIN", "BACTRIAN_BATTLE_EXTERNAL"):
        assert name in readme


def test_13_the_app_and_the_cli_use_the_same_database_and_old_names_still_work(tmp_path, monkeypatch, capsys):
    from bactrian import settings
    from bactrian.adapters import default_search_dirs
    from bactrian.cli import main as bactrian
    from eval_studio.settings import Settings
    from eval_studio.store.db import default_url

    home = tmp_path / "home"
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.delenv("BACTRIAN_STUDIO_DB", raising=False)
    monkeypatch.setenv("BACTRIAN_HOME", str(home))
    monkeypatch.setenv("BACTRIAN_DB", url)
    assert Settings.from_env().db_url == url == default_url()
    assert bactrian(["studio", "migrate"]) == 0  # the CLI, without --db, opens the app's database
    assert (tmp_path / "shared.db").is_file() and not (home / "studio.db").exists()

    monkeypatch.delenv("BACTRIAN_DB")
    monkeypatch.setenv("BACTRIAN_STUDIO_DB", url)
    with pytest.warns(DeprecationWarning, match="BACTRIAN_STUDIO_DB is deprecated: use BACTRIAN_DB"):
        assert default_url() == url
    with pytest.warns(DeprecationWarning, match="BACTRIAN_STUDIO_USERS_FILE"):
        assert settings.get("BACTRIAN_USERS_FILE", {"BACTRIAN_STUDIO_USERS_FILE": "/u.json"}) == "/u.json"

    # BACTRIAN_HOME: one reading everywhere (~ expanded, empty = unset)
    monkeypatch.delenv("BACTRIAN_STUDIO_DB")
    monkeypatch.setenv("BACTRIAN_HOME", "~/somewhere")
    assert settings.home() == Path.home() / "somewhere"
    assert default_url() == f"sqlite:///{Path.home() / 'somewhere' / 'studio.db'}"
    assert default_search_dirs("b")[-1] == Path.home() / "somewhere" / "adapters"
    monkeypatch.setenv("BACTRIAN_HOME", "")
    assert settings.home() == Path.home() / ".bactrian" == default_search_dirs("b")[-1].parent
    with pytest.raises(settings.SettingsError, match="BACTRIAN_MAX_ROWS"):
        settings.get("BACTRIAN_MAX_ROWS", {"BACTRIAN_MAX_ROWS": "many"})


BLOCKED = """
import sys
for name in ("sqlalchemy", "alembic", "gradio"):  # an install without the studio extra
    sys.modules[name] = None
from bactrian.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_13_help_without_the_studio_extra_lists_every_command_and_names_the_extra():
    from importlib.metadata import entry_points

    run = lambda *argv: subprocess.run([sys.executable, "-c", BLOCKED, *argv], cwd=REPO, capture_output=True,  # noqa: E731
                                       text=True, timeout=300)
    r = run("--help")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for ep in entry_points(group="bactrian.commands"):
        assert re.search(rf"^\s+{ep.name}\s", r.stdout, re.M), ep.name
    studio_line = r.stdout[r.stdout.index("    studio"):]
    assert "pip install 'bactrian-studio[studio]'" in " ".join(studio_line.split())
    r = run("studio", "migrate")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: `bactrian studio` needs the 'studio' extra") and "sqlalchemy" in r.stderr
