"""A finished job over the asset corpus (synthetic trials, real data stage), shared by the export
tests, and helpers to read the domains' real documents back."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixopt.export import exact_weights
from mixopt.job import JobDir
from mixopt.search import SearchJob
from mixopt.spec import JobSpec
from mixopt.testing import ScriptedRunner
from tests.conftest import corpus_domains

DOMAINS = ["code", "bible", "dictionary"]


@pytest.fixture(scope="session")
def job(tmp_path_factory) -> Path:
    """A finished job over the asset corpus, with a target budget so it has repetition limits
    (code: 2 epochs, the others the default 4)."""
    root = tmp_path_factory.mktemp("export-job")
    domains = corpus_domains()
    domains[0]["max_epochs"] = 2.0
    spec = JobSpec.model_validate(
        {
            "name": "exp",
            "output_dir": str(root / "runs"),
            "domains": domains,
            "data": {"cache_dir": str(root / "cache")},
            "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
            "search": {
                "initial_trials": 4,
                "rounds": 1,
                "trials_per_round": 2,
                "strategy": "random",
            },
            "proxy": {"seq_len": 16},
            "validate": {"enabled": False},
            "tracking": {"enabled": False},
            "target": {"tokens": 1000},
        }
    )
    job_dir = JobDir.new(spec, root / "job").path
    SearchJob(spec, job_dir, runner=ScriptedRunner()).run()
    return job_dir


@pytest.fixture
def rec_weights(job) -> dict[str, float]:
    return exact_weights(json.loads((job / "recommendation.json").read_text())["weights"])


@pytest.fixture
def manifest(job) -> dict:
    data = json.loads((job / "data_manifest.json").read_text())
    return {
        "eot_id": data["eot_id"],
        "tokenizer_path": data["tokenizer_path"],
        **{d["name"]: d for d in data["domains"]},
    }


def sums_to_one(weights) -> bool:
    return sum(Decimal(repr(float(w))) for w in weights) == 1


def edited_job(job: Path, tmp_path: Path, weights: dict[str, float]) -> Path:
    """A copy of the job whose recommendation has other weights."""
    copy = tmp_path / "job-copy"
    shutil.copytree(job, copy)
    rec = json.loads((copy / "recommendation.json").read_text())
    rec["weights"] = weights
    (copy / "recommendation.json").write_text(json.dumps(rec))
    return copy


def domain_texts(domain: str) -> list[str]:
    """The domain's documents read from its source files with Hugging Face ``datasets`` (a text
    file, a JSONL line or a Parquet row is one document, as mixopt reads them)."""
    from datasets import load_dataset

    from tests.conftest import CORPUS

    if domain == "code":
        data = load_dataset("json", data_files=str(CORPUS / "code" / "*.jsonl"), split="train")
    elif domain == "bible":
        files = sorted(str(p) for p in (CORPUS / "bible").glob("*.txt"))
        data = load_dataset("text", data_files=files, split="train", sample_by="document")
    else:
        data = load_dataset("parquet", data_files=str(CORPUS / "dictionary" / "*"), split="train")
    return list(data["text"])


def token_counts(tokenizer_path: str, texts: list[str]) -> np.ndarray:
    """Tokens per document under a tokenizer.json, plus one end-of-text each (how packed
    training counts a document)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_path)
    return np.array(
        [len(e.ids) + 1 for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    )


def ratio_within_error(x: np.ndarray, y: np.ndarray, expected: float, sigmas: float = 4.0) -> None:
    """``sum(x) / sum(y)`` (a ratio of per-draw sums, e.g. one domain's tokens over all tokens)
    equals ``expected`` within ``sigmas`` standard errors (delta method)."""
    ratio = x.sum() / y.sum()
    residual = x - ratio * y
    se = float(np.sqrt(residual.var(ddof=1) / len(x)) / y.mean())
    assert abs(ratio - expected) <= sigmas * se + 1e-9, (ratio, expected, se)


STAGE_MAIN = {
    "code": 0.5,
    "bible": 0.5,
}  # the fixed first stage of staged_job leaves dictionary out


def staged_job(job: Path, tmp_path: Path, stages: Any = None) -> Path:
    """A copy of the job whose recommendation has a stage schedule: by default a fixed main
    stage (3/4 of the tokens, :data:`STAGE_MAIN`), then the searched anneal."""
    copy = tmp_path / "staged-job"
    shutil.copytree(job, copy)
    rec = json.loads((copy / "recommendation.json").read_text())
    rec["stages"] = stages or [
        {"name": "main", "share": 0.75, "weights": STAGE_MAIN, "searched": False},
        {"name": "anneal", "share": 0.25, "weights": rec["weights"], "searched": True},
    ]
    (copy / "recommendation.json").write_text(json.dumps(rec))
    return copy
