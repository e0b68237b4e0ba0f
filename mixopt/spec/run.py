"""Spec sections about running the job: validation at scale, resources, tracking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mixopt.errors import MixoptError
from mixopt.spec.proxy import ProxySpec
from mixopt.spec.section import Section

if TYPE_CHECKING:
    from mixopt.job import JobDir
    from mixopt.runners.base import Runner
    from mixopt.tracking.base import Tracker

SCALE_UP = 4.0  # validation at scale: at least this many times the search proxy's N and D

Baseline = Literal["uniform", "natural", "best_trial", "doremi", "aioli"]
ONLINE_BASELINES: tuple[Baseline, ...] = ("doremi", "aioli")  # mixopt.search.online runs them
DEFAULT_BASELINES: tuple[Baseline, ...] = ("uniform", "natural", "best_trial")


class DoremiSpec(Section):
    """DoReMi as a validated baseline (``validate.baselines: [..., doremi]``): a reference proxy
    on ``reference``, then a Group-DRO proxy whose domain weights follow its excess loss over
    the reference (exponentiated-gradient steps of ``step_size``, mixed with ``smoothing`` of
    uniform); the average weights are its mixture. Both train at the search proxy's size."""

    reference: Literal["natural", "uniform"] = Field(
        "natural", description="The reference proxy's mixture."
    )
    step_size: float = Field(1.0, gt=0, le=100, description="Domain-weight step size.")
    smoothing: float = Field(1e-3, ge=0, lt=1, description="Mixed-in share of uniform.")


class AioliSpec(Section):
    """Aioli as a validated baseline (``validate.baselines: [..., aioli]``): training in
    ``rounds``; each round estimates the linear mixing law's interactions from short sweeps
    (``sweep_steps`` steps, ``delta`` of extra weight on one domain, rolled back), moves the
    proportions by an exponentiated-gradient step of ``eta`` (mixed with ``smoothing`` of
    uniform) and trains the round on them. Its output is a schedule, validated as one."""

    initial: Literal["natural", "uniform"] = Field(
        "uniform", description="The proportions of the first round."
    )
    rounds: int = Field(4, ge=1, le=64, description="Rounds (one mixture each).")
    sweep_steps: int = Field(4, ge=1, le=10_000, description="Steps of each sweep.")
    delta: float = Field(0.5, gt=0, le=1, description="Extra weight a sweep puts on a domain.")
    eta: float = Field(1.0, ge=0, le=100, description="Proportion step size (1/nats).")
    smoothing: float = Field(0.05, ge=0, lt=1, description="Mixed-in share of uniform.")


