"""Proposers: ask/tell searchers over the mixture space.

``ask(n)`` returns ``n`` new mixtures (rows in the space's domain order), ``tell(X, y)`` feeds
back observed objective values, always in the *minimise* convention (the loop negates a
maximised objective). ``recommend()`` gives the proposer's best mixture with its predicted value
and the evidence behind it. ``state_dict()`` / ``load_state_dict()`` let a job resume.
"""

from __future__ import annotations

from mixopt.proposers.base import Proposer, Recommendation
from mixopt.proposers.random_search import RandomProposer
from mixopt.proposers.regmix import RegMixProposer

__all__ = ["Proposer", "RandomProposer", "Recommendation", "RegMixProposer"]
