"""Proposals that keep away from pending mixtures: asked, not yet told, nor failed.

A team runs a study's suggestions in parallel: while some are training, the next ``ask`` must
not hand out the same mixtures again. The pending mixtures (those of earlier asks without a
result, and the ones chosen earlier in the same ask) reach the proposer in one of two ways:

- a proposer that conditions on pending points (``takes_pending``: ``bo``, whose qLogNEI
  integrates over their outcomes) is given them with the proposal (``propose(n, pending=...)``);
- any other is told a *pessimistic lie* for each (the constant liar: the worst objective told),
  so its model steers away from where runs are already going.

Then a guard: a proposal within ``NEAR_L1`` (L1) of a pending mixture or of an earlier one of
the batch is replaced by the strategy's sampler's draw farthest from all of them (maximin), so
no two pending mixtures are ever near-duplicates.
"""

from __future__ import annotations

import numpy as np

from mixopt.proposers.base import Proposer
from mixopt.sampling import DirichletSampler

NEAR_L1 = 0.1  # a mixture closer than this (L1) to a pending one duplicates its run
DRAWS = 256  # sampler draws a replaced proposal is chosen from


def tell_with_pending(
    proposer: Proposer, X: np.ndarray, y: np.ndarray, pending: np.ndarray
) -> np.ndarray | None:
    """Tell ``proposer`` the observations, and the pending mixtures as it takes them: the
    mixtures to give its next proposal (``takes_pending``), else None after telling the lie."""
    proposer.tell(X, y)
    if len(pending) == 0:
        return None
    if proposer.takes_pending:
        return pending
    proposer.tell(pending, np.full(len(pending), float(np.max(y))))
    return None


def keep_apart(
    rows: np.ndarray,
    pending: np.ndarray,
    sampler: DirichletSampler,
    rng: np.random.Generator,
    *,
    known: np.ndarray | None = None,
) -> np.ndarray:
    """``rows`` with each near-duplicate (of ``pending`` or an earlier row) replaced by the
    sampler draw farthest (L1) from the pending mixtures and the rows kept; ``known``: mixtures
    a draw must not equal."""
    dim = sampler.space.dim
    taken = np.asarray(pending, dtype=float).reshape(-1, dim)
    out = []
    for row in np.asarray(rows, dtype=float).reshape(-1, dim):
        if len(taken) and np.abs(taken - row).sum(axis=1).min() < NEAR_L1:
            exclude = taken if known is None else np.vstack([known, taken])
            draws = sampler.sample(DRAWS, rng, exclude=exclude)
            distance = np.abs(draws[:, None, :] - taken[None, :, :]).sum(axis=2).min(axis=1)
            row = draws[int(np.argmax(distance))]
        out.append(row)
        taken = np.vstack([taken, row])
    return np.stack(out) if out else np.zeros((0, dim))