class ValidateSpec(Section):
    """After the search: train the recommendation next to baselines, at a larger scale.

    ``preset``, ``train_tokens`` and ``overrides`` replace the search proxy's for validation
    trials (a bigger model on more tokens is the evidence a team needs before a large run);
    left unset, validation uses the search proxy.
    """

    enabled: bool = True
    baselines: list[Baseline] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    current: dict[str, float] | None = Field(
        None, description="The team's current mixture, validated as a baseline too."
    )
    seeds: int = Field(2, ge=1, le=16, description="Seeds per validated mixture (the spread).")
    preset: str | None = Field(None, description="Validation proxy preset (e.g. 1m, 5m).")
    train_tokens: int | None = Field(None, gt=0, description="Validation training tokens.")
    overrides: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="Model fields of the validation proxy."
    )
    lr: float | None = Field(
        None,
        gt=0,
        description="Validation learning rate (default: the search proxy's, carried to the "
        "validation proxy's size and tokens by the Step Law).",
    )
    path: int = Field(
        1,
        ge=0,
        le=9,
        description="Mixtures validated on the way from the recommendation to the natural "
        "mixture (1, the default: halfway; 0: none), so validation at scale chooses how far to "
        "shrink toward the prior (a proxy's optimum often over-exploits its own scale).",
    )
    choose: Literal["validated", "search"] = Field(
        "validated",
        description="'validated': a validated mixture that beats the search's recommendation "
        "at the validation scale (paired interval excluding zero, guard rails held) becomes the "
        "recommendation, the search's kept as search_choice; 'search': keep the search's.",
    )
    doremi: DoremiSpec = Field(
        default_factory=DoremiSpec, description="DoReMi's settings, when it is a baseline."
    )
    aioli: AioliSpec = Field(
        default_factory=AioliSpec, description="Aioli's settings, when it is a baseline."
    )
    scale: Literal["auto", "search"] = Field(
        "auto",
        description="Where to validate when preset and train_tokens are not given: 'auto' at a "
        f"larger proxy (>= {SCALE_UP:g}x the search proxy's non-embedding parameters and tokens, "
        "or the top of the search ladder when that is larger); 'search' at the search proxy.",
    )

    def proxy(self, search_proxy: ProxySpec, ladder_top: ProxySpec | None = None) -> ProxySpec:
        """The proxy validation trials train: the search proxy with these replacements, or (by
        default) a larger one."""
        update: dict[str, Any] = {}
        if self.preset is not None:
            update["preset"] = self.preset
        if self.train_tokens is not None:
            update["train_tokens"] = self.train_tokens
        if self.overrides:
            update["overrides"] = {**search_proxy.overrides, **self.overrides}
        chosen = search_proxy.replace(**update) if update else search_proxy
        if not update and self.scale == "auto":
            chosen = search_proxy.scaled_up(SCALE_UP)
            if ladder_top is not None and ladder_top.size() > chosen.size():
                chosen = ladder_top
        # validation compares final losses: no evaluations along the way
        chosen = chosen.replace(eval_every=0) if chosen.eval_every else chosen
        if self.lr is not None:
            return chosen.replace(lr=self.lr)
        return chosen.with_lr_from(search_proxy)

    def mixtures(self) -> int:
        """Mixtures validated: the recommendation, the baselines and the team's current one."""
        return 1 + len(self.baselines) + (self.current is not None)


class ResourcesSpec(Section):
    """Where trials run."""

    max_concurrent_trials: int = Field(2, ge=1, le=4096)
    cpus_per_trial: float = Field(1.0, gt=0, le=1024)
    gpus_per_trial: float = Field(0.0, ge=0, le=64)
    ray_address: str | None = Field(None, description="Join this Ray cluster; local if unset.")
    max_retries: int = Field(1, ge=0, le=100)

    def build_runner(self, kind: str = "ray") -> Runner:
        """The runner trials go to: ``ray`` (a local cluster, or ``ray_address``'s) or
        ``local`` (in this process, one at a time)."""
        if kind == "local":
            from mixopt.runners.local import InProcessRunner

            return InProcessRunner()
        if kind == "ray":
            from mixopt.runners.ray_runner import RayRunner

            return RayRunner(
                address=self.ray_address,
                cpus_per_trial=self.cpus_per_trial,
                gpus_per_trial=self.gpus_per_trial,
            )
        raise MixoptError(f"unknown runner {kind!r}; available: local, ray")


class TrackingSpec(Section):
    """MLflow: SQLite in the job directory unless a tracking URI is given."""

    enabled: bool = True
    mlflow_uri: str | None = None
    experiment: str = "mixopt"

    def build_tracker(self, job_dir: JobDir, **retry: Any) -> Tracker:
        """MLflow (SQLite in the job directory unless ``mlflow_uri``), wrapped so that tracking
        failures are retried, reported in the job's log and never stop the job; ``retry``
        overrides :class:`~mixopt.tracking.retry.RetryingTracker`'s settings. Disabled: the null
        tracker."""
        from mixopt.tracking.base import Tracker

        if not self.enabled:
            return Tracker()
        from mixopt.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri, is_remote
        from mixopt.tracking.retry import RetryingTracker

        uri = self.mlflow_uri or default_tracking_uri(job_dir.mlflow_db)
        # a remote server keeps artifacts where it is configured to; local stores keep them here
        artifacts = None if is_remote(uri) else job_dir.artifacts_dir
        inner = MlflowTracker(uri, self.experiment, artifact_dir=artifacts)
        return RetryingTracker(inner, **{"report": job_dir.log, **retry})
