"""The proposer contract: uniform ask/tell, finite candidate sets, state, recommendations.

A caller (the search driver, ``mixopt.replay``, ``Study``) drives every strategy the same way:

- ``tell(X, y, targets=None, *, levels=None, costs=None)``: observed mixtures ``X`` (n, m), the
  objective ``y`` (n,) in the *minimise* convention, optionally the per-target values (n, t),
  the fidelity level of each row (None: the target fidelity) and its measured cost (e.g. wall
  seconds). Rows with a non-finite value are dropped. A single-fidelity proposer has one level
  (0, the target) and refuses rows at any other.
- ``propose(n, *, candidates=None, pending=None) -> Batch``: ``n`` new mixtures, in the space's
  domain order, with the level to run each at (multi-fidelity proposers) and, when a finite
  :class:`Candidates` set is given, the distinct rows of it that were chosen. ``pending`` (k, m):
  mixtures being evaluated whose results are not known yet; a proposer with ``takes_pending``
  (``bo``) conditions this proposal on them, the others refuse them (their callers tell them a
  lie instead, see ``mixopt.study.pending``).
- ``recommend()``: the best mixture by the proposer's model, with its evidence.
- ``report(context)``: what the strategy chose and why, as JSON values for recommendation.json
  (``{}`` for strategies with nothing to add; ``pareto`` returns its front and guard rails).

Proposals are deterministic: every random draw (numpy, and torch where a proposer uses it) is
seeded from ``(seed, proposals so far)``, so two proposers with the same options, told the same
observations in the same order, propose the same batch, and ``state_dict()`` /
``load_state_dict()`` carry exactly what that takes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mixopt.proposers.options import ProposerOptions, coerce_options
from mixopt.sampling import DirichletSampler


@dataclass
class Recommendation:
    """A proposed final mixture, the predicted objective, and the trials it rests on."""

    weights: np.ndarray  # (m,)
    predicted: float  # predicted objective (minimise convention)
    predicted_std: float | None = None  # spread over bootstrap refits of the predictor
    evidence: list[int] = field(default_factory=list)  # rows of the told data it was fitted on
    nearest: list[int] = field(default_factory=list)  # told rows closest to the mixture (L1)
    method: str = ""


@dataclass(frozen=True)
class ReportContext:
    """How a caller names what a proposer reports: the target columns told, the objective's
    convention (the caller's objective is ``sign`` times the minimised one), and a mixture of
    the proposer's space as named weights."""

    target_names: list[str]
    sign: float = 1.0
    mixture: Callable[[np.ndarray], dict[str, float]] | None = None  # None: the space's names


@dataclass(frozen=True)
class Candidates:
    """A finite set a proposal must choose from: mixtures, and each one's level and cost."""

    X: np.ndarray  # (k, m)
    levels: np.ndarray | None = None  # (k,) fidelity level indices; None: all at the target
    costs: np.ndarray | None = None  # (k,) cost of evaluating each row; None: the level's cost

    def __post_init__(self) -> None:
        X = np.atleast_2d(np.asarray(self.X, dtype=float))
        if X.ndim != 2 or not np.all(np.isfinite(X)):
            raise ValueError(f"candidates.X: a finite (k, m) matrix, got shape {X.shape}")
        object.__setattr__(self, "X", X)
        k = len(X)
        if self.levels is not None:
            levels = np.asarray(self.levels).reshape(-1)
            if levels.shape != (k,) or not np.issubdtype(levels.dtype, np.integer):
                raise ValueError(
                    f"candidates.levels: one integer level per row ({k}), got {levels}"
                )
            object.__setattr__(self, "levels", levels.astype(int))
        if self.costs is not None:
            costs = np.asarray(self.costs, dtype=float).reshape(-1)
            if costs.shape != (k,) or not np.all(np.isfinite(costs) & (costs > 0)):
                raise ValueError(f"candidates.costs: one positive cost per row ({k})")
            object.__setattr__(self, "costs", costs)

    def __len__(self) -> int:
        return len(self.X)


@dataclass(frozen=True)
class Batch:
    """What a proposal returns: mixtures, their levels, and their rows in the candidate set."""

    X: np.ndarray  # (n, m)
    levels: np.ndarray | None = None  # (n,) level indices; None: all at the target fidelity
    index: np.ndarray | None = None  # (n,) rows of the candidate set; None: no set was given


class Proposer(ABC):
    """Ask/tell over mixtures. Observations live in ``X_``, ``y_``, ``Y_``, ``levels_``,
    ``costs_``; subclasses implement ``_propose`` (continuous), ``_select`` (over a candidate
    set) and ``recommend``."""

    Options: ClassVar[type[ProposerOptions]] = ProposerOptions
    min_observations: ClassVar[int] = 2  # finished trials a proposal needs
    stream: ClassVar[int] = 0  # this strategy's random stream (proposals; recommend: + 1)
    takes_pending: ClassVar[bool] = False  # proposals condition on propose's ``pending``

    def __init__(
        self,
        sampler: DirichletSampler,
        options: ProposerOptions | Mapping[str, Any] | None = None,
        /,
        **values: Any,
    ) -> None:
        self.sampler = sampler
        self.options = coerce_options(type(self).Options, options, values)
        self.X_: np.ndarray | None = None  # (n, m)
        self.y_: np.ndarray | None = None  # (n,)
        self.Y_: np.ndarray | None = None  # (n, t) per-target values, when every row had them
        self.levels_ = np.zeros(0, dtype=int)  # (n,) fidelity level of each row
        self.costs_ = np.zeros(0)  # (n,) measured cost of each row, NaN where not told
        self._asked = 0
        self._pending_rows: np.ndarray | None = None  # (k, m): this proposal's pending mixtures

    # ---------------------------------------------------------------------------- fidelities

    @property
    def n_levels(self) -> int:
        """Fidelity levels this proposer knows (1: single-fidelity, level 0 is the target)."""
        return 1

    @property
    def target_level(self) -> int:
        return self.n_levels - 1

    @property
    def seed(self) -> int:
        return self.options.seed

    @property
    def target_weights(self) -> np.ndarray | None:
        weights = self.options.target_weights
        return None if weights is None else np.asarray(weights, dtype=float)

    # ------------------------------------------------------------------------------ tell/ask

    def tell(
        self,
        X: np.ndarray,
        y: np.ndarray,
        targets: np.ndarray | None = None,
        *,
        levels: np.ndarray | None = None,
        costs: np.ndarray | None = None,
    ) -> None:
        """Record observed mixtures ``X`` (n, m) and objective values ``y`` (n,), minimised.

        ``targets`` (n, t): per-target values (``y = targets @ target_weights``); ``levels``
        (n,): each row's fidelity level (None: the target); ``costs`` (n,): each row's measured
        cost, NaN where unknown. Rows with a non-finite ``y`` or target are dropped.
        """
        dim = self.sampler.space.dim
        X = np.atleast_2d(np.asarray(X, dtype=float))
        y = np.asarray(y, dtype=float).reshape(-1)
        n = len(y)
        if X.shape != (n, dim):
            raise ValueError(f"tell: X must be ({n}, {dim}) for {n} values of y, got {X.shape}")
        finite = np.isfinite(y)
        if targets is not None:
            targets = np.atleast_2d(np.asarray(targets, dtype=float))
            if targets.shape[0] != n:
                raise ValueError(f"tell: targets must have one row per value of y ({n})")
            self._check_targets(targets.shape[1])
            finite &= np.isfinite(targets).all(axis=1)
        levels = self._check_levels(levels, n, "tell")
        costs = np.full(n, np.nan) if costs is None else np.asarray(costs, dtype=float).reshape(-1)
        if costs.shape != (n,) or np.any(costs[np.isfinite(costs)] <= 0):
            raise ValueError(f"tell: costs must be one positive value (or NaN) per row ({n})")
        if targets is not None:
            T = targets[finite]
            self.Y_ = T if self.Y_ is None else np.vstack([self.Y_, T])
        self.X_ = X[finite] if self.X_ is None else np.vstack([self.X_, X[finite]])
        self.y_ = y[finite] if self.y_ is None else np.concatenate([self.y_, y[finite]])
        self.levels_ = np.concatenate([self.levels_, levels[finite]])
        self.costs_ = np.concatenate([self.costs_, costs[finite]])

    def propose(
        self,
        n: int,
        *,
        candidates: Candidates | None = None,
        pending: np.ndarray | None = None,
    ) -> Batch:
        """``n`` new mixtures; from ``candidates``, at most ``n`` distinct rows of it;
        conditioned on the ``pending`` mixtures (k, m) (``takes_pending`` proposers only)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"propose: n must be a positive integer, got {n!r}")
        pending = self._check_pending(pending)
        self._pending_rows = pending
        try:
            return self._propose_checked(int(n), candidates)
        finally:
            self._pending_rows = None

    def _check_pending(self, pending: np.ndarray | None) -> np.ndarray | None:
        if pending is None or len(pending) == 0:
            return None
        rows = np.atleast_2d(np.asarray(pending, dtype=float))
        if rows.ndim != 2 or rows.shape[1] != self.sampler.space.dim:
            raise ValueError(
                f"pending: mixtures of {self.sampler.space.dim} domains, got shape {rows.shape}"
            )
        if not np.all(np.isfinite(rows)):
            raise ValueError("pending: every weight must be a finite number")
        if not self.takes_pending:
            raise ValueError(
                f"{type(self).__name__} does not condition on pending mixtures; tell it a "
                "pessimistic value for each instead (mixopt.study.pending)"
            )
        return rows

    def _propose_checked(self, n: int, candidates: Candidates | None) -> Batch:
        if candidates is not None:
            if candidates.X.shape[1] != self.sampler.space.dim:
                raise ValueError(
                    f"candidates.X: {candidates.X.shape[1]} columns, the space has "
                    f"{self.sampler.space.dim} domains"
                )
            self._check_levels(candidates.levels, len(candidates), "candidates")
            if len(candidates) == 0:
                raise ValueError("candidates: the set is empty")
        self._require_observations(self.min_observations)
        rng = self._rng()
        if candidates is None:
            batch = self._propose(int(n), rng)
        else:
            take = min(int(n), len(candidates))
            index = np.asarray(self._select(take, candidates, rng), dtype=int).reshape(-1)
            if len(index) != take or len(np.unique(index)) != take:
                raise AssertionError(
                    f"{type(self).__name__} chose rows {index}, not {take} distinct"
                )
            levels = None if candidates.levels is None else candidates.levels[index]
            batch = Batch(candidates.X[index], levels, index)
        self._asked += 1  # after: a failed proposal is repeated identically
        return batch

    def ask(self, n: int, *, pending: np.ndarray | None = None) -> np.ndarray:
        """``propose(n, pending=pending).X``: ``n`` new mixtures, shape (n, m)."""
        return self.propose(n, pending=pending).X

    @abstractmethod
    def _propose(self, n: int, rng: np.random.Generator) -> Batch:
        """``n`` mixtures anywhere in the space."""

    @abstractmethod
    def _select(self, n: int, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        """``n`` distinct row indices of ``candidates``."""

    @abstractmethod
    def recommend(self) -> Recommendation:
        """The best mixture according to what has been told."""

    def report(self, context: ReportContext | None = None) -> dict[str, Any]:
        """What this strategy chose and why, for recommendation.json (JSON values; ``{}``: none).

        Called after :meth:`recommend`; ``context`` names targets and mixtures."""
        return {}

    def _context(self, context: ReportContext | None) -> ReportContext:
        """``context`` with every field filled (targets ``target 0``…, the space's names)."""
        t = 0 if self.Y_ is None else self.Y_.shape[1]
        context = context or ReportContext([f"target {i}" for i in range(t)])
        if context.mixture is None:
            space = self.sampler.space
            return ReportContext(context.target_names, context.sign, space.as_dict)
        return context

    @property
    def n_observed(self) -> int:
        return 0 if self.y_ is None else len(self.y_)

    # --------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything told and the proposal count (JSON-serialisable; options are not in it)."""
        return {
            "proposer": type(self).__name__,
            "X": None if self.X_ is None else self.X_.tolist(),
            "y": None if self.y_ is None else self.y_.tolist(),
            "Y": None if self.Y_ is None else self.Y_.tolist(),
            "levels": self.levels_.tolist(),
            "costs": [None if not np.isfinite(c) else float(c) for c in self.costs_],
            "asked": self._asked,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        owner = state.get("proposer", type(self).__name__)
        if owner != type(self).__name__:
            raise ValueError(f"a {owner}'s state cannot be loaded into a {type(self).__name__}")
        self.X_ = None if state["X"] is None else np.asarray(state["X"], dtype=float)
        self.y_ = None if state["y"] is None else np.asarray(state["y"], dtype=float)
        self.Y_ = None if state.get("Y") is None else np.asarray(state["Y"], dtype=float)
        n = self.n_observed
        self.levels_ = np.asarray(state.get("levels", [self.target_level] * n), dtype=int)
        self.costs_ = np.array(
            [np.nan if c is None else float(c) for c in state.get("costs", [None] * n)], dtype=float
        )
        self._asked = int(state["asked"])

    # ------------------------------------------------------------------------------- helpers

    def _rng(self) -> np.random.Generator:
        """The generator of this proposal: from (seed, strategy stream, proposal count)."""
        return np.random.default_rng([self.options.seed, self.stream, self._asked])

    def _torch_seed(self) -> int:
        """A torch seed for this proposal (seed torch with it before any torch draw)."""
        rng = np.random.default_rng([self.options.seed, self.stream, self._asked, 1])
        return int(rng.integers(0, 2**31 - 1))

    def _recommend_rng(self) -> np.random.Generator:
        """The generator of a recommendation: from (seed, stream + 1, observations)."""
        return np.random.default_rng([self.options.seed, self.stream + 1, self.n_observed])

    def _check_levels(self, levels: Any, n: int, where: str) -> np.ndarray:
        if levels is None:
            return np.full(n, self.target_level, dtype=int)
        array = np.asarray(levels).reshape(-1)
        if array.shape != (n,) or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{where}: levels must be one integer level index per row ({n})")
        bad = sorted(set(array[(array < 0) | (array > self.target_level)].tolist()))
        if bad and self.n_levels == 1:
            raise ValueError(
                f"{where}: {type(self).__name__} is single-fidelity; it takes rows at the target "
                f"fidelity only (level 0 or levels=None), got level(s) {bad}"
            )
        if bad:
            raise ValueError(
                f"{where}: level(s) {bad} out of range; levels are 0..{self.target_level}"
            )
        return array.astype(int)

    def _check_targets(self, t: int) -> None:
        weights = self.options.target_weights
        if weights is not None and len(weights) != t:
            raise ValueError(f"tell: {t} target column(s), but {len(weights)} target_weights")
        if self.Y_ is not None and self.Y_.shape[1] != t:
            raise ValueError(f"tell: {t} target column(s), earlier tells had {self.Y_.shape[1]}")

    def _targets(self) -> np.ndarray | None:
        """Per-target observations aligned with ``y_`` (None unless every row came with them)."""
        if self.Y_ is None or self.options.target_weights is None or self.y_ is None:
            return None
        return self.Y_ if len(self.Y_) == len(self.y_) else None

    def _require_observations(self, minimum: int) -> tuple[np.ndarray, np.ndarray]:
        if self.X_ is None or self.y_ is None or len(self.y_) < minimum:
            if minimum == 0:
                return np.zeros((0, self.sampler.space.dim)), np.zeros(0)
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
