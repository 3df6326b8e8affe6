"""Question sets across languages: an English question set translated into chosen languages by the translate step.

The source is any JSONL question set: Vicuna-80 (``{question_id, text, category}``), LLMZoo's
(``{id, label, query}``), MT-bench (``{question_id, category, turns}``: the first turn) or the project's own
(``{id, category, question}``). A recipe (``recipes/questions/``) picks the categories and how many questions of
each (the paper: 12 languages x 8 categories x 2 questions) and names the translate backend, exactly the
``translate`` section of a data recipe (Google, an LLM endpoint such as ``bactrian serve``, a seq2seq model).

Output: ``<output>/questions.jsonl``, the project's own question-set format, one row per (question, language):
``{id, language, category, question, translator, untranslated}``. The id and category of a question are the same
in every language (the language is a field of its own), which is what the studio's question sets expect
(``bactrian studio import-questions``). Translations are committed to ``<output>/work.db`` as they finish (the
data pipeline's store), so an interrupted run resumes and a rerun translates nothing twice.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bactrian.languages import get_language, parse_languages
from bactrian.recipes import Overrides, RecipeError, load

from .recipe import Recipe, TranslateSpec
from .sources import Row
from .store import Store
from .translate import run_translate, translator_name

BACKENDS = ("google", "llm", "seq2seq", "none")


@dataclass(frozen=True)
class QuestionSetRecipe:
    name: str
    source: str  # the English question set (JSONL)
    output: str  # folder: questions.jsonl, work.db
    languages: tuple[str, ...]  # targets; "en" keeps the source text
    categories: tuple[str, ...] = ()  # keep only these categories, in this order (empty: every category)
    per_category: int | None = None  # this many questions of each category (None: all)
    seed: int | None = None  # None: the first per_category of each category in file order; else a seeded sample
    include_english: bool = True  # also write the English source rows (the paper's evaluation has none)
    translate: TranslateSpec = field(default_factory=TranslateSpec)

    @property
    def out(self) -> Path:
        return Path(self.output)


@dataclass(frozen=True)
class Question:
    id: str
    category: str | None
    text: str


def _languages(data: dict[str, Any]) -> dict[str, Any]:
    try:
        data["languages"] = parse_languages(data.get("languages") or [])
    except KeyError as e:
        raise RecipeError(str(e.args[0]), key="languages") from None
    if not data["languages"]:
        raise RecipeError("at least one language is needed (e.g. [zh, es], or G1..G4 for the paper's 12)",
                          key="languages")
    return data


def _check(recipe: QuestionSetRecipe) -> None:
    if recipe.translate.backend not in BACKENDS:
        raise RecipeError(f"{recipe.translate.backend!r} is not one of {', '.join(BACKENDS)}", key="translate.backend")
    if recipe.per_category is not None and recipe.per_category < 1:
        raise RecipeError("at least 1 (or leave it out for every question)", key="per_category")


def parse_question_recipe(data: dict[str, Any], overrides: Overrides = None) -> QuestionSetRecipe:
    return load(QuestionSetRecipe, data, overrides, prepare=_languages, check=_check)


def load_question_recipe(path: str | Path, overrides: Overrides = None) -> QuestionSetRecipe:
    return load(QuestionSetRecipe, path, overrides, prepare=_languages, check=_check)


def _text(obj: dict[str, Any]) -> Any:
    for key in ("question", "text", "query"):
        if key in obj:
            return obj[key]
    turns = obj.get("turns")
    return turns[0] if isinstance(turns, list) and turns else None


def read_question_source(path: str | Path) -> list[Question]:
    """The questions of a JSONL file in any recognised format; a line without id or text is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"question set not found: {path}")
    out, seen = [], set()
    for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{n}: expected a JSON object")
        qid, text = obj.get("id", obj.get("question_id")), _text(obj)
        if qid in (None, "") or not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{n}: expected {{id or question_id, question / text / query / turns, category}}")
        if str(qid) in seen:
            raise ValueError(f"{path}:{n}: question id {qid!r} appears twice")
        seen.add(str(qid))
        category = obj.get("category", obj.get("label"))
        out.append(Question(str(qid), None if category in (None, "") else str(category), text.strip()))
    return out


