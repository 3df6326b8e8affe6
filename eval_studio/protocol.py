"""The paper's evaluation protocol as one resumable job: a question set, answers from any set of variants, every
pair judged in both orders, and the paper's views.

1. ``questions``: the question set (any format ``io.imports.read_questions`` knows, e.g. the output of
   ``bactrian data translate-questions``) is imported into the studio store under the recipe's ``set_name``.
2. ``answers``: every variant answers every question in its language through a generation service
   (``bactrian.service``): the in-process engine (``engine.base``), a remote OpenAI-compatible engine
   (``engine.url``: ``bactrian serve``, vLLM) or, per variant, an external model (``url`` + ``model`` +
   ``api_key_env``). Each answer is appended to ``<output>/answers.jsonl`` when it is finished, so a rerun asks only
   for the missing ones.
3. ``pairs``: every unordered pair of variants on a question becomes an annotation pair in the recipe's ``task``
   (``io.pairing.question_pairs``), with each side's weight digest (lineage).
4. ``judge``: the judge runner (``judge.runner.JudgeRunner``) asks for every pair in both orders with the
   recipe's prompt (``bactrian-x``: a 0-10 score per answer); finished calls are never repeated.
5. ``views``: the paper's tables from the judge's verdicts (``paper_views.paper_tables``), written to
   ``<output>/views.json``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from bactrian.generation import GenerationParams
from bactrian.recipes import Overrides, RecipeError, load
from bactrian.service import Busy, GenerationService, GenRequest, generate

from eval_studio.io.imports import read_questions
from eval_studio.io.pairing import question_pairs
from eval_studio.store.tasks import QuestionRecord, import_pairs, import_question_set

log = logging.getLogger(__name__)
STEPS = ("questions", "answers", "pairs", "judge", "views")


@dataclass(frozen=True)
class EngineSpec:
    """Where variants without a ``url`` of their own are served: a remote engine, or an in-process base."""

    url: str | None = None  # OpenAI-compatible base URL (bactrian serve, vLLM)
    api_key_env: str | None = None
    base: str | None = None  # in-process: embedded name, folder or Hub id
    adapters_dirs: tuple[str, ...] = ()
    include_default_adapters: bool = True
    device: str = "auto"
    dtype: str = "auto"


@dataclass(frozen=True)
class VariantSpec:
    name: str  # the player name in the studio
    url: str | None = None  # its own OpenAI-compatible endpoint (an external model); None: the recipe's engine
    model: str | None = None  # the served model id (default: name)
    api_key_env: str | None = None


@dataclass(frozen=True)
class GenerationSpec:
    max_new_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    seed: int | None = 0
    concurrency: int = 8  # requests in flight (one batched decode on an in-process or bactrian serve engine)

    def params(self) -> GenerationParams:
        return GenerationParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                                repetition_penalty=self.repetition_penalty, seed=self.seed).validate()


@dataclass(frozen=True)
class JudgeSpec:
    base_url: str
    model: str
    prompt: str = "bactrian-x"
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 1024
    concurrency: int = 4
    timeout_s: float = 600.0


@dataclass(frozen=True)
class ProtocolRecipe:
    name: str
    questions: str  # question set file
    output: str  # folder: answers.jsonl, views.json
    variants: tuple[VariantSpec, ...]
    judge: JudgeSpec
    engine: EngineSpec = field(default_factory=EngineSpec)
    generation: GenerationSpec = field(default_factory=GenerationSpec)
    languages: tuple[str, ...] = ()  # only these languages of the set (empty: all)
    set_name: str | None = None  # the studio's question set (default: name)
    task: str | None = None  # the annotation task holding the pairs (default: name)
    db: str | None = None  # studio database URL (default: the studio's own)

    @property
    def out(self) -> Path:
        return Path(self.output)

    @property
    def set_label(self) -> str:
        return self.set_name or self.name

    @property
    def task_name(self) -> str:
        return self.task or self.name


def _check(recipe: ProtocolRecipe) -> None:
    names = [v.name for v in recipe.variants]
    if len(names) < 2 or len(set(names)) != len(names):
        raise RecipeError(f"at least two, with different names (got {names})", key="variants")
    local = [v.name for v in recipe.variants if v.url is None]
    if local and not (recipe.engine.url or recipe.engine.base):
        raise RecipeError(f"give url or base for the variants without a url of their own ({', '.join(local)})",
                          key="engine")
    if recipe.engine.url and recipe.engine.base:
        raise RecipeError("url or base, not both", key="engine")
    try:
        recipe.generation.params()
    except ValueError as e:  # GenerationParams' own check: the same error format as every other recipe problem
        raise RecipeError(str(e), key="generation") from None


def parse_protocol_recipe(data: dict[str, Any], overrides: Overrides = None) -> ProtocolRecipe:
    return load(ProtocolRecipe, data, overrides, check=_check)


def load_protocol_recipe(path: str | Path, overrides: Overrides = None) -> ProtocolRecipe:
    return load(ProtocolRecipe, path, overrides, check=_check)


# -- services ----------------------------------------------------------------------------------------------------
def open_services(recipe: ProtocolRecipe, engine_service: GenerationService | None = None
                  ) -> dict[str, tuple[GenerationService, str]]:
    """Variant name -> (the service that answers for it, the model id to ask it for). ``engine_service`` replaces
    the recipe's engine (tests, or a caller that already holds one)."""
    from bactrian.remote import RemoteService

    shared = engine_service
    if shared is None and any(v.url is None for v in recipe.variants):
        e = recipe.engine
        if e.url:
            shared = RemoteService(e.url, api_key_env=e.api_key_env)
        else:
            from bactrian.engine import Engine as ModelEngine
            from bactrian.service import LocalService

            shared = LocalService(ModelEngine.load(e.base, list(e.adapters_dirs), include_default_dirs=e.include_default_adapters,
                                                   device=e.device, dtype=e.dtype))
    out: dict[str, tuple[GenerationService, str]] = {}
    for v in recipe.variants:
        model = v.model or v.name
        service = shared if v.url is None else RemoteService(v.url, api_key_env=v.api_key_env, models=[model])
        served = [i.name for i in service.variants()]
        if model not in served:
            raise RecipeError(f"variant {v.name!r}: {service.describe()} does not serve {model!r} (it serves: "
                              f"{', '.join(served)})")
        out[v.name] = (service, model)
    return out


