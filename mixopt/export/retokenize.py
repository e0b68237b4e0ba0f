"""A team's tokenizer, loaded from local files only, and each domain re-measured under it.

``--tokenizer`` takes a ``tokenizer.json``, a folder holding one, or a name or folder that
Hugging Face ``transformers`` can load *from its local cache* (``local_files_only``, with the hub
offline): mixopt never downloads a tokenizer. A domain is re-measured on its own text: its
documents are decoded from mixopt's token files (train and held-out, so the whole domain) with
the job's tokenizer, then encoded with the team's, counting one end-of-text token per document
as mixopt does for its own. Domains larger than ``sample_tokens`` are measured on evenly spaced
runs of whole documents (the measure says which).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt.errors import MixoptError
from mixopt.export.units import DomainMeasure

if TYPE_CHECKING:
    from mixopt.data.manifest import DataManifest

SAMPLE_TOKENS = 4_000_000
"""Tokens of mixopt's tokenizer decoded per domain at most (beyond that, a sample)."""
_WINDOWS = 64
_BATCH = 256


@dataclass(frozen=True)
class TokenizerInfo:
    """Which tokenizer a share was measured with: as given, its content hash and vocabulary."""

    name: str
    hash: str
    vocab_size: int

    def describe(self) -> str:
        return f"{self.name} (sha256 {self.hash[:12]}, vocab {self.vocab_size})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash, "vocab_size": self.vocab_size}


@dataclass(frozen=True)
class Measured:
    """A domain re-measured under a tokenizer; ``fraction`` of its tokens were read."""

    measure: DomainMeasure
    fraction: float


Encode = Callable[[list[str]], list[int]]
"""Texts → their token counts (without special tokens)."""


def load_tokenizer(name_or_path: str) -> tuple[TokenizerInfo, Encode]:
    """The tokenizer named by ``name_or_path`` (see the module docstring) and a counter."""
    path = Path(name_or_path).expanduser()
    file = path / "tokenizer.json" if path.is_dir() else path
    if file.is_file():
        from mixopt.data.tokenizer import read_tokenizer

        tokenizer = read_tokenizer(file)
        with file.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        vocab = max(tokenizer.get_vocab(with_added_tokens=True).values()) + 1
        info = TokenizerInfo(str(file.resolve()), digest, vocab)

        def encode(texts: list[str]) -> list[int]:
            return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]

        return info, encode
    return _load_transformers(name_or_path)


def _load_transformers(name: str) -> tuple[TokenizerInfo, Encode]:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MixoptError(
            f"tokenizer {name!r}: not a tokenizer.json or a folder with one; loading it by name "
            "needs the transformers package (pip install 'mixopt[frameworks]')"
        ) from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the hub from an export
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as error:  # transformers raises OSError/ValueError/... for a missing model
        raise MixoptError(
            f"tokenizer {name!r}: not found locally (mixopt never downloads; give a "
            f"tokenizer.json, a folder with one, or a name already in the Hugging Face cache): "
            f"{str(error).splitlines()[0][:300]}"
        ) from None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    content = (
        backend.to_str()
        if backend is not None
        else "\n".join(f"{t}\t{i}" for t, i in sorted(tokenizer.get_vocab().items()))
    )
    info = TokenizerInfo(name, hashlib.sha256(content.encode()).hexdigest(), len(tokenizer))

    def encode(texts: list[str]) -> list[int]:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(row) for row in ids]

    return info, encode


def remeasure(
    manifest: DataManifest, encode: Encode, *, sample_tokens: int = SAMPLE_TOKENS
) -> dict[str, Measured]:
    """Every domain of ``manifest`` measured under ``encode``'s tokenizer."""
    from mixopt.data.tokenizer import read_tokenizer

    decoder = read_tokenizer(Path(manifest.tokenizer_path))
    out = {}
    for name, shards in manifest.domains.items():
        tokens = bytes_ = documents = read = 0
        total = shards.train_tokens + shards.val_tokens
        budget = max(1, sample_tokens * shards.train_tokens // max(total, 1))
        for path, size in ((shards.train_path, budget), (shards.val_path, sample_tokens - budget)):
            tokens_file = open_tokens(name, path, shards.dtype, "--tokenizer re-measures")
            for batch in batches(iter_documents(tokens_file, manifest.eot_id, size)):
                texts = decoder.decode_batch([d.tolist() for d in batch], skip_special_tokens=True)
                tokens += sum(encode(texts)) + len(texts)  # + one end-of-text per document
                bytes_ += sum(len(t.encode()) for t in texts)
                documents += len(texts)
                read += sum(len(d) + 1 for d in batch)
        if documents == 0:
            raise MixoptError(f"domain {name!r}: no documents in its token files to measure")
        out[name] = Measured(DomainMeasure(tokens, bytes_, documents), min(1.0, read / total))
    return out


def open_tokens(domain: str, path: str | None, dtype: str, why: str) -> np.ndarray:
    """A domain's token file as a read-only memory map (``why``: what needs it, for the error
    when it is gone)."""
    file = Path(path or "")
    if path is None or not file.is_file():
        raise MixoptError(
            f"domain {domain!r}: token file {file} is missing (the data cache was moved or "
            f"cleaned); {why} the domains from it: run the job's data stage again first"
        )
    if file.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(file, dtype=dtype, mode="r")


def iter_documents(tokens: np.ndarray, eot: int, budget: int) -> Iterator[np.ndarray]:
    """Whole documents (without their end-of-text), all of them when the file fits ``budget``
    tokens, else evenly spaced runs of them adding up to about ``budget``."""
    n = len(tokens)
    if n == 0 or budget <= 0:
        return
    if n <= budget:
        spans = [(0, n)]
    else:
        step, size = n // _WINDOWS, max(1, budget // _WINDOWS)
        spans = [(k * step, k * step + size) for k in range(_WINDOWS)]
    done = 0  # where the previous window ended (windows never overlap)
    for start, stop in spans:
        if start > 0:  # begin at the first document starting in the window
            start = _next_start(tokens, start - 1, eot)
        start = max(start, done)
        if start >= stop:
            continue
        stop = done = _next_start(tokens, stop - 1, eot)  # finish the document the window cuts
        chunk = np.asarray(tokens[start:stop])
        ends = np.flatnonzero(chunk == eot)
        begin = 0
        for end in ends.tolist():
            yield chunk[begin:end]
            begin = end + 1
        if begin < len(chunk):
            yield chunk[begin:]  # the file's last document, without an end-of-text


def _next_start(tokens: np.ndarray, position: int, eot: int) -> int:
    """The index just after the first end-of-text at or after ``position`` (or the end)."""
    n, block = len(tokens), 1 << 16
    while position < n:
        chunk = np.asarray(tokens[position : position + block])
        hits = np.flatnonzero(chunk == eot)
        if len(hits):
            return position + int(hits[0]) + 1
        position += block
    return n


def batches(documents: Iterator[np.ndarray]) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for document in documents:
        batch.append(document)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
