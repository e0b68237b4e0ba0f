"""Replay benchmark on RegMix's 512 runs: how fast does each strategy find the best mixture?

Every strategy searches the 512 runs as a pool (it learns a row's Pile-CC loss only by
evaluating it), starting from 8 random rows and adding batches of 4 chosen by the strategy's
real proposer (the one a job runs) over the rows not yet evaluated. Normalised regret after
16/24/32 evaluations = (best found - pool best) / (pool median - pool best), over 10 seeds.

Also:
- the time of one propose step of the search loop's default strategy (fit + a batch of 8
  continuous mixtures) at 64 and 512 trials;
- multi-fidelity: a pool of the same 512 mixtures at two fidelities, the real loss (fidelity
  1.0, cost 1) and a cheap, noisy, biased stand-in (fidelity 0.1, cost 0.1) built from it; mfbo
  versus bo on the target fidelity alone, at equal spent cost. (RegMix released one fidelity;
  the low one is synthetic, so this checks the machinery, not a published result.)

The last line is one JSON object with every number.

    .venv/bin/python experiments/bench/replay.py [--seeds 10] [--strategies random regmix law bo]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from mixopt.proposers import make_proposer
from mixopt.replay import Pool, ReplayConfig, replay
from mixopt.runs_table import read_joined, weights_and_target
from mixopt.sampling import DirichletSampler
from mixopt.space import MixtureSpace

REGMIX = Path(__file__).resolve().parents[3] / "shared" / "data" / "regmix"
TARGET = "metric/the_pile_pile_cc_val_loss"
BUDGETS = (16, 24, 32)


def load() -> tuple[np.ndarray, np.ndarray, list[str]]:
    files = [REGMIX / "train_mixture_1m.csv", REGMIX / "train_pile_loss_1m.csv"]
    X, y, columns = weights_and_target(read_joined(files), "train_the_pile_", TARGET, source="r")
    assert y is not None
    return X.to_numpy(), y.to_numpy(), columns


def regret(best: float, y: np.ndarray) -> float:
    return float((best - y.min()) / (np.median(y) - y.min()))


def strategies(X: np.ndarray, y: np.ndarray, names: list[str], seeds: int) -> dict:
    out: dict = {}
    for name in names:
        started = time.perf_counter()
        per_budget: dict[int, list[float]] = {b: [] for b in BUDGETS}
        for seed in range(seeds):
            config = ReplayConfig(budget=max(BUDGETS), initial=8, batch=4, strategy=name, seed=seed)
            values = replay(Pool(X, y), config=config)["value"].to_numpy()
            for b in BUDGETS:
                per_budget[b].append(regret(values[:b].min(), y))
        seconds = (time.perf_counter() - started) / seeds
        out[name] = {str(b): float(np.mean(v)) for b, v in per_budget.items()}
        out[name]["seconds_per_search"] = seconds
        cells = "  ".join(f"@{b}: {np.mean(v):.4f}" for b, v in per_budget.items())
        print(f"{name:8s} regret {cells}   ({seconds:.1f} s per search)", flush=True)
    return out


def propose_step_seconds(X: np.ndarray, y: np.ndarray, columns: list[str]) -> dict:
    """Fit + one batch of 8 continuous proposals, with the loop's default strategy (bo)."""
    X = X / X.sum(axis=1, keepdims=True)
    space = MixtureSpace.from_bounds(columns)
    sampler = DirichletSampler(space, X.mean(axis=0))
    out = {}
    for n in (64, 512):
        proposer = make_proposer("bo", sampler, seed=0)
        proposer.tell(X[:n], y[:n])
        started = time.perf_counter()
        batch = proposer.ask(8)
        out[str(n)] = time.perf_counter() - started
        assert space.contains(batch, tol=1e-6).all()
        print(f"propose step (bo, fit + batch of 8) at {n} trials: {out[str(n)]:.1f} s", flush=True)
    return out


def multi_fidelity(X: np.ndarray, y: np.ndarray, seeds: int, budget_cost: float) -> dict:
    rng = np.random.default_rng(123)
    drift = 0.15 * np.sin(7.0 * X @ rng.normal(size=X.shape[1]))  # mixture-dependent bias
    low = 0.9 * y + 0.4 + drift + 0.03 * rng.normal(size=len(y))
    pool = Pool(
        np.vstack([X, X]),
        np.concatenate([y, low]),
        fidelity=np.concatenate([np.ones(len(y)), np.full(len(y), 0.1)]),
        cost=np.concatenate([np.ones(len(y)), np.full(len(y), 0.1)]),
    )
    out: dict = {}
    for name in ("bo", "mfbo"):
        regrets = []
        for seed in range(seeds):
            config = ReplayConfig(
                budget=10_000,
                initial=8,
                batch=4,
                strategy=name,
                seed=seed,
                budget_cost=budget_cost,
                target_fidelity=1.0,
            )
            trace = replay(pool, config=config)
            on_target = trace[np.isclose(trace["fidelity"], 1.0)]
            best = on_target["value"].min() if len(on_target) else np.median(y)
            regrets.append(regret(best, y))
        out[name] = float(np.mean(regrets))
        print(f"multi-fidelity, cost budget {budget_cost:g}: {name:5s} regret {out[name]:.4f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", default=["random", "regmix", "law", "bo"])
    parser.add_argument("--mf-seeds", type=int, default=5)
    parser.add_argument("--mf-budget-cost", type=float, default=16.0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    X, y, columns = load()
    results = {
        "regret": strategies(X, y, args.strategies, args.seeds),
        "propose_step_s": propose_step_seconds(X, y, columns),
        "multi_fidelity": multi_fidelity(X, y, args.mf_seeds, args.mf_budget_cost),
        "seeds": args.seeds,
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
