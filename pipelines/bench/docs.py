"""Prompt pieces the task YAML files reference with ``!function pipelines.bench.docs.<name>``.

They reproduce lm-eval's own XCOPA and XWinograd prompts (tests compare them with lm-eval's functions), so
numbers stay comparable with results reported through the harness.
"""

from __future__ import annotations


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def xcopa_choices(doc: dict) -> list[str]:
    """Both alternatives, lower-cased at the start because they continue the premise sentence."""
    return [_lower_first(doc["choice1"]), _lower_first(doc["choice2"])]


def xwinograd_gold(doc: dict) -> int:
    """Index of the right candidate ("multiple input" mode: doc_to_text returns the gold index)."""
    return {"1": 0, "2": 1}[str(doc["answer"])]


def xwinograd_continuation(doc: dict) -> str:
    """The part of the sentence after the blank, scored after each candidate context."""
    idx = doc["sentence"].index("_") + 1
    return doc["sentence"][idx:].strip()


def xwinograd_contexts(doc: dict) -> list[str]:
    """One context per candidate: the sentence up to the blank with the candidate filled in."""
    idx = doc["sentence"].index("_")
    return [doc["sentence"][:idx] + opt for opt in (doc["option1"], doc["option2"])]
