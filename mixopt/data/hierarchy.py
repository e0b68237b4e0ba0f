"""Hierarchical domains: search over groups with fixed within-group proportions, or over leaves.

A domain's ``group`` is a path (``web``, ``web/en``, ``web/en/hq``: source → topic → quality, as in
Olmix). With ``groups.level: groups`` the search runs over *units*: the group paths cut to
``groups.depth`` levels, plus every ungrouped domain on its own. Inside a unit the leaves keep
fixed shares: their ``share`` (relative, normalised) when given, else their natural share of the
unit's train tokens. A unit weight ``g`` therefore means leaf weights ``g * share``:

    leaves = units @ shares          # (n, U) @ (U, L) -> (n, L); each row of shares sums to 1

Bounds, fixed weights and repetition caps stay on the leaves (where the data is); the unit space
takes the tightest interval they allow, ``max_l lower_l / share_l <= g <= min_l upper_l / share_l``
(:meth:`Hierarchy.unit_space`), so every unit mixture expands to a leaf mixture inside the leaf
space. With ``level: leaves`` (the default) the hierarchy is the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mixopt.errors import InfeasibleSpaceError, SpecError

if TYPE_CHECKING:
    from mixopt.space import MixtureSpace
    from mixopt.spec import JobSpec

_TOL = 1e-9


@dataclass(frozen=True)
class Hierarchy:
    """Units searched, leaves trained on, and each unit's fixed leaf shares."""

    leaves: tuple[str, ...]
    units: tuple[str, ...]
    shares: np.ndarray  # (U, L), rows sum to 1, zero outside the unit's members

    @property
    def trivial(self) -> bool:
        """True when the units are the leaves (search over leaves)."""
        return self.units == self.leaves

    def members(self, unit: str) -> list[str]:
        row = self.shares[self.units.index(unit)]
        return [leaf for leaf, share in zip(self.leaves, row, strict=True) if share > 0]

    def expand(self, unit_weights: np.ndarray) -> np.ndarray:
        """Leaf weights (n, L) of unit weights (n, U) (or (U,) → (L,))."""
        return np.asarray(unit_weights, dtype=float) @ self.shares

    def collapse(self, leaf_weights: np.ndarray) -> np.ndarray:
        """Unit weights of leaf weights: each unit's members summed."""
        membership = (self.shares > 0).astype(float)
        return np.asarray(leaf_weights, dtype=float) @ membership.T

    def expand_dict(self, unit_weights: np.ndarray) -> dict[str, float]:
        return {d: float(w) for d, w in zip(self.leaves, self.expand(unit_weights), strict=True)}

    def unit_space(self, leaf_space: MixtureSpace) -> MixtureSpace:
        """The space of unit weights whose expansion lies in ``leaf_space`` (bounds and caps)."""
        from mixopt.space import MixtureSpace

        if tuple(leaf_space.domains) != self.leaves:
            raise ValueError("leaf space and hierarchy name different domains")
        if self.trivial:
            return leaf_space
        lower = np.zeros(len(self.units))
        upper = np.ones(len(self.units))
        for u, unit in enumerate(self.units):
            row = self.shares[u]
            for leaf, share, lo, hi in zip(
                self.leaves, row, leaf_space.lower, leaf_space.upper, strict=True
            ):
                if share > 0:
                    lower[u] = max(lower[u], lo / share)
                    upper[u] = min(upper[u], hi / share)
                elif lo > _TOL and self.shares[:, self.leaves.index(leaf)].sum() == 0:
                    raise InfeasibleSpaceError(
                        f"groups: {leaf} must be >= {lo:g} but has a share of 0 in its group"
                    )
            if lower[u] > upper[u] + _TOL:
                parts = ", ".join(
                    f"{leaf} share {share:.3g} in [{lo:g}, {hi:.3g}]"
                    for leaf, share, lo, hi in zip(
                        self.leaves, row, leaf_space.lower, leaf_space.upper, strict=True
                    )
                    if share > 0
                )
                raise InfeasibleSpaceError(
                    f"groups: unit {unit!r} cannot satisfy its leaves' bounds/caps with fixed "
                    f"shares ({parts}): it would need {lower[u]:.4g} <= weight <= {upper[u]:.4g}"
                )
        return MixtureSpace(self.units, lower, np.minimum(upper, 1.0))


def identity(domains: list[str]) -> Hierarchy:
    return Hierarchy(tuple(domains), tuple(domains), np.eye(len(domains)))


def unit_of(name: str, group: str | None, depth: int) -> str:
    """The unit a domain belongs to: its group path cut to ``depth`` levels, or itself."""
    if not group:
        return name
    return "/".join(group.split("/")[:depth])


def check_groups(spec: JobSpec) -> None:
    """Spec-level checks (no data needed): unit names do not clash with other domains, and a
    unit gives ``share`` to all of its domains or to none."""
    units: dict[str, list[str]] = {}
    for d in spec.domains:
        units.setdefault(unit_of(d.name, d.group, spec.groups.depth), []).append(d.name)
    names = set(spec.domain_names)
    for unit, members in units.items():
        if unit in names and members != [unit]:
            raise SpecError(
                f"groups: group {unit!r} has the name of domain {unit!r}, which is not its only "
                f"member ({members}); rename one"
            )
        shared = [m for m in members if spec.domains[spec.domain_names.index(m)].share is not None]
        if shared and len(shared) != len(members):
            missing = sorted(set(members) - set(shared))
            raise SpecError(
                f"groups: unit {unit!r} gives share to {shared} but not to {missing}; "
                "give every domain of the unit a share, or none (natural shares)"
            )


def build_hierarchy(spec: JobSpec, train_tokens: Mapping[str, int]) -> Hierarchy:
    """The job's hierarchy (identity unless ``groups.level`` is ``groups``)."""
    leaves = spec.domain_names
    if spec.groups.level == "leaves":
        return identity(leaves)
    check_groups(spec)
    units: list[str] = []
    for d in spec.domains:
        unit = unit_of(d.name, d.group, spec.groups.depth)
        if unit not in units:
            units.append(unit)
    shares = np.zeros((len(units), len(leaves)))
    for j, d in enumerate(spec.domains):
        u = units.index(unit_of(d.name, d.group, spec.groups.depth))
        shares[u, j] = d.share if d.share is not None else float(train_tokens.get(d.name, 0))
    for u in range(len(units)):
        total = shares[u].sum()
        if total <= 0:  # no tokens anywhere in the unit: equal shares
            members = [
                j
                for j, d in enumerate(spec.domains)
                if unit_of(d.name, d.group, spec.groups.depth) == units[u]
            ]
            shares[u, members] = 1.0 / len(members)
        else:
            shares[u] /= total
    return Hierarchy(tuple(leaves), tuple(units), shares)
