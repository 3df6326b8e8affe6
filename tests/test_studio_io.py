"""Imports and exports (files, the `bactrian studio` command), bench ingestion, auth."""

from __future__ import annotations

import csv
import json

import pytest

from bactrian.cli import main as bactrian
from eval_studio.auth import (
    AuthError,
    add_user,
    gradio_auth,
    load_users,
    require_admin,
    user_from_request,
)
from eval_studio.io import import_question_file, read_pairs
from eval_studio.store import open_store
from eval_studio.store.battles import load_battles
from eval_studio.store.bench import ingest_bench_file, list_bench
from eval_studio.store.repo import StoreError
from eval_studio.store.tasks import (
    list_question_sets,
    list_questions,
    next_pair_for,
    vote_on_assignment,
)

PAIR_ROWS = [
    {"id": "zh-1", "question": "如何提高时间管理？", "answer_a": "制定计划。", "answer_b": "不知道。", "model_a": "demo-zh",
     "model_b": "gemma-3-270m", "language": "zh", "category": "generic",
     "labels": [{"annotator": "ana", "winner": "a"}, {"annotator": "ben", "winner": "tie"}]},
    {"id": "es-1", "question": "¿Qué es la fotosíntesis?", "answer_a": "<script>alert(1)</script>", "answer_b": "Un proceso.",
     "model_a": "demo-es", "model_b": "gemma-3-270m", "language": "es", "category": "knowledge", "params": {"temperature": 0.7}},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'studio.db'}"


