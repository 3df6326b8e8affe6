"""What a run has finished: ``<workdir>/run_state.json``, one entry per stage (the digest of its inputs, the digest
of its output, a summary), rewritten atomically after each stage; plus content digests and the folder lock.

A stage is current when its recorded input digest equals the one computed now and its output still has the
recorded digest, so a rerun after ``kill -9`` skips what was finished and redoes what was not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

STATE_FILE = "run_state.json"


def digest(obj: Any) -> str:
    """sha256 of canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def files_digest(root: Path, files: Iterable[Path]) -> str:
    """sha256 over each file's path (relative to ``root``) and bytes, in path order."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def tree_digest(root: Path, skip_names: tuple[str, ...] = ()) -> str | None:
    """Every file under ``root`` except those named in ``skip_names``; None when ``root`` is absent."""
    if not root.is_dir():
        return None
    return files_digest(root, [f for f in root.rglob("*") if f.is_file() and f.name not in skip_names])


class State:
    def __init__(self, workdir: Path):
        self.path = workdir / STATE_FILE
        data = json.loads(self.path.read_text("utf-8")) if self.path.is_file() else {}
        self.stages: dict[str, dict[str, Any]] = data.get("stages", {})

    def current(self, stage: str, inputs: str) -> str | None:
        """The recorded output digest when ``stage`` finished with these inputs, else None."""
        rec = self.stages.get(stage)
        return rec["output"] if rec and rec.get("inputs") == inputs else None

    def record(self, stage: str, inputs: str, output: str, summary: dict[str, Any], seconds: float) -> None:
        self.stages[stage] = {"inputs": inputs, "output": output, "seconds": round(seconds, 2),
                              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps({"stages": self.stages}, indent=1, ensure_ascii=False, default=str), "utf-8")
        os.replace(tmp, self.path)  # the file is the old state or the new one, never half of one


@contextlib.contextmanager
def locked(workdir: Path) -> Iterator[None]:
    """One run per folder at a time. The lock dies with its process, so a killed run never blocks the next."""
    import fcntl

    from .recipe import RunError

    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".run.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"another `bactrian run` is working in {workdir}") from None
        yield
