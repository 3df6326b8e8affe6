"""Engine factory, sessions and transactional helpers.

SQLite (the default) gets WAL journaling, a busy timeout and foreign keys on every connection. pysqlite's own
implicit transaction handling is switched off so that write transactions start with ``BEGIN IMMEDIATE``:
a writer takes the lock up front (waiting up to the busy timeout) instead of failing with "database is
locked" when a deferred read transaction later tries to write. Read-only sessions use a plain ``BEGIN``,
so readers never block on WAL. Any other SQLAlchemy URL (e.g. ``postgresql+psycopg://...``) works unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

BUSY_TIMEOUT_MS = 30_000
DB_ENV = "BACTRIAN_DB"  # the one name the app, `bactrian studio` and `bactrian run` read (bactrian/settings.py)


def default_url() -> str:
    """``$BACTRIAN_DB`` if set (old name: ``$BACTRIAN_STUDIO_DB``), else ``sqlite:///$BACTRIAN_HOME/studio.db``."""
    from bactrian import settings

    return settings.get(DB_ENV) or f"sqlite:///{settings.home() / 'studio.db'}"


def _sqlite_events(engine: Engine, file_backed: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI objects
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        cur = dbapi_conn.cursor()
        if file_backed:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Create an engine for ``url`` (default: :func:`default_url`); creates the SQLite file's folder."""
    url = url or default_url()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    database = parsed.database or ""
    file_backed = database not in ("", ":memory:") and not database.startswith("file::memory:")
    if file_backed:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("timeout", BUSY_TIMEOUT_MS / 1000)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    _sqlite_events(engine, file_backed)
    return engine


def open_store(url: str | None = None) -> Engine:
    """Engine for ``url`` with the schema migrated to the newest revision (call once at start-up)."""
    from eval_studio.store.migrate import upgrade_to_head

    engine = make_engine(url)
    upgrade_to_head(engine)
    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any exception (a write lock on SQLite)."""
    bind = engine.execution_options(sqlite_immediate=True) if engine.dialect.name == "sqlite" else engine
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads; nothing it does is committed. Objects it loaded stay readable afterwards (detached)."""
    with Session(engine, expire_on_commit=False) as session:  # close() rolls back without expiring loaded objects
        yield session
