"""The API's response models (what ``/openapi.json`` documents)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# the API's job states (a job's own JobStatus maps into them: mixopt.job.JobStatus.service_state)
JobState = Literal["queued", "running", "completed", "failed", "cancelled"]
FINAL_STATES: tuple[JobState, ...] = ("completed", "failed", "cancelled")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class ErrorOut(BaseModel):
    detail: str = Field(description="What is wrong, naming the field or the job.")


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    name: str
    owner: str
    state: JobState
    stage: str | None = Field(None, description="What the job is doing (from its job.json).")
    trials_completed: int
    trials_failed: int
    trials_total: int
    progress: float = Field(description="Finished trials / expected trials, 0 to 1.")
    best_objective: float | None = Field(None, description="Best search objective so far.")
    eta_s: float | None = Field(None, description="Seconds left at the pace so far.")
    created: str
    started: str | None = None
    finished: str | None = None
    updated: str
    elapsed_s: float | None = None
    resumes: int = Field(description="Automatic resumes after the job's process was lost.")
    cancel_requested: bool = False
    error: str | None = None
    job_dir: str


class JobList(BaseModel):
    jobs: list[JobOut]
    total: int = Field(description="Jobs matching the filter (all pages).")
    limit: int
    offset: int


class SpecCheck(BaseModel):
    """The answer to a dry-run submission: the spec is valid and allowed; nothing was run."""

    valid: Literal[True] = True
    name: str
    trials_total: int
    spec: dict[str, Any]
