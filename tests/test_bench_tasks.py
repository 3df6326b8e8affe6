"""The shipped lm-eval task files: languages, indexing, and prompts identical to lm-eval's own tasks."""

from __future__ import annotations

import importlib.util
from contextlib import ExitStack
from pathlib import Path

import pytest

from pipelines.bench.catalog import benchmarks, tasks_dir
from pipelines.bench.loaders import load_xstorycloze, load_xwinograd, read_xwinograd, xwinograd_file

XCOPA = {"et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"}
XSTORY = {"ar", "en", "es", "eu", "hi", "id", "my", "ru", "sw", "te", "zh"}
XWINO = {"en", "fr", "jp", "pt", "ru", "zh"}


def _lm_eval_task_utils(name: str):
    """lm-eval's own prompt functions for a task (a plain module file inside the installed package)."""
    import lm_eval

    path = Path(lm_eval.__file__).parent / "tasks" / name / "utils.py"
    spec = importlib.util.spec_from_file_location(f"_ref_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _manager(metadata: dict | None = None):
    from lm_eval.tasks import TaskManager

    stack = ExitStack()
    return stack, TaskManager(include_path=str(tasks_dir(stack)), include_defaults=False, metadata=metadata or {})


def test_languages_are_the_papers():
    cat = benchmarks()
    assert set(cat["xcopa"].languages) == XCOPA
    assert set(cat["xstorycloze"].languages) == XSTORY
    assert set(cat["xwinograd"].languages) == XWINO
    assert cat["sentimentx"].metric == "f1" and cat["xcopa"].metric == "acc"


def test_every_language_file_is_indexed_with_groups():
    stack, tm = _manager()
    with stack:
        names = set(tm.all_tasks)
    for bench, langs in (("xcopa", XCOPA), ("xstorycloze", XSTORY), ("xwinograd", XWINO)):
        for lang in langs:
            assert f"bactrian_{bench}_{lang}" in names
            assert f"bactrian_{bench}_hub_{lang}" in names
        assert {f"bactrian_{bench}", f"bactrian_{bench}_hub"} <= set(tm.all_groups)
    assert "bactrian_sentimentx" in names


@pytest.mark.shared
def test_xcopa_prompts_equal_lm_evals(shared_data):
    ref = _lm_eval_task_utils("xcopa")
    stack, tm = _manager({"data_root": str(shared_data / "benchmarks")})
    with stack:
        tasks = tm.load([f"bactrian_xcopa_{lang}" for lang in sorted(XCOPA)])["tasks"]
        for lang in sorted(XCOPA):
            task = tasks[f"bactrian_xcopa_{lang}"]
            docs = list(task.test_docs())
            assert len(docs) == 500
            for doc in docs[:5]:
                assert task.doc_to_text(doc) == getattr(ref, f"doc_to_text_{lang}")(doc)
                assert task.doc_to_choice(doc) == ref.doc_to_choice(doc)
                assert task.doc_to_target(doc) == doc["label"]


@pytest.mark.shared
def test_xwinograd_local_rows_match_the_hub_schema(shared_data):
    ref = _lm_eval_task_utils("xwinograd")
    path = xwinograd_file(shared_data / "benchmarks")
    counts = {lang: len(read_xwinograd(path, lang)) for lang in sorted(XWINO)}
    assert counts == {"en": 2325, "fr": 83, "jp": 959, "pt": 263, "ru": 315, "zh": 16}  # SOURCES.md
    first = load_xwinograd("en", data_root=str(shared_data / "benchmarks"))["test"][0]
    assert first["sentence"] == "The city councilmen refused the demonstrators a permit because _ feared violence."
    assert (first["option1"], first["option2"], first["answer"]) == ("The city councilmen", "the demonstrators", "1")
    # PTB quote tokens are aligned with the sentence's plain quotes
    dibs = [r for r in read_xwinograd(path, "en") if "Dibs" in r["sentence"]]
    assert dibs and all(r["sentence"].count("_") == 1 for r in dibs)
    stack, tm = _manager({"data_root": str(shared_data / "benchmarks")})
    with stack:
        task = tm.load(["bactrian_xwinograd_jp"])["tasks"]["bactrian_xwinograd_jp"]
        for doc in list(task.test_docs())[:5]:
            assert task.doc_to_text(doc) == ref.doc_to_text(doc)
            assert task.doc_to_target(doc) == ref.doc_to_target(doc)
            assert task.doc_to_choice(doc) == ref.doc_to_choice(doc)


@pytest.mark.shared
def test_xstorycloze_local_files_load_in_the_hub_schema(shared_data):
    ds = load_xstorycloze("zh", data_root=str(shared_data / "benchmarks"))
    assert len(ds["eval"]) == 1511 and len(ds["train"]) == 360
    assert {r["answer_right_ending"] for r in ds["eval"]} == {1, 2}
    assert set(ds["eval"].column_names) >= {"input_sentence_1", "sentence_quiz1", "sentence_quiz2", "answer_right_ending"}
