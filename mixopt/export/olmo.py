"""olmo: an OLMo-core ``SourceMixtureList`` (``SourceMixtureList.from_file``).

OLMo-core mixes sources by ``target_ratio`` of *tokens* (its numpy datasets are token arrays cut
into fixed-length instances), so the weights are token shares; ``max_repetition_ratio`` is each
domain's epoch limit when the job had a target budget. The paths are mixopt's flat token files,
which OLMo-core's numpy datasets read as they are (dtype and end-of-text id in the header).
"""

from __future__ import annotations

import yaml

from mixopt.export.base import Exporter
from mixopt.export.blend import Blend


class OlmoExport(Exporter):
    name = "olmo"
    title = "OLMo-core source mixture"
    unit = "tokens"

    def render(self, blend: Blend) -> str:
        active = blend.active(self.unit)
        sources = [
            {
                "source_name": s.name,
                "target_ratio": w,
                "paths": [s.token_file],
                "max_repetition_ratio": max(1.0, s.max_epochs or 1.0),
                "max_source_fraction": 1.0,
            }
            for s, w in active
        ]
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
        return self.header(blend, *notes) + yaml.safe_dump({"sources": sources}, sort_keys=False)
