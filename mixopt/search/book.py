"""The trial book: every trial of a job in creation order, and what the search learned from them.

Trial ids are handed out in a fixed order (``t0000``, ``t0001``, ...), so a resumed job that
plans the same trials again finds each one's saved self (:meth:`TrialBook.new`): finished ones
are kept, the rest run again, and a saved trial that does not match the plan (the spec was
edited) is an error. The book also keeps the order in which finished trials were told to the
proposer, which is what a recommendation's evidence indexes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixopt.errors import MixoptError
from mixopt.trials import Stage, Trial, TrialStatus


class TrialBook:
    def __init__(self, saved: list[Trial] | None = None, *, where: str = "the job") -> None:
        self.trials: list[Trial] = []
        self.told: list[Trial] = []  # finished trials in the order the proposer was told them
        self._saved = {t.trial_id: t for t in saved or []}
        self._where = where

    def __len__(self) -> int:
        return len(self.trials)

    @property
    def resuming(self) -> bool:
        return bool(self._saved)

    def saved_round(self, round_index: int) -> list[Trial]:
        """Search trials of a round proposed before the driver stopped (resume)."""
        return [
            t for t in self._saved.values() if t.stage is Stage.SEARCH and t.round == round_index
        ]

    def new(
        self,
        weights: dict[str, float],
        round_index: int,
        seed: int,
        *,
        stage: Stage = Stage.SEARCH,
        label: str = "",
        fidelity_level: int | None = None,
    ) -> Trial:
        """The next trial of the plan: its saved self when resuming, else a new one."""
        trial_id = f"t{len(self.trials):04d}"
        saved = self._saved.get(trial_id)
        if saved is not None:
            if (
                saved.stage is not stage
                or saved.round != round_index
                or saved.label != label
                or (round_index == 0 and saved.fidelity_level != fidelity_level)
            ):
                raise MixoptError(
                    f"{self._where}: saved trial {trial_id} ({saved.stage.value}, round "
                    f"{saved.round}) does not match the job's plan; was the spec edited?"
                )
            trial = saved
        else:
            trial = Trial(
                trial_id=trial_id,
                round=round_index,
                weights=weights,
                seed=seed,
                stage=stage,
                label=label,
                fidelity_level=fidelity_level,
            )
        self.trials.append(trial)
        return trial

    def completed(self, stage: Stage | None = None) -> list[Trial]:
        return [
            t
            for t in self.trials
            if t.status is TrialStatus.COMPLETED and (stage is None or t.stage is stage)
        ]

    def best(self, sign: float, keep: Callable[[Trial], bool] = lambda t: True) -> Trial | None:
        """The completed search trial with the best finite objective among those ``keep``s."""
        done = [
            t
            for t in self.completed(Stage.SEARCH)
            if np.isfinite(t.result.get("objective", np.nan)) and keep(t)
        ]
        return min(done, key=lambda t: sign * t.result["objective"]) if done else None

    def counts(self) -> tuple[int, int]:
        """(completed, abandoned) trials."""
        completed = sum(t.status is TrialStatus.COMPLETED for t in self.trials)
        return completed, sum(t.status is TrialStatus.ABANDONED for t in self.trials)

    def by_label(self, prefix: str) -> dict[str, Trial]:
        """Completed trials whose label starts with ``prefix``, by the rest of the label."""
        return {
            t.label.removeprefix(prefix): t
            for t in self.trials
            if t.label.startswith(prefix) and t.status is TrialStatus.COMPLETED
        }
