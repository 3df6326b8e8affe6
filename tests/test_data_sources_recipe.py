"""Sources (Alpaca / Dolly, malformed rows counted by reason) and the YAML recipe (unknown keys rejected)."""

import json
from pathlib import Path

import pytest

from pipelines.data.recipe import RecipeError, load_recipe, parse_overrides, parse_recipe
from pipelines.data.sources import load_source, load_sources
from pipelines.data.recipe import SourceSpec

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ALPACA = SHARED / "alpaca" / "alpaca_data_en_52k.jsonl"


@pytest.mark.shared
def test_alpaca_jsonl_ids_and_full_count():
    if not ALPACA.is_file():
        pytest.skip(f"shared data absent: {ALPACA}")
    res = load_source(SourceSpec(kind="alpaca", path=str(ALPACA), limit=5))
    assert [r.id for r in res.rows] == [f"alpaca-{i}" for i in range(5)]
    first = json.loads(ALPACA.open().readline())
    assert res.rows[0].instruction == first["instruction"].strip()
    full = load_source(SourceSpec(kind="alpaca", path=str(ALPACA)))
    assert len(full.rows) == 52002 and not full.malformed  # 49 empty outputs are kept: outputs get regenerated


def test_alpaca_json_array_and_dolly_schema_with_malformed_rows(tmp_path):
    alpaca = tmp_path / "alpaca_data.json"
    alpaca.write_text(json.dumps([
        {"instruction": "Give three tips.", "input": "", "output": "Eat, sleep, move."},
        {"instruction": "Sum", "output": "2"},  # no input field: allowed
        {"instruction": "", "input": "", "output": "x"},
    ]))
    dolly = tmp_path / "dolly.jsonl"
    lines = [
        json.dumps({"instruction": "When was X founded?", "context": "X was founded in 1990.", "response": "1990.",
                    "category": "closed_qa"}),
        "{not json",
        json.dumps({"instruction": "Name a fruit", "context": "", "category": "brainstorming"}),
        json.dumps({"instruction": ["list"], "context": "", "response": "r", "category": "open_qa"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"instruction": "Say hi", "context": "", "response": "Hi", "category": "open_qa"}),
    ]
    dolly.write_text("\n".join(lines) + "\n")
    res = load_sources([SourceSpec(kind="alpaca", path=str(alpaca)), SourceSpec(kind="dolly", path=str(dolly))])
    assert [r.id for r in res.rows] == ["alpaca-0", "alpaca-1", "dolly-0", "dolly-5"]
    d0 = res.rows[2]
    assert (d0.input, d0.output, d0.category, d0.source) == ("X was founded in 1990.", "1990.", "closed_qa", "dolly")
    assert dict(res.malformed) == {
        "alpaca:empty_instruction": 1, "dolly:invalid_json": 1, "dolly:missing_field:response": 1,
        "dolly:wrong_type:instruction": 1, "dolly:not_an_object": 1,
    }
    assert "record 1" in res.examples["dolly:invalid_json"]


def test_missing_source_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="source file not found"):
        load_source(SourceSpec(kind="alpaca", path=str(tmp_path / "nope.jsonl")))


def _base():
    return {"name": "t", "output": "out", "languages": ["zh"], "sources": [{"kind": "alpaca", "path": "a.jsonl"}]}


def test_recipe_rejects_unknown_keys_with_their_path():
    with pytest.raises(RecipeError, match=r"respond: unknown key\(s\) concurency"):
        parse_recipe({**_base(), "respond": {"concurency": 3}})
    with pytest.raises(RecipeError, match="environment variable"):
        parse_recipe({**_base(), "respond": {"api_key": "sk-123"}})
    with pytest.raises(RecipeError, match="sources\\[0\\].kind"):
        parse_recipe({**_base(), "sources": [{"kind": "oasst", "path": "x"}]})
    with pytest.raises(RecipeError, match="respond.concurrency: expected int"):
        parse_recipe({**_base(), "respond": {"concurrency": "many"}})
    with pytest.raises(RecipeError, match="languages"):
        parse_recipe({**_base(), "languages": ["xx"]})


def test_recipe_overrides_and_language_groups():
    r = parse_recipe({**_base(), "languages": "G1"}, parse_overrides(["respond.rpm=600", "sources.0.limit=5"]))
    assert r.languages == ("es", "fr", "pt") and r.respond.rpm == 600.0 and r.sources[0].limit == 5


def test_shipped_recipes_load():
    full = load_recipe(REPO / "recipes/data/paper-full.yaml")
    assert len(full.languages) == 51 and len(full.work_languages) == 52
    assert {s.kind for s in full.sources} == {"alpaca", "dolly"}
    small = load_recipe(REPO / "recipes/data/offline-small.yaml")
    assert small.sources[0].limit == 20 and len(small.languages) == 3
