"""Alembic migrations shipped inside the package, configured in code (no alembic.ini).

``upgrade_to_head`` is called at start-up; ``bactrian studio migrate`` runs it explicitly.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from eval_studio.store.db import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _engine(target: Engine | str | None) -> tuple[Engine, bool]:
    if isinstance(target, Engine):
        return target, False
    return make_engine(target), True


def upgrade_to_head(target: Engine | str | None = None) -> str:
    """Migrate the database at ``target`` (an engine or URL) to the newest revision; returns that revision."""
    engine, owned = _engine(target)
    cfg = alembic_config()
    try:
        # One write transaction: concurrent start-ups serialise on SQLite instead of racing the DDL.
        with engine.execution_options(sqlite_immediate=True).begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return current_revision(engine) or ""
    finally:
        if owned:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations shipped"
    return head
