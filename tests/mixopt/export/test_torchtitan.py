"""torchtitan: the snippet run with the real torchtitan (0.3): its config built, and its
interleaved dataloader iterated over the domains' real files. torchtitan packs each source into
``seq_len`` token sequences before interleaving, so every draw is ``seq_len`` tokens and the
realised token shares are the exported weights."""

from __future__ import annotations

import itertools
import shutil
from collections import Counter

import numpy as np

from mixopt.export import export
from tests.mixopt.export.conftest import DOMAINS, sums_to_one


class Tagged:
    """A torchtitan source whose samples say which source they came from (instrumentation only:
    the samples, their order and the interleaver are torchtitan's)."""

    def __init__(self, inner, tag: str) -> None:
        self.inner, self.tag = inner, tag

    def __iter__(self):
        for sample in self.inner:
            yield self.tag, sample

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)

    def reloop(self):
        self.inner.reloop()


def test_torchtitan_snippet_builds_the_real_config(job, rec_weights):
    from torchtitan.hf_datasets.text_datasets import DATASETS, HFDataSource

    namespace: dict = {}
    exec(compile(export(job, "torchtitan"), "<export>", "exec"), namespace)
    config = namespace["dataloader"]
    assert all(isinstance(s, HFDataSource) for s in config.sources)
    assert [(s.dataset, s.weight) for s in config.sources] == [
        (f"mixopt-{d}", rec_weights[d]) for d in DOMAINS
    ]
    assert sums_to_one(s.weight for s in config.sources)
    assert {f"mixopt-{d}" for d in DOMAINS} <= set(DATASETS)


def test_torchtitan_dataloader_realises_the_token_shares(job, rec_weights, manifest, tmp_path):
    from torchtitan.components.tokenizer import HuggingFaceTokenizer
    from torchtitan.hf_datasets.text_datasets import InterleavedHuggingFaceTextDataLoader

    namespace: dict = {}
    exec(compile(export(job, "torchtitan"), "<export>", "exec"), namespace)
    (tmp_path / "tok").mkdir()
    shutil.copy(manifest["tokenizer_path"], tmp_path / "tok" / "tokenizer.json")
    seq_len = 16
    loader = InterleavedHuggingFaceTextDataLoader(
        namespace["dataloader"],
        dp_world_size=1,
        dp_rank=0,
        tokenizer=HuggingFaceTokenizer(tokenizer_path=str(tmp_path / "tok")),
        seq_len=seq_len,
        local_batch_size=1,
    )
    interleaved = loader.dataset
    interleaved._datasets = [Tagged(d, d.dataset_name) for d in interleaved._datasets]
    draws = 6000
    counts = Counter(tag for tag, (inputs, _) in itertools.islice(iter(interleaved), draws))
    for domain in DOMAINS:  # every draw is seq_len tokens: shares of draws are token shares
        share = counts[f"mixopt-{domain}"] / draws
        p = rec_weights[domain]
        assert abs(share - p) <= 4 * np.sqrt(p * (1 - p) / draws), (domain, share, p)
