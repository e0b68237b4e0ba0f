"""Build the demo corpus: six small real-text domains from what is installed on this machine.

    python experiments/demo/build_corpus.py [--out experiments/demo/corpus] [--max-mb-per-domain 3]
    python experiments/demo/build_corpus.py --debian-packages   # what to apt-get install

Writes ``<out>/<domain>.jsonl`` (one ``{"text": ...}`` record per document) for:

- ``code``: the Python standard library's ``.py`` files (no tests, no site-packages, no huge
  files), one document per file; always available.
- ``docs``: Python's reST documentation sources (Debian ``python3.11-doc``), one per file.
- ``bible``: the King James Bible (Debian ``bible-kjv``, via the ``bible`` command), one
  document per chapter.
- ``dictionary``: GCIDE (Debian ``dict-gcide``), documents of 40 consecutive entries.
- ``computing``: FOLDOC (Debian ``dict-foldoc``), documents of 4 consecutive entries.
- ``fortunes``: the ``fortune`` databases (Debian ``fortunes``, without ``off/``), one document
  per fortune.

Without the Debian packages (no apt, no root, another OS) each of those domains falls back to text
every Python installation has or this repository ships, and the output says so per domain:

- ``docs``: Python's built-in help topics (``pydoc_data``) and the standard library's module
  docstrings;
- ``bible``: the six KJV chapters shipped in ``tests/assets/corpus/bible``;
- ``dictionary``: the GCIDE entries shipped in ``tests/assets/corpus/dictionary``;
- ``computing``: the descriptions of the Python packages installed here (technical prose);
- ``fortunes``: the license texts of the Python packages installed here (deduplicated).

The cap is on each file's size: a larger domain keeps a seeded random subset of its documents, in
source order, so the output is deterministic. A source missing without a fallback skips its
domain with a message naming the missing path; fewer than two domains built is an error (exit
status 1). Files are replaced atomically.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent / "corpus"
SHIPPED = Path(__file__).resolve().parents[2] / "tests" / "assets" / "corpus"
SEED = 0

# the Debian packages the domains come from (scripts/setup.sh and the tests install these)
DEBIAN_PACKAGES = ("python3.11-doc", "bible-kjv", "dict-gcide", "dict-foldoc", "fortunes")

DOCS_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
DICTD = Path("/usr/share/dictd")
FORTUNES = Path("/usr/share/games/fortunes")

_CODE_SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
)
_CODE_MAX_BYTES = 200_000
_LICENSE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE)", re.IGNORECASE)
_VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


class SourceMissing(Exception):
    """A domain's source is not installed; the message names the missing path."""


# -------------------------------------------------------------------------------- sources


