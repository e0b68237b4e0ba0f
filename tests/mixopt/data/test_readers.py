"""Resolving paths, reading each format, piece cutting and content hashing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixopt.data.documents import find_cut, split_document
from mixopt.data.readers import iter_file_pieces, iter_pieces
from mixopt.data.sources import DomainSources, SourceFile, resolve_sources, scan_domain
from mixopt.errors import DataError
from mixopt.spec import DomainSpec


def documents(domain: DomainSpec) -> list[str]:
    """Whole documents (pieces joined) of a domain."""
    sources = scan_domain(domain)
    docs: list[str] = []
    for piece in iter_pieces(sources):
        if piece.starts_doc:
            docs.append("")
        docs[-1] += piece.text
    return docs


def test_resolve_directory_glob_and_file_in_order(corpus: Path, tmp_path: Path) -> None:
    nested = tmp_path / "d"
    (nested / "sub").mkdir(parents=True)
    for name in ("b.txt", "a.txt", "sub/c.txt", ".hidden.txt"):
        (nested / name).write_text(name)
    files = resolve_sources(DomainSpec(name="d", paths=[str(nested)]))
    assert [f.path.name for f in files] == ["a.txt", "b.txt", "c.txt"]
    globbed = resolve_sources(DomainSpec(name="g", paths=[str(corpus / "bible" / "p*.txt")]))
    assert [f.path.name for f in globbed] == ["psalms_023.txt", "psalms_121.txt"]
    both = resolve_sources(
        DomainSpec(name="m", paths=[str(nested / "a.txt"), str(nested), str(corpus / "code")])
    )
    assert [f.path.name for f in both] == ["a.txt", "b.txt", "c.txt", "stdlib_excerpts.jsonl"]
    assert [f.format for f in both] == ["text", "text", "text", "jsonl"]


def test_declared_format_overrides_extension(tmp_path: Path) -> None:
    path = tmp_path / "records.txt"
    path.write_text(json.dumps({"body": "hello"}) + "\n")
    domain = DomainSpec(name="x", paths=[str(path)], format="jsonl", text_field="body")
    assert documents(domain) == ["hello"]


def test_text_files_are_one_document_each(corpus: Path) -> None:
    docs = documents(DomainSpec(name="bible", paths=[str(corpus / "bible")]))
    assert len(docs) == 6
    genesis = (corpus / "bible" / "genesis_01.txt").read_text()
    assert genesis in docs


def test_jsonl_records_and_skipped_nulls(corpus: Path, tmp_path: Path) -> None:
    docs = documents(DomainSpec(name="code", paths=[str(corpus / "code")]))
    assert len(docs) == 12 and docs[0].startswith('"""Bisection algorithms.')
    path = tmp_path / "a.jsonl"
    lines = [{"text": "one"}, {"text": None}, {"text": ""}, {"text": "two", "meta": 1}]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    assert documents(DomainSpec(name="a", paths=[str(path)])) == ["one", "two"]


def test_parquet_column(corpus: Path) -> None:
    docs = documents(DomainSpec(name="dictionary", paths=[str(corpus / "dictionary")]))
    assert len(docs) == 37 and docs[0].startswith("Lantern")
    with pytest.raises(DataError, match=r"no column 'body' \(its columns: headword, text\)"):
        documents(
            DomainSpec(name="dictionary", paths=[str(corpus / "dictionary")], text_field="body")
        )


def test_long_documents_are_cut_at_safe_newlines() -> None:
    text = "".join(f"line {i}\n  indented\n\nblock {i}\n" for i in range(2000))
    pieces = list(split_document(text, max_chars=1000))
    assert len(pieces) > 10
    assert "".join(p.text for p in pieces) == text
    assert pieces[0].starts_doc and not any(p.starts_doc for p in pieces[1:])
    assert pieces[-1].ends_doc and not any(p.ends_doc for p in pieces[:-1])
    for piece in pieces[:-1]:
        assert piece.text.endswith("\n") and not piece.text[-2].isspace()
    assert find_cut("a\n b", 0, 1) is None
    assert find_cut("no newline at all", 0, 5) is None


