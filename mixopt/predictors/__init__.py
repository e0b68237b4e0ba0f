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


def available_predictors() -> list[str]:
    return sorted(_REGISTRY)


def make_predictor(name: str, **params: Any) -> Any:
    """Build the predictor registered under ``name`` with the given hyperparameters."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise MixoptError(
            f"unknown predictor {name!r}; available: {', '.join(available_predictors())}"
        ) from None
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
