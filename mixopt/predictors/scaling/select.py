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
with its error and skipped.

What then predicts (``combine``):

- ``average`` (the default): the usable candidates weighted by the inverse of their squared
  held-out error (Bates and Granger's forecast combination), each refitted on all rows with its
  bootstrap; a candidate under ``MIN_MEMBER_WEIGHT`` is dropped. One held-out split is thin
  evidence of which law extrapolates best (with two sizes it only holds out later tokens, not a
  larger N), and the laws err in different directions; when one law fits the data far better
  than the others, it takes nearly all the weight, so the combination selects it. Its bootstrap
  draws are the members' own draws in proportion to their weights, so a standard deviation (of
  a prediction, or of the gap between two mixtures, which the target-scale shrink reads) holds
  the members' disagreement: far above the proxies the laws can disagree by more than the
  mixtures differ, and the recommendation then stays near the prior.
- ``select``: the winner alone, refitted on all rows with its bootstrap.

``choice_`` names what predicts (a law, or the weighted members), ``members_`` maps each member
to its weight, ``scores_`` and ``split_`` say what happened.
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
COMBINE = ("average", "select")
MIN_MEMBER_WEIGHT = 0.01  # an averaged member below this weight is dropped
ERROR_FLOOR = 1e-4  # held-out MAPE floor: a perfect score does not get infinite weight


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
        combine: str = "average",
    ) -> None:
        self.candidates = candidates
        self.target_weights = target_weights
        self.target_domains = target_domains
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.combine = combine

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
        if self.combine not in COMBINE:
            raise ScalingDataError(
                f"ScalingLawSelector: combine must be one of {', '.join(COMBINE)}; "
                f"got {self.combine!r}"
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
        self.members_ = self._weigh(usable)
        self.models_ = {}
        for name in list(self.members_):
            try:
                self.models_[name] = self._make(name, self.n_bootstrap).fit(X, Y)
            except (ScalingDataError, FloatingPointError) as error:
                if len(self.members_) == 1:
                    raise
                self.scores_[name]["refit_error"] = str(error)
        total = sum(self.members_[n] for n in self.models_)
        self.members_ = {n: self.members_[n] / total for n in self.models_}
        for name in usable:
            self.scores_[name]["weight"] = self.members_.get(name, 0.0)
        self.choice_ = " + ".join(
            name if len(self.members_) == 1 else f"{name} {weight:.2f}"
            for name, weight in self.members_.items()
        )
        self.n_features_in_ = X.shape[1]
        return self

    def _weigh(self, usable: list[str]) -> dict[str, float]:
        """Each member's weight: the best alone (``select``), or inverse squared held-out error,
        heaviest first, without the negligible ones (``average``)."""
        best = min(
            usable,
            key=lambda n: (self.scores_[n]["mape"], -np.nan_to_num(self.scores_[n]["spearman"])),
        )
        if self.combine == "select":
            return {best: 1.0}
        raw = {n: max(self.scores_[n]["mape"], ERROR_FLOOR) ** -2.0 for n in usable}
        total = sum(raw.values())
        kept = {n: v / total for n, v in raw.items() if v / total >= MIN_MEMBER_WEIGHT}
        return dict(sorted(kept.items(), key=lambda item: -item[1]))

    def _combined(self, per_member: dict[str, np.ndarray]) -> np.ndarray:
        """The members' weighted sum of per-member arrays of one shape."""
        parts = [self.members_[n] * np.asarray(v, dtype=float) for n, v in per_member.items()]
        return np.sum(parts, axis=0)

    def predict_targets(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "models_")
        return self._combined({n: m.predict_targets(X) for n, m in self.models_.items()})

    def predict_boot(self, X: Any) -> np.ndarray:
        """(B, n): draws from the members' mixture, each member's own bootstrap fits in
        proportion to its weight, so the spread (of a prediction, or of the difference between
        two mixtures) holds the members' disagreement as well as each one's own uncertainty."""
        check_is_fitted(self, "models_")
        boots = {n: np.asarray(m.predict_boot(X)) for n, m in self.models_.items()}
        if len(boots) == 1:
            return next(iter(boots.values()))
        draws = max(len(b) for b in boots.values())
        parts = []
        for name, b in boots.items():
            if len(b) == 0:
                continue
            take = max(1, round(self.members_[name] * draws * len(boots)))
            parts.append(b[np.arange(take) % len(b)])
        return np.concatenate(parts) if parts else np.zeros((0, len(np.asarray(X))))

    def predict(self, X: Any, return_std: bool = False) -> Any:
        check_is_fitted(self, "models_")
        means = {n: np.asarray(m.predict(X), dtype=float) for n, m in self.models_.items()}
        mean = self._combined(means)
        if not return_std:
            return mean
        boots = self.predict_boot(X)
        if len(boots) < 2:
            return mean, np.full(len(mean), np.nan)
        # the members' own spreads and their disagreement (the draws are their mixture)
        return mean, boots.std(axis=0)
