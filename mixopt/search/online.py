"""Online mixture methods as validated baselines: DoReMi and Aioli next to the offline search.

With ``doremi`` among ``validate.baselines``, the job runs DoReMi (``proxies.doremi``: a
reference proxy on ``validate.doremi.reference``, then a Group-DRO proxy whose domain weights
follow its excess loss; the average weights are its mixture) on the search proxy with the
search's seed and data, before validation. Its mixture, projected into the job's space (bounds,
fixed weights, caps), is then validated with the same paired seeds as every other mixture, so a
team sees whether the online method or the offline search wins on its data.

It costs two search proxies (reported in ``recommendation.json`` under ``online.doremi`` with
its raw and validated weights, its weight trajectory and its warnings, e.g. weights collapsing
onto one domain).

With ``aioli``, the job runs Aioli (``proxies.aioli``: rounds of short, rolled-back sweeps that
estimate the linear mixing law's interactions, then an exponentiated-gradient step of the
proportions) on the search proxy from ``validate.aioli.initial``. Its output is a *schedule*
(one mixture per round), and validation trains it as one: the ``aioli`` validation trials run
the rounds as stages (:func:`schedule_stages`), their summary carries the schedule and its
``weights`` are the step-weighted average. A schedule never replaces the recommendation (a
single mixture). ``online.aioli`` reports the schedule, the interactions, the cost (sweeps
included) and warnings.

Results are kept in the job directory (``JobDir.online_path``), so a resumed job does not train
them again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.atomic import write_atomic
from mixopt.trials import Trial
from mixopt.verdict import AIOLI, DOREMI

if TYPE_CHECKING:
    from mixopt.job import JobDir
    from mixopt.search.problem import SearchProblem
    from mixopt.search.requests import RequestBuilder


def mixtures(
    problem: SearchProblem, requests: RequestBuilder, job: JobDir, say: Callable[[str], None]
) -> dict[str, np.ndarray]:
    """Label → mixture in the space for each online baseline the spec asks for (Aioli's: the
    average of its schedule)."""
    out: dict[str, np.ndarray] = {}
    for name, run in ((DOREMI, doremi), (AIOLI, aioli)):
        if name in problem.spec.validate_.baselines:
            report = run(problem, requests, job, say)
            out[name] = np.array([report["validated_weights"][d] for d in problem.space.domains])
    return out


def schedules(job: JobDir) -> dict[str, list[dict[str, Any]]]:
    """Label → the schedule an online baseline is validated as (Aioli's rounds)."""
    report = read(job).get(AIOLI)
    return {AIOLI: list(report["schedule"])} if report else {}


def schedule_stages(job: JobDir, label: str) -> tuple[Any, ...]:
    """The trainer's stages of the schedule ``label`` is validated as (empty: none)."""
    schedule = schedules(job).get(label) if label == AIOLI else None
    if not schedule:
        return ()
    from proxies.stages import StageConfig

    shares = np.array([float(r["share"]) for r in schedule])
    shares = shares / shares.sum()
    return tuple(
        StageConfig(float(share), dict(r["weights"]), name=f"round{i}")
        for i, (share, r) in enumerate(zip(shares, schedule, strict=True))
    )


def doremi(
    problem: SearchProblem, requests: RequestBuilder, job: JobDir, say: Callable[[str], None]
) -> dict[str, Any]:
    """DoReMi's report (trained now, or read back from an earlier run of this job)."""
    from mixopt.worker import execute_doremi

    settings = problem.spec.validate_.doremi
    saved = _saved(job, DOREMI, settings.model_dump())
    if saved is not None:
        return saved
    reference = problem.space.as_dict(problem.baseline(settings.reference))
    # the search proxy, its data and seed; one mixture throughout
    request = requests(Trial(DOREMI, -1, reference, problem.spec.search.seed, label=DOREMI))
    say(f"doremi: a reference proxy on the {settings.reference} mixture, then a Group-DRO proxy")
    result = execute_doremi(
        request, reference_weights=reference, step_size=settings.step_size,
        smoothing=settings.smoothing,
    )  # fmt: skip
    report = _report(problem, request, settings.model_dump(), result)
    inside = problem.space.project(np.array([report["weights"][d] for d in problem.space.domains]))
    report.update(
        validated_weights=problem.space.as_dict(inside[0]),
        reference=settings.reference,
        trajectory=result.get("trajectory", []),
    )
    shown = ", ".join(f"{d} {w:.3f}" for d, w in report["weights"].items())
    return _save(job, DOREMI, report, say, f"mixture {shown}")


def aioli(
    problem: SearchProblem, requests: RequestBuilder, job: JobDir, say: Callable[[str], None]
) -> dict[str, Any]:
    """Aioli's report (trained now, or read back from an earlier run of this job)."""
    from mixopt.worker import execute_aioli

    settings = problem.spec.validate_.aioli
    saved = _saved(job, AIOLI, settings.model_dump())
    if saved is not None:
        return saved
    initial = problem.space.as_dict(problem.baseline(settings.initial))
    request = requests(Trial(AIOLI, -1, initial, problem.spec.search.seed, label=AIOLI))
    say(f"aioli: {settings.rounds} rounds from the {settings.initial} mixture on the search proxy")
    result = execute_aioli(request, **settings.model_dump(exclude={"initial"}))
    report = _report(problem, request, settings.model_dump(), result)
    schedule = [{"share": r["share"], "weights": dict(r["weights"])} for r in result["schedule"]]
    report.update(
        validated_weights=report["weights"],  # validated as its schedule (its average labels it)
        schedule=schedule,
        interactions=result.get("interactions", []),
        sweep_tokens=result.get("sweep_tokens"),
    )
    return _save(job, AIOLI, report, say, f"{len(schedule)} rounds")


def _saved(job: JobDir, name: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """``name``'s report from an earlier run of this job with the same settings, or None."""
    saved = read(job).get(name)
    return dict(saved) if saved is not None and saved.get("settings") == settings else None


def _report(
    problem: SearchProblem, request: Any, settings: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    """What every online method reports: its settings, mixture, cost and warnings."""
    tokens = float(result.get("tokens", 0))
    return {
        "settings": settings,
        "weights": {d: float(result["weights"].get(d, 0.0)) for d in problem.space.domains},
        "tokens": tokens,
        "proxy_runs": tokens / max(1, request.proxy.train_tokens),
        "wall_s": result.get("wall_s"),
        "collapsed": bool(result.get("collapsed", False)),
        "warnings": list(result.get("warnings", [])),
    }


def _save(
    job: JobDir, name: str, report: dict[str, Any], say: Callable[[str], None], what: str
) -> dict[str, Any]:
    """Say ``report``'s warnings and ``what`` it found, keep it in the job directory."""
    for warning in report["warnings"]:
        say(f"{name}: {warning}")
    say(f"{name}: {what} ({report['proxy_runs']:.1f} search proxies of training)")
    write_atomic(job.online_path, json.dumps({**read(job), name: report}, indent=2))
    return report


def read(job: JobDir) -> dict[str, Any]:
    """The online methods' reports saved in the job directory ({} when none ran)."""
    try:
        data = json.loads(job.online_path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
