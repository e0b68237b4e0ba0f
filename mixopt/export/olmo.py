"""olmo: an OLMo-core ``SourceMixtureList`` (``SourceMixtureList.from_file``).

OLMo-core mixes sources by ``target_ratio`` of *tokens* (its numpy datasets are token arrays cut
into fixed-length instances), so the weights are token shares; ``max_repetition_ratio`` is each
domain's epoch limit when the job had a target budget. The paths are mixopt's flat token files,
which OLMo-core's numpy datasets read as they are (dtype and end-of-text id in the header).

A staged job exports ``stages``: one block per mixture stage, in training order, with its name,
share, range of the run (``start``/``end`` fractions, and ``tokens`` and ``requested_tokens``
with ``target.tokens``) and its ``sources``; build each stage's dataset from
``SourceMixtureList.from_dict({"sources": stage["sources"]})``. A single-stage job exports one
``sources`` list as always.
"""

from __future__ import annotations

from typing import Any

import yaml

from mixopt.export.base import Exporter
from mixopt.export.blend import Blend


class OlmoExport(Exporter):
    name = "olmo"
    title = "OLMo-core source mixture"
    unit = "tokens"
    staged = True

    def render(self, blend: Blend) -> str:
        if not blend.stages:
            doc: dict[str, Any] = {"sources": self._sources(blend)}
            return self.header(blend, *self._notes(blend)) + yaml.safe_dump(doc, sort_keys=False)
        stages = []
        for stage in blend.stages:
            block: dict[str, Any] = {
                "name": stage.name or f"stage {stage.index}",
                "share": stage.share,
                "start": round(stage.start, 9),
                "end": round(stage.end, 9),
                "searched": stage.searched,
            }
            tokens = blend.stage_tokens(stage)
            if tokens is not None:
                block["tokens"] = [round(tokens[0]), round(tokens[1])]
                block["requested_tokens"] = round(tokens[1]) - round(tokens[0])
            block["sources"] = self._sources(blend.for_stage(stage))
            stages.append(block)
        schedule = [
            f"{len(stages)} mixture stages in training order (start/end: fractions of the run): "
            "train each stage on its",
            'sources, SourceMixtureList.from_dict({"sources": stage["sources"]}), for its range '
            "of the run",
        ]
        if blend.target_tokens:
            schedule.append(
                "requested_tokens: the stage's share of target.tokens (build its dataset with it); "
                "the repetition caps are for the whole run"
            )
        notes = [*self._notes(blend), *schedule]
        notes[0] = "load: one SourceMixtureList per stage (below), not the whole file"
        doc = {"stages": stages}
        return self.header(blend.any_stage(), *notes) + yaml.safe_dump(doc, sort_keys=False)

    def _sources(self, blend: Blend) -> list[dict[str, Any]]:
        """The ``SourceMixtureConfig`` list of ``blend``'s mixture."""
        return [
            {
                "source_name": s.name,
                "target_ratio": w,
                "paths": [s.token_file],
                "max_repetition_ratio": max(1.0, s.max_epochs or 1.0),
                "max_source_fraction": 1.0,
            }
            for s, w in blend.active(self.unit)
        ]

    def _notes(self, blend: Blend) -> list[str]:
        active = blend.any_stage().active(self.unit)
        dtypes = "/".join(sorted({s.dtype for s, _ in active if s.dtype}))
        notes = ["load: olmo_core.data.source_mixture.SourceMixtureList.from_file(this file)"]
        if blend.retokenized is not None:
            notes += [
                "paths: mixopt's token files; replace each with your copy of that domain "
                "tokenized with the tokenizer above"
            ]
        else:
            notes += [
                f"paths: mixopt's flat token files, raw {dtypes} memmaps as OLMo-core's numpy "
                "datasets read them",
                f"(dtype {dtypes}, eos_token_id {blend.eot_id}: set them in the dataset config; "
                "the token ids are mixopt's tokenizer's)",
            ]
        if blend.target_tokens:
            notes += [
                f"requested_tokens: {int(blend.target_tokens)} (the target budget the repetition "
                "caps were made for;",
                "max_repetition_ratio is each domain's epoch limit)",
            ]
        else:
            notes += [
                "no target budget was set: max_repetition_ratio is OLMo-core's default 1.0 "
                "(no repetition)"
            ]
        return notes
