"""Repetition caps: how much of the target run a domain may take without repeating too often.

A domain with ``n`` train tokens, repeated at most ``e`` times (epochs), can supply ``n * e``
tokens; in a target run of ``T`` tokens it may therefore take at most the weight

    cap = min(1, n * e / T)                         (Olmix; e = 4 by default)

The caps become upper bounds of the mixture space (:meth:`MixtureSpace.with_caps`), so every
sampled, proposed or recommended mixture respects them. When the domains together cannot supply
``T`` tokens under their limits, no mixture does: :func:`apply_caps` says so, with the largest
budget that would work.

Proxies see far fewer tokens than the target, so a trial's own repetition is small, but it is
reported too (:func:`epochs_consumed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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

    @property
    def supply(self) -> float:
        """Tokens the domains can supply within their epoch limits (``sum n_d * e_d``)."""
        return float(sum(self.train_tokens[d] * self.epochs[d] for d in self.caps))

    def describe(self) -> str:
        """One line per domain: tokens, epoch limit and cap."""
        return "\n".join(
            f"{d}: {self.train_tokens[d]:,} tokens x {self.epochs[d]:g} epochs "
            f"-> max weight {cap:.4g}"
            for d, cap in self.caps.items()
        )


def repetition_caps(
    train_tokens: Mapping[str, int],
    target_tokens: float,
    max_epochs: float = 4.0,
    epochs: Mapping[str, float | None] | None = None,
) -> RepetitionCaps:
    """Caps ``min(1, n_d * e_d / target_tokens)``; ``epochs`` overrides ``max_epochs`` by domain."""
    if not target_tokens > 0:
        raise ValueError(f"target_tokens must be > 0, got {target_tokens}")
    limits = {d: float((epochs or {}).get(d) or max_epochs) for d in train_tokens}
    caps = {d: min(1.0, n * limits[d] / target_tokens) for d, n in train_tokens.items()}
    return RepetitionCaps(float(target_tokens), dict(train_tokens), limits, caps)


def caps_for_job(spec: JobSpec, manifest: DataManifest) -> RepetitionCaps | None:
    """The job's caps from ``target.tokens`` and the domains' ``max_epochs`` (None without a
    target budget)."""
    if spec.target.tokens is None:
        return None
    return repetition_caps(
        manifest.train_tokens(),
        spec.target.tokens,
        spec.target.max_epochs,
        {d.name: d.max_epochs for d in spec.domains},
    )


def apply_caps(space: MixtureSpace, caps: RepetitionCaps | None) -> MixtureSpace:
    """``space`` with the caps as upper bounds; a clear error when no mixture fits them."""
    if caps is None:
        return space
    if caps.supply < caps.target_tokens * (1 - 1e-9):
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
