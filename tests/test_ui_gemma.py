"""The studio with the real embedded Gemma 3 270M, through the app's HTTP API (slow: real model on CPU).

Chat streams a real reply that is stored; an arena round pits a local variant against ``bactrian serve`` (the same
engine as an external OpenAI-compatible model), so both the batched local path and the external thread run.
"""

from __future__ import annotations

import pytest

from tests.ui_support import RunningStudio, users_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma_studio(tmp_path_factory):
    from bactrian.engine import Engine
    from bactrian.models import is_cached
    from bactrian.server import create_app
    from bactrian.service import LocalService
    from eval_studio.settings import ExternalModel, Settings
    from tests.helpers import LiveServer

    if not is_cached("gemma-3-270m"):
        pytest.skip("gemma-3-270m is not cached yet (set BACTRIAN_CACHE, or run the README's set-up command)")
    # one service (one worker on the model) behind both the studio and the served "external" copy
    service = LocalService(Engine.load("gemma-3-270m", include_default_dirs=True))
    with LiveServer(create_app(service)) as served:
        settings = Settings(
            db_url=f"sqlite:///{tmp_path_factory.mktemp('gemma-studio') / 'studio.db'}", users_text=users_text(),
            pregenerate=0, external_models=(ExternalModel("gemma-served", served.base_url, "gemma-3-270m"),),
            gen_defaults={"max_new_tokens": 24, "temperature": 0.0, "repetition_penalty": 1.1},
        )
        with RunningStudio(settings, service) as app:
            yield app


def test_chat_and_arena_with_real_gemma(gemma_studio):
    from gradio_client import Client

    c = Client(gemma_studio.url, verbose=False, httpx_kwargs={"timeout": 300})
    chat, *_ = c.predict("What is the capital of France?", "gemma-3-270m", "en", 24, 0.0, 0.95, 50, 1.1, -1, api_name="/chat_send")
    reply = chat[-1]["content"][0]["text"] if isinstance(chat[-1]["content"], list) else chat[-1]["content"]
    assert reply.strip() and "failed" not in reply
    assert gemma_studio.sql("SELECT role FROM turns ORDER BY id") == [("user",), ("assistant",)]
    out = c.predict("Name a colour.", "named", "gemma-3-270m", "gemma-served", "en", "en", 16, 0.0, 0.95, 50, 1.1, -1,
                    api_name="/arena_send")
    chat_a, chat_b, note, *_ = out  # then the message box and the detected language
    assert note == ""  # no "a model failed" notice: both columns completed
    vote = c.predict("en", api_name="/arena_vote_a")
    assert "vote is recorded" in vote[-1]
    (a, b, winner), = gemma_studio.sql("SELECT b.answer_a, b.answer_b, v.winner FROM votes v JOIN battles b ON b.id = v.battle_id")
    assert a.strip() and b.strip() and winner == "a"
