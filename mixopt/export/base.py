"""The export contract: a format renders a :class:`~mixopt.export.blend.Blend` as text.

A format is a module of this package with an :class:`Exporter` subclass; it says which unit its
weights are in (:data:`~mixopt.export.units.Unit`), whether it needs the job's data manifest and
whether it can write the domains' data itself (``--data-dir``). Every export opens with the same
header (:func:`header`): mixopt's version, the job, the data hash, the unit and the tokenizer the
shares were measured with, so a file found later says what it means.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from mixopt.export.units import DECIMALS, UNIT_TEXT, Unit

if TYPE_CHECKING:
    from mixopt.export.blend import Blend


class Exporter(ABC):
    """One export format."""

    name: ClassVar[str]
    """The format's name (``mixopt export --format NAME``)."""
    title: ClassVar[str]
    """What it is, in a few words (the header's first line)."""
    unit: ClassVar[Unit]
    """The unit of its weights."""
    needs_data: ClassVar[bool] = True
    """Needs the job's data manifest (where each domain's data is, how large it is)."""
    writes_data: ClassVar[bool] = False
    """Accepts a data directory to write the domains into, in the framework's own format."""
    uses_batch: ClassVar[bool] = False
    """Accepts the global batch in tokens (``--batch-tokens``) to state stages in absolute
    steps."""
    comment: ClassVar[str] = "#"
    staged: ClassVar[bool] = False
    """Writes every stage of a staged recommendation (others write the searched stage only, and
    their header says so)."""

    @abstractmethod
    def render(self, blend: Blend) -> str:
        """The export's text."""

    def header(self, blend: Blend, *notes: str) -> str:
        """The header lines as comments, then ``notes`` (one comment line each)."""
        lines = [*header_lines(blend, self.unit, self.title), *notes]
        stages = blend.stages
        if stages and not self.staged:
            searched = next(s for s in stages if s.searched)
            lines.append(
                f"this job's mixture has {len(stages)} stages; this file holds only the searched "
                f"{searched.label.removesuffix(' (searched)')} ({searched.share:g} of the tokens): "
                "the json, yaml, megatron, hf, olmo and nanotron exports hold the whole schedule"
            )
        return "".join(f"{self.comment} {line}".rstrip() + "\n" for line in lines)


def provenance(blend: Blend) -> dict[str, Any]:
    """Where an export comes from: mixopt's version, the job, its directory, the data hash."""
    from mixopt import __version__

    return {
        "mixopt_version": __version__,
        "job": blend.job,
        "job_dir": str(blend.job_dir),
        "data_hash": blend.data_hash,
    }


def header_lines(blend: Blend, unit: Unit, title: str) -> list[str]:
    source = provenance(blend)
    lines = [
        f"{title}: exported by mixopt {source['mixopt_version']} from job {blend.job!r} "
        f"({blend.job_dir}), data hash {source['data_hash'] or 'unknown'}",
        f"unit: {UNIT_TEXT[unit]}",
    ]
    if unit != "examples":
        tokenizer = blend.token_tokenizer()
        if tokenizer is not None:
            whose = "--tokenizer" if blend.retokenized else "the job's tokenizer"
            lines.append(f"tokens are counted with {whose}: {tokenizer.describe()}")
    lines.append(f"weights sum to 1 ({DECIMALS} decimals)")
    if blend.dropped():
        lines.append(f"left out (weight 0): {', '.join(blend.dropped())}")
    return lines


def number(weight: float) -> str:
    """A weight as written: the shortest plain decimal of its 6-decimal value (no exponent)."""
    return format(Decimal(repr(weight)), "f")
