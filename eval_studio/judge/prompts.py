"""Judge prompts as data (``data/prompts.jsonl``, FastChat's row format) and their rendering with fences.

Every question and answer is put between two marker lines carrying a fresh random boundary, so an answer
cannot close its fence early (it cannot know the boundary) and the parser can tell the judge's own words
from echoed material.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

PAIRWISE = "pairwise"  # verdict [[A]] / [[B]] / [[C]]
PAIRWISE_SCORES = "pairwise-scores"  # both answers in one prompt, one score each: [[A=x, B=y]]
SINGLE = "single"  # one answer graded: [[rating]]
TYPES = (PAIRWISE, PAIRWISE_SCORES, SINGLE)
MARKER = re.compile(r"^\s*<<<FENCE-[0-9a-f]{16}>>>\s*$")


@dataclass(frozen=True)
class JudgePrompt:
    name: str
    type: str
    system_prompt: str
    prompt_template: str
    output_format: str
    description: str = ""
    category: str = "general"

    @property
    def hash(self) -> str:
        """Identity of the prompt definition: changes whenever its wording or format changes."""
        payload = json.dumps([self.name, self.type, self.system_prompt, self.prompt_template, self.output_format], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    @property
    def orderings(self) -> tuple[str, str]:
        """The two calls made per pair: both presentation orders, or each answer graded alone."""
        return ("a", "b") if self.type == SINGLE else ("ab", "ba")


@lru_cache(maxsize=1)
def _load() -> dict[str, JudgePrompt]:
    text = resources.files("eval_studio.judge.data").joinpath("prompts.jsonl").read_text("utf-8")
    prompts = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            row.pop("source", None)
            p = JudgePrompt(**row)
            if p.type not in TYPES:
                raise ValueError(f"judge prompt {p.name!r} has unknown type {p.type!r}")
            prompts[p.name] = p
    return prompts


def prompt_names() -> list[str]:
    return list(_load())


def get_prompt(name: str) -> JudgePrompt:
    try:
        return _load()[name]
    except KeyError:
        raise KeyError(f"unknown judge prompt {name!r}; known: {', '.join(_load())}") from None


def new_boundary(*texts: str) -> str:
    """A random marker that occurs in none of ``texts``."""
    while True:
        boundary = f"FENCE-{secrets.token_hex(8)}"
        if not any(boundary in t for t in texts):
            return boundary


def language_name(code: str) -> str:
    try:
        from bactrian.languages import get_language

        return get_language(code).name
    except KeyError:
        return code


def content_key(prompt: JudgePrompt, question: str, shown: tuple[str, ...], language: str) -> str:
    """Hash of what the judge is asked, without the per-request boundary (the cache's prompt hash)."""
    payload = json.dumps([prompt.hash, question, list(shown), language], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def render(prompt: JudgePrompt, question: str, shown: tuple[str, ...], language: str, boundary: str) -> list[dict[str, str]]:
    """Chat messages for one call; ``shown`` is (A, B) for pairwise prompts or (answer,) for single ones."""
    expected = 1 if prompt.type == SINGLE else 2
    if len(shown) != expected:
        raise ValueError(f"prompt {prompt.name!r} takes {expected} answer(s), got {len(shown)}")
    fields = {"question": question, "language": language_name(language), "boundary": boundary}
    if prompt.type == SINGLE:
        fields["answer"] = shown[0]
    else:
        fields["answer_a"], fields["answer_b"] = shown
    # str.format inserts the values literally, so braces inside answers are harmless.
    messages = [{"role": "system", "content": prompt.system_prompt.format(**fields)}] if prompt.system_prompt else []
    messages.append({"role": "user", "content": prompt.prompt_template.format(**fields)})
    return messages
