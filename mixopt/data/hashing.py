"""Content hashes of a domain's files, and the digest cache that spares re-reading them.

The content hash covers file contents, their formats and the reading settings, never paths, so
a moved corpus keeps its cache entries. :class:`DigestCache` remembers file digests by (size,
mtime) so an unchanged corpus of many GB is not re-read on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import DataError

if TYPE_CHECKING:
    from mixopt.data.sources import SourceFile

_HASH_VERSION = b"mixopt-domain-content-v1\0"


def content_hash(
    files: list[SourceFile],
    text_field: str,
    *,
    digests: DigestCache | None = None,
    dtype: str | None = None,
) -> str:
    """sha256 over the files' contents (in order) and the reading settings, not their paths."""
    digest = hashlib.sha256(_HASH_VERSION)
    settings: dict[str, Any] = {"text_field": text_field}
    if dtype is not None:
        settings["dtype"] = dtype
    digest.update(json.dumps(settings).encode())
    for source in files:
        digest.update(source.format.encode() + b"\0")
        digest.update(digests.digest(source.path) if digests else file_digest(source.path))
    return digest.hexdigest()


def file_digest(path: Path) -> bytes:
    """sha256 of a file's bytes, read in chunks."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").digest()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None


class DigestCache:
    """File digests remembered by (path, device, inode, size, mtime) under ``<cache>/digests``.

    Like git's index: a file whose size and modification time are unchanged is not re-read. A
    digest is only remembered for a file last modified more than :attr:`SETTLE_S` seconds before
    it was read, so a write racing with the read is never trusted. Entries are tiny JSON files
    written atomically; a damaged one is ignored.
    """

    SETTLE_S = 2.0

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.hits = 0
        self.misses = 0

    def digest(self, path: Path) -> bytes:
        try:
            stat = path.stat()
        except OSError as error:
            raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
        ident = f"{path.resolve()}\0{stat.st_dev}\0{stat.st_ino}"
        entry = self.directory / hashlib.sha256(ident.encode()).hexdigest()[:32]
        stamp = [stat.st_size, stat.st_mtime_ns]
        try:
            saved = json.loads(entry.read_text())
            if saved["stamp"] == stamp:
                self.hits += 1
                return bytes.fromhex(saved["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.misses += 1
        value = file_digest(path)
        if time.time_ns() - stat.st_mtime_ns > self.SETTLE_S * 1e9:
            self._save(entry, {"stamp": stamp, "sha256": value.hex(), "path": str(path)})
        return value

    def _save(self, entry: Path, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, entry)
        except OSError:
            pass  # the cache is an optimisation: a read-only cache folder only costs time
