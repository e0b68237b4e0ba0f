"""What a job returns, and how a trial's metrics become its objective."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.trials import Trial


@dataclass
class JobOutcome:
    job_dir: Path
    recommendation: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    wall_s: float = 0.0


def objective_value(metrics: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted sum of metrics; NaN if any is missing or not finite."""
    total = 0.0
    for name, weight in weights.items():
        value = metrics.get(name)
        if value is None or not np.isfinite(value):
            return float("nan")
        total += weight * float(value)
    return total
