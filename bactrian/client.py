"""A small client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, ``bactrian serve``).

The API key is read from an environment variable at call time and is never stored or logged. An upstream error
body may repeat the key it was sent (``Incorrect API key provided: Bearer sk-...``): every text that comes back
from an endpoint passes through ``redact`` before it is raised, logged or stored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

REDACTED = "[REDACTED]"
MIN_SECRET = 8  # a shorter "key" (e.g. a placeholder like EMPTY) is not hunted for in texts
KEY_LIKE = (  # (pattern, replacement): credentials whatever key they belong to
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer " + REDACTED),
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}"), REDACTED),  # OpenAI, Anthropic and many clones
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),  # Google API keys
    (re.compile(r"\b(?:hf|gh[pousr]|xox[abp])_[A-Za-z0-9]{16,}"), REDACTED),  # Hugging Face, GitHub, Slack tokens
    (re.compile(r"(?i)\b((?:api[_-]?)?key|token|secret|password|auth|access_token)=[^&\s\"']+"), r"\1=" + REDACTED),
    (re.compile(r"(?i)\b(x-api-key|api-key|authorization)(\s*[:=]\s*)(?!Bearer )[^\s,;\"']+"), r"\1\2" + REDACTED),
    (re.compile(r"(://)[^/@\s:]+:[^/@\s]+@"), r"\1" + REDACTED + "@"),  # user:password@ in URLs
)


def redact(text: str, *secrets: str | None, key_like: bool = True) -> str:
    """``text`` without the given secrets (e.g. the key that was sent) and, unless ``key_like=False`` (a model's
    own output, kept verbatim but for the key), without anything key-like either."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in KEY_LIKE if key_like else ():
        text = pattern.sub(replacement, text)
    return text


class EndpointError(RuntimeError):
    """The endpoint is unreachable or answered with an error. The message names the endpoint and the status; any
    text of the endpoint's in it is redacted. ``detail``: what the endpoint said (redacted), for the operator's log."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


class Unreachable(EndpointError):
    """Nothing came back: the endpoint could not be reached (or the connection dropped)."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"  # the variable's name, never its value
    timeout: float = 120.0

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env or "", "")

    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.base_url, api_key=self.api_key() or "not-needed", timeout=self.timeout, max_retries=0)

    def describe(self) -> str:
        return f"{self.model} @ {self.base_url}"


def chat(endpoint: Endpoint, messages: list[dict[str, str]], **params: Any) -> tuple[str, dict]:
    """One completion: (text, usage dict)."""
    import openai

    try:
        resp = endpoint.client().chat.completions.create(model=endpoint.model, messages=messages, **params)
    except openai.APIError as e:
        raise endpoint_error(endpoint, e) from e
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
    except openai.APIError as e:
        raise endpoint_error(endpoint, e) from e


def endpoint_error(endpoint: Endpoint, e: Any) -> EndpointError:
    """Our error for what the ``openai`` client raised: the status and the endpoint's own message, redacted."""
    import openai

    if isinstance(e, openai.APIConnectionError):
        return Unreachable(redact(f"cannot reach {endpoint.base_url}: {e}"))
    if isinstance(e, openai.APIStatusError):
        said = redact(_message(e), endpoint.api_key())
        return EndpointError(f"{redact(endpoint.describe())} answered {e.status_code}: {said}", detail=said)
    return EndpointError(redact(f"{endpoint.describe()} failed: {e}", endpoint.api_key()))


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(e)
