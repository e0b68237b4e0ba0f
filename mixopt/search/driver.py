"""The search driver: from a validated spec to a validated recommendation, stage by stage.

    prepare   data → repetition caps, units, sampler (the search problem), the proxy ladder
    design    the sampler's initial mixtures (+ the baselines guard rails are relative to)
    rounds    the strategy proposes from every finished trial; the batch trains
    recommend the strategy's best mixture (and its report: what it chose and why)
    at_target with a target scale: a scale-aware law's optimum there (mixopt.search.scale)
    validate  the recommendation next to baselines on the validation proxy, several seeds; a
              mixture that beats it there beyond noise replaces it (mixopt.search.validation)
    publish   recommendation.json (guard rails checked on what validation measured)

The driver owns all state: workers return result dicts, and the driver tells its listeners
(log, runs table, tracker, progress view, status file) and saves the resumable state after
every trial event. Search trials share one seed (common random numbers: the same
initialisation and data order for every mixture, so differences between trials come from the
mixture, not the seed); validation repeats each mixture over ``validate.seeds`` seeds.

Resuming (``resume=True``) replays the job against its saved state: trials are planned in a
fixed order (:class:`~mixopt.search.book.TrialBook`), finished ones are kept, the rest run
again, saved rounds are not proposed again, and a saved recommendation is reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.job import JobDir, JobState, JobStatus, planned_trials
from mixopt.job.state import recommendation_from_dict, recommendation_to_dict
from mixopt.progress import Progress
from mixopt.runners.base import Runner
from mixopt.runs_table import trial_row
from mixopt.search import events, online, scale, strategy, validation
from mixopt.search import recommendation as publishing
from mixopt.search.book import TrialBook
from mixopt.search.ladder import Ladder
from mixopt.search.outcome import JobOutcome, objective_value
from mixopt.search.problem import SearchProblem
from mixopt.search.requests import RequestBuilder
from mixopt.search.scheduler import Scheduler, SchedulerHooks
from mixopt.spec.stages import stage_list
from mixopt.tracking import job_run
from mixopt.tracking.base import Tracker
from mixopt.trials import Trial, TrialStatus

if TYPE_CHECKING:
    from mixopt.data import DataManifest
    from mixopt.proposers import Proposer, Recommendation
    from mixopt.spec import JobSpec


class SearchJob:
    """Runs one job in ``job_dir`` (new or empty; or, with ``resume``, an interrupted job's)."""

    def __init__(
        self,
        spec: JobSpec,
        job_dir: Path | JobDir,
        *,
        runner: Runner,
        tracker: Tracker | None = None,
        progress: Progress | None = None,
        prepare: Callable[..., DataManifest] | None = None,
        resume: bool = False,
    ) -> None:
        self.spec = spec
        self.job = job_dir if isinstance(job_dir, JobDir) else JobDir(job_dir)
        self.runner = runner
        self.tracker = tracker or Tracker()
        self.progress = progress or Progress()
        self.resume = resume
        self._prepare = prepare
        self.state = JobState()
        self.book = TrialBook(where=str(self.job.path))
        self.runs = events.RunsTable(self.job)
        self.status = events.StatusFile(
            self.job, spec.name, planned_trials(spec), self.book, self._best
        )
        self.events = events.JobEvents(
            [
                events.LogFile(self.job),
                events.ProgressListener(self.progress),
                self.runs,
                events.TrackerListener(self.tracker),
                self.status,
            ]
        )
        self.problem: SearchProblem | None = None
        self.ladder: Ladder | None = None
        self._recorded: dict[str, tuple[TrialStatus, int]] = {}  # what each row was written at
        self.model: scale.TargetModel | str | None = None  # the law at the target scale

    # ------------------------------------------------------------------------------ the job

    def run(self) -> JobOutcome:
        started = time.monotonic()
        with self.job.lock():
            self._open()
            try:
                problem, ladder = self.prepare()
                with self.runner:
                    self.say(
                        f"runner: {self.runner.describe()}; tracking: {self.tracker.describe()}"
                    )
                    proposer = self.design(problem, ladder)
                    for round_index in range(1, self.spec.search.rounds + 1):
                        self.round(proposer, round_index)
                    self._require_finished(proposer)
                    proxy_recommendation = self.recommend(proposer)
                    report = strategy.report(proposer, problem)
                    recommendation, at_target = self.at_target(proxy_recommendation)
                    validated = self.validate(recommendation, proxy_recommendation)
                    recommendation, validated, at_target = validation.choose(
                        problem, recommendation, validated, at_target, self.model
                    )
                result = self.publish(
                    recommendation, validated, proxy_recommendation, at_target, report
                )
            except BaseException as error:
                self._stopped(error)
                raise
            finally:
                self.progress.close()
            wall = time.monotonic() - started
            self._finish(wall, result)
        return JobOutcome(self.job.path, result, self.book.trials, wall)

    def _open(self) -> None:
        if self.resume:
            self.state = self.job.load_state()
            self.book = TrialBook(self.state.trials, where=str(self.job.path))
            self.status.book = self.book
            finished = sum(t.status.finished for t in self.state.trials)
            self.say(f"resuming: {finished} of {len(self.state.trials)} saved trials are finished")
        else:
            self.job.write_spec(self.spec)
        self.status.write(JobStatus.PREPARING)

    def _stopped(self, error: BaseException) -> None:
        status = JobStatus.stopped_by(error)
        self._save()
        self.status.write(status, error=str(error) or type(error).__name__)
        self.tracker.finish("FAILED" if status is JobStatus.FAILED else "KILLED")

    def _finish(self, wall: float, result: dict[str, Any]) -> None:
        self.status.stage = "done"
        self.status.write(JobStatus.COMPLETED, wall_s=wall)
        # parent run: + the predicted and validated objectives (mixopt.tracking.job_run)
        metrics = {"wall_s": wall, "trials": float(len(self.book))}
        self.tracker.log_job_metrics({**metrics, **job_run.recommendation_metrics(result)})
        for path in self.job.artifacts():
            self.tracker.log_artifact(path)
        # parent run: the recommended weights as params, the manifest and report as artifacts
        job_run.publish(self.tracker, self.job, result, say=self.say)
        self.tracker.finish("FINISHED")
        health = self.tracker.health()
        if health.get("failures"):
            self.status.write(JobStatus.COMPLETED, wall_s=wall, tracking=health)

    # ------------------------------------------------------------------------------- stages

    def prepare(self) -> tuple[SearchProblem, Ladder]:
        """The data stage, then everything the data decides: caps, units, sampler, proxies."""
        self.say(f"preparing data for {len(self.spec.domains)} domains")
        if self._prepare is None:
            from mixopt.data import prepare_data

            self._prepare = prepare_data
        manifest = self._prepare(self.spec, log=self.say)
        self.job.save_manifest(manifest)
        ladder = Ladder.build(self.spec, manifest.vocab_size)
        ladder.check_data(manifest)
        problem = SearchProblem.build(self.spec, manifest)
        for line in problem.describe():
            self.say(line)
        self.problem, self.ladder = problem, ladder
        self.requests = RequestBuilder(
            manifest, ladder, self.spec.resources, self.job, stages=self.spec.train_stages(),
            continual=self.spec.continual,
        )  # fmt: skip
        self.scheduler = self._scheduler()
        self._start_tracking(problem, ladder)
        return problem, ladder

    def design(self, problem: SearchProblem, ladder: Ladder) -> Proposer:
        """The initial design (and the baselines guard rails need); then the strategy's
        proposer, told every finished trial."""
        s = self.spec.search
        initial = problem.sampler.sample(s.initial_trials, np.random.default_rng(s.seed))
        plan = ladder.initial_plan(len(initial))
        trials = self._plan(initial[[i for i, _ in plan]], 0, [level for _, level in plan])
        for name in self.spec.objective.relative_baselines():
            weights = problem.space.as_dict(problem.baseline(name))
            trials.append(self.book.new(weights, 0, s.seed, label=f"baseline:{name}"))
        self._train(trials, "initial design")
        constraints = (
            strategy.guard_rails(problem, self.book) if self.spec.objective.constraints else []
        )
        for c in constraints:
            self.say(f"constraint: {c.name} <= {c.limit:.4f}")
        proposer = strategy.build(problem, ladder, constraints)
        self._tell(proposer, trials)
        return proposer

    def round(self, proposer: Proposer, index: int) -> None:
        """One proposal round (a round proposed before the driver stopped is not proposed
        again: its saved trials run)."""
        assert self.problem is not None and self.ladder is not None
        self._require_finished(proposer)
        s, stage = self.spec.search, f"round {index}/{self.spec.search.rounds}"
        saved = self.book.saved_round(index)
        if saved:
            X = np.array([self.problem.weights(t) for t in saved])
            batch = strategy.Batch(
                self.problem.hierarchy.collapse(X), [t.fidelity_level for t in saved]
            )
        else:
            self.say(f"round {index}: {s.strategy} proposes from {proposer.n_observed} trials")
            batch = strategy.propose(proposer, s.trials_per_round)
            if self.ladder.multi_fidelity:
                chosen = [self.ladder.target if v is None else v for v in batch.levels]
                self.say(f"round {index}: {s.strategy} runs {self.ladder.describe(chosen)}")
            job_run.log_predictor_fit(self.tracker, proposer, s.predictor, index)
        trials = self._plan(batch.X, index, batch.levels)
        self._train(trials, stage)
        self._tell(proposer, trials)

    def recommend(self, proposer: Proposer) -> Recommendation:
        """The proposer's recommendation in leaf weights (the saved one when resuming)."""
        assert self.problem is not None
        self.status.stage = "recommending"
        if self.state.recommendation is not None:
            return recommendation_from_dict(self.state.recommendation)
        recommendation = proposer.recommend()
        recommendation.weights = self.problem.hierarchy.expand(recommendation.weights)
        self.state.recommendation = recommendation_to_dict(recommendation)
        self._save()
        return recommendation

    def at_target(self, proxy: Recommendation) -> tuple[Recommendation, dict[str, Any] | None]:
        """With a target scale in the spec: a scale-aware law on every search trial, and its
        optimum at the target becomes the recommendation (the proxy's stays beside it)."""
        assert self.problem is not None
        target = self.spec.target
        if target.params is None or target.tokens is None:
            return proxy, None
        self.status.stage = "target scale"
        self.model = scale.fit(self.problem, self.book.trials)
        if isinstance(self.model, str):
            self.say(f"target scale: {self.model}; the recommendation is the proxy's")
            return proxy, {"available": False, "reason": self.model}
        recommendation, section = scale.at_target(
            self.problem, self.model, proxy, self.book.told, self.spec.proxy
        )
        self.say(
            f"target scale: {self.model.note}; the optimum at N={target.params:.3g}, "
            f"D={target.tokens:.3g} is predicted {recommendation.predicted:.4f} ± "
            f"{recommendation.predicted_std:.4f} (shrunk toward natural by {section['shrink']:g})"
        )
        return recommendation, section

    def validate(self, recommendation: Recommendation, proxy: Recommendation) -> dict[str, Any]:
        assert self.problem is not None
        if not self.spec.validate_.enabled:
            return {}
        extra = online.mixtures(self.problem, self.requests, self.job, self.say)
        mixtures = validation.candidates(self.problem, recommendation.weights, self._best(), extra)
        if np.abs(proxy.weights - recommendation.weights).sum() > 1e-3:
            mixtures["proxy_optimum"] = proxy.weights  # what the search proxy alone would pick
        by_label = validation.plan(self.problem, self.book, mixtures)
        self._train([t for group in by_label.values() for t in group], "validation")
        return validation.summaries(self.problem, mixtures, by_label, online.schedules(self.job))

    def publish(
        self,
        recommendation: Recommendation,
        validated: dict[str, Any],
        proxy: Recommendation,
        at_target: dict[str, Any] | None,
        report: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        assert self.problem is not None and self.ladder is not None
        document = publishing.document(
            self.problem, self.job, self.ladder, recommendation, self.book.told, validated, report
        )
        if validated and (online_reports := online.read(self.job)):
            document["online"] = online_reports
        if at_target is not None:
            document["proxy_recommendation"] = {
                "weights": self.problem.space.as_dict(proxy.weights),
                "predicted_objective": self.problem.sign * proxy.predicted,
                "predicted_std": proxy.predicted_std,
                "method": proxy.method,
            }
            if isinstance(self.model, scale.TargetModel) and validated:
                at_target["calibration"] = scale.calibration(
                    self.problem, self.model, validated, self.ladder.validation, self.spec.proxy
                )
            document["target_scale"] = at_target
        self.job.write_recommendation(document)
        return document

    # ------------------------------------------------------------------------------ trials

    def _plan(
        self, mixtures: np.ndarray, round_index: int, levels: list[int | None]
    ) -> list[Trial]:
        """Search trials of a round: unit mixtures expanded to leaves."""
        assert self.problem is not None
        space, hierarchy, seed = self.problem.space, self.problem.hierarchy, self.spec.search.seed
        return [
            self.book.new(
                space.as_dict(hierarchy.expand(w)), round_index, seed, fidelity_level=level
            )
            for w, level in zip(mixtures, levels, strict=True)
        ]

    def _train(self, trials: list[Trial], stage: str) -> None:
        self.state.trials = self.book.trials
        self.status.stage = stage
        self.scheduler.run(trials, stage, self._best)

    def _tell(self, proposer: Proposer, trials: list[Trial]) -> None:
        assert self.problem is not None and self.ladder is not None
        finite = [
            t
            for t in trials
            if t.status is TrialStatus.COMPLETED and np.isfinite(t.result["objective"])
        ]
        if finite:
            strategy.tell(proposer, self.problem, self.ladder, finite)
            self.book.told.extend(finite)

    def _record(self, trial: Trial) -> None:
        """A finished trial: its runs-table row, to every listener (once per outcome)."""
        assert self.problem is not None and self.ladder is not None
        manifest = self.problem.manifest
        row = trial_row(
            trial,
            job=self.spec.name,
            fidelity=self.ladder.proxy(trial).fidelity,
            data_hash=manifest.data_hash,
            domain_hashes=manifest.domain_hashes(),
            tokenizer_hash=manifest.tokenizer_hash[:16],
            train_tokens=manifest.train_tokens(),
            stages=stage_list(self.spec.stages, trial.weights) if self.spec.stages else None,
        )
        if self._recorded.get(trial.trial_id) != (trial.status, trial.attempts):
            self._recorded[trial.trial_id] = (trial.status, trial.attempts)
            self.events.trial(trial, row, self.requests(trial))

    def _scheduler(self) -> Scheduler:
        assert self.ladder is not None
        weights = self.spec.objective_weights()
        hooks = SchedulerHooks(
            request=self.requests,
            shape=self.ladder.proxy,
            objective=lambda result: objective_value(result.get("metrics", {}), weights),
            finished=self._record,
            changed=self._save,
            show=self.events.progress,
            say=self.say,
        )
        return Scheduler.for_spec(self.runner, hooks, self.spec)

    # ------------------------------------------------------------------------------ helpers

    def _best(self) -> Trial | None:
        """The best search trial at the target fidelity (cheaper fidelities do not compare)."""
        if self.ladder is None:
            return None
        ladder = self.ladder
        sign = 1.0 if self.spec.objective.direction == "minimize" else -1.0
        return self.book.best(sign, lambda t: ladder.level(t) == ladder.target)

    def _require_finished(self, proposer: Proposer) -> None:
        if proposer.n_observed < 2:
            raise MixoptError(
                f"only {proposer.n_observed} trial(s) finished, at least 2 are needed to go on; "
                f"the errors are in {self.job.log_path} and the runs table"
            )

    def _start_tracking(self, problem: SearchProblem, ladder: Ladder) -> None:
        params = job_run.job_params(self.spec, ladder.validation, problem.manifest.data_hash)
        tags = {"mixopt.job": self.spec.name, "mixopt.job_dir": str(self.job.path.resolve())}
        tags.update(job_run.system_tags())  # user, source, git commit, mixopt version
        self.tracker.start_job(self.spec.name, params, tags)
        self.tracker.log_artifact(self.job.spec_path)

    def _save(self) -> None:
        self.state.trials = self.book.trials
        self.job.save_state(self.state)

    def say(self, text: str) -> None:
        self.events.message(text)
