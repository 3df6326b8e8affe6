"""What the tabs share: settings, the generation engine's catalog, the store, the accounts. Built once per app."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine as DBEngine

from bactrian.engine import Engine
from bactrian.service import GenerationService, LocalService

from eval_studio.auth import USERS_ENV, User, load_users
from eval_studio.ratelimit import RateLimiter
from eval_studio.settings import Settings
from eval_studio.store.db import open_store
from eval_studio.store.tasks import configure_task, list_tasks
from eval_studio.ui.catalog import Catalog

log = logging.getLogger(__name__)
DEMO_SET = "demo"


@dataclass
class StudioContext:
    settings: Settings
    catalog: Catalog
    db: DBEngine
    users: dict[str, User]
    background: list[threading.Thread] = field(default_factory=list)
    limiter: RateLimiter | None = None  # None: built from the settings' rate limits
    backup: object | None = None  # the running eval_studio.space StoreBackup, when BACTRIAN_BACKUP_REPO is set

    def __post_init__(self) -> None:
        if self.limiter is None:
            s = self.settings
            self.limiter = RateLimiter({"generate": (s.rate_generate, s.rate_generate_global),
                                        "vote": (s.rate_vote, s.rate_vote_global),
                                        "login": (s.rate_login, s.rate_login_global)})

    @property
    def service(self) -> GenerationService:
        return self.catalog.service

    @property
    def demo_note(self) -> bool:
        """Whether Chat says these are small demo models: set in the settings, else when the studio runs one of the
        embedded bases itself (a remote engine or a real base needs no apology)."""
        if self.settings.demo_note is not None:
            return self.settings.demo_note
        from bactrian.models import embedded_specs

        return isinstance(self.service, LocalService) and self.service.base_name in embedded_specs()


def open_service(settings: Settings) -> GenerationService:
    """The studio's engine: a remote OpenAI-compatible server when ``engine_url`` is set, else the local model
    (``settings.engine``: llama.cpp or torch)."""
    if settings.engine_url:
        from bactrian.remote import RemoteService

        return RemoteService(settings.engine_url, api_key_env=settings.engine_api_key_env)
    from bactrian.llamacpp import open_local_service

    # BACTRIAN_ENGINE: llama.cpp (the CPU fast path) for an embedded base on the CPU, else the torch engine
    return open_local_service(settings.engine, settings.base, list(settings.adapters_dirs),
                              include_default_dirs=settings.include_default_adapters, device=settings.device,
                              dtype=settings.dtype, max_rows=settings.max_rows, max_queue=settings.max_queue)


def create_context(settings: Settings, service: GenerationService | Engine | None = None, hf_api=None) -> StudioContext:
    """Start the engine (unless given), open and migrate the store, register variants, seed the demo task, and
    with ``backup_repo`` restore an empty store from its backup and schedule backups.

    An ``Engine`` given directly (tests, notebooks) is served through its own ``LocalService``; ``hf_api`` (tests)
    stands in for huggingface_hub's ``HfApi`` in the backup."""
    users = load_users(settings.users_file, env={USERS_ENV: settings.users_text} if settings.users_text else {})
    if settings.backup_repo and settings.db_url:  # a new Space (or one without persistent storage): last backup
        from eval_studio.space import restore_database

        restore_database(settings.db_url, settings.backup_repo, hf_api)
    db = open_store(settings.db_url)
    if service is None:
        service = open_service(settings)
    elif isinstance(service, Engine):
        service = LocalService(service, max_rows=settings.max_rows, max_queue=settings.max_queue)
    catalog = Catalog(service, settings.external_models, settings.battle_external)
    ctx = StudioContext(settings, catalog, db, users)
    configure_task(db, settings.task, overlap=settings.overlap)
    seed_demo_questions(ctx)
    seed_bench_results(ctx)
    if settings.backup_repo:
        ctx.backup = start_backup(ctx, hf_api)
    return ctx


def start_backup(ctx: StudioContext, hf_api=None):
    """Back the store up to ``backup_repo`` every ``backup_minutes`` (huggingface_hub's CommitScheduler); the
    folder it uploads sits next to the data (persistent folder, else ``BACTRIAN_HOME``)."""
    from bactrian import settings as bsettings
    from eval_studio.space import start_backup as schedule
    from eval_studio.store.db import default_url

    s = ctx.settings
    folder = Path(s.persistent_dir) if s.persistent_dir else bsettings.home()
    return schedule(ctx.db, s.db_url or default_url(), folder / "backup", s.backup_repo, s.backup_minutes, hf_api)


def seed_bench_results(ctx: StudioContext) -> None:
    """Ingest the configured benchmark results so the Leaderboard shows them; a bad file is logged, never fatal."""
    from eval_studio.store.bench import ingest_bench_file
    from eval_studio.store.repo import StoreError

    files: list[Path] = []
    for entry in map(Path, ctx.settings.bench_results):
        if entry.is_dir():
            files += sorted(entry.glob("*.json"))
        elif entry.is_file():
            files.append(entry)
        else:
            log.warning("benchmark results %s: no such file or folder", entry)
    for path in files:
        try:
            added, _ = ingest_bench_file(ctx.db, path)
        except StoreError as e:  # e.g. a value that differs from the one stored for the same run
            log.warning("benchmark results not ingested: %s", e)
        else:
            if added:
                log.info("benchmark results %s: %d metrics added", path.name, added)


def seed_demo_questions(ctx: StudioContext) -> None:
    """Import the offline question set and, in the background, answer a few of its questions with two local models."""
    from eval_studio.io import import_question_file
    from eval_studio.ui.pairgen import generate_in_background

    s = ctx.settings
    if not s.questions_file or not Path(s.questions_file).is_file():
        return
    import_question_file(ctx.db, s.questions_file, name=DEMO_SET)
    pairs = next((t["pairs"] for t in list_tasks(ctx.db) if t["name"] == s.task), 0)
    local = [v.name for v in ctx.catalog.variants.values() if v.kind != "external"]
    if s.pregenerate > pairs and len(local) >= 2:  # each question's pair fits its language (pairs_for_language)
        ctx.background.append(generate_in_background(
            ctx.catalog, ctx.db, set_name=DEMO_SET, task=s.task, count=s.pregenerate - pairs, overlap=s.overlap))
