"""The one endpoint type and client factory for any OpenAI-compatible chat endpoint (OpenAI, vLLM, ``bactrian serve``).

Every part of the project that talks to such an endpoint (the remote generation service, the judge, the data
pipeline's respond and translate steps, the studio's external models) describes it with :class:`Endpoint`
(base URL, model, the *name* of the variable holding the key) and gets its ``openai`` client from
:func:`openai_client`, so there is one dummy-key rule and one error type (:class:`EndpointError`).

The API key is read from the named environment variable when a client is built and is never stored in an
``Endpoint``, a database, a log or an export. An upstream error body may repeat the key it was sent
(``Incorrect API key provided: Bearer sk-...``): every text that comes back from an endpoint passes through
``redact`` before it is raised, logged or stored.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import urlsplit

# The one dummy key, sent when no key is needed: local servers ignore it, the openai client insists on one.
NO_KEY = "EMPTY"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
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


class MissingKey(EndpointError):
    """The endpoint needs a key and the recipe/settings name no variable, or the variable is not set."""


def is_openai(base_url: str | None) -> bool:
    """OpenAI's own API (``None`` is the openai client's default, api.openai.com), which always needs a key."""
    return base_url is None or urlsplit(base_url).hostname == "api.openai.com"


def read_key(api_key_env: str | None, *, required: bool = False) -> str | None:
    """The key in the named environment variable (None: no variable named, or it is empty). ``required``: raise
    MissingKey instead of returning None. Callers pass only the variable's name; the value is never kept."""
    if not api_key_env:
        if required:
            raise MissingKey("no api_key_env given: name the environment variable that holds the key")
        return None
    value = os.environ.get(api_key_env)
    if not value and required:
        raise MissingKey(f"environment variable {api_key_env} is not set (it should hold the API key)")
    return value or None


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible endpoint: where (``base_url``; None: OpenAI's API), which ``model``, and the name of
    the environment variable holding its key (never the key: an Endpoint may be logged, stored or shown)."""

    base_url: str | None
    model: str
    api_key_env: str | None = OPENAI_KEY_ENV  # the variable's name, never its value
    timeout: float = 120.0

    def api_key(self, *, required: bool = False) -> str:
        """The key from the environment now ("" when none); ``required``: MissingKey rather than ""."""
        return read_key(self.api_key_env, required=required) or ""

    def client(self, *, asynchronous: bool = False, required: bool = False, max_retries: int = 0,
               http_client: Any = None) -> Any:
        """Shorthand for :func:`openai_client` on this endpoint."""
        return openai_client(self, asynchronous=asynchronous, required=required, max_retries=max_retries,
                             http_client=http_client)

    def describe(self) -> str:
        return f"{self.model} @ {self.base_url or 'api.openai.com'}"


def openai_client(endpoint: Endpoint, *, asynchronous: bool = False, required: bool = False, max_retries: int = 0,
                  http_client: Any = None) -> Any:
    """The one place an ``openai.OpenAI`` (or, ``asynchronous``, ``openai.AsyncOpenAI``) client is built.

    The key is read from ``endpoint.api_key_env`` now; with none, ``NO_KEY`` is sent (``required``: MissingKey
    instead). ``max_retries`` defaults to 0 because every caller retries on its own terms (the data pipeline's
    rate-limited policy, the judge's per-call error rows); ``http_client`` lets a caller pick the transport."""
    import openai

    cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
    extra = {"http_client": http_client} if http_client is not None else {}
    return cls(base_url=endpoint.base_url, api_key=endpoint.api_key(required=required) or NO_KEY,
               timeout=endpoint.timeout, max_retries=max_retries, **extra)


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
        return Unreachable(redact(f"cannot reach {endpoint.base_url or 'api.openai.com'}: {e}"))
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
