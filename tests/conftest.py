from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers import SHARED, train_tiny_adapter  # noqa: E402


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    from bactrian.testing import make_tiny_base

    return make_tiny_base(tmp_path_factory.mktemp("bases") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_adapters(tiny_base, tmp_path_factory) -> dict[str, Path]:
    """Two adapters trained a few steps on different texts: they must answer differently."""
    root = tmp_path_factory.mktemp("adapters")
    a = train_tiny_adapter(tiny_base, root / "alpha", ["### Input:\nHi\n\n### Output:\nParis is the capital of France."] * 4, seed=1)
    b = train_tiny_adapter(tiny_base, root / "beta", ["### Input:\nHi\n\n### Output:\n北京是中国的首都。"] * 4, seed=2)
    return {"alpha": a, "beta": b, "root": root}


@pytest.fixture
def tiny_engine(tiny_base, tiny_adapters):
    from bactrian.engine import Engine

    return Engine.load(str(tiny_base), [str(tiny_adapters["root"])], include_default_dirs=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (a fresh clone without ../shared skips this test)")
    return SHARED