def test_import_export_round_trip_through_the_command_line(tmp_path, db, capsys):
    src = write_jsonl(tmp_path / "pairs.jsonl", PAIR_ROWS)
    assert bactrian(["studio", "import-pairs", str(src), "--db", db, "--overlap", "3"]) == 0
    assert "2 added" in capsys.readouterr().out
    engine = open_store(db)
    shown = next_pair_for(engine, "cai", "default")
    vote_on_assignment(engine, shown.assignment_id, "cai", "b")
    for fmt in ("jsonl", "csv", "hf"):
        assert bactrian(["studio", "export", "--format", fmt, "--out", str(tmp_path / fmt), "--db", db]) == 0
    exported = [json.loads(line) for line in (tmp_path / "jsonl" / "pairs.jsonl").read_text("utf-8").splitlines()]
    assert [p["id"] for p in exported] == ["zh-1", "es-1"]
    assert exported[1]["answer_a"] == "<script>alert(1)</script>"  # stored and exported verbatim, never executed
    votes = [json.loads(line) for line in (tmp_path / "jsonl" / "votes.jsonl").read_text("utf-8").splitlines()]
    assert len(votes) == 3 and {v["annotator"] for v in votes} == {"ana", "ben", "cai"}
    assert all(v["answer_a"] and v["model_a"] and v["pair_id"] for v in votes)

    # Re-import the export into a fresh database: same pairs, same labels, same battle table.
    db2 = f"sqlite:///{tmp_path / 'copy.db'}"
    assert bactrian(["studio", "import-pairs", str(tmp_path / "jsonl" / "pairs.jsonl"), "--db", db2]) == 0
    assert bactrian(["studio", "export", "--format", "jsonl", "--out", str(tmp_path / "again"), "--db", db2]) == 0
    again = [json.loads(line) for line in (tmp_path / "again" / "pairs.jsonl").read_text("utf-8").splitlines()]
    key = lambda p: (p["id"], sorted((lab["annotator"], lab["winner"]) for lab in p["labels"]))  # noqa: E731
    assert [key(p) for p in again] == [key(p) for p in exported]
    assert [{k: v for k, v in p.items() if k != "labels"} for p in again] == [{k: v for k, v in p.items() if k != "labels"} for p in exported]
    def canonical(df):  # the same vote seen in either display order
        flip = {"a": "b", "b": "a"}
        return sorted((a, b, w, who) if a < b else (b, a, flip.get(w, w), who)
                      for a, b, w, who in df[["model_a", "model_b", "winner", "annotator"]].values.tolist())

    assert canonical(load_battles(db)) == canonical(load_battles(db2))

    with (tmp_path / "csv" / "votes.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and json.loads(rows[0]["params"]) == {}
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "hf"))
    assert set(ds) == {"votes", "judgments", "conversations", "pairs"} and ds["votes"].num_rows == 3
    engine.dispose()


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("not json", "not valid JSON"),
        ('{"id": "x"}', "missing field"),
        ('{"id": "x", "question": "q", "answer_a": "a", "answer_b": "b", "model_a": "m", "model_b": "n", "language": "klingon"}', "unknown language"),
        ('{"id": "x", "question": "q", "answer_a": "a", "answer_b": "b", "model_a": "m", "model_b": "n", "language": "en", "labels": [{"annotator": "a", "winner": "A"}]}', "labels[0]"),
        ('{"id": "x", "question": "", "answer_a": "a", "answer_b": "b", "model_a": "m", "model_b": "n", "language": "en"}', "question"),
    ],
)
def test_bad_pair_files_are_refused_with_the_line_and_nothing_is_imported(tmp_path, db, capsys, line, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PAIR_ROWS[0], ensure_ascii=False) + "\n" + line + "\n", encoding="utf-8")
    assert bactrian(["studio", "import-pairs", str(path), "--db", db]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "bad.jsonl:2" in err
    with pytest.raises(StoreError):
        read_pairs(path)
    engine = open_store(db)
    assert load_battles(engine).empty  # the good first line was not imported either
    engine.dispose()


def test_question_set_formats(tmp_path, db):
    engine = open_store(db)
    vicuna = write_jsonl(tmp_path / "question.jsonl", [{"question_id": 1, "text": "How?", "category": "generic"}])
    llmzoo = write_jsonl(tmp_path / "ja100.jsonl", [{"id": 1, "label": "generic", "query": "どうやって？"}])
    mtbench = write_jsonl(tmp_path / "mt.jsonl", [{"question_id": 81, "category": "writing", "turns": ["Write.", "Rewrite."]}])
    own = write_jsonl(tmp_path / "own.jsonl", [{"id": "q1", "language": "sw", "category": "math", "question": "2+2?"}])
    paper = write_jsonl(tmp_path / "bx.jsonl", [{"language": "Spanish", "lang": "es", "Question": "¿Por qué?", "Alpaca": "..."}])
    for path in (vicuna, llmzoo, mtbench, own, paper):
        assert import_question_file(engine, path).added == 1
    assert import_question_file(engine, own).unchanged == 1
    got = {s: list_questions(engine, s)[0] for s in ("question", "ja100", "mt", "own", "bx")}
    assert (got["question"].language, got["ja100"].language, got["own"].language, got["bx"].language) == ("en", "ja", "sw", "es")
    assert got["mt"].turns == ("Write.", "Rewrite.") and got["ja100"].category == "generic"
    with pytest.raises(StoreError, match="pass --language"):
        import_question_file(engine, write_jsonl(tmp_path / "nolang.jsonl", [{"id": 1, "label": "x", "query": "?"}]))
    engine.dispose()


@pytest.mark.shared
def test_shared_question_sets_import(shared_data, db):
    engine = open_store(db)
    q = shared_data / "questions"
    assert import_question_file(engine, q / "vicuna80" / "question.jsonl", name="vicuna80").added == 80
    assert import_question_file(engine, q / "multilingual" / "multilingual" / "zh100.jsonl").added == 100
    assert import_question_file(engine, q / "mt_bench" / "question.jsonl", name="mt-bench").added == 80
    assert import_question_file(engine, q / "bactrian_x_examples" / "translated_vicuna_questions_with_outputs.jsonl", name="bx").added == 24
    sets = {s["name"]: s["questions"] for s in list_question_sets(engine)}
    assert sets == {"vicuna80": 80, "zh100": 100, "mt-bench": 80, "bx": 24}
    assert {x.language for x in list_questions(engine, "bx")} == {"es", "fr", "pt", "ar", "id", "zh", "de", "it", "ru", "ja", "ko", "tr"}
    engine.dispose()


def test_bench_results_ingest_both_shapes_idempotently(tmp_path, db, capsys):
    own = tmp_path / "run1.json"
    own.write_text(json.dumps({"run_id": "r1", "model": "gemma-3-270m", "adapter": "demo-zh", "results": [
        {"task": "xcopa", "language": "zh", "metric": "acc", "value": 0.56, "stderr": 0.02}]}))
    lm_eval = tmp_path / "results_2024.json"
    lm_eval.write_text(json.dumps({"results": {"xcopa_zh": {"alias": "xcopa_zh", "acc,none": 0.6, "acc_stderr,none": 0.02}},
                                   "config": {"model_args": "pretrained=gemma-3-270m,peft=demo-zh"}}))
    assert bactrian(["studio", "import-bench", str(own), str(lm_eval), "--db", db]) == 0
    assert bactrian(["studio", "import-bench", str(own), "--db", db]) == 0
    assert "0 metrics added, 1 already present" in capsys.readouterr().out
    engine = open_store(db)
    rows = list_bench(engine)
    assert [(r["task"], r["language"], r["metric"], r["value"], r["adapter"]) for r in rows] == [
        ("xcopa", "zh", "acc", 0.56, "demo-zh"), ("xcopa_zh", "zh", "acc", 0.6, "demo-zh")]
    own.write_text(json.dumps({"run_id": "r1", "model": "gemma-3-270m", "adapter": "demo-zh", "results": [
        {"task": "xcopa", "language": "zh", "metric": "acc", "value": 0.9}]}))
    with pytest.raises(StoreError, match="already stored"):
        ingest_bench_file(engine, own)
    engine.dispose()


def test_migrate_command_and_unknown_judge_prompt(db, capsys):
    from eval_studio.store.migrate import head_revision

    assert bactrian(["studio", "migrate", "--db", db]) == 0
    assert f"revision {head_revision()}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bactrian(["studio", "judge", "--prompt", "nope", "--base-url", "http://x", "--model", "m", "--db", db])


def test_users_file_env_var_hashes_and_roles(tmp_path, monkeypatch):
    users_file = tmp_path / "users.json"
    monkeypatch.setenv("PW", "correct horse")
    assert bactrian(["studio", "add-user", "ana", "--users-file", str(users_file), "--role", "admin", "--password-env", "PW"]) == 0
    add_user(users_file, "ben", "battery staple")
    assert "correct horse" not in users_file.read_text() and "scrypt$" in users_file.read_text()
    ben_hash = json.loads(users_file.read_text())["users"][1]["password_hash"]
    users = load_users(users_file, env={"BACTRIAN_STUDIO_USERS": f"cai:{ben_hash}"})
    assert {u: users[u].role for u in users} == {"ana": "admin", "ben": "annotator", "cai": "annotator"}
    check = gradio_auth(users)
    assert check("ana", "correct horse") and check("cai", "battery staple")
    assert not check("ana", "wrong") and not check("nobody", "correct horse")

    class Req:  # what Gradio puts on gr.Request after its own login
        username = "ana"

    assert require_admin(Req(), users).name == "ana"
    Req.username = "ben"
    with pytest.raises(PermissionError):
        require_admin(Req(), users)
    Req.username = None
    assert user_from_request(Req(), users) is None  # anonymous

    class Profile:
        username = "hf-user"

    assert user_from_request(Req(), users, Profile(), env={"BACTRIAN_STUDIO_ADMINS": "hf-user"}).role == "admin"
    with pytest.raises(AuthError, match="plain-text"):
        load_users(env={"BACTRIAN_STUDIO_USERS": "eve:hunter2"})


@pytest.mark.shared
def test_pairs_from_published_answers(shared_data, db, capsys):
    q = shared_data / "questions"
    answers = [q / "vicuna80" / "answers" / f"answer_{m}.jsonl" for m in ("alpaca-13b", "bard", "gpt35")]
    assert bactrian(["studio", "import-answers", "--questions", str(q / "vicuna80" / "question.jsonl"), "--answers",
                     *map(str, answers), "--task", "vicuna80", "--db", db]) == 0
    assert "240 added" in capsys.readouterr().out  # 80 questions x 3 model pairs
    examples = q / "bactrian_x_examples" / "translated_vicuna_questions_with_outputs.jsonl"
    assert bactrian(["studio", "import-answers", "--examples", str(examples), "--task", "bx", "--db", db]) == 0
    assert "360 added" in capsys.readouterr().out  # 24 questions x C(6, 2) model pairs
    engine = open_store(db)
    from eval_studio.store.tasks import list_pairs, list_tasks

    assert {t["name"]: t["pairs"] for t in list_tasks(engine)} == {"vicuna80": 240, "bx": 360}
    zh = [p for p in list_pairs(engine, task="bx", language="zh")]
    assert len(zh) == 30 and {p.model_a for p in zh} | {p.model_b for p in zh} >= {"Bactrian-LLaMA", "Alpaca"}
    engine.dispose()


def test_import_answers_needs_a_source(db, capsys):
    assert bactrian(["studio", "import-answers", "--db", db]) == 1
    assert "either --questions" in capsys.readouterr().err
