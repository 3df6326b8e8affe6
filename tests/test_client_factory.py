"""The one endpoint type and client factory (``bactrian.client``): every configuration that names an
OpenAI-compatible endpoint gives an ``Endpoint``, every ``openai`` client is built by ``openai_client`` with one
dummy-key rule, the key is read from the named variable and never kept, and there is one ``EndpointError``."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bactrian.client import NO_KEY, Endpoint, EndpointError, MissingKey, is_openai, openai_client, read_key
from tests.keys_support import FakeOpenAI

KEY_ENV = "BACTRIAN_TEST_FACTORY_KEY"
KEY = "sk-factory-test-0123456789abcdef"


def test_sync_and_async_clients_send_the_named_key_or_the_one_dummy_key(monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeOpenAI() as server:
        plain = Endpoint(server.base_url, "local-a", None, timeout=10)
        hi = [{"role": "user", "content": "hi"}]
        assert openai_client(plain).chat.completions.create(model="local-a", messages=hi)
        keyed = Endpoint(server.base_url, "local-a", KEY_ENV, timeout=10)
        openai_client(keyed).models.list()  # the variable is unset: the dummy key, no error (a local server)
        monkeypatch.setenv(KEY_ENV, KEY)  # read when the client is built, not when the Endpoint was made

        async def ask() -> None:
            client = openai_client(keyed, asynchronous=True)
            try:
                await client.chat.completions.create(model="local-a", messages=hi)
            finally:
                await client.close()

        asyncio.run(ask())
        assert server.auth == [f"Bearer {NO_KEY}", f"Bearer {KEY}"]  # /models is a GET: not recorded
    assert KEY not in repr(keyed) and KEY not in str(dataclasses.asdict(keyed))  # the Endpoint holds the name only


def test_factory_options_and_required_keys(monkeypatch) -> None:
    import openai

    monkeypatch.delenv(KEY_ENV, raising=False)
    e = Endpoint("http://127.0.0.1:9/v1", "m", KEY_ENV, timeout=7)
    c = openai_client(e, max_retries=3)
    assert isinstance(c, openai.OpenAI) and (c.max_retries, c.timeout, c.api_key) == (3, 7, NO_KEY)
    assert isinstance(e.client(asynchronous=True), openai.AsyncOpenAI)
    with pytest.raises(MissingKey, match=f"{KEY_ENV} is not set"):
        openai_client(e, required=True)
    with pytest.raises(MissingKey, match="no api_key_env"):
        read_key(None, required=True)
    assert read_key(None) is None and read_key(KEY_ENV) is None and issubclass(MissingKey, EndpointError)
    assert is_openai(None) and is_openai("https://api.openai.com/v1") and not is_openai("http://127.0.0.1:8000/v1")
    assert Endpoint(None, "gpt-4o").describe() == "gpt-4o @ api.openai.com"


def test_every_endpoint_configuration_gives_the_one_endpoint_type() -> None:
    from eval_studio.judge import JudgeConfig
    from eval_studio.judge.runner import EndpointError as JudgeEndpointError
    from eval_studio.settings import ExternalModel
    from pipelines.data.recipe import RespondSpec, TranslateSpec

    assert JudgeEndpointError is EndpointError  # one error class: the judge's is the client's
    respond = RespondSpec(model="m", base_url="http://r/v1", timeout_s=5)
    assert respond.endpoint == Endpoint("http://r/v1", "m", "OPENAI_API_KEY", 5)
    assert RespondSpec().endpoint.base_url is None  # OpenAI's own API
    translate = TranslateSpec(model="t", base_url="http://t/v1", api_key_env="K")
    assert translate.endpoint == Endpoint("http://t/v1", "t", "K", 60.0)
    assert ExternalModel("gpt", "http://e/v1", "gpt-x", "K").endpoint == Endpoint("http://e/v1", "gpt-x", "K")
    judge = JudgeConfig(prompt="bactrian-x", model="j", base_url="http://j/v1", timeout_s=9)
    assert judge.endpoint == Endpoint("http://j/v1", "j", None, 9)  # a local judge: no key unless one is named
    openai_judge = JudgeConfig(prompt="bactrian-x", model="gpt-4o", base_url="https://api.openai.com/v1")
    assert openai_judge.endpoint.api_key_env == "OPENAI_API_KEY"


def test_judge_key_rule(monkeypatch) -> None:
    from eval_studio.judge import JudgeConfig
    from eval_studio.judge.runner import resolve_api_key

    monkeypatch.delenv(KEY_ENV, raising=False)
    assert resolve_api_key(JudgeConfig(prompt="p", model="m", base_url="http://127.0.0.1:1/v1")) == NO_KEY
    named = JudgeConfig(prompt="p", model="m", base_url="http://127.0.0.1:1/v1", api_key_env=KEY_ENV)
    with pytest.raises(EndpointError, match=f"judge API key: environment variable {KEY_ENV} is not set"):
        resolve_api_key(named)
    monkeypatch.setenv(KEY_ENV, KEY)
    assert resolve_api_key(named) == KEY


def test_data_steps_turn_a_missing_key_into_a_permanent_error(monkeypatch) -> None:
    from pipelines.data.limits import PermanentError
    from pipelines.data.recipe import RespondSpec, TranslateSpec
    from pipelines.data.respond import make_client
    from pipelines.data.translate.backends import LLMTranslator

    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(PermanentError, match=f"{KEY_ENV} is not set"):
        make_client(RespondSpec(api_key_env=KEY_ENV))  # OpenAI's own API needs the key
    with pytest.raises(PermanentError, match="no api_key_env"):
        LLMTranslator(TranslateSpec(model="m"))
    client, secrets = make_client(RespondSpec(base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV))
    assert secrets == [] and client.api_key == NO_KEY
    asyncio.run(client.close())
    monkeypatch.setenv(KEY_ENV, KEY)
    t = LLMTranslator(TranslateSpec(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=KEY_ENV))
    assert t.secrets() == [KEY] and t.client.api_key == KEY
    asyncio.run(t.aclose())
