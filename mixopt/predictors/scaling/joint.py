"""The joint additive law: ``L(w, N, D) = E + A·N^(-α) + B·(D·s(w))^(-β)``, ``s(w) = Σ_j v_j w_j``.

With ``v`` one-hot on the target's own domain this is the per-domain form of the scale-aware
mixing-law literature: an irreducible loss, a capacity term in N, and a data term in the tokens
the target domain actually gets, D·w_i, so a small domain is worth more at larger D. ``v`` (a
softmax, so on the simplex) is learned: ``v_j`` for j ≠ i is *transfer*, the tokens of domain j
counted as a fraction of a token of the target's domain. It also keeps a domain with weight 0
finite (its loss is then set by the transfer) and serves a target that is no single domain
(``domain=None``: v learned from scratch). m + 4 parameters (m + 3 with tied exponents).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.predictors.scaling.base import ParametricLaw

EXPONENT_BOUNDS = (0.02, 2.5)
LOGIT_BOUND = 12.0


class JointLaw(ParametricLaw):
    def __init__(
        self,
        domain: int | None = None,
        n_starts: int = 8,
        n_bootstrap: int = 32,
        huber_delta: float = 1e-3,
        tie_exponents: bool | None = None,
        random_state: int = 0,
    ) -> None:
        self.domain = domain
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.huber_delta = huber_delta
        self.tie_exponents = tie_exponents
        self.random_state = random_state

    def _reference(self) -> int:
        """The logit fixed at 0 (softmax is shift-invariant): the target's own domain."""
        return self.domain if self.domain is not None else 0

    def _names(self, m: int, mode: str) -> list[str]:
        names = ["E", "log_B", "beta"]
        if mode != "one_size":
            names += ["log_A"] + (["alpha"] if mode == "free" else [])
        return names + [f"u{j}" for j in range(m) if j != self._reference()]

    def _bounds(self, names: list[str], y: np.ndarray) -> list[tuple[float, float]]:
        table = {"E": (0.0, float(y.max())), "log_B": (-20.0, 5.0), "log_A": (-20.0, 5.0)}
        table.update(beta=EXPONENT_BOUNDS, alpha=EXPONENT_BOUNDS)
        return [table.get(k, (-LOGIT_BOUND, LOGIT_BOUND)) for k in names]

    def _start(self, names: list[str], y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        own = self.domain is not None
        table = {
            "E": rng.uniform(0.3, 0.95) * y.min(),
            "log_B": np.log(rng.uniform(0.02, 0.5) * y.min()),
            "log_A": np.log(rng.uniform(0.02, 0.5) * y.min()),
            "beta": rng.uniform(0.1, 1.0),
            "alpha": rng.uniform(0.1, 1.0),
        }
        return np.array(
            [table[k] if k in table else rng.normal(-3.0 if own else 0.0, 1.0) for k in names]
        )

    def _law_jac(
        self, theta: dict[str, Any], W: np.ndarray, n: np.ndarray, d: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        m = W.shape[1]
        logits = np.array([theta.get(f"u{j}", 0.0) for j in range(m)])
        v = np.exp(logits - logits.max())
        v /= v.sum()
        s = np.maximum(W @ v, 1e-300)  # (n,) the target's effective share of the tokens
        beta = theta["beta"]
        data = np.exp(theta["log_B"] - beta * (d + np.log(s)))  # (n,)
        loss = theta["E"] + data
        partials = {"E": np.ones_like(d), "log_B": data, "beta": -(d + np.log(s)) * data}
        for j in range(m):
            if f"u{j}" in theta:  # ds/du_j = v_j (w_j - s)
                partials[f"u{j}"] = -beta * data / s * v[j] * (W[:, j] - s)
        if "log_A" in theta:
            alpha = theta.get("alpha", beta)
            capacity = np.exp(theta["log_A"] - alpha * n)
            loss = loss + capacity
            partials["log_A"] = capacity
            key = "alpha" if "alpha" in theta else "beta"
            partials[key] = partials.get(key, 0.0) - n * capacity
        return loss, partials

    def transfer(self) -> np.ndarray:
        """The fitted v: how much a token of each domain counts for the target."""
        theta = self._params(self.theta_)
        logits = np.array([theta.get(f"u{j}", 0.0) for j in range(self.n_features_in_ - 2)])
        v = np.exp(logits - logits.max())
        return v / v.sum()
