"""The mixture space: the probability simplex over domains, cut by per-domain bounds.

A mixture is a vector ``w`` with ``w_j >= 0`` and ``sum(w) == 1``. The space adds
``lower_j <= w_j <= upper_j`` (a fixed weight is ``lower == upper``). It is non-empty exactly when
``sum(lower) <= 1 <= sum(upper)``; this is checked when the space is built, so an infeasible spec
fails before any data is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mixopt.errors import InfeasibleSpaceError, MixoptError

if TYPE_CHECKING:
    from mixopt.spec import JobSpec

_TOL = 1e-9


@dataclass(frozen=True)
class MixtureSpace:
    """Domains in a fixed order, with per-domain ``[lower, upper]`` bounds."""

    domains: tuple[str, ...]
    lower: np.ndarray  # (m,)
    upper: np.ndarray  # (m,)

    def __post_init__(self) -> None:
        m = len(self.domains)
        if m < 2:
            raise MixoptError("a mixture needs at least 2 domains")
        if self.lower.shape != (m,) or self.upper.shape != (m,):
            raise MixoptError("lower and upper bounds must have one entry per domain")
        if (
            np.any(self.lower < -_TOL)
            or np.any(self.upper > 1 + _TOL)
            or np.any(self.lower > self.upper + _TOL)
        ):
            raise InfeasibleSpaceError("bounds must satisfy 0 <= lower <= upper <= 1")
        low, high = float(self.lower.sum()), float(self.upper.sum())
        if low > 1 + 1e-6:
            detail = ", ".join(
                f"{d}>={lo:g}" for d, lo in zip(self.domains, self.lower, strict=True) if lo > 0
            )
            raise InfeasibleSpaceError(
                f"space: the minimum weights sum to {low:.4g} > 1 ({detail}); "
                "no mixture satisfies them"
            )
        if high < 1 - 1e-6:
            detail = ", ".join(
                f"{d}<={hi:g}" for d, hi in zip(self.domains, self.upper, strict=True)
            )
            raise InfeasibleSpaceError(
                f"space: the maximum weights sum to {high:.4g} < 1 ({detail}); "
                "no mixture satisfies them"
            )

    @classmethod
    def from_bounds(
        cls,
        domains: Sequence[str],
        bounds: Mapping[str, tuple[float, float]] | None = None,
        fixed: Mapping[str, float] | None = None,
    ) -> MixtureSpace:
        bounds = bounds or {}
        fixed = fixed or {}
        unknown = sorted((set(bounds) | set(fixed)) - set(domains))
        if unknown:
            raise MixoptError(f"space: unknown domain(s) {unknown}; domains are {list(domains)}")
        lower = np.array([fixed.get(d, bounds.get(d, (0.0, 1.0))[0]) for d in domains], dtype=float)
        upper = np.array([fixed.get(d, bounds.get(d, (0.0, 1.0))[1]) for d in domains], dtype=float)
        return cls(tuple(domains), lower, upper)

    @classmethod
    def from_spec(cls, spec: JobSpec) -> MixtureSpace:
        return cls.from_bounds(spec.domain_names, spec.space.bounds, spec.space.fixed)

    @property
    def dim(self) -> int:
        return len(self.domains)

    def with_caps(self, caps: Mapping[str, float], *, what: str = "cap") -> MixtureSpace:
        """The space with upper bounds lowered to ``caps`` (domain → maximum weight).

        Raises InfeasibleSpaceError naming the domains and their caps when a lower bound or
        fixed weight exceeds its cap, or when the capped maxima cannot reach a total of 1.
        """
        unknown = sorted(set(caps) - set(self.domains))
        if unknown:
            raise MixoptError(
                f"{what}s: unknown domain(s) {unknown}; domains are {list(self.domains)}"
            )
        cap = np.array([min(1.0, max(0.0, float(caps.get(d, 1.0)))) for d in self.domains])
        over = [
            f"{d} >= {lo:g} but its {what} is {c:.4g}"
            for d, lo, c in zip(self.domains, self.lower, cap, strict=True)
            if lo > c + _TOL
        ]
        if over:
            raise InfeasibleSpaceError(
                f"space: {'; '.join(over)}; no mixture satisfies both "
                f"(lower the bound or fixed weight, or relax the {what})"
            )
        upper = np.minimum(self.upper, cap)
        if upper.sum() < 1 - 1e-6:
            detail = ", ".join(
                f"{d}<={hi:.4g}" + (f" ({what})" if c < u else "")
                for d, hi, c, u in zip(self.domains, upper, cap, self.upper, strict=True)
            )
            raise InfeasibleSpaceError(
                f"space: with the {what}s the maximum weights sum to {upper.sum():.4g} < 1 "
                f"({detail}); no mixture satisfies them"
            )
        return MixtureSpace(self.domains, self.lower.copy(), upper)

    def contains(self, weights: np.ndarray, tol: float = 1e-6) -> np.ndarray:
        """Boolean mask over rows of ``weights`` (n, m): in bounds and summing to one."""
        w = np.atleast_2d(weights)
        in_bounds = np.all((w >= self.lower - tol) & (w <= self.upper + tol), axis=1)
        return in_bounds & (np.abs(w.sum(axis=1) - 1.0) <= tol)

    def check(self, weights: Mapping[str, float], *, source: str = "mixture") -> np.ndarray:
        """Validate a user-given mixture (domain → weight) and return it as a vector."""
        unknown = sorted(set(weights) - set(self.domains))
        if unknown:
            raise MixoptError(
                f"{source}: unknown domain(s) {unknown}; domains are {list(self.domains)}"
            )
        w = np.array([float(weights.get(d, 0.0)) for d in self.domains])
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            raise MixoptError(f"{source}: weights must be finite and >= 0")
        if abs(w.sum() - 1.0) > 1e-6:
            raise MixoptError(f"{source}: weights sum to {w.sum():.6g}, not 1")
        return w

    def project(self, weights: np.ndarray) -> np.ndarray:
        """Euclidean projection of rows onto the space (bisection on the simplex shift)."""
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        lo_shift = (self.lower - w).min(axis=1) - 1.0
        hi_shift = (self.upper - w).max(axis=1) + 1.0
        for _ in range(100):
            mid = 0.5 * (lo_shift + hi_shift)
            total = np.clip(w + mid[:, None], self.lower, self.upper).sum(axis=1)
            too_big = total > 1.0
            hi_shift = np.where(too_big, mid, hi_shift)
            lo_shift = np.where(too_big, lo_shift, mid)
        out = np.clip(w + (0.5 * (lo_shift + hi_shift))[:, None], self.lower, self.upper)
        return out / out.sum(axis=1, keepdims=True)

    def uniform(self) -> np.ndarray:
        """The uniform mixture, projected into the bounds."""
        return self.project(np.full(self.dim, 1.0 / self.dim))[0]

    def as_dict(self, weights: np.ndarray) -> dict[str, float]:
        return {d: float(x) for d, x in zip(self.domains, weights, strict=True)}
