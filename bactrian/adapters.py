"""Adapters: discovery, resolution by name, validation, and hot-swapping many LoRA adapters on one base model.

The demo adapters ship as package data (``bactrian/data/adapters/<base>/``); the user's own live in
``$BACTRIAN_HOME/adapters``. ``resolve_adapter`` is the one way a name becomes an adapter.

All adapters for one base live on one ``PeftModel``; switching never reloads the base. A memory budget
unloads the least recently used adapters. An adapter for another base, or a corrupt folder, is refused with
a message naming the problem.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from .models import BaseSpec, LoadedBase

log = logging.getLogger(__name__)

MANIFEST = "bactrian_adapter.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" rows in a mixed batch
DIGEST_CHARS = 12  # AdapterInfo.digest: the short form of the weight digest


class AdapterError(ValueError):
    """An adapter cannot be used; the message names the adapter and the problem."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: str  # local folder, or a Hub id
    base_model: str | None
    languages: tuple[str, ...] = ()
    description: str = ""
    manifest: dict = field(default_factory=dict, hash=False, compare=False)
    sha256: str | None = None  # full hex of the weights + adapter_config.json (see adapter_sha256); None: unknown

    @property
    def digest(self) -> str | None:
        """Which weights these are (lineage): the first 12 hex of ``sha256``; retraining under one name changes it."""
        return self.sha256[:DIGEST_CHARS] if self.sha256 else None

    @property
    def group(self) -> str:
        """How pickers group adapters: by language (multilingual ones together)."""
        return language_group(self.languages)


def language_group(languages: tuple[str, ...] | list[str]) -> str:
    """An adapter's group in pickers: its one language, "multilingual", or "other" when none is recorded."""
    if len(languages) == 1:
        return languages[0]
    return "multilingual" if languages else "other"


def _read_json(path: Path, what: str, name: str) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdapterError(f"adapter {name!r}: {what} {path.name} is unreadable or not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise AdapterError(f"adapter {name!r}: {what} {path.name} is not a JSON object")
    return data


def read_adapter(path: str | Path, name: str | None = None) -> AdapterInfo:
    """Validate one adapter folder (config + weights + optional manifest) and describe it."""
    folder = Path(path)
    label = name or folder.name
    if not folder.is_dir():
        raise AdapterError(f"adapter {label!r}: {folder} is not a folder")
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.is_file():
        raise AdapterError(f"adapter {label!r}: {folder} has no adapter_config.json")
    cfg = _read_json(cfg_path, "config", label)
    if "peft_type" not in cfg:
        raise AdapterError(f"adapter {label!r}: adapter_config.json has no peft_type")
    weights = [folder / w for w in WEIGHT_FILES if (folder / w).is_file()]
    if not weights:
        raise AdapterError(f"adapter {label!r}: no weights ({' or '.join(WEIGHT_FILES)}) in {folder}")
    if weights[0].suffix == ".safetensors":
        _check_safetensors(weights[0], label)
    else:
        _check_bin(weights[0], label)
    manifest = _read_json(folder / MANIFEST, "manifest", label) if (folder / MANIFEST).is_file() else {}
    return AdapterInfo(
        name=name or manifest.get("name") or folder.name,
        path=str(folder.resolve()),
        base_model=manifest.get("base_model") or cfg.get("base_model_name_or_path"),
        languages=tuple(manifest.get("languages", ())),
        description=manifest.get("description", ""),
        manifest=manifest,
        sha256=adapter_sha256(folder),
    )


def fetch_adapter(source: str) -> Path:
    """A local folder for an adapter given as a folder or a Hub id (e.g. ``MBZUAI/bactrian-x-bloom-7b1-lora``).

    Hub ids go through the Hugging Face cache, so ``HF_HUB_OFFLINE=1`` works once downloaded.
    """
    p = Path(source).expanduser()
    if p.is_dir():
        return p
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise AdapterError(f"adapter {source!r}: no such folder, and not a Hub id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.md"]))
    except Exception as e:  # offline and not cached, no such repo, no network
        hint = " (HF_HUB_OFFLINE is set and it is not in the local Hub cache)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise AdapterError(f"adapter {source!r}: cannot fetch from the Hub{hint}: {_short(e)}") from e


