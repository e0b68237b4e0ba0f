"""What a team optimises for, on the demo corpus: an evaluation set vs the mean training loss, and
the demo probe at the validation scale.

Both jobs are the demo's search, run with Ray: six domains, the nano proxy on 300k tokens, bo
(10 initial trials + 2 rounds of 2), no ladder. Validation is on the tiny preset (600k tokens) with
3 paired seeds next to the uniform and natural mixtures. Every proxy also reports:

- the eval set ``licenses``: the software licences in ``/usr/share/common-licenses``, legal prose
  that no training domain holds and that is never trained on;
- the demo's ``define`` probe: GCIDE word → definition, 4 choices, headwords absent from the
  training dictionary.

(a) **Optimising for the eval set.** One job minimises the mean validation loss of the training
    domains (the default), the other ``val_loss/licenses``. Reported: each recommendation's
    validated ``val_loss/licenses``. Validation seeds are common to both jobs (same seeds, same
    data order, same validation windows), so their difference is paired seed by seed; we give
    the paired mean, a 95% t-interval and t.
(b) **The probe at the validation scale.** ``probe/define/accuracy`` and ``probe/define/margin``
    of the uniform, natural and recommended mixtures of the mean-loss job, per seed and
    averaged.

The last line is one JSON object.

    nice .venv/bin/python experiments/bench/objectives.py [--licenses DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scaling import DEMO_SPEC

OUT = Path(__file__).resolve().parent / "out" / "objectives"
EVAL = "licenses"
PROBE = "define"


def job_spec(args: argparse.Namespace, objective: dict[str, Any]) -> Any:
    import yaml

    from mixopt.spec import parse_spec

    data = yaml.safe_load(DEMO_SPEC.read_text())
    data["name"] = "objectives-bench"
    data["evals"] = [{"name": EVAL, "paths": [str(args.licenses)], "format": "text"}]
    data["objective"] = objective
    data["search"].pop("scales", None)
    data["search"].update(initial_trials=args.initial, rounds=args.rounds)
    data["proxy"].pop("eval_every", None)
    data["target"].pop("params", None)
    data["validate"] = {
        "baselines": ["uniform", "natural"], "seeds": args.seeds, "preset": args.validate_preset,
        "train_tokens": args.validate_tokens,
    }  # fmt: skip
    data["tracking"] = {"experiment": "mixopt-objectives-bench"}
    return parse_spec(data, source="objectives-bench", base_dir=DEMO_SPEC.parent)


def run(args: argparse.Namespace, name: str, objective: dict[str, Any]) -> dict[str, Any]:
    from mixopt.job import JobDir
    from mixopt.search.launch import run_job

    spec = job_spec(args, objective)
    job = JobDir.new(spec, OUT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.perf_counter()
    outcome = run_job(spec, job, runner="ray")
    return {"rec": outcome.recommendation, "wall_s": time.perf_counter() - started,
            "job_dir": str(job.path)}  # fmt: skip


def by_seed(summary: dict[str, Any], metric: str) -> dict[str, float]:
    return {
        seed: float(metrics[metric])
        for seed, metrics in summary.get("metrics_by_seed", {}).items()
        if metric in metrics
    }


def paired(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """a - b over the seeds both have: mean, 95% t-interval, t."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds])
    out: dict[str, Any] = {"seeds": len(seeds), "mean": float(d.mean()) if len(d) else None}
    if len(d) >= 2:
        se = float(d.std(ddof=1) / math.sqrt(len(d)))
        half = float(stats.t.ppf(0.975, len(d) - 1) * se)
        out.update(ci=[out["mean"] - half, out["mean"] + half], t=out["mean"] / se if se else None)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--licenses", type=Path, default=Path("/usr/share/common-licenses"))
    p.add_argument("--initial", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--validate-preset", default="tiny")
    p.add_argument("--validate-tokens", type=int, default=600_000)
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)

    mean_job = run(args, "mean", {"direction": "minimize"})
    eval_job = run(args, "eval", {"direction": "minimize", "metrics": {f"val_loss/{EVAL}": 1.0}})
    metric = f"val_loss/{EVAL}"
    a = mean_job["rec"]["validation"]["recommended"]
    b = eval_job["rec"]["validation"]["recommended"]
    gain = paired(by_seed(a, metric), by_seed(b, metric))  # > 0: the eval-set job is better
    print(f"(a) validated {metric}: mean-loss job {np.mean(list(by_seed(a, metric).values())):.4f}"
          f", eval-set job {np.mean(list(by_seed(b, metric).values())):.4f}; paired difference "
          f"{gain['mean']:+.4f}, 95% CI {gain.get('ci')}, t = {gain.get('t')}")  # fmt: skip
    probe: dict[str, Any] = {}
    for label in ("recommended", "uniform", "natural"):
        summary = mean_job["rec"]["validation"].get(label, {})
        probe[label] = {
            kind: by_seed(summary, f"probe/{PROBE}/{kind}")
            for kind in ("accuracy", "accuracy_norm", "margin")
        }
        means = {k: float(np.mean(list(v.values()))) for k, v in probe[label].items() if v}
        print(f"(b) {label:>11}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
    out = {
        "eval_metric": metric,
        "recommended_weights": {
            "mean_loss": mean_job["rec"]["weights"], "eval_set": eval_job["rec"]["weights"]
        },
        "eval_loss_mean_job": by_seed(a, metric),
        "eval_loss_eval_job": by_seed(b, metric),
        "paired_gain": gain,
        "probe": probe,
        "wall_s": {"mean_loss": mean_job["wall_s"], "eval_set": eval_job["wall_s"]},
        "verdicts": {"mean_loss": mean_job["rec"].get("verdict"),
                     "eval_set": eval_job["rec"].get("verdict")},
    }  # fmt: skip
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
