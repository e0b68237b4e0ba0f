"""The data stage: domains' files → a tokenizer → flat train/validation token shards + manifest.

    manifest = prepare_data(spec)            # cached by content; re-runs reuse everything
    manifest.natural_distribution()          # each domain's share of train tokens
    manifest.domains["code"].tokens("val")   # a read-only memory map of token ids

Reading: ``formats`` (the data-format registry: one module per format with its reader, encoder
and exporter hooks), ``sources`` (paths, globs and directories → files with a format), ``hashing``
(content hashes, the digest cache), ``compression`` (gzip/zstd streams), ``documents`` (pieces of
documents, bad records) and ``readers`` (a domain's documents through its formats). Tokenizing:
``tokenizer``, ``chunks`` and ``encode`` (chunks encoded in worker processes), ``docindex`` (the
per-document index), ``split`` (train/validation), ``shard_writer`` and ``shards`` (the cache),
``manifest`` and ``prepare``. What the search builds on the data: ``caps`` (repetition caps from
the target budget), ``hierarchy`` (groups searched with fixed within-group shares), ``versions``
(per-domain data versions and stale trials) and ``cluster`` (domains from unlabeled text).

Importing this package is cheap (its names load on first use, so the spec can read the format
registry without numpy); ``tokenizers``, ``pyarrow``, ``zstandard`` and scikit-learn are imported
when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mixopt.data.manifest import DataManifest, DomainShards
    from mixopt.data.prepare import prepare_data

_LAZY = {
    "DataManifest": "mixopt.data.manifest",
    "DomainShards": "mixopt.data.manifest",
    "prepare_data": "mixopt.data.prepare",
}

__all__ = ["DataManifest", "DomainShards", "prepare_data"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixopt.data' has no attribute {name!r}")
