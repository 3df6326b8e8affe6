"""The one recipe loader (``bactrian.recipes``): YAML + dotted overrides into nested dataclasses, one error format
(``FILE: KEY: problem``), and every recipe kind on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bactrian.recipes import RecipeError, apply_overrides, build_dataclass, load, parse_overrides, read_yaml, set_dotted


@dataclass(frozen=True)
class Inner:
    n: int = 1
    rate: float = 0.5
    url: str | None = None


@dataclass
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    items: tuple[Inner, ...] = ()
    langs: list[str] | str = "all"
    flag: bool = False


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_nested_dataclasses_typed_with_yaml_spellings() -> None:
    r = build_dataclass(Outer, {"name": "x", "inner": {"n": 3, "rate": 2}, "items": [{"rate": "3e-4"}],
                                "langs": ["zh", "es"]})
    assert r.inner == Inner(3, 2.0, None) and isinstance(r.inner.rate, float)
    assert r.items == (Inner(rate=3e-4),) and isinstance(r.items, tuple)  # "3e-4" is a string in YAML 1.1
    assert r.langs == ["zh", "es"] and build_dataclass(Outer, {"name": "x", "langs": "all"}).langs == "all"


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "inner": {"m": 1}}, "inner: unknown key(s) m; allowed: n, rate, url"),
    ({"name": "x", "inner": {"n": "many"}}, "inner.n: expected int, got 'many'"),
    ({"name": "x", "inner": {"n": True}}, "inner.n: expected int, got True"),
    ({"name": "x", "inner": {"rate": "fast"}}, "inner.rate: expected float, got 'fast'"),
    ({"name": "x", "inner": {"rate": ".nan"}}, "inner.rate: expected float"),
    ({"name": "x", "items": [{}, {"url": 5}]}, "items[1].url: expected str, got 5"),
    ({"name": "x", "items": {"n": 1}}, "items: expected a list"),
    ({"name": "x", "langs": 5}, "langs: expected list or str, got 5"),
    ({"name": "x", "flag": "yes"}, "flag: expected bool, got 'yes'"),
    ({"name": "x", "inner": 3}, "inner: expected a mapping, got int"),
    ({}, "missing required key(s) name"),
    ({"name": "x", "api_key": "sk-1"}, "name it in api_key_env"),
])
def test_wrong_values_name_their_key(data: dict, message: str) -> None:
    with pytest.raises(RecipeError) as e:
        build_dataclass(Outer, data)
    assert message in str(e.value)


def test_overrides_dotted_paths_lists_and_yaml_values() -> None:
    assert parse_overrides(["a.b=1e-4", "c=[x, y]", "d=null", "e="]) == {"a.b": "1e-4", "c": ["x", "y"], "d": None,
                                                                          "e": None}
    with pytest.raises(RecipeError, match="key=value"):
        parse_overrides(["oops"])
    data = {"items": [{"n": 1}], "name": "x"}
    out = apply_overrides(data, {"items.0.n": 2, "inner.rate": 0.1})
    assert out == {"items": [{"n": 2}], "name": "x", "inner": {"rate": 0.1}} and data["items"][0]["n"] == 1  # a copy
    assert apply_overrides(data, ["inner.n=7"])["inner"] == {"n": 7}  # --set strings work as well
    with pytest.raises(RecipeError, match="name.x: --set"):
        set_dotted({"name": "x"}, "name.x", 1)
    with pytest.raises(RecipeError, match="items.3.n"):
        set_dotted({"items": []}, "items.3.n", 1)


def test_load_names_the_file_and_runs_prepare_then_check(tmp_path: Path) -> None:
    f = _write(tmp_path / "r.yaml", {"name": "x", "inner": {"n": 2}})
    seen = []

    def prepare(raw: dict) -> dict:
        seen.append(dict(raw))
        return {**raw, "flag": True}

    def check(r: Outer) -> None:
        if r.inner.n > 5:
            raise RecipeError("at most 5", key="inner.n")

    r = load(Outer, f, ["inner.n=4"], prepare=prepare, check=check)
    assert (r.inner.n, r.flag) == (4, True) and seen == [{"name": "x", "inner": {"n": 4}}]  # overrides come first
    with pytest.raises(RecipeError) as e:
        load(Outer, f, {"inner.n": 9}, check=check)
    assert str(e.value) == f"{f}: inner.n: at most 5" and (e.value.file, e.value.key) == (str(f), "inner.n")
    with pytest.raises(RecipeError) as e:
        load(Outer, {"name": "x", "inner": {"n": 9}}, check=check)  # a mapping: no file to name
    assert str(e.value) == "inner.n: at most 5"
    with pytest.raises(RecipeError, match=f"^{f}: inner: unknown key"):
        load(Outer, f, {"inner.m": 1})


def test_read_yaml_refusals(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe not found"):
        read_yaml(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("a: [")
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML"):
        read_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(RecipeError, match="list.yaml: a recipe is a mapping"):
        read_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == {}


def test_every_recipe_kind_uses_the_one_error(tmp_path: Path) -> None:
    """Data, training, question-set and protocol recipes raise the same RecipeError, in the same format."""
    from eval_studio.protocol import load_protocol_recipe
    from pipelines.data.questions import load_question_recipe
    from pipelines.data.recipe import RecipeError as DataRecipeError
    from pipelines.data.recipe import load_recipe as load_data
    from pipelines.train.recipe import RecipeError as TrainRecipeError
    from pipelines.train.recipe import load_recipe as load_train

    assert DataRecipeError is RecipeError and TrainRecipeError is RecipeError
    data = _write(tmp_path / "data.yaml", {"name": "d", "output": "o", "languages": ["zh"],
                                           "sources": [{"kind": "alpaca", "path": "a.jsonl"}]})
    train = _write(tmp_path / "train.yaml", {"data": {"path": "x.jsonl"}})
    questions = _write(tmp_path / "q.yaml", {"name": "q", "source": "s.jsonl", "output": "o", "languages": ["zh"]})
    protocol = _write(tmp_path / "p.yaml", {"name": "p", "questions": "q.jsonl", "output": "o",
                                            "variants": [{"name": "a", "url": "http://x"},
                                                         {"name": "b", "url": "http://y"}],
                                            "judge": {"base_url": "http://j", "model": "m"}})
    for loader, f, key in [(load_data, data, "respond"), (load_train, train, "train"),
                           (load_question_recipe, questions, "translate"), (load_protocol_recipe, protocol, "judge")]:
        loader(f)  # loads as written
        with pytest.raises(RecipeError) as e:
            loader(f, [f"{key}.typo=1"])
        assert str(e.value).startswith(f"{f}: {key}: unknown key(s) typo; allowed: ")
    assert load_train(train).name == "train"  # the file's stem names a training run
