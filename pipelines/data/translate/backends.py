"""Translation backends: Google Cloud Translation v2 (REST), an LLM behind any OpenAI-compatible endpoint, and a
local transformers seq2seq model. Each turns a list of English strings into the target language, keeping
``⟦n⟧`` markers (see ``protect``) as well as it can.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
from functools import lru_cache
from importlib import resources
from typing import Any, Protocol

from bactrian.client import MissingKey, openai_client
from bactrian.client import read_key as _read_key
from bactrian.languages import get_language

from ..limits import PermanentError, RetryPolicy, call_with_retries
from ..recipe import TranslateSpec

GOOGLE_ROOT = "https://translation.googleapis.com"


class Translator(Protocol):
    name: str  # part of the durable key: changing backend or model re-translates

    async def translate(self, texts: list[str], lang: str) -> list[str]: ...

    def secrets(self) -> list[str]: ...

    async def aclose(self) -> None: ...


def read_key(env_name: str | None, required: bool) -> str | None:
    """The API key from the named environment variable (recipes only ever hold the variable's name), by
    ``bactrian.client``'s rule; a missing one is a PermanentError, which stops the step instead of retrying."""
    try:
        return _read_key(env_name, required=required)
    except MissingKey as e:
        raise PermanentError(str(e)) from None


@lru_cache(maxsize=1)
def _translate_prompt() -> dict[str, str]:
    return json.loads(resources.files("pipelines.data.resources").joinpath("translate_prompt.json").read_text("utf-8"))


class LLMTranslator:
    """One chat request per string, at most ``concurrency`` in flight."""

    def __init__(self, spec: TranslateSpec):
        if not spec.model:
            raise PermanentError("translate.model: name the served model for the llm backend")
        self.spec = spec
        self.name = f"llm:{spec.model}"
        # OpenAI's own API (no base_url) needs a key; a local server takes the one dummy key
        self._key = read_key(spec.api_key_env, required=spec.base_url is None)
        self.client = openai_client(spec.endpoint, asynchronous=True)  # retries are ours (self.policy)
        self.sem = asyncio.Semaphore(spec.concurrency)
        self.policy = RetryPolicy(spec.max_retries)

    def secrets(self) -> list[str]:
        return [self._key] if self._key else []

    async def _one(self, text: str, lang: str) -> str:
        language = get_language(lang)
        p = _translate_prompt()
        messages = [
            {"role": "system", "content": p["system"].format(language=language.name, native=language.native)},
            {"role": "user", "content": p["user"].format(text=text)},
        ]
        async with self.sem:
            resp, _ = await call_with_retries(
                lambda: self.client.chat.completions.create(
                    model=self.spec.model, messages=messages, max_tokens=self.spec.max_tokens, temperature=0.0),
                self.policy,
            )
        return (resp.choices[0].message.content or "").strip()

    async def translate(self, texts: list[str], lang: str) -> list[str]:
        return list(await asyncio.gather(*(self._one(t, lang) for t in texts)))

    async def aclose(self) -> None:
        await self.client.close()


_SPAN = re.compile(r'<span translate="no">(⟦\d+⟧)</span>')


class GoogleTranslator:
    """Cloud Translation v2 REST: ``POST {root}/language/translate/v2`` with up to ``batch_size`` strings per request.

    Text goes as HTML so markers sit in ``translate="no"`` spans and line breaks survive as ``<br>``.
    The key travels in the ``X-Goog-Api-Key`` header, never in the URL (URLs end up in error messages).
    """

    name = "google"
    max_chars = 25_000  # per request, below the API's limit

    def __init__(self, spec: TranslateSpec):
        import httpx

        self.spec = spec
        self.url = (spec.base_url or GOOGLE_ROOT).rstrip("/") + "/language/translate/v2"
        self._key = None if spec.service_account_file else read_key(spec.api_key_env or "GOOGLE_API_KEY", True)
        self._creds: Any = None
        self._creds_lock = threading.Lock()
        self.client = httpx.AsyncClient(timeout=spec.timeout_s)
        self.sem = asyncio.Semaphore(spec.concurrency)
        self.policy = RetryPolicy(spec.max_retries)

    def secrets(self) -> list[str]:
        token = getattr(self._creds, "token", None)
        return [s for s in (self._key, token) if s]

    def _bearer(self) -> str:
        with self._creds_lock:
            if self._creds is None:
                try:
                    from google.auth.transport.requests import Request
                    from google.oauth2 import service_account
                except ImportError:
                    raise PermanentError("a service account needs google-auth: pip install google-auth") from None
                self._creds = service_account.Credentials.from_service_account_file(
                    self.spec.service_account_file, scopes=["https://www.googleapis.com/auth/cloud-translation"])
                self._request = Request()
            if not self._creds.valid:
                self._creds.refresh(self._request)
            return self._creds.token

    async def _headers(self) -> dict[str, str]:
        if self._key:
            return {"X-Goog-Api-Key": self._key}
        return {"Authorization": f"Bearer {await asyncio.to_thread(self._bearer)}"}

    @staticmethod
    def _to_html(text: str) -> str:
        escaped = html.escape(text, quote=False).replace("\n", "<br>")
        return re.sub(r"⟦\d+⟧", lambda m: f'<span translate="no">{m.group(0)}</span>', escaped)

    @staticmethod
    def _from_html(text: str) -> str:
        text = _SPAN.sub(r"\1", text)
        text = re.sub(r"\s*<br\s*/?>\s*", "\n", text)
        return html.unescape(text)

    async def _request(self, texts: list[str], lang: str) -> list[str]:
        body = {"q": [self._to_html(t) for t in texts], "target": lang, "source": "en", "format": "html"}

        async def post() -> list[str]:
            r = await self.client.post(self.url, json=body, headers=await self._headers())
            if r.status_code in (400, 401, 403, 404):
                raise PermanentError(f"Google Translation API {r.status_code}: {r.text[:300]}")
            r.raise_for_status()
            out = r.json()["data"]["translations"]
            if len(out) != len(texts):
                raise PermanentError(f"Google Translation API returned {len(out)} strings for {len(texts)}")
            return [self._from_html(t["translatedText"]) for t in out]

        async with self.sem:
            result, _ = await call_with_retries(post, self.policy)
        return result

    async def translate(self, texts: list[str], lang: str) -> list[str]:
        batches: list[list[str]] = [[]]
        size = 0
        for t in texts:  # batching: at most batch_size strings and max_chars characters per request
            if batches[-1] and (len(batches[-1]) >= self.spec.batch_size or size + len(t) > self.max_chars):
                batches.append([])
                size = 0
            batches[-1].append(t)
            size += len(t)
        parts = await asyncio.gather(*(self._request(b, lang) for b in batches if b))
        return [t for part in parts for t in part]

    async def aclose(self) -> None:
        await self.client.aclose()


@lru_cache(maxsize=1)
def _nllb_codes() -> dict[str, str]:
    return json.loads(resources.files("pipelines.data.resources").joinpath("nllb_codes.json").read_text("utf-8"))


class Seq2SeqTranslator:
    """A local transformers seq2seq model: NLLB / M2M / mBART-50 (one model, a forced target-language token) or
    Marian pairs (``model`` contains ``{lang}``, e.g. ``Helsinki-NLP/opus-mt-en-{lang}``)."""

    def __init__(self, spec: TranslateSpec):
        if not spec.model:
            raise PermanentError("translate.model: give a seq2seq model folder or Hub id")
        self.spec = spec
        self.name = f"seq2seq:{spec.model}"
        self._models: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()  # one generate at a time: the CPU/GPU is the limit anyway

    def secrets(self) -> list[str]:
        return []

    def _load(self, lang: str) -> tuple[Any, Any]:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        name = self.spec.model.format(lang=lang) if "{lang}" in self.spec.model else self.spec.model
        if name not in self._models:
            tok = AutoTokenizer.from_pretrained(name)
            model = AutoModelForSeq2SeqLM.from_pretrained(name).eval()
            for src in ("eng_Latn", "en_XX", "en"):  # multilingual tokenizers need the source language
                if hasattr(tok, "src_lang") and tok.convert_tokens_to_ids(src) not in (None, tok.unk_token_id):
                    tok.src_lang = src
                    break
            self._models[name] = (tok, model)
        return self._models[name]

    def _target_token(self, tok: Any, lang: str) -> int | None:
        for cand in (_nllb_codes().get(lang), get_language(lang).mbart, f"__{lang}__"):
            if cand and tok.convert_tokens_to_ids(cand) not in (None, tok.unk_token_id):
                return tok.convert_tokens_to_ids(cand)
        return None

    def _generate(self, texts: list[str], lang: str) -> list[str]:
        import torch

        with self._lock:
            tok, model = self._load(lang)
            kwargs: dict[str, Any] = {"max_new_tokens": self.spec.max_tokens, "num_beams": 1}
            forced = self._target_token(tok, lang)
            if forced is not None and "{lang}" not in self.spec.model:
                kwargs["forced_bos_token_id"] = forced
            out: list[str] = []
            for i in range(0, len(texts), 8):
                enc = tok(texts[i:i + 8], return_tensors="pt", padding=True, truncation=True, max_length=512)
                with torch.no_grad():
                    gen = model.generate(**enc, **kwargs)
                out.extend(s.strip() for s in tok.batch_decode(gen, skip_special_tokens=True))
            return out

    async def translate(self, texts: list[str], lang: str) -> list[str]:
        return await asyncio.to_thread(self._generate, texts, lang)

    async def aclose(self) -> None:
        self._models.clear()


def make_translator(spec: TranslateSpec) -> Translator:
    backends = {"llm": LLMTranslator, "google": GoogleTranslator, "seq2seq": Seq2SeqTranslator}
    if spec.backend not in backends:
        raise PermanentError(f"translate.backend {spec.backend!r} has no translator (use llm, google or seq2seq)")
    return backends[spec.backend](spec)
