"""One CLIMB refinement iteration on a finished job: ``mixopt data refine JOB_DIR --out NEW.yaml``.

    written = refine_job("runs/climb-…", Path("climb-r1.yaml"))
    # climb-r1.yaml: the job's spec with the refined domains (a merged domain lists its
    #                clusters' files; pruned clusters are gone), the decisions as comments
    # climb-r1.carried.csv: the old trials on the refined domains (weight/<domain>, objective)

The job must have discovered its domains (``domains: {cluster: …}``): the finished search trials
at the search proxy's fidelity (mixture → objective) and the clusters' centroids (from the data
cache) go into :func:`mixopt.search.refine.plan_refinement`. The new spec lists the refined
domains explicitly (the cluster files in the cache); bounds, fixed weights and the current
mixture that named a pruned or merged cluster are dropped (said on stdout), anything else that
no longer fits fails validation with the spec's own message.

The carried-over trials warm-start the brain with ``mixopt runs import NEW.carried.csv
--weights weight/ --target objective --study NEW.json`` (ask/tell on the refined domains); a job
run from the new spec starts its own search (jobs do not import trials yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.runs_table import WEIGHT_PREFIX
from mixopt.search.refine import RefinePlan, plan_refinement

CARRIED_SUFFIX = ".carried.csv"


@dataclass
class RefineResult:
    plan: RefinePlan
    spec_path: Path
    carried_path: Path
    carried: int  # trials carried over
    trials: int  # trials the plan was fitted on
    dropped_settings: list[str] = field(default_factory=list)


def carried_path_for(spec_path: Path) -> Path:
    return spec_path.with_name(spec_path.stem + CARRIED_SUFFIX)


def refine_job(job_dir: str | Path, out: Path, **options: Any) -> RefineResult:
    """Plan the refinement of the job's discovered domains and write the new spec and the
    carried-over trials (never over an existing file). ``options``: of
    :func:`~mixopt.search.refine.plan_refinement`."""
    import pandas as pd
    import yaml

    from mixopt.atomic import write_atomic
    from mixopt.job.directory import JobDir
    from mixopt.spec import parse_spec

    out = Path(out)
    carried_path = carried_path_for(out)
    for path in (out, carried_path):
        if path.exists():
            raise MixoptError(f"{path}: already exists; choose another --out (nothing written)")
    job = JobDir(job_dir)
    job.require_job()
    spec = job.load_spec()
    if spec.cluster is None:
        raise MixoptError(
            f"{job.path}: its domains were listed, not discovered (domains: {{cluster: …}}); "
            "refinement prunes and merges clusters"
        )
    W, y, ids = _finished_trials(job, spec)
    centroids, files = _clusters(job, spec.domain_names)
    plan = plan_refinement(
        W, y, spec.domain_names, centroids=centroids,
        minimize=spec.objective.direction == "minimize", **options,
    )  # fmt: skip
    data = spec.to_dict()
    data["name"] = _next_name(spec.name)
    data["domains"] = [
        {"name": name, "paths": [p for c in group for p in files[c]], "format": "jsonl"}
        for name, group in zip(plan.names, plan.groups, strict=True)
    ]
    dropped = _drop_changed(data, set(plan.domains) - set(plan.names))
    try:
        parse_spec(data, source=str(out))
    except MixoptError as error:
        raise MixoptError(
            f"the refined spec does not validate (it names clusters that were pruned or "
            f"merged?); nothing written:\n{error}"
        ) from None
    new_W, new_y, kept = plan.carry_over(W, y)
    table = pd.DataFrame(new_W, columns=[f"{WEIGHT_PREFIX}{n}" for n in plan.names])
    table.insert(0, "trial_id", np.asarray(ids)[kept])
    table["objective"] = new_y
    header = "".join(f"# {d.cluster}: {d.action}: {d.reason}\n" for d in plan.decisions)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(carried_path, table.to_csv(index=False))
    write_atomic(
        out,
        f"# refined from job {spec.name} ({job.path}) by mixopt data refine\n{header}"
        + yaml.safe_dump(data, sort_keys=False),
    )
    return RefineResult(plan, out, carried_path, int(kept.sum()), len(y), dropped)


def _finished_trials(job: Any, spec: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The completed search trials at the search proxy's fidelity: weights, objective, ids."""
    frame = job.read_runs()
    if frame is None:
        raise MixoptError(f"{job.path}: no runs table yet; run the search first")
    columns = [f"{WEIGHT_PREFIX}{n}" for n in spec.domain_names]
    missing = [c for c in (*columns, "objective", "status") if c not in frame.columns]
    if missing:
        raise MixoptError(f"{job.runs_path}: no column(s) {missing}; not this job's runs table")
    mask = (frame["status"] == "completed") & frame["objective"].notna()
    if "stage" in frame.columns:
        mask &= frame["stage"] == "search"
    if "fidelity" in frame.columns:
        mask &= frame["fidelity"] == spec.fidelity_proxies()[-1].fidelity
    rows = frame[mask]
    W = rows[columns].to_numpy(dtype=float)
    return W, rows["objective"].to_numpy(dtype=float), [str(t) for t in rows["trial_id"]]


def _clusters(job: Any, names: list[str]) -> tuple[np.ndarray | None, dict[str, list[str]]]:
    """The centroids (None when the cluster folder has none) and each cluster's files, from the
    job's data manifest."""
    from mixopt.data.cluster import CENTROIDS_FILE

    manifest = job.load_manifest()
    if manifest is None:
        raise MixoptError(f"{job.path}: no data manifest; the job's data stage has not run")
    files = {n: list(manifest.domains[n].files) for n in names if n in manifest.domains}
    if sorted(files) != sorted(names):
        raise MixoptError(
            f"{job.path}: its manifest lacks cluster(s) {sorted(set(names) - set(files))}"
        )
    folder = Path(files[names[0]][0]).parent
    path = folder / CENTROIDS_FILE
    if not path.is_file():
        return None, files
    centroids = np.load(path)
    return (centroids if centroids.shape[0] == len(names) else None), files


def _drop_changed(data: dict[str, Any], gone: set[str]) -> list[str]:
    """Remove settings naming clusters that no longer are domains; what was removed."""
    dropped = []
    for section, key in (("space", "bounds"), ("space", "fixed")):
        mapping = data.get(section, {}).get(key) or {}
        for name in sorted(set(mapping) & gone):
            del mapping[name]
            dropped.append(f"{section}.{key}.{name}")
    current = (data.get("validate") or {}).get("current")
    if current and set(current) & gone:
        data["validate"]["current"] = None
        dropped.append("validate.current")
    return dropped


def _next_name(name: str) -> str:
    """``climb`` → ``climb-r1``, ``climb-r1`` → ``climb-r2``."""
    stem, _, number = name.rpartition("-r")
    if stem and number.isdigit():
        return f"{stem}-r{int(number) + 1}"
    return f"{name}-r1"
