"""The published Bactrian-X adapters (``MBZUAI/bactrian-x-bloom-7b1-lora`` and friends) load.

They are older peft folders: ``adapter_model.bin`` (a torch pickle, not safetensors), an ``adapter_config.json``
written by peft ~0.3 (``enable_lora``, ``merge_weights``, none of the newer keys) and weight names without an
adapter name (``...query_key_value.lora_A.weight``). This test writes a folder in exactly that format for a tiny
BLOOM, puts it where a Hub download would be (``HF_HUB_CACHE/models--MBZUAI--.../snapshots/<commit>/``, with
``refs/main`` and blobs, as ``huggingface_hub`` lays it out), and loads it by its Hub id with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

HUB_ID = "MBZUAI/bactrian-x-bloom-7b1-lora"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
R, ALPHA = 8, 16  # scaling alpha / r = 2, so a wrong scaling shows
PROMPT = "### Input:\nWhat is the capital of France?\n\n### Output:\n"

# What peft 0.3 wrote (the MBZUAI adapters were trained with it): no use_rslora, layers_to_transform, ...
OLD_CONFIG = {
    "base_model_name_or_path": "bigscience/bloom-7b1",
    "bias": "none",
    "enable_lora": None,
    "fan_in_fan_out": False,
    "inference_mode": True,
    "lora_alpha": ALPHA,
    "lora_dropout": 0.05,
    "merge_weights": False,
    "modules_to_save": None,
    "peft_type": "LORA",
    "r": R,
    "target_modules": ["query_key_value"],
    "task_type": "CAUSAL_LM",
}


@pytest.fixture(scope="module")
def bloom(tmp_path_factory) -> Path:
    from bactrian.testing import make_tiny_base

    return make_tiny_base(tmp_path_factory.mktemp("bases") / "bloom-7b1", arch="bloom", hub_id="bigscience/bloom-7b1")


def old_state_dict(bloom: Path) -> dict[str, torch.Tensor]:
    """LoRA A/B for every ``query_key_value``, named as peft 0.3 saved them (no adapter name), B non-zero."""
    cfg = json.loads((bloom / "config.json").read_text("utf-8"))
    hidden, layers = cfg["hidden_size"], cfg["n_layer"]
    g = torch.Generator().manual_seed(7)
    state = {}
    for i in range(layers):
        key = f"base_model.model.transformer.h.{i}.self_attention.query_key_value"
        state[f"{key}.lora_A.weight"] = torch.randn(R, hidden, generator=g) * 0.3
        state[f"{key}.lora_B.weight"] = torch.randn(3 * hidden, R, generator=g) * 0.3
    return state


def write_hub_snapshot(cache: Path, files: dict[str, bytes]) -> Path:
    """``files`` laid out as huggingface_hub's cache holds a download: blobs, a snapshot of symlinks, refs/main."""
    repo = cache / ("models--" + HUB_ID.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snap), snap / name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snap


