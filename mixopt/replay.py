"""Replay a search on a pool of finished runs: the honest way to compare strategies offline.

The search may learn a pool row's target only by "evaluating" it (adding it to the trace), never
more than ``budget`` rows and never one twice. ``random`` evaluates rows in a seeded random order;
``regmix`` starts with ``initial`` random rows, then repeatedly fits the predictor on what it has
evaluated and evaluates the ``batch`` unevaluated rows with the best predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixopt.errors import MixoptError
from mixopt.predictors import make_predictor

STRATEGIES = ("random", "regmix")


@dataclass(frozen=True)
class ReplayConfig:
    budget: int
    initial: int
    batch: int
    seed: int = 0
    strategy: str = "regmix"
    maximize: bool = False
    predictor: str = "lightgbm"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise MixoptError(
                f"unknown strategy {self.strategy!r}; available: {', '.join(STRATEGIES)}"
            )
        if self.budget < 1 or self.initial < 1 or self.batch < 1:
            raise MixoptError("budget, initial and batch must be >= 1")


def replay(X: np.ndarray, y: np.ndarray, config: ReplayConfig) -> pd.DataFrame:
    """Trace of evaluated rows: ``step`` (0-based), ``pool_index``, ``value``."""
    n = len(y)
    budget = min(config.budget, n)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    first = budget if config.strategy == "random" else min(budget, max(2, config.initial))
    evaluated: list[int] = [int(i) for i in order[:first]]
    sign = -1.0 if config.maximize else 1.0
    while len(evaluated) < budget:
        take = min(config.batch, budget - len(evaluated))
        remaining = np.setdiff1d(np.arange(n), evaluated)
        model = make_predictor(config.predictor).fit(X[evaluated], sign * y[evaluated])
        predicted = model.predict(X[remaining])
        evaluated.extend(int(i) for i in remaining[np.argsort(predicted, kind="stable")[:take]])
    return pd.DataFrame(
        {"step": np.arange(len(evaluated)), "pool_index": evaluated, "value": y[evaluated]}
    )
