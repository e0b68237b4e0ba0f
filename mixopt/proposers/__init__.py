"""Proposers: ask/tell searchers over the mixture space.

Strategies: ``bo`` (the default: batch Bayesian optimisation), ``regmix`` (simulate and
average), ``law`` (optimise a fitted mixing law), ``pareto`` (several objectives, guard rails),
``mfbo`` (multi-fidelity, cost-aware BO: it also chooses each trial's fidelity), ``random``
(Dirichlet draws).

``ask(n)`` returns ``n`` new mixtures (rows in the space's domain order), ``tell(X, y)`` feeds
back observed objective values, always in the *minimise* convention (the loop negates a
maximised objective). ``recommend()`` gives the proposer's best mixture with its predicted value
and the evidence behind it. ``state_dict()`` / ``load_state_dict()`` let a job resume.
"""

from __future__ import annotations

from typing import Any

from mixopt.errors import MixoptError
from mixopt.proposers.base import Proposer, Recommendation
from mixopt.proposers.random_search import RandomProposer
from mixopt.proposers.regmix import RegMixProposer
from mixopt.sampling import DirichletSampler

STRATEGIES = ("bo", "regmix", "law", "pareto", "mfbo", "random")
_DESCRIPTIONS = {
    "bo": "batch Bayesian optimisation (GP, qLogNEI)",
    "regmix": "simulate and average the best predicted",
    "law": "optimise a fitted mixing law",
    "pareto": "the objective under constraints on other metrics",
    "mfbo": "multi-fidelity, cost-aware BO that also picks each trial's fidelity "
    "(search.fidelities)",
    "random": "Dirichlet draws",
}


def strategy_descriptions() -> dict[str, str]:
    return dict(_DESCRIPTIONS)


def check_strategy(
    name: str, *, fidelities: bool | None = None, constraints: bool | None = None
) -> None:
    """``ValueError`` unless ``name`` is a strategy that fits the job (its fidelities and
    guard rails)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    if fidelities is not None:
        if name == "mfbo" and not fidelities:
            raise ValueError("search.fidelities: strategy 'mfbo' needs at least one cheaper proxy")
        if fidelities and name != "mfbo":
            raise ValueError("search.fidelities are used by search.strategy 'mfbo' only")
    if constraints and name != "pareto":
        raise ValueError("objective.constraints are enforced by search.strategy 'pareto'")


def make_proposer(
    strategy: str, sampler: DirichletSampler, *, seed: int = 0, **options: Any
) -> Proposer:
    """The proposer of a search strategy (imported only when used)."""
    if strategy == "bo":
        from mixopt.proposers.bo import BOProposer

        return BOProposer(sampler, seed=seed)
    if strategy == "regmix":
        return RegMixProposer(sampler, seed=seed, **options)
    if strategy == "law":
        from mixopt.proposers.law import LawProposer

        return LawProposer(sampler, seed=seed)
    if strategy == "pareto":
        from mixopt.proposers.pareto import ParetoProposer

        return ParetoProposer(sampler, seed=seed, **options)
    if strategy == "mfbo":
        from mixopt.proposers.mfbo import MultiFidelityBOProposer

        return MultiFidelityBOProposer(sampler, seed=seed, **options)
    if strategy == "random":
        return RandomProposer(sampler, seed=seed)
    raise MixoptError(f"unknown strategy {strategy!r}; available: {', '.join(STRATEGIES)}")


__all__ = [
    "STRATEGIES",
    "Proposer",
    "RandomProposer",
    "Recommendation",
    "RegMixProposer",
    "check_strategy",
    "make_proposer",
    "strategy_descriptions",
]
