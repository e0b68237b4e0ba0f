"""The data-format registry: every format round-trips, ``auto`` detection, errors, hooks, lazy
imports, and a format added from outside the package with one registry line."""

from __future__ import annotations

import gzip
import inspect
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from tokenizers import Tokenizer

from mixopt.data import formats
from mixopt.data.compression import iter_lines
from mixopt.data.documents import Piece, Skipped, split_document
from mixopt.data.encode import ChunkEncoder, iter_chunks
from mixopt.data.formats import (
    FORMAT_NAMES,
    DataFormat,
    TextFormat,
    check_format_name,
    check_format_settings,
    detect_format,
    get_format,
    registered_formats,
)
from mixopt.data.readers import iter_file_pieces, iter_pieces
from mixopt.data.sources import DomainSources, SourceFile, resolve_sources, scan_domain
from mixopt.data.tokenizer import TokenizerInfo, describe_tokenizer, train_bpe
from mixopt.errors import DataError
from mixopt.spec import DomainSpec

from ..conftest import CORPUS

DOCS = [
    "In the beginning God created the heaven and the earth.\nAnd the earth was without form.",
    "def bisect(a, x):\n    lo, hi = 0, len(a)\n    return lo",
    "Café au lait: a drink of coffee with hot milk (été).",
    "Short.",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TokenizerInfo:
    """A small byte-level BPE trained on the asset corpus, saved as a file."""
    texts = [p.read_text() for p in sorted((CORPUS / "bible").glob("*.txt"))]
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    train_bpe(texts + DOCS, 300).save(str(path))
    return describe_tokenizer(path)


def token_ids(tokenizer: TokenizerInfo, docs: list[str]) -> np.ndarray:
    """The documents encoded back to back, each ended by the end-of-text id."""
    encoder = Tokenizer.from_file(str(tokenizer.path))
    ids: list[int] = []
    for doc in docs:
        ids += [*encoder.encode(doc, add_special_tokens=False).ids, tokenizer.eot_id]
    return np.array(ids, dtype=np.uint16)


def write_text(folder: Path, docs: list[str], tokenizer: TokenizerInfo) -> dict[str, Any]:
    for i, doc in enumerate(docs):
        (folder / f"doc_{i}.txt").write_text(doc, encoding="utf-8")
    return {}


def write_jsonl(folder: Path, docs: list[str], tokenizer: TokenizerInfo) -> dict[str, Any]:
    lines = [json.dumps({"text": doc, "id": i}) for i, doc in enumerate(docs)]
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return {}


def write_parquet(folder: Path, docs: list[str], tokenizer: TokenizerInfo) -> dict[str, Any]:
    pq.write_table(pa.table({"text": docs, "id": list(range(len(docs)))}), folder / "d.parquet")
    return {}


def write_npy(folder: Path, docs: list[str], tokenizer: TokenizerInfo) -> dict[str, Any]:
    np.save(folder / "docs.npy", token_ids(tokenizer, docs))
    return {}


def write_bin(folder: Path, docs: list[str], tokenizer: TokenizerInfo) -> dict[str, Any]:
    token_ids(tokenizer, docs).tofile(folder / "docs.bin")
    return {"dtype": "uint16"}


WRITERS: dict[str, Callable[[Path, list[str], TokenizerInfo], dict[str, Any]]] = {
    "text": write_text,
    "jsonl": write_jsonl,
    "parquet": write_parquet,
    "npy": write_npy,
    "bin": write_bin,
}


def joined(pieces: Iterator[Piece]) -> list[str]:
    docs: list[str] = []
    for piece in pieces:
        if piece.starts_doc:
            docs.append("")
        docs[-1] += piece.text
    return docs


def encode_domain(sources: DomainSources, tokenizer: TokenizerInfo) -> tuple[np.ndarray, int, int]:
    """The domain's token stream through each format's encoder hook (chunks of about 40 bytes,
    so a file of several documents spans several), with its document count and UTF-8 bytes."""
    encoder = ChunkEncoder(str(tokenizer.path), tokenizer.eot_id, tokenizer.vocab_size, "uint16")
    encoded = [c.encode(encoder) for c in iter_chunks(sources, Skipped(), tokenizer.eot_id, 40)]
    assert len(encoded) > 1
    stream = np.concatenate([e.tokens for e in encoded])
    documents = sum(int(e.starts.sum()) for e in encoded)
    nbytes = sum(int(e.nbytes.sum()) for e in encoded)
    return stream, documents, nbytes


@pytest.mark.parametrize("name", FORMAT_NAMES[1:])
def test_every_format_round_trips_reader_and_encoder(
    name: str, tokenizer: TokenizerInfo, tmp_path: Path
) -> None:
    assert name in WRITERS, f"format {name!r} is registered but has no round-trip test"
    extra = WRITERS[name](tmp_path, DOCS, tokenizer)
    sources = scan_domain(DomainSpec(name="d", paths=[str(tmp_path)], format=name, **extra))
    fmt = get_format(name)
    assert {f.format for f in sources.files} == {name} and sources.pretokenized == fmt.pretokenized
    # the reader hook: text formats give their documents back; token formats refuse
    if fmt.pretokenized:
        with pytest.raises(DataError, match=f"holds token ids, not text \\(format {name}\\)"):
            list(iter_pieces(sources))
    else:
        assert sorted(joined(iter_pieces(sources))) == sorted(DOCS)
    # the encoder hook: the same documents, each ended by one end-of-text id
    stream, documents, nbytes = encode_domain(sources, tokenizer)
    assert stream.dtype == np.uint16 and int(stream[-1]) == tokenizer.eot_id
    decoder = Tokenizer.from_file(str(tokenizer.path))
    parts = np.split(stream, np.flatnonzero(stream == tokenizer.eot_id) + 1)[:-1]
    texts = [decoder.decode(p[:-1].tolist(), skip_special_tokens=False) for p in parts]
    assert sorted(texts) == sorted(DOCS)
    assert documents == len(DOCS) and nbytes == sum(len(d.encode()) for d in DOCS)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("notes.txt", "text"),
        ("README", "text"),
        ("page.html", "text"),
        ("notes.txt.gz", "text"),
        ("a.jsonl", "jsonl"),
        ("A.JSONL", "jsonl"),
        ("a.json", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json.gz", "jsonl"),
        ("a.jsonl.gzip", "jsonl"),
        ("a.ndjson.zst", "jsonl"),
        ("a.jsonl.zstd", "jsonl"),
        ("rows.parquet", "parquet"),
        ("ids.npy", "npy"),
        ("ids.bin", "bin"),
    ],
)
def test_auto_detects_the_format_by_extension(filename: str, expected: str) -> None:
    assert detect_format(Path("/data") / filename).name == expected
    assert detect_format(Path(filename), "auto").name == expected
    assert detect_format(Path(filename), "parquet").name == "parquet"  # a declared format wins


