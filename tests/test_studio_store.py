"""The studio store on real SQLite files: migrations, battles and votes, the battle table, concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from eval_studio.store import (
    make_engine,
    open_store,
    read_session,
    transaction,
    upgrade_to_head,
)
from eval_studio.store.battles import COLUMNS, load_battles
from eval_studio.store.migrate import current_revision, head_revision
from eval_studio.store.models import Base, Battle, Vote
from eval_studio.store.repo import (
    DuplicateVote,
    StoreError,
    add_turn,
    record_battle,
    record_vote,
    start_conversation,
)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'studio.db'}"


@pytest.fixture
def engine(url):
    e = open_store(url)
    yield e
    e.dispose()


def battle(engine, **kw):
    fields = dict(question="Capital of France?", answer_a="Paris.", answer_b="Lyon, I think.", model_a="demo-fr",
                  model_b="gemma-3-270m", mode="named", language="fr", params={"temperature": 0.7, "max_new_tokens": 64})
    return record_battle(engine, **{**fields, **kw})


def test_migrations_upgrade_an_empty_db_to_the_models_schema(url, tmp_path):
    assert not (tmp_path / "studio.db").exists()
    assert upgrade_to_head(url) == head_revision()
    e = make_engine(url)
    with e.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == [], diff  # the shipped migrations create exactly what the models declare
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert {"battles", "votes", "judgments", "assignments", "benchmark_runs", "judge_cache", "usage_ledger"} <= set(inspect(e).get_table_names())
    assert upgrade_to_head(url) == current_revision(e)  # idempotent
    e.dispose()


def test_default_url_lives_in_bactrian_home(monkeypatch, tmp_path):
    from eval_studio.store.db import default_url

    monkeypatch.delenv("BACTRIAN_STUDIO_DB", raising=False)
    monkeypatch.setenv("BACTRIAN_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'studio.db'}"
    e = open_store()
    assert (tmp_path / "home" / "studio.db").is_file()
    e.dispose()


def test_vote_references_the_exact_outputs_and_params(engine):
    bid = battle(engine)
    vid = record_vote(engine, bid, "a", annotator="ana")
    with read_session(engine) as s:
        v = s.get(Vote, vid)
        b = s.get(Battle, v.battle_id)
        assert (b.answer_a, b.answer_b, b.params["temperature"], v.winner, v.annotator_id is not None) == ("Paris.", "Lyon, I think.", 0.7, "a", True)


def test_bad_votes_are_refused_and_nothing_is_written(engine):
    bid = battle(engine)
    with pytest.raises(StoreError, match="winner"):
        record_vote(engine, bid, "A")
    with pytest.raises(StoreError, match="no battle"):
        record_vote(engine, 999, "a")
    with pytest.raises(StoreError, match="mode"):
        battle(engine, mode="chat")
    with pytest.raises(StoreError, match="question"):
        battle(engine, question="  ")
    record_vote(engine, bid, "tie")  # anonymous
    with pytest.raises(DuplicateVote):
        record_vote(engine, bid, "a")  # a second anonymous vote on the same battle
    record_vote(engine, bid, "b", annotator="ana")
    with pytest.raises(DuplicateVote):
        record_vote(engine, bid, "a", annotator="ana")
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Vote)) == 2
    with pytest.raises(IntegrityError):  # the database itself refuses an invalid winner
        with transaction(engine) as s:
            s.execute(text("INSERT INTO votes (battle_id, winner, created) VALUES (:b, 'maybe', '2024-01-01')"), {"b": bid})


def test_battle_table_contract(engine):
    b1 = battle(engine, category="knowledge", question_id="q1")
    b2 = battle(engine, answer_a="Paris est la capitale.", model_a="demo-zh", mode="battle", language="zh")
    record_vote(engine, b1, "a", annotator="ana")
    record_vote(engine, b2, "both_bad")
    df = load_battles(engine)
    assert list(df.columns) == COLUMNS
    assert len(df) == 2 and set(df["source"]) == {"human"}
    assert str(df["tstamp"].dtype) == "datetime64[us, UTC]" or str(df["tstamp"].dtype).endswith("UTC]")
    row = df.iloc[0]
    assert (row["battle_id"], row["question_id"], row["winner"], row["annotator"], row["category"]) == ("vote-1", "q1", "a", "ana", "knowledge")
    assert (row["len_a"], row["len_b"]) == (len("Paris."), len("Lyon, I think.")) and pd.isna(row["score_a"])
    assert pd.isna(df.iloc[1]["annotator"]) and df.iloc[1]["winner"] == "both_bad"
    assert list(load_battles(engine, language="zh")["winner"]) == ["both_bad"]
    assert list(load_battles(engine, model="demo-zh")["language"]) == ["zh"]
    assert load_battles(engine, source="judge").empty
    assert len(load_battles(engine, since=datetime.now(timezone.utc) - timedelta(minutes=5))) == 2
    assert load_battles(engine, until=datetime(2000, 1, 1)).empty
    with pytest.raises(TypeError, match="unknown battle filter"):
        load_battles(engine, lang="zh")
    assert len(load_battles(str(engine.url))) == 2  # a URL works as well as an engine


def test_conversations_and_turns(engine):
    cid = start_conversation(engine, "demo-zh", annotator="ana", language="zh", params={"temperature": 0.2})
    add_turn(engine, cid, "user", "你好")
    add_turn(engine, cid, "assistant", "你好！")
    with pytest.raises(StoreError):
        add_turn(engine, cid, "robot", "x")


def test_load_test_20_threads_x_10_votes(engine):
    """20 concurrent sessions x 10 votes each: 200 vote rows, 0 errors, 0 lost."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def session(i: int) -> None:
        try:
            barrier.wait()
            for j in range(10):
                bid = battle(engine, question=f"q{i}-{j}", answer_a=f"answer {i}-{j}")
                record_vote(engine, bid, ("a", "b", "tie", "both_bad")[j % 4], annotator=None if i % 2 else f"user{i}")
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with read_session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Vote)) == 200
        assert s.scalar(select(func.count(func.distinct(Battle.question))).join(Vote)) == 200
    assert len(load_battles(engine)) == 200


def test_migration_0004_drops_the_write_only_variants_table_and_keeps_the_rest(tmp_path):
    """model_variants was written at every start and read by nothing (it held local adapter paths, which a
    database backed up to the Hub should not carry): 0004 drops it; downgrading brings the empty table back."""
    from alembic import command

    from eval_studio.store.db import make_engine
    from eval_studio.store.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    e = make_engine(url)
    cfg = alembic_config()
    with e.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.execute(text("INSERT INTO model_variants (name, kind, adapter_path, languages, created) "
                          "VALUES ('demo-zh', 'adapter', '/home/someone/adapters/demo-zh', '[]', '2025-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO annotation_tasks (id, name, overlap, created) VALUES (1, 't', 1, '2025-01-01 00:00:00')"))
    assert upgrade_to_head(url) == "0004"
    assert "model_variants" not in inspect(e).get_table_names()
    with e.connect() as conn:
        assert conn.execute(text("SELECT name FROM annotation_tasks")).scalars().all() == ["t"]
    with e.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0003")
    assert current_revision(e) == "0003"
    assert "model_variants" in inspect(e).get_table_names()
    e.dispose()
