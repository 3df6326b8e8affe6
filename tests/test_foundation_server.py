"""`bactrian serve` over real HTTP on 127.0.0.1, driven by the official openai client."""

import threading

import httpx
import openai
import pytest

from bactrian.server import create_app
from bactrian.service import LocalService
from tests.helpers import LiveServer


@pytest.fixture
def server(tiny_engine):
    app = create_app(LocalService(tiny_engine))
    with LiveServer(app) as s:
        s.app = app
        yield s


def _client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


def test_models_completion_and_stream(server):
    c = _client(server)
    ids = [m.id for m in c.models.list().data]
    assert ids[0] == server.app.state.service.base_name and {"alpha", "beta"} <= set(ids)
    kw = dict(messages=[{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    r = c.chat.completions.create(model="alpha", **kw)
    assert r.choices[0].message.content and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 0
    chunks = list(c.chat.completions.create(model="alpha", stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 8
    assert c.chat.completions.create(model="beta", **kw).choices[0].message.content != text


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"model": "nope"}, "unknown model"),
        ({"temperature": -2}, "temperature"),
        ({"top_p": 5}, "top_p"),
        ({"max_tokens": 0}, "max_new_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "   "}]}, "empty"),
        ({"messages": [{"role": "user", "content": "word " * 5000}]}, "characters"),
        ({"messages": [{"role": "user", "content": "word " * 600}], "max_tokens": 10}, "context length"),
        ({"min_tokens": 50, "max_tokens": 10}, "min_tokens"),
    ],
)
def test_bad_requests_get_400_with_error_body_and_server_keeps_serving(server, body, fragment):
    payload = {"model": "alpha", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **body}
    r = httpx.post(server.base_url + "/chat/completions", json=payload, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert fragment in err["message"] and err["type"] == "invalid_request_error"
    extras = {k: payload.pop(k) for k in ("min_tokens", "ignore_eos") if k in payload}
    with pytest.raises(openai.BadRequestError):
        _client(server).chat.completions.create(**payload, extra_body=extras)
    ok = _client(server).chat.completions.create(model="beta", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert ok.choices[0].message.content is not None


def test_huge_body_is_413(server):
    r = httpx.post(server.base_url + "/chat/completions", content=b"x" * 2_000_000, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]


def test_concurrent_requests_for_different_adapters_share_one_batch(server):
    stats = server.app.state.service.stats
    results = {}
    barrier = threading.Barrier(3)

    def ask(name):
        barrier.wait()
        r = _client(server).chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}], max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
        results[name] = r.choices[0].message.content

    threads = [threading.Thread(target=ask, args=(n,)) for n in ("alpha", "beta", server.app.state.service.base_name)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results.values())) == 3
    assert stats["largest_batch"] >= 2  # decoded together, not one after another
