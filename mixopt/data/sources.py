"""A domain's source files: its ``paths`` resolved to files, each with a format, and hashed.

A domain's ``paths`` are files, directories (read recursively in sorted order, hidden entries
skipped) or glob patterns. Each file's format is the declared one or, for ``auto``, the one its
extension names (:mod:`mixopt.data.formats`); a compressible format's gzip/zstd compression is
found by magic bytes. A domain is either all text or all token ids, and a format that needs
``dtype`` gets one. Every problem raises :class:`~mixopt.errors.DataError` naming the domain and
the path.

Where a job may read is checked here too, at read time: when ``$MIXOPT_READ_ROOTS`` is set (the
service sets it for its job processes, from its own settings, never from the spec), every file a
domain resolves to (symbolic links followed to their targets) must lie inside one of its data
roots and outside its private folders, or the domain fails. A link planted under a data root
after the spec was admitted thus cannot make a job read (and tokenize into the cache, where it
could be decoded) a file outside every data root.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mixopt.data.compression import detect_compression
from mixopt.data.formats import detect_format, get_format
from mixopt.data.hashing import DigestCache, content_hash
from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.spec.data import SourceSpec

_GLOB_CHARS = frozenset("*?[")
READ_ROOTS_ENV = "MIXOPT_READ_ROOTS"


def inside(path: Path, roots: tuple[Path, ...] | list[Path]) -> bool:
    """Whether ``path`` (resolved) is one of ``roots`` or lies under one."""
    return any(path == root or root in path.parents for root in roots)


@dataclass(frozen=True)
class ReadRoots:
    """Where data may be read from: inside one of ``allowed``, never inside ``denied``."""

    allowed: tuple[Path, ...]
    denied: tuple[Path, ...] = ()

    def permits(self, path: str | Path) -> bool:
        """Whether ``path``, with every symbolic link resolved, may be read."""
        real = Path(os.path.realpath(path))
        return inside(real, self.allowed) and not inside(real, self.denied)

    def to_env(self) -> str:
        allowed, denied = [str(p) for p in self.allowed], [str(p) for p in self.denied]
        return json.dumps({"allowed": allowed, "denied": denied})

    @classmethod
    def from_env(cls) -> ReadRoots | None:
        """The roots the service gave this process; None when reads are unrestricted."""
        text = os.environ.get(READ_ROOTS_ENV)
        if not text:
            return None
        try:
            data = json.loads(text)
            allowed = tuple(Path(p) for p in data["allowed"])
            denied = tuple(Path(p) for p in data.get("denied", []))
        except (ValueError, KeyError, TypeError):
            # a malformed restriction must not turn into no restriction
            raise DataError(f"${READ_ROOTS_ENV} is malformed; refusing to read data") from None
        if not allowed:
            raise DataError(f"${READ_ROOTS_ENV} names no data root; refusing to read data")
        return cls(allowed, denied)


@dataclass(frozen=True)
class SourceFile:
    """One file of a domain, its format (a registered format's name) and its compression
    (``""``, ``"gzip"`` or ``"zstd"``; compressible formats only)."""

    path: Path
    format: str
    compression: str = ""


@dataclass(frozen=True)
class DomainSources:
    """A domain's resolved files and their content hash."""

    name: str
    files: list[SourceFile]
    text_field: str
    content_hash: str
    dtype: str | None = None
    skip_bad_records: bool = False
    kind: str = "domain"  # or "eval set": how errors name it

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"

    @property
    def size_bytes(self) -> int:
        return sum(f.path.stat().st_size for f in self.files)

    @property
    def pretokenized(self) -> bool:
        """True when the domain's files are token ids, not text."""
        return bool(self.files) and get_format(self.files[0].format).pretokenized


def scan_domain(
    domain: SourceSpec,
    *,
    skip_bad_records: bool = False,
    digests: DigestCache | None = None,
) -> DomainSources:
    """Resolve a domain's (or an eval set's) paths to files and hash their contents.

    ``skip_bad_records`` is the job-wide default; the domain's own setting wins when given.
    """
    files = resolve_sources(domain)
    skip = domain.skip_bad_records if domain.skip_bad_records is not None else skip_bad_records
    return DomainSources(
        name=domain.name,
        files=files,
        text_field=domain.text_field,
        content_hash=content_hash(files, domain.text_field, digests=digests, dtype=domain.dtype),
        dtype=domain.dtype,
        skip_bad_records=skip,
        kind=domain.KIND,
    )


def resolve_sources(domain: SourceSpec) -> list[SourceFile]:
    """Every file named by the domain's paths, in order, without duplicates.

    A domain is either all text or all tokens (pre-tokenized formats): mixing them is an error,
    as is a file of a format that needs ``dtype`` (raw ``.bin``) without one.
    """
    roots = ReadRoots.from_env()
    seen: set[Path] = set()
    files: list[SourceFile] = []
    for entry in domain.paths:
        for path in _expand(domain.label, entry):
            if roots is not None and not roots.permits(path):
                raise DataError(
                    f"{domain.label}: {entry}: a file it names resolves outside the "
                    "service's data roots (a symbolic link?); it is not read"
                )
            if path not in seen:
                seen.add(path)
                fmt = detect_format(path, domain.format)
                compression = detect_compression(path) if fmt.compressible else ""
                files.append(SourceFile(path, fmt.name, compression))
    tokens = [f.path for f in files if get_format(f.format).pretokenized]
    if tokens and len(tokens) < len(files):
        text = next(f.path for f in files if not get_format(f.format).pretokenized)
        raise DataError(
            f"{domain.label}: mixes text files ({text}) and pre-tokenized files "
            f"({tokens[0]}); put them in separate {domain.KIND}s"
        )
    if domain.dtype is None:
        raw = [f.path for f in files if get_format(f.format).needs_dtype]
        if raw:
            raise DataError(
                f"{domain.label}: {raw[0]} holds raw token ids; set the {domain.KIND}'s dtype "
                "(uint16 or uint32) in the spec"
            )
    return files


def _expand(label: str, entry: str) -> list[Path]:
    path = Path(entry).expanduser()
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        files = _walk(path)
        if not files:
            raise DataError(f"{label}: directory {entry} contains no files")
        return files
    if _GLOB_CHARS.intersection(entry):
        return _expand_glob(label, entry)
    raise DataError(f"{label}: {entry}: no such file or directory")


def _expand_glob(label: str, pattern: str) -> list[Path]:
    files: list[Path] = []
    for match in sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True)):
        path = Path(match)
        files.extend([path.resolve()] if path.is_file() else _walk(path))
    if not files:
        raise DataError(f"{label}: pattern {pattern!r} matches no files")
    return files


def _walk(directory: Path) -> list[Path]:
    """Files under a directory, recursively, in sorted order, skipping hidden entries."""
    found = [
        p
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    return sorted(p.resolve() for p in found)
