"""Eval sets in the data stage: tokenized and cached like domains, but only as validation tokens
(never trained on), capped by whole documents, and never a training domain's file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from mixopt.data import DataManifest, prepare_data
from mixopt.data.sources import READ_ROOTS_ENV, ReadRoots
from mixopt.errors import DataError, SpecError

from .conftest import CORPUS, LogCollector, MakeSpec

DOMAINS = [
    {"name": "code", "paths": [str(CORPUS / "code")]},
    {"name": "bible", "paths": [str(CORPUS / "bible" / "[egpr]*.txt")]},
    {"name": "dictionary", "paths": [str(CORPUS / "dictionary")]},
]
DOMAINS_N = [d["name"] for d in DOMAINS]
JOHN = CORPUS / "bible" / "john_01.txt"


def documents(tokens: np.ndarray, eot: int) -> list[np.ndarray]:
    return np.split(tokens, np.flatnonzero(tokens == eot) + 1)[:-1]


def test_an_eval_set_becomes_validation_tokens_only(
    make_spec: MakeSpec, logs: LogCollector
) -> None:
    spec = make_spec(DOMAINS, evals=[{"name": "gospel", "paths": [str(JOHN)]}])
    manifest = prepare_data(spec, log=logs)
    assert list(manifest.domains) == ["code", "bible", "dictionary"]
    assert list(manifest.evals) == ["gospel"]
    gospel = manifest.evals["gospel"]
    assert gospel.train_tokens == 0 and gospel.train_bytes == 0
    assert Path(gospel.train_path).stat().st_size == 0
    assert gospel.split == "all" and gospel.documents == 1
    assert gospel.val_bytes == len(JOHN.read_bytes())
    tokenizer = Tokenizer.from_file(manifest.tokenizer_path)
    val = gospel.tokens("val")
    assert len(val) == gospel.val_tokens and val[-1] == manifest.eot_id
    assert tokenizer.decode(val.tolist()) == JOHN.read_text()
    # nothing of it is trained on: the mixture, token counts and proxies' domains leave it out
    assert set(manifest.natural_distribution()) == set(manifest.train_tokens()) == set(DOMAINS_N)
    assert [d.name for d in manifest.domain_tokens()] == DOMAINS_N
    (tokens,) = manifest.eval_tokens()
    assert tokens.name == "gospel" and tokens.num_tokens("train") == 0
    assert tokens.num_tokens("val") == gospel.val_tokens and tokens.val_bytes == gospel.val_bytes
    assert "eval set" in logs.text()
    # the manifest keeps it, and the data hash covers it
    again = DataManifest.from_dict(json.loads(json.dumps(manifest.to_dict())))
    assert again == manifest
    plain = prepare_data(make_spec(DOMAINS), log=LogCollector())
    assert plain.evals == {} and plain.data_hash != manifest.data_hash
    assert plain.domains == manifest.domains  # the domains' shards do not change


def test_a_large_eval_set_is_capped_by_whole_documents(make_spec: MakeSpec, tmp_path: Path) -> None:
    lines = [
        f"record {i}: " + " ".join(f"w{(i * 7 + j) % 50}" for j in range(30)) for i in range(60)
    ]
    folder = tmp_path / "ood"
    folder.mkdir()
    for i, line in enumerate(lines):
        (folder / f"{i:03d}.txt").write_text(line + "\n")
    spec = make_spec(DOMAINS, evals=[{"name": "ood", "paths": [str(folder)], "max_tokens": 1500}])
    manifest = prepare_data(spec, log=LogCollector())
    ood = manifest.evals["ood"]
    assert ood.split == "hash" and ood.train_tokens == 0
    assert 750 <= ood.val_tokens <= 1500
    assert Path(ood.train_path).stat().st_size == 0
    tokenizer = Tokenizer.from_file(manifest.tokenizer_path)
    kept = [tokenizer.decode(d.tolist()) for d in documents(ood.tokens("val"), manifest.eot_id)]
    assert 0 < len(kept) < len(lines)
    assert set(kept) <= {line + "\n" for line in lines}  # whole documents only
    # without the cap, every document is kept
    spec = make_spec(DOMAINS, evals=[{"name": "ood", "paths": [str(folder)]}])
    whole = prepare_data(spec, log=LogCollector())
    assert whole.evals["ood"].split == "all" and whole.evals["ood"].documents == len(lines)


def test_an_eval_set_reading_a_training_file_is_refused(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    """Written differently (a glob, a link), the same file is still caught once resolved."""
    link = tmp_path / "psalm.txt"
    link.symlink_to(CORPUS / "bible" / "psalms_023.txt")
    spec = make_spec(DOMAINS, evals=[{"name": "psalm", "paths": [str(JOHN), str(link)]}])
    with pytest.raises(SpecError, match=r"eval set 'psalm' reads .*psalms_023\.txt, a file of "
                       r"training domain 'bible'"):  # fmt: skip
        prepare_data(spec, log=LogCollector())


def test_an_empty_eval_set_fails_naming_it(make_spec: MakeSpec, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    spec = make_spec(DOMAINS, evals=[{"name": "blank", "paths": [str(tmp_path / "empty.txt")]}])
    with pytest.raises(DataError, match=r"eval set 'blank': .*empty.txt: empty file"):
        prepare_data(spec, log=LogCollector())
    (tmp_path / "none").mkdir()
    spec = make_spec(DOMAINS, evals=[{"name": "blank", "paths": [str(tmp_path / "none")]}])
    with pytest.raises(DataError, match=r"eval set 'blank': directory .* contains no files"):
        prepare_data(spec, log=LogCollector())


def test_eval_reads_are_checked_against_the_data_roots(
    make_spec: MakeSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At use: a link under an eval set's folder to a file outside the data roots is refused."""
    root = tmp_path / "data"
    (root / "held").mkdir(parents=True)
    (root / "held" / "a.txt").write_text("held-out text\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    (root / "held" / "b.txt").symlink_to(secret)
    spec = make_spec(DOMAINS, evals=[{"name": "held", "paths": [str(root / "held")]}])
    monkeypatch.setenv(READ_ROOTS_ENV, ReadRoots((root, CORPUS)).to_env())
    with pytest.raises(DataError, match=r"eval set 'held': .* resolves outside the service's data"):
        prepare_data(spec, log=LogCollector())


def test_one_document_past_the_cap_keeps_its_tail(make_spec: MakeSpec, tmp_path: Path) -> None:
    big = tmp_path / "book.txt"
    big.write_text(JOHN.read_text() * 3)
    spec = make_spec(DOMAINS, evals=[{"name": "book", "paths": [str(big)], "max_tokens": 300}])
    manifest = prepare_data(spec, log=LogCollector())
    book = manifest.evals["book"]
    assert book.split == "tail" and book.val_tokens == 300
    assert book.train_tokens == 0 and Path(book.train_path).stat().st_size == 0
    tokenizer = Tokenizer.from_file(manifest.tokenizer_path)
    text = tokenizer.decode(book.tokens("val").tolist())
    assert big.read_text().endswith(text) and len(text.encode()) == book.val_bytes
