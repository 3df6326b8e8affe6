"""The real embedded models, once each: Gemma 3 270M (base) and SmolLM2 135M Instruct (chat template)."""

import openai
import pytest

from bactrian.engine import Engine
from bactrian.generation import GenerationParams
from bactrian.models import is_cached
from bactrian.server import create_app
from bactrian.service import GenRequest, LocalService, generate
from tests.helpers import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma():
    if not is_cached("gemma-3-270m"):
        pytest.skip("gemma-3-270m is not cached yet: the README's set-up command builds the cache first")
    service = LocalService(Engine.load("gemma-3-270m", include_default_dirs=True))
    yield service
    service.close()


def test_gemma_from_cache_generates_and_serves(gemma):
    engine = gemma.engine
    assert engine.base.load_seconds < 60  # from the safetensors cache, not a fresh GGUF dequantization
    assert engine.prompter.name == "bactrian-x" and not engine.tokenizer.chat_template
    g = GenerationParams(max_new_tokens=16, temperature=0)
    text = generate(gemma, GenRequest("gemma-3-270m", prompt=engine.prompter.build("What is the capital of France?"), params=g)).text
    assert text.strip()
    with LiveServer(create_app(gemma)) as s:
        c = openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0)
        assert c.models.list().data[0].id == "gemma-3-270m"
        r = c.chat.completions.create(model="gemma-3-270m", messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=16, temperature=0)
        assert r.choices[0].message.content == text  # the server and the library agree
        chunks = c.chat.completions.create(model="gemma-3-270m", messages=[{"role": "user", "content": "中国的首都是哪里？"}], max_tokens=8, temperature=0, stream=True)
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


def test_smollm2_uses_its_chat_template():
    if not is_cached("smollm2-135m-instruct"):
        pytest.skip("smollm2-135m-instruct is not cached yet: the README's set-up command builds the cache first")
    e = Engine.load("smollm2-135m-instruct", include_default_dirs=False)
    assert e.prompter.name == "chat"
    service = LocalService(e)
    reply = generate(service, GenRequest(e.base_name, [{"role": "user", "content": "What is the capital of France?"}],
                                         params=GenerationParams(max_new_tokens=20, temperature=0))).text
    service.close()
    assert "Paris" in reply
