"""mixopt: data-mixture optimisation for language-model pretraining.

Trains small proxy models on candidate mixtures, fits predictors of how the mixture drives the
metrics, proposes better mixtures, validates the winner against baselines and exports it.

Importing ``mixopt`` is cheap: torch, Ray, MLflow and LightGBM load only when a stage needs them.

    from mixopt import JobDir, load_spec, run_job
    spec = load_spec("experiments/demo/search.yaml")
    outcome = run_job(spec, JobDir.new(spec))
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_spec": "mixopt.spec",
    "parse_spec": "mixopt.spec",
    "JobSpec": "mixopt.spec",
    "MixtureSpace": "mixopt.space",
    "run_job": "mixopt.search",
    "resume_job": "mixopt.search",
    "JobDir": "mixopt.job",
    "Study": "mixopt.study",
    "MixoptError": "mixopt.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixopt' has no attribute {name!r}")