def digests(services: dict[str, tuple[GenerationService, str]]) -> dict[str, str | None]:
    """Each variant's adapter weight digest as its service reports it (None: a base or an external model)."""
    out: dict[str, str | None] = {}
    for name, (service, model) in services.items():
        info = next((i for i in service.variants() if i.name == model), None)
        out[name] = info.digest if info is not None else None
    return out


# -- steps -------------------------------------------------------------------------------------------------------
def load_questions(recipe: ProtocolRecipe) -> list[QuestionRecord]:
    questions = read_questions(recipe.questions)
    if recipe.languages:
        questions = [q for q in questions if q.language in set(recipe.languages)]
    if not questions:
        raise RecipeError(f"questions: {recipe.questions} has no question in {list(recipe.languages) or 'any language'}")
    return questions


def answer_key(question_id: str, language: str, model: str) -> tuple[str, str, str]:
    return (str(question_id), language, model)


def read_answers_file(path: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The answers stored so far (a half-written last line, from a killed run, is ignored)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text("utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[answer_key(row["question_id"], row["language"], row["model_id"])] = row
    return out


def generate_answers(recipe: ProtocolRecipe, questions: list[QuestionRecord],
                     services: dict[str, tuple[GenerationService, str]],
                     on_answer: Callable[[dict[str, Any]], None] | None = None) -> dict[str, int]:
    """Ask every variant for every question it has not answered yet; each answer is appended as it finishes.

    A failed request is logged and left for the next run (never stored as an answer); ``Busy`` is retried."""
    path = recipe.out / "answers.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_answers_file(path)
    params = recipe.generation.params()
    todo = [(q, name) for q in questions for name in services if answer_key(q.id, q.language, name) not in done]
    lock = threading.Lock()
    stats = {"stored": len(done), "asked": len(todo), "answered": 0, "failed": 0}

    def ask(q: QuestionRecord, name: str) -> dict[str, Any]:
        service, model = services[name]
        request = GenRequest(model, [{"role": "user", "content": q.turns[0]}], params=params)
        start = time.monotonic()
        for attempt in range(60):
            try:
                res = generate(service, request)
                break
            except Busy:
                time.sleep(min(5.0, 0.5 * (attempt + 1)))
        else:
            raise Busy(f"{name}: still busy after 60 tries")
        return {"question_id": q.id, "language": q.language, "model_id": name, "text": res.text.strip(),
                "finish_reason": res.finish_reason, "prompt_tokens": res.prompt_tokens,
                "completion_tokens": res.completion_tokens, "seconds": round(time.monotonic() - start, 3)}

    with ThreadPoolExecutor(max_workers=max(1, recipe.generation.concurrency), thread_name_prefix="answer") as pool, \
            path.open("a", encoding="utf-8") as f:
        futures = {pool.submit(ask, q, name): (q, name) for q, name in todo}
        for fut in as_completed(futures):
            q, name = futures[fut]
            try:
                row = fut.result()
            except Exception as e:  # noqa: BLE001 - one failed answer is retried by the next run, not fatal
                log.warning("answer of %s to %s (%s) failed: %s", name, q.id, q.language, e)
                stats["failed"] += 1
                continue
            with lock:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                f.flush()
                stats["answered"] += 1
            if on_answer is not None:
                on_answer(row)
    return stats


def build_pairs(recipe: ProtocolRecipe, questions: list[QuestionRecord], db: Engine,
                lineage: dict[str, str | None] | None = None) -> dict[str, int]:
    """Import every unordered pair of the stored answers on each question into the recipe's task."""
    answers = read_answers_file(recipe.out / "answers.jsonl")
    names = [v.name for v in recipe.variants]
    lineage = lineage or {}
    records = []
    for q in questions:
        said = {n: answers[answer_key(q.id, q.language, n)]["text"] for n in names
                if answer_key(q.id, q.language, n) in answers}
        for pair in question_pairs(f"{recipe.set_label}-{q.language}", q.id, q.turns[0], q.language, q.category, said):
            records.append(replace(pair, digest_a=lineage.get(pair.model_a), digest_b=lineage.get(pair.model_b)))
    report = import_pairs(db, records, task=recipe.task_name)
    return {"pairs": len(records), "added": report.added, "unchanged": report.unchanged}


def run_judge(recipe: ProtocolRecipe, db: Engine, on_progress: Callable[[Any], None] | None = None) -> dict[str, Any]:
    from eval_studio.judge import JudgeConfig, judge_pairs

    j = recipe.judge
    config = JudgeConfig(prompt=j.prompt, model=j.model, base_url=j.base_url, api_key_env=j.api_key_env,
                         temperature=j.temperature, max_tokens=j.max_tokens, concurrency=j.concurrency,
                         timeout_s=j.timeout_s)
    runner = judge_pairs(db, config, task=recipe.task_name, on_progress=on_progress)
    status = runner.join()
    return {"run": status.id, "status": status.status, "calls": status.n_total, "done": status.n_done,
            "errors": status.n_errors, "message": status.message}


def judged_battles(recipe: ProtocolRecipe, db: Engine) -> pd.DataFrame:
    """The judge's order-merged verdicts on the recipe's pairs (the battle table)."""
    from eval_studio.store.battles import load_battles

    return load_battles(db, source="judge", task=recipe.task_name, judge_prompt=recipe.judge.prompt,
                        judge_model=recipe.judge.model)


def write_views(recipe: ProtocolRecipe, db: Engine) -> dict[str, Any]:
    from eval_studio.analysis.paper_views import paper_tables
    from eval_studio.analysis.report import json_safe

    tables = paper_tables(judged_battles(recipe, db))
    out = {name: json.loads(t.to_json(orient="records")) for name, t in tables.items()}
    (recipe.out / "views.json").write_text(json.dumps(json_safe(out), ensure_ascii=False, indent=1), "utf-8")
    return {name: len(t) for name, t in tables.items()}


def run_protocol(recipe: ProtocolRecipe, db: Engine, *, until: str = "views",
                 engine_service: GenerationService | None = None,
                 log_step: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every step up to ``until`` (see the module docstring); each is resumable. Returns each step's counts."""
    if until not in STEPS:
        raise ValueError(f"until must be one of {', '.join(STEPS)}, not {until!r}")
    steps = STEPS[: STEPS.index(until) + 1]
    results: dict[str, Any] = {}
    report = log_step or (lambda step, r: None)
    questions = load_questions(recipe)
    started = time.monotonic()

    def done(step: str, result: dict[str, Any]) -> None:
        results[step] = {**result, "seconds": round(time.monotonic() - started, 1)}
        report(step, results[step])

    r = import_question_set(db, recipe.set_label, questions, source=recipe.questions)
    done("questions", {"questions": len(questions), "added": r.added, "unchanged": r.unchanged})
    lineage: dict[str, str | None] = {}
    if "answers" in steps:
        services = open_services(recipe, engine_service)
        lineage = digests(services)
        started = time.monotonic()
        done("answers", generate_answers(recipe, questions, services))
    if "pairs" in steps:
        started = time.monotonic()
        done("pairs", build_pairs(recipe, questions, db, lineage))
    if "judge" in steps:
        started = time.monotonic()
        done("judge", run_judge(recipe, db))
    if "views" in steps:
        started = time.monotonic()
        done("views", write_views(recipe, db))
    return results
