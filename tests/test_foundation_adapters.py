"""Adapters on one base: hot-swap, mixed batch equals one-at-a-time, clear refusals."""

import json
import shutil

import pytest

from bactrian.adapters import AdapterError, AdapterSet, read_adapter
from bactrian.engine import Engine
from bactrian.service import GenRequest, LocalService
from bactrian.generation import GenerationParams
from bactrian.models import load_base

GREEDY = GenerationParams(max_new_tokens=10, temperature=0, repetition_penalty=1.0, ignore_eos=True)


def _req(prompt, adapter, params):
    return GenRequest(adapter or "__base__", prompt=prompt, params=params)


def _texts(engine, reqs):
    """Submit all at once (they decode in one batch) through a generation service over ``engine``."""
    service = LocalService(engine)
    try:
        streams = [service.submit(r) for r in reqs]
        return [s.result().text for s in streams]
    finally:
        service.close()


def test_adapters_differ_and_mixed_batch_equals_single(tiny_engine):
    e = tiny_engine
    assert set(e.variants()) == {e.base_name, "alpha", "beta"}
    prompt = e.prompter.build("Hi")
    base_model = e.base.model
    single = {name: _texts(e, [_req(prompt, name, GREEDY)])[0] for name in (None, "alpha", "beta")}
    assert len(set(single.values())) == 3, single  # base, alpha and beta all answer differently
    assert e.base.model is base_model  # switching never reloaded the base
    mixed = _texts(e, [_req(prompt, "alpha", GREEDY), _req(prompt, "beta", GREEDY), _req(prompt, None, GREEDY)])
    assert mixed == [single["alpha"], single["beta"], single[None]]


def test_mixed_lengths_padding_keeps_first_tokens(tiny_engine):
    e = tiny_engine
    short, long_ = e.prompter.build("Hi"), e.prompter.build("Hi, tell me about the capital of France and Spain please")
    g = GenerationParams(max_new_tokens=4, temperature=0, repetition_penalty=1.0, ignore_eos=True)
    alone = [_texts(e, [_req(short, "alpha", g)])[0], _texts(e, [_req(long_, "beta", g)])[0]]
    together = _texts(e, [_req(short, "alpha", g), _req(long_, "beta", g)])
    assert together == alone


def test_set_adapter_switching_is_cheap_and_lru_budget(tiny_base, tiny_adapters):
    base = load_base(str(tiny_base))
    aset = AdapterSet(base, max_loaded=1)
    aset.register_path(tiny_adapters["alpha"])
    aset.register_path(tiny_adapters["beta"])
    aset.activate("alpha")
    assert aset.loaded == ["alpha"]
    aset.activate("beta")  # budget of one: alpha is unloaded
    assert aset.loaded == ["beta"] and "alpha" not in aset.model.peft_config
    with pytest.raises(AdapterError, match="budget"):
        aset.ensure_loaded(["alpha", "beta"])


def test_eviction_and_switching_after_loading_inside_a_decode(tiny_base, tiny_adapters):
    # Adapters first loaded during a decode hold inference tensors; a later set_adapter (eviction, activate)
    # must not try to turn their gradients back on.
    base = load_base(str(tiny_base))
    aset = AdapterSet(base, max_loaded=1)
    aset.register_path(tiny_adapters["alpha"])
    aset.register_path(tiny_adapters["beta"])
    e = Engine(base, aset)
    prompt = e.prompter.build("Hi")
    first = _texts(e, [_req(prompt, "alpha", GREEDY)])
    _texts(e, [_req(prompt, "beta", GREEDY)])  # evicts alpha
    assert aset.loaded == ["beta"]
    aset.activate("alpha")
    assert _texts(e, [_req(prompt, "alpha", GREEDY)]) == first


def test_unknown_other_base_and_corrupt_adapters_are_refused(tiny_engine, tiny_adapters, tmp_path):
    e = tiny_engine
    with pytest.raises(AdapterError, match="unknown adapter 'nope'.*alpha"):
        e.resolve_adapter("nope")
    other = tmp_path / "other"
    shutil.copytree(tiny_adapters["alpha"], other)
    (other / "bactrian_adapter.json").write_text(json.dumps({"name": "other", "base_model": "bigscience/bloom-7b1"}))
    with pytest.raises(AdapterError, match="trained for base 'bigscience/bloom-7b1'"):
        e.adapters.register_path(other)
    bad_json = tmp_path / "badjson"
    shutil.copytree(tiny_adapters["alpha"], bad_json)
    (bad_json / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        read_adapter(bad_json)
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_adapters["alpha"], truncated)
    w = truncated / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(AdapterError, match="corrupt"):
        read_adapter(truncated)
    no_weights = tmp_path / "noweights"
    shutil.copytree(tiny_adapters["alpha"], no_weights)
    (no_weights / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="no weights"):
        read_adapter(no_weights)


