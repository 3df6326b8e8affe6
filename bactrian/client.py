"""A small client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, ``bactrian serve``).

The API key is read from an environment variable at call time and is never stored or logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator


class EndpointError(RuntimeError):
    """The endpoint is unreachable or answered with an error; the message is safe to show."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"  # the variable's name, never its value
    timeout: float = 120.0

    def client(self) -> Any:
        from openai import OpenAI

        key = os.environ.get(self.api_key_env or "", "") or "not-needed"
        return OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=0)

    def describe(self) -> str:
        return f"{self.model} @ {self.base_url}"


def chat(endpoint: Endpoint, messages: list[dict[str, str]], **params: Any) -> tuple[str, dict]:
    """One completion: (text, usage dict)."""
    import openai

    try:
        resp = endpoint.client().chat.completions.create(model=endpoint.model, messages=messages, **params)
    except openai.APIConnectionError as e:
        raise EndpointError(f"cannot reach {endpoint.base_url}: {e}") from e
    except openai.APIStatusError as e:
        raise EndpointError(f"{endpoint.describe()} answered {e.status_code}: {_message(e)}") from e
    usage = resp.usage.model_dump() if resp.usage else {}
    return resp.choices[0].message.content or "", usage


def stream_chat(endpoint: Endpoint, messages: list[dict[str, str]], **params: Any) -> Iterator[str]:
    """Stream text deltas of one completion."""
    import openai

    try:
        stream = endpoint.client().chat.completions.create(model=endpoint.model, messages=messages, stream=True, **params)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
    except openai.APIConnectionError as e:
        raise EndpointError(f"cannot reach {endpoint.base_url}: {e}") from e
    except openai.APIStatusError as e:
        raise EndpointError(f"{endpoint.describe()} answered {e.status_code}: {_message(e)}") from e


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(e)