def _check_safetensors(path: Path, label: str) -> None:
    """Catch truncated or garbage weight files before peft does, with a readable message."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if not list(f.keys()):
                raise AdapterError(f"adapter {label!r}: {path.name} holds no tensors")
    except AdapterError:
        raise
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise AdapterError(f"adapter {label!r}: weights file {path.name} is corrupt ({e})") from e


def _check_bin(path: Path, label: str) -> None:
    """The older peft format (``adapter_model.bin``, a torch pickle, e.g. the published MBZUAI Bactrian-X adapters):
    read with ``weights_only`` (tensors only, no code runs) and check it is a non-empty dict of tensors."""
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, or a pickle that wants to run code
        raise AdapterError(f"adapter {label!r}: weights file {path.name} is corrupt or not a tensors-only torch file "
                           f"({_short(e)})") from e
    if not isinstance(state, dict) or not state:
        raise AdapterError(f"adapter {label!r}: {path.name} holds no tensors")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise AdapterError(f"adapter {label!r}: {path.name} is not a state dict of named tensors")


def shipped_adapters_dir() -> Path:
    """The demo adapters shipped as package data, one subfolder per base (``bactrian/data/adapters/<base>/``).

    A plain folder: packages are installed unpacked, and peft reads adapters from files on disk.
    """
    return Path(str(resources.files("bactrian.data").joinpath("adapters")))


def user_adapters_dir() -> Path:
    """The user's own adapters (``$BACTRIAN_HOME/adapters``): one subfolder per base, or adapters filed loose."""
    from .settings import home as bactrian_home

    return bactrian_home() / "adapters"


def default_search_dirs(base_name: str) -> list[Path]:
    """Demo adapters shipped with the package, then the user's own for this base, then the user's loose ones."""
    user = user_adapters_dir()
    return [shipped_adapters_dir() / base_name, user / base_name, user]


def other_base_dirs(base_name: str) -> list[Path]:
    """The per-base folders (shipped and the user's) of every base except ``base_name``."""
    roots = (shipped_adapters_dir(), user_adapters_dir())
    return [sub for root in roots if root.is_dir() for sub in sorted(root.iterdir())
            if sub.is_dir() and sub.name != base_name]


def resolve_adapter(value: str | Path, base_name: str, extra_dirs: Iterable[str | Path] = ()) -> AdapterInfo:
    """The adapter ``value`` names: a folder; else a name in ``extra_dirs`` then ``default_search_dirs(base_name)``;
    else a name filed under another base; else a Hub id (owner/name). Raises AdapterError when none fits.

    The adapter is not checked against the base: one found under another base is returned so that the caller's
    ``matches_base`` check can name the base it was made for.
    """
    folder = Path(value).expanduser()
    if folder.is_dir():
        return read_adapter(folder)
    value = str(value)
    found, _problems = discover([*extra_dirs, *default_search_dirs(base_name)])
    by_name = {a.name: a for a in found}
    if value in by_name:
        return by_name[value]
    elsewhere, _problems = discover(other_base_dirs(base_name))
    other = next((a for a in elsewhere if a.name == value), None)
    if other is not None:
        return other
    if value.count("/") == 1 and not value.startswith((".", "/")):
        return read_adapter(fetch_adapter(value), name=value)
    known = ", ".join(sorted(by_name)) or "none found"
    raise AdapterError(f"adapter {value!r}: not a folder and not a known adapter name (known for {base_name}: {known})")


def discover(dirs: Iterable[str | Path]) -> tuple[list[AdapterInfo], list[str]]:
    """Adapters found in ``dirs`` (each a folder of adapter folders, or one adapter); plus problems found."""
    found: dict[str, AdapterInfo] = {}
    problems: list[str] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            continue
        candidates = [d] if (d / "adapter_config.json").exists() else sorted(p for p in d.iterdir() if p.is_dir())
        for c in candidates:
            if not (c / "adapter_config.json").exists() and not any((c / w).exists() for w in WEIGHT_FILES):
                continue  # not an adapter folder at all (e.g. another base's subfolder)
            try:
                info = read_adapter(c)
            except AdapterError as e:
                problems.append(str(e))
                continue
            found.setdefault(info.name, info)
    return list(found.values()), problems


def matches_base(info: AdapterInfo, spec: BaseSpec) -> bool:
    if not info.base_model:
        return True  # unknown: the structural check at load time decides
    b = info.base_model
    return b in spec.aliases or Path(b).name in spec.aliases or b.split("/")[-1] in spec.aliases


