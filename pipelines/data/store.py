"""The run's durable state: one SQLite file (WAL, synchronous=FULL) under the output folder.

Every translated row and every response is committed as soon as it is finished, under a primary key
(row id, language, model/translator, prompt hash), so a crash loses at most the requests in flight and a rerun
skips what is already there. No secret is ever stored here (error texts are redacted before insert).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
  row_id TEXT NOT NULL, lang TEXT NOT NULL, translator TEXT NOT NULL, src_hash TEXT NOT NULL,
  instruction TEXT NOT NULL, input TEXT NOT NULL, untranslated INTEGER NOT NULL DEFAULT 0,
  note TEXT, created REAL NOT NULL,
  PRIMARY KEY (row_id, lang, translator, src_hash));
CREATE TABLE IF NOT EXISTS responses (
  row_id TEXT NOT NULL, lang TEXT NOT NULL, model TEXT NOT NULL, prompt_hash TEXT NOT NULL,
  prompt TEXT NOT NULL, response TEXT NOT NULL, finish_reason TEXT,
  prompt_tokens INTEGER, completion_tokens INTEGER, via TEXT NOT NULL, created REAL NOT NULL,
  PRIMARY KEY (row_id, lang, model, prompt_hash));
CREATE TABLE IF NOT EXISTS failures (
  step TEXT NOT NULL, row_id TEXT NOT NULL, lang TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER,
  created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, model TEXT NOT NULL, input_file_id TEXT, status TEXT NOT NULL,
  n_requests INTEGER, ingested INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
  row_id TEXT NOT NULL, lang TEXT NOT NULL, kept INTEGER NOT NULL, reason TEXT NOT NULL, detected TEXT,
  PRIMARY KEY (row_id, lang));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """Thread-safe wrapper over one SQLite connection (the respond step commits from a writer thread)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns, even across power loss, not just a killed process.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- translations
    def add_translations(self, items: list[dict[str, Any]]) -> None:
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO translations VALUES (:row_id, :lang, :translator, :src_hash, :instruction,"
                " :input, :untranslated, :note, :created)",
                [{"note": None, "untranslated": 0, **it, "created": now} for it in items],
            )

    def translation_keys(self, translator: str) -> set[tuple[str, str, str]]:
        rows = self.query("SELECT row_id, lang, src_hash FROM translations WHERE translator = ?", (translator,))
        return {tuple(r) for r in rows}

    def translations(self, translator: str, lang: str) -> dict[str, dict[str, Any]]:
        """row_id -> latest translation for this translator and language."""
        rows = self.query(
            "SELECT row_id, src_hash, instruction, input, untranslated FROM translations"
            " WHERE translator = ? AND lang = ? ORDER BY created",
            (translator, lang),
        )
        return {r[0]: {"src_hash": r[1], "instruction": r[2], "input": r[3], "untranslated": bool(r[4])} for r in rows}

    # -- responses
    def add_responses(self, items: list[dict[str, Any]]) -> int:
        """Insert finished responses; an item already present is ignored (never duplicated)."""
        now = time.time()
        with self._tx() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO responses VALUES (:row_id, :lang, :model, :prompt_hash, :prompt, :response,"
                " :finish_reason, :prompt_tokens, :completion_tokens, :via, :created)",
                [{"finish_reason": None, "prompt_tokens": None, "completion_tokens": None, "via": "online",
                  **it, "created": now} for it in items],
            )
            return c.total_changes - before

    def response_keys(self, model: str) -> set[tuple[str, str, str]]:
        rows = self.query("SELECT row_id, lang, prompt_hash FROM responses WHERE model = ?", (model,))
        return {tuple(r) for r in rows}

    def responses(self, model: str, lang: str) -> list[dict[str, Any]]:
        cols = ("row_id", "prompt_hash", "prompt", "response", "finish_reason", "prompt_tokens", "completion_tokens")
        rows = self.query(
            f"SELECT {', '.join(cols)} FROM responses WHERE model = ? AND lang = ? ORDER BY created, row_id",
            (model, lang),
        )
        return [dict(zip(cols, r)) for r in rows]

    # -- failures, batches, decisions, meta
    def add_failure(self, step: str, row_id: str, lang: str, error: str, attempts: int) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)", (step, row_id, lang, error[:2000], attempts, time.time()))

    def set_batch(self, batch_id: str, model: str, input_file_id: str | None, status: str, n: int | None = None,
                  ingested: bool = False) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(batch_id) DO UPDATE SET"
                " status = excluded.status, ingested = excluded.ingested",
                (batch_id, model, input_file_id, status, n, int(ingested), time.time()),
            )

    def open_batches(self, model: str) -> list[str]:
        return [r[0] for r in self.query("SELECT batch_id FROM batches WHERE model = ? AND ingested = 0", (model,))]

    def replace_decisions(self, lang: str, items: list[tuple[str, bool, str, str | None]]) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM decisions WHERE lang = ?", (lang,))
            c.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?)", [(r, lang, int(k), why, d) for r, k, why, d in items])

    def decisions(self, lang: str) -> dict[str, tuple[bool, str, str | None]]:
        rows = self.query("SELECT row_id, kept, reason, detected FROM decisions WHERE lang = ?", (lang,))
        return {r[0]: (bool(r[1]), r[2], r[3]) for r in rows}

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default
