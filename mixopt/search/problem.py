"""What a search is about once its data is known: the space, the units searched, the objective.

Built once from the spec and the data manifest (:meth:`SearchProblem.build`): repetition caps
bound the leaf space; groups (``groups.level: groups``) make the searched space a space of units
whose leaves keep fixed shares; the objective becomes a sign (the search minimises) and the list
of targets every trial reports to the proposer. Nothing here changes while the search runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mixopt.data.caps import RepetitionCaps, apply_caps, caps_for_job
from mixopt.data.hierarchy import Hierarchy, build_hierarchy
from mixopt.errors import MixoptError
from mixopt.space import MixtureSpace

if TYPE_CHECKING:
    from mixopt.data import DataManifest
    from mixopt.sampling import DirichletSampler
    from mixopt.spec import JobSpec
    from mixopt.trials import Trial


@dataclass(frozen=True)
class SearchProblem:
    spec: JobSpec
    manifest: DataManifest
    caps: RepetitionCaps | None
    space: MixtureSpace  # leaves, caps applied: where trials' mixtures live
    hierarchy: Hierarchy  # units searched → leaves trained on
    search_space: MixtureSpace  # what the sampler and the proposer search (units)
    sampler: DirichletSampler
    objective_weights: dict[str, float]  # metric → weight of the scalar objective
    target_names: list[str]  # what each trial reports to the proposer
    sign: float  # +1 minimise, -1 maximise: the proposer always minimises sign * objective

    @classmethod
    def build(cls, spec: JobSpec, manifest: DataManifest) -> SearchProblem:
        caps = caps_for_job(spec, manifest)
        space = apply_caps(MixtureSpace.from_spec(spec), caps)
        hierarchy = build_hierarchy(spec, manifest.train_tokens())
        search_space = hierarchy.unit_space(space)
        natural = _natural(manifest, space)
        return cls(
            spec=spec,
            manifest=manifest,
            caps=caps,
            space=space,
            hierarchy=hierarchy,
            search_space=search_space,
            sampler=spec.search.sampler.build(search_space, hierarchy.collapse(natural)),
            objective_weights=spec.objective_weights(),
            target_names=spec.objective.targets(spec.domain_names),
            sign=1.0 if spec.objective.direction == "minimize" else -1.0,
        )

    @property
    def domains(self) -> list[str]:
        return list(self.space.domains)

    def natural(self) -> np.ndarray:
        """Each domain's share of the train tokens (leaf order), before bounds and caps."""
        return _natural(self.manifest, self.space)

    def weights(self, trial: Trial) -> np.ndarray:
        """A trial's leaf mixture as a vector (m,)."""
        return np.array([trial.weights[d] for d in self.space.domains])

    def baseline(self, name: str) -> np.ndarray:
        """A reference mixture inside the space: ``natural`` (projected), ``uniform``, or the
        team's ``current`` (``validate.current``)."""
        mixtures: dict[str, Callable[[], np.ndarray]] = {
            "natural": lambda: self.space.project(self.natural())[0],
            "uniform": self.space.uniform,
            "current": lambda: self.space.check(
                self.spec.validate_.current or {}, source="validate.current"
            ),
        }
        if name not in mixtures:
            raise MixoptError(f"unknown baseline {name!r}; available: {', '.join(mixtures)}")
        return mixtures[name]()

    def describe(self) -> list[str]:
        """What a job's log says about the problem."""
        lines = []
        if self.caps is not None:
            lines.append("repetition caps:\n" + self.caps.describe())
        if not self.hierarchy.trivial:
            units = self.hierarchy.units
            lines.append(f"searching {len(units)} groups: {units}")
        return lines


def _natural(manifest: DataManifest, space: MixtureSpace) -> np.ndarray:
    dist = manifest.natural_distribution()
    return np.array([dist[d] for d in space.domains])