def test_big_text_file_streams_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mixopt.data.documents.PIECE_CHARS", 500)
    monkeypatch.setattr("mixopt.data.compression.READ_BYTES", 256)
    text = "\ufeff" + "".join(f"Verse {i}: and it was so. été\n" for i in range(400))
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    pieces = list(iter_file_pieces("big", SourceFile(path, "text"), "text"))
    assert len(pieces) > 5
    assert "".join(p.text for p in pieces) == text.removeprefix("\ufeff")
    assert all(len(p.text) < 1000 for p in pieces)


def test_content_hash_ignores_location_but_not_content_or_settings(
    corpus: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "moved"
    shutil.copytree(corpus / "bible", copy)
    original = scan_domain(DomainSpec(name="a", paths=[str(corpus / "bible")]))
    moved = scan_domain(DomainSpec(name="b", paths=[str(copy)]))
    assert original.content_hash == moved.content_hash
    (copy / "ruth_01.txt").write_text("changed")
    assert scan_domain(DomainSpec(name="b", paths=[str(copy)])).content_hash != moved.content_hash
    other_field = scan_domain(DomainSpec(name="a", paths=[str(corpus / "bible")], text_field="x"))
    assert other_field.content_hash != original.content_hash


def write_parquet(path: Path, **columns: list[object]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"text": "ok"}\n{"text": "broken\n', r"bad\.jsonl:2: malformed JSON"),
        (
            "nofield.jsonl",
            b'{"text": "ok"}\n{"body": "x"}\n',
            r"nofield\.jsonl:2: .*no field 'text'",
        ),
        ("list.jsonl", b'["text"]\n', r"list\.jsonl:1: expected a JSON object"),
        ("number.jsonl", b'{"text": 3}\n', r"number\.jsonl:1: field 'text' is int"),
        ("latin1.jsonl", '{"text": "café"}\n'.encode("latin-1"), r"latin1\.jsonl:1: not UTF-8"),
        ("empty.jsonl", b"\n\n", r"empty\.jsonl: empty file"),
        ("latin1.txt", "café au lait".encode("latin-1"), r"latin1\.txt: not UTF-8 text"),
        ("empty.txt", b"", r"empty\.txt: empty file"),
        ("blank.txt", b"  \n\n\t", r"blank\.txt: empty file"),
        ("corrupt.parquet", b"PAR1 this is not parquet PAR1", r"corrupt\.parquet: not a readable"),
    ],
)
def test_bad_files_name_domain_file_and_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"domain 'web': .*" + message):
        documents(DomainSpec(name="web", paths=[str(path)]))


def test_bad_parquet_columns(tmp_path: Path) -> None:
    numbers = write_parquet(tmp_path / "numbers.parquet", text=[1, 2])
    with pytest.raises(DataError, match=r"numbers\.parquet: column 'text' is int64"):
        documents(DomainSpec(name="p", paths=[str(numbers)]))
    empty = write_parquet(tmp_path / "empty.parquet", text=pa.array([], type=pa.string()))
    with pytest.raises(DataError, match=r"empty\.parquet: empty file"):
        documents(DomainSpec(name="p", paths=[str(empty)]))


@pytest.mark.parametrize(
    ("entry", "message"),
    [("missing.txt", "missing.txt: no such file or directory"), ("*.nothing", "matches no files")],
)
def test_missing_paths(tmp_path: Path, entry: str, message: str) -> None:
    with pytest.raises(DataError, match=f"domain 'web': .*{message}"):
        resolve_sources(DomainSpec(name="web", paths=[str(tmp_path / entry)]))
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DataError, match="contains no files"):
        resolve_sources(DomainSpec(name="web", paths=[str(tmp_path / "emptydir")]))


def test_sources_dataclass_size(corpus: Path) -> None:
    sources = scan_domain(DomainSpec(name="bible", paths=[str(corpus / "bible")]))
    assert isinstance(sources, DomainSources)
    assert sources.size_bytes == sum(p.stat().st_size for p in (corpus / "bible").iterdir())
