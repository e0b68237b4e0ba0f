"""One scale-aware law per target, the objective their weighted sum (as ``predictors.multi``).

``ScalingObjective(law="joint")`` fits a law per column of ``Y`` (n, t). ``target_domains`` says
which training domain each target is the loss of (None for a target that is no training domain,
e.g. an eval set): its law is told ``domain=j`` (its own data term), the others learn their data
share from scratch. By default, when there are as many targets as domains (t == m), target j is
domain j's loss. The laws of one objective share their
bootstrap draws (the same runs, resampled by the same seed), so the objective's interval is the
spread of the weighted sum over draws, correlations between targets included. ``make_law`` is the
one place a law name becomes an estimator, for the selector too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from mixopt.predictors.scaling.base import ScalingDataError, split_inputs

PER_TARGET_LAWS = {
    "joint": "mixopt.predictors.scaling.joint:JointLaw",
    "bimix": "mixopt.predictors.scaling.bimix:BiMixLaw",
    "nested": "mixopt.predictors.scaling.nested:NestedLaw",
}
JOINT_LAWS = {"capacity": "mixopt.predictors.scaling.capacity:CapacityLaw"}
LAW_NAMES = (*PER_TARGET_LAWS, *JOINT_LAWS)


def _load(target: str) -> Any:
    import importlib

    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def make_law(
    name: str,
    target_weights: Sequence[float] | None = None,
    target_domains: Sequence[int | None] | None = None,
    **params: Any,
) -> Any:
    """A multi-target law by name: ``capacity`` natively (the training domains' own losses
    only), the others one per target."""
    if name in JOINT_LAWS:
        if target_domains is not None and list(target_domains) != list(range(len(target_domains))):
            raise ScalingDataError(
                f"the {name} law models the losses of the training domains themselves, in order; "
                f"these targets are the losses of {list(target_domains)} (None: no training domain)"
            )
        return _load(JOINT_LAWS[name])(target_weights=target_weights, **params)
    if name in PER_TARGET_LAWS:
        return ScalingObjective(name, target_weights, params or None, target_domains)
    raise ScalingDataError(f"unknown scaling law {name!r}; known: {', '.join(LAW_NAMES)}")


class ScalingObjective(RegressorMixin, BaseEstimator):
    def __init__(
        self,
        law: str = "joint",
        target_weights: Sequence[float] | None = None,
        law_params: Mapping[str, Any] | None = None,
        target_domains: Sequence[int | None] | None = None,
    ) -> None:
        self.law = law
        self.target_weights = target_weights
        self.law_params = law_params
        self.target_domains = target_domains

    @property
    def has_std(self) -> bool:
        return all(getattr(m, "has_std", False) for m in getattr(self, "models_", [None]))

    def fit(self, X: Any, Y: Any) -> ScalingObjective:
        if self.law not in PER_TARGET_LAWS:
            raise ScalingDataError(
                f"ScalingObjective: unknown law {self.law!r}; known: {', '.join(PER_TARGET_LAWS)}"
            )
        W, _, _ = split_inputs(X)
        Y = np.asarray(Y, dtype=float)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if Y.ndim != 2 or len(Y) != len(W):
            raise ScalingDataError("Y must be (n_samples, n_targets) with one row per row of X")
        t, m = Y.shape[1], W.shape[1]
        weights = np.full(t, 1.0 / t) if self.target_weights is None else self.target_weights
        self.weights_ = np.asarray(weights, dtype=float)
        if self.weights_.shape != (t,):
            raise ScalingDataError(f"target_weights must have {t} entries, one per column of Y")
        cls = _load(PER_TARGET_LAWS[self.law])
        domains = self.target_domains
        if domains is None:
            domains = list(range(m)) if t == m else [None] * t
        if len(domains) != t or any(d is not None and not 0 <= d < m for d in domains):
            raise ScalingDataError(
                f"target_domains must give one training domain index (0..{m - 1}) or None per "
                f"column of Y ({t}); got {list(domains)}"
            )
        own = "domain" in cls._get_param_names()
        params = dict(self.law_params or {})
        self.models_ = [
            cls(**params, **({"domain": d} if own and d is not None else {})).fit(X, Y[:, j])
            for j, d in enumerate(domains)
        ]
        self.n_features_in_ = m + 2
        return self

    def predict_targets(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "models_")
        return np.column_stack([m.predict(X) for m in self.models_])  # (n, t)

    def predict_boot(self, X: Any) -> np.ndarray:
        """(B, n): the objective under each shared bootstrap draw."""
        check_is_fitted(self, "models_")
        boots = [m.predict_boot(X) for m in self.models_]  # each (B, n)
        return np.einsum("j,jbn->bn", self.weights_, np.array(boots))

    def predict(self, X: Any, return_std: bool = False) -> Any:
        mean = self.predict_targets(X) @ self.weights_
        if not return_std:
            return mean
        boots = self.predict_boot(X)
        return mean, boots.std(axis=0) if len(boots) > 1 else np.full(len(mean), np.nan)

    def refit(self, X: Any, Y: Any) -> ScalingObjective:
        from sklearn.base import clone

        return clone(self).fit(X, Y)
