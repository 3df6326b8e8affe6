"""The studio UI's logic without a browser: settings, texts, input checks, streaming, arena/chat storage, admin.

Real parts: the tiny model and adapters, a real SQLite file, ``bactrian serve`` as an external model on 127.0.0.1.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from eval_studio.settings import Settings, SettingsError, parse_external_models
from eval_studio.ui.common import Rejected, check_message, inert, make_params, sign_in
from eval_studio.ui.text import STRINGS, UI_LANGS, t
from tests.ui_support import DEAD_URL, PASSWORDS, studio_settings


# -- settings and texts -------------------------------------------------------------------------------
def test_settings_from_env():
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861", "BACTRIAN_DB": "sqlite:////tmp/x.db",
           "BACTRIAN_ADAPTERS_DIR": "/a:/b", "BACTRIAN_ANON_VOTES": "false", "BACTRIAN_OVERLAP": "3",
           "BACTRIAN_MAX_MESSAGE_CHARS": "100", "BACTRIAN_GEN_DEFAULTS": '{"max_new_tokens": 64}', "SPACE_ID": "me/studio",
           "BACTRIAN_EXTERNAL_MODELS": '[{"name": "gpt-4o", "base_url": "https://api.openai.com/v1", "model": "gpt-4o", "api_key_env": "OPENAI_API_KEY"}]'}
    s = Settings.from_env(env)
    assert (s.server_name, s.server_port, s.db_url, s.adapters_dirs) == ("0.0.0.0", 7861, "sqlite:////tmp/x.db", ("/a", "/b"))
    assert (s.anon_votes, s.overlap, s.max_message_chars, s.on_spaces) == (False, 3, 100, True)
    assert s.gen_defaults == {"max_new_tokens": 64} and s.external_models[0].api_key_env == "OPENAI_API_KEY"
    assert Settings.from_env({}).base == "gemma-3-270m"


@pytest.mark.parametrize("env, fragment", [
    ({"GRADIO_SERVER_PORT": "x"}, "GRADIO_SERVER_PORT"),
    ({"BACTRIAN_OVERLAP": "0"}, "BACTRIAN_OVERLAP"),
    ({"BACTRIAN_MAX_MESSAGE_CHARS": "999999999"}, "BACTRIAN_MAX_MESSAGE_CHARS"),
    ({"BACTRIAN_ANON_VOTES": "maybe"}, "BACTRIAN_ANON_VOTES"),
    ({"BACTRIAN_EXTERNAL_MODELS": "[{"}, "not valid JSON"),
    ({"BACTRIAN_EXTERNAL_MODELS": '[{"name": "x", "base_url": "u", "model": "m", "api_key": "sk-secret"}]'}, "never the key"),
])
def test_bad_settings_are_named(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_every_string_has_english_and_chinese():
    assert set(UI_LANGS) == {"en", "zh"}
    for key, entry in STRINGS.items():
        assert entry.get("en") and entry.get("zh"), key
    assert t("too_long", "zh", n=5, cap=3).startswith("消息有 5")
    with pytest.raises(KeyError):
        t("no-such-key")


def test_input_checks_and_inert_display():
    with pytest.raises(Rejected) as e:
        check_message("   \n", 10)
    assert e.value.text("en") == "Type a message first."
    with pytest.raises(Rejected) as e:
        check_message("x" * 11, 10)
    assert "11 characters; the limit is 10" in e.value.text("en")
    assert check_message("hi", 10) == "hi"
    assert inert('<script>alert(1)</script><img src=x onerror=alert(2)>') == "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
    p = make_params({"min_tokens": 2}, 32, 0.0, 0.9, 40, 1.1, -1)
    assert (p.max_new_tokens, p.temperature, p.seed, p.min_tokens) == (32, 0.0, None, 2)
    with pytest.raises(Rejected, match="bad_params"):
        make_params({}, 32, 9.0, 0.9, 40, 1.1, 7)


def test_sign_in_checks_hashes_on_the_server():
    from eval_studio.auth import parse_users
    from tests.ui_support import users_text

    users = parse_users(users_text(), "test")
    assert sign_in(users, "ana", PASSWORDS["ana"]).is_admin
    assert sign_in(users, "bob", PASSWORDS["bob"]).role == "annotator"
    assert sign_in(users, "bob", "wrong") is None and sign_in(users, "nobody", "x") is None and sign_in(users, "", "") is None


def test_external_models_parse():
    (m,) = parse_external_models('[{"name": "g", "base_url": "http://h/v1", "model": "m"}]')
    assert (m.name, m.api_key_env) == ("g", None)


# -- with the tiny model and a real store ----------------------------------------------------------------
@pytest.fixture(scope="module")
def ctx(tiny_base, tiny_adapters, tmp_path_factory):
    from bactrian.engine import Engine
    from bactrian.server import create_app
    from bactrian.service import LocalService
    from eval_studio.settings import ExternalModel
    from eval_studio.ui.context import create_context
    from tests.helpers import LiveServer

    # one generation service (one worker on the model) behind both the studio and `bactrian serve`
    service = LocalService(Engine.load(str(tiny_base), [str(tiny_adapters["root"])], include_default_dirs=False))
    with LiveServer(create_app(service)) as served:  # `bactrian serve` as the "external" model
        external = (ExternalModel("served", served.base_url, "alpha", "STUDIO_TEST_KEY"), ExternalModel("offline-gpt", DEAD_URL, "x"))
        settings = studio_settings(tiny_base, tiny_adapters, tmp_path_factory.mktemp("ui-logic") / "studio.db",
                                   external_models=external, battle_external=True)
        yield create_context(settings, service)


def test_catalog_groups_and_random_pairs(ctx):
    names = [v for _, v in ctx.catalog.choices()]
    assert names[0] == ctx.service.base_name and {"alpha", "beta", "served", "offline-gpt"} <= set(names)
    labels = dict((v, k) for k, v in ctx.catalog.choices())
    assert labels["alpha"] == "[other] alpha" and labels["served"] == "[external] served"
    rng = random.Random(0)
    pairs = {ctx.catalog.random_pair("zh", rng) for _ in range(50)}
    assert all(a != b for a, b in pairs) and len({m for p in pairs for m in p}) >= 4


def test_streams_local_and_external_together_and_a_failing_column_stays_alone(ctx):
    from eval_studio.ui.streaming import Job, stream_columns

    params = make_params(ctx.settings.gen_defaults, 8, 0.0, 1.0, 0, 1.0, -1)
    msgs = [{"role": "user", "content": "Hi"}]
    snaps = list(stream_columns(ctx.catalog, [Job("alpha", msgs, params), Job("beta", msgs, params),
                                              Job("served", msgs, params), Job("offline-gpt", msgs, params)]))
    a, b, served, dead = snaps[-1]
    assert a.ok and b.ok and served.ok and a.text and b.text and served.text
    assert served.text == a.text  # the served "external" model is alpha, greedy: the same answer
    assert dead.done and dead.error and "cannot reach" in dead.error
    assert len(snaps) > 2  # it streamed


def test_arena_round_stores_battle_and_one_vote(ctx):
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, arena_vote, pick_models

    st = pick_models(ctx, ArenaState(), "named", ("alpha", "beta"), "en", random.Random(1))
    params = make_params(ctx.settings.gen_defaults, 6, 0.7, 0.95, 50, 1.0, 3)
    *_, (cols, st) = arena_turn(ctx, st, "Hello?", params, None)
    assert st.battle_id and not st.failed
    st = arena_vote(ctx, st, "b", None)
    with pytest.raises(Rejected, match="already_voted"):
        arena_vote(ctx, st, "a", None)
    from eval_studio.store.battles import load_battles

    row = load_battles(ctx.db).iloc[-1]
    assert (row.model_a, row.model_b, row.winner, row.annotator) == ("alpha", "beta", "b", None)


def test_arena_failed_column_cannot_be_voted(ctx):
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, arena_vote, pick_models

    st = pick_models(ctx, ArenaState(), "named", ("alpha", "offline-gpt"), "en", random.Random(1))
    *_, (cols, st) = arena_turn(ctx, st, "Hello?", make_params({}, 4, 0.7, 0.95, 50, 1.0, -1), None)
    assert cols[0].ok and cols[1].error and st.failed and st.battle_id is None
    with pytest.raises(Rejected, match="no_vote_failed"):
        arena_vote(ctx, st, "a", None)
    with pytest.raises(Rejected, match="same_model"):
        pick_models(ctx, ArenaState(), "named", ("alpha", "alpha"), "en", random.Random(1))


def test_visitor_state_is_typed_and_copied_per_session():
    """gr.State deep-copies its initial value for each session: no visitor shares another's history or round."""
    import copy
    from dataclasses import FrozenInstanceError, fields

    import gradio as gr

    from eval_studio.ui.arena_tab import ArenaState
    from eval_studio.ui.chat_tab import ChatState

    for initial in (ChatState(), ArenaState()):
        first, second = (copy.deepcopy(gr.State(initial).value) for _ in range(2))
        assert first == second == initial and first is not second
        with pytest.raises(FrozenInstanceError):  # a step returns a new state, never edits the stored one
            setattr(first, fields(first)[0].name, None)
    a, b = ChatState(), ChatState()
    assert a.history == [] and a.history is not b.history


