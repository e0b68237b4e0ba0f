"""The search loop: from a validated spec to a validated recommendation.

    data → initial design (Dirichlet) → trials → tell → [propose → trials → tell] × rounds
         → recommend → validate against baselines (larger proxy, several seeds)
         → recommendation.json

The driver owns all state: workers return result dicts and only this module writes the runs
table, the resumable state (``state.json``, after every trial event), the status file
(``job.json``) and MLflow. Search trials share one seed (common random numbers: the same
initialisation and data order for every mixture, so differences between trials come from the
mixture, not the seed); validation repeats each mixture over ``validate.seeds`` seeds.

Resuming (``resume=True``) replays the job against its saved state: trial ids are given in a
fixed order, so every trial created again finds its saved self; finished ones are kept, the
rest run again, saved rounds are not proposed again, and a saved recommendation is reused.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.data.caps import RepetitionCaps, apply_caps, caps_for_job, epochs_consumed
from mixopt.data.hierarchy import build_hierarchy, identity
from mixopt.errors import MixoptError
from mixopt.job_state import JobState, recommendation_from_dict, recommendation_to_dict
from mixopt.progress import Progress, Snapshot
from mixopt.proposers import Proposer, Recommendation, make_proposer
from mixopt.runners.base import Runner, RunnerEvent
from mixopt.runs_table import RUNS_FILE, trial_row, write_runs
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.spec import JobSpec, ProxySpec
from mixopt.tracking.base import Tracker
from mixopt.tracking.retry import RetryingTracker
from mixopt.trials import Stage, Trial, TrialRequest, TrialStatus
from mixopt.verdict import summarise, verdict

if TYPE_CHECKING:
    from mixopt.data import DataManifest

RECOMMENDATION_FILE = "recommendation.json"
SPEC_FILE = "spec.yaml"
STATUS_FILE = "job.json"
MANIFEST_FILE = "data_manifest.json"


class JobCancelled(Exception):
    """Raised in the driver (e.g. by a SIGTERM handler) to stop a job: its status 'cancelled'."""


@dataclass
class JobOutcome:
    job_dir: Path
    recommendation: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    wall_s: float = 0.0


def objective_value(metrics: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted sum of metrics; NaN if any is missing or not finite."""
    total = 0.0
    for name, weight in weights.items():
        value = metrics.get(name)
        if value is None or not np.isfinite(value):
            return float("nan")
        total += weight * float(value)
    return total


