"""One adapter resolution (``bactrian.adapters.resolve_adapter``): a folder, a name in the search path, a name
filed under another base, or a Hub id; the search folders named by what they hold, the demo ones as package data.
The bench's use of it (its error messages and base check) is in tests/test_bench_inputs.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import bactrian
from bactrian.adapters import (
    AdapterError,
    default_search_dirs,
    matches_base,
    other_base_dirs,
    resolve_adapter,
    shipped_adapters_dir,
    user_adapters_dir,
)
from bactrian.models import get_spec

BASE = "gemma-3-270m"
OTHER = "smollm2-135m-instruct"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BACTRIAN_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_search_folders_are_named_by_meaning_and_the_demo_ones_are_package_data(home):
    shipped = shipped_adapters_dir()
    assert shipped == Path(bactrian.__file__).parent / "data" / "adapters"
    assert {p.name for p in (shipped / BASE).iterdir()} >= {"demo-multi", "demo-zh", "demo-ar"}
    assert user_adapters_dir() == home / "adapters"
    assert default_search_dirs(BASE) == [shipped / BASE, home / "adapters" / BASE, home / "adapters"]
    (home / "adapters" / OTHER).mkdir(parents=True)
    assert other_base_dirs(OTHER) == [shipped / BASE]  # the user's own folder for OTHER is not "another base"
    assert other_base_dirs(BASE) == [home / "adapters" / OTHER]


def test_a_folder_or_a_name_in_the_search_path(home, tmp_path):
    demo_zh = shipped_adapters_dir() / BASE / "demo-zh"
    by_folder = resolve_adapter(demo_zh, BASE)
    by_name = resolve_adapter("demo-zh", BASE)
    assert by_folder == by_name and by_name.path == str(demo_zh.resolve()) and by_name.languages == ("zh",)
    # an extra folder is searched first: its adapter of the same name wins over the shipped one
    extra = tmp_path / "extra"
    shutil.copytree(demo_zh, extra / "demo-zh")
    assert resolve_adapter("demo-zh", BASE, [extra]).path == str((extra / "demo-zh").resolve())
    # the user's own, filed under the base or loose
    shutil.copytree(demo_zh, home / "adapters" / "mine", ignore=shutil.ignore_patterns("bactrian_adapter.json"))
    mine = resolve_adapter("mine", BASE)
    assert mine.path == str((home / "adapters" / "mine").resolve()) and matches_base(mine, get_spec(BASE))


def test_a_name_filed_under_another_base_is_returned_for_the_callers_base_check(home):
    info = resolve_adapter("demo-multi", OTHER)
    assert info.base_model == BASE and not matches_base(info, get_spec(OTHER))
    assert matches_base(resolve_adapter("demo-multi", BASE), get_spec(BASE))


def test_unknown_names_and_uncached_hub_ids_are_clear_errors(home, monkeypatch, tmp_path):
    with pytest.raises(AdapterError, match=r"'no-such': not a folder and not a known adapter name \(known for "
                                           r"gemma-3-270m: demo-ar, demo-en"):
        resolve_adapter("no-such", BASE)
    with pytest.raises(AdapterError, match=f"known for {OTHER}: none found"):
        resolve_adapter("no-such", OTHER)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(AdapterError, match="someone/no-such-adapter.*cannot fetch from the Hub"):
        resolve_adapter("someone/no-such-adapter", BASE)
