"""Spec section ``probes``: downstream multiple-choice / cloze tasks every proxy is scored on.

Each probe names a JSONL file of items ``{"context": str, "choices": [str, ...], "answer":
int}`` (``question`` is an alias of ``context``; the format and its checks:
:mod:`mixopt.data.probes`). Every trial reports ``probe/<name>/accuracy``, ``accuracy_norm``
and ``margin`` (scored by log-likelihood, ``proxies.probes``), which objectives and guard rails
may name. A probe's file is checked line by line when the spec is loaded from a file
(:func:`check_probe_files`), read like a domain's file (paths resolve against the spec's folder,
and on the service they must lie inside its data roots), and tokenized by the data stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from mixopt.spec.section import NAME_PATTERN, Section

DEFAULT_MAX_ITEMS = 1000


class ProbeSpec(Section):
    """One probe task: a name and its JSONL file."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Task name (letters, digits, _.-), distinct from every domain's and eval "
        "set's: its metrics are probe/<name>/accuracy, accuracy_norm and margin.",
    )
    path: str = Field(min_length=1, description="The task's JSONL file, one item a line.")
    max_items: int = Field(
        DEFAULT_MAX_ITEMS,
        gt=0,
        le=100_000,
        description="Items scored (more: those with the smallest content hash are kept).",
    )


def check_probe_names(probes: Sequence[ProbeSpec], taken: dict[str, str]) -> None:
    """Names are unique and none is a domain's or eval set's (``taken``: name → what it is).
    Raises ValueError."""
    names = [p.name for p in probes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"probes: duplicate names {duplicates}")
    for i, name in enumerate(names):
        if name in taken:
            raise ValueError(
                f"probes.{i}.name: {name!r} is also the name of {taken[name]}; give the probe "
                "its own name"
            )


def probe_metrics(probes: Sequence[ProbeSpec]) -> list[str]:
    """What the probes add to every trial's metrics."""
    from proxies.probe_tasks import probe_metric_names

    return [m for p in probes for m in probe_metric_names(p.name)]


def check_probe_files(probes: Sequence[ProbeSpec]) -> None:
    """Read and check every probe's file (resolved paths); raises ValueError naming the probe,
    the file and the line."""
    from mixopt.data.probes import read_probe_file
    from mixopt.errors import DataError

    for i, probe in enumerate(probes):
        try:
            read_probe_file(probe.path)
        except DataError as error:
            raise ValueError(f"probes.{i} ({probe.name!r}): {error}") from None
