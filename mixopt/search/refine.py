"""Refining discovered domains between search rounds (CLIMB): prune clusters, merge duplicates.

    plan = plan_refinement(weights, objective, ["cluster_00", …], centroids=C)
    plan.decisions          # one per cluster: keep / prune (negligible or harmful) / merge
    plan.groups             # the refined domains: each a list of old clusters (merged ones sum)
    W2, y2, kept = plan.carry_over(weights, objective)   # old trials on the refined domains

A predictor (``auto`` by default; any name of :func:`mixopt.predictors.make_predictor`) is fitted
to the trials (mixture weights → objective). Its optimum is estimated RegMix-style: many random
mixtures (Dirichlet, plus the trials themselves) are predicted and the best ``top`` averaged.
Then, for each cluster:

- **harmful**: sweeping its weight from a high share (the 90th percentile of its trials' shares)
  down to 0 around the trials' mean mixture (the others rescaled), the predicted objective gets
  better at every step (within ``tolerance``) and by at least ``min_effect`` overall;
- **negligible**: the optimum gives it less than ``prune_below`` and removing it from the optimum
  (the others rescaled) changes the prediction by less than ``min_effect``;
- **merged**: the cosine similarity of two clusters' centroids is above ``merge_above``, or (with
  ``merge_effect`` > 0) both matter and they are interchangeable: moving either's weight onto the
  other changes the prediction at the trials by at most ``merge_effect`` times the objective's
  spread on average.

``min_effect`` is ``effect`` times the spread (max − min) of the observed objective. At least two
domains always remain: when pruning would leave fewer, the least clear prunes are kept. Every
decision carries its reason (numbers included), so a user can check it.

The carried-over trials are the old ones mapped onto the refined domains: a merged domain's
weight is the sum of its clusters', and a trial that put more than ``drop_above`` on pruned
clusters is dropped; the rest are renormalised (their objective is kept, as an approximation) and
warm-start the next round's predictor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mixopt.errors import MixoptError

Action = Literal["keep", "prune", "merge"]
_SWEEP_POINTS = 11


@dataclass(frozen=True)
class Decision:
    """What happens to one cluster, and why."""

    cluster: str
    action: Action
    reason: str
    into: str | None = None  # merge: the refined domain it joins

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "action": self.action, "reason": self.reason} | (
            {"into": self.into} if self.into else {}
        )


@dataclass
class RefinePlan:
    """The refined domains (``groups``: old clusters per new domain; ``names`` theirs) and the
    decision about every old cluster."""

    domains: list[str]
    groups: list[list[str]]
    names: list[str]
    decisions: list[Decision]
    optimum: dict[str, float] = field(default_factory=dict)
    drop_above: float = 0.05

    @property
    def pruned(self) -> list[str]:
        return [d.cluster for d in self.decisions if d.action == "prune"]

    @property
    def merged(self) -> list[list[str]]:
        return [g for g in self.groups if len(g) > 1]

    def carry_over(
        self, weights: np.ndarray, objective: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The trials on the refined domains: (weights (n', m'), objective (n',), kept mask
        over the old trials)."""
        W = _check_trials(weights, objective, self.domains)
        index = {name: j for j, name in enumerate(self.domains)}
        pruned = [index[n] for n in self.pruned]
        lost = W[:, pruned].sum(axis=1) if pruned else np.zeros(len(W))
        kept = lost <= self.drop_above + 1e-12
        grouped = np.stack([W[:, [index[n] for n in g]].sum(axis=1) for g in self.groups], axis=1)
        total = grouped.sum(axis=1, keepdims=True)
        kept &= total[:, 0] > 0
        new = grouped[kept] / total[kept]
        return new, np.asarray(objective, dtype=float)[kept], kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "domains": dict(zip(self.names, self.groups, strict=True)),
            "pruned": self.pruned,
            "merged": self.merged,
            "decisions": [d.to_dict() for d in self.decisions],
            "optimum": self.optimum,
            "drop_above": self.drop_above,
        }


