"""The studio on the generation service: background pair generation shares the batch with visitors."""

from __future__ import annotations

import time

from bactrian.generation import GenerationParams
from eval_studio.settings import DEFAULT_QUESTIONS

from tests.ui_support import studio_settings

DEMO_QUESTIONS = DEFAULT_QUESTIONS


def test_background_pair_generation_does_not_delay_a_visitors_first_token(tiny_base, tiny_adapters, tiny_engine, tmp_path):
    from eval_studio.io import import_question_file
    from eval_studio.ui.context import create_context
    from eval_studio.ui.pairgen import generate_in_background
    from eval_studio.ui.streaming import Job, stream_columns

    ctx = create_context(studio_settings(tiny_base, tiny_adapters, tmp_path / "studio.db"), tiny_engine)
    service = ctx.service
    import_question_file(ctx.db, DEMO_QUESTIONS, name="demo")
    long = GenerationParams(max_new_tokens=400, min_tokens=400, temperature=0.7)
    worker = generate_in_background(ctx.catalog, ctx.db, set_name="demo", model_a="alpha", model_b="beta", task="demo",
                                    count=4, params=long)
    deadline = time.time() + 60
    while service.stats["largest_batch"] < 8:  # 4 questions x 2 models decoding together
        assert time.time() < deadline, "pair generation never started"
        time.sleep(0.005)
    before = service.stats["steps"]
    first_token = GenerationParams(max_new_tokens=1, temperature=0)
    *_, (col,) = stream_columns(ctx.catalog, [Job(ctx.service.base_name, [{"role": "user", "content": "Hi"}], first_token)])
    assert col.ok and col.finish_reason == "length"
    assert service.stats["steps"] - before <= 2, "the visitor waited behind the background batch"
    assert worker.is_alive()  # the background job was still running the whole time
    service.close()  # stops the background job's rows too
    worker.join(timeout=30)
