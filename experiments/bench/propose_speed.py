"""Propose-step speed of the default strategy (``bo``) on RegMix's 512 runs.

The real ``bo`` proposer (GP fit + a batch of 8 continuous mixtures) is told the first 64 and
then all 512 RegMix runs (17 weights → Pile-CC validation loss, read as
``experiments/bench/replay.py`` reads it), and ``propose(8)`` is timed ``--repeats`` times in
one process after one untimed warm-up proposal (imports, first-call set-up); the median is
reported. Each repeat is a fresh proposer told the same runs. The fit is timed inside the
proposal (the proposer's ``_fit``), so the split is fit vs everything else (acquisition:
building qLogNEI, scoring the simulated starts, SLSQP). Options may be overridden as
``KEY=VALUE`` (e.g. ``--option maxiter=50``) to compare settings under the same conditions; run
the script with another checkout on ``PYTHONPATH`` to compare versions.

Timings depend on the machine and its load: compare settings as ratios in one run. The last
line is one JSON object: ``propose_s_64``, ``propose_s_512``, ``fit_s_64``, ``fit_s_512``,
``acquisition_s_64``, ``acquisition_s_512`` (medians), every repeat, the load average.

    nice -n 10 .venv/bin/python experiments/bench/propose_speed.py [--sizes 64 512]
        [--repeats 3] [--option NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.proposers import make_proposer
from mixopt.proposers.bo import BOProposer
from mixopt.runs_table import read_joined, weights_and_target
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace

REGMIX = Path(__file__).resolve().parents[3] / "shared" / "data" / "regmix"
TARGET = "metric/the_pile_pile_cc_val_loss"


def load() -> tuple[np.ndarray, np.ndarray, list[str]]:
    files = [REGMIX / "train_mixture_1m.csv", REGMIX / "train_pile_loss_1m.csv"]
    X, y, columns = weights_and_target(read_joined(files), "train_the_pile_", TARGET, source="r")
    assert y is not None
    weights = X.to_numpy()
    return weights / weights.sum(axis=1, keepdims=True), y.to_numpy(), columns


def option(text: str) -> tuple[str, Any]:
    name, _, value = text.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def one_step(sampler: DirichletSampler, X: np.ndarray, y: np.ndarray, options: dict) -> dict:
    """One timed ``propose(8)``: total seconds and the seconds spent in the GP fit."""
    proposer = make_proposer("bo", sampler, seed=0, **options)
    assert isinstance(proposer, BOProposer)
    proposer.tell(X, y)
    fit_seconds = []
    fit = proposer._fit

    def timed_fit() -> Any:
        started = time.perf_counter()
        try:
            return fit()
        finally:
            fit_seconds.append(time.perf_counter() - started)

    proposer._fit = timed_fit  # type: ignore[method-assign]  # timed in place
    started = time.perf_counter()
    batch = proposer.ask(8)
    total = time.perf_counter() - started
    assert sampler.space.contains(batch, tol=1e-6).all()
    return {"propose_s": total, "fit_s": sum(fit_seconds), "fits": len(fit_seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--option", action="append", default=[], help="a bo option NAME=VALUE")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    X, y, columns = load()
    sampler = DirichletSampler(MixtureSpace.from_bounds(columns), X.mean(axis=0))
    options = dict(option(text) for text in args.option)
    results: dict[str, Any] = {"options": options, "repeats": {}}
    one_step(sampler, X[: min(args.sizes)], y[: min(args.sizes)], options)  # warm-up: imports
    for n in args.sizes:
        runs = [one_step(sampler, X[:n], y[:n], options) for _ in range(args.repeats)]
        results["repeats"][str(n)] = runs
        for key in ("propose_s", "fit_s"):
            results[f"{key}_{n}"] = float(np.median([r[key] for r in runs]))
        results[f"acquisition_s_{n}"] = float(
            np.median([r["propose_s"] - r["fit_s"] for r in runs])
        )
        print(
            f"bo propose(8) at {n} trials: {results[f'propose_s_{n}']:.2f} s "
            f"(fit {results[f'fit_s_{n}']:.2f} s, acquisition {results[f'acquisition_s_{n}']:.2f} s"
            f", {runs[0]['fits']} fit(s) per proposal)",
            flush=True,
        )
    results["load_avg"] = os.getloadavg()[0]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
