"""The continual section: continual pretraining, where every proxy starts from a base proxy.

    continual:
      base: natural            # the base mixture: natural, uniform or {domain: weight}
      base_tokens: 4           # the base proxy trains 4x each proxy's train_tokens

    continual:
      init_from: base/checkpoint.pt   # or: start every proxy from this checkpoint

A team that continues from a pretrained checkpoint asks what to add without forgetting. Every
proxy (search, ladder rungs, validation) then starts from the weights of a base proxy of its own
size and seed, trained once on the base mixture for ``base_tokens`` x its tokens and shared
(``proxies.branch``), with a fresh optimizer and its own warmup. Trials report
``forgetting/<loss>`` (e.g. ``forgetting/val_loss/code``: the loss's relative rise over the base
proxy's), which guard rails may bound: ``{metric: forgetting/val_loss/code, max_value: 0.02}``
reads "code loss may rise at most 2% over the base".

``init_from`` starts every proxy from a checkpoint instead (a proxy the team trained on its
pretraining data, e.g. one a mixopt job kept: a trainer checkpoint or a bare state dict of the
same model): the base's losses are that checkpoint's. It fits one model, so the job must search
and validate at the search proxy (no ``search.scales``, ``validate.scale: search``). Under the
service the file must lie inside the data roots, checked at admission and again when the job
copies it into its directory (content-addressed) for the workers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from mixopt.spec.section import Section

if TYPE_CHECKING:
    from proxies.stages import BaseConfig

FORGETTING_KINDS = ("val_loss", "bpb")  # the losses a trial reports forgetting/ of
SUM_TOLERANCE = 1e-6


class ContinualSpec(Section):
    """Continual pretraining: the base mixture and its tokens (see the module docstring)."""

    base: Literal["natural", "uniform"] | dict[str, float] | None = Field(
        None, description="The base proxy's mixture: natural, uniform or {domain: weight} (sum 1)."
    )
    base_tokens: float | None = Field(
        None, gt=0, le=1000, description="The base proxy's tokens, as a multiple of each proxy's."
    )
    init_from: str | None = Field(
        None, description="Start every proxy from this checkpoint instead of a base proxy."
    )

    @model_validator(mode="after")
    def _one_start(self) -> ContinualSpec:
        if (self.base is None) == (self.init_from is None):
            raise ValueError("give exactly one of base (with base_tokens) and init_from")
        if (self.base is None) != (self.base_tokens is None):
            raise ValueError("base and base_tokens go together (init_from takes neither)")
        return self

    @field_validator("base")
    @classmethod
    def _mixture(cls, value: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(value, dict):
            bad = sorted(k for k, w in value.items() if not math.isfinite(w) or w < 0)
            if bad or abs(sum(value.values()) - 1.0) > SUM_TOLERANCE:
                raise ValueError(
                    f"base weights must be >= 0 and sum to 1, got {value} "
                    f"(sum {sum(value.values()):.9g})"
                )
        return value

    def check_domains(self, domains: Sequence[str]) -> None:
        if isinstance(self.base, dict):
            unknown = sorted(set(self.base) - set(domains))
            if unknown:
                raise ValueError(
                    f"continual.base: unknown domain(s) {unknown}; domains are {list(domains)}"
                )

    def base_weights(self, natural: Mapping[str, float]) -> dict[str, float]:
        """The base mixture over every domain (``natural``: the data's own shares)."""
        if self.base == "natural":
            return dict(natural)
        if self.base == "uniform" or self.base is None:
            return {name: 1.0 / len(natural) for name in natural}
        return {name: float(self.base.get(name, 0.0)) for name in natural}

    def build(self, natural: Mapping[str, float], train_tokens: int) -> BaseConfig | None:
        """The trainer's base proxy for a proxy of ``train_tokens`` (None with ``init_from``)."""
        from proxies.stages import BaseConfig

        if self.base_tokens is None:
            return None
        tokens = max(1, round(self.base_tokens * train_tokens))
        return BaseConfig(self.base_weights(natural), tokens)


def forgetting_metrics(names: Sequence[str]) -> list[str]:
    """``forgetting/<kind>/<name>`` of every domain and eval set ``names``."""
    from proxies.stages import FORGETTING_PREFIX  # torch-free

    return [f"{FORGETTING_PREFIX}{kind}/{n}" for kind in FORGETTING_KINDS for n in names]
