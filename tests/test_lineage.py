"""Lineage: which weights produced each answer. Adapter digests, the store's digest columns, the migration from
0002, and the battle table that names a retrained adapter ``name@digest6`` (real adapter folders, SQLite files)."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from bactrian.adapters import adapter_sha256, read_adapter, shipped_adapters_dir
from eval_studio.battle_table import lineage_label, names_with_many_digests
from eval_studio.store import make_engine, open_store, read_session, upgrade_to_head
from eval_studio.store.battles import load_battles
from eval_studio.store.models import AnnotationPair, Battle
from eval_studio.store.repo import StoreError, record_battle, record_vote
from eval_studio.store.tasks import Label, PairRecord, import_pairs, list_pairs

DEMO_ZH = shipped_adapters_dir() / "gemma-3-270m" / "demo-zh"
D1 = "1a2b3c" + "0" * 58  # two lineages of demo-zh (full sha256 hex; the store keeps what it is given)
D2 = "9f8e7d" + "1" * 58
DEN = "abcdef" + "2" * 58


@pytest.fixture
def engine(tmp_path):
    e = open_store(f"sqlite:///{tmp_path / 'studio.db'}")
    yield e
    e.dispose()


def battle(engine, model_a, digest_a, model_b="demo-en", digest_b=DEN, winner="a", **kw):
    fields = dict(question="用一句话介绍骆驼", answer_a="骆驼是沙漠之舟。", answer_b="Camels are animals.", mode="battle",
                  language="zh", params={"temperature": 0.7})
    bid = record_battle(engine, model_a=model_a, model_b=model_b, digest_a=digest_a, digest_b=digest_b, **{**fields, **kw})
    record_vote(engine, bid, winner)
    return bid


# -- the digest ---------------------------------------------------------------------------------------------------

def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_digest_is_stable_and_changes_with_the_weights_or_the_config(tmp_path):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    info = read_adapter(DEMO_ZH)
    assert re.fullmatch(r"[0-9a-f]{64}", info.sha256) and info.digest == info.sha256[:12]
    assert read_adapter(DEMO_ZH).digest == info.digest  # stable for the same folder
    copy = _copy(DEMO_ZH, tmp_path / "copy")
    assert read_adapter(copy).digest == info.digest  # a byte-identical copy elsewhere: the same weights

    # Retrained weights under the same name: one element of one tensor changes.
    changed = _copy(DEMO_ZH, tmp_path / "retrained")
    weights = changed / "adapter_model.safetensors"
    with safe_open(str(weights), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(weights))
    key = sorted(tensors)[0]
    flat = tensors[key].view(-1)
    flat[0] = flat[0] + torch.tensor(1.0, dtype=flat.dtype)
    save_file(tensors, str(weights), metadata=metadata)
    retrained = read_adapter(changed)
    assert retrained.name == info.name == "demo-zh"
    assert retrained.digest != info.digest and retrained.sha256 != info.sha256

    # A config change counts; re-formatting the same JSON does not.
    cfg_path = copy / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text("utf-8"))
    cfg_path.write_text(json.dumps(cfg, indent=4, sort_keys=False), "utf-8")
    assert read_adapter(copy).digest == info.digest
    cfg["lora_alpha"] = (cfg.get("lora_alpha") or 16) * 2
    cfg_path.write_text(json.dumps(cfg), "utf-8")
    assert read_adapter(copy).digest not in (info.digest, retrained.digest)
    assert adapter_sha256(tmp_path) is None  # not an adapter folder


def test_the_base_has_no_digest_and_the_catalog_carries_adapter_digests(tiny_base, tiny_adapters, tiny_engine, tmp_path):
    from bactrian.service import LocalService
    from eval_studio.ui.catalog import Catalog
    from tests.helpers import train_tiny_adapter

    catalog = Catalog(LocalService(tiny_engine))
    assert catalog.get(tiny_engine.base_name).kind == "base" and catalog.get(tiny_engine.base_name).digest is None
    alpha, beta = catalog.get("alpha").digest, catalog.get("beta").digest
    assert alpha == read_adapter(tiny_adapters["alpha"]).digest == tiny_engine.adapters.info("alpha").digest
    assert beta == read_adapter(tiny_adapters["beta"]).digest and alpha != beta
    # Retraining "alpha" (same name, same data, another seed) gives another lineage.
    again = train_tiny_adapter(tiny_base, tmp_path / "alpha", ["### Input:\nHi\n\n### Output:\nParis is the capital of France."] * 4, steps=5, seed=7)
    info = read_adapter(again)
    assert info.name == "alpha" and info.digest != alpha


def test_the_arena_records_each_sides_digest(tiny_base, tiny_adapters, tiny_engine, tmp_path):
    from eval_studio.ui.arena_tab import ArenaState, arena_turn, pick_models
    from eval_studio.ui.common import make_params
    from eval_studio.ui.context import create_context
    from tests.ui_support import studio_settings

    ctx = create_context(studio_settings(tiny_base, tiny_adapters, tmp_path / "studio.db"), tiny_engine)
    st = pick_models(ctx, ArenaState(), "named", ("alpha", tiny_engine.base_name), "en", random.Random(1))
    *_, (_cols, st) = arena_turn(ctx, st, "Hello?", make_params(ctx.settings.gen_defaults, 4, 0.7, 0.95, 50, 1.0, 3), None)
    with read_session(ctx.db) as s:
        b = s.get(Battle, st.battle_id)
        assert (b.model_a, b.digest_a, b.digest_b) == ("alpha", ctx.catalog.get("alpha").digest, None)
    assert b.digest_a and len(b.digest_a) == 12


# -- the label ----------------------------------------------------------------------------------------------------

def test_lineage_label_only_splits_names_with_many_digests():
    many = names_with_many_digests([("demo-zh", D1), ("demo-zh", D2), ("demo-zh", None), ("demo-en", DEN),
                                    ("demo-en", DEN), ("gemma-3-270m", None)])
    assert many == {"demo-zh"}
    assert lineage_label("demo-zh", D1, many) == "demo-zh@1a2b3c"
    assert lineage_label("demo-zh", D2, many) == "demo-zh@9f8e7d"
    assert lineage_label("demo-zh", None, many) == "demo-zh"  # older rows without a digest keep the plain name
    assert lineage_label("demo-en", DEN, many) == "demo-en"
    assert lineage_label("gemma-3-270m", None, many) == "gemma-3-270m"


# -- the store and the battle table ----------------------------------------------------------------------------

def test_a_retrained_adapter_is_two_players_in_the_battle_table_and_the_ratings(engine):
    from eval_studio.analysis.ratings import compute_ratings

    for _ in range(3):
        battle(engine, "demo-zh", D1, winner="a")  # the first demo-zh beats demo-en
        battle(engine, "demo-zh", D2, winner="b")  # the retrained one loses to it
    battle(engine, "gemma-3-270m", None, winner="tie")  # the bare base: no digest
    # Annotation pairs carry digests too: their battles (votes) and the judges' verdicts use them.
    import_pairs(engine, [
        PairRecord(id="p1", question="你好", answer_a="你好！", answer_b="Hello!", model_a="demo-zh", model_b="demo-en",
                   language="zh", labels=(Label("ana", "a"),), digest_a=D2, digest_b=DEN),
    ], task="t")
    from eval_studio.store.judging import record_judgment

    rec = list_pairs(engine, task="t")[0]
    with read_session(engine) as s:
        pid = s.scalar(select(AnnotationPair.id).where(AnnotationPair.external_id == rec.id))
    for ordering, verdict in (("ab", "a"), ("ba", "a")):
        record_judgment(engine, run_id=None, pair_id=pid, prompt_name="pairwise", prompt_hash="h", judge_model="judge-x",
                        params={}, params_hash="p" * 64, ordering=ordering, raw_output="[[A]]", verdict=verdict,
                        score_a=None, score_b=None, error=None, cached=False, prompt_tokens=1, completion_tokens=1,
                        cost_usd=None)

    df = load_battles(engine)
    players = set(df["model_a"]) | set(df["model_b"])
    assert players == {"demo-zh@1a2b3c", "demo-zh@9f8e7d", "demo-en", "gemma-3-270m"}
    assert "demo-zh" not in players
    judged = df[df["source"] == "judge"].iloc[0]
    assert (judged["model_a"], judged["model_b"], judged["winner"]) == ("demo-zh@9f8e7d", "demo-en", "a")
    annotated = df[df["annotator"] == "ana"].iloc[0]
    assert annotated["model_a"] == "demo-zh@9f8e7d"

    table = compute_ratings(df, rounds=5).set_index("model")
    assert {"demo-zh@1a2b3c", "demo-zh@9f8e7d"} <= set(table.index)
    assert table.loc["demo-zh@1a2b3c", "battles"] == 3 and table.loc["demo-zh@9f8e7d", "battles"] == 5
    assert table.loc["demo-zh@1a2b3c", "rating"] > table.loc["demo-zh@9f8e7d", "rating"]

    # The model filter takes a plain name (every lineage) or one lineage label.
    assert len(load_battles(engine, model="demo-zh")) == 8
    only = load_battles(engine, model="demo-zh@1a2b3c")
    assert len(only) == 3 and set(only["model_a"]) == {"demo-zh@1a2b3c"}
    assert len(load_battles(engine, model="demo-zh@9f8e7d", source="judge")) == 1


def test_one_digest_per_name_keeps_plain_names(engine):
    battle(engine, "demo-zh", D1)
    battle(engine, "demo-zh", D1, winner="b")
    battle(engine, "demo-zh", None, winner="tie")  # an older row without a digest
    battle(engine, "gemma-3-270m", None, model_b="demo-zh", digest_b=D1)
    df = load_battles(engine)
    assert set(df["model_a"]) | set(df["model_b"]) == {"demo-zh", "demo-en", "gemma-3-270m"}


def test_digests_are_validated_and_pairs_keep_them(engine):
    with pytest.raises(StoreError, match="digest"):
        battle(engine, "demo-zh", "not-hex!")
    rec = PairRecord(id="p1", question="q", answer_a="a", answer_b="b", model_a="demo-zh", model_b="demo-en",
                     language="zh", digest_a=D1.upper(), digest_b=None)
    assert import_pairs(engine, [rec]).added == 1
    back = list_pairs(engine)[0]
    assert (back.digest_a, back.digest_b) == (D1, None)
    assert import_pairs(engine, [back]).unchanged == 1  # the export form re-imports as a no-op
    assert import_pairs(engine, [PairRecord(**{**back.__dict__, "digest_a": None})]).unchanged == 1  # an older file
    with pytest.raises(StoreError, match="different content"):  # same id, other weights: never overwritten
        import_pairs(engine, [PairRecord(**{**back.__dict__, "digest_a": D2})])


def test_exports_carry_the_digest_columns(engine, tmp_path):
    from eval_studio.io.exports import COLUMNS, collect, export
    from eval_studio.io.imports import read_pairs

    battle(engine, "demo-zh", D1)
    import_pairs(engine, [PairRecord(id="p1", question="q", answer_a="a", answer_b="b", model_a="demo-zh", model_b="demo-en",
                                     language="zh", labels=(Label("ana", "b"),), digest_a=D2, digest_b=DEN)])
    for table in ("votes", "judgments", "pairs"):
        assert {"digest_a", "digest_b"} <= set(COLUMNS[table])
    data = collect(engine)
    assert [(v["digest_a"], v["digest_b"]) for v in data["votes"]] == [(D1, DEN), (D2, DEN)]
    assert (data["pairs"][0]["digest_a"], data["pairs"][0]["digest_b"]) == (D2, DEN)
    export(engine, "jsonl", tmp_path / "out")
    export(engine, "csv", tmp_path / "csv")
    assert "digest_a" in (tmp_path / "csv" / "votes.csv").read_text("utf-8").splitlines()[0]
    again = read_pairs(tmp_path / "out" / "pairs.jsonl")  # the pairs export is the import format, digests included
    assert (again[0].digest_a, again[0].digest_b) == (D2, DEN)


# -- the migration ------------------------------------------------------------------------------------------------

def test_migration_0003_upgrades_a_0002_database_without_losing_rows(tmp_path):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from eval_studio.store.migrate import alembic_config, current_revision, head_revision
    from eval_studio.store.models import Base

    url = f"sqlite:///{tmp_path / 'old.db'}"
    e = make_engine(url)
    cfg = alembic_config()
    with e.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    assert current_revision(e) == "0002"
    assert "digest_a" not in {c["name"] for c in inspect(e).get_columns("battles")}
    with e.begin() as conn:  # rows written by the 0002 code
        conn.execute(text("INSERT INTO annotation_tasks (id, name, overlap, created) VALUES (1, 't', 1, '2025-01-01 00:00:00.000000')"))
        conn.execute(text(
            "INSERT INTO annotation_pairs (id, task_id, external_id, question, answer_a, answer_b, model_a, model_b, "
            "language, params, created) VALUES (1, 1, 'p1', 'q', 'a', 'b', 'demo-zh', 'demo-en', 'zh', '{}', '2025-01-01 00:00:00.000000')"))
        for i, (mode, pair) in enumerate((("battle", None), ("annotation", 1)), 1):
            conn.execute(text(
                "INSERT INTO battles (id, question, answer_a, answer_b, model_a, model_b, params, mode, language, pair_id, "
                "created) VALUES (:i, 'q', 'a', 'b', 'demo-zh', 'demo-en', '{}', :m, 'zh', :p, '2025-01-01 00:00:00.000000')"),
                {"i": i, "m": mode, "p": pair})
            conn.execute(text("INSERT INTO votes (battle_id, winner, created) VALUES (:i, 'a', '2025-01-02 00:00:00.000000')"), {"i": i})
    e.dispose()

    assert upgrade_to_head(url) == head_revision() != "0002"
    e = make_engine(url)
    try:
        with e.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
            assert diff == [], diff
            assert conn.execute(text("SELECT count(*) FROM votes")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM annotation_pairs")).scalar() == 1
            rows = conn.execute(text("SELECT id, model_a, pair_id, digest_a, digest_b FROM battles ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [(1, "demo-zh", None, None, None), (2, "demo-zh", 1, None, None)]
        df = load_battles(e)  # older data keeps plain names
        assert list(df["model_a"]) == ["demo-zh", "demo-zh"] and list(df["winner"]) == ["a", "a"]
        battle(e, "demo-zh", D1)  # the migrated database takes digests
        battle(e, "demo-zh", D2)
        assert set(load_battles(e)["model_a"]) == {"demo-zh", "demo-zh@1a2b3c", "demo-zh@9f8e7d"}
    finally:
        e.dispose()
