"""peft LoRA folders as llama.cpp GGUF LoRA files, converted once and cached by the adapter's weight digest.

The file follows llama.cpp's ``convert_lora_to_gguf.py``: ``general.type = adapter``, ``adapter.type = lora``,
``general.architecture`` of the base, and per target weight ``blk.N.attn_q.weight.lora_a`` (rank x in) and
``.lora_b`` (out x rank), named through the ``gguf`` package's tensor map. One difference: peft's scaling
(``lora_alpha / r``, per module with ``alpha_pattern``/``rank_pattern``, ``/ sqrt(r)`` with rsLoRA) is folded into
``lora_b`` and ``adapter.lora.alpha`` is 0 (llama.cpp then scales by 1), so every peft variant maps exactly.

Cache: ``cache_root()/lora-gguf/<base>/<digest>.gguf``, written to a temporary file and renamed. The file records
the full sha256 of the peft weights it came from and the converter version; a cached file that is unreadable or
records anything else is rebuilt, and an adapter whose files changed between its registration and its conversion
is refused (its lineage digest would no longer say which weights answered). Once converted, the file named by the
digest is what is served, whatever happens to the peft folder later.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .adapters import WEIGHT_FILES, AdapterError, AdapterInfo, adapter_sha256

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
KEY_SHA = "bactrian.adapter.sha256"
KEY_VERSION = "bactrian.converter.version"
KEY_BASE = "bactrian.base"
# Architectures whose q/k weights llama.cpp's converter permutes for its RoPE layout (LlamaModel.permute);
# the LoRA B of those targets must get the same row permutation. Gemma models are stored unpermuted.
_PERMUTED_QK = {"llama"}
_SUPPORTED = {"llama", "gemma", "gemma2", "gemma3"}


@dataclass(frozen=True)
class BaseLayout:
    """What the conversion needs to know about the base (read from the loaded llama.cpp model's metadata)."""

    arch: str
    blocks: int
    heads: int
    kv_heads: int


def converted_path(cache: Path, base_name: str, info: AdapterInfo) -> Path:
    if not info.digest:
        raise AdapterError(f"adapter {info.name!r}: no weight digest (weights or adapter_config.json missing)")
    return cache / "lora-gguf" / base_name / f"{info.digest}.gguf"


def ensure_gguf_lora(info: AdapterInfo, base_name: str, layout: BaseLayout, cache: Path) -> Path:
    """The GGUF LoRA file of ``info`` for this base: the cached one when it is intact, else a fresh conversion."""
    target = converted_path(cache, base_name, info)
    if target.is_file():
        problem = check_converted(target, info, base_name)
        if problem is None:
            return target
        log.warning("rebuilding converted adapter %s: %s", target, problem)
    current = adapter_sha256(info.path)
    if current != info.sha256:
        raise AdapterError(f"adapter {info.name!r} changed on disk since it was registered (digest {info.digest} -> "
                           f"{(current or 'none')[:12]}); restart to serve the new weights under their own digest")
    convert(info, base_name, layout, target)
    problem = check_converted(target, info, base_name)
    if problem is not None:
        raise AdapterError(f"adapter {info.name!r}: the converted file {target} does not read back ({problem})")
    return target


def check_converted(path: Path, info: AdapterInfo, base_name: str) -> str | None:
    """None when ``path`` is a complete conversion of exactly these weights for this base, else what is wrong."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
        fields = {k: reader.fields[k].contents() for k in (KEY_SHA, KEY_VERSION, KEY_BASE) if k in reader.fields}
        tensors = len(reader.tensors)
        end = max((t.data_offset + t.n_bytes for t in reader.tensors), default=0)
    except Exception as e:  # noqa: BLE001 - truncated or garbage: GGUFReader raises ValueError, IndexError, ...
        return f"unreadable ({type(e).__name__}: {e})"
    if fields.get(KEY_SHA) != info.sha256:
        return f"it was converted from other weights ({str(fields.get(KEY_SHA))[:12]}, expected {info.digest})"
    if fields.get(KEY_VERSION) != CONVERTER_VERSION or fields.get(KEY_BASE) != base_name:
        return "it was written by another converter version or for another base"
    if tensors == 0 or tensors % 2 or end > path.stat().st_size:
        return "its tensors are incomplete"
    return None


def convert(info: AdapterInfo, base_name: str, layout: BaseLayout, target: Path) -> None:
    """Write the GGUF LoRA of a peft adapter folder to ``target`` (atomically); AdapterError names any problem."""
    import gguf

    pairs = _lora_pairs(info, layout)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".gguf", dir=target.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, layout.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # 0: llama.cpp scales by 1; peft's scale is in B
        writer.add_string(KEY_SHA, info.sha256 or "")
        writer.add_uint32(KEY_VERSION, CONVERTER_VERSION)
        writer.add_string(KEY_BASE, base_name)
        writer.add_string("general.name", info.name)
        for name, (a, b) in sorted(pairs.items()):
            writer.add_tensor(f"{name}.lora_a", a)
            writer.add_tensor(f"{name}.lora_b", b)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("converted adapter %s (%s) to %s", info.name, info.digest, target)


def _lora_pairs(info: AdapterInfo, layout: BaseLayout) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """GGUF weight name -> (lora_a, lora_b * scaling) as float32 arrays."""
    import gguf

    if layout.arch not in _SUPPORTED:
        raise AdapterError(f"adapter {info.name!r}: LoRA for architecture {layout.arch!r} is not supported by the "
                           "llama.cpp engine; use --engine torch")
    cfg = _config(info)
    arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == layout.arch)
    names = gguf.get_tensor_name_map(arch, layout.blocks)
    weights = _load_weights(info)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, a in weights.items():
        if not key.endswith(".lora_A.weight"):
            if not key.endswith(".lora_B.weight"):
                raise AdapterError(f"adapter {info.name!r}: tensor {key!r} is not a LoRA A/B weight (trained "
                                   "embeddings or extra modules cannot run on the llama.cpp engine; use --engine torch)")
            continue
        module = key[: -len(".lora_A.weight")]
        b = weights.get(module + ".lora_B.weight")
        if b is None:
            raise AdapterError(f"adapter {info.name!r}: {module} has lora_A but no lora_B")
        hf_name = module.removeprefix("base_model.model.")
        gguf_name = names.get_name(hf_name)
        if gguf_name is None:
            raise AdapterError(f"adapter {info.name!r}: module {hf_name!r} has no counterpart in the base GGUF")
        rank = a.shape[0]
        b = b * _scaling(cfg, hf_name, rank)
        if layout.arch in _PERMUTED_QK and hf_name.endswith(("q_proj", "k_proj")):
            b = _permute_rows(b, layout.heads, layout.heads if hf_name.endswith("q_proj") else layout.kv_heads)
        if b.shape[1] != rank:
            raise AdapterError(f"adapter {info.name!r}: {module} has lora_A of rank {rank} but lora_B of rank {b.shape[1]}")
        # shapes against the base are checked by llama.cpp when it loads the file (its message is passed on)
        pairs[f"{gguf_name}.weight"] = (np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32))
    if not pairs:
        raise AdapterError(f"adapter {info.name!r}: no LoRA weights found")
    return pairs


def _config(info: AdapterInfo) -> dict[str, Any]:
    import json

    cfg = json.loads((Path(info.path) / "adapter_config.json").read_text("utf-8"))
    if str(cfg.get("peft_type", "")).upper() != "LORA":
        raise AdapterError(f"adapter {info.name!r}: peft type {cfg.get('peft_type')!r} is not LoRA")
    unsupported = [k for k in ("use_dora", "lora_bias", "modules_to_save", "fan_in_fan_out") if cfg.get(k)]
    if unsupported:
        raise AdapterError(f"adapter {info.name!r}: {', '.join(unsupported)} cannot run on the llama.cpp engine; "
                           "use --engine torch")
    return cfg


def _scaling(cfg: dict[str, Any], module: str, rank: int) -> float:
    """peft's LoRA scaling for one module (LoraLayer.update_layer): alpha / r, or alpha / sqrt(r) with rsLoRA."""
    alpha = float(cfg.get("lora_alpha", 8))
    pattern = cfg.get("alpha_pattern") or {}
    if pattern:
        from peft.utils.other import get_pattern_key  # imported only here: peft takes seconds to import

        key = get_pattern_key(list(pattern), module)
        alpha = float(pattern.get(key, alpha))
    return alpha / (math.sqrt(rank) if cfg.get("use_rslora") else rank)


def _permute_rows(w: np.ndarray, heads: int, kv_heads: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` applied to the output rows of a LoRA B."""
    n = kv_heads if kv_heads and kv_heads != heads else heads
    return w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load_weights(info: AdapterInfo) -> dict[str, np.ndarray]:
    import torch

    folder = Path(info.path)
    path = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    if path is None:
        raise AdapterError(f"adapter {info.name!r}: no weights in {folder}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # read_adapter checked it at registration; it may have been damaged since
        raise AdapterError(f"adapter {info.name!r}: cannot read {path.name} ({e})") from e
    return {k: v.detach().to(torch.float32).numpy() for k, v in state.items()}
