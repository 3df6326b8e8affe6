"""The generation service: rows join a running batch at the next step and leave at once, and every row still
decodes exactly what it decodes alone (llama, Gemma 3 with a sliding window it crosses, BLOOM with ALiBi).

``BACTRIAN_TEST_DEVICE=cuda`` runs the same tests on a GPU (bench/gpu_check.sh).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from bactrian.adapters import AdapterError
from bactrian.engine import Engine
from bactrian.generation import GenerationParams
from bactrian.prompter import InputError
from bactrian.service import Busy, GenRequest, LocalService, generate

DEVICE = os.environ.get("BACTRIAN_TEST_DEVICE", "cpu")
DTYPE = "auto" if DEVICE != "cpu" else "float32"


def greedy(n: int, **kw) -> GenerationParams:
    return GenerationParams(max_new_tokens=n, temperature=0, repetition_penalty=1.0, ignore_eos=True, **kw)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


LONG = ask("Tell me about the capital of France and the capital of Spain, please")
SHORT = ask("Hi")


@pytest.fixture
def service(tiny_base, tiny_adapters):
    engine = Engine.load(str(tiny_base), [str(tiny_adapters["root"])], include_default_dirs=False, device=DEVICE, dtype=DTYPE)
    s = LocalService(engine)
    yield s
    s.close()


def wait_for_steps(service: LocalService, n: int, timeout: float = 60) -> None:
    """Wait until the worker has run ``n`` more decode steps (the long row is certainly running)."""
    target = service.stats["steps"] + n
    deadline = time.time() + timeout
    while service.stats["steps"] < target:
        assert time.time() < deadline, "the service made no progress"
        time.sleep(0.001)


def joined_mid_flight(service: LocalService, long_req: GenRequest, short_reqs: list[GenRequest]) -> tuple[str, list[str]]:
    long_stream = service.submit(long_req)
    wait_for_steps(service, 5)
    before = service.stats["joined_running"]
    shorts = [generate(service, r).text for r in short_reqs]
    long_text = long_stream.result().text
    assert service.stats["joined_running"] > before, "the short requests never joined the running batch"
    return long_text, shorts


def test_rows_join_mid_flight_and_decode_exactly_as_alone(service):
    base = service.base_name
    long_req = GenRequest("alpha", LONG, params=greedy(300))
    short_reqs = [GenRequest("beta", SHORT, params=greedy(12)), GenRequest(base, SHORT, params=greedy(7)),
                  GenRequest("alpha", ask("¿Cuál es la capital de España?"), params=greedy(9))]
    alone_long = generate(service, long_req).text
    alone_short = [generate(service, r).text for r in short_reqs]
    assert len(set(alone_short[:2])) == 2  # beta and the bare base answer differently
    long_text, shorts = joined_mid_flight(service, long_req, short_reqs)
    assert shorts == alone_short and long_text == alone_long
    assert service.stats["largest_batch"] >= 2


@pytest.mark.parametrize("arch", ["gemma3_text", "bloom"])
def test_joining_is_exact_for_sliding_window_and_alibi_models(arch, tmp_path_factory):
    """Gemma 3's sliding-window layers (window 64, crossed at 300 tokens) and BLOOM's ALiBi under row surgery."""
    from bactrian.testing import make_tiny_base

    folder = make_tiny_base(tmp_path_factory.mktemp(arch) / arch, arch=arch)
    service = LocalService(Engine.load(str(folder), include_default_dirs=False, device=DEVICE, dtype=DTYPE))
    try:
        base = service.base_name
        long_req = GenRequest(base, LONG, params=greedy(300))
        short_reqs = [GenRequest(base, SHORT, params=greedy(10)), GenRequest(base, ask("日本の首都はどこですか？"), params=greedy(80))]
        alone = [generate(service, r).text for r in [long_req, *short_reqs]]
        long_text, shorts = joined_mid_flight(service, long_req, short_reqs)
        assert [long_text, *shorts] == alone
    finally:
        service.close()


def test_rows_with_different_sampling_parameters_share_a_batch(service):
    seeded = GenRequest("alpha", SHORT, params=GenerationParams(max_new_tokens=20, temperature=1.0, seed=7, ignore_eos=True))
    penalised = GenRequest("beta", SHORT, params=GenerationParams(max_new_tokens=20, temperature=0, repetition_penalty=1.3, ignore_eos=True))
    stops = GenRequest(service.base_name, SHORT, params=greedy(20))
    alone = [generate(service, r).text for r in (seeded, penalised, stops)]
    together = [s.result().text for s in [service.submit(r) for r in (seeded, penalised, stops)]]
    assert together == alone
    assert generate(service, seeded).text == alone[0]  # the same seed gives the same text


def test_a_cancelled_row_stops_at_the_next_step_and_the_rest_go_on(service):
    other = service.submit(GenRequest("beta", SHORT, params=greedy(40)))
    stream = service.submit(GenRequest("alpha", LONG, params=greedy(400)))
    wait_for_steps(service, 3)
    stream.cancel()
    events = list(stream)
    assert events[-1].finished and events[-1].finish_reason == "cancelled" and events[-1].completion_tokens < 400
    assert other.result().completion_tokens == 40
    # leaving a `with` block cancels too (a closed browser tab, a dropped HTTP client)
    with service.submit(GenRequest("alpha", LONG, params=greedy(400))) as s:
        wait_for_steps(service, 2)
    assert list(s)[-1].finish_reason == "cancelled"
    assert generate(service, GenRequest("alpha", SHORT, params=greedy(3))).completion_tokens == 3


def test_a_full_queue_says_busy_and_the_service_keeps_serving(tiny_base, tiny_adapters):
    engine = Engine.load(str(tiny_base), [str(tiny_adapters["root"])], include_default_dirs=False, device=DEVICE, dtype=DTYPE)
    service = LocalService(engine, max_rows=1, max_queue=1)
    try:
        running = service.submit(GenRequest("alpha", LONG, params=greedy(300)))
        wait_for_steps(service, 2)
        waiting = service.submit(GenRequest("beta", SHORT, params=greedy(4)))  # no free row: it waits
        with pytest.raises(Busy, match="busy.*retry"):
            service.submit(GenRequest("beta", SHORT, params=greedy(4)))
        running.cancel()
        assert waiting.result().completion_tokens == 4
        assert generate(service, GenRequest("alpha", SHORT, params=greedy(2))).completion_tokens == 2
    finally:
        service.close()


def test_prefill_token_cap_staggers_joins_without_changing_outputs(tiny_base, tiny_adapters):
    engine = Engine.load(str(tiny_base), [str(tiny_adapters["root"])], include_default_dirs=False, device=DEVICE, dtype=DTYPE)
    service = LocalService(engine, max_step_tokens=20)
    try:
        reqs = [GenRequest(n, LONG, params=greedy(6)) for n in ("alpha", "beta", service.base_name)]
        alone = [generate(service, r).text for r in reqs]
        prefills = service.stats["prefills"]
        together = [s.result().text for s in [service.submit(r) for r in reqs]]
        assert together == alone
        assert service.stats["prefills"] - prefills == 3  # each long prompt got its own step
    finally:
        service.close()


def test_bad_input_fails_alone_with_a_clear_error(service):
    with pytest.raises(AdapterError, match="unknown adapter 'nope'"):
        service.submit(GenRequest("nope", SHORT))
    with pytest.raises(InputError, match="empty"):
        service.submit(GenRequest("alpha", ask("   ")))
    with pytest.raises(InputError, match="must not be empty"):
        service.submit(GenRequest("alpha", []))
    with pytest.raises(ValueError, match="temperature"):
        service.submit(GenRequest("alpha", SHORT, params=GenerationParams(temperature=-1)))
    too_long = service.submit(GenRequest("alpha", ask("word " * 600), params=greedy(10)))
    ok = service.submit(GenRequest("beta", SHORT, params=greedy(5)))
    with pytest.raises(InputError, match="context length"):
        too_long.result()
    assert ok.result().completion_tokens == 5


def test_many_threads_submit_at_once(service):
    """Visitors, the server and background jobs call submit from their own threads; nothing is lost."""
    names = ["alpha", "beta", service.base_name]
    reqs = [GenRequest(names[i % 3], ask(f"Question {i}"), params=greedy(5 + i % 4)) for i in range(12)]
    alone = [generate(service, r).text for r in reqs]
    out: dict[int, str] = {}

    def worker(i: int) -> None:
        out[i] = generate(service, reqs[i]).text

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    [t.start() for t in threads]
    [t.join(timeout=120) for t in threads]
    assert [out[i] for i in range(12)] == alone


@pytest.mark.skipif(DEVICE != "cpu", reason="the bfloat16-on-CPU comparison is for CPU machines")
def test_bfloat16_engine_agrees_with_float32_on_the_first_token(tiny_base):
    outs = {}
    for dtype in ("float32", "bfloat16"):
        s = LocalService(Engine.load(str(tiny_base), include_default_dirs=False, device="cpu", dtype=dtype))
        outs[dtype] = generate(s, GenRequest(s.base_name, SHORT, params=greedy(1)))
        s.close()
    assert outs["float32"].text == outs["bfloat16"].text and outs["bfloat16"].completion_tokens == 1


def test_few_rows_cpu_linear_matches_f_linear():
    import torch
    import torch.nn.functional as F

    from bactrian.cpu_linear import skinny_linear

    torch.manual_seed(0)
    w, b = torch.randn(4096, 1024), torch.randn(4096)  # 16 MiB: the size the fast path is for
    with torch.inference_mode():
        for rows in (1, 2, 3, 8, 33):
            x = torch.randn(rows, 1, 1024)
            assert torch.allclose(skinny_linear(x, w, b), F.linear(x, w, b), rtol=1e-4, atol=1e-3), rows
    x = torch.randn(2, 1024, requires_grad=True)  # training keeps F.linear (and its gradients)
    skinny_linear(x, w).sum().backward()
    assert x.grad is not None


def speed_up_large_linears_count(folder: str) -> int:
    from bactrian import cpu_linear
    from bactrian.models import load_base

    return len(cpu_linear.speed_up_large_linears(load_base(folder, device="cpu", dtype="float32").model))


def test_joining_stays_exact_with_every_linear_on_the_few_rows_path(tiny_base, tiny_adapters, monkeypatch):
    from bactrian import cpu_linear

    monkeypatch.setattr(cpu_linear, "MIN_WEIGHT_BYTES", 0)  # the tiny model's layers all take the fast path
    monkeypatch.setattr(cpu_linear, "MIN_THREADED_BYTES", 0)
    assert speed_up_large_linears_count(str(tiny_base)) > 0
    engine = Engine.load(str(tiny_base), [str(tiny_adapters["root"])], include_default_dirs=False, device="cpu", dtype="float32")
    service = LocalService(engine)
    try:
        long_req = GenRequest("alpha", LONG, params=greedy(200))
        short_reqs = [GenRequest("beta", SHORT, params=greedy(12)), GenRequest(service.base_name, SHORT, params=greedy(7))]
        alone = [generate(service, r).text for r in [long_req, *short_reqs]]
        long_text, shorts = joined_mid_flight(service, long_req, short_reqs)
        assert [long_text, *shorts] == alone
    finally:
        service.close()


def test_more_adapters_than_fit_at_once_wait_for_a_free_slot(tiny_base, tiny_adapters):
    engine = Engine.load(str(tiny_base), [str(tiny_adapters["root"])], include_default_dirs=False, max_loaded=1,
                         device=DEVICE, dtype=DTYPE)
    service = LocalService(engine)
    try:
        reqs = [GenRequest("alpha", SHORT, params=greedy(8)), GenRequest("beta", SHORT, params=greedy(8))]
        alone = [generate(service, r).text for r in reqs]
        together = [s.result().text for s in [service.submit(r) for r in reqs]]  # beta waits until alpha is done
        assert together == alone and service.stats["largest_batch"] == 1
    finally:
        service.close()
