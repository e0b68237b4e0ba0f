"""prepare_data end to end on the tiny corpus: shards, split, cache behaviour, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from mixopt.data import DataManifest, prepare_data
from mixopt.errors import DataError

from .conftest import CORPUS, LogCollector, MakeSpec, corpus_domains


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under a folder with its size and modification time."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_shards_round_trip(make_spec: MakeSpec, logs: LogCollector) -> None:
    manifest = prepare_data(make_spec(), log=logs)
    assert list(manifest.domains) == ["code", "bible", "dictionary"]
    tokenizer = Tokenizer.from_file(manifest.tokenizer_path)
    assert tokenizer.token_to_id("<|endoftext|>") == manifest.eot_id
    genesis = (CORPUS / "bible" / "genesis_01.txt").read_text()
    for shards in manifest.domains.values():
        assert shards.dtype == "uint16"
        train, val = shards.tokens("train"), shards.tokens("val")
        assert Path(shards.train_path).stat().st_size == 2 * shards.train_tokens == 2 * len(train)
        assert Path(shards.val_path).stat().st_size == 2 * shards.val_tokens == 2 * len(val)
        assert shards.split == "hash" and train[-1] == val[-1] == manifest.eot_id
        # every document ends with exactly one end-of-text id
        eots = int((train == manifest.eot_id).sum() + (val == manifest.eot_id).sum())
        assert eots == shards.documents
        texts = [
            tokenizer.decode(doc.tolist())
            for part in (train, val)
            for doc in np.split(part, np.flatnonzero(part == manifest.eot_id) + 1)[:-1]
        ]
        assert sum(len(t.encode()) for t in texts) == shards.train_bytes + shards.val_bytes
        if shards.name == "bible":
            assert genesis in texts
    code = manifest.domains["code"]
    assert code.files == [str(CORPUS / "code" / "stdlib_excerpts.jsonl")]
    first = json.loads((CORPUS / "code" / "stdlib_excerpts.jsonl").read_text().splitlines()[0])
    all_code = tokenizer.decode(np.concatenate([code.tokens("train"), code.tokens("val")]).tolist())
    assert first["text"] in all_code


def test_split_is_deterministic_and_validation_non_empty(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    first = prepare_data(make_spec(cache_dir=tmp_path / "one"), log=LogCollector())
    second = prepare_data(make_spec(cache_dir=tmp_path / "two"), log=LogCollector())
    assert first.tokenizer_hash == second.tokenizer_hash
    for name, shards in first.domains.items():
        other = second.domains[name]
        assert shards.val_tokens >= 1000 and shards.train_tokens > 2 * shards.val_tokens
        assert Path(shards.val_path).read_bytes() == Path(other.val_path).read_bytes()
        assert Path(shards.train_path).read_bytes() == Path(other.train_path).read_bytes()
    assert first.data_hash == second.data_hash


def test_one_big_file_falls_back_to_tail(make_spec: MakeSpec, tmp_path: Path) -> None:
    big = tmp_path / "bible.txt"
    big.write_text("".join(p.read_text() for p in sorted((CORPUS / "bible").glob("*.txt"))))
    domains = [*corpus_domains()[:1], {"name": "bible", "paths": [str(big)]}]
    manifest = prepare_data(make_spec(domains), log=LogCollector())
    bible = manifest.domains["bible"]
    assert bible.split == "tail" and bible.documents == 1
    total = bible.train_tokens + bible.val_tokens
    assert bible.val_tokens == total // 4  # the floor for a domain this small
    tokenizer = Tokenizer.from_file(manifest.tokenizer_path)
    tail = tokenizer.decode(bible.tokens("val").tolist())
    assert big.read_text().endswith(tail)
    assert bible.val_bytes == len(tail.encode())
    assert bible.train_bytes + bible.val_bytes == len(big.read_bytes())


def test_second_run_reuses_everything(make_spec: MakeSpec, logs: LogCollector) -> None:
    spec = make_spec()
    first = prepare_data(spec, log=logs)
    cache = Path(spec.data.cache_dir)
    before = snapshot(cache)
    again = LogCollector()
    second = prepare_data(spec, log=again)
    assert second == first
    assert snapshot(cache) == before
    assert "tokenizer reused" in again.text()
    assert again.text().count("shards reused") == 3


def test_changed_file_gets_a_new_key(make_spec: MakeSpec, tmp_path: Path) -> None:
    bible = tmp_path / "bible"
    shutil.copytree(CORPUS / "bible", bible)
    domains = corpus_domains()
    domains[1]["paths"] = [str(bible)]
    spec = make_spec(domains, tokenizer={"kind": "file", "path": "placeholder"})
    # a fixed tokenizer, so that only the changed domain is rebuilt
    trained = prepare_data(make_spec(domains, cache_dir=tmp_path / "t"), log=LogCollector())
    spec.tokenizer.path = trained.tokenizer_path
    first = prepare_data(spec, log=LogCollector())
    (bible / "psalms_023.txt").write_text("The LORD is my shepherd; I shall not want.\n")
    logs = LogCollector()
    second = prepare_data(spec, log=logs)
    assert second.domains["bible"].content_hash != first.domains["bible"].content_hash
    assert (
        Path(second.domains["bible"].train_path).parent.parent
        != Path(first.domains["bible"].train_path).parent.parent
    )
    assert Path(first.domains["bible"].train_path).is_file()  # the old entry stays
    assert second.domains["code"] == first.domains["code"]
    assert logs.text().count("shards reused") == 2
    assert second.data_hash != first.data_hash


def test_failing_run_leaves_cache_untouched(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec()
    prepare_data(spec, log=LogCollector())
    cache = Path(spec.data.cache_dir)
    before = snapshot(cache)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jsonl").write_text('{"text": "fine"}\n' * 50)
    (bad / "b.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    domains = [*corpus_domains(), {"name": "broken", "paths": [str(bad)]}]
    with pytest.raises(DataError, match=r"domain 'broken': .*b\.jsonl:2: malformed JSON"):
        prepare_data(make_spec(domains, tokenizer={"kind": "file", "path": _tok(cache)}))
    assert snapshot(cache) == before
    assert not list(cache.rglob(".tmp-*"))


def _tok(cache: Path) -> str:
    return str(next(cache.glob("tokenizers/*/tokenizer.json")))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.jsonl": b'{"text": "x"}\n{"txt": "y"}\n'}, r"a\.jsonl:2: record has no field 'text'"),
        ({"a.jsonl": b'{"text": "x"}\n{"text"\n'}, r"a\.jsonl:2: malformed JSON"),
        ({"a.txt": b"\xff\xfe caf\xe9"}, r"a\.txt: not UTF-8 text"),
        ({"a.txt": b""}, r"a\.txt: empty file"),
        ({"a.parquet": b"garbage"}, r"a\.parquet: not a readable Parquet file"),
        ({"a.jsonl": b'{"text": null}\n{"text": ""}\n'}, r"no text in its 1 file\(s\)"),
    ],
)
def test_bad_inputs_name_domain_and_file(
    make_spec: MakeSpec, tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    folder = tmp_path / "web"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    domains = [*corpus_domains(), {"name": "web", "paths": [str(folder)]}]
    with pytest.raises(DataError, match=r"domain 'web': .*" + message):
        prepare_data(make_spec(domains), log=LogCollector())
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_corrupt_parquet_pages(make_spec: MakeSpec, tmp_path: Path) -> None:
    data = bytearray((CORPUS / "dictionary" / "gcide_entries.parquet").read_bytes())
    data[2000:6000] = bytes(b ^ 0x5A for b in data[2000:6000])
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(bytes(data))
    domains = [*corpus_domains()[:2], {"name": "dictionary", "paths": [str(path)]}]
    with pytest.raises(
        DataError, match=r"domain 'dictionary': .*corrupt\.parquet: corrupt Parquet"
    ):
        prepare_data(make_spec(domains), log=LogCollector())


def test_missing_path_and_empty_glob(make_spec: MakeSpec, tmp_path: Path) -> None:
    domains = [*corpus_domains()[:2], {"name": "web", "paths": [str(tmp_path / "nope")]}]
    with pytest.raises(DataError, match=r"domain 'web': .*nope: no such file"):
        prepare_data(make_spec(domains), log=LogCollector())
    domains[2]["paths"] = [str(tmp_path / "*.jsonl")]
    with pytest.raises(DataError, match=r"domain 'web': pattern .* matches no files"):
        prepare_data(make_spec(domains), log=LogCollector())


def test_manifest_save_load(make_spec: MakeSpec, tmp_path: Path) -> None:
    manifest = prepare_data(make_spec(), log=LogCollector())
    path = tmp_path / "data.json"
    manifest.save(path)
    loaded = DataManifest.load(path)
    assert loaded == manifest and loaded.data_hash == manifest.data_hash
    assert list(loaded.domains) == list(manifest.domains)
    shares = loaded.natural_distribution()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(0 < s < 1 for s in shares.values())
