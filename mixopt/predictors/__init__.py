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
    "lightgbm": "mixopt.predictors.gbm:LightGBMPredictor",
    "linear": "mixopt.predictors.linear:LinearPredictor",
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
    return cls(**params)