class AdapterSet:
    """The adapters of one base model, loaded on demand onto one PeftModel (thread-safe)."""

    def __init__(self, base: LoadedBase, infos: Iterable[AdapterInfo] = (), max_loaded: int = 16):
        self.base = base
        self.max_loaded = max(1, max_loaded)
        self._infos: dict[str, AdapterInfo] = {}
        self._loaded: OrderedDict[str, None] = OrderedDict()  # LRU order, oldest first
        self._pinned: set[str] = set()
        self._lock = threading.RLock()
        self.model: Any = base.model
        for info in infos:
            self.register(info)

    # -- registry ---------------------------------------------------------------------------------
    def register(self, info: AdapterInfo) -> AdapterInfo:
        if info.name == BASE_ADAPTER or info.name == self.base.spec.name:
            raise AdapterError(f"adapter name {info.name!r} is reserved for the bare base model")
        if not matches_base(info, self.base.spec):
            raise AdapterError(
                f"adapter {info.name!r} was trained for base {info.base_model!r}, "
                f"but the loaded base is {self.base.spec.name!r}"
            )
        with self._lock:
            self._infos[info.name] = info
        return info

    def register_path(self, path: str | Path, name: str | None = None) -> AdapterInfo:
        """Register a folder or a Hub id; a Hub adapter is named after its repo unless ``name`` is given."""
        folder = fetch_adapter(str(path))
        if name is None and not Path(str(path)).expanduser().is_dir():
            name = str(path)
        return self.register(read_adapter(folder, name))

    def names(self) -> list[str]:
        return list(self._infos)

    def infos(self) -> list[AdapterInfo]:
        return list(self._infos.values())

    def info(self, name: str) -> AdapterInfo:
        try:
            return self._infos[name]
        except KeyError:
            known = ", ".join(self._infos) or "none"
            raise AdapterError(f"unknown adapter {name!r}; known adapters: {known}") from None

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    # -- loading ----------------------------------------------------------------------------------
    def ensure_loaded(self, names: Iterable[str | None]) -> None:
        """Load adapters (LRU-evicting others) so that all of ``names`` are on the model at once."""
        wanted = [n for n in dict.fromkeys(names) if n and n != BASE_ADAPTER]
        if len(wanted) > self.max_loaded:
            raise AdapterError(f"{len(wanted)} adapters requested at once; the memory budget allows {self.max_loaded}")
        import torch

        # A first decode may trigger the load inside torch.inference_mode(); LoRA weights created there are
        # inference tensors that a later load/switch outside it cannot touch. Load them as normal tensors.
        with self._lock, torch.inference_mode(False):
            self._pinned = set(wanted)
            for name in wanted:
                if name in self._loaded:
                    self._loaded.move_to_end(name)
                    continue
                self._load(self.info(name))
                self._evict()

    def _load(self, info: AdapterInfo) -> None:
        from peft import PeftModel

        try:
            if not isinstance(self.model, PeftModel):
                self.model = PeftModel.from_pretrained(self.base.model, info.path, adapter_name=info.name)
            else:
                self.model.load_adapter(info.path, adapter_name=info.name)
        except Exception as e:  # shape mismatch, missing target modules, unreadable weights
            self._discard(info.name)
            raise AdapterError(f"adapter {info.name!r} does not fit base {self.base.spec.name!r}: {_short(e)}") from e
        self.model.eval()
        self._loaded[info.name] = None
        log.info("loaded adapter %s", info.name)

    def _discard(self, name: str) -> None:
        if hasattr(self.model, "peft_config") and name in self.model.peft_config:
            try:
                self.model.delete_adapter(name)
            except Exception:  # noqa: BLE001 - a half-loaded adapter may not delete cleanly; it is unusable either way
                log.warning("could not fully remove adapter %s", name)

    def _evict(self) -> None:
        while len(self._loaded) > self.max_loaded:
            victim = next((n for n in self._loaded if n not in self._pinned), None)
            if victim is None:
                return
            del self._loaded[victim]
            if len(self.model.peft_config) > 1:
                # peft refuses to delete the active adapter: point it at a survivor first
                survivor = next(iter(self._loaded))
                self.model.set_adapter(survivor, inference_mode=True)  # serving only: no grads on inference tensors
                self.model.delete_adapter(victim)
            log.info("unloaded adapter %s (memory budget)", victim)

    def activate(self, name: str | None) -> None:
        """Make one adapter active (``None``: the bare base) for single-variant generation."""
        with self._lock:
            if name:
                self.ensure_loaded([name])
                self.model.set_adapter(name, inference_mode=True)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def adapter_sha256(folder: str | Path) -> str | None:
    """sha256 (hex) over an adapter folder's weight file bytes, then its ``adapter_config.json`` (canonical JSON).

    Streams the weights in 1 MiB chunks. The same folder (or a byte-identical copy) always gives the same digest;
    retrained weights or a changed config give another. ``None`` when the folder has no weights or config.
    """
    folder = Path(folder)
    weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    cfg_path = folder / "adapter_config.json"
    if weights is None or not cfg_path.is_file():
        return None
    h = hashlib.sha256()
    h.update(f"bactrian-adapter-v1\0{weights.name}\0".encode())
    with weights.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    try:
        cfg: object = json.loads(cfg_path.read_text("utf-8"))
        cfg_bytes = json.dumps(cfg, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    except (UnicodeDecodeError, json.JSONDecodeError):
        cfg_bytes = cfg_path.read_bytes()  # read_adapter reports the bad config; still a stable digest here
    h.update(b"\0adapter_config.json\0")
    h.update(cfg_bytes)
    return h.hexdigest()