def test_anonymous_votes_can_be_disabled(ctx):
    from dataclasses import replace

    from eval_studio.ui.arena_tab import ArenaState, arena_vote
    from eval_studio.ui.context import StudioContext

    closed = StudioContext(replace(ctx.settings, anon_votes=False), ctx.catalog, ctx.db, ctx.users)
    with pytest.raises(Rejected, match="anon_disabled"):
        arena_vote(closed, ArenaState(battle_id=1), "a", None)


def test_chat_stores_only_complete_exchanges_and_regenerates(ctx):
    from eval_studio.store.db import read_session
    from eval_studio.store.models import Turn
    from eval_studio.ui.chat_tab import ChatState, chat_turn

    params = make_params(ctx.settings.gen_defaults, 6, 0.7, 0.95, 50, 1.0, -1)
    user = ctx.users["bob"]
    *_, (hist, st, col) = chat_turn(ctx, ChatState(), "First question", "beta", params, user)
    assert col.ok and [m["role"] for m in st.history] == ["user", "assistant"]
    *_, (hist, st2, col) = chat_turn(ctx, st, None, "beta", params, user, regenerate=True)
    assert st2.conversation_id == st.conversation_id and len(st2.history) == 2
    with pytest.raises(Rejected, match="too_long"):
        list(chat_turn(ctx, st2, "y" * 501, "beta", params, user))
    *_, (hist, st3, col) = chat_turn(ctx, st2, "hi", "offline-gpt", params, user)
    assert col.error and st3 is st2  # a failed reply is shown, not stored
    with read_session(ctx.db) as s:
        turns = s.query(Turn).filter(Turn.conversation_id == st.conversation_id).order_by(Turn.idx).all()
    assert [t_.role for t_ in turns] == ["user", "assistant", "assistant"] and turns[2].params["regenerated"] is True