def plan_refinement(
    weights: np.ndarray,
    objective: np.ndarray,
    domains: list[str],
    *,
    centroids: np.ndarray | None = None,
    minimize: bool = True,
    predictor: str = "auto",
    prune_below: float = 0.02,
    merge_above: float = 0.9,
    merge_effect: float = 0.0,
    effect: float = 0.05,
    tolerance: float = 0.01,
    drop_above: float = 0.05,
    candidates: int = 4096,
    top: int = 64,
    seed: int = 0,
) -> RefinePlan:
    """Decide which clusters to prune and which to merge (see the module's docstring).

    ``weights`` (n, m) are the trials' mixtures over ``domains``; ``objective`` (n,) their
    objective; ``centroids`` (m, d) the clusters' centroids (any scale), when known."""
    from mixopt.predictors import make_predictor

    W = _check_trials(weights, objective, domains)
    y = np.asarray(objective, dtype=float)
    _check_settings(prune_below, merge_above, merge_effect, effect, tolerance, drop_above)
    if centroids is not None:
        centroids = np.asarray(centroids, dtype=float)
        if centroids.ndim != 2 or centroids.shape[0] != len(domains):
            raise MixoptError(
                f"centroids: expected one row per domain ({len(domains)}), got shape "
                f"{centroids.shape}"
            )
    sign = 1.0 if minimize else -1.0  # work on a loss: lower is better
    loss = sign * y
    model = make_predictor(predictor).fit(W, loss)

    def predict(X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(X), dtype=float)

    m = len(domains)
    rng = np.random.default_rng(seed)
    pool = np.vstack([rng.dirichlet(np.ones(m), size=candidates), W])
    best = pool[np.argsort(predict(pool))[: min(top, len(pool))]]
    optimum = best.mean(axis=0)
    min_effect = effect * float(np.ptp(loss)) if np.ptp(loss) > 0 else 0.0
    tol = tolerance * float(np.ptp(loss))
    base = W.mean(axis=0)
    curves = np.stack([_sweep(predict, base, j, W) for j in range(m)])  # (m, points): high→0

    prune_reasons: dict[int, tuple[float, str]] = {}
    for j in range(m):
        curve = curves[j]
        steps = np.diff(curve)  # moving the weight toward 0
        gain = curve[0] - curve[-1]
        if np.all(steps <= tol) and gain >= max(min_effect, 1e-12):
            high = _high_share(W, j)
            prune_reasons[j] = (
                gain,
                f"harmful: the predicted objective improves at every step as its weight goes "
                f"from {high:.3f} to 0 (by {gain:.4g} in all, more than {min_effect:.4g})",
            )
            continue
        if optimum[j] < prune_below:
            change = abs(float(predict(_without(optimum, j)[None])[0] - predict(optimum[None])[0]))
            if change < min_effect or min_effect == 0:
                prune_reasons[j] = (
                    -1.0 + optimum[j],  # less clear than any harmful one
                    f"negligible: the predicted optimum gives it {optimum[j]:.4f} (< "
                    f"{prune_below}) and removing it changes the prediction by {change:.4g} "
                    f"(< {min_effect:.4g})",
                )
    # never prune below two domains: keep the least clear prunes
    order = sorted(prune_reasons, key=lambda j: prune_reasons[j][0], reverse=True)
    allowed = set(order[: max(0, m - 2)])
    kept_back = [j for j in order if j not in allowed]

    remaining = [j for j in range(m) if j not in allowed]
    parent = {j: j for j in remaining}

    def root(j: int) -> int:
        while parent[j] != j:
            j = parent[j]
        return j

    why: dict[tuple[int, int], str] = {}
    unit = _unit_rows(centroids) if centroids is not None else None
    for a_i, a in enumerate(remaining):
        for b in remaining[a_i + 1 :]:
            reason = None
            if unit is not None:
                cosine = float(unit[a] @ unit[b])
                if cosine > merge_above:
                    reason = f"centroid cosine similarity {cosine:.3f} > {merge_above}"
            if reason is None and merge_effect > 0:
                change = _swap_change(predict, W, a, b)
                limit = merge_effect * float(np.ptp(loss))
                matter = min(np.ptp(curves[a]), np.ptp(curves[b])) >= max(min_effect, 1e-12)
                if matter and change <= limit:
                    reason = (
                        f"near-identical effect: moving either's weight onto the other changes "
                        f"the prediction by {change:.4g} on average (<= {limit:.4g})"
                    )
            if reason is not None and root(a) != root(b):
                parent[root(b)] = root(a)
                why[(a, b)] = reason
    groups_idx: dict[int, list[int]] = {}
    for j in remaining:
        groups_idx.setdefault(root(j), []).append(j)
    groups = [[domains[j] for j in g] for g in groups_idx.values()]
    names = ["-".join(g) if len(g) > 1 else g[0] for g in groups]

    decisions: list[Decision] = []
    for j, name in enumerate(domains):
        if j in allowed:
            decisions.append(Decision(name, "prune", prune_reasons[j][1]))
            continue
        group = next(g for g in groups if name in g)
        if len(group) > 1:
            pairs = [
                f"with {domains[b] if a == j else domains[a]}: {r}"
                for (a, b), r in why.items()
                if j in (a, b)
            ]
            into = names[groups.index(group)]
            reason = "; ".join(pairs) or f"joined through its group {into}"
            decisions.append(Decision(name, "merge", reason, into=into))
        elif j in kept_back:
            decisions.append(
                Decision(name, "keep", f"{prune_reasons[j][1]}; kept: at least 2 domains remain")
            )
        else:
            decisions.append(
                Decision(name, "keep", f"optimum weight {optimum[j]:.3f}; matters to the objective")
            )
    return RefinePlan(
        domains=list(domains),
        groups=groups,
        names=names,
        decisions=decisions,
        optimum={d: float(w) for d, w in zip(domains, optimum, strict=True)},
        drop_above=drop_above,
    )


