"""Proxy hyperparameters across sizes and token budgets: the Step Law and learning-rate transfer.

The Step Law ("Predictable Scale", Li et al. 2025) fits the optimal peak learning rate as a power
law in the non-embedding parameters ``N`` and the training tokens ``D``, and the optimal batch
(in tokens) as a power law in ``D`` alone, with a broad, convex optimum around both::

    lr*(N, D) = 1.79 * N**-0.713 * D**0.307        B*(D) = 0.58 * D**0.571

``N`` counts as ``GPTConfig.non_embedding_params()`` does. The law was fit on models much larger
than mixopt's CPU proxies and on the authors' training recipe, so its *coefficient* does not carry
over to another recipe; its *exponents* may. ``transfer_lr`` therefore keeps a learning rate the
user tuned at one (N, D) as the anchor and moves it to another (N, D) by the law's ratio
``(N_to / N_from)**n_exponent * (D_to / D_from)**d_exponent``: only the exponents matter, and the
transfer is the identity at equal (N, D) and composes (A -> B -> C equals A -> C).

The law's lr is the optimum over lr *and* batch, so its D exponent comes with a batch growing as
``B*(D)`` (more tokens, a larger batch, a larger lr). mixopt's proxies usually keep one batch size
across token budgets; at a fixed batch the demo-corpus sweep (``experiments/bench/lr_sweep.py``:
nano, tiny and small at 250k and 1M tokens, two seeds) fits an N exponent of -0.56 +- 0.09
(published -0.713) and a D exponent of -0.04 +- 0.15 (published +0.307), so there pass
``exponents=FIXED_BATCH_EXPONENTS`` (what a job does for its ladder rungs and validation proxy).

``StepLaw`` holds a coefficient and both exponents (``PUBLISHED_LAW`` is the published one);
``StepLaw.fit(points)`` refits all three by least squares in log space on a team's own sweep of
(N, D, best lr) points (``experiments/bench/lr_sweep.py`` runs one on the demo corpus), optionally
holding one exponent fixed when the sweep varies only N or only D.

Every bad value (non-positive, non-finite, not a number) raises ``proxies.config.ConfigError``
(a ValueError) naming the argument. Torch-free: numpy and the standard library only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from proxies.config import ConfigError

# Published constants (Li et al. 2025, "Predictable Scale: Part I").
PUBLISHED_LR_COEFFICIENT = 1.79
PUBLISHED_N_EXPONENT = -0.713
PUBLISHED_D_EXPONENT = 0.307
PUBLISHED_BATCH_COEFFICIENT = 0.58
PUBLISHED_BATCH_EXPONENT = 0.571
PUBLISHED_EXPONENTS = (PUBLISHED_N_EXPONENT, PUBLISHED_D_EXPONENT)
# At a fixed batch (mixopt's proxies keep theirs across sizes and token budgets) the D exponent
# goes: the demo-corpus sweep fits -0.04 +- 0.15 there (see the module docstring).
FIXED_BATCH_EXPONENTS = (PUBLISHED_N_EXPONENT, 0.0)


def _number(value: object, where: str, name: str, *, positive: bool) -> float:
    """``value`` as a float: a real number (not a bool), finite, and > 0 when ``positive``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    if not ok or not math.isfinite(float(value)) or (positive and float(value) <= 0):  # type: ignore[arg-type]
        need = "> 0 and finite" if positive else "a finite number"
        raise ConfigError(where, name, f"must be {need}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _exponents(exponents: object, where: str) -> tuple[float, float]:
    if isinstance(exponents, StepLaw):
        return exponents.exponents
    if not isinstance(exponents, Sequence) or isinstance(exponents, str) or len(exponents) != 2:
        raise ConfigError(
            where, "exponents", f"must be (n_exponent, d_exponent) or a StepLaw, got {exponents!r}"
        )
    return (
        _number(exponents[0], where, "exponents[0] (n_exponent)", positive=False),
        _number(exponents[1], where, "exponents[1] (d_exponent)", positive=False),
    )


def transfer_lr(
    lr: float,
    n_from: float,
    d_from: float,
    n_to: float,
    d_to: float,
    *,
    exponents: tuple[float, float] | StepLaw = PUBLISHED_EXPONENTS,
) -> float:
    """The learning rate for ``n_to`` non-embedding parameters and ``d_to`` tokens, carried from
    ``lr`` tuned at (``n_from``, ``d_from``) by the power law's ratio.

    ``exponents`` is (n_exponent, d_exponent), the published Step Law's by default, or a
    ``StepLaw`` (its coefficient cancels).
    """
    where = "transfer_lr"
    values = {"lr": lr, "n_from": n_from, "d_from": d_from, "n_to": n_to, "d_to": d_to}
    lr_, n0, d0, n1, d1 = (_number(v, where, k, positive=True) for k, v in values.items())
    a, b = _exponents(exponents, where)
    return lr_ * (n1 / n0) ** a * (d1 / d0) ** b


def optimal_batch_tokens(d: float) -> float:
    """The published Step Law's optimal batch in tokens for ``d`` training tokens (its optimum is
    broad: within a factor of ~2 costs little)."""
    d_ = _number(d, "optimal_batch_tokens", "d", positive=True)
    return PUBLISHED_BATCH_COEFFICIENT * d_**PUBLISHED_BATCH_EXPONENT


@dataclass(frozen=True)
class StepLaw:
    """``lr(N, D) = coefficient * N**n_exponent * D**d_exponent`` (N non-embedding parameters,
    D training tokens). Defaults are the published law; checks itself on construction."""

    coefficient: float = PUBLISHED_LR_COEFFICIENT
    n_exponent: float = PUBLISHED_N_EXPONENT
    d_exponent: float = PUBLISHED_D_EXPONENT

    def __post_init__(self) -> None:
        for name in ("coefficient", "n_exponent", "d_exponent"):
            value = _number(getattr(self, name), "StepLaw", name, positive=name == "coefficient")
            object.__setattr__(self, name, value)  # numpy scalars as plain floats

    @property
    def exponents(self) -> tuple[float, float]:
        return self.n_exponent, self.d_exponent

    def lr(self, n: float, d: float) -> float:
        """The law's learning rate for ``n`` non-embedding parameters and ``d`` tokens."""
        n_ = _number(n, "StepLaw.lr", "n", positive=True)
        d_ = _number(d, "StepLaw.lr", "d", positive=True)
        return self.coefficient * n_**self.n_exponent * d_**self.d_exponent

    def transfer(self, lr: float, n_from: float, d_from: float, n_to: float, d_to: float) -> float:
        """``transfer_lr`` with this law's exponents."""
        return transfer_lr(lr, n_from, d_from, n_to, d_to, exponents=self.exponents)

    @classmethod
    def fit(
        cls,
        points: Iterable[tuple[float, float, float]],
        *,
        n_exponent: float | None = None,
        d_exponent: float | None = None,
    ) -> StepLaw:
        """Least squares in log space over (N, D, best lr) ``points``:
        ``log lr = log coefficient + n_exponent * log N + d_exponent * log D``.

        Giving ``n_exponent`` or ``d_exponent`` holds that exponent fixed (for a sweep that varies
        only D or only N). A free exponent needs at least two distinct values on its axis, and the
        points must determine every free parameter (an exact fit when there are just enough).
        """
        where = "StepLaw.fit"
        names = ("n_exponent", "d_exponent")
        rows: list[tuple[float, float, float]] = []
        for i, point in enumerate(points):
            if isinstance(point, str) or not isinstance(point, Sequence) or len(point) != 3:
                raise ConfigError(where, f"points[{i}]", f"must be (N, D, lr), got {point!r}")
            n, d, lr = (
                _number(v, where, f"points[{i}].{k}", positive=True)
                for k, v in zip(("N", "D", "lr"), point, strict=True)
            )
            rows.append((math.log(n), math.log(d), math.log(lr)))
        given = dict(zip(names, (n_exponent, d_exponent), strict=True))
        fixed = {k: _number(v, where, k, positive=False) for k, v in given.items() if v is not None}
        logs = np.array(rows, dtype=float).reshape(-1, 3)  # (P, 3): log N, log D, log lr
        free = [j for j, k in enumerate(names) if k not in fixed]
        for j in free:
            if len(logs) < 2 or np.ptp(logs[:, j]) == 0:
                axis = "ND"[j]
                raise ConfigError(
                    where,
                    "points",
                    f"need at least two distinct {axis} values to fit {names[j]} (got "
                    f"{len(logs)} point(s)); or hold it fixed with {names[j]}=...",
                )
        target = logs[:, 2] - sum(
            (fixed[k] * logs[:, j] for j, k in enumerate(names) if k in fixed), np.zeros(len(logs))
        )
        design = np.column_stack([np.ones(len(logs)), *(logs[:, j] for j in free)])  # (P, 1+F)
        if len(logs) < design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
            raise ConfigError(
                where,
                "points",
                f"{len(logs)} point(s) do not determine {design.shape[1]} parameters (log N and "
                "log D must not be collinear)",
            )
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)  # (1+F,)
        fitted = {names[j]: float(value) for j, value in zip(free, solution[1:], strict=True)}
        return cls(coefficient=float(np.exp(solution[0])), **fixed, **fitted)


PUBLISHED_LAW = StepLaw()