def select_questions(questions: list[Question], categories: tuple[str, ...] = (), per_category: int | None = None,
                     seed: int | None = None) -> list[Question]:
    """The recipe's selection: the chosen categories (in their order), ``per_category`` of each."""
    if categories:
        known = {q.category for q in questions}
        missing = [c for c in categories if c not in known]
        if missing:
            raise RecipeError(f"categories: {', '.join(missing)} not in the source (it has: "
                              f"{', '.join(sorted(str(c) for c in known))})")
    order = list(categories) or list(dict.fromkeys(q.category for q in questions))
    out = []
    for cat in order:
        group = [q for q in questions if q.category == cat]
        if seed is not None:
            group = random.Random(f"{seed}:{cat}").sample(group, len(group))
        out.extend(group[:per_category] if per_category else group)
    return out


def _data_recipe(recipe: QuestionSetRecipe) -> Recipe:
    """The data recipe the translate step runs on: the same translate section, languages and output folder."""
    return Recipe(name=recipe.name, output=recipe.output, languages=tuple(recipe.languages), sources=(),
                  translate=recipe.translate)


def plan(recipe: QuestionSetRecipe) -> dict[str, Any]:
    """What a run would do: questions chosen, per category, translations to make (before any call)."""
    chosen = select_questions(read_question_source(recipe.source), recipe.categories, recipe.per_category, recipe.seed)
    targets = [c for c in recipe.languages if c != "en"]
    by_cat: dict[str, int] = {}
    for q in chosen:
        by_cat[str(q.category)] = by_cat.get(str(q.category), 0) + 1
    return {"questions": len(chosen), "by_category": by_cat, "languages": list(recipe.languages),
            "translations": len(chosen) * len(targets), "translator": translator_name(_data_recipe(recipe))}


def translate_questions(recipe: QuestionSetRecipe, progress: bool = True) -> dict[str, Any]:
    """Translate the selected questions (resumable) and write ``questions.jsonl``; returns counts per language.

    A question whose translation failed is left out of that language (``missing``) and listed in the store's
    failures table; a rerun asks only for those."""
    chosen = select_questions(read_question_source(recipe.source), recipe.categories, recipe.per_category, recipe.seed)
    rows = [Row(id=q.id, instruction=q.text, input="", output="", source="questions", category=q.category) for q in chosen]
    data = _data_recipe(recipe)
    recipe.out.mkdir(parents=True, exist_ok=True)
    with Store(recipe.out / "work.db") as store:
        stats = run_translate(data, store, rows, progress) if any(c != "en" for c in recipe.languages) else None
        name = translator_name(data)
        langs = (["en"] if recipe.include_english or "en" in recipe.languages else []) + \
                [c for c in recipe.languages if c != "en"]
        lines, counts = [], {}
        for lang in langs:
            done = {} if lang == "en" else store.translations(name, lang)
            n = 0
            for q in chosen:
                t = None if lang == "en" else done.get(q.id)
                if lang != "en" and (t is None or not t["instruction"].strip()):
                    continue
                lines.append({"id": q.id, "language": get_language(lang).code, "category": q.category,
                              "question": q.text if lang == "en" else t["instruction"],
                              "translator": "source" if lang == "en" else name,
                              "untranslated": lang != "en" and bool(t["untranslated"])})
                n += 1
            counts[lang] = {"questions": n, "missing": len(chosen) - n}
    path = recipe.out / "questions.jsonl"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), "utf-8")
    tmp.replace(path)
    return {"output": str(path), "questions": len(chosen), "rows": len(lines), "languages": counts,
            "failed": stats.failed if stats else 0, "errors": stats.errors[:3] if stats else []}
