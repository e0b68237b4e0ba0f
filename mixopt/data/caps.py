"""Repetition caps: how much of the target run a domain may take without repeating too often.

A domain with ``n`` train tokens, repeated at most ``e`` times (epochs), can supply ``n * e``
tokens; in a target run of ``T`` tokens it may therefore take at most the weight

    cap = min(1, n * e / T)                         (Olmix; e = 4 by default)

The caps become upper bounds of the mixture space (:meth:`MixtureSpace.with_caps`), so every
sampled, proposed or recommended mixture respects them. When the domains together cannot supply
``T`` tokens under their limits, no mixture does: :func:`apply_caps` says so, with the largest
budget that would work.

With mixture stages (``stages:`` in the spec) the caps bound the searched stage, and the fixed
stages consume budget too: a domain that the fixed stages take ``f`` tokens of, in a searched
stage of share ``s``, may take at most

    cap = min(1, (n * e - f) / (s * T))

and when the fixed stages alone exceed a domain's ``n * e`` no mixture of the searched stage
helps: :func:`apply_caps` says which domain and by how much.

Proxies see far fewer tokens than the target, so a trial's own repetition is small, but it is
reported too (:func:`epochs_consumed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mixopt.errors import InfeasibleSpaceError

MIN_ROOM = 1e-3
"""Caps whose maxima sum to less than ``1 + MIN_ROOM`` pin the mixture: nothing left to search."""

if TYPE_CHECKING:
    from mixopt.data.manifest import DataManifest
    from mixopt.space import MixtureSpace
    from mixopt.spec import JobSpec


@dataclass(frozen=True)
class RepetitionCaps:
    """Per-domain maximum weights for a target budget."""

    target_tokens: float
    train_tokens: dict[str, int]
    epochs: dict[str, float]
    caps: dict[str, float]
    fixed_tokens: dict[str, float] = field(default_factory=dict)  # taken by the fixed stages
    searched_share: float = 1.0  # the searched stage's share of target_tokens

    @property
    def supply(self) -> float:
        """Tokens the domains can still supply to the searched stage within their epoch limits
        (``sum max(0, n_d * e_d - f_d)``; ``sum n_d * e_d`` without fixed stages)."""
        return float(
            sum(max(0.0, self.budget(d) - self.fixed_tokens.get(d, 0.0)) for d in self.caps)
        )

    @property
    def needed(self) -> float:
        """Tokens the searched stage trains on: ``searched_share * target_tokens``."""
        return self.searched_share * self.target_tokens

    def budget(self, domain: str) -> float:
        """``n_d * e_d``: the domain's tokens within its epoch limit."""
        return self.train_tokens[domain] * self.epochs[domain]

    def overdrawn(self) -> dict[str, float]:
        """Domains whose fixed stages alone take more than their budget: domain -> excess."""
        excess = {d: self.fixed_tokens.get(d, 0.0) - self.budget(d) for d in self.caps}
        return {d: x for d, x in excess.items() if x > 1e-9 * max(1.0, self.budget(d))}

    def describe(self) -> str:
        """One line per domain: tokens, epoch limit, what the fixed stages take, and cap."""
        return "\n".join(
            f"{d}: {self.train_tokens[d]:,} tokens x {self.epochs[d]:g} epochs "
            + (
                f"- {self.fixed_tokens[d]:,.0f} in fixed stages "
                if self.fixed_tokens.get(d)
                else ""
            )
            + f"-> max weight {cap:.4g}"
            for d, cap in self.caps.items()
        )


def repetition_caps(
    train_tokens: Mapping[str, int],
    target_tokens: float,
    max_epochs: float = 4.0,
    epochs: Mapping[str, float | None] | None = None,
    *,
    fixed_tokens: Mapping[str, float] | None = None,
    searched_share: float = 1.0,
) -> RepetitionCaps:
    """Caps ``min(1, n_d * e_d / target_tokens)``; ``epochs`` overrides ``max_epochs`` by domain.

    With stages: ``fixed_tokens`` (domain -> tokens the fixed stages take) come off each
    domain's budget and the rest is shared by a searched stage of ``searched_share`` of
    ``target_tokens``: ``min(1, max(0, n_d * e_d - f_d) / (searched_share * target_tokens))``."""
    if not target_tokens > 0:
        raise ValueError(f"target_tokens must be > 0, got {target_tokens}")
    if not 0 < searched_share <= 1:
        raise ValueError(f"searched_share must be in (0, 1], got {searched_share}")
    fixed = {d: float(t) for d, t in (fixed_tokens or {}).items() if t > 0}
    unknown = sorted(set(fixed) - set(train_tokens))
    if unknown:
        raise ValueError(f"fixed_tokens name unknown domain(s) {unknown}")
    limits = {d: float((epochs or {}).get(d) or max_epochs) for d in train_tokens}
    room = searched_share * target_tokens
    caps = {
        d: min(1.0, max(0.0, n * limits[d] - fixed.get(d, 0.0)) / room)
        for d, n in train_tokens.items()
    }
    return RepetitionCaps(
        float(target_tokens), dict(train_tokens), limits, caps, fixed, float(searched_share)
    )


