"""The search loop: from a validated spec to a validated recommendation.

    data → initial design (Dirichlet) → trials → tell → [propose → trials → tell] × rounds
         → recommend → validate against baselines → recommendation.json

The driver owns all state: workers return result dicts and only this module writes the runs
table (after every finished trial) and MLflow. Search trials share one seed (common random
numbers: the same initialisation and data order for every mixture, so differences between trials
come from the mixture, not the seed); validation repeats each mixture over ``validate.seeds``
seeds.
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
from mixopt.progress import Progress, Snapshot
from mixopt.proposers import Proposer, Recommendation, make_proposer
from mixopt.runners.base import Runner, RunnerEvent
from mixopt.runs_table import RUNS_FILE, trial_row, write_runs
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace
from mixopt.spec import JobSpec
from mixopt.tracking.base import Tracker
from mixopt.trials import Stage, Trial, TrialRequest, TrialStatus

if TYPE_CHECKING:
    from mixopt.data import DataManifest

RECOMMENDATION_FILE = "recommendation.json"
SPEC_FILE = "spec.yaml"
STATE_FILE = "job.json"
MANIFEST_FILE = "data_manifest.json"


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
    """Runs one job in ``job_dir`` (which must exist and be empty or new)."""

    def __init__(
        self,
        spec: JobSpec,
        job_dir: Path,
        *,
        runner: Runner,
        tracker: Tracker | None = None,
        progress: Progress | None = None,
        prepare: Callable[..., DataManifest] | None = None,
    ) -> None:
        self.spec = spec
        self.job_dir = Path(job_dir)
        self.runner = runner
        self.tracker = tracker or Tracker()
        self.progress = progress or Progress()
        self._prepare = prepare
        self.space = MixtureSpace.from_spec(spec)  # leaf space; capped once the data is known
        self.search_space = self.space  # what the sampler/proposer search (units when grouped)
        self.hierarchy = identity(spec.domain_names)
        self.caps: RepetitionCaps | None = None
        self.objective_weights = spec.objective_weights()
        self.sign = 1.0 if spec.objective.direction == "minimize" else -1.0
        self.trials: list[Trial] = []
        self.manifest: DataManifest | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._told: list[Trial] = []  # trials in the order the proposer was told them
        self._log_file = self.job_dir / "job.log"

    # ------------------------------------------------------------------------------ lifecycle

    def run(self) -> JobOutcome:
        started = time.monotonic()
        self.job_dir.mkdir(parents=True, exist_ok=True)
        (self.job_dir / SPEC_FILE).write_text(self.spec.to_yaml())
        self._write_state("preparing")
        try:
            self.manifest = self._prepare_data()
            self._apply_data_constraints(self.manifest)
            sampler = self._build_sampler(self.manifest)
            proposer = self._build_proposer(sampler)
            self._start_tracking()
            with self.runner:
                self._say(f"runner: {self.runner.describe()}; tracking: {self.tracker.describe()}")
                self._search(sampler, proposer)
                recommendation = proposer.recommend()
                recommendation.weights = self.hierarchy.expand(recommendation.weights)  # leaves
                validation = self._validate(recommendation) if self.spec.validate_.enabled else {}
            result = self._write_recommendation(recommendation, validation)
        except BaseException as error:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            self._write_state(status, error=str(error))
            self.tracker.finish("KILLED" if status == "interrupted" else "FAILED")
            raise
        finally:
            self.progress.close()
        wall = time.monotonic() - started
        self._write_state("completed", wall_s=wall)
        self.tracker.log_job_metrics({"wall_s": wall, "trials": float(len(self.trials))})
        for name in (SPEC_FILE, RECOMMENDATION_FILE, RUNS_FILE):
            self.tracker.log_artifact(self.job_dir / name)
        self.tracker.finish("FINISHED")
        return JobOutcome(self.job_dir, result, self.trials, wall)

    # ------------------------------------------------------------------------------- stages

    def _prepare_data(self) -> DataManifest:
        self._say(f"preparing data for {len(self.spec.domains)} domains")
        if self._prepare is None:
            from mixopt.data import prepare_data

            self._prepare = prepare_data
        manifest = self._prepare(self.spec, log=self._say)
        manifest.save(self.job_dir / MANIFEST_FILE)
        too_short = [
            name
            for name, shards in manifest.domains.items()
            if shards.val_tokens < self.spec.proxy.seq_len + 1
        ]
        if too_short:
            raise MixoptError(
                f"domain(s) {too_short}: fewer held-out tokens than one validation window "
                f"(proxy.seq_len + 1 = {self.spec.proxy.seq_len + 1}); add data or lower seq_len"
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
        proposer = make_proposer(s.strategy, sampler, seed=s.seed, **options)
        proposer.target_weights = self.sign * np.array(list(self.objective_weights.values()))
        return proposer

    def _search(self, sampler: DirichletSampler, proposer: Proposer) -> None:
        s = self.spec.search
        initial = sampler.sample(s.initial_trials, np.random.default_rng(s.seed))
        self._run_round(proposer, initial, 0, "initial design")
        for round_index in range(1, s.rounds + 1):
            self._require_finished(proposer)
            self._say(
                f"round {round_index}: {s.strategy} proposes from {proposer.n_observed} trials"
            )
            mixtures = proposer.ask(s.trials_per_round)
            self._run_round(proposer, mixtures, round_index, f"round {round_index}/{s.rounds}")
        self._require_finished(proposer)

    def _require_finished(self, proposer: Proposer) -> None:
        if proposer.n_observed < 2:
            raise MixoptError(
                f"only {proposer.n_observed} trial(s) finished, at least 2 are needed to go on; "
                f"the errors are in {self._log_file} and {self.job_dir / RUNS_FILE}"
            )

    def _run_round(self, proposer: Proposer, mixtures: np.ndarray, index: int, name: str) -> None:
        trials = [
            self._new_trial(self.hierarchy.expand(w), index, self.spec.search.seed)
            for w in mixtures
        ]
        self._run_trials(trials, stage=name)
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
                [[t.result["metrics"][m] for m in self.objective_weights] for t in finite]
            )
            proposer.tell(X, y, targets=targets)
            self._told.extend(finite)

    def _validate(self, recommendation: Recommendation) -> dict[str, Any]:
        assert self.manifest is not None
        v = self.spec.validate_
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
        trials = []
        for label, weights in candidates.items():
            for k in range(v.seeds):
                trial = self._new_trial(
                    weights, -1, self.spec.search.seed + k, stage=Stage.VALIDATE
                )
                trial.label = label
                trials.append(trial)
        self._run_trials(trials, stage="validation")
        summary: dict[str, Any] = {}
        for label, weights in candidates.items():
            values = [
                t.result["objective"]
                for t in trials
                if t.label == label and t.status is TrialStatus.COMPLETED
            ]
            metrics = _mean_metrics([t for t in trials if t.label == label])
            summary[label] = {
                "weights": self.space.as_dict(weights),
                "objective": float(np.mean(values)) if values else None,
                "objective_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                "seeds": len(values),
                "metrics": metrics,
                "trials": [t.trial_id for t in trials if t.label == label],
            }
        return summary

    # -------------------------------------------------------------------------- trial running

    def _new_trial(
        self, weights: np.ndarray, round_index: int, seed: int, *, stage: Stage = Stage.SEARCH
    ) -> Trial:
        trial = Trial(
            trial_id=f"t{len(self.trials):04d}",
            round=round_index,
            weights=self.space.as_dict(np.asarray(weights, dtype=float)),
            seed=seed,
            stage=stage,
        )
        self.trials.append(trial)
        return trial

    def _request(self, trial: Trial) -> TrialRequest:
        assert self.manifest is not None
        p = self.spec.proxy
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

    def _run_trials(self, trials: list[Trial], *, stage: str) -> None:
        """Run ``trials``, at most ``max_concurrent_trials`` submissions at once (a submission is
        one trial, or a group trained stacked on one GPU); retry trials whose worker died."""
        cap, size = self.spec.resources.max_concurrent_trials, self._group_size()
        pending = list(trials)
        running: dict[str, Trial] = {}
        group_of: dict[str, int] = {}  # trial id -> submission number
        submissions = 0
        snapshot = Snapshot(stage=stage, total=len(trials))
        self._show(snapshot, running, trials)
        while pending or running:
            while pending and len(set(group_of.values())) < cap:
                group, pending = pending[:size], pending[size:]
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
            self._show(snapshot, running, trials)
            for event in self.runner.poll(timeout=1.0):
                trial = running.pop(event.trial_id)
                group_of.pop(event.trial_id)
                if self._finish(trial, event):
                    pending.append(trial)
                snapshot.last = self._describe(trial)
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
            retry = event.retryable and trial.attempts <= self.spec.resources.max_retries
            trial.status = TrialStatus.FAILED_RETRYABLE if retry else TrialStatus.ABANDONED
            self._say(f"trial {trial.trial_id} failed (attempt {trial.attempts}): {event.error}")
            if retry:
                trial.status = TrialStatus.QUEUED
                return True
        self._record(trial)
        return False

    def _record(self, trial: Trial) -> None:
        assert self.manifest is not None
        p = self.spec.proxy
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
        self.tracker.log_trial(trial)

    # ---------------------------------------------------------------------------- reporting

    def _best_trial(self, stage: Stage) -> Trial | None:
        done = [
            t
            for t in self.trials
            if t.stage is stage
            and t.status is TrialStatus.COMPLETED
            and np.isfinite(t.result.get("objective", np.nan))
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
            "proxy.preset": p.preset,
            "proxy.train_tokens": p.train_tokens,
            "search.strategy": self.spec.search.strategy,
            "search.predictor": self.spec.search.predictor,
            "search.initial_trials": self.spec.search.initial_trials,
            "search.rounds": self.spec.search.rounds,
            "data_hash": self.manifest.data_hash,
        }
        tags = {"mixopt.job": self.spec.name, "mixopt.job_dir": str(self.job_dir.resolve())}
        self.tracker.start_job(self.spec.name, params, tags)
        self.tracker.log_artifact(self.job_dir / SPEC_FILE)

    def _write_recommendation(
        self, recommendation: Recommendation, validation: dict[str, Any]
    ) -> dict[str, Any]:
        assert self.manifest is not None
        predicted = self.sign * recommendation.predicted
        result: dict[str, Any] = {
            "job": self.spec.name,
            "job_dir": str(self.job_dir.resolve()),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "objective": {
                "metrics": self.objective_weights,
                "direction": self.spec.objective.direction,
            },
            "weights": self.space.as_dict(recommendation.weights),
            "predicted_objective": predicted,
            "predicted_std": recommendation.predicted_std,
            "method": recommendation.method,
            "evidence": self._evidence(recommendation),
            "natural": self.space.as_dict(self.natural(self.manifest)),
            "data_hash": self.manifest.data_hash,
            "data_hashes": self.manifest.domain_hashes(),
            "repetition_caps": None if self.caps is None else self.caps.caps,
            "target_epochs": None
            if self.caps is None
            else epochs_consumed(
                self.space.as_dict(recommendation.weights),
                self.caps.target_tokens,
                self.manifest.train_tokens(),
            ),
            "validation": validation,
            "verdict": _verdict(validation, self.spec.objective.direction),
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
        }

    def _write_state(self, status: str, **extra: Any) -> None:
        state = {
            "job": self.spec.name,
            "status": status,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": platform.node(),
            "trials": len(self.trials),
            **extra,
        }
        (self.job_dir / STATE_FILE).write_text(json.dumps(state, indent=2))


def _mean_metrics(trials: list[Trial]) -> dict[str, float]:
    done = [t.result.get("metrics", {}) for t in trials if t.status is TrialStatus.COMPLETED]
    if not done:
        return {}
    return {k: float(np.mean([m[k] for m in done if k in m])) for k in done[0]}


def _verdict(validation: dict[str, Any], direction: str) -> str:
    """One sentence: does the recommendation beat each baseline, by how much, beyond seed noise?

    A gain counts as a win when it exceeds two standard errors of the difference of the seed
    means (with one seed there is no spread, and the sentence says so).
    """
    mine = validation.get("recommended", {})
    if mine.get("objective") is None:
        return "not validated"
    parts = []
    for label, other in validation.items():
        if label == "recommended" or other.get("objective") is None:
            continue
        gain = other["objective"] - mine["objective"]
        gain = gain if direction == "minimize" else -gain
        relative = f"{gain:+.4f} ({100 * gain / abs(other['objective']):+.2f}%)"
        se = _standard_error(mine, other)
        if se is None:
            word = "beats" if gain > 0 else "does not beat"
            parts.append(f"{word} {label} by {relative}, one seed (no spread)")
        elif gain > 2 * se:
            parts.append(f"beats {label} by {relative}, {gain / se:.1f} standard errors")
        elif gain < -2 * se:
            parts.append(f"loses to {label} by {relative}, {-gain / se:.1f} standard errors")
        else:
            parts.append(f"ties {label}: {relative} is within 2 standard errors ({se:.4f})")
    return "recommended " + "; ".join(parts) if parts else "no baselines"


def _standard_error(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Standard error of the difference of two seed means (None without a spread)."""
    if a.get("objective_std") is None or b.get("objective_std") is None:
        return None
    var = a["objective_std"] ** 2 / a["seeds"] + b["objective_std"] ** 2 / b["seeds"]
    return max(float(np.sqrt(var)), 1e-12)
