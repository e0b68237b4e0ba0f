"""RegMix's Dirichlet sampler, extended to a bounded mixture space.

A draw is ``Dirichlet(alpha * q)`` with ``q ∝ p ** temperature`` (``p`` the natural token
distribution) and ``alpha`` taken from log-spaced concentrations, so the initial design covers
both near-natural mixtures (large alpha) and sparse corner mixtures (small alpha). Weights below
``min_weight`` are zeroed, duplicates are dropped.

Bounds are honoured by construction where possible: the Dirichlet draw spreads the mass left
after every domain's lower bound, ``w = lower + (1 - sum(lower)) * d`` (fixed domains take no
share), and draws that exceed an upper bound are rejected. Draws are oversampled in batches; if
rejection leaves too few, the rest are projected into the space, and in a space so small that
projections repeat, drawn as convex combinations of the feasible points found, so a sample of
``n`` comes back whenever the space holds ``n`` distinct mixtures.
"""

from __future__ import annotations

import numpy as np

from mixopt.errors import InfeasibleSpaceError
from mixopt.space import MixtureSpace


class DirichletSampler:
    """Draw mixtures around a centre distribution, within a :class:`MixtureSpace`."""

    def __init__(
        self,
        space: MixtureSpace,
        natural: np.ndarray,
        *,
        temperature: float = 0.5,
        alpha_min: float = 0.1,
        alpha_max: float = 5.0,
        n_alphas: int = 15,
        min_weight: float = 2e-4,
    ) -> None:
        self.space = space
        self.natural = np.asarray(natural, dtype=float)
        self.temperature = temperature
        self.alpha_min = alpha_min
        self.alpha_max = alpha_max
        self.n_alphas = n_alphas
        self.min_weight = min_weight
        if (
            self.natural.shape != (space.dim,)
            or np.any(self.natural < 0)
            or self.natural.sum() <= 0
        ):
            raise ValueError("natural distribution must be non-negative with one entry per domain")

    @property
    def _free(self) -> np.ndarray:
        """Mask of domains whose weight is not fixed."""
        return self.space.upper - self.space.lower > 1e-12

    def _centre(self) -> np.ndarray:
        """Dirichlet base measure over the free domains: p^τ, renormalised."""
        p = np.where(self._free, self.natural, 0.0)
        if p.sum() <= 0:  # no natural mass on free domains: fall back to uniform
            p = self._free.astype(float)
        q = p**self.temperature
        q = np.where(self._free, np.maximum(q, 1e-6), 0.0)  # domains with no tokens still drawable
        return q / q.sum()

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        free = self._free
        centre = self._centre()[free]
        alphas = np.logspace(np.log10(self.alpha_min), np.log10(self.alpha_max), self.n_alphas)
        picked = rng.choice(alphas, size=n)
        shapes = np.maximum(picked[:, None] * centre[None, :], 1e-3)  # (n, m_free)
        d = rng.gamma(shapes)  # normalised gamma draws are Dirichlet draws
        d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-300)
        d = np.where(d < self.min_weight, 0.0, d)
        empty = d.sum(axis=1) <= 0
        d[empty] = centre
        d /= d.sum(axis=1, keepdims=True)
        mass = 1.0 - self.space.lower.sum()
        w = np.tile(self.space.lower, (n, 1))  # (n, m)
        w[:, free] += mass * d
        return w

    def sample(
        self, n: int, rng: np.random.Generator, *, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        """``n`` distinct mixtures (n, m), none equal to a row of ``exclude``."""
        if n <= 0:
            return np.zeros((0, self.space.dim))
        known = np.asarray([] if exclude is None else exclude, dtype=float)
        known = known.reshape(-1, self.space.dim)  # (k, m), k >= 0
        seen = {_key(row) for row in known}
        kept: list[np.ndarray] = []

        def add(row: np.ndarray) -> bool:
            """Keep ``row`` if it is new; True once ``n`` are kept."""
            key = _key(row)
            if key not in seen:
                seen.add(key)
                kept.append(row)
            return len(kept) == n

        for _ in range(20):
            batch = self._draw(max(4 * n, 64), rng)
            if any(add(row) for row in batch[self.space.contains(batch)]):
                return np.stack(kept)
        # Tight bounds reject most draws: project the remainder into the space instead.
        # Projections pile up on the few vertices of a small space, so once they stop giving
        # new points, random convex combinations of the feasible points found (the space is
        # convex) fill its interior.
        projected = self.space.project(self._draw(100 * n, rng))
        if any(add(row) for row in projected):
            return np.stack(kept)
        pool = np.unique(np.round(np.vstack([projected, *kept, known]), 12), axis=0)
        if len(pool) > 1:
            blends = rng.dirichlet(np.ones(len(pool)), size=100 * n) @ pool
            if any(add(row) for row in blends[self.space.contains(blends)]):
                return np.stack(kept)
        raise InfeasibleSpaceError(
            f"the space holds only {len(kept)} new distinct mixture(s) (at 4 decimals), "
            f"{n} were asked for: its bounds leave (almost) nothing to search"
        )

    def candidates(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Many mixtures for simulation (duplicates allowed, all inside the space)."""
        w = self._draw(n, rng)
        inside = self.space.contains(w)
        w[~inside] = self.space.project(w[~inside])
        return w


def _key(row: np.ndarray) -> tuple[float, ...]:
    return tuple(np.round(row, 4).tolist())