def test_auto_detects_compression_by_magic_bytes(tmp_path: Path) -> None:
    doc = (CORPUS / "bible" / "ruth_01.txt").read_text()
    record = (json.dumps({"text": doc}) + "\n").encode()
    (tmp_path / "a_gzip.jsonl").write_bytes(gzip.compress(record))  # no .gz in the name
    (tmp_path / "b_zstd.txt").write_bytes(zstandard.ZstdCompressor().compress(doc.encode()))
    (tmp_path / "c_plain.jsonl").write_bytes(record)
    (tmp_path / "d_tokens.npy").write_bytes(b"\x1f\x8b" + bytes(30))  # not a compressible format
    files = resolve_sources(DomainSpec(name="m", paths=[str(tmp_path / "[abc]_*")]))
    assert [(f.path.name, f.format, f.compression) for f in files] == [
        ("a_gzip.jsonl", "jsonl", "gzip"),
        ("b_zstd.txt", "text", "zstd"),
        ("c_plain.jsonl", "jsonl", ""),
    ]
    for source in files:
        assert joined(iter_file_pieces("m", source, "text")) == [doc]
    (token_file,) = resolve_sources(DomainSpec(name="t", paths=[str(tmp_path / "d_tokens.npy")]))
    assert (token_file.format, token_file.compression) == ("npy", "")


def test_unknown_format_names_the_valid_ones(tmp_path: Path) -> None:
    assert FORMAT_NAMES[0] == "auto"
    assert set(FORMAT_NAMES) >= {"auto", "text", "jsonl", "parquet", "npy", "bin"}
    valid = ", ".join(FORMAT_NAMES)
    with pytest.raises(DataError, match=f"unknown data format 'csv'; valid formats: {valid} "):
        get_format("csv")
    with pytest.raises(DataError, match="unknown data format 'csv'; valid formats: auto, text"):
        detect_format(tmp_path / "a.csv", "csv")
    path = tmp_path / "a.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match="unknown data format 'csv'"):
        list(iter_file_pieces("d", SourceFile(path, "csv"), "text"))
    with pytest.raises(ValueError, match=f"unknown data format 'xml'; valid formats: {valid}"):
        check_format_settings("xml", None)
    with pytest.raises(ValueError, match=f"unknown data format 'CSV'; valid formats: {valid}"):
        check_format_name("CSV")
    assert [check_format_name(name) for name in FORMAT_NAMES] == list(FORMAT_NAMES)