def bin_bytes(state: dict, tmp_path: Path) -> bytes:
    f = tmp_path / "state.bin"
    torch.save(state, f)
    return f.read_bytes()


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty local Hub cache that huggingface_hub uses, offline."""
    import huggingface_hub.constants as hc

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # huggingface_hub reads both variables once, at import: point the running process at them too.
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    return cache


def last_logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(PROMPT, return_tensors="pt").to(model.device)
    with torch.no_grad():
        return model(**ids).logits[0, -1].float().cpu()


def test_published_format_loads_by_hub_id_and_applies_lora(bloom, hub_cache, tmp_path):
    from bactrian.engine import Engine
    from bactrian.models import load_base

    state = old_state_dict(bloom)
    snap = write_hub_snapshot(hub_cache, {
        "adapter_config.json": json.dumps(OLD_CONFIG, indent=2).encode(),
        "adapter_model.bin": bin_bytes(state, tmp_path),
        "README.md": b"# bactrian-x-bloom-7b1-lora\n",
    })

    # The same path as `bactrian serve --base ... --load-adapter MBZUAI/bactrian-x-bloom-7b1-lora`.
    engine = Engine.load(str(bloom), include_default_dirs=False, adapters=[HUB_ID], device="cpu", dtype="float32")
    assert engine.adapters.names() == [HUB_ID]
    info = engine.adapters.info(HUB_ID)
    assert Path(info.path) == snap.resolve() or Path(info.path).resolve() == snap.resolve()
    assert info.base_model == "bigscience/bloom-7b1"

    bare = last_logits(engine.base.model, engine.tokenizer)  # before any adapter is injected
    engine.adapters.activate(HUB_ID)
    peft_model = engine.adapters.model
    adapted = last_logits(peft_model, engine.tokenizer)

    # It fits: every tensor of the file landed in the model, under the adapter's name, unchanged.
    lora = {n: p for n, p in peft_model.named_parameters() if "lora_" in n}
    assert len(lora) == len(state)
    for key, tensor in state.items():
        module, ab = key.removesuffix(".weight").rsplit(".", 1)  # ...query_key_value, lora_A
        loaded = lora[f"{module}.{ab}.{HUB_ID}.weight"]
        assert torch.equal(loaded.detach().cpu(), tensor)

    # It changes the outputs, and exactly as LoRA's math says: W' = W + (B @ A) * alpha / r on every layer.
    assert not torch.allclose(adapted, bare, atol=1e-3)
    ref = load_base(str(bloom), device="cpu", dtype="float32")
    with torch.no_grad():
        for i, layer in enumerate(ref.model.transformer.h):
            key = f"base_model.model.transformer.h.{i}.self_attention.query_key_value"
            delta = state[f"{key}.lora_B.weight"] @ state[f"{key}.lora_A.weight"] * (ALPHA / R)
            layer.self_attention.query_key_value.weight += delta
    expected = last_logits(ref.model, ref.tokenizer)
    torch.testing.assert_close(adapted, expected, atol=1e-4, rtol=1e-4)
    assert int(adapted.argmax()) == int(expected.argmax())


def test_published_format_in_a_mixed_batch(bloom, hub_cache, tmp_path):
    """A bare-base row and a row with the published adapter in one forward (how the engine batches variants)."""
    from bactrian.adapters import BASE_ADAPTER, AdapterSet
    from bactrian.models import load_base

    write_hub_snapshot(hub_cache, {
        "adapter_config.json": json.dumps(OLD_CONFIG).encode(),
        "adapter_model.bin": bin_bytes(old_state_dict(bloom), tmp_path),
    })
    base = load_base(str(bloom), device="cpu")
    bare = last_logits(base.model, base.tokenizer)
    aset = AdapterSet(base)
    aset.register_path(HUB_ID)
    aset.activate(HUB_ID)
    alone = last_logits(aset.model, base.tokenizer)
    ids = base.tokenizer([PROMPT, PROMPT], return_tensors="pt")
    with torch.no_grad():
        mixed = aset.model(**ids, adapter_names=[BASE_ADAPTER, HUB_ID]).logits[:, -1].float()
    torch.testing.assert_close(mixed[0], bare, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[1], alone, atol=1e-5, rtol=1e-5)


class NotATensor:  # a pickle that would need this class: weights_only refuses it
    pass


@pytest.mark.parametrize("kind", ["garbage", "truncated", "code", "empty"])
def test_corrupt_bin_is_a_clear_adapter_error(bloom, hub_cache, tmp_path, kind):
    from bactrian.adapters import AdapterError, AdapterSet, read_adapter
    from bactrian.models import load_base

    good = bin_bytes(old_state_dict(bloom), tmp_path)
    data = {
        "garbage": b"this is not a torch file" * 10,
        "truncated": good[: len(good) // 2],
        "code": bin_bytes({"x": NotATensor()}, tmp_path),
        "empty": bin_bytes({}, tmp_path),
    }[kind]
    snap = write_hub_snapshot(hub_cache, {"adapter_config.json": json.dumps(OLD_CONFIG).encode(), "adapter_model.bin": data})

    with pytest.raises(AdapterError, match=r"adapter_model\.bin") as err:
        read_adapter(snap)
    assert "corrupt" in str(err.value) or "no tensors" in str(err.value)
    aset = AdapterSet(load_base(str(bloom), device="cpu"))
    with pytest.raises(AdapterError, match=HUB_ID):  # by Hub id: refused before anything touches the model
        aset.register_path(HUB_ID)
    assert aset.names() == []