def test_adapter_with_wrong_shapes_fails_cleanly_and_engine_keeps_working(tiny_engine, tmp_path):
    """An adapter whose config claims our base but whose tensors were made for another model."""
    from bactrian.testing import make_tiny_base
    from tests.helpers import train_tiny_adapter

    other_base = make_tiny_base(tmp_path / "wide", seed=3)
    cfg = json.loads((other_base / "config.json").read_text())
    cfg["hidden_size"] = 48
    cfg["intermediate_size"] = 96
    (other_base / "config.json").write_text(json.dumps(cfg))
    for f in other_base.glob("*.safetensors"):
        f.unlink()
    from transformers import AutoConfig, AutoModelForCausalLM

    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(other_base)).save_pretrained(other_base)
    wrong = train_tiny_adapter(other_base, tmp_path / "wrong", ["x y z"], steps=1)
    manifest = json.loads((wrong / "bactrian_adapter.json").read_text())
    manifest["base_model"] = None
    (wrong / "bactrian_adapter.json").write_text(json.dumps(manifest))
    cfg = json.loads((wrong / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (wrong / "adapter_config.json").write_text(json.dumps(cfg))
    tiny_engine.adapters.register_path(wrong, "wrong")
    with pytest.raises(AdapterError, match="does not fit"):
        _texts(tiny_engine, [_req(tiny_engine.prompter.build("Hi"), "wrong", GREEDY)])
    assert _texts(tiny_engine, [_req(tiny_engine.prompter.build("Hi"), "alpha", GREEDY)])[0]


def test_bad_generation_parameters_are_named(tiny_engine):
    for bad, name in [({"temperature": -1}, "temperature"), ({"top_p": 2}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"bogus": 1}, "bogus")]:
        with pytest.raises(ValueError, match=name):
            GenerationParams.from_dict(bad)


def test_streaming_seeded_sampling_and_stop_strings(tiny_engine):
    e = tiny_engine
    p = GenerationParams(max_new_tokens=12, temperature=1.0, seed=7, repetition_penalty=1.0, ignore_eos=True)
    a = _texts(e, [_req(e.prompter.build("Hi"), "alpha", p)])
    b = _texts(e, [_req(e.prompter.build("Hi"), "alpha", p)])
    assert a == b  # same seed, same text
    service = LocalService(e)
    deltas = [ev.delta for ev in service.submit(GenRequest("beta", [{"role": "user", "content": "Hi"}], params=GREEDY))]
    service.close()
    assert "".join(deltas) == _texts(e, [_req(e.prompter.build("Hi"), "beta", GREEDY)])[0]
    full = _texts(e, [_req(e.prompter.build("Hi"), "beta", GREEDY)])[0]
    if len(full) > 3:
        stop = full[2:4]
        cut = _texts(e, [_req(e.prompter.build("Hi"), "beta", GenerationParams(**{**GREEDY.as_dict(), "stop": [stop]}))])[0]
        assert stop not in cut and full.startswith(cut)


def test_bloom_path_with_local_folder_standing_in_for_the_hub_model(tmp_path):
    """The real-user path (bigscience/bloom-7b1 + a query_key_value LoRA), exercised with a local tiny BLOOM."""
    import torch
    from peft import LoraConfig, get_peft_model

    from bactrian.testing import make_tiny_base

    base_dir = make_tiny_base(tmp_path / "bloom-7b1", arch="bloom", hub_id="bigscience/bloom-7b1")
    for i, name in enumerate(["bactrian-zh", "bactrian-es"]):
        b = load_base(str(base_dir))
        torch.manual_seed(i)
        m = get_peft_model(b.model, LoraConfig(r=4, target_modules=["query_key_value"], init_lora_weights=False))
        m.peft_config["default"].base_model_name_or_path = "bigscience/bloom-7b1"  # as the Hub adapters record it
        m.save_pretrained(tmp_path / "adapters" / name)
    e = Engine.load(str(base_dir), [str(tmp_path / "adapters")], include_default_dirs=False)
    assert set(e.adapters.names()) == {"bactrian-zh", "bactrian-es"}
    prompt = e.prompter.build("Hola")
    single = [_texts(e, [_req(prompt, n, GREEDY)])[0] for n in ("bactrian-zh", "bactrian-es")]
    assert single[0] != single[1]
    assert _texts(e, [_req(prompt, "bactrian-zh", GREEDY), _req(prompt, "bactrian-es", GREEDY)]) == single


def test_hub_adapter_offline_and_not_cached_is_a_clear_error(tiny_engine, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(AdapterError, match="MBZUAI/bactrian-x-bloom-7b1-lora.*cannot fetch"):
        tiny_engine.adapters.register_path("MBZUAI/bactrian-x-bloom-7b1-lora")