def _check_trials(weights: np.ndarray, objective: np.ndarray, domains: list[str]) -> np.ndarray:
    W = np.asarray(weights, dtype=float)
    y = np.asarray(objective, dtype=float)
    if len(domains) < 2 or len(set(domains)) != len(domains):
        raise MixoptError(f"refine: need at least 2 distinct domains, got {domains}")
    if W.ndim != 2 or W.shape[1] != len(domains):
        raise MixoptError(
            f"refine: weights must be (trials, {len(domains)} domains), got shape {W.shape}"
        )
    if y.shape != (len(W),):
        raise MixoptError(f"refine: {len(W)} trials but {y.size} objective values")
    if len(W) < 2 * len(domains):
        raise MixoptError(
            f"refine: {len(W)} finished trials are too few to judge {len(domains)} domains "
            f"(need at least {2 * len(domains)}); run more trials first"
        )
    if not (np.isfinite(W).all() and np.isfinite(y).all()) or (W < 0).any():
        raise MixoptError("refine: weights must be finite and >= 0, objectives finite")
    return W


def _check_settings(*values: float) -> None:
    names = ("prune_below", "merge_above", "merge_effect", "effect", "tolerance", "drop_above")
    for name, value in zip(names, values, strict=True):
        if not 0 <= value <= 1:
            raise MixoptError(f"refine: {name} must be in [0, 1], got {value}")


def _high_share(W: np.ndarray, j: int) -> float:
    return float(max(np.quantile(W[:, j], 0.9), 1e-6))


def _sweep(predict: Any, base: np.ndarray, j: int, W: np.ndarray) -> np.ndarray:
    """Predicted loss as domain ``j``'s share goes from a high value down to 0 (others keep
    their proportions in ``base``)."""
    others = base.copy()
    others[j] = 0.0
    others = others / others.sum() if others.sum() > 0 else np.full_like(base, 1 / (len(base) - 1))
    others[j] = 0.0
    shares = np.linspace(_high_share(W, j), 0.0, _SWEEP_POINTS)
    points = np.outer(1 - shares, others)
    points[:, j] = shares
    return predict(points)


def _swap_change(predict: Any, W: np.ndarray, a: int, b: int) -> float:
    """Mean absolute change of the prediction at the trials when ``a``'s weight moves onto ``b``
    and when ``b``'s moves onto ``a`` (interchangeable clusters: about 0)."""
    base = predict(W)
    changes = []
    for src, dst in ((a, b), (b, a)):
        moved = W.copy()
        moved[:, dst] += moved[:, src]
        moved[:, src] = 0.0
        changes.append(np.abs(predict(moved) - base).mean())
    return float(max(changes))


def _without(w: np.ndarray, j: int) -> np.ndarray:
    out = w.copy()
    out[j] = 0.0
    return out / out.sum()


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
