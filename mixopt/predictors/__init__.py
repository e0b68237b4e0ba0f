"""Predictors: mixture weights → metric, behind scikit-learn's estimator contract.

``__init__`` stores hyperparameters only, ``fit(X, y)`` returns ``self`` with learned state in
attributes ending in ``_``, ``predict(X)`` returns one value per row. Then every predictor can be
cloned and cross-validated the same way. The registry maps names to import paths and imports a
predictor only when it is asked for, so ``import mixopt`` stays free of LightGBM and friends.
"""

from __future__ import annotations

import importlib
from typing import Any

from mixopt.errors import MixoptError

_REGISTRY: dict[str, str] = {
    "auto": "mixopt.predictors.auto:AutoPredictor",
    "ensemble": "mixopt.predictors.auto:EnsemblePredictor",
    "gp": "mixopt.predictors.gp:GPPredictor",
    "lightgbm": "mixopt.predictors.gbm:LightGBMPredictor",
    "linear": "mixopt.predictors.linear:LinearPredictor",
    "loglinear": "mixopt.predictors.linear:LogLinearPredictor",
    "mixing_law": "mixopt.predictors.law:MixingLawPredictor",
    "quadratic": "mixopt.predictors.linear:QuadraticPredictor",
}
# Scale-aware laws take X = (n, m + 2): the weights, then N and D (mixopt.predictors.scaling).
# make_predictor builds them too; available_predictors lists them only when asked, so code that
# fits every predictor to mixture-only tables does not meet them.
_SCALE_AWARE: dict[str, str] = {
    "scale_auto": "mixopt.predictors.scaling.select:ScalingLawSelector",
    "scale_bimix": "mixopt.predictors.scaling.bimix:BiMixLaw",
    "scale_capacity": "mixopt.predictors.scaling.capacity:CapacityLaw",
    "scale_joint": "mixopt.predictors.scaling.joint:JointLaw",
    "scale_nested": "mixopt.predictors.scaling.nested:NestedLaw",
    "scale_objective": "mixopt.predictors.scaling.objective:ScalingObjective",
}


def available_predictors(*, scale_aware: bool = False) -> list[str]:
    """Names of the mixture-only predictors, or (``scale_aware=True``) of the scale-aware laws."""
    return sorted(_SCALE_AWARE if scale_aware else _REGISTRY)


def make_predictor(name: str, **params: Any) -> Any:
    """Build the predictor registered under ``name`` with the given hyperparameters."""
    target = _REGISTRY.get(name) or _SCALE_AWARE.get(name)
    if target is None:
        known = available_predictors() + available_predictors(scale_aware=True)
        raise MixoptError(f"unknown predictor {name!r}; available: {', '.join(known)}")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    valid = cls._get_param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise MixoptError(
            f"predictor {name!r} has no parameter {unknown[0]!r}; "
            f"its parameters: {', '.join(valid)}"
        )
    return cls(**params)


def refit(model: Any, X: Any, y: Any) -> Any:
    """A copy of fitted ``model`` fitted to new data as cheaply as the model allows.

    Predictors with a ``refit`` method keep their tuned structure (a GP its hyperparameters,
    ``auto`` its choice); others are cloned and fitted again. Used for bootstrap resamples.
    """
    if hasattr(model, "refit"):
        return model.refit(X, y)
    from sklearn.base import clone

    return clone(model).fit(X, y)
