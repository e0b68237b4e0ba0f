"""BiMix: a power law in the proportions times a data-volume factor, fitted in log space.

``L(w, N, D) = G(w) · (1 + B·D^(-β) + A·N^(-γ))`` with ``G(w) = Σ_j F_j·(w_j + ε)^(-α_j)``.
BiMix's point is the separation: the mixture sets the loss *level* G(w), the volume factor scales
it alike for every mixture (BiMix has D only; the N term here is the same form in model size). A
domain the target needs has a large ``α_j``; ``ε`` (a hyperparameter, default 1e-3) keeps a
weight of 0 finite. Fitted on log L = log G + log H, so the product is a sum. 2m + 4 parameters
(2m + 3 tied, 2m + 2 with one size).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.predictors.scaling.base import ParametricLaw
from mixopt.predictors.scaling.joint import EXPONENT_BOUNDS


class BiMixLaw(ParametricLaw):
    def __init__(
        self,
        domain: int | None = None,
        eps: float = 1e-3,
        n_starts: int = 8,
        n_bootstrap: int = 32,
        huber_delta: float = 1e-3,
        tie_exponents: bool | None = None,
        random_state: int = 0,
    ) -> None:
        self.domain = domain
        self.eps = eps
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.huber_delta = huber_delta
        self.tie_exponents = tie_exponents
        self.random_state = random_state

    def _names(self, m: int, mode: str) -> list[str]:
        if not self.eps > 0:
            raise ValueError(f"BiMixLaw: eps must be > 0, got {self.eps}")
        names = [f"log_F{j}" for j in range(m)] + [f"alpha{j}" for j in range(m)]
        names += ["log_B", "beta"]
        if mode != "one_size":
            names += ["log_A"] + (["gamma"] if mode == "free" else [])
        return names

    def _bounds(self, names: list[str], y: np.ndarray) -> list[tuple[float, float]]:
        def bound(name: str) -> tuple[float, float]:
            if name.startswith("log_F"):
                return (-20.0, float(np.log(y.max())))
            if name.startswith("alpha"):
                return (0.0, 2.0)
            return EXPONENT_BOUNDS if name in ("beta", "gamma") else (-20.0, 5.0)

        return [bound(k) for k in names]

    def _start(self, names: list[str], y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        m = sum(k.startswith("log_F") for k in names)
        start = {f"log_F{j}": np.log(rng.uniform(0.2, 1.0) * y.min() / m) for j in range(m)}
        start.update({f"alpha{j}": rng.uniform(0.0, 0.1) for j in range(m)})
        if self.domain is not None:
            start[f"alpha{self.domain}"] = rng.uniform(0.05, 0.3)
        start.update(
            log_B=np.log(rng.uniform(0.02, 0.5)), beta=rng.uniform(0.1, 1.0),
            log_A=np.log(rng.uniform(0.02, 0.5)), gamma=rng.uniform(0.1, 1.0),
        )  # fmt: skip
        return np.array([start[k] for k in names])

    def _law_jac(
        self, theta: dict[str, Any], W: np.ndarray, n: np.ndarray, d: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        m = W.shape[1]
        log_w = np.log(W + self.eps)  # (n, m)
        alpha = np.array([theta[f"alpha{j}"] for j in range(m)])
        terms = np.exp(np.array([theta[f"log_F{j}"] for j in range(m)]) - alpha * log_w)  # (n, m)
        level = terms.sum(axis=1)  # G(w)
        beta = theta["beta"]
        data = np.exp(theta["log_B"] - beta * d)
        volume = 1.0 + data  # H(N, D)
        partials = {"log_B": level * data, "beta": -d * level * data}
        if "log_A" in theta:
            size = np.exp(theta["log_A"] - theta.get("gamma", beta) * n)
            volume = volume + size
            partials["log_A"] = level * size
            key = "gamma" if "gamma" in theta else "beta"
            partials[key] = partials.get(key, 0.0) - n * level * size
        for j in range(m):
            partials[f"log_F{j}"] = volume * terms[:, j]
            partials[f"alpha{j}"] = -volume * terms[:, j] * log_w[:, j]
        return level * volume, partials
