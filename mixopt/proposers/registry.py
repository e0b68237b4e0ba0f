"""The strategy registry: every search strategy, once, for the spec, the driver, replay, Study
and the CLI.

A strategy is a name, the import path of its proposer class (imported only when used, so
``import mixopt`` stays free of torch and BoTorch), a one-line description, and what it needs:

- ``needs_fidelities``: cheaper proxies besides the target (a job's ``search.fidelities``, a
  replay pool's fidelity column); such a strategy also chooses each trial's fidelity.
- ``needs_constraints``: built with the guard rails (constraints on per-target values, resolved
  from baseline trials), and the strategy that enforces them.
- ``takes_predictor``: built with the user's predictor choice (``search.predictor``,
  ``mixopt replay --predictor``).

Adding a strategy is one module under ``mixopt/proposers/`` (a ``Proposer`` subclass with its
``Options``) and one line in ``STRATEGIES`` below.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mixopt.proposers.options import OptionsError

if TYPE_CHECKING:
    from mixopt.proposers.base import Proposer
    from mixopt.proposers.options import ProposerOptions
    from mixopt.sampling import DirichletSampler


@dataclass(frozen=True)
class Strategy:
    name: str
    proposer: str  # "module:Class"
    description: str
    needs_fidelities: bool = False
    needs_constraints: bool = False
    takes_predictor: bool = False

    def proposer_class(self) -> type[Proposer]:
        module, name = self.proposer.split(":")
        cls: type[Proposer] = getattr(importlib.import_module(module), name)
        return cls

    @property
    def options_class(self) -> type[ProposerOptions]:
        return self.proposer_class().Options

    def options(
        self, options: ProposerOptions | Mapping[str, Any] | None = None, /, **values: Any
    ) -> ProposerOptions:
        """This strategy's validated options from an instance, a mapping and/or keywords."""
        from mixopt.proposers.options import coerce_options

        return coerce_options(self.options_class, options, values)

    def build(
        self,
        sampler: DirichletSampler,
        options: ProposerOptions | Mapping[str, Any] | None = None,
        /,
        **values: Any,
    ) -> Proposer:
        return self.proposer_class()(sampler, self.options(options, **values))


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "bo", "mixopt.proposers.bo:BOProposer", "batch Bayesian optimisation (GP, qLogNEI)"
        ),
        Strategy(
            "regmix",
            "mixopt.proposers.regmix:RegMixProposer",
            "simulate many mixtures with a fitted predictor and average the best predicted",
            takes_predictor=True,
        ),
        Strategy("law", "mixopt.proposers.law:LawProposer", "optimise a fitted mixing law"),
        Strategy(
            "pareto",
            "mixopt.proposers.pareto:ParetoProposer",
            "the objective under guard rails on other metrics (per-target models, Pareto front)",
            needs_constraints=True,
        ),
        Strategy(
            "mfbo",
            "mixopt.proposers.mfbo:MultiFidelityBOProposer",
            "multi-fidelity BO: co-kriging across fidelities, each trial's fidelity by information "
            "per cost",
            needs_fidelities=True,
        ),
        Strategy("random", "mixopt.proposers.random_search:RandomProposer", "Dirichlet draws"),
    )
}
DEFAULT_STRATEGY = "bo"


def get_strategy(name: str) -> Strategy:
    """The registered strategy ``name``; an unknown name is an error listing the valid ones."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise OptionsError(
            f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}"
        ) from None


def strategy_names(*, fidelities: bool | None = None, constraints: bool | None = None) -> list[str]:
    """Registered names, optionally only those that do (True) or do not (False) need
    fidelities / constraints."""
    return [
        s.name
        for s in STRATEGIES.values()
        if (fidelities is None or s.needs_fidelities == fidelities)
        and (constraints is None or s.needs_constraints == constraints)
    ]


def describe_strategies() -> str:
    """ "bo: batch Bayesian optimisation (GP, qLogNEI); regmix: …" (for help texts)."""
    return "; ".join(f"{s.name}: {s.description}" for s in STRATEGIES.values())


def make_proposer(
    strategy: str,
    sampler: DirichletSampler,
    options: ProposerOptions | Mapping[str, Any] | None = None,
    /,
    **values: Any,
) -> Proposer:
    """The proposer of ``strategy``, built with all its options (an options instance of that
    strategy, a mapping of its fields, and/or keyword values)."""
    return get_strategy(strategy).build(sampler, options, **values)
