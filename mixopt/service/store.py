"""The jobs table: every job the service knows, in SQLite by default or any SQLAlchemy database.

One row per job: who owns it, its state (``queued → running → completed | failed | cancelled``),
the resolved spec, where its folder is, which process runs it (host + pid) and the progress last
seen. State changes that two servers (or a server and a request) could race on are
compare-and-set updates (:meth:`JobStore.transition`), so a shared database never starts a job
twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlalchemy as sa

STATES = ("queued", "running", "completed", "failed", "cancelled")
ACTIVE = ("queued", "running")
FINAL = ("completed", "failed", "cancelled")

metadata = sa.MetaData()
jobs_table = sa.Table(
    "mixopt_jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("command", sa.String(16), nullable=False),  # what to launch next: run | resume
    sa.Column("runner", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("folder", sa.String(4096), nullable=False),
    sa.Column("job_dir", sa.String(4096), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("trials_total", sa.Integer, nullable=False),
    sa.Column("trials_completed", sa.Integer, nullable=False, default=0),
    sa.Column("trials_failed", sa.Integer, nullable=False, default=0),
    sa.Column("best_objective", sa.Float, nullable=True),
    sa.Column("stage", sa.String(256), nullable=True),
    sa.Column("host", sa.String(256), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("resumes", sa.Integer, nullable=False, default=0),
    sa.Column("cancel_requested", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("started", sa.Float, nullable=True),
    sa.Column("finished", sa.Float, nullable=True),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Index("ix_mixopt_jobs_owner_created", "owner", "created"),
    sa.Index("ix_mixopt_jobs_state", "state"),
)


@dataclass
class JobRecord:
    id: str
    owner: str
    name: str
    state: str
    command: str
    runner: str
    spec: str
    folder: str
    job_dir: str
    direction: str
    trials_total: int
    created: float
    updated: float
    trials_completed: int = 0
    trials_failed: int = 0
    best_objective: float | None = None
    stage: str | None = None
    host: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    resumes: int = 0
    cancel_requested: float | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        mapping = row._mapping
        return cls(**{f.name: mapping[f.name] for f in fields(cls)})

    def as_row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite gets its folder created, WAL and a busy timeout."""
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


class JobStore:
    """Jobs in a database; every method is one short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def add(self, record: JobRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs_table.insert().values(**record.as_row()))

    def get(self, job_id: str, owner: str | None = None) -> JobRecord | None:
        query = sa.select(jobs_table).where(jobs_table.c.id == job_id)
        if owner is not None:
            query = query.where(jobs_table.c.owner == owner)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else JobRecord.from_row(row)

    def list_jobs(
        self,
        *,
        owner: str | None = None,
        states: tuple[str, ...] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and how many match in total."""
        where = []
        if owner is not None:
            where.append(jobs_table.c.owner == owner)
        if states:
            where.append(jobs_table.c.state.in_(states))
        query = sa.select(jobs_table).where(*where)
        query = query.order_by(jobs_table.c.created.desc(), jobs_table.c.id).limit(limit)
        count = sa.select(sa.func.count()).select_from(jobs_table).where(*where)
        with self.engine.connect() as conn:
            rows = conn.execute(query.offset(offset)).all()
            total = conn.execute(count).scalar_one()
        return [JobRecord.from_row(r) for r in rows], int(total)

    def update(self, job_id: str, **values: Any) -> None:
        values.setdefault("updated", time.time())
        with self.engine.begin() as conn:
            conn.execute(jobs_table.update().where(jobs_table.c.id == job_id).values(**values))

    def transition(self, job_id: str, from_states: tuple[str, ...], **values: Any) -> bool:
        """Update the job only if it is in one of ``from_states``; True when it was."""
        values.setdefault("updated", time.time())
        query = (
            jobs_table.update()
            .where(jobs_table.c.id == job_id, jobs_table.c.state.in_(from_states))
            .values(**values)
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def active(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first (the order queued jobs start in)."""
        query = (
            sa.select(jobs_table)
            .where(jobs_table.c.state.in_(ACTIVE))
            .order_by(jobs_table.c.created, jobs_table.c.id)
        )
        with self.engine.connect() as conn:
            return [JobRecord.from_row(r) for r in conn.execute(query).all()]
