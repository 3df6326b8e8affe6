"""Token and cost ledger: the price table (a data file), dry-run estimates and the spend so far.

Estimates are made before any translated text exists: English token counts (about 4 characters per token)
times a per-script factor for the target language, with the English source output as the expected response
length. Actual spend comes from the ``usage`` the API returned for each stored response.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from bactrian.languages import get_language

from .sources import Row


@lru_cache(maxsize=4)
def _resource(name: str) -> dict[str, Any]:
    return json.loads(resources.files("pipelines.data.resources").joinpath(name).read_text("utf-8"))


def price_table() -> dict[str, Any]:
    return _resource("prices.json")


def chat_price(model: str) -> dict[str, float] | None:
    """USD per 1M input/output tokens, by exact id or by the longest known prefix (``gpt-3.5-turbo-1106``)."""
    chat = price_table()["chat"]
    if model in chat:
        return chat[model]
    best = max((k for k in chat if model.startswith(k)), key=len, default=None)
    return chat[best] if best else None


def chat_cost(model: str, prompt_tokens: int, completion_tokens: int, batch: bool = False) -> float | None:
    p = chat_price(model)
    if p is None:
        return None
    usd = (prompt_tokens * p["input"] + completion_tokens * p["output"]) / 1e6
    return usd * (price_table()["batch_discount"] if batch else 1.0)


def english_tokens(text: str) -> int:
    """Rough token count of English text (about 4 characters per token)."""
    return math.ceil(len(text) / 4) if text else 0


def script_factor(lang: str) -> float:
    factors = _resource("script_token_factors.json")
    if lang == "en":
        return 1.0
    return float(factors.get(get_language(lang).script, factors["default"]))


@dataclass
class Estimate:
    rows: int
    languages: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    chat_usd: float | None
    chat_usd_batch: float | None
    translate_chars: int
    translate_usd: float | None
    model: str
    translator: str
    prices_as_of: str

    @property
    def total_usd(self) -> float | None:
        if self.chat_usd is None:
            return None
        return self.chat_usd + (self.translate_usd or 0.0)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_usd": self.total_usd}


def estimate(rows: list[Row], languages: list[str], model: str, translator: str, max_tokens: int,
             already_done: int = 0) -> Estimate:
    """Calls, tokens and dollars for responding to every (row, language), minus ``already_done`` calls."""
    en_prompt = sum(english_tokens(r.instruction) + english_tokens(r.input) + 8 for r in rows)  # + chat overhead
    en_out = sum(min(english_tokens(r.output), max_tokens) for r in rows)
    prompt = sum(en_prompt * script_factor(lang) for lang in languages)
    completion = sum(en_out * script_factor(lang) for lang in languages)
    calls = len(rows) * len(languages)
    remaining = (calls - already_done) / calls if calls else 0.0
    prompt_t, completion_t = int(prompt * remaining), int(completion * remaining)
    chat = chat_cost(model, prompt_t, completion_t)
    chat_b = chat_cost(model, prompt_t, completion_t, batch=True)
    chars = sum(len(r.instruction) + len(r.input) for r in rows) * len([lang for lang in languages if lang != "en"])
    per_char = price_table()["translate_per_million_chars"].get(translator.split(":")[0])
    return Estimate(
        rows=len(rows), languages=len(languages), calls=calls - already_done, prompt_tokens=prompt_t,
        completion_tokens=completion_t, chat_usd=chat, chat_usd_batch=chat_b, translate_chars=chars,
        translate_usd=chars * per_char / 1e6 if per_char is not None else None, model=model,
        translator=translator, prices_as_of=price_table()["as_of"],
    )


def spend(store: Any, model: str) -> dict[str, Any]:
    """Tokens and dollars actually used for ``model`` so far, per language and in total (from stored usage)."""
    rows = store.query(
        "SELECT lang, via, COUNT(*), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0)"
        " FROM responses WHERE model = ? GROUP BY lang, via",
        (model,),
    )
    per_lang: dict[str, dict[str, Any]] = {}
    for lang, via, n, pt, ct in rows:
        d = per_lang.setdefault(lang, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0})
        d["calls"] += n
        d["prompt_tokens"] += pt
        d["completion_tokens"] += ct
        c = chat_cost(model, pt, ct, batch=via == "batch")
        d["usd"] = None if c is None or d["usd"] is None else d["usd"] + c
    total = {k: sum(d[k] for d in per_lang.values()) for k in ("calls", "prompt_tokens", "completion_tokens")}
    usds = [d["usd"] for d in per_lang.values()]
    total["usd"] = None if any(u is None for u in usds) else sum(usds)
    return {"model": model, "per_language": per_lang, "total": total}


def format_estimate(e: Estimate) -> str:
    usd = lambda v: "n/a (model not in the price table)" if v is None else f"${v:,.2f}"  # noqa: E731
    lines = [
        f"dry run: {e.rows:,} rows x {e.languages} languages -> {e.calls:,} chat calls to {e.model}",
        f"  tokens (estimated): {e.prompt_tokens:,} prompt + {e.completion_tokens:,} completion",
        f"  chat cost: {usd(e.chat_usd)} online, {usd(e.chat_usd_batch)} with the Batch API",
        f"  translation ({e.translator}): {e.translate_chars:,} characters"
        + ("" if e.translate_usd is None else f", {usd(e.translate_usd)}"),
        f"  total (online chat + translation): {usd(e.total_usd)}   [prices as of {e.prices_as_of}]",
    ]
    return "\n".join(lines)
