"""Training data: sources, the response-only loss mask, EOS, and length-grouped batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.train.data import (
    IGNORE, DataError, collate, load_records, plan_batches, split_eval, tokenize,
)
from pipelines.train.recipe import DataSettings
from tests.train_support import write_instructions


def test_loss_only_on_response_and_eos_appended(tiny_base: Path) -> None:
    from transformers import AutoTokenizer

    from bactrian.prompter import Prompter

    tok = AutoTokenizer.from_pretrained(tiny_base)
    recs = load_records(DataSettings(path=str(write_instructions(Path(tiny_base).parent / "d.jsonl", 6))))
    examples, dropped = tokenize(recs, tok, Prompter.load("bactrian-x"), max_length=512)
    assert dropped == 0
    batch = collate(examples, tok.pad_token_id)
    for row, (rec, ex) in enumerate(zip(recs, examples)):
        labels = batch["labels"][row]
        target = labels[labels != IGNORE].tolist()
        assert target[-1] == tok.eos_token_id
        assert tok.decode(target[:-1]) == rec.output
        prompt_ids = batch["input_ids"][row][: ex.prompt_len].tolist()
        assert tok.decode(prompt_ids, skip_special_tokens=True) == Prompter.load("bactrian-x").build(rec.instruction, rec.input or None)
        assert batch["attention_mask"][row].sum() == len(ex.input_ids)


def test_languages_filter_cap_and_split(tmp_path: Path) -> None:
    path = str(write_instructions(tmp_path / "d.jsonl", 30))
    zh = load_records(DataSettings(path=path, languages=["zh"]))
    assert len(zh) == 10 and {r.language for r in zh} == {"zh"}
    two = load_records(DataSettings(path=path, languages="zh,es", max_examples=3))
    assert sorted(r.language for r in two) == ["es"] * 3 + ["zh"] * 3
    train, held = split_eval(zh, 0.2, 100, seed=1)
    assert len(held) == 2 and len(train) == 8 and not set(held) & set(train)
    assert split_eval(zh, 0.2, 100, seed=1) == (train, held)  # seeded


def test_bad_records_name_the_line(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"instruction": "hi", "output": "yo"}\n{"instruction": "hi", "answer": "yo"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: missing or empty field\(s\) output \(it has: answer, instruction\)"):
        load_records(DataSettings(path=str(f)))
    f.write_text('{"instruction": "hi", "output": "yo"}\nnot json\n')
    with pytest.raises(DataError, match="d.jsonl:2: not valid JSON"):
        load_records(DataSettings(path=str(f)))
    f.write_text('{"instruction": "hi", "output": "yo"}\n{"instruction": "hi", "input": "", "output": " "}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: missing or empty field\(s\) output .*data.skip_empty"):
        load_records(DataSettings(path=str(f)))
    stats: dict = {}
    assert [r.output for r in load_records(DataSettings(path=str(f), skip_empty=True), stats)] == ["yo"]
    assert stats == {"skipped_empty": 1}
    f.write_text('{"instruction": "hi", "output": "yo"}\n{"instruction": "hi", "answer": "yo"}\n')
    with pytest.raises(DataError, match="missing or empty field"):  # an absent field is never skipped
        load_records(DataSettings(path=str(f), skip_empty=True))
    no_lang = tmp_path / "e.jsonl"
    no_lang.write_text('{"instruction": "hi", "output": "yo"}\n')
    with pytest.raises(DataError, match="has no language field"):
        load_records(DataSettings(path=str(no_lang), languages=["zh"]))
    with pytest.raises(DataError, match="does not exist"):
        load_records(DataSettings(path=str(tmp_path / "nope.jsonl")))


def test_pipeline_datasetdict_by_language_split_and_column(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    def rows(lang, n):
        return [{"id": f"{lang}{i}", "instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(n)]

    DatasetDict({"zh": Dataset.from_list(rows("zh", 3)), "es": Dataset.from_list(rows("es", 2))}).save_to_disk(tmp_path / "by_split")
    got = load_records(DataSettings(source="pipeline", path=str(tmp_path / "by_split"), languages=["es"]))
    assert [(r.language, r.output) for r in got] == [("es", "a0"), ("es", "a1")]
    assert len(load_records(DataSettings(source="pipeline", path=str(tmp_path / "by_split")))) == 5
    col = [dict(r, language="ja") for r in rows("ja", 2)] + [dict(r, language="id") for r in rows("id", 4)]
    DatasetDict({"train": Dataset.from_list(col)}).save_to_disk(tmp_path / "by_column")
    got = load_records(DataSettings(source="pipeline", path=str(tmp_path / "by_column"), languages="ja"))
    assert len(got) == 2 and {r.language for r in got} == {"ja"}
    bad = [{"instruction": "q", "input": "", "response": "a"}]
    DatasetDict({"zh": Dataset.from_list(bad)}).save_to_disk(tmp_path / "bad")
    with pytest.raises(DataError, match="split 'zh' row 0: missing or empty field"):
        load_records(DataSettings(source="pipeline", path=str(tmp_path / "bad")))


def test_grouped_batches_cover_everything_with_less_padding() -> None:
    import random

    rng = random.Random(0)
    lengths = [rng.randint(10, 500) for _ in range(1000)]
    for mode in ("grouped", "padded"):
        batches = plan_batches(lengths, 8, seed=3, epoch=0, mode=mode)
        assert sorted(i for b in batches for i in b) == list(range(1000))
        assert plan_batches(lengths, 8, seed=3, epoch=0, mode=mode) == batches  # same on every process
        assert plan_batches(lengths, 8, seed=3, epoch=1, mode=mode) != batches  # reshuffled per epoch

    def padded_positions(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    grouped = padded_positions(plan_batches(lengths, 8, 3, 0, "grouped"))
    plain = padded_positions(plan_batches(lengths, 8, 3, 0, "padded"))
    assert grouped < 0.75 * plain, (grouped, plain)
