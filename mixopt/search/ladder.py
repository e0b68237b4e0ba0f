"""The proxies a job trains: the search fidelities (cheapest first, the search proxy — the target
fidelity — last) and the validation proxy.

A search trial's ``fidelity_level`` indexes :attr:`Ladder.proxies` (None: the target); each
level's cost is its training FLOPs until trials at it have finished, then their mean wall time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mixopt.errors import MixoptError
from mixopt.trials import Stage, Trial, TrialStatus

if TYPE_CHECKING:
    from mixopt.spec import JobSpec, ProxySpec


@dataclass(frozen=True)
class Ladder:
    proxies: tuple[ProxySpec, ...]  # search fidelities, the target (the search proxy) last
    validation: ProxySpec
    flops: tuple[float, ...]  # training FLOPs of one trial per level
    initial_at_target: int = 0

    @classmethod
    def build(cls, spec: JobSpec, vocab_size: int) -> Ladder:
        proxies = tuple(spec.fidelity_proxies())
        flops = tuple(
            float(p.train_tokens) * p.gpt_config(vocab_size).flops_per_token() for p in proxies
        )
        for i, value in enumerate(flops[:-1]):
            if value >= flops[-1]:
                raise MixoptError(
                    f"search.fidelities.{i}: trains {value:.3g} FLOPs, not fewer than the "
                    f"target proxy's {flops[-1]:.3g}; a fidelity must be cheaper"
                )
        at_target = spec.search.initial_at_target if len(proxies) > 1 else 0
        return cls(proxies, spec.validation_proxy(), flops, at_target)

    @property
    def target(self) -> int:
        return len(self.proxies) - 1

    @property
    def multi(self) -> bool:
        return len(self.proxies) > 1

    def level(self, trial: Trial) -> int:
        return self.target if trial.fidelity_level is None else trial.fidelity_level

    def proxy(self, trial: Trial) -> ProxySpec:
        if trial.stage is Stage.VALIDATE:
            return self.validation
        return self.proxies[self.level(trial)]

    def initial_levels(self, n: int) -> list[int | None]:
        """Levels of the initial design: the cheapest, but ``initial_at_target`` at the target
        (so the model learns how the cheap proxies relate to it); None for a single level."""
        if not self.multi:
            return [None] * n
        cheapest, at_target = int(np.argmin(self.flops)), self.initial_at_target
        levels: list[int | None] = [cheapest] * (n - at_target)
        return levels + [self.target] * at_target

    def costs(self, trials: list[Trial]) -> list[float]:
        """Cost of one trial per level: mean wall seconds of finished search trials, scaled by
        FLOPs where a level has none yet."""
        walls: dict[int, list[float]] = {}
        for t in trials:
            wall = t.result.get("wall_s") if t.status is TrialStatus.COMPLETED else None
            if t.stage is Stage.SEARCH and wall and wall > 0:
                walls.setdefault(self.level(t), []).append(float(wall))
        measured = {level: float(np.mean(v)) for level, v in walls.items()}
        if not measured:
            return list(self.flops)
        per_flop = float(np.mean([measured[i] / self.flops[i] for i in measured]))
        return [measured.get(i, per_flop * flops) for i, flops in enumerate(self.flops)]

    def describe(self, levels: list[int]) -> str:
        """E.g. "3 at dense:tiny:250000, 1 at the target (dense:tiny:1000000)"."""
        parts = []
        for level in sorted(set(levels)):
            name = self.proxies[level].fidelity
            where = f"the target ({name})" if level == self.target else name
            parts.append(f"{levels.count(level)} at {where}")
        return ", ".join(parts)
