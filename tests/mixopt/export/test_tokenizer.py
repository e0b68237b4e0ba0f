"""``--tokenizer``: the recommendation converted into another tokenizer's token shares, each
domain re-measured on its real text; checked against an independent count on the source files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixopt.errors import MixoptError
from mixopt.export import export
from tests.mixopt.export.conftest import DOMAINS, domain_texts, sums_to_one, token_counts


@pytest.fixture(scope="module")
def second_tokenizer(tmp_path_factory) -> Path:
    """A different tokenizer: a byte-level BPE of 1,000 entries trained on the same corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([t for d in DOMAINS for t in domain_texts(d)], trainer)
    path = tmp_path_factory.mktemp("tok2") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def _expected(rec_weights, manifest, tokenizer: Path) -> dict[str, float]:
    """The documented conversion, counted independently: byte shares from the job's counts, then
    the second tokenizer's tokens per byte of each domain's source documents."""
    bytes_share, out = {}, {}
    for d in DOMAINS:
        m = manifest[d]
        bytes_share[d] = (
            rec_weights[d]
            * (m["train_bytes"] + m["val_bytes"])
            / (m["train_tokens"] + m["val_tokens"])
        )
        texts = domain_texts(d)
        tokens = token_counts(str(tokenizer), texts).sum()  # + one end-of-text per document
        out[d] = bytes_share[d] * tokens / sum(len(t.encode()) for t in texts)
    total = sum(out.values())
    return {d: v / total for d, v in out.items()}


def test_second_tokenizer_gives_the_documented_conversion(
    job, rec_weights, manifest, second_tokenizer
):
    doc = json.loads(export(job, "json", tokenizer=str(second_tokenizer)))
    converted = doc["tokenizer_shares"]
    assert converted["tokenizer"]["name"] == str(second_tokenizer.resolve())
    assert converted["tokenizer"]["vocab_size"] == 1000
    assert sums_to_one(converted["shares"].values())
    expected = _expected(rec_weights, manifest, second_tokenizer)
    assert converted["shares"] == pytest.approx(expected, abs=2e-6)
    # the measure read the whole (small) domains: the same documents and bytes as the manifest
    for d in DOMAINS:
        measured, m = converted["measured"][d], manifest[d]
        assert measured["fraction_read"] == 1.0
        assert measured["documents"] == m["documents"]
        assert measured["bytes"] == m["train_bytes"] + m["val_bytes"]
    # a really different tokenizer: some domain's share moves
    assert max(abs(converted["shares"][d] - rec_weights[d]) for d in DOMAINS) > 1e-3
    assert doc["mixture"] == rec_weights  # the recommendation itself is unchanged


def test_converted_shares_go_to_the_token_formats(job, manifest, second_tokenizer):
    shares = json.loads(export(job, "json", tokenizer=str(second_tokenizer)))["tokenizer_shares"]
    text = export(job, "torchtitan", tokenizer=str(second_tokenizer))
    assert "tokens are counted with --tokenizer: " + str(second_tokenizer.resolve()) in text
    namespace: dict = {}
    exec(compile(text, "<export>", "exec"), namespace)
    assert namespace["WEIGHTS"] == shares["shares"]
    assert "your copy of that domain tokenized" in export(
        job, "olmo", tokenizer=str(second_tokenizer)
    )
    # per-document probabilities do not depend on the tokenizer
    assert export(job, "hf-json", tokenizer=str(second_tokenizer)) == export(job, "hf-json")


def test_the_jobs_own_tokenizer_converts_to_the_recommendation(job, rec_weights, manifest):
    doc = json.loads(export(job, "json", tokenizer=manifest["tokenizer_path"]))
    assert doc["tokenizer_shares"]["shares"] == pytest.approx(rec_weights, abs=2e-6)


def test_sampled_measure_of_a_large_domain(job, manifest, second_tokenizer):
    from mixopt.export.retokenize import load_tokenizer, remeasure
    from mixopt.job import JobDir

    _, encode = load_tokenizer(str(second_tokenizer))
    full = remeasure(JobDir(job).load_manifest(), encode)
    sampled = remeasure(JobDir(job).load_manifest(), encode, sample_tokens=6000)
    for d in DOMAINS:
        assert 0 < sampled[d].fraction < 1
        assert sampled[d].measure.documents < full[d].measure.documents
        ratio = sampled[d].measure.bytes / sampled[d].measure.tokens
        assert ratio == pytest.approx(full[d].measure.bytes / full[d].measure.tokens, rel=0.25)


def test_a_name_in_the_hugging_face_cache_is_loaded_offline(job, second_tokenizer, tmp_path):
    """``--tokenizer org/name`` loads through transformers from the local hub cache."""
    from transformers import PreTrainedTokenizerFast

    commit = "0" * 40
    repo = tmp_path / "hf" / "hub" / "models--acme--tok"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    PreTrainedTokenizerFast(tokenizer_file=str(second_tokenizer)).save_pretrained(
        repo / "snapshots" / commit
    )
    (repo / "snapshots" / commit / "config.json").write_text(
        '{"model_type": "gpt2"}'
    )  # as on the hub
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)
    args = [sys.executable, "-m", "mixopt.cli.main", "export", str(job), "--tokenizer", "acme/tok"]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    by_file = json.loads(export(job, "json", tokenizer=str(second_tokenizer)))
    assert doc["tokenizer_shares"]["tokenizer"]["name"] == "acme/tok"
    assert doc["tokenizer_shares"]["tokenizer"]["vocab_size"] == 1000
    assert doc["tokenizer_shares"]["shares"] == by_file["tokenizer_shares"]["shares"]


def test_a_tokenizer_that_is_not_local_is_never_downloaded(job, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "mixopt.cli.main", "export", str(job), "--tokenizer", "gpt2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "tokenizer 'gpt2': not found locally (mixopt never downloads" in proc.stderr
    assert not (tmp_path / "hf" / "hub").exists() or not any(
        (tmp_path / "hf" / "hub").rglob("*.json")
    )


def test_tokenizer_needs_the_data_manifest(tmp_path):
    (tmp_path / "recommendation.json").write_text(json.dumps({"weights": {"a": 1.0}}))
    with pytest.raises(MixoptError, match="--tokenizer re-measures the domains' text"):
        export(tmp_path, "json", tokenizer="x")
