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
        self.Y_: np.ndarray | None = None  # per-target values, when the caller gives them
        self.target_weights: np.ndarray | None = None  # y = Y @ target_weights

    def tell(self, X: np.ndarray, y: np.ndarray, targets: np.ndarray | None = None) -> None:
        """Record observed mixtures ``X`` (n, m) and objective values ``y`` (n,), minimised.

        ``targets`` (n, t) optionally gives the per-target values the objective sums (with
        ``target_weights``); proposers that model each target separately use them.
        """
        X = np.atleast_2d(np.asarray(X, dtype=float))
        y = np.asarray(y, dtype=float).reshape(-1)
        if X.shape[0] != y.shape[0]:
            raise ValueError("X and y must have the same number of rows")
        finite = np.isfinite(y)
        if targets is not None:
            targets = np.atleast_2d(np.asarray(targets, dtype=float))
            finite &= np.isfinite(targets).all(axis=1)
            T = targets[finite]
            self.Y_ = T if self.Y_ is None else np.vstack([self.Y_, T])
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
            "Y": None if self.Y_ is None else self.Y_.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.X_ = None if state["X"] is None else np.asarray(state["X"], dtype=float)
        self.y_ = None if state["y"] is None else np.asarray(state["y"], dtype=float)
        self.Y_ = None if state.get("Y") is None else np.asarray(state["Y"], dtype=float)

    def _targets(self) -> np.ndarray | None:
        """Per-target observations aligned with ``y_`` (None unless every row came with them)."""
        if self.Y_ is None or self.target_weights is None or self.y_ is None:
            return None
        return self.Y_ if len(self.Y_) == len(self.y_) else None

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
