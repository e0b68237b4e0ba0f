"""hf-python / hf-json: per-example probabilities, checked with the real ``datasets`` library on
the domains' real documents (rows of unequal length): the token shares an interleave
realises match the recommendation within sampling error."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from mixopt.export import export
from tests.conftest import CORPUS
from tests.mixopt.export.conftest import (
    DOMAINS,
    domain_texts,
    ratio_within_error,
    sums_to_one,
    token_counts,
)


def test_hf_json_lists_the_files_and_per_example_probabilities(job, rec_weights):
    doc = json.loads(export(job, "hf-json"))
    assert doc["datasets"] == DOMAINS and sums_to_one(doc["probabilities"])
    assert doc["probabilities"] == [
        json.loads(export(job, "json"))["document_shares"][d] for d in DOMAINS
    ]
    assert doc["token_shares"] == [rec_weights[d] for d in DOMAINS]
    assert doc["unit"].startswith("probabilities per example")
    assert doc["sources"]["code"]["data_files"] == {
        "json": [str((CORPUS / "code" / "stdlib_excerpts.jsonl").resolve())]
    }
    assert list(doc["sources"]["dictionary"]["data_files"]) == ["parquet"]
    assert len(doc["sources"]["bible"]["data_files"]["text"]) == 6


def test_one_row_is_one_document_as_the_manifest_counts_them(manifest):
    for domain in DOMAINS:
        counts = token_counts(manifest["tokenizer_path"], domain_texts(domain))
        m = manifest[domain]
        assert len(counts) == m["documents"]
        assert counts.sum() == m["train_tokens"] + m["val_tokens"]


def test_interleaved_rows_realise_the_recommended_token_shares(job, rec_weights, manifest):
    """Rows of unequal length (a bible chapter is ~4x a group of dictionary entries): drawing them with
    the exported probabilities gives each domain its recommended share of tokens."""
    from datasets import Dataset, interleave_datasets

    doc = json.loads(export(job, "hf-json"))
    parts = []
    for domain in doc["datasets"]:
        texts = domain_texts(domain)
        counts = token_counts(manifest["tokenizer_path"], texts)
        rows = Dataset.from_dict({"domain": [domain] * len(texts), "tokens": counts.tolist()})
        parts.append(rows.repeat(20_000 // len(texts) + 1))  # never exhausted in the draws below
    mixed = interleave_datasets(
        parts,
        probabilities=doc["probabilities"],
        seed=doc["seed"],
        stopping_strategy=doc["stopping_strategy"],
    )
    draws = mixed.select(range(20_000))
    tokens = np.array(draws["tokens"], dtype=float)
    names = np.array(draws["domain"])
    lengths = {d: tokens[names == d].mean() for d in DOMAINS}
    assert max(lengths.values()) > 3 * min(lengths.values())  # really unequal rows (~4x)
    for domain in DOMAINS:
        ratio_within_error(np.where(names == domain, tokens, 0.0), tokens, rec_weights[domain])
    # the probabilities as token weights (the old export) would have missed by far
    naive = interleave_datasets(
        parts, probabilities=doc["token_shares"], seed=0, stopping_strategy="first_exhausted"
    ).select(range(20_000))
    naive_tokens = np.array(naive["tokens"], dtype=float)
    naive_share = naive_tokens[np.array(naive["domain"]) == "bible"].sum() / naive_tokens.sum()
    assert abs(naive_share - rec_weights["bible"]) > 0.1


def test_hf_python_snippet_runs_with_datasets(job, rec_weights, manifest, tmp_path):
    snippet = export(job, "hf-python")
    script = tmp_path / "mix.py"
    script.write_text(
        snippet
        + f"""
import json
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file({manifest["tokenizer_path"]!r})
domains = {{name: load_domain(name) for name in PROBABILITIES}}
texts = {{name: set(d["text"]) for name, d in domains.items()}}
rows = mixed["text"]
draws = interleave_datasets(
    [d.repeat(5_000 // len(d) + 1) for d in domains.values()],
    probabilities=list(PROBABILITIES.values()), seed=1, stopping_strategy="first_exhausted",
).select(range(5_000))["text"]
owner = {{t: name for name, ts in texts.items() for t in ts}}
lengths = {{t: len(e.ids) + 1 for t, e in zip(owner, tokenizer.encode_batch(list(owner), add_special_tokens=False))}}
print(json.dumps({{
    "probabilities": PROBABILITIES,
    "rows": len(rows),
    "sizes": {{name: len(d) for name, d in domains.items()}},
    "unknown": sum(t not in owner for t in rows),
    "draws": [[owner[t], lengths[t]] for t in draws],
}}))
"""
    )
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    hf = json.loads(export(job, "hf-json"))
    assert out["probabilities"] == dict(zip(hf["datasets"], hf["probabilities"], strict=True))
    # a file is a document (bible: 6 files), a JSONL line or a Parquet row is one
    assert out["sizes"] == {d: manifest[d]["documents"] for d in DOMAINS}
    assert out["rows"] > 0 and out["unknown"] == 0
    names = np.array([d for d, _ in out["draws"]])
    tokens = np.array([n for _, n in out["draws"]], dtype=float)
    for domain in DOMAINS:  # the snippet's own loading realises the recommendation
        ratio_within_error(np.where(names == domain, tokens, 0.0), tokens, rec_weights[domain])
