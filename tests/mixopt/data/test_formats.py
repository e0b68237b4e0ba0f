"""Compressed JSONL, pre-tokenized token files, token dtypes, skipping bad records, workers."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import zstandard
from tokenizers import Tokenizer, models, pre_tokenizers

from mixopt.data import prepare_data
from mixopt.data.encode import EncoderPool
from mixopt.data.readers import iter_pieces
from mixopt.data.sources import DomainSources, scan_domain
from mixopt.data.tokenizer import train_bpe
from mixopt.errors import DataError
from mixopt.spec import DomainSpec

from .conftest import CORPUS, LogCollector, MakeSpec, corpus_domains

CODE = CORPUS / "code" / "stdlib_excerpts.jsonl"


def documents(sources: DomainSources) -> list[str]:
    docs: list[str] = []
    for piece in iter_pieces(sources):
        if piece.starts_doc:
            docs.append("")
        docs[-1] += piece.text
    return docs


def all_tokens(shards) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([shards.tokens("train"), shards.tokens("val")])


@pytest.fixture
def tokenizer_file(tmp_path: Path) -> Path:
    """A small byte-level BPE (vocab 300) trained on the asset corpus, saved as a file."""
    texts = [json.loads(line)["text"] for line in CODE.read_text().splitlines()]
    texts += [p.read_text() for p in sorted((CORPUS / "bible").glob("*.txt"))]
    path = tmp_path / "tokenizer.json"
    train_bpe(texts, 300).save(str(path))
    return path


# ------------------------------------------------------------------------------- compressed


def compressed_copies(tmp_path: Path) -> dict[str, Path]:
    raw = CODE.read_bytes()
    paths = {
        "gz": tmp_path / "code.jsonl.gz",
        "zst": tmp_path / "code.jsonl.zst",
        "zst_multi": tmp_path / "multi.jsonl.zstd",
        "gz_named_plain": tmp_path / "code_gz.jsonl",  # compression is found by magic bytes
    }
    paths["gz"].write_bytes(gzip.compress(raw))
    paths["zst"].write_bytes(zstandard.ZstdCompressor().compress(raw))
    half = raw.index(b"\n", len(raw) // 2) + 1
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    paths["zst_multi"].write_bytes(
        compressor.compress(raw[:half]) + compressor.compress(raw[half:])
    )
    paths["gz_named_plain"].write_bytes(gzip.compress(raw))
    return paths


def test_compressed_jsonl_reads_like_plain(tmp_path: Path) -> None:
    plain = documents(scan_domain(DomainSpec(name="code", paths=[str(CODE)])))
    assert len(plain) == 12
    for kind, path in compressed_copies(tmp_path).items():
        sources = scan_domain(DomainSpec(name="code", paths=[str(path)]))
        assert sources.files[0].format == "jsonl", kind
        assert sources.files[0].compression == ("zstd" if "zst" in kind else "gzip")
        assert documents(sources) == plain, kind


def test_compressed_text_file(tmp_path: Path) -> None:
    text = (CORPUS / "bible" / "ruth_01.txt").read_text()
    path = tmp_path / "ruth.txt.gz"
    path.write_bytes(gzip.compress(text.encode()))
    sources = scan_domain(DomainSpec(name="bible", paths=[str(path)]))
    assert (sources.files[0].format, sources.files[0].compression) == ("text", "gzip")
    assert documents(sources) == [text]


@pytest.mark.parametrize(
    ("name", "mangle", "message"),
    [
        ("cut.jsonl.gz", lambda b: gzip.compress(b)[:-300], r"cut\.jsonl\.gz: truncated gzip data"),
        (
            "bad.jsonl.gz",
            lambda b: (lambda z: z[:40] + bytes(200) + z[240:])(gzip.compress(b)),
            r"bad\.jsonl\.gz: corrupt gzip data",
        ),
        (
            "cut.jsonl.zst",
            lambda b: zstandard.ZstdCompressor().compress(b)[:-300],
            r"cut\.jsonl\.zst: truncated zstd data",
        ),
        (
            "bad.jsonl.zst",
            lambda b: (lambda z: z[:100] + bytes(x ^ 0xFF for x in z[100:140]) + z[140:])(
                zstandard.ZstdCompressor(write_checksum=True).compress(b)
            ),
            r"bad\.jsonl\.zst: corrupt zstd data",
        ),
    ],
)
def test_truncated_or_corrupt_compressed_files(
    make_spec: MakeSpec, tmp_path: Path, name: str, mangle, message: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_bytes(mangle(CODE.read_bytes()))
    domains = [*corpus_domains()[1:], {"name": "web", "paths": [str(path)]}]
    # even with skipping on: how much of a broken file is lost is unknown
    spec = make_spec(domains, data={"skip_bad_records": True})
    with pytest.raises(DataError, match=r"domain 'web': .*" + message):
        prepare_data(spec, log=LogCollector())
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_compressed_domain_shards_equal_plain(
    make_spec: MakeSpec, tmp_path: Path, tokenizer_file: Path
) -> None:
    paths = compressed_copies(tmp_path)
    fixed = {"kind": "file", "path": str(tokenizer_file)}
    plain = prepare_data(make_spec(tokenizer=fixed), log=LogCollector())
    domains = corpus_domains()
    domains[0]["paths"] = [str(paths["zst"])]
    zst = prepare_data(make_spec(domains, tokenizer=fixed), log=LogCollector())
    a, b = plain.domains["code"], zst.domains["code"]
    assert a.content_hash != b.content_hash  # a different file is a different version
    np.testing.assert_array_equal(all_tokens(a), all_tokens(b))
    assert (a.documents, a.train_bytes + a.val_bytes) == (b.documents, b.train_bytes + b.val_bytes)


# ---------------------------------------------------------------------------- pre-tokenized


def encode_docs(tokenizer_file: Path, texts: list[str], eot: int) -> np.ndarray:
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    ids: list[int] = []
    for text in texts:
        ids += [*tokenizer.encode(text, add_special_tokens=False).ids, eot]
    return np.array(ids)


def pretokenized_spec(make_spec: MakeSpec, tokenizer_file: Path, entry: dict) -> object:  # type: ignore[type-arg]
    return make_spec(
        [corpus_domains()[1], entry], tokenizer={"kind": "file", "path": str(tokenizer_file)}
    )


@pytest.mark.parametrize("form", ["npy", "bin16", "bin32", "npy-unterminated"])
def test_pretokenized_domains_keep_their_tokens(
    make_spec: MakeSpec, tokenizer_file: Path, tmp_path: Path, form: str
) -> None:
    texts = [json.loads(line)["text"] for line in CODE.read_text().splitlines()]
    tokens = encode_docs(tokenizer_file, texts, eot=0)
    entry: dict[str, object] = {"name": "code"}
    if form.startswith("npy"):
        path = tmp_path / "code.npy"
        np.save(path, tokens[:-1] if form == "npy-unterminated" else tokens.astype(np.int32))
    else:
        dtype = "uint16" if form == "bin16" else "uint32"
        path = tmp_path / "code.bin"
        tokens.astype(dtype).tofile(path)
        entry["dtype"] = dtype
    entry["paths"] = [str(path)]
    manifest = prepare_data(pretokenized_spec(make_spec, tokenizer_file, entry), log=LogCollector())  # type: ignore[arg-type]
    code = manifest.domains["code"]
    assert code.documents == len(texts) and code.dtype == "uint16"
    # the shards hold the same documents (whole, each ended by one end-of-text id)
    stream = all_tokens(code)
    docs = {tuple(d) for d in np.split(stream, np.flatnonzero(stream == 0) + 1)[:-1]}
    expected = {tuple(d) for d in np.split(tokens, np.flatnonzero(tokens == 0) + 1)[:-1]}
    assert docs == expected
    assert code.train_bytes + code.val_bytes == sum(len(t.encode()) for t in texts)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "out_of_vocab",
            r"code\.npy: token id 999 at position 3 is outside the tokenizer's vocabulary \(0\.\.299\)",
        ),
        ("negative", r"code\.npy: token id -1 at position 0 is outside"),
        ("two_d", r"code\.npy: expected a 1-D array of token ids, got shape \(2, 2\)"),
        ("floats", r"code\.npy: token ids must be integers, got dtype float64"),
        ("npy_dtype", r"code\.npy: holds int64 token ids but the spec says uint16"),
        ("bin_no_dtype", r"domain 'code': .*code\.bin holds raw token ids; set the domain's dtype"),
        ("bin_odd_size", r"code\.bin: 3 bytes is not a multiple of the uint16 item size 2"),
        ("bin_empty", r"code\.bin: empty file \(no tokens\)"),
        ("mixed", r"domain 'code': mixes text files .* and pre-tokenized files"),
    ],
)
def test_bad_pretokenized_input(
    make_spec: MakeSpec, tokenizer_file: Path, tmp_path: Path, setup: str, message: str
) -> None:
    npy, binary = tmp_path / "code.npy", tmp_path / "code.bin"
    entry: dict[str, object] = {"name": "code", "paths": [str(npy)]}
    if setup == "out_of_vocab":
        np.save(npy, np.array([5, 6, 0, 999, 0]))
    elif setup == "negative":
        np.save(npy, np.array([-1, 6, 0]))
    elif setup == "two_d":
        np.save(npy, np.zeros((2, 2), dtype=np.int64))
    elif setup == "floats":
        np.save(npy, np.zeros(4))
    elif setup == "npy_dtype":
        np.save(npy, np.zeros(4, dtype=np.int64))
        entry["dtype"] = "uint16"
    elif setup in ("bin_no_dtype", "bin_odd_size", "bin_empty"):
        binary.write_bytes(b"\x01\x00\x02" if setup == "bin_odd_size" else b"")
        entry["paths"] = [str(binary)]
        if setup != "bin_no_dtype":
            entry["dtype"] = "uint16"
    elif setup == "mixed":
        np.save(npy, np.array([5, 0]))
        entry["paths"] = [str(npy), str(CODE)]
    spec = pretokenized_spec(make_spec, tokenizer_file, entry)
    with pytest.raises(DataError, match=message):
        prepare_data(spec, log=LogCollector())  # type: ignore[arg-type]


def test_pretokenized_needs_the_tokenizer_file(make_spec: MakeSpec, tmp_path: Path) -> None:
    np.save(tmp_path / "code.npy", np.array([5, 6, 0]))
    domains = [corpus_domains()[1], {"name": "code", "paths": [str(tmp_path / "code.npy")]}]
    with pytest.raises(
        DataError, match=r"\['code'\] are pre-tokenized .*tokenizer\.kind to 'file'"
    ):
        prepare_data(make_spec(domains), log=LogCollector())


def big_vocab_tokenizer(path: Path, size: int = 70_000) -> Path:
    vocab = {"<|endoftext|>": 0, "[UNK]": 1, **{f"w{i}": i for i in range(2, size)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.save(str(path))
    return path


def test_vocab_must_fit_the_token_dtype(make_spec: MakeSpec, tmp_path: Path) -> None:
    tokenizer = big_vocab_tokenizer(tmp_path / "big.json")
    spec = make_spec(
        tokenizer={"kind": "file", "path": str(tokenizer)}, data={"token_dtype": "uint16"}
    )
    with pytest.raises(
        DataError,
        match=r"big\.json: its 70000 token ids do not fit data\.token_dtype uint16 \(at most 65536 ids\)",
    ):
        prepare_data(spec, log=LogCollector())
    (tmp_path / "code.bin").write_bytes(np.array([5, 0], dtype=np.uint16).tobytes())
    domains = [
        corpus_domains()[1],
        {"name": "code", "paths": [str(tmp_path / "code.bin")], "dtype": "uint16"},
    ]
    spec = make_spec(domains, tokenizer={"kind": "file", "path": str(tokenizer)})
    with pytest.raises(
        DataError, match=r"domain 'code': its token files are uint16 .* has 70000 ids"
    ):
        prepare_data(spec, log=LogCollector())
    # auto picks uint32 for this vocabulary, and uint32 may be asked for small ones
    manifest = prepare_data(
        make_spec(tokenizer={"kind": "file", "path": str(tokenizer)}), log=LogCollector()
    )
    assert {d.dtype for d in manifest.domains.values()} == {"uint32"}
    wide = prepare_data(make_spec(data={"token_dtype": "uint32"}), log=LogCollector())
    narrow = prepare_data(make_spec(), log=LogCollector())
    for name, shards in wide.domains.items():
        assert shards.dtype == "uint32" and narrow.domains[name].dtype == "uint16"
        np.testing.assert_array_equal(all_tokens(shards), all_tokens(narrow.domains[name]))


# --------------------------------------------------------------------------- skipping records


def test_skip_bad_records_counts_and_reports(make_spec: MakeSpec, tmp_path: Path) -> None:
    folder = tmp_path / "web"
    folder.mkdir()
    good = [json.dumps({"text": f"document number {i} " * 40}) for i in range(60)]
    lines = [*good[:20], '{"text": oops', *good[20:40], '{"body": "x"}', "[1, 2]", *good[40:]]
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "b.jsonl").write_bytes(b'{"text": "caf\xe9"}\n' + (good[0] + "\n").encode())
    (folder / "c.txt").write_bytes("caf\xe9".encode("latin-1"))
    domains = [*corpus_domains(), {"name": "web", "paths": [str(folder)]}]
    with pytest.raises(DataError, match=r"a\.jsonl:21: malformed JSON"):
        prepare_data(make_spec(domains), log=LogCollector())
    logs = LogCollector()
    manifest = prepare_data(make_spec(domains, data={"skip_bad_records": True}), log=logs)
    web = manifest.domains["web"]
    assert web.skipped_records == 5 and web.documents == 61
    assert "web: skipped 5 bad record(s)" in logs.text()
    assert "a.jsonl:21: malformed JSON" in logs.text()
    # the domain's own setting wins over the job's
    domains[-1]["skip_bad_records"] = False
    with pytest.raises(DataError, match=r"a\.jsonl:21"):
        prepare_data(make_spec(domains, data={"skip_bad_records": True}), log=LogCollector())


def test_all_records_bad_is_an_empty_domain(make_spec: MakeSpec, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": oops\n{"nope": 1}\n')
    domains = [*corpus_domains(), {"name": "web", "paths": [str(path)]}]
    with pytest.raises(DataError, match=r"domain 'web': no text .*all 2 record\(s\) were bad"):
        prepare_data(make_spec(domains, data={"skip_bad_records": True}), log=LogCollector())


# ---------------------------------------------------------------------------------- workers


def test_worker_processes_give_identical_shards(
    make_spec: MakeSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = prepare_data(
        make_spec(cache_dir=tmp_path / "one", data={"workers": 1}), log=LogCollector()
    )
    monkeypatch.setattr("mixopt.data.encode.POOL_MIN_BYTES", 0)
    monkeypatch.setattr("mixopt.data.encode.CHUNK_BYTES", 2_000)  # many chunks per domain
    monkeypatch.setattr("mixopt.data.documents.PIECE_CHARS", 700)  # documents cut across chunks
    started: list[int] = []
    start = EncoderPool._start

    def counting_start(self: EncoderPool) -> object:
        started.append(self.workers)
        return start(self)

    monkeypatch.setattr(EncoderPool, "_start", counting_start)
    pooled = prepare_data(
        make_spec(cache_dir=tmp_path / "two", data={"workers": 2}), log=LogCollector()
    )
    assert started and set(started) == {2}  # chunks went to two worker processes
    for name, shards in serial.domains.items():
        other = pooled.domains[name]
        assert Path(shards.train_path).read_bytes() == Path(other.train_path).read_bytes()
        assert Path(shards.val_path).read_bytes() == Path(other.val_path).read_bytes()
        assert (shards.documents, shards.train_bytes) == (other.documents, other.train_bytes)


def test_worker_errors_name_the_line(
    make_spec: MakeSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mixopt.data.encode.POOL_MIN_BYTES", 0)
    monkeypatch.setattr("mixopt.data.encode.CHUNK_BYTES", 500)
    path = tmp_path / "web.jsonl"
    lines = [json.dumps({"text": f"doc {i} " * 30}) for i in range(40)]
    lines[33] = '{"text": "unterminated'
    path.write_text("\n".join(lines) + "\n")
    domains = [*corpus_domains(), {"name": "web", "paths": [str(path)]}]
    with pytest.raises(DataError, match=r"domain 'web': .*web\.jsonl:34: malformed JSON"):
        prepare_data(make_spec(domains, data={"workers": 2}), log=LogCollector())
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


# ------------------------------------------------------------------------------ digest cache


def test_digest_cache_skips_unchanged_files_and_sees_changes(
    make_spec: MakeSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixopt.data.hashing import DigestCache

    monkeypatch.setattr(DigestCache, "SETTLE_S", 0.0)
    path = tmp_path / "web.jsonl"
    path.write_text("".join(json.dumps({"text": f"doc {i} " * 30}) + "\n" for i in range(40)))
    digests = DigestCache(tmp_path / "digests")
    domain = DomainSpec(name="web", paths=[str(path)])
    first = scan_domain(domain, digests=digests)
    assert (digests.hits, digests.misses) == (0, 1)
    assert scan_domain(domain, digests=digests).content_hash == first.content_hash
    assert (digests.hits, digests.misses) == (1, 1)
    assert scan_domain(domain).content_hash == first.content_hash  # same as a full read
    stat = path.stat()
    path.write_text(path.read_text().replace("doc 7 ", "doc 8 ", 1))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = scan_domain(domain, digests=digests)
    assert changed.content_hash != first.content_hash and digests.misses == 2
    # a file modified just now is never remembered (a write may race with the read)
    monkeypatch.setattr(DigestCache, "SETTLE_S", 3600.0)
    fresh = DigestCache(tmp_path / "fresh")
    scan_domain(domain, digests=fresh)
    scan_domain(domain, digests=fresh)
    assert (fresh.hits, fresh.misses) == (0, 2)
