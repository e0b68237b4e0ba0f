"""The data stage: domains' files → a tokenizer → flat train/validation token shards + manifest.

    manifest = prepare_data(spec)            # cached by content; re-runs reuse everything
    manifest.natural_distribution()          # each domain's share of train tokens
    manifest.domains["code"].tokens("val")   # a read-only memory map of token ids

Importing this package is cheap: ``tokenizers`` and ``pyarrow`` are imported when used.
"""

from mixopt.data.manifest import DataManifest, DomainShards
from mixopt.data.prepare import prepare_data

__all__ = ["DataManifest", "DomainShards", "prepare_data"]