def test_admin_actions_need_the_admin_role_and_exports_hold_no_key(ctx, tmp_path, monkeypatch):
    from eval_studio.ui.admin_tab import export_files, import_upload
    from eval_studio.ui.judge_tab import start_judge
    from tests.ui_support import demo_pairs, write_pairs

    monkeypatch.setenv("STUDIO_TEST_KEY", "sk-test-do-not-store-4242")
    for user in (None, ctx.users["bob"]):
        with pytest.raises(Rejected, match="admin_only"):
            export_files(ctx, user, "jsonl", ["votes"])
        with pytest.raises(Rejected, match="admin_only"):
            start_judge(ctx, user, "pair-v2", DEAD_URL, "m", "", None, None)
    admin = ctx.users["ana"]
    report = import_upload(ctx, admin, "pairs", str(write_pairs(tmp_path / "p.jsonl", demo_pairs(3))), "admin-task", 2)
    assert report.added == 3
    with pytest.raises(Rejected, match="error"):
        import_upload(ctx, admin, "pairs", str(write_pairs(tmp_path / "bad.jsonl", [{"id": "x"}])), "admin-task", 2)
    with pytest.raises(Rejected, match="error"):
        start_judge(ctx, admin, "pair-v2", "ftp://x", "m", "", None, None)
    with pytest.raises(Rejected, match="error"):
        start_judge(ctx, admin, "pair-v2", DEAD_URL, "m", "sk-live-key", None, None)  # a key pasted as a "name"
    # chat with the external model whose key is set, then export everything
    from eval_studio.ui.chat_tab import ChatState, chat_turn

    *_, (_, _, col) = chat_turn(ctx, ChatState(), "hello", "served", make_params({}, 4, 0.7, 0.95, 50, 1.0, -1), admin)
    assert col.ok
    paths = export_files(ctx, admin, "jsonl", ["votes", "judgments", "conversations", "pairs"])
    assert len(paths) == 4
    text = "".join(Path(p).read_text(encoding="utf-8") for p in paths)
    assert "admin-task" in text and "sk-test-do-not-store-4242" not in text
    db_file = ctx.settings.db_url.removeprefix("sqlite:///")
    assert b"sk-test-do-not-store-4242" not in Path(db_file).read_bytes()
    (zipped,) = export_files(ctx, admin, "hf", ["votes", "pairs"])
    assert zipped.endswith(".zip")
    assert json.loads(Path(paths[3]).read_text(encoding="utf-8").splitlines()[0])["task"]