def code_documents() -> Iterator[str]:
    """Standard-library Python files, one document each."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if not stdlib.is_dir():
        raise SourceMissing(f"Python standard library not found at {stdlib}")
    for path in sorted(stdlib.rglob("*.py")):
        parts = path.relative_to(stdlib).parts
        if _CODE_SKIP_DIRS.intersection(parts) or path.stat().st_size > _CODE_MAX_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if text.strip():
            yield text


def docs_documents() -> Iterator[str]:
    """Python documentation reST sources, one document per file."""
    _require(DOCS_SOURCES, "python3.11-doc")
    for path in sorted(DOCS_SOURCES.rglob("*.rst.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            yield text


def bible_documents() -> Iterator[str]:
    """The KJV, one document per chapter: a ``<book> <chapter>`` line, then numbered verses."""
    command = shutil.which("bible")
    if command is None:
        raise SourceMissing(
            "the 'bible' command (Debian bible-kjv) is not on PATH (/usr/bin/bible)"
        )
    output = subprocess.run(
        [command, "-f", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True
    ).stdout
    yield from _chapters(output.splitlines())


def _chapters(lines: Iterable[str]) -> Iterator[str]:
    """Group ``Ge1:1 In the beginning…`` lines into chapters."""
    chapter: tuple[str, str] | None = None
    verses: list[str] = []
    for line in lines:
        match = _VERSE.match(line)
        if match is None:
            if verses and line.strip():
                verses[-1] += " " + line.strip()
            continue
        book, number, verse, text = match.groups()
        if (book, number) != chapter:
            if chapter is not None:
                yield f"{chapter[0]} {chapter[1]}\n" + "\n".join(verses)
            chapter, verses = (book, number), []
        verses.append(f"{verse} {text}")
    if chapter is not None:
        yield f"{chapter[0]} {chapter[1]}\n" + "\n".join(verses)


def dictionary_documents() -> Iterator[str]:
    """GCIDE, in documents of 40 consecutive entries."""
    yield from _grouped(_dictd_entries("gcide", "dict-gcide"), 40)


def computing_documents() -> Iterator[str]:
    """FOLDOC, in documents of 4 consecutive entries."""
    yield from _grouped(_dictd_entries("foldoc", "dict-foldoc"), 4)


def _dictd_entries(name: str, package: str) -> Iterator[str]:
    """The entries of a dictd database in file order, via its index, without ``00-`` metadata."""
    data_path, index_path = DICTD / f"{name}.dict.dz", DICTD / f"{name}.index"
    _require(data_path, package)
    _require(index_path, package)
    data = gzip.decompress(data_path.read_bytes())
    metadata: set[tuple[int, int]] = set()
    spans: set[tuple[int, int]] = set()
    for line in index_path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        span = (_dictd_number(fields[1]), _dictd_number(fields[2]))
        (metadata if fields[0].startswith("00-") else spans).add(span)
    for start, length in sorted(spans - metadata):
        text = data[start : start + length].decode("utf-8", errors="replace").strip()
        if text:
            yield text


def _dictd_number(text: str) -> int:
    """dictd index numbers are base64 digits, most significant first."""
    value = 0
    for char in text:
        value = value * 64 + _B64.index(char)
    return value


def _grouped(entries: Iterable[str], size: int) -> Iterator[str]:
    group: list[str] = []
    for entry in entries:
        group.append(entry)
        if len(group) == size:
            yield "\n\n".join(group)
            group = []
    if group:
        yield "\n\n".join(group)


def fortune_documents() -> Iterator[str]:
    """Fortunes, one document each (files separated by ``%`` lines; ``off/`` is not read)."""
    _require(FORTUNES, "fortunes")
    for path in sorted(FORTUNES.iterdir()):
        if path.is_symlink() or not path.is_file() or path.suffix in (".dat", ".u8"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for fortune in re.split(r"^%$", text, flags=re.MULTILINE):
            if fortune.strip():
                yield fortune.strip("\n")


def _require(path: Path, package: str) -> None:
    if not path.exists():
        raise SourceMissing(f"{path} not found (Debian package {package} not installed?)")


# ------------------------------------------------------------------ fallbacks (no Debian)


def help_documents() -> Iterator[str]:
    """Python's help topics (``pydoc_data``), then the standard library's module docstrings."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise SourceMissing("pydoc_data (Python's help topics) is not in this Python") from None
    for name in sorted(topics):
        if topics[name].strip():
            yield topics[name].strip("\n")
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if _CODE_SKIP_DIRS.intersection(path.relative_to(stdlib).parts):
            continue
        try:
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        if docstring and len(docstring) >= 200:
            yield docstring


def shipped_bible_documents() -> Iterator[str]:
    """The KJV chapters shipped with the tests, one document each."""
    files = sorted((SHIPPED / "bible").glob("*.txt"))
    if not files:
        raise SourceMissing(f"no chapters in {SHIPPED / 'bible'}")
    for path in files:
        yield path.read_text(encoding="utf-8").strip("\n")


def shipped_dictionary_documents() -> Iterator[str]:
    """The GCIDE entries shipped with the tests (a Parquet file), one document each."""
    files = sorted((SHIPPED / "dictionary").glob("*.parquet"))
    if not files:
        raise SourceMissing(f"no Parquet file in {SHIPPED / 'dictionary'}")
    import pyarrow.parquet as pq

    for path in files:
        for text in pq.read_table(path, columns=["text"]).column("text").to_pylist():
            if text and text.strip():
                yield text


def _installed_distributions() -> list[metadata.Distribution]:
    """The packages installed in this interpreter's environment, by name: its site-packages
    folders themselves, whatever ``sys.path`` holds at the time."""
    folders = sorted({sysconfig.get_paths()[key] for key in ("purelib", "platlib")})
    found = metadata.distributions(path=folders)
    return sorted(found, key=lambda d: (d.metadata["Name"] or "").lower())


def package_description_documents() -> Iterator[str]:
    """The long descriptions of the installed Python packages, one document each; where there
    are none (an environment whose packages carry no descriptions), the standard library's
    long function and class docstrings."""
    seen = set()
    for dist in _installed_distributions():
        text = (dist.metadata.get_payload() or "").strip()  # type: ignore[attr-defined]
        if len(text) >= 200 and text not in seen:
            seen.add(text)
            yield text
    if not seen:
        yield from _stdlib_definition_docstrings()


def _stdlib_definition_docstrings() -> Iterator[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if _CODE_SKIP_DIRS.intersection(path.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                docstring = ast.get_docstring(node)
                if docstring and len(docstring) >= 200:
                    yield docstring


def package_license_documents() -> Iterator[str]:
    """The license texts of the installed Python packages, each distinct text once."""
    seen = set()
    for dist in _installed_distributions():
        for file in dist.files or []:
            if not _LICENSE.search(file.name):
                continue
            try:
                text = (file.read_text() or "").strip()
            except (OSError, UnicodeDecodeError):
                continue
            if len(text) >= 200 and text not in seen:
                seen.add(text)
                yield text


SOURCES: dict[str, Callable[[], Iterator[str]]] = {
    "code": code_documents,
    "docs": docs_documents,
    "bible": bible_documents,
    "dictionary": dictionary_documents,
    "computing": computing_documents,
    "fortunes": fortune_documents,
}


# what a domain is built from when its source is missing: (what it is, documents)
FALLBACKS: dict[str, tuple[str, Callable[[], Iterator[str]]]] = {
    "docs": ("Python's help topics and module docstrings", help_documents),
    "bible": ("the KJV chapters shipped in tests/assets/corpus/bible", shipped_bible_documents),
    "dictionary": (
        "the GCIDE entries shipped in tests/assets/corpus/dictionary",
        shipped_dictionary_documents,
    ),
    "computing": ("the installed Python packages' descriptions", package_description_documents),
    "fortunes": ("the installed Python packages' license texts", package_license_documents),
}


# ------------------------------------------------------------------------------- building


def select(records: list[str], max_bytes: int, seed: int = SEED) -> list[str]:
    """All records if they fit, else a seeded random subset that fits, in source order."""
    sizes = [len(r.encode()) + 1 for r in records]
    if sum(sizes) <= max_bytes:
        return records
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    chosen, total = [], 0
    for i in order:
        if total + sizes[i] <= max_bytes:
            chosen.append(i)
            total += sizes[i]
    return [records[i] for i in sorted(chosen)]


def write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write lines to a temporary file, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in lines)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def build_domain(name: str, out_dir: Path, max_mb: float) -> dict[str, Any]:
    """Extract, cap and write one domain, from its fallback when its source is missing (then
    ``"fallback"`` says from what and why); ``{"skipped": reason}`` when neither is there."""
    fallback = None
    try:
        records = [json.dumps({"text": doc}, ensure_ascii=False) for doc in SOURCES[name]()]
    except SourceMissing as missing:
        if name not in FALLBACKS:
            return {"skipped": str(missing)}
        what, documents = FALLBACKS[name]
        try:
            records = [json.dumps({"text": doc}, ensure_ascii=False) for doc in documents()]
        except SourceMissing as also:
            return {"skipped": f"{missing}; fallback: {also}"}
        fallback = f"{what} ({missing})"
    if not records:
        return {"skipped": f"no documents found for {name}"}
    chosen = select(records, int(max_mb * 1e6))
    path = out_dir / f"{name}.jsonl"
    write_lines(path, chosen)
    result = {"path": str(path), "bytes": path.stat().st_size, "documents": len(chosen)}
    return {**result, "fallback": fallback} if fallback else result


def build_corpus(out_dir: Path, max_mb: float) -> dict[str, dict[str, Any]]:
    """Build every domain into ``out_dir``; one result (or skip reason) per domain."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: build_domain(name, out_dir, max_mb) for name in SOURCES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--max-mb-per-domain", type=float, default=3.0, help="cap per domain")
    parser.add_argument(
        "--debian-packages", action="store_true", help="print the source packages, one a line"
    )
    args = parser.parse_args(argv)
    if args.debian_packages:
        print("\n".join(DEBIAN_PACKAGES))
        return 0
    results = build_corpus(args.out, args.max_mb_per_domain)
    built = {name: r for name, r in results.items() if "skipped" not in r}
    for name, result in results.items():
        if "skipped" in result:
            print(f"{name:<11} skipped: {result['skipped']}")
        else:
            megabytes = result["bytes"] / 1e6
            print(
                f"{name:<11} {megabytes:6.2f} MB  {result['documents']:>6} docs  {result['path']}"
            )
            if result.get("fallback"):
                print(f"{'':<11} built from {result['fallback']}")
    if len(built) < 2:
        print(f"only {len(built)} domain(s) could be built; need at least 2", file=sys.stderr)
        return 1
    stand_ins = [name for name, r in built.items() if r.get("fallback")]
    print(f"built {len(built)} domains in {args.out}")
    if stand_ins:
        print(
            f"{len(stand_ins)} of them ({', '.join(stand_ins)}) from stand-in text: install the "
            f"Debian packages ({' '.join(DEBIAN_PACKAGES)}) for the demo's own corpus"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