@pytest.mark.parametrize("fmt", registered_formats(), ids=lambda f: f.name)
def test_registered_formats_implement_every_hook(fmt: DataFormat) -> None:
    cls = type(fmt)
    assert isinstance(fmt, DataFormat) and not inspect.isabstract(cls)
    assert get_format(fmt.name) is fmt and fmt.name in FORMAT_NAMES
    for hook in ("pieces", "chunks", "text_bytes"):
        assert callable(getattr(fmt, hook)) and not getattr(
            getattr(cls, hook), "__isabstractmethod__", False
        )
    assert isinstance(fmt.extensions, tuple)
    for extension in fmt.extensions:
        assert extension.startswith(".") and extension == extension.lower()
        assert detect_format(Path("file" + extension)) is fmt  # no two formats claim one
    for flag in (fmt.compressible, fmt.pretokenized, fmt.needs_dtype):
        assert isinstance(flag, bool)
    # the exporter hook: a Hugging Face builder for text, none for token ids
    if fmt.pretokenized:
        assert fmt.hf_builder is None and not fmt.compressible
    else:
        assert isinstance(fmt.hf_builder, str) and fmt.hf_builder and not fmt.needs_dtype
    # the spec's rules follow the hooks
    if fmt.pretokenized:
        check_format_settings(fmt.name, "uint32")
    else:
        with pytest.raises(ValueError, match="dtype is only used with pre-tokenized formats"):
            check_format_settings(fmt.name, "uint16")
    if fmt.needs_dtype:
        with pytest.raises(ValueError, match=f"format '{fmt.name}' needs dtype"):
            check_format_settings(fmt.name, None)
    else:
        check_format_settings(fmt.name, None)
    check_format_settings("auto", None)


def test_registry_imports_no_format_library() -> None:
    code = (
        "import sys; from mixopt.data.formats import FORMAT_NAMES, get_format; "
        "names = FORMAT_NAMES; "
        "cheap = {'numpy', 'pyarrow', 'zstandard', 'tokenizers'} & set(sys.modules); "
        "[get_format(n) for n in names[1:]]; "
        "used = {'pyarrow', 'zstandard', 'tokenizers'} & set(sys.modules); "
        "print(sorted(cheap), sorted(used))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []"


# ------------------------------------------------------------------- a format from outside


class LineDocs(TextFormat):
    """A test format: every non-blank line of a ``.lines`` file is one document."""

    name = "lines"
    extensions = (".lines",)
    compressible = True
    hf_builder = "text"

    def pieces(
        self, domain: str, source: SourceFile, text_field: str, skipped: Skipped | None
    ) -> Iterator[Piece]:
        for _, raw in iter_lines(domain, source):
            if raw.strip():
                yield from split_document(raw.decode())


@pytest.fixture
def lines_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """:class:`LineDocs` registered with one registry entry (the registry's caches reset)."""
    formats._load.cache_clear()
    formats._by_extension.cache_clear()
    monkeypatch.setitem(formats._REGISTRY, "lines", f"{LineDocs.__module__}:LineDocs")
    yield
    monkeypatch.undo()
    formats._load.cache_clear()
    formats._by_extension.cache_clear()


@pytest.mark.usefixtures("lines_format")
def test_a_new_format_needs_only_its_class_and_one_registry_line(
    tokenizer: TokenizerInfo, tmp_path: Path
) -> None:
    path = tmp_path / "docs.lines.gz"
    path.write_bytes(gzip.compress("\n".join(DOCS[2:]).encode() + b"\n\n"))
    sources = scan_domain(DomainSpec(name="l", paths=[str(tmp_path)]))  # format: auto
    assert [(f.format, f.compression) for f in sources.files] == [("lines", "gzip")]
    assert joined(iter_pieces(sources)) == DOCS[2:]
    stream, documents, _ = encode_domain(sources, tokenizer)
    assert documents == 2 and int((stream == tokenizer.eot_id).sum()) == 2
