"""The llama.cpp C library of the ``llama-cpp-py-sync`` wheel, loaded once per process through its CFFI bindings.

The wheel (CFFI ABI-mode bindings of the whole llama.cpp C API, prebuilt, AVX2 without AVX-512) is tagged
manylinux2014, but its native libraries were linked against glibc 2.38: they import the C23 variants
``__isoc23_strtol``/``strtoul``/``strtoull``/``sscanf`` (versioned ``GLIBC_2.38``) and nothing else newer than
glibc 2.34. On glibc 2.35-2.37 (Debian 12, Ubuntu 22.04, Hugging Face Spaces images) ``dlopen`` refuses them.
The C23 variants differ from the classic functions only in accepting ``0b`` binary literals, which llama.cpp
never parses, so on those machines we load a patched copy (cached under ``cache_root()/llamacpp-lib``): each
``__isoc23_X`` import is renamed to the classic ``X`` (its name string is the suffix of the C23 one) and bound
unversioned, and the then-unused ``GLIBC_2.38`` requirement is marked weak. Anything else the patch cannot
explain (another glibc 2.38 symbol, a non-x86-64 ELF) is refused with the reason, never patched blindly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGE = "llama_cpp_py_sync"
_C23 = "__isoc23_"
_C23_OK = {"strtol", "strtoul", "strtoll", "strtoull", "sscanf", "vsscanf", "fscanf", "vfscanf", "scanf", "vscanf"}
_NEW_GLIBC = "GLIBC_2.38"
_PATCH_VERSION = 1  # bump when the patch changes, so cached copies are rebuilt


class LlamaCppUnavailable(RuntimeError):
    """The llama.cpp library cannot be used on this machine; the message says why."""


class Native:
    """The loaded library: ``ffi`` (the package's cdefs) and ``lib``; recent llama.cpp log lines for errors."""

    def __init__(self, ffi: Any, lib: Any, path: Path):
        self.ffi, self.lib, self.path = ffi, lib, path
        self.messages: deque[str] = deque(maxlen=40)  # llama.cpp's warnings and errors, newest last
        self._lock = threading.Lock()

        # llama.cpp logs every tensor at INFO to stderr; keep warnings and errors for error messages instead.
        @ffi.callback("void(enum ggml_log_level, const char *, void *)")
        def _log(level: int, text: Any, _user: Any) -> None:
            if level >= 3 and text != ffi.NULL:  # WARN, ERROR
                with self._lock:
                    self.messages.append(ffi.string(text).decode("utf-8", "replace").rstrip())

        self._log_cb = _log  # must outlive every call into the library
        lib.llama_log_set(_log, ffi.NULL)
        lib.llama_backend_init()

    def last_error(self) -> str:
        with self._lock:
            errors = [m for m in self.messages if m]
        return errors[-1] if errors else "no message from llama.cpp"


_native: Native | None = None
_failure: str | None = None
_load_lock = threading.Lock()


def native() -> Native:
    """The library, loaded on first use (raises ``LlamaCppUnavailable`` with the reason)."""
    global _native, _failure
    with _load_lock:
        if _native is not None:
            return _native
        if _failure is not None:
            raise LlamaCppUnavailable(_failure)
        try:
            _native = _load()
        except LlamaCppUnavailable as e:
            _failure = str(e)
            raise
        return _native


def unavailable_reason() -> str | None:
    """None when llama.cpp loads here, else why not (for ``--engine auto`` and test skips)."""
    try:
        native()
    except LlamaCppUnavailable as e:
        return str(e)
    return None


def _load() -> Native:
    try:
        from llama_cpp_py_sync import _cffi_bindings as bindings
    except ImportError as e:
        raise LlamaCppUnavailable(f"the package llama-cpp-py-sync is not installed ({e})") from e
    ffi = bindings.get_ffi()
    pkg_dir = Path(bindings.__file__).resolve().parent
    first = pkg_dir / "libllama.so"
    try:
        return Native(ffi, ffi.dlopen(str(first)), first)
    except OSError as e:
        if _NEW_GLIBC not in str(e):
            raise LlamaCppUnavailable(f"cannot load {first}: {e}") from e
        log.info("llama.cpp wheel needs %s; loading a copy with the C23 imports bound to the classic ones", _NEW_GLIBC)
    patched = _patched_copy(pkg_dir)
    try:
        return Native(ffi, ffi.dlopen(str(patched / "libllama.so")), patched / "libllama.so")
    except OSError as e:
        raise LlamaCppUnavailable(f"cannot load the glibc-compatible copy {patched}: {e}") from e


def _patched_copy(pkg_dir: Path) -> Path:
    """The package's libraries, patched for glibc < 2.38, built once per package version (atomic publish)."""
    from .models import cache_root

    libs = sorted(p for p in pkg_dir.iterdir() if p.name.startswith("lib") and ".so" in p.name and "mtmd" not in p.name)
    stamp = hashlib.sha256("\0".join(f"{p.name}:{p.stat().st_size}" for p in libs).encode()).hexdigest()[:12]
    target = cache_root() / "llamacpp-lib" / f"v{_PATCH_VERSION}-{stamp}"
    if (target / "libllama.so").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".patch-", dir=target.parent))
    try:
        for src in libs:
            data = bytearray(src.read_bytes())
            patch_glibc_c23(data, src.name)
            (tmp / src.name).write_bytes(bytes(data))
        try:
            tmp.rename(target)
        except OSError:  # another process published it first
            if not (target / "libllama.so").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def patch_glibc_c23(elf: bytearray, label: str = "library") -> list[str]:
    """Bind a little-endian x86-64 ELF's ``__isoc23_*`` imports to the classic functions (in place); returns them.

    Raises ``LlamaCppUnavailable`` when the file needs glibc 2.38 for anything else.
    """
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1 or struct.unpack_from("<H", elf, 18)[0] != 62:
        raise LlamaCppUnavailable(f"{label}: not a little-endian x86-64 ELF file; cannot adapt it to this glibc")
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    by_type = {s[1]: s for s in sections}
    dynsym, versym, verneed = by_type.get(11), by_type.get(0x6FFFFFFF), by_type.get(0x6FFFFFFE)
    if dynsym is None or versym is None or verneed is None:
        return []
    strtab = sections[dynsym[6]][4]

    def name_at(offset: int) -> str:
        start = strtab + offset
        return elf[start:elf.index(0, start)].decode("ascii", "replace")

    changed = []
    count = dynsym[5] // 24
    for i in range(count):
        at = dynsym[4] + i * 24
        st_name, shndx = struct.unpack_from("<I", elf, at)[0], struct.unpack_from("<H", elf, at + 6)[0]
        name = name_at(st_name)
        if name.startswith(_C23) and shndx == 0 and name[len(_C23):] in _C23_OK:
            struct.pack_into("<I", elf, at, st_name + len(_C23))  # "__isoc23_strtol" + 9 is "strtol"
            struct.pack_into("<H", elf, versym[4] + 2 * i, 1)  # VER_NDX_GLOBAL: bind to the default version
            changed.append(name)
    in_use = {struct.unpack_from("<H", elf, versym[4] + 2 * i)[0] & 0x7FFF for i in range(count)}
    entry = verneed[4]
    for _ in range(verneed[7]):  # sh_info: the number of Verneed entries
        _, vn_cnt, _, vn_aux, vn_next = struct.unpack_from("<HHIII", elf, entry)
        aux = entry + vn_aux
        for _ in range(vn_cnt):
            _, flags, index, vna_name, vna_next = struct.unpack_from("<IHHII", elf, aux)
            if name_at(vna_name) == _NEW_GLIBC:
                if index in in_use:
                    raise LlamaCppUnavailable(f"{label} needs glibc 2.38 (this machine has {_glibc()}) for more "
                                              "than the C23 scanf/strtol family; upgrade the OS or build llama.cpp")
                struct.pack_into("<H", elf, aux + 4, flags | 0x2)  # VER_FLG_WEAK: a missing version is no error
            if not vna_next:
                break
            aux += vna_next
        if not vn_next:
            break
        entry += vn_next
    return changed


def _glibc() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or "an older glibc"
    except (ValueError, OSError):
        return "an older glibc"
