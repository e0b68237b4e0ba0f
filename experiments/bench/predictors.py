"""Predictor benchmark on RegMix's 512 runs: 5-fold CV Spearman at n = 64, 128, 256, 512.

For each training-set size n, draw ``reps`` random subsets of n runs (n = 512 is the whole table,
so its repeats differ only in the fold split), run 5-fold cross-validation of every predictor, and
report Spearman ×100 of out-of-fold predictions (plus Pearson, MAE and, for predictors with a
standard deviation, 68%/95% interval coverage). ``auto`` and ``ensemble`` are cross-validated
*nested*: their own model choice happens inside each training fold, never seeing the held-out
fold. The last line is one JSON object with every number.

    .venv/bin/python experiments/bench/predictors.py [--sizes 64 128 256 512] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from mixopt.predictors import make_predictor
from mixopt.predictors.cv import cross_val_predict, score
from mixopt.runs_table import read_joined, weights_and_target

REGMIX = Path(__file__).resolve().parents[3] / "shared" / "data" / "regmix"
TARGET = "metric/the_pile_pile_cc_val_loss"


def load_regmix(target: str) -> tuple[np.ndarray, np.ndarray]:
    """RegMix's 512 runs: mixture file joined with the loss file on ``index``."""
    files = [REGMIX / "train_mixture_1m.csv", REGMIX / "train_pile_loss_1m.csv"]
    X, y, _ = weights_and_target(read_joined(files), "train_the_pile_", target, source="regmix")
    assert y is not None
    return X.to_numpy(), y.to_numpy()


PREDICTORS = [
    "linear",
    "loglinear",
    "quadratic",
    "mixing_law",
    "lightgbm_regmix",
    "lightgbm",
    "gp",
    "ensemble",
    "auto",
]
# RegMix's exact LightGBM (LightGBM's default leaf size of 20 rows), next to mixopt's `lightgbm`,
# which scales the leaf size down for small tables.
VARIANTS = {"lightgbm_regmix": ("lightgbm", {"min_child_samples": 20})}


def build(name: str) -> object:
    base, params = VARIANTS.get(name, (name, {}))
    return make_predictor(base, **params)


def run(sizes: list[int], reps: int, predictors: list[str], target: str) -> dict:
    X_all, y_all = load_regmix(target)
    results: dict = {}
    for n in sizes:
        for name in predictors:
            rows = []
            started = time.perf_counter()
            for rep in range(reps):
                rng = np.random.default_rng(rep)
                idx = rng.permutation(len(y_all))[:n]
                X, y = X_all[idx], y_all[idx]
                pred, std = cross_val_predict(build(name), X, y, k=5, seed=rep)
                rows.append(score(y, pred, std).as_dict())
            seconds = (time.perf_counter() - started) / reps
            summary: dict[str, float] = {
                key: float(np.mean([r[key] for r in rows]))
                for key in rows[0]
                if rows[0][key] is not None
            }
            summary["spearman_std"] = float(np.std([r["spearman"] or 0.0 for r in rows]))
            summary["seconds_per_cv"] = seconds
            results.setdefault(str(n), {})[name] = summary
            cover = ""
            if "coverage68" in summary:
                cover = f"  cover68 {summary['coverage68']:.2f} cover95 {summary['coverage95']:.2f}"
            print(
                f"n={n:4d} {name:11s} spearman {100 * summary['spearman']:6.2f} "
                f"± {100 * summary['spearman_std']:4.2f}  pearson {100 * summary['pearson']:6.2f}  "
                f"mae {summary['mae']:.4f}{cover}  ({seconds:.1f} s per 5-fold CV)",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--predictors", nargs="+", default=PREDICTORS)
    parser.add_argument("--target", default=TARGET)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    results = run(args.sizes, args.reps, args.predictors, args.target)
    print("\nSpearman x100 (5-fold CV, mean over repeats)")
    print("predictor   " + "".join(f"{'n=' + str(n):>9s}" for n in args.sizes))
    for name in args.predictors:
        cells = "".join(f"{100 * results[str(n)][name]['spearman']:9.2f}" for n in args.sizes)
        print(f"{name:11s} {cells}")
    load = os.getloadavg()[0]
    print(
        json.dumps({"target": args.target, "reps": args.reps, "load_avg": load, "results": results})
    )


if __name__ == "__main__":
    main()
