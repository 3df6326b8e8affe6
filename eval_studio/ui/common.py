"""Small, testable helpers shared by the tabs: input checks, inert display, parameters, sign-in, translations."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bactrian.generation import GenerationParams

from eval_studio.auth import User, gradio_auth
from eval_studio.ratelimit import RateLimited, RateLimiter
from eval_studio.ui.text import t


class Rejected(ValueError):
    """Input refused before anything ran or was stored; ``key``/``fmt`` name the UI message."""

    def __init__(self, key: str, **fmt: Any):
        super().__init__(key)
        self.key, self.fmt = key, fmt

    def text(self, lang: str) -> str:
        return t(self.key, lang, **self.fmt)


def check_message(text: str | None, cap: int) -> str:
    """The message to send, or ``Rejected`` (empty, or over the cap)."""
    text = text or ""
    if not text.strip():
        raise Rejected("empty_message")
    if len(text) > cap:
        raise Rejected("too_long", n=len(text), cap=cap)
    return text


def check_rate(limiter: RateLimiter, action: str, session: str | None, user: User | None = None) -> None:
    """``Rejected("rate_limited")`` when ``session`` (or everyone together) is over the limit for ``action``
    (generate | vote | login); nothing is spent then. Admins (the operator) are not limited."""
    if user is not None and user.is_admin:
        return
    try:
        limiter.take(action, session)
    except RateLimited as e:
        raise Rejected("rate_limited", seconds=e.retry_after) from e


def session_key(request: Any) -> str | None:
    """The visitor's Gradio session (``gr.Request``), else their address; None outside a request."""
    if request is None:
        return None
    client = getattr(request, "client", None)
    return getattr(request, "session_hash", None) or (getattr(client, "host", None) if client else None)


def inert(text: str) -> str:
    """Display copy of any user or model text: HTML is escaped, so it shows as text and never runs.

    The raw text (what the model saw, what the store keeps) is never changed; only what the browser renders.
    """
    return html.escape(text or "", quote=False)


def as_chat(history: list[dict[str, str]]) -> list[dict[str, str]]:
    """gr.Chatbot messages (role/content dicts) with inert content."""
    return [{"role": m["role"], "content": inert(m["content"])} for m in history]


def make_params(defaults: dict[str, Any], max_new_tokens: float, temperature: float, top_p: float, top_k: float,
                repetition_penalty: float, seed: float | None) -> GenerationParams:
    """GenerationParams from the UI sliders over the configured defaults; raises ``Rejected`` naming a bad one."""
    values = dict(defaults)
    values.update(max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p),
                  top_k=int(top_k), repetition_penalty=float(repetition_penalty),
                  seed=None if seed is None or int(seed) < 0 else int(seed))
    try:
        return GenerationParams.from_dict(values)
    except (TypeError, ValueError) as e:
        raise Rejected("bad_params", error=str(e)) from e


def sign_in(users: dict[str, User], name: str, password: str) -> User | None:
    """The user if the password matches (checked on the server, against stored scrypt hashes)."""
    name = (name or "").strip()
    if not name or not password:
        return None
    return users.get(name) if gradio_auth(users)(name, password) else None


def user_line(user: User | None, lang: str) -> str:
    return t("signed_in", lang, name=user.name, role=user.role) if user else t("signed_out", lang)


@dataclass
class Translator:
    """Components whose texts follow the UI language; ``updates(lang)`` gives one ``gr.update`` per component."""

    entries: list[tuple[Any, Callable[[str], dict[str, Any]]]] = field(default_factory=list)

    def add(self, component: Any, **keys: str | Callable[[str], Any]) -> Any:
        """``add(gr.Button(...), value="send")``: attribute -> text key (or a function of the language)."""
        def texts(lang: str) -> dict[str, Any]:
            return {attr: (k(lang) if callable(k) else t(k, lang)) for attr, k in keys.items()}

        self.entries.append((component, texts))
        return component

    @property
    def components(self) -> list[Any]:
        return [c for c, _ in self.entries]

    def updates(self, lang: str) -> list[Any]:
        import gradio as gr

        return [gr.update(**texts(lang)) for _, texts in self.entries]

