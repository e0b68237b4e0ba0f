"""Units of a mixture: token shares, byte shares, document shares, and converting between them.

mixopt's recommendation is a share of *tokens* under the job's own tokenizer (what the proxies
trained on). The same mixture of text is, equivalently:

- byte shares: ``b_i ∝ w_i · bytes_i / tokens_i`` (tokenizer-independent);
- document (example) shares: ``d_i ∝ w_i / (tokens_i / documents_i)``: the probability of drawing
  a document of domain ``i`` when examples are whole documents (tokenizer-independent too);
- token shares under another tokenizer: ``w'_i ∝ b_i · tokens'_i / bytes'_i``, with that
  tokenizer's tokens per byte measured on the domain's text (:mod:`mixopt.export.retokenize`).

Every count is over a domain's whole data (train and held-out documents); a document's tokens
include its one end-of-text token, as mixopt's token files (and packed training) count them.
Converted shares are rounded like the recommendation (:func:`exact_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mixopt.errors import MixoptError

if TYPE_CHECKING:
    from mixopt.data.manifest import DataManifest

DECIMALS = 6

Unit = Literal["tokens", "examples", "all"]
"""What an export's weights are: shares of tokens (fixed-length sequences or packed tokens),
probabilities per example (one document per example), or every unit (json/yaml)."""

UNIT_TEXT: dict[str, str] = {
    "tokens": "token shares (the framework draws fixed-length token sequences)",
    "examples": "per-example probabilities, one document per example (document shares: "
    "the recommended token shares divided by each domain's mean tokens per document)",
    "all": "token shares (the recommendation), byte shares and document shares",
}


@dataclass(frozen=True)
class DomainMeasure:
    """A domain's size under one tokenizer: tokens (each document's end-of-text included),
    UTF-8 bytes of text and documents."""

    tokens: int
    bytes: int
    documents: int

    @property
    def tokens_per_document(self) -> float:
        return self.tokens / self.documents

    @property
    def bytes_per_token(self) -> float:
        return self.bytes / self.tokens


def manifest_measures(manifest: DataManifest) -> dict[str, DomainMeasure]:
    """Each domain's whole data (train + held-out) as the data manifest records it."""
    return {
        name: DomainMeasure(
            tokens=d.train_tokens + d.val_tokens,
            bytes=d.train_bytes + d.val_bytes,
            documents=d.documents,
        )
        for name, d in manifest.domains.items()
    }


def exact_weights(weights: Mapping[str, float], decimals: int = DECIMALS) -> dict[str, float]:
    """``weights`` normalised and rounded to ``decimals`` places so that they sum to exactly 1
    (largest remainder: the units lost to rounding go to the largest fractional parts)."""
    import numpy as np

    names = list(weights)
    try:
        values = np.array([float(weights[n]) for n in names], dtype=float)
    except (TypeError, ValueError):
        raise MixoptError(f"mixture weights must be numbers: {dict(weights)}") from None
    if not names:
        raise MixoptError("the mixture has no domains")
    if not np.all(np.isfinite(values)) or np.any(values < -1e-9) or values.sum() <= 0:
        raise MixoptError(f"mixture weights must be finite, >= 0 and not all 0: {dict(weights)}")
    scale = 10**decimals
    shares = np.clip(values, 0.0, None) / np.clip(values, 0.0, None).sum() * scale
    units = np.floor(shares).astype(np.int64)
    order = np.argsort(-(shares - units), kind="stable")
    units[order[: scale - int(units.sum())]] += 1
    return {n: round(int(u) / scale, decimals) for n, u in zip(names, units, strict=True)}


def _require(measures: Mapping[str, DomainMeasure], names: list[str], field: str, to: str) -> None:
    missing = [n for n in names if n not in measures or getattr(measures[n], field) <= 0]
    if missing:
        raise MixoptError(
            f"cannot convert the mixture into {to}: the data manifest records no {field} for "
            f"domain(s) {', '.join(missing)} (it was written by an older mixopt, or the domain "
            "is empty); run the job's data stage again (`mixopt run` on its spec reuses the "
            "cache) to record them"
        )


def byte_shares(
    weights: Mapping[str, float], measures: Mapping[str, DomainMeasure]
) -> dict[str, float]:
    """Token shares (under the tokenizer ``measures`` were counted with) → byte shares."""
    names = list(weights)
    _require(measures, names, "tokens", "byte shares")
    _require(measures, names, "bytes", "byte shares")
    return exact_weights({n: weights[n] * measures[n].bytes_per_token for n in names})


def document_shares(
    weights: Mapping[str, float], measures: Mapping[str, DomainMeasure]
) -> dict[str, float]:
    """Token shares → the per-document probabilities that realise them (in expectation)."""
    names = list(weights)
    _require(measures, names, "tokens", "per-example probabilities")
    _require(measures, names, "documents", "per-example probabilities")
    return exact_weights({n: weights[n] / measures[n].tokens_per_document for n in names})


def token_shares(
    bytes_shares: Mapping[str, float], measures: Mapping[str, DomainMeasure]
) -> dict[str, float]:
    """Byte shares → token shares under the tokenizer ``measures`` were counted with."""
    names = list(bytes_shares)
    _require(measures, names, "tokens", "token shares")
    _require(measures, names, "bytes", "token shares")
    return exact_weights({n: bytes_shares[n] / measures[n].bytes_per_token for n in names})