def caps_for_job(spec: JobSpec, manifest: DataManifest) -> RepetitionCaps | None:
    """The job's caps from ``target.tokens`` and the domains' ``max_epochs`` (None without a
    target budget)."""
    if spec.target.tokens is None:
        return None
    from mixopt.spec.stages import fixed_tokens, searched_share

    return repetition_caps(
        manifest.train_tokens(),
        spec.target.tokens,
        spec.target.max_epochs,
        {d.name: d.max_epochs for d in spec.domains},
        fixed_tokens=fixed_tokens(spec.stages, spec.target.tokens),
        searched_share=searched_share(spec.stages),
    )


def apply_caps(space: MixtureSpace, caps: RepetitionCaps | None) -> MixtureSpace:
    """``space`` with the caps as upper bounds; a clear error when no mixture fits them."""
    if caps is None:
        return space
    overdrawn = caps.overdrawn()
    if overdrawn:
        detail = "; ".join(
            f"{d}: {caps.fixed_tokens[d]:,.0f} > {caps.train_tokens[d]:,} x {caps.epochs[d]:g} "
            f"epochs = {caps.budget(d):,.0f}"
            for d in overdrawn
        )
        raise InfeasibleSpaceError(
            f"stages: the fixed stages alone repeat domain(s) {sorted(overdrawn)} beyond their "
            f"epoch limits at target.tokens = {caps.target_tokens:,.0f} ({detail}); lower their "
            "weights or shares, lower target.tokens or raise the epoch limits"
        )
    if caps.fixed_tokens and caps.supply < caps.needed * (1 - 1e-9):
        raise InfeasibleSpaceError(
            f"stages: the searched stage needs {caps.needed:,.0f} tokens of target.tokens = "
            f"{caps.target_tokens:,.0f}, but after the fixed stages the domains supply at most "
            f"{caps.supply:,.0f} within their epoch limits; lower target.tokens, shift weight "
            "in the fixed stages to larger domains, or raise the epoch limits"
        )
    if caps.supply < caps.needed * (1 - 1e-9):
        per_domain = ", ".join(
            f"{d} {caps.train_tokens[d]:,} x {caps.epochs[d]:g}" for d in caps.caps
        )
        raise InfeasibleSpaceError(
            f"target.tokens = {caps.target_tokens:,.0f} cannot be reached: within their epoch "
            f"limits the domains supply at most {caps.supply:,.0f} tokens ({per_domain}); "
            f"lower target.tokens to at most {caps.supply:,.0f}, raise target.max_epochs or a "
            "domain's max_epochs, or add data"
        )
    detail = "; ".join(caps.describe().splitlines())
    try:
        capped = space.with_caps(caps.caps, what="repetition cap")
    except InfeasibleSpaceError as error:
        raise InfeasibleSpaceError(
            f"{error} [repetition caps for target.tokens = {caps.target_tokens:,.0f}: {detail}]"
        ) from None
    room = float(capped.upper.sum()) - 1.0
    if room < MIN_ROOM and float(space.upper.sum()) - 1.0 >= MIN_ROOM:
        raise InfeasibleSpaceError(
            f"target.tokens = {caps.target_tokens:,.0f} leaves no room to search: under the "
            f"repetition caps the maximum weights sum to {1 + room:.6g}, so every feasible mixture "
            f"is within {max(room, 0):.2g} of the caps themselves [{detail}]; lower "
            "target.tokens or raise the epoch limits"
        )
    return capped


def epochs_consumed(
    weights: Mapping[str, float], tokens_seen: float, train_tokens: Mapping[str, int]
) -> dict[str, float]:
    """Epochs of each domain a run of ``tokens_seen`` tokens on ``weights`` goes through:
    ``tokens_seen * w_d / train_tokens_d`` (infinite for a weighted domain with no tokens)."""
    out: dict[str, float] = {}
    for domain, n in train_tokens.items():
        w = float(weights.get(domain, 0.0))
        out[domain] = tokens_seen * w / n if n > 0 else (float("inf") if w > 0 else 0.0)
    return out
