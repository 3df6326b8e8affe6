"""Device and dtype are chosen once (``bactrian.devices``) and every parameter lands there.

CPU-only by default. ``BACTRIAN_TEST_DEVICE=cuda`` (bench/gpu_check.sh) also runs the placement tests on that
device with its ``auto`` dtype (bfloat16 on a recent GPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bactrian.devices import DeviceError, Placement, available_devices, resolve_device, resolve_dtype, resolve_placement
from bactrian.models import ModelError, load_base

TEST_DEVICE = os.environ.get("BACTRIAN_TEST_DEVICE")
PROMPT = "### Input:\nWhat is the capital of France?\n\n### Output:\n"
PLACEMENTS = [("cpu", "float32"), ("cpu", "bfloat16")] + ([(TEST_DEVICE, "auto")] if TEST_DEVICE else [])
has_cuda = torch.cuda.is_available()
has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
only_cpu = pytest.mark.skipif(has_cuda or has_mps, reason="this machine has an accelerator: auto picks it")


# -- resolution rules -------------------------------------------------------------------------------
@only_cpu
def test_auto_on_a_cpu_machine_is_cpu_float32():
    p = resolve_placement()
    assert p == Placement(torch.device("cpu"), torch.float32, "auto", "auto")
    assert p.describe() == "cpu float32"
    assert p.summary() == "device: cpu (auto), dtype: float32 (auto)"
    assert p.as_dict() == {"device": "cpu", "dtype": "float32", "requested_device": "auto", "requested_dtype": "auto"}
    assert available_devices() == ["cpu"]
    assert resolve_device(None) == resolve_device("") == torch.device("cpu")


def test_explicit_names_and_aliases():
    assert resolve_device("cpu") == resolve_device(" CPU ") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    cpu = torch.device("cpu")
    assert resolve_dtype("float32", cpu) == resolve_dtype("fp32", cpu) == resolve_dtype(torch.float32, cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == resolve_dtype("BF16", "cpu") == torch.bfloat16
    p = resolve_placement("cpu", "bf16")
    assert (p.describe(), p.summary()) == ("cpu bfloat16", "device: cpu, dtype: bfloat16")


@pytest.mark.parametrize("name", ["nonsense", "tpu", "meta", "cuda:x", "gpu0"])
def test_unknown_device_names_what_is_available(name):
    with pytest.raises(DeviceError, match=rf"unknown device '{name}'.*available here: cpu"):
        resolve_device(name)


@pytest.mark.skipif(has_cuda, reason="CUDA is available here")
@pytest.mark.parametrize("name", ["cuda", "cuda:1", "CUDA:0"])
def test_cuda_when_unavailable(name):
    with pytest.raises(DeviceError, match=r"CUDA is not available.*available here: cpu"):
        resolve_device(name)
    with pytest.raises(DeviceError):  # the dtype check resolves the device first
        resolve_placement(name, "float32")


@pytest.mark.skipif(has_mps, reason="Apple MPS is available here")
def test_mps_when_unavailable():
    with pytest.raises(DeviceError, match=r"MPS is not available"):
        resolve_device("mps")


@pytest.mark.skipif(not has_cuda, reason="needs CUDA")
def test_cuda_rules():
    dev = resolve_device("cuda")
    assert dev.type == "cuda" and dev.index == torch.cuda.current_device()
    with pytest.raises(DeviceError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    native_bf16 = torch.cuda.get_device_capability(dev) >= (8, 0)
    assert resolve_dtype("auto", dev) == (torch.bfloat16 if native_bf16 else torch.float16)
    assert resolve_dtype("float16", dev) == torch.float16
    if not native_bf16:
        with pytest.raises(DeviceError, match="bfloat16"):
            resolve_dtype("bfloat16", dev)


@pytest.mark.parametrize("name", ["int8", "float64", "fp8", "bfloat"])
def test_unknown_dtype(name):
    with pytest.raises(DeviceError, match=rf"unknown dtype '{name}'.*float32.*bfloat16.*float16"):
        resolve_dtype(name, "cpu")


def test_float16_on_cpu_is_refused_with_the_alternatives():
    for name in ("float16", "fp16", "half"):
        with pytest.raises(DeviceError, match=r"float16 on cpu.*bfloat16.*float32"):
            resolve_dtype(name, torch.device("cpu"))


def test_device_error_is_a_value_error_and_a_model_error():
    """Commands that report bad values (ValueError) or models that cannot load (ModelError) report it cleanly."""
    assert issubclass(DeviceError, ValueError) and issubclass(DeviceError, ModelError)


def test_load_base_refuses_before_loading(tmp_path):
    # The folder does not exist: the device check must fail first, with its own message.
    with pytest.raises(DeviceError, match="unknown device"):
        load_base(str(tmp_path / "missing"), device="nonsense")
    with pytest.raises(DeviceError, match="float16 on cpu"):
        load_base(str(tmp_path / "missing"), device="cpu", dtype="float16")


# -- loading ------------------------------------------------------------------------------------------
def last_logits(base) -> torch.Tensor:
    ids = base.tokenizer(PROMPT, return_tensors="pt").to(base.device)
    with torch.no_grad():
        return base.model(**ids).logits[0, -1].float().cpu()


@pytest.fixture(scope="module")
def reference(tiny_base):
    """float32 on the CPU: the reference every placement is compared with."""
    return last_logits(load_base(str(tiny_base), device="cpu", dtype="float32"))


@pytest.mark.parametrize("device,dtype", PLACEMENTS, ids=[f"{d}-{t}" for d, t in PLACEMENTS])
def test_load_base_places_every_parameter_and_keeps_the_argmax(tiny_base, reference, device, dtype):
    base = load_base(str(tiny_base), device=device, dtype=dtype)
    want = resolve_placement(device, dtype)
    assert base.placement == want and base.device == want.device
    params = dict(base.model.named_parameters())
    assert params
    wrong = {n: (str(p.device), p.dtype) for n, p in params.items() if p.device != want.device or p.dtype != want.dtype}
    assert not wrong, f"not on {want.describe()}: {wrong}"

    logits = last_logits(base)
    assert int(logits.argmax()) == int(reference.argmax())  # same greedy next token
    # bfloat16 keeps ~3 significant digits: the logits agree to a small fraction of their spread
    tol = 1e-5 if want.dtype == torch.float32 else 0.03
    spread = float(reference.max() - reference.min())
    assert float((logits - reference).abs().max()) <= tol * spread


def test_engine_load_passes_device_and_dtype(tiny_base):
    from bactrian.engine import Engine

    engine = Engine.load(str(tiny_base), include_default_dirs=False, device="cpu", dtype="bfloat16")
    assert engine.base.placement.describe() == "cpu bfloat16"
    assert {p.dtype for p in engine.base.model.parameters()} == {torch.bfloat16}


# -- command line and settings -----------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bactrian.cli", *args], capture_output=True, text=True, timeout=300, env=env)


def test_models_bad_device_or_dtype_exits_2_with_a_clear_message():
    r = cli("models", "--device", "nonsense")
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: unknown device 'nonsense'") and "available here: cpu" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("models", "--device", "cpu", "--dtype", "float16")
    assert r.returncode == 2 and r.stderr.startswith("error: dtype float16 on cpu is refused") and "Traceback" not in r.stderr


@only_cpu
def test_models_shows_the_placement_in_text_and_json():
    r = cli("models", "--json")
    assert r.returncode == 0, r.stderr
    placement = json.loads(r.stdout)["placement"]
    assert placement == {"device": "cpu", "dtype": "float32", "requested_device": "auto", "requested_dtype": "auto",
                         "available_devices": ["cpu"]}
    r = cli("models", "--dtype", "bf16")
    assert r.returncode == 0, r.stderr
    assert "device: cpu (auto), dtype: bfloat16" in r.stdout


def test_chat_and_bench_refuse_a_bad_device_before_loading(tiny_base):
    r = cli("chat", "--base", str(tiny_base), "--device", "nonsense", "hello")
    assert r.returncode == 2 and "error: unknown device 'nonsense'" in r.stderr and "Traceback" not in r.stderr
    r = cli("bench", "--model", str(tiny_base), "--tasks", "xcopa", "--device", "cpu", "--dtype", "fp16")
    assert r.returncode == 2 and "error: dtype float16 on cpu" in r.stderr and "Traceback" not in r.stderr


def test_studio_settings_device_and_dtype():
    from eval_studio.settings import Settings, SettingsError

    s = Settings.from_env({})
    assert (s.device, s.dtype) == ("auto", "auto")
    s = Settings.from_env({"BACTRIAN_DEVICE": "cpu", "BACTRIAN_DTYPE": "bfloat16"})
    assert (s.device, s.dtype) == ("cpu", "bfloat16")
    with pytest.raises(SettingsError, match="BACTRIAN_DEVICE='nonsense'.*unknown device"):
        Settings.from_env({"BACTRIAN_DEVICE": "nonsense"})
    with pytest.raises(SettingsError, match="float16 on cpu"):
        Settings.from_env({"BACTRIAN_DEVICE": "cpu", "BACTRIAN_DTYPE": "float16"})
