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
    from mixopt.data import DataManifest
    from mixopt.spec import JobSpec, ProxySpec


@dataclass(frozen=True)
class Ladder:
    proxies: tuple[ProxySpec, ...]  # search fidelities, the target (the search proxy) last
    validation: ProxySpec
    flops: tuple[float, ...]  # training FLOPs of one trial per level
    initial_at_target: int = 0  # multi-fidelity: initial-design trials at the target
    rung_trials: tuple[int, ...] = ()  # single-scale: initial-design trials at each other rung

    @classmethod
    def build(cls, spec: JobSpec, vocab_size: int) -> Ladder:
        proxies = tuple(spec.fidelity_proxies())
        flops = tuple(
            float(p.train_tokens) * p.gpt_config(vocab_size).flops_per_token() for p in proxies
        )
        multi = spec.search.multi_fidelity
        for i, value in enumerate(flops[:-1]):
            if multi and value >= flops[-1]:
                raise MixoptError(
                    f"search.fidelities.{i}: trains {value:.3g} FLOPs, not fewer than the "
                    f"target proxy's {flops[-1]:.3g}; a fidelity must be cheaper"
                )
        at_target = spec.search.initial_at_target if multi and len(proxies) > 1 else 0
        rungs = tuple(spec.search.rung_trials())
        return cls(proxies, spec.validation_proxy(), flops, at_target, rungs)

    def check_data(self, manifest: DataManifest) -> None:
        """Every domain and eval set must hold at least one validation window of every proxy."""
        window = max(p.seq_len for p in (*self.proxies, self.validation)) + 1
        for kind, shards in (("domain", manifest.domains), ("eval set", manifest.evals)):
            too_short = [n for n, s in shards.items() if s.val_tokens < window]
            if too_short:
                raise MixoptError(
                    f"{kind}(s) {too_short}: fewer held-out tokens than one validation window "
                    f"(seq_len + 1 = {window}); add data or lower seq_len"
                )

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

    @property
    def multi_fidelity(self) -> bool:
        """The strategy chooses each trial's level (the rungs are cheaper fidelities)."""
        return self.multi and not any(self.rung_trials)

    def initial_plan(self, n: int) -> list[tuple[int, int | None]]:
        """The initial design as (mixture index, level) pairs over ``n`` sampled mixtures.

        Multi-fidelity: each mixture once, at the cheapest level, but ``initial_at_target`` at
        the target (so the model learns how the cheap proxies relate to it). Single-scale: every
        mixture at the search proxy (level None), then the first ``k`` mixtures again at each
        rung with ``k`` initial trials: the same mixtures at several sizes, as the nested
        scaling laws need."""
        if not self.multi_fidelity:
            plan: list[tuple[int, int | None]] = [(i, None) for i in range(n)]
            return plan + [(i, level) for level, k in enumerate(self.rung_trials) for i in range(k)]
        cheapest, at_target = int(np.argmin(self.flops)), self.initial_at_target
        return [(i, cheapest if i < n - at_target else self.target) for i in range(n)]

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
