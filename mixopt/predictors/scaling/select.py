"""Choose a scale-aware law by how well it *extrapolates*, then refit it on everything.

In-sample fit says little about a law's prediction at a larger scale, so the selector holds out
the largest scale it has (``extrapolation_split``):

- three sizes or more: every point of the largest size (fit on the smaller sizes);
- two sizes: the later half of the tokens of the larger size's runs (fit on the smaller size and
  the larger size's earlier tokens) — N-extrapolation itself cannot be held out with two sizes;
- one size: the later half of the tokens of every run.

Each candidate (``capacity``, ``joint``, ``bimix``, ``nested`` by default) is fitted without its
bootstrap on the rest and scored on the held-out points by the mean absolute percentage error of
the objective (ties broken by the Spearman correlation of the held-out runs' last points, the
mixture ranking). A candidate the data cannot support (too few points per run, …) is reported
with its error and skipped. The winner is refitted on all rows with its bootstrap: ``choice_``,
``scores_`` and ``split_`` say what happened, and ``model_`` predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from mixopt.predictors.scaling.base import ScalingDataError, run_ids, split_inputs
from mixopt.predictors.scaling.objective import LAW_NAMES, make_law

DEFAULT_LAWS = ("joint", "capacity", "bimix", "nested")
HELD_OUT_SHARE = 0.5  # the later half of the tokens of a held-out run


def extrapolation_split(X: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """Boolean masks (train, test) over rows and a sentence saying what is held out."""
    W, N, D = split_inputs(X)
    sizes = np.unique(N)
    runs = run_ids(W, N)
    run_max = np.array([D[runs == r].max() for r in runs])
    later = np.greater(D, HELD_OUT_SHARE * run_max)
    largest = np.isclose(N, sizes[-1])
    if len(sizes) >= 3:
        test = largest
        how = f"fit on {len(sizes) - 1} smaller sizes, judged on the largest (N={sizes[-1]:.4g})"
    elif len(sizes) == 2:
        test = largest & later
        how = (
            f"fit on N={sizes[0]:.4g} and the earlier tokens at N={sizes[-1]:.4g}, judged on "
            "the later half of the larger size's tokens"
        )
    else:
        test = later
        how = "one size: fit on the earlier tokens of each run, judged on the later half"
    if not test.any() or test.all():
        raise ScalingDataError(
            "extrapolation split: every run needs points at several token counts to hold out "
            "its later tokens"
        )
    return ~test, test, how


def score_extrapolation(
    model: Any, X: np.ndarray, Y: np.ndarray, weights: np.ndarray
) -> dict[str, float]:
    """MAPE of the objective on (X, Y) and the Spearman of each run's last point."""
    truth = Y @ weights
    pred = model.predict(X)
    W, N, D = split_inputs(X)
    runs = run_ids(W, N)
    last = np.array([np.flatnonzero(runs == r)[np.argmax(D[runs == r])] for r in np.unique(runs)])
    rho = float(spearmanr(pred[last], truth[last]).statistic) if len(last) >= 3 else float("nan")
    return {"mape": float(np.mean(np.abs(pred - truth) / truth)), "spearman": rho}


class ScalingLawSelector(RegressorMixin, BaseEstimator):
    def __init__(
        self,
        candidates: Sequence[str] = DEFAULT_LAWS,
        target_weights: Sequence[float] | None = None,
        n_bootstrap: int = 32,
        random_state: int = 0,
        target_domains: Sequence[int | None] | None = None,
    ) -> None:
        self.candidates = candidates
        self.target_weights = target_weights
        self.target_domains = target_domains
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state

    @property
    def has_std(self) -> bool:
        return self.n_bootstrap > 1

    def _make(self, name: str, n_bootstrap: int) -> Any:
        return make_law(
            name,
            self.target_weights,
            self.target_domains,
            n_bootstrap=n_bootstrap,
            random_state=self.random_state,
        )

    def fit(self, X: Any, Y: Any) -> ScalingLawSelector:
        unknown = [c for c in self.candidates if c not in LAW_NAMES]
        if unknown or not self.candidates:
            raise ScalingDataError(
                f"ScalingLawSelector: unknown candidate(s) {unknown}; known: {', '.join(LAW_NAMES)}"
            )
        X = np.asarray(X, dtype=float)
        Y = np.asarray(Y, dtype=float)
        Y = Y[:, None] if Y.ndim == 1 else Y
        train, test, self.split_ = extrapolation_split(X)
        t = Y.shape[1]
        weights = np.full(t, 1.0 / t) if self.target_weights is None else self.target_weights
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (t,):
            raise ScalingDataError(f"target_weights must have {t} entries, one per column of Y")
        self.scores_: dict[str, dict[str, Any]] = {}
        for name in self.candidates:
            try:
                model = self._make(name, 0).fit(X[train], Y[train])
                self.scores_[name] = score_extrapolation(model, X[test], Y[test], weights)
            except (ScalingDataError, FloatingPointError) as error:
                self.scores_[name] = {"error": str(error)}
        usable = [n for n in self.candidates if "mape" in self.scores_[n]]
        if not usable:
            detail = "; ".join(f"{n}: {s['error']}" for n, s in self.scores_.items())
            raise ScalingDataError(
                f"ScalingLawSelector: no candidate law fits this data ({detail})"
            )
        self.choice_ = min(
            usable,
            key=lambda n: (self.scores_[n]["mape"], -np.nan_to_num(self.scores_[n]["spearman"])),
        )
        self.model_ = self._make(self.choice_, self.n_bootstrap).fit(X, Y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict_targets(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_targets(X)

    def predict_boot(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_boot(X)

    def predict(self, X: Any, return_std: bool = False) -> Any:
        check_is_fitted(self, "model_")
        return self.model_.predict(X, return_std=return_std)
