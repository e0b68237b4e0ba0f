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

import dataclasses
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
    saved = read(job).get(DOREMI)
    if saved is not None and saved.get("settings") == settings.model_dump():
        return dict(saved)
    reference = problem.space.as_dict(problem.baseline(settings.reference))
    trial = Trial(DOREMI, -1, reference, problem.spec.search.seed, label=DOREMI)
    request = requests(trial)  # the search proxy, its data and seed; one mixture throughout
    train = dataclasses.replace(
        request.train, stages=(), base=None, trunk_dir=None, checkpoint_dir=None,
        checkpoint_every=0, keep_checkpoint=False,
    )  # fmt: skip
    say(f"doremi: a reference proxy on the {settings.reference} mixture, then a Group-DRO proxy")
    result = execute_doremi(
        dataclasses.replace(request, train=train), reference_weights=reference,
        step_size=settings.step_size, smoothing=settings.smoothing,
    )  # fmt: skip
    raw = {d: float(result["weights"].get(d, 0.0)) for d in problem.space.domains}
    inside = problem.space.project(np.array([raw[d] for d in problem.space.domains]))[0]
    report = {
        "settings": settings.model_dump(),
        "weights": raw,
        "validated_weights": problem.space.as_dict(inside),
        "reference": settings.reference,
        "tokens": result.get("tokens"),
        "proxy_runs": result.get("tokens", 0) / max(1, request.proxy.train_tokens),
        "wall_s": result.get("wall_s"),
        "collapsed": bool(result.get("collapsed", False)),
        "warnings": list(result.get("warnings", [])),
        "trajectory": result.get("trajectory", []),
    }
    for warning in report["warnings"]:
        say(f"doremi: {warning}")
    shown = ", ".join(f"{d} {w:.3f}" for d, w in raw.items())
    say(f"doremi: mixture {shown} ({report['proxy_runs']:.1f} search proxies of training)")
    write_atomic(job.online_path, json.dumps({**read(job), DOREMI: report}, indent=2))
    return report


def aioli(
    problem: SearchProblem, requests: RequestBuilder, job: JobDir, say: Callable[[str], None]
) -> dict[str, Any]:
    """Aioli's report (trained now, or read back from an earlier run of this job)."""
    from mixopt.worker import execute_aioli

    settings = problem.spec.validate_.aioli
    saved = read(job).get(AIOLI)
    if saved is not None and saved.get("settings") == settings.model_dump():
        return dict(saved)
    initial = problem.space.as_dict(problem.baseline(settings.initial))
    request = requests(Trial(AIOLI, -1, initial, problem.spec.search.seed, label=AIOLI))
    knobs = settings.model_dump(exclude={"initial"})
    say(f"aioli: {settings.rounds} rounds from the {settings.initial} mixture on the search proxy")
    result = execute_aioli(request, **knobs)
    raw = {d: float(result["weights"].get(d, 0.0)) for d in problem.space.domains}
    tokens = float(result.get("tokens", 0))
    report = {
        "settings": settings.model_dump(),
        "weights": raw,
        "validated_weights": raw,  # validated as its schedule (its average labels it)
        "schedule": [
            {"share": r["share"], "weights": dict(r["weights"])} for r in result["schedule"]
        ],
        "interactions": result.get("interactions", []),
        "tokens": tokens,
        "sweep_tokens": result.get("sweep_tokens"),
        "proxy_runs": tokens / max(1, request.proxy.train_tokens),
        "wall_s": result.get("wall_s"),
        "collapsed": bool(result.get("collapsed", False)),
        "warnings": list(result.get("warnings", [])),
    }
    for warning in report["warnings"]:
        say(f"aioli: {warning}")
    say(f"aioli: {len(report['schedule'])} rounds ({report['proxy_runs']:.1f} search proxies)")
    write_atomic(job.online_path, json.dumps({**read(job), AIOLI: report}, indent=2))
    return report


def read(job: JobDir) -> dict[str, Any]:
    """The online methods' reports saved in the job directory ({} when none ran)."""
    try:
        data = json.loads(job.online_path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
