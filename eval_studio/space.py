"""What keeps a studio's data and people across restarts and reloads (a Hugging Face Space above all).

- ``persistent_dir``: where data survives a restart: ``BACTRIAN_PERSISTENT_DIR``, else a Space's persistent
  storage (``/data``, when the Space has it: the folder exists and is writable). Without ``BACTRIAN_DB`` the
  database lives there (``persistent_db_url``); a Space without it loses the file on every restart.
- ``SessionSigner``: a signed, expiring token of the signed-in user, kept in the browser (``gr.BrowserState``), so a
  page reload keeps a password sign-in. Gradio encrypts BrowserState with a key it sends to the page, so that is
  no protection against a forged value: the HMAC here is, and the user must still exist when it is read back.
- ``StoreBackup``: huggingface_hub's ``CommitScheduler`` over a folder that, before each scheduled commit, gets a
  fresh JSONL export of the votes, judgments, conversations and pairs and a consistent copy of the SQLite file;
  only files whose bytes changed are written (so uploaded). ``restore_database`` brings that copy back into an
  empty store at start (a Space without persistent storage, or a new one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bactrian import settings

log = logging.getLogger(__name__)
SPACE_DATA = Path("/data")  # Spaces mount persistent storage here
BACKUP_PREFIX = "studio"  # the folder of the dataset repo the backup writes
SESSION_DAYS = 30


def persistent_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """``BACTRIAN_PERSISTENT_DIR``, else ``/data`` on a Space that has persistent storage, else None."""
    chosen = settings.get("BACTRIAN_PERSISTENT_DIR", env)
    if chosen:
        return chosen
    on_space = bool(settings.get("SPACE_ID", env))
    if on_space and SPACE_DATA.is_dir() and os.access(SPACE_DATA, os.W_OK):
        return SPACE_DATA
    return None


def persistent_db_url(folder: Path) -> str:
    (folder / "bactrian").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'bactrian' / 'studio.db'}"


def session_secret(configured: str | None, folder: Path) -> bytes:
    """The configured key, else one made once and kept in ``folder/session.key`` (so a restart signs nobody out)."""
    if configured:
        return configured.encode("utf-8")
    path = folder / "session.key"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text("utf-8").strip().encode("utf-8")


class SessionSigner:
    """``token(name)`` -> an opaque string for the browser; ``name(token)`` -> the user name, or None when the token
    is forged, altered, expired or empty."""

    def __init__(self, secret: bytes, days: float = SESSION_DAYS):
        self.secret, self.seconds = secret, days * 86400

    def _mac(self, body: bytes) -> str:
        return hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def token(self, name: str, now: float | None = None) -> str:
        body = base64.urlsafe_b64encode(json.dumps({"u": name, "exp": (now or time.time()) + self.seconds}).encode())
        return f"{body.decode()}.{self._mac(body)}"

    def name(self, token: Any, now: float | None = None) -> str | None:
        if not isinstance(token, str) or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(body.encode())):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body.encode()))
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("exp", 0) < (now or time.time()):
            return None
        return data.get("u") if isinstance(data.get("u"), str) else None


def _sqlite_path(db_url: str) -> Path | None:
    return Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite:///") else None


def snapshot(db, db_url: str, folder: Path) -> list[Path]:
    """Write the backup files into ``folder``; returns those whose bytes changed (the rest are left untouched, so
    the scheduler does not upload them again)."""
    from eval_studio.io import export

    changed = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = export(db, "jsonl", Path(tmp) / "export")
        source = _sqlite_path(db_url)
        if source is not None and source.is_file():
            copy = Path(tmp) / "studio.db"
            with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
                src.backup(dst)  # a consistent copy even while the studio writes
            fresh.append(copy)
        folder.mkdir(parents=True, exist_ok=True)
        for path in fresh:
            target = folder / path.name
            if not target.is_file() or target.read_bytes() != path.read_bytes():
                shutil.copyfile(path, target)
                changed.append(target)
    return changed


def _scheduler_class():
    from huggingface_hub import CommitScheduler

    class StoreBackup(CommitScheduler):
        """Every ``every`` minutes: a fresh snapshot of the store into the folder, then the upload of what changed."""

        def __init__(self, db, db_url: str, folder: Path, repo_id: str, every: float, hf_api=None):
            self.db, self.db_url = db, db_url
            super().__init__(repo_id=repo_id, repo_type="dataset", folder_path=folder, path_in_repo=BACKUP_PREFIX,
                             every=every, private=True, hf_api=hf_api)

        def push_to_hub(self):
            with self.lock:
                snapshot(self.db, self.db_url, Path(self.folder_path))
            return super().push_to_hub()

    return StoreBackup


def start_backup(db, db_url: str, folder: Path, repo_id: str, minutes: float, hf_api=None):
    """Start the scheduled backup (the first commit runs at once, in the background); returns the scheduler."""
    return _scheduler_class()(db, db_url, folder, repo_id, minutes, hf_api=hf_api)


def restore_database(db_url: str, repo_id: str, hf_api=None) -> bool:
    """Before the store opens: when its SQLite file is missing or empty, fetch the last backed-up copy. False when
    there is nothing to restore (no backup yet, or a non-SQLite store); a failure is logged, never fatal."""
    target = _sqlite_path(db_url)
    if target is None or (target.is_file() and target.stat().st_size > 0):
        return False
    from huggingface_hub import HfApi

    api = hf_api or HfApi()
    try:
        path = api.hf_hub_download(repo_id=repo_id, filename=f"{BACKUP_PREFIX}/studio.db", repo_type="dataset")
    except Exception as e:  # noqa: BLE001 - no repo yet, no such file, no network: start empty
        log.info("no backup restored from %s: %s", repo_id, e)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    log.info("restored the studio database from the backup in %s", repo_id)
    return True
