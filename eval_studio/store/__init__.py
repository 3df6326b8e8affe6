"""The studio's database: SQLAlchemy models, engine/session helpers, Alembic migrations, repository API.

Where things are:
- ``db``: ``open_store(url)`` (engine + migrate to head; call once at start-up), ``make_engine``, ``default_url``,
  ``transaction(engine)`` (commit or roll back; a write lock on SQLite), ``read_session(engine)``.
- ``repo``: annotators, model variants (recorded at start), conversations/turns, ``record_battle``, ``record_vote``.
- ``tasks``: annotation tasks and pairs: ``import_pairs``, ``list_pairs``, ``next_pair_for`` (overlap k, no
  repeats), ``vote_on_assignment``, ``skip_assignment``, ``progress_for``; question sets.
- ``judging``: judge runs, judgments, cache and the token/cost ledger (used by ``eval_studio.judge``).
- ``bench``: ingest ``bactrian bench`` result files. ``battles``: ``load_battles`` (the battle table).
"""

from eval_studio.store.db import default_url, make_engine, open_store, read_session, transaction
from eval_studio.store.migrate import upgrade_to_head

__all__ = ["default_url", "make_engine", "open_store", "read_session", "transaction", "upgrade_to_head"]
