"""megatron: the blend parsed by megatron-core, the indexed datasets it writes loaded and blended
by megatron-core (GPTDataset samples fixed-length sequences: the weights are token shares)."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.export import Source as ExportSource
from mixopt.export import export, write_megatron_dataset
from tests.mixopt.export.conftest import DOMAINS, edited_job, sums_to_one

pytestmark = pytest.mark.filterwarnings("ignore:Transformer Engine and Apex:UserWarning")


def _data_path(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    args = shlex.split(lines[0])
    assert args[0] == "--data-path"
    return args[1:]


def test_megatron_blend_of_flat_token_files(job, rec_weights, manifest):
    from megatron.core.datasets.utils import get_blend_from_list

    text = export(job, "megatron")
    assert "Megatron also needs <prefix>.idx" in text  # says the flat shards must be converted
    prefixes, weights = get_blend_from_list(_data_path(text))  # Megatron's own parser
    assert weights == [rec_weights[d] for d in DOMAINS] and sums_to_one(weights)
    for domain, prefix in zip(DOMAINS, prefixes, strict=True):
        assert prefix + ".bin" == manifest[domain]["train_path"]


def test_megatron_indexed_datasets_load_and_blend_in_megatron(job, rec_weights, manifest, tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import (
        BlendedMegatronDatasetBuilder,
    )
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import get_blend_from_list

    out = tmp_path / "megatron"
    text = export(job, "megatron", data_dir=out)
    prefixes, weights = get_blend_from_list(_data_path(text))
    assert prefixes == [str((out / d).resolve()) for d in DOMAINS]
    assert weights == [rec_weights[d] for d in DOMAINS]
    eot = manifest["eot_id"]
    for domain, prefix in zip(DOMAINS, prefixes, strict=True):
        flat = np.fromfile(manifest[domain]["train_path"], dtype=manifest[domain]["dtype"])
        dataset = IndexedDataset(prefix)
        assert len(dataset) == int((flat == eot).sum()) + int(flat[-1] != eot)
        docs = [dataset[i] for i in range(len(dataset))]
        assert all(doc[-1] == eot for doc in docs[:-1])
        np.testing.assert_array_equal(np.concatenate(docs), flat)  # every token, in order

    class Tokenizer:  # what GPTDataset asks of a tokenizer
        def __init__(self) -> None:
            self.eod, self.pad, self.vocab_size = eot, 299, 300
            self.unique_identifiers = {"class": "test"}

    config = GPTDatasetConfig(
        random_seed=0,
        sequence_length=16,
        blend=(prefixes, weights),
        split="100,0,0",
        tokenizer=Tokenizer(),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(
        GPTDataset, [3000, 0, 0], lambda: True, config
    ).build()
    shares = np.bincount(np.asarray(train.dataset_index)[:3000], minlength=3) / 3000
    np.testing.assert_allclose(shares, weights, atol=2e-3)  # Megatron samples at our weights
    assert int(train[0]["tokens"].max()) < 300


def test_megatron_dataset_from_uint32_tokens(tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    tokens = np.array([70_000, 5, 0, 7, 8, 99_999, 0, 3], dtype=np.uint32)  # 0 = end of text
    path = tmp_path / "train.bin"
    tokens.tofile(path)
    source = ExportSource("big", 1.0, token_file=str(path), dtype="uint32")
    prefix = write_megatron_dataset(source, tmp_path / "out" / "big", eot_id=0)
    dataset = IndexedDataset(prefix)
    assert [d.tolist() for d in (dataset[i] for i in range(len(dataset)))] == [
        [70_000, 5, 0],
        [7, 8, 99_999, 0],
        [3],  # a trailing document without its end-of-text
    ]
    assert dataset[0].dtype == np.int32


def test_zero_weight_domains_are_left_out_of_framework_blends(job, tmp_path):
    copy = edited_job(job, tmp_path, {"code": 0.5, "bible": 0.0, "dictionary": 0.5})
    text = export(copy, "megatron")
    assert "left out (weight 0): bible" in text
    args = _data_path(text)
    assert args[0::2] == ["0.5", "0.5"] and all("bible" not in p for p in args[1::2])
    hf = json.loads(export(copy, "hf-json"))
    assert hf["datasets"] == ["code", "dictionary"] and hf["token_shares"] == [0.5, 0.5]
    assert sums_to_one(hf["probabilities"]) and min(hf["probabilities"]) > 0
    assert json.loads(export(copy, "json"))["mixture"]["bible"] == 0.0  # kept where harmless


def test_megatron_with_another_tokenizer_has_no_data_dir(job, manifest, tmp_path):
    with pytest.raises(MixoptError, match="with --tokenizer the shares are for your tokenization"):
        export(job, "megatron", data_dir=tmp_path / "m", tokenizer=manifest["tokenizer_path"])
