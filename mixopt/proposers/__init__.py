"""Proposers: ask/tell searchers over the mixture space, one per search strategy.

The strategies and what each needs are registered once, in :mod:`mixopt.proposers.registry`
(``bo``, the default, ``regmix``, ``law``, ``pareto``, ``mfbo``, ``random``); ``make_proposer``
builds one with all its options. The contract every proposer keeps (``tell`` with levels and
costs, ``propose`` continuously or over a finite candidate set, ``recommend``, exact
``state_dict`` round-trips) is in :mod:`mixopt.proposers.base`. Objective values are always in
the *minimise* convention (a caller negates a maximised objective).

Importing this package loads only the registry (no numpy), so the spec and the CLI can list
strategies cheaply; the proposer classes load when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mixopt.proposers.options import OptionsError
from mixopt.proposers.registry import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Strategy,
    describe_strategies,
    get_strategy,
    make_proposer,
    strategy_names,
)

if TYPE_CHECKING:
    from mixopt.proposers.base import (
        Batch,
        Candidates,
        Proposer,
        Recommendation,
        ReportContext,
    )
    from mixopt.proposers.options import ProposerOptions
    from mixopt.proposers.random_search import RandomProposer
    from mixopt.proposers.regmix import RegMixProposer

_LAZY = {
    "Batch": "mixopt.proposers.base",
    "Candidates": "mixopt.proposers.base",
    "Proposer": "mixopt.proposers.base",
    "Recommendation": "mixopt.proposers.base",
    "ReportContext": "mixopt.proposers.base",
    "ProposerOptions": "mixopt.proposers.options",
    "RandomProposer": "mixopt.proposers.random_search",
    "RegMixProposer": "mixopt.proposers.regmix",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Batch",
    "Candidates",
    "OptionsError",
    "Proposer",
    "ProposerOptions",
    "RandomProposer",
    "Recommendation",
    "RegMixProposer",
    "ReportContext",
    "Strategy",
    "describe_strategies",
    "get_strategy",
    "make_proposer",
    "strategy_names",
]
