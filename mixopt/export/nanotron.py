"""nanotron: ``data_stages`` entries with a Nanoset dataset (``dataset_folder``,
``dataset_weights``).

Nanosets draw fixed-length token sequences from datatrove-tokenized folders, so the weights are
token shares. The schema is that of nanotron's repository (``DatasetStageArgs`` → ``DataArgs`` →
``NanosetDatasetsArgs``); nanotron's release on PyPI (0.4) predates Nanosets and data stages, so
this file is for a nanotron installed from its repository. mixopt's token files are not in
datatrove's format: each ``dataset_folder`` is the folder of mixopt's token file, to be replaced
by the folder of your datatrove-tokenized copy of that domain.

A staged job gets one ``data_stages`` entry per mixture stage, in training order, each with its
own folders and weights. nanotron switches stages at an absolute ``start_training_step``: with
``batch_tokens`` (``--batch-tokens``: the global batch in tokens, sequences × sequence length)
and the job's ``target.tokens`` the run has ``train_steps = round(target.tokens /
batch_tokens)`` steps and stage k starts at ``1 + round(start_k × train_steps)`` (halves up).
Without them the first stage starts at step 1 and every later one carries the fraction of the
run where it starts (a float nanotron refuses as a step, so it cannot be used unnoticed), and
the header says how to turn it into a step. A single-stage job exports one entry starting at step 1.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from mixopt.errors import MixoptError
from mixopt.export.base import Exporter
from mixopt.export.blend import Blend, StageBlend


class NanotronExport(Exporter):
    name = "nanotron"
    title = "nanotron data stage (Nanoset)"
    unit = "tokens"
    staged = True
    uses_batch = True

    def render(self, blend: Blend) -> str:
        steps = train_steps(blend)
        if not blend.stages:
            active = blend.active(self.unit)
            doc = {"data_stages": [self._stage(blend, f"mixopt {blend.job}", 1)]}
            notes = [
                "nanotron Nanoset data stage (goes under the config's top level; domains in order:",
                f"{', '.join(s.name for s, _ in active)}). dataset_folder: the folders of mixopt's "
                "token files, which are",
                "not datatrove-tokenized: point each at your tokenized copy of that domain",
            ]
            if steps is not None:
                notes.append(_steps_note(blend, steps))
            return self.header(blend, *notes) + yaml.safe_dump(doc, sort_keys=False)
        entries, lines = [], []
        for stage, start in zip(blend.stages, start_steps(blend.stages, steps), strict=True):
            stage_blend = blend.for_stage(stage)
            name = f"mixopt {blend.job} stage {stage.index}" + (
                f" {stage.name}" if stage.name else ""
            )
            entries.append(self._stage(stage_blend, name, start))
            domains = ", ".join(s.name for s, _ in stage_blend.active(self.unit))
            where = f"fraction [{stage.start:.6g}, {stage.end:.6g}) of the run"
            if steps is not None:
                end = step_at(stage.end, steps)
                where = f"steps [{start}, {end}), " + where
            tokens = blend.stage_tokens(stage)
            if tokens is not None:
                where += f", tokens [{tokens[0]:,.0f}, {tokens[1]:,.0f}) of target.tokens"
            lines.append(
                f"{stage.label}: {stage.share:g} of the tokens, {where}; domains: {domains}"
            )
        notes = [
            f"nanotron Nanoset data stages (go under the config's top level): {len(entries)} "
            "mixture stages in training order,",
            "each with its folders and weights. dataset_folder: the folders of mixopt's token "
            "files, which are not",
            "datatrove-tokenized: point each at your tokenized copy of that domain",
            *lines,
        ]
        if steps is not None:
            notes.append(_steps_note(blend, steps))
        else:
            notes += [
                "start_training_step: the first stage starts at step 1; each later stage holds "
                "the FRACTION of the run where",
                "it starts, which nanotron refuses as a step: replace it with 1 + round(fraction "
                "x tokens.train_steps) (halves up),",
                "or export with --batch-tokens (the global batch in tokens) from a job with "
                "target.tokens to get the steps",
            ]
        doc = {"data_stages": entries}
        return self.header(blend.any_stage(), *notes) + yaml.safe_dump(doc, sort_keys=False)

    def _stage(self, blend: Blend, name: str, start: int | float) -> dict[str, Any]:
        """One ``DatasetStageArgs`` of ``blend``'s mixture."""
        active = blend.active(self.unit)
        return {
            "name": name,
            "start_training_step": start,
            "data": {
                "dataset": {
                    "dataset_folder": [str(Path(s.token_file or "").parent) for s, _ in active],
                    "dataset_weights": [w for _, w in active],
                },
                "num_loading_workers": 1,
                "seed": blend.seed,
            },
        }


def train_steps(blend: Blend) -> int | None:
    """The target run's optimizer steps, ``round(target.tokens / batch_tokens)`` (halves up, at
    least 1); None without ``batch_tokens``. MixoptError when the job has no ``target.tokens``."""
    if blend.batch_tokens is None:
        return None
    if blend.target_tokens is None:
        raise MixoptError(
            f"{blend.job_dir}: --batch-tokens gives the run's steps from the spec's "
            "target.tokens, which this job does not set; export without --batch-tokens"
        )
    return max(1, half_up(blend.target_tokens / blend.batch_tokens))


def start_steps(stages: tuple[StageBlend, ...], steps: int | None) -> list[int | float]:
    """Each stage's ``start_training_step``: :func:`step_at` its start (increasing; a stage
    without a step of its own is a MixoptError), or without ``steps`` 1 for the first stage and
    the fraction where it starts for every later one."""
    if steps is None:
        return [1 if s.index == 0 else round(s.start, 9) for s in stages]
    out: list[int | float] = []
    for stage in stages:
        start = step_at(stage.start, steps)
        if out and start <= out[-1]:
            raise MixoptError(
                f"nanotron: {stage.label} would start at step {start}, as the stage before it: "
                f"the run's {steps} steps are too few for its stages (a smaller --batch-tokens "
                "gives more steps)"
            )
        out.append(start)
    return out


def step_at(fraction: float, steps: int) -> int:
    """nanotron's (1-based) step at ``fraction`` of a run of ``steps`` steps: ``1 +
    round(fraction × steps)``, halves rounded up."""
    return 1 + half_up(fraction * steps)


def half_up(value: float) -> int:
    """``value`` rounded to a whole number, halves up (float noise below 1e-6 ignored)."""
    return math.floor(round(value, 6) + 0.5)


def _steps_note(blend: Blend, steps: int) -> str:
    return (
        f"steps: target.tokens {blend.target_tokens:,.0f} / --batch-tokens {blend.batch_tokens:,} "
        f"= {steps} steps: set tokens.train_steps: {steps}"
    )
