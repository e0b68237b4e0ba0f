"""The proposer contract (ask/tell) and what a recommendation carries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Recommendation:
    """A proposed final mixture, the predicted objective, and the trials it rests on."""

    weights: np.ndarray  # (m,)
    predicted: float  # predicted objective (minimise convention)
    predicted_std: float | None = None  # spread over bootstrap refits of the predictor
    evidence: list[int] = field(default_factory=list)  # rows of the told data it was fitted on
    nearest: list[int] = field(default_factory=list)  # told rows closest to the mixture (L1)
    method: str = ""


class Proposer(ABC):
    """Ask/tell over mixtures. Subclasses keep their observations in ``X_``/``y_``."""

    def __init__(self) -> None:
        self.X_: np.ndarray | None = None
        self.y_: np.ndarray | None = None

    def tell(self, X: np.ndarray, y: np.ndarray) -> None:
        """Record observed mixtures ``X`` (n, m) and objective values ``y`` (n,), minimised."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        y = np.asarray(y, dtype=float).reshape(-1)
        if X.shape[0] != y.shape[0]:
            raise ValueError("X and y must have the same number of rows")
        finite = np.isfinite(y)
        X, y = X[finite], y[finite]
        self.X_ = X if self.X_ is None else np.vstack([self.X_, X])
        self.y_ = y if self.y_ is None else np.concatenate([self.y_, y])

    @property
    def n_observed(self) -> int:
        return 0 if self.y_ is None else len(self.y_)

    @abstractmethod
    def ask(self, n: int) -> np.ndarray:
        """``n`` new mixtures, shape (n, m)."""

    @abstractmethod
    def recommend(self) -> Recommendation:
        """The best mixture according to what has been told."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "X": None if self.X_ is None else self.X_.tolist(),
            "y": None if self.y_ is None else self.y_.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.X_ = None if state["X"] is None else np.asarray(state["X"], dtype=float)
        self.y_ = None if state["y"] is None else np.asarray(state["y"], dtype=float)

    def _require_observations(self, minimum: int) -> tuple[np.ndarray, np.ndarray]:
        if self.X_ is None or self.y_ is None or len(self.y_) < minimum:
            raise ValueError(
                f"{type(self).__name__} needs at least {minimum} finished trials, "
                f"has {self.n_observed}"
            )
        return self.X_, self.y_

    def _nearest(self, w: np.ndarray, k: int = 5) -> list[int]:
        if self.X_ is None:
            return []
        distance = np.abs(self.X_ - w).sum(axis=1)
        return [int(i) for i in np.argsort(distance)[:k]]
