"""torchtitan: an ``InterleavedHuggingFaceTextDataLoader.Config`` with one weighted source per
domain, each registered in torchtitan's ``DATASETS`` with a loader for the domain's files.

torchtitan (checked against 0.3) tokenizes each source with the *trainer's* tokenizer and packs
it into ``seq_len`` sequences before interleaving ("output from each source is already packed,
making interleaved weights a token mixture ratio"), so the weights are token shares under the
trainer's tokenizer: export with ``--tokenizer`` to convert the recommendation into that
tokenizer's shares (without it, the shares are the job's tokenizer's, and the header says so).
"""

from __future__ import annotations

import json

from mixopt.export.base import Exporter, number
from mixopt.export.blend import Blend
from mixopt.export.hf import hf_sources, load_domain_source


class TorchtitanExport(Exporter):
    name = "torchtitan"
    title = "torchtitan weighted dataset sources"
    unit = "tokens"

    def render(self, blend: Blend) -> str:
        active = blend.active(self.unit)
        weights = "{" + ", ".join(f"{s.name!r}: {number(w)}" for s, w in active) + "}"
        sources = json.dumps(hf_sources(s for s, _ in active), indent=4)
        notes = [
            "Each domain is registered in torchtitan's DATASETS as 'mixopt-<domain>' (a loader for "
            "the files mixopt read);",
            "`dataloader` is the job config's dataloader (torchtitan >= 0.3). Pre-tokenized "
            "domains have no text: load those yourself.",
        ]
        if blend.retokenized is None:
            notes.append(
                "These are the job's tokenizer's token shares; torchtitan packs tokens of your "
                "tokenizer: export with --tokenizer YOURS"
            )
        return (
            self.header(blend, *notes)
            + "from datasets import Features, Value, concatenate_datasets, load_dataset\n"
            "from torchtitan.hf_datasets import DatasetConfig\n"
            "from torchtitan.hf_datasets.text_datasets import (\n"
            "    DATASETS,\n"
            "    HFDataSource,\n"
            "    InterleavedHuggingFaceTextDataLoader,\n"
            ")\n\n"
            f"WEIGHTS = {weights}  # token shares (packed sequences)\n"
            f"SOURCES = {sources}\n\n"
            + load_domain_source()
            + f"""

for name in WEIGHTS:
    DATASETS[f"mixopt-{{name}}".lower()] = DatasetConfig(
        path=name, loader=load_domain, sample_processor=lambda sample: sample["text"]
    )

dataloader = InterleavedHuggingFaceTextDataLoader.Config(
    sources=[
        HFDataSource(dataset=f"mixopt-{{name}}".lower(), weight=weight)
        for name, weight in WEIGHTS.items()
    ],
    seed={blend.seed},
)
"""
        )