class SearchJob:
    """Runs one job in ``job_dir`` (new or empty; or, with ``resume``, an interrupted job's)."""

    def __init__(
        self,
        spec: JobSpec,
        job_dir: Path,
        *,
        runner: Runner,
        tracker: Tracker | None = None,
        progress: Progress | None = None,
        prepare: Callable[..., DataManifest] | None = None,
        resume: bool = False,
    ) -> None:
        self.spec = spec
        self.job_dir = Path(job_dir)
        self.runner = runner
        self.tracker = tracker or Tracker()
        if isinstance(self.tracker, RetryingTracker):
            self.tracker.report = self._say  # tracking trouble shows in the job's log and view
        self.progress = progress or Progress()
        self.resume = resume
        self._prepare = prepare
        self.space = MixtureSpace.from_spec(spec)  # leaf space; capped once the data is known
        self.search_space = self.space  # what the sampler/proposer search (units when grouped)
        self.hierarchy = identity(spec.domain_names)
        self.caps: RepetitionCaps | None = None
        self.objective_weights = spec.objective_weights()
        # what each trial reports to the proposer: the objective's metrics, then constrained ones
        self.target_names = list(self.objective_weights) + [
            c.metric for c in spec.objective.constraints if c.metric not in self.objective_weights
        ]
        self.sign = 1.0 if spec.objective.direction == "minimize" else -1.0
        self.validation_proxy = spec.validation_proxy()
        # mfbo: the cheaper proxies, then the search proxy (the target fidelity) last
        self.fidelity_proxies = [
            spec.fidelity_proxy(i) for i in range(len(spec.search.fidelities))
        ] + [spec.proxy]
        self.fidelity_flops: list[float] = []  # training FLOPs of one trial per level
        self.trials: list[Trial] = []
        self.manifest: DataManifest | None = None
        self.state = JobState()
        self._saved: dict[str, Trial] = {}  # trials from the saved state (resume)
        self._rows: dict[str, dict[str, Any]] = {}
        self._told: list[Trial] = []  # trials in the order the proposer was told them
        self._stage = "preparing"
        self._started_at = time.time()
        self._log_file = self.job_dir / "job.log"

    # ------------------------------------------------------------------------------ lifecycle

    def run(self) -> JobOutcome:
        started = time.monotonic()
        self.job_dir.mkdir(parents=True, exist_ok=True)
        if self.resume:
            self.state = JobState.load(self.job_dir)
            self._saved = {t.trial_id: t for t in self.state.trials}
            self._say(
                f"resuming: {sum(t.status.finished for t in self._saved.values())} of "
                f"{len(self._saved)} saved trials are finished"
            )
        else:
            (self.job_dir / SPEC_FILE).write_text(self.spec.to_yaml())
        self._write_status("preparing")
        try:
            self.manifest = self._prepare_data()
            self._apply_data_constraints(self.manifest)
            sampler = self._build_sampler(self.manifest)
            proposer = self._build_proposer(sampler)
            self._start_tracking()
            with self.runner:
                self._say(f"runner: {self.runner.describe()}; tracking: {self.tracker.describe()}")
                self._search(sampler, proposer)
                recommendation = self._recommend(proposer)
                validation = self._validate(recommendation) if self.spec.validate_.enabled else {}
            result = self._write_recommendation(recommendation, validation)
        except BaseException as error:
            status = (
                "cancelled"
                if isinstance(error, JobCancelled)
                else "interrupted"
                if isinstance(error, KeyboardInterrupt)
                else "failed"
            )
            self._save_state()
            self._write_status(status, error=str(error) or type(error).__name__)
            self.tracker.finish("KILLED" if status != "failed" else "FAILED")
            raise
        finally:
            self.progress.close()
        wall = time.monotonic() - started
        self._stage = "done"
        self._write_status("completed", wall_s=wall)
        self.tracker.log_job_metrics({"wall_s": wall, "trials": float(len(self.trials))})
        for name in (SPEC_FILE, RECOMMENDATION_FILE, RUNS_FILE):
            self.tracker.log_artifact(self.job_dir / name)
        self.tracker.finish("FINISHED")
        health = self.tracker.health()
        if health.get("failures"):
            self._write_status("completed", wall_s=wall, tracking=health)
        return JobOutcome(self.job_dir, result, self.trials, wall)

    # ------------------------------------------------------------------------------- stages

    def _prepare_data(self) -> DataManifest:
        self._say(f"preparing data for {len(self.spec.domains)} domains")
        if self._prepare is None:
            from mixopt.data import prepare_data

            self._prepare = prepare_data
        manifest = self._prepare(self.spec, log=self._say)
        manifest.save(self.job_dir / MANIFEST_FILE)
        window = max(self.spec.proxy.seq_len, self.validation_proxy.seq_len) + 1
        too_short = [n for n, s in manifest.domains.items() if s.val_tokens < window]
        if too_short:
            raise MixoptError(
                f"domain(s) {too_short}: fewer held-out tokens than one validation window "
                f"(seq_len + 1 = {window}); add data or lower seq_len"
            )
        return manifest

    def _apply_data_constraints(self, manifest: DataManifest) -> None:
        """Repetition caps (target.tokens) as upper bounds, and the search level (groups)."""
        self.caps = caps_for_job(self.spec, manifest)
        self.space = apply_caps(MixtureSpace.from_spec(self.spec), self.caps)
        if self.caps is not None:
            self._say("repetition caps:\n" + self.caps.describe())
        self.hierarchy = build_hierarchy(self.spec, manifest.train_tokens())
        self.search_space = self.hierarchy.unit_space(self.space)
        if not self.hierarchy.trivial:
            self._say(f"searching {len(self.hierarchy.units)} groups: {self.hierarchy.units}")

    def natural(self, manifest: DataManifest) -> np.ndarray:
        dist = manifest.natural_distribution()
        return np.array([dist[d] for d in self.space.domains])

    def _build_sampler(self, manifest: DataManifest) -> DirichletSampler:
        s = self.spec.search.sampler
        return DirichletSampler(
            self.search_space,
            self.hierarchy.collapse(self.natural(manifest)),
            temperature=s.temperature,
            alpha_min=s.alpha_min,
            alpha_max=s.alpha_max,
            n_alphas=s.n_alphas,
            min_weight=s.min_weight,
        )

    def _build_proposer(self, sampler: DirichletSampler) -> Proposer:
        s = self.spec.search
        options = {}
        if s.strategy == "regmix":
            options = {
                "predictor": s.predictor,
                "candidates": s.candidates,
                "top_k": min(s.top_k, s.candidates),
            }
        if s.strategy == "mfbo":
            self.fidelity_flops = self._fidelity_flops()
            options = {"levels": self.fidelity_flops, "costs": self.fidelity_flops}
        proposer = make_proposer(s.strategy, sampler, seed=s.seed, **options)
        proposer.target_weights = self.sign * np.array(
            [self.objective_weights.get(name, 0.0) for name in self.target_names]
        )
        return proposer

    def _fidelity_flops(self) -> list[float]:
        """Training FLOPs of one trial at each fidelity; a cheaper one must cost less."""
        from proxies.presets import get_preset

        assert self.manifest is not None
        flops = []
        for p in self.fidelity_proxies:
            cfg = get_preset(
                p.preset,
                vocab_size=self.manifest.vocab_size,
                seq_len=p.seq_len,
                arch=p.arch,
                **p.overrides,
            )
            flops.append(float(p.train_tokens) * cfg.flops_per_token())
        for i, value in enumerate(flops[:-1]):
            if value >= flops[-1]:
                raise MixoptError(
                    f"search.fidelities.{i}: trains {value:.3g} FLOPs, not fewer than the "
                    f"target proxy's {flops[-1]:.3g}; a fidelity must be cheaper"
                )
        return flops

    def _level_costs(self) -> list[float]:
        """Measured cost (mean wall seconds) of a trial per fidelity; FLOPs-scaled where a
        fidelity has no finished trial yet."""
        walls: dict[int, list[float]] = {}
        for t in self.trials:
            wall = t.result.get("wall_s") if t.status is TrialStatus.COMPLETED else None
            if t.stage is Stage.SEARCH and wall and wall > 0:
                level = self._level(t)
                walls.setdefault(level, []).append(float(wall))
        measured = {level: float(np.mean(v)) for level, v in walls.items()}
        if not measured:
            return list(self.fidelity_flops)
        per_flop = float(np.mean([measured[i] / self.fidelity_flops[i] for i in measured]))
        return [measured.get(i, per_flop * flops) for i, flops in enumerate(self.fidelity_flops)]

    def _levels_text(self, levels: list[int]) -> str:
        """E.g. "3 at dense:tiny:250000, 1 at the target (dense:tiny:1000000)"."""
        target = len(self.fidelity_proxies) - 1
        parts = []
        for level in sorted(set(levels)):
            p = self.fidelity_proxies[level]
            name = f"{p.arch}:{p.preset}:{p.train_tokens}"
            where = f"the target ({name})" if level == target else name
            parts.append(f"{levels.count(level)} at {where}")
        return ", ".join(parts)

    def _level(self, trial: Trial) -> int:
        target = len(self.fidelity_proxies) - 1
        return target if trial.fidelity_level is None else trial.fidelity_level

    def _search(self, sampler: DirichletSampler, proposer: Proposer) -> None:
        from mixopt.proposers.mfbo import MultiFidelityBOProposer

        s = self.spec.search
        self._stage = "initial design"
        initial = sampler.sample(s.initial_trials, np.random.default_rng(s.seed))
        levels: list[int] | None = None
        if isinstance(proposer, MultiFidelityBOProposer):  # the initial design runs cheapest
            at_target = s.initial_at_target
            cheapest, target = int(np.argmin(self.fidelity_flops)), len(self.fidelity_flops) - 1
            levels = [cheapest] * (len(initial) - at_target) + [target] * at_target
        self._run_round(proposer, initial, 0, levels)
        if self.spec.objective.constraints:
            self._set_constraints(proposer)
        for round_index in range(1, s.rounds + 1):
            self._require_finished(proposer)
            self._stage = f"round {round_index}/{s.rounds}"
            saved = [
                t
                for t in self._saved.values()
                if t.stage is Stage.SEARCH and t.round == round_index
            ]
            if saved:  # proposed before the driver stopped: run those, do not propose again
                mixtures = self.hierarchy.collapse(
                    np.array([[t.weights[d] for d in self.space.domains] for t in saved])
                )
                levels = [self._level(t) for t in saved] if levels is not None else None
            else:
                self._say(
                    f"round {round_index}: {s.strategy} proposes from {proposer.n_observed} trials"
                )
                if isinstance(proposer, MultiFidelityBOProposer):
                    proposer.costs = np.asarray(self._level_costs())
                    mixtures, chosen = proposer.ask_with_fidelity(s.trials_per_round)
                    levels = [int(level) for level in chosen]
                    self._say(f"round {round_index}: mfbo runs {self._levels_text(levels)}")
                else:
                    mixtures = proposer.ask(s.trials_per_round)
                self._log_predictor(proposer, round_index)
            self._run_round(proposer, mixtures, round_index, levels)
        self._require_finished(proposer)

    def _baselines(self) -> dict[str, np.ndarray]:
        """The mixtures constraints are relative to (trained in the initial design)."""
        assert self.manifest is not None
        manifest = self.manifest
        wanted = {c.relative_to for c in self.spec.objective.constraints if c.max_value is None}
        mixtures: dict[str, Callable[[], np.ndarray]] = {
            "natural": lambda: self.space.project(self.natural(manifest))[0],
            "uniform": self.space.uniform,
            "current": lambda: self.space.check(
                self.spec.validate_.current or {}, source="current"
            ),
        }
        return {name: mixtures[name]() for name in sorted(wanted)}

    def _set_constraints(self, proposer: Proposer) -> None:
        """Turn the spec's guard rails into limits, from the baselines' measured metrics."""
        from mixopt.proposers.pareto import Constraint

        measured = {
            t.label.removeprefix("baseline:"): t
            for t in self.trials
            if t.label.startswith("baseline:") and t.status is TrialStatus.COMPLETED
        }
        constraints = []
        for c in self.spec.objective.constraints:
            if c.max_value is not None:
                limit = c.max_value
            elif c.relative_to in measured:
                base = measured[c.relative_to].result["metrics"][c.metric]
                limit = base * (1 + (c.max_increase or 0.0))
            else:
                raise MixoptError(
                    f"the {c.relative_to} baseline trial failed: no limit for {c.metric}"
                )
            constraints.append(Constraint(self.target_names.index(c.metric), limit, c.metric))
            self._say(f"constraint: {c.metric} <= {limit:.4f}")
        proposer.constraints = constraints  # type: ignore[attr-defined]

    def _log_predictor(self, proposer: Proposer, round_index: int) -> None:
        """Log the fitted predictor's cross-validated scores, where the proposer has them
        (``auto`` scores every candidate while choosing; nothing is refitted for the log)."""
        model = getattr(proposer, "model_", None)
        scores = getattr(model, "cv_scores_", None)
        if model is None or not scores:
            return
        params = {"choice": getattr(model, "choice_", ""), "trials": proposer.n_observed}
        self.tracker.log_predictor_fit(
            self.spec.search.predictor,
            {f"spearman/{name}": value for name, value in scores.items()},
            params,
            round=round_index,
        )

    def _require_finished(self, proposer: Proposer) -> None:
        if proposer.n_observed < 2:
            raise MixoptError(
                f"only {proposer.n_observed} trial(s) finished, at least 2 are needed to go on; "
                f"the errors are in {self._log_file} and {self.job_dir / RUNS_FILE}"
            )

    def _run_round(
        self,
        proposer: Proposer,
        mixtures: np.ndarray,
        index: int,
        levels: list[int] | None = None,
    ) -> None:
        from mixopt.proposers.mfbo import MultiFidelityBOProposer

        trials = [
            self._new_trial(
                self.hierarchy.expand(w),
                index,
                self.spec.search.seed,
                fidelity_level=None if levels is None else levels[i],
            )
            for i, w in enumerate(mixtures)
        ]
        if index == 0 and self.spec.objective.constraints:
            seed = self.spec.search.seed
            for name, weights in self._baselines().items():
                trials.append(self._new_trial(weights, 0, seed, label=f"baseline:{name}"))
        self._run_trials(trials)
        finite = [
            t
            for t in trials
            if t.status is TrialStatus.COMPLETED and np.isfinite(t.result["objective"])
        ]
        if finite:
            X = np.array([[t.weights[d] for d in self.space.domains] for t in finite])
            X = self.hierarchy.collapse(X)
            y = np.array([self.sign * t.result["objective"] for t in finite])
            targets = np.array(
                [[t.result["metrics"].get(m, np.nan) for m in self.target_names] for t in finite]
            )
            if isinstance(proposer, MultiFidelityBOProposer):
                at = np.array([self._level(t) for t in finite])
                proposer.tell_at(X, y, at, targets=targets)
            else:
                proposer.tell(X, y, targets=targets)
            self._told.extend(finite)

    def _recommend(self, proposer: Proposer) -> Recommendation:
        """The proposer's recommendation in leaf weights (the saved one when resuming)."""
        self._stage = "recommending"
        if self.state.recommendation is not None:
            return recommendation_from_dict(self.state.recommendation)
        recommendation = proposer.recommend()
        recommendation.weights = self.hierarchy.expand(recommendation.weights)
        self.state.recommendation = recommendation_to_dict(recommendation)
        self._save_state()
        return recommendation

    def _validate(self, recommendation: Recommendation) -> dict[str, Any]:
        assert self.manifest is not None
        v = self.spec.validate_
        self._stage = "validation"
        candidates: dict[str, np.ndarray] = {"recommended": recommendation.weights}
        for baseline in v.baselines:
            if baseline == "uniform":
                candidates["uniform"] = self.space.uniform()
            elif baseline == "natural":
                candidates["natural"] = self.space.project(self.natural(self.manifest))[0]
            elif baseline == "best_trial":
                best = self._best_trial(Stage.SEARCH)
                if best is not None:
                    candidates["best_trial"] = np.array(
                        [best.weights[d] for d in self.space.domains]
                    )
        if v.current is not None:
            candidates["current"] = self.space.check(v.current, source="validate.current")
        by_label: dict[str, list[Trial]] = {}
        for label, weights in candidates.items():
            for k in range(v.seeds):
                trial = self._new_trial(
                    weights, -1, self.spec.search.seed + k, stage=Stage.VALIDATE, label=label
                )
                by_label.setdefault(label, []).append(trial)
        self._run_trials([t for group in by_label.values() for t in group])
        return {
            label: summarise(label, self.space.as_dict(candidates[label]), trials)
            for label, trials in by_label.items()
        }

    # -------------------------------------------------------------------------- trial running

    def _new_trial(
        self,
        weights: np.ndarray,
        round_index: int,
        seed: int,
        *,
        stage: Stage = Stage.SEARCH,
        label: str = "",
        fidelity_level: int | None = None,
    ) -> Trial:
        trial_id = f"t{len(self.trials):04d}"
        saved = self._saved.get(trial_id)
        if saved is not None:
            if (
                saved.stage is not stage
                or saved.round != round_index
                or saved.label != label
                or (round_index == 0 and saved.fidelity_level != fidelity_level)
            ):
                raise MixoptError(
                    f"{self.job_dir}: saved trial {trial_id} ({saved.stage.value}, round "
                    f"{saved.round}) does not match the job's plan; was the spec edited?"
                )
            trial = saved
        else:
            trial = Trial(
                trial_id=trial_id,
                round=round_index,
                weights=self.space.as_dict(np.asarray(weights, dtype=float)),
                seed=seed,
                stage=stage,
                label=label,
                fidelity_level=fidelity_level,
            )
        self.trials.append(trial)
        self.state.trials = self.trials
        return trial

    def _proxy_for(self, trial: Trial) -> ProxySpec:
        if trial.stage is Stage.VALIDATE:
            return self.validation_proxy
        if trial.fidelity_level is not None:
            return self.fidelity_proxies[trial.fidelity_level]
        return self.spec.proxy

    def _request(self, trial: Trial) -> TrialRequest:
        assert self.manifest is not None
        p = self._proxy_for(trial)
        train = {
            "train_tokens": p.train_tokens,
            "batch_size": p.batch_size,
            "lr": p.lr,
            "min_lr_ratio": p.min_lr_ratio,
            "warmup_ratio": p.warmup_ratio,
            "schedule": p.schedule,
            "weight_decay": p.weight_decay,
            "grad_clip": p.grad_clip,
            "eval_tokens": p.eval_tokens,
            "device": p.device,
            "threads": max(1, int(self.spec.resources.cpus_per_trial)),
            "micro_batch_size": p.micro_batch_size,
            "eval_every": p.eval_every,
            "metrics": list(p.metrics),
            "compile": p.compile,
        }
        checkpoint_dir = None
        if p.checkpoint_every > 0:
            train["checkpoint_every"] = p.checkpoint_every
            checkpoint_dir = str((self.job_dir / "checkpoints" / trial.trial_id).resolve())
        domains = [
            {
                "name": s.name,
                "train_path": s.train_path,
                "val_path": s.val_path,
                "dtype": s.dtype,
                "train_bytes": s.train_bytes,
                "val_bytes": s.val_bytes,
            }
            for s in self.manifest.domains.values()
        ]
        return TrialRequest(
            trial_id=trial.trial_id,
            weights=trial.weights,
            seed=trial.seed,
            preset=p.preset,
            model_overrides=dict(p.overrides),
            train=train,
            domains=domains,
            vocab_size=self.manifest.vocab_size,
            seq_len=p.seq_len,
            arch=p.arch,
            checkpoint_dir=checkpoint_dir,
        )

    def _group_size(self) -> int:
        """Trials per submission: stacked training groups only where it can pay (GPU trials)."""
        p, r = self.spec.proxy, self.spec.resources
        if p.stacking == "off" or (p.stacking == "auto" and r.gpus_per_trial == 0):
            return 1
        return p.max_stack

    def _run_trials(self, trials: list[Trial]) -> None:
        """Run the unfinished ``trials``, at most ``max_concurrent_trials`` submissions at once
        (a submission is one trial, or a group trained stacked on one GPU); retry trials whose
        worker died. Trials finished before a resume are recorded, not run."""
        for trial in trials:
            if trial.status.finished and trial.trial_id not in self._rows:
                self._record(trial)
        cap, size = self.spec.resources.max_concurrent_trials, self._group_size()
        pending = [t for t in trials if not t.status.finished]
        running: dict[str, Trial] = {}
        group_of: dict[str, int] = {}  # trial id -> submission number
        submissions = 0
        snapshot = Snapshot(stage=self._stage, total=len(trials))
        self._show(snapshot, running, trials)
        while pending or running:
            while pending and len(set(group_of.values())) < cap:
                group = [t for t in pending if self._proxy_for(t) == self._proxy_for(pending[0])]
                group = group[:size]
                pending = [t for t in pending if t not in group]
                for trial in group:
                    trial.status = TrialStatus.RUNNING
                    trial.attempts += 1
                    running[trial.trial_id] = trial
                    group_of[trial.trial_id] = submissions
                submissions += 1
                requests = [self._request(t) for t in group]
                if len(requests) == 1:
                    self.runner.submit(requests[0])
                else:
                    self.runner.submit_group(
                        requests, stacking=self.spec.proxy.stacking, max_stack=size
                    )
                self._save_state()
            self._show(snapshot, running, trials)
            for event in self.runner.poll(timeout=1.0):
                trial = running.pop(event.trial_id)
                group_of.pop(event.trial_id)
                if self._finish(trial, event):
                    pending.append(trial)
                snapshot.last = self._describe(trial)
                self._save_state()
            self._show(snapshot, running, trials)

    def _finish(self, trial: Trial, event: RunnerEvent) -> bool:
        """Record an event; return True when the trial should be retried."""
        if event.ok:
            assert event.result is not None
            result = dict(event.result)
            result["objective"] = objective_value(result.get("metrics", {}), self.objective_weights)
            trial.result = result
            trial.status = TrialStatus.COMPLETED
            trial.error = ""
        else:
            trial.error = event.error
            trial.failures.append(event.error)
            retry = event.retryable and trial.attempts <= self.spec.resources.max_retries
            self._say(f"trial {trial.trial_id} failed (attempt {trial.attempts}): {event.error}")
            if retry:
                trial.status = TrialStatus.QUEUED
                return True
            trial.status = TrialStatus.ABANDONED
        self._record(trial)
        return False

    def _record(self, trial: Trial) -> None:
        assert self.manifest is not None
        p = self._proxy_for(trial)
        self._rows[trial.trial_id] = trial_row(
            trial,
            job=self.spec.name,
            fidelity=f"{p.arch}:{p.preset}:{p.train_tokens}",
            data_hash=self.manifest.data_hash,
            domain_hashes=self.manifest.domain_hashes(),
            tokenizer_hash=self.manifest.tokenizer_hash[:16],
            train_tokens=self.manifest.train_tokens(),
        )
        write_runs(list(self._rows.values()), self.job_dir / RUNS_FILE)
        self.tracker.log_trial(trial, row=self._rows[trial.trial_id], request=self._request(trial))

    # ---------------------------------------------------------------------------- reporting

    def _best_trial(self, stage: Stage) -> Trial | None:
        target = len(self.fidelity_proxies) - 1  # cheaper fidelities' losses do not compare
        done = [
            t
            for t in self.trials
            if t.stage is stage
            and t.status is TrialStatus.COMPLETED
            and np.isfinite(t.result.get("objective", np.nan))
            and self._level(t) == target
        ]
        return min(done, key=lambda t: self.sign * t.result["objective"]) if done else None

    def _show(self, snapshot: Snapshot, running: dict[str, Trial], trials: list[Trial]) -> None:
        snapshot.completed = sum(t.status is TrialStatus.COMPLETED for t in trials)
        snapshot.failed = sum(t.status is TrialStatus.ABANDONED for t in trials)
        snapshot.running = sorted(running)
        best = self._best_trial(Stage.SEARCH)
        if best is not None:
            snapshot.best = best.result["objective"]
            snapshot.best_trial = best.trial_id
        self.progress.update(snapshot)
        self._write_status("running", running=snapshot.running)

    def _describe(self, trial: Trial) -> str:
        if trial.status is not TrialStatus.COMPLETED:
            return f"{trial.trial_id} {trial.status.value}"
        r = trial.result
        return (
            f"{trial.trial_id} objective {r['objective']:.4f} "
            f"({r.get('tokens_per_s', 0):,.0f} tok/s, {r.get('wall_s', 0):.0f} s)"
        )

    def _say(self, text: str) -> None:
        with self._log_file.open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.progress.message(text)

    def _start_tracking(self) -> None:
        assert self.manifest is not None
        p = self.spec.proxy
        params = {
            "domains": ",".join(self.space.domains),
            "proxy.arch": p.arch,
            "proxy.preset": p.preset,
            "proxy.train_tokens": p.train_tokens,
            "validate.preset": self.validation_proxy.preset,
            "validate.train_tokens": self.validation_proxy.train_tokens,
            "search.strategy": self.spec.search.strategy,
            "search.predictor": self.spec.search.predictor,
            "search.initial_trials": self.spec.search.initial_trials,
            "search.rounds": self.spec.search.rounds,
            "data_hash": self.manifest.data_hash,
        }
        tags = {"mixopt.job": self.spec.name, "mixopt.job_dir": str(self.job_dir.resolve())}
        self.tracker.start_job(self.spec.name, params, tags)
        self.tracker.log_artifact(self.job_dir / SPEC_FILE)

    def planned_trials(self) -> int:
        s, v = self.spec.search, self.spec.validate_
        validated = 1 + len(v.baselines) + (v.current is not None)
        relative = {c.relative_to for c in self.spec.objective.constraints if c.max_value is None}
        return (
            s.initial_trials
            + len(relative)
            + s.rounds * s.trials_per_round
            + (validated * v.seeds if v.enabled else 0)
        )

    def _write_recommendation(
        self, recommendation: Recommendation, validation: dict[str, Any]
    ) -> dict[str, Any]:
        assert self.manifest is not None
        weights = self.space.as_dict(recommendation.weights)
        result: dict[str, Any] = {
            "job": self.spec.name,
            "job_dir": str(self.job_dir.resolve()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "objective": {
                "metrics": self.objective_weights,
                "direction": self.spec.objective.direction,
            },
            "weights": weights,
            "predicted_objective": self.sign * recommendation.predicted,
            "predicted_std": recommendation.predicted_std,
            "method": recommendation.method,
            "evidence": self._evidence(recommendation),
            "natural": self.space.as_dict(self.natural(self.manifest)),
            "data_hash": self.manifest.data_hash,
            "data_hashes": self.manifest.domain_hashes(),
            "repetition_caps": None if self.caps is None else self.caps.caps,
            "target_epochs": None
            if self.caps is None
            else epochs_consumed(weights, self.caps.target_tokens, self.manifest.train_tokens()),
            "validation_proxy": {
                "arch": self.validation_proxy.arch,
                "preset": self.validation_proxy.preset,
                "train_tokens": self.validation_proxy.train_tokens,
            },
            "validation": validation,
            "verdict": verdict(validation, self.spec.objective.direction),
        }
        path = self.job_dir / RECOMMENDATION_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, path)
        return result

    def _evidence(self, recommendation: Recommendation) -> dict[str, Any]:
        """The trials a recommendation rests on, and the ones closest to it."""
        nearest = []
        for i in recommendation.nearest:
            trial = self._told[i]
            distance = sum(
                abs(trial.weights[d] - w)
                for d, w in zip(self.space.domains, recommendation.weights, strict=True)
            )
            nearest.append(
                {
                    "trial_id": trial.trial_id,
                    "objective": trial.result["objective"],
                    "l1_distance": float(distance),
                }
            )
        return {
            "trials": [self._told[i].trial_id for i in recommendation.evidence],
            "nearest": nearest,
            "outside_data": bool(not nearest or min(n["l1_distance"] for n in nearest) > 0.5),
        }

    def _save_state(self) -> None:
        self.state.trials = self.trials
        self.state.save(self.job_dir)

    def _write_status(self, status: str, **extra: Any) -> None:
        """``job.json``: what a person or the service polls to follow the job."""
        done = [t for t in self.trials if t.status is TrialStatus.COMPLETED]
        best = self._best_trial(Stage.SEARCH)
        elapsed = time.time() - self._started_at
        total = self.planned_trials()
        eta = elapsed / len(done) * (total - len(done)) if done and status == "running" else None
        state = {
            "job": self.spec.name,
            "status": status,
            "stage": self._stage,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "pid": os.getpid(),
            "trials": len(self.trials),
            "trials_total": total,
            "trials_completed": len(done),
            "trials_failed": sum(t.status is TrialStatus.ABANDONED for t in self.trials),
            "best_objective": None if best is None else best.result["objective"],
            "best_trial": None if best is None else best.trial_id,
            "elapsed_s": elapsed,
            "eta_s": eta,
            **extra,
        }
        path = self.job_dir / STATUS_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, path)
