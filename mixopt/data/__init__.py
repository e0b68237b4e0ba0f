"""The data stage: domains' files → a tokenizer → flat train/validation token shards + manifest.

    manifest = prepare_data(spec)            # cached by content; re-runs reuse everything
    manifest.natural_distribution()          # each domain's share of train tokens
    manifest.domains["code"].tokens("val")   # a read-only memory map of token ids

Modules: ``readers`` (files, globs, text/JSONL/Parquet, gzip/zstd, pre-tokenized ``.npy``/``.bin``,
content hashes and the digest cache), ``encode`` (chunks encoded in worker processes),
``shards`` (the token stream, split and cache), ``tokenizer``, ``manifest``, ``prepare``, and
what the search builds on the data: ``caps`` (repetition caps from the target budget),
``hierarchy`` (groups searched with fixed within-group shares), ``versions`` (per-domain data
versions and stale trials) and ``cluster`` (domains from unlabeled text).

Importing this package is cheap: ``tokenizers``, ``pyarrow``, ``zstandard`` and scikit-learn are
imported when used.
"""

from mixopt.data.manifest import DataManifest, DomainShards
from mixopt.data.prepare import prepare_data

__all__ = ["DataManifest", "DomainShards", "prepare_data"]
