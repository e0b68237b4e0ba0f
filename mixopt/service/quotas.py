"""Per-user quotas of a shared service: how many jobs a user may have queued or running at once,
and how many trials and proxy training tokens those jobs may plan in all.

A job that alone exceeds a quota can never run (403); one that would push its user over while
their other jobs are active waits for nothing: it is refused with 429, and may be submitted again
once a job has finished or been cancelled. The planned tokens are an upper bound: every search
trial at the largest search proxy's ``train_tokens``, every validation trial at the validation
proxy's.

Studies (ask/tell over REST, :mod:`mixopt.service.studies`) have limits of their own: how many
studies a user keeps (429 until they delete one), how many mixtures one ask may return (422),
and how many mixtures one study may hold (403: its file, and the time its lock is held, stay
bounded).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mixopt.errors import MixoptError

if TYPE_CHECKING:
    from mixopt.spec import JobSpec


class QuotaExceeded(MixoptError):
    """A job the user's quota does not allow; ``status``: 403 (never), 429 (not now)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Usage:
    """What a job plans (or what a user's active jobs plan together)."""

    jobs: int = 0
    trials: int = 0
    tokens: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.jobs + other.jobs, self.trials + other.trials, self.tokens + other.tokens)


def planned_usage(spec: JobSpec) -> Usage:
    """One job's trials (:func:`mixopt.job.planned_trials`) and an upper bound of its tokens."""
    from mixopt.job import planned_trials

    trials = planned_trials(spec)
    validation = spec.validate_.mixtures() * spec.validate_.seeds if spec.validate_.enabled else 0
    search_tokens = max(p.train_tokens for p in spec.fidelity_proxies())
    tokens = (trials - validation) * float(search_tokens)
    if validation:
        tokens += validation * float(spec.validation_proxy().train_tokens)
    return Usage(1, trials, tokens)


@dataclass(frozen=True)
class Quotas:
    """Per user, over their queued and running jobs."""

    max_active_jobs: int = 4
    max_trials: int = 5_000
    max_tokens: float = 1e12
    max_studies: int = 100  # studies a user keeps
    max_ask: int = 64  # mixtures one ask returns
    max_study_mixtures: int = 5_000  # mixtures one study holds

    def __post_init__(self) -> None:
        counts = (self.max_active_jobs, self.max_trials, self.max_studies, self.max_ask)
        if min(counts) < 1 or self.max_study_mixtures < 1 or not self.max_tokens >= 1:
            raise MixoptError(f"quotas must be positive, got {self}")

    def check_job(self, spec: JobSpec) -> Usage:
        """The job's usage; :class:`QuotaExceeded` (403) when it alone exceeds a quota."""
        usage = planned_usage(spec)
        if usage.trials > self.max_trials:
            raise QuotaExceeded(
                f"search/validate: the job plans {usage.trials} trials; this service allows "
                f"at most {self.max_trials} per user",
                403,
            )
        if usage.tokens > self.max_tokens:
            raise QuotaExceeded(
                f"proxy.train_tokens: the job plans up to {usage.tokens:.3g} proxy training "
                f"tokens; this service allows at most {self.max_tokens:.3g} per user",
                403,
            )
        return usage

    def check_user(self, spec: JobSpec, active: Usage) -> None:
        """:class:`QuotaExceeded` (429) when the job and the user's ``active`` jobs together
        exceed a quota."""
        total = active + self.check_job(spec)
        problems = []
        if total.jobs > self.max_active_jobs:
            problems.append(f"{total.jobs} active jobs (at most {self.max_active_jobs})")
        if total.trials > self.max_trials:
            problems.append(f"{total.trials} planned trials (at most {self.max_trials})")
        if total.tokens > self.max_tokens:
            problems.append(f"{total.tokens:.3g} planned tokens (at most {self.max_tokens:.3g})")
        if problems:
            raise QuotaExceeded(
                "quota: with this job you would have " + ", ".join(problems) + "; wait for a "
                "job to finish or cancel one",
                429,
            )

    def check_new_study(self, studies: int) -> None:
        """:class:`QuotaExceeded` (429) when a user who keeps ``studies`` may not add one."""
        if studies >= self.max_studies:
            raise QuotaExceeded(
                f"quota: you keep {studies} studies (at most {self.max_studies}); delete one "
                "(DELETE /studies/{id}) to create another",
                429,
            )

    def check_ask(self, n: int, mixtures: int) -> None:
        """``n`` more mixtures for a study that holds ``mixtures``: 422 over the per-ask limit,
        403 past the per-study one."""
        if n > self.max_ask:
            raise QuotaExceeded(f"n: at most {self.max_ask} mixtures per ask, got {n}", 422)
        if mixtures + n > self.max_study_mixtures:
            raise QuotaExceeded(
                f"study: it holds {mixtures} mixtures; this service allows at most "
                f"{self.max_study_mixtures} per study",
                403,
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quotas:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
