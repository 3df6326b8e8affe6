"""Bad input to `bactrian bench` is refused with a clear message before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bactrian.cli import main
from pipelines.bench.catalog import BenchError, select
from pipelines.bench.runner import BenchRequest, plan


def _bench(capsys, *argv: str) -> tuple[int, str]:
    code = main(["bench", *argv])
    return code, capsys.readouterr().err


def _one_language_root(tmp_path: Path) -> Path:
    """A data root holding XCOPA Estonian only (two rows in the real schema)."""
    d = tmp_path / "data" / "xcopa" / "data" / "et"
    d.mkdir(parents=True)
    row = {"premise": "Ese oli mullikilesse mässitud.", "choice1": "See oli õrn.", "choice2": "See oli väike.",
           "question": "cause", "label": 0, "idx": 0}
    (d / "test.et.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "idx": 1}) + "\n", "utf-8")
    return tmp_path / "data"


def test_unknown_task_is_refused_and_nothing_is_written(tmp_path, capsys, tiny_base):
    out = tmp_path / "r.json"
    code, err = _bench(capsys, "--model", str(tiny_base), "--tasks", "xcopa,xnli", "--data-root", str(tmp_path), "--out", str(out))
    assert code == 2 and "unknown task 'xnli'" in err and "xstorycloze" in err
    assert not out.exists()


def test_unknown_language_names_what_exists(tmp_path, capsys, tiny_base):
    code, err = _bench(capsys, "--model", str(tiny_base), "--tasks", "xwinograd", "--languages", "en,xx", "--data-root", str(tmp_path))
    assert code == 2 and "unknown language 'xx'" in err and "en fr jp pt ru zh" in err


def test_missing_data_file_is_named(tmp_path, tiny_base):
    root = _one_language_root(tmp_path)
    assert [s.task for s in select("xcopa", "et", data_root=root)] == ["bactrian_xcopa_et"]
    with pytest.raises(BenchError, match=r"missing data file.*test\.zh\.jsonl"):
        select("xcopa", "et,zh", data_root=root)
    with pytest.raises(BenchError, match="--data-root"):
        select("xcopa", "et")
    with pytest.raises(BenchError, match="missing data file.*dataset.tsv"):
        select("xwinograd", "en", data_root=root)


def test_english_xstorycloze_is_optional_unless_asked_for(tmp_path):
    root = tmp_path / "data"
    (root / "xstorycloze").mkdir(parents=True)
    for lang in ("ar", "es", "eu", "hi", "id", "my", "ru", "sw", "te", "zh"):
        (root / "xstorycloze" / f"spring2016.val.{lang}.tsv.split_20_80_eval.tsv").write_text("x\n", "utf-8")
    assert "en" not in {s.language for s in select("xstorycloze", None, data_root=root)}
    with pytest.raises(BenchError, match=r"spring2016\.val\.en\.tsv"):
        select("xstorycloze", "en", data_root=root)


def test_adapter_for_another_base_is_refused_before_loading(tmp_path, capsys, tiny_adapters):
    from bactrian.testing import make_tiny_base

    other = make_tiny_base(tmp_path / "tiny-gemma", arch="gemma3_text")
    root = _one_language_root(tmp_path)
    with pytest.raises(BenchError, match="was trained for base .*tiny-llama.*not for"):
        plan(BenchRequest(model=str(other), adapter=str(tiny_adapters["alpha"]), tasks="xcopa", languages="et", data_root=str(root)))
    code, err = _bench(capsys, "--model", str(other), "--adapter", str(tiny_adapters["alpha"]), "--tasks", "xcopa",
                       "--languages", "et", "--data-root", str(root))
    assert code == 2 and "trained for base" in err
    code, err = _bench(capsys, "--model", str(other), "--adapter", "no-such-adapter", "--tasks", "xcopa",
                       "--languages", "et", "--data-root", str(root))
    assert code == 2 and "not a folder and not a known adapter name" in err
    # a shipped adapter named for the wrong registry base: the message names the base it was made for
    code, err = _bench(capsys, "--model", "smollm2-135m-instruct", "--adapter", "demo-multi", "--tasks", "xcopa",
                       "--languages", "et", "--data-root", str(root))
    assert code == 2 and "'demo-multi' was trained for base 'gemma-3-270m'" in err


def test_sentimentx_file_is_checked(tmp_path, tiny_base):
    bad = tmp_path / "s.jsonl"
    bad.write_text(json.dumps({"text": "great", "label": "happy", "language": "en"}) + "\n", "utf-8")
    with pytest.raises(BenchError, match="label 'happy'"):
        select("sentimentx", None, sentimentx_file=bad)
    with pytest.raises(BenchError, match="--sentimentx-file"):
        select("sentimentx", None)


def test_existing_out_file_is_kept(tmp_path, capsys, tiny_base):
    out = tmp_path / "r.json"
    out.write_text("precious", "utf-8")
    code, err = _bench(capsys, "--model", str(tiny_base), "--tasks", "xcopa", "--data-root", str(tmp_path), "--out", str(out))
    assert code == 2 and "--force" in err and out.read_text("utf-8") == "precious"


def test_bad_model_and_numbers(tmp_path, capsys):
    code, err = _bench(capsys, "--model", "not-a-model", "--tasks", "xcopa", "--data-root", str(tmp_path))
    assert code == 2 and "unknown base model" in err
    code, err = _bench(capsys, "--model", "gemma-3-270m", "--tasks", "xcopa", "--limit", "0", "--data-root", str(tmp_path))
    assert code == 2 and "--limit" in err
