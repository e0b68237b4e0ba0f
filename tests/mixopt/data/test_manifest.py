"""DataManifest: natural distribution, data hash, (de)serialisation, import weight."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixopt.data import DataManifest, DomainShards
from mixopt.errors import DataError


def shards(name: str, train_tokens: int, content_hash: str = "c") -> DomainShards:
    return DomainShards(
        name=name,
        train_path=f"/x/{name}/train.bin",
        val_path=f"/x/{name}/val.bin",
        dtype="uint16",
        train_tokens=train_tokens,
        val_tokens=10,
        train_bytes=3 * train_tokens,
        val_bytes=30,
        documents=5,
        content_hash=content_hash + name,
        files=[f"/src/{name}.jsonl"],
    )


def manifest(**changes: object) -> DataManifest:
    base = DataManifest(
        tokenizer_path="/x/tokenizer.json",
        tokenizer_hash="t",
        vocab_size=4096,
        eot_id=0,
        domains={"a": shards("a", 300), "b": shards("b", 100)},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_natural_distribution() -> None:
    assert manifest().natural_distribution() == {"a": 0.75, "b": 0.25}


def test_data_hash_tracks_tokenizer_content_and_split() -> None:
    base = manifest().data_hash
    assert len(base) == 16 and base == manifest().data_hash
    assert manifest(tokenizer_hash="u").data_hash != base
    assert manifest(val_fraction=0.1).data_hash != base
    assert manifest(domains={"a": shards("a", 300, "z"), "b": shards("b", 100)}).data_hash != base
    moved_a = dataclasses.replace(shards("a", 300), train_path="/y", files=["/elsewhere"])
    moved = manifest(domains={"a": moved_a, "b": shards("b", 100)})
    assert moved.data_hash == base  # paths are not content


def test_save_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    manifest().save(path)
    data = json.loads(path.read_text())
    assert data["version"] == 1 and [d["name"] for d in data["domains"]] == ["a", "b"]
    assert DataManifest.load(path) == manifest()
    assert DataManifest.from_dict(manifest().to_dict()) == manifest()


def test_bad_manifests(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        DataManifest.load(tmp_path / "missing.json")
    data = manifest().to_dict()
    del data["domains"][0]["dtype"]
    with pytest.raises(DataError, match="malformed"):
        DataManifest.from_dict(data)
    with pytest.raises(DataError, match=r"unknown DataManifest field\(s\) \['surprise'\]"):
        DataManifest.from_dict({**manifest().to_dict(), "surprise": 1})


def test_import_is_light() -> None:
    code = (
        "import sys, mixopt.data; "
        "heavy = {'torch', 'ray', 'mlflow', 'lightgbm', 'tokenizers', 'pyarrow'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
