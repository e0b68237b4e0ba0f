"""The tokenizer of a job: a byte-level BPE trained on a sample of every domain, or a user's file.

Training (``kind: bpe``) reads ``sample_bytes_per_domain`` bytes of each domain, spread evenly
through it (systematic sampling by byte position, so deterministic and not just the first files),
and trains a byte-level BPE with ``<|endoftext|>`` as its only special token. The result is cached
under ``<cache_dir>/tokenizers/<key>/tokenizer.json``; the key covers what the sample is drawn from
(every domain's content hash) and the settings, so a second run reuses the tokenizer without
reading the data again. A user's ``tokenizer.json`` (``kind: file``) must hold an end-of-text
token; the one used is logged.

``tokenizers`` is imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.data.documents import Piece
from mixopt.data.readers import estimate_text_bytes, iter_pieces
from mixopt.data.sources import DomainSources
from mixopt.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from mixopt.spec import TokenizerSpec

EOT_TOKEN = "<|endoftext|>"
_EOS_NAMES = (
    EOT_TOKEN,
    "<|end_of_text|>",
    "</s>",
    "<eos>",
    "<|eos|>",
    "[EOS]",
    "<|eot_id|>",
    "<|end|>",
    "<|im_end|>",
)
_EOS_LIKE = re.compile(r"eos|end.?of.?(text|sentence)", re.IGNORECASE)
_TRAINER_VERSION = "bpe-v1"


@dataclass(frozen=True)
class TokenizerInfo:
    """A ready tokenizer: its file, content hash, size and end-of-text token."""

    path: Path
    hash: str
    vocab_size: int
    eot_id: int
    eot_token: str

    def load(self) -> Tokenizer:
        """The tokenizer, set to encode special-token strings inside documents as plain text."""
        tokenizer = read_tokenizer(self.path)
        tokenizer.encode_special_tokens = True
        return tokenizer


def prepare_tokenizer(
    spec: TokenizerSpec,
    domains: Sequence[DomainSources],
    cache_dir: Path,
    log: Callable[[str], None],
) -> TokenizerInfo:
    """Load the user's tokenizer, or train (or reuse from the cache) a byte-level BPE."""
    if spec.kind == "file":
        assert spec.path is not None  # guaranteed by TokenizerSpec
        return load_tokenizer_file(Path(spec.path).expanduser(), log)
    key = tokenizer_key(spec.vocab_size, spec.sample_bytes_per_domain, domains)
    target = cache_dir / "tokenizers" / key
    if (target / "tokenizer.json").is_file():
        info = describe_tokenizer(target / "tokenizer.json")
        log(f"data: tokenizer reused from {target} (vocab {info.vocab_size})")
        return info
    started = time.perf_counter()
    texts = [
        text for domain in domains for text in sample_domain(domain, spec.sample_bytes_per_domain)
    ]
    sample_mb = sum(len(t.encode()) for t in texts) / 1e6
    tokenizer = train_bpe(texts, spec.vocab_size)
    _save_atomically(tokenizer, target, {"vocab_size": spec.vocab_size, "sample_mb": sample_mb})
    info = describe_tokenizer(target / "tokenizer.json")
    short = (
        f" of the {spec.vocab_size} asked: the sample is small"
        if info.vocab_size < spec.vocab_size
        else ""
    )
    log(
        f"data: tokenizer trained on {sample_mb:.1f} MB sample of {len(domains)} domains "
        f"in {time.perf_counter() - started:.1f}s (vocab {info.vocab_size}{short}) -> {target}"
    )
    return info


def tokenizer_key(
    vocab_size: int, sample_bytes_per_domain: int, domains: Sequence[DomainSources]
) -> str:
    """Cache key of a trained tokenizer: trainer version, settings, every domain's content."""
    settings = {
        "trainer": _TRAINER_VERSION,
        "vocab_size": vocab_size,
        "sample_bytes_per_domain": sample_bytes_per_domain,
        "domains": [d.content_hash for d in domains],
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------- sampling


def sample_domain(domain: DomainSources, n_bytes: int) -> list[str]:
    """About ``n_bytes`` of the domain's text, spread evenly through it (deterministic).

    Systematic sampling: pieces are read in order and one is taken whenever the bytes taken so far
    fall behind ``rate * bytes_seen``, where ``rate`` is ``n_bytes`` over the domain's estimated
    size. Reading stops once the sample is full.
    """
    total = sum(estimate_text_bytes(f, domain.text_field) for f in domain.files)
    rate = min(1.0, n_bytes / max(total, 1))
    taken: list[str] = []
    seen = taken_bytes = 0
    for piece in iter_pieces(domain):
        size = len(piece.text.encode())
        seen += size
        if taken_bytes < rate * seen:
            text = _truncate(piece, n_bytes - taken_bytes)
            taken.append(text)
            taken_bytes += len(text.encode())
        if taken_bytes >= n_bytes:
            break
    return taken


def _truncate(piece: Piece, max_bytes: int) -> str:
    """The piece's text cut to at most ``max_bytes`` UTF-8 bytes (at a character boundary)."""
    encoded = piece.text.encode()
    if len(encoded) <= max_bytes:
        return piece.text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


# ------------------------------------------------------------------------------- training


def train_bpe(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE (GPT-2 style pre-tokenizer and decoder) with ``<|endoftext|>`` = id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tokenizer


def _save_atomically(tokenizer: Tokenizer, target: Path, meta: dict[str, Any]) -> None:
    """Write ``tokenizer.json`` into a temporary folder and rename it to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        tokenizer.save(str(staging / "tokenizer.json"))
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# -------------------------------------------------------------------------- loading / info


def load_tokenizer_file(path: Path, log: Callable[[str], None]) -> TokenizerInfo:
    """A user's tokenizer.json, checked for an end-of-text token."""
    info = describe_tokenizer(path)
    log(
        f"data: tokenizer {path} (vocab {info.vocab_size}); "
        f"end of text: {info.eot_token!r} (id {info.eot_id})"
    )
    return info


def describe_tokenizer(path: Path) -> TokenizerInfo:
    """Hash, vocabulary size and end-of-text token of a tokenizer.json."""
    tokenizer = read_tokenizer(path)
    eot_token, eot_id = find_eot(tokenizer, path)
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    return TokenizerInfo(
        path=path.resolve(),
        hash=_sha256_file(path),
        vocab_size=max(vocab.values()) + 1,
        eot_id=eot_id,
        eot_token=eot_token,
    )


def find_eot(tokenizer: Tokenizer, path: Path) -> tuple[str, int]:
    """The end-of-text token: ``<|endoftext|>``, else a well-known EOS name, else an EOS-like
    special token; a DataError if there is none."""
    for name in _EOS_NAMES:
        token_id = tokenizer.token_to_id(name)
        if token_id is not None:
            return name, token_id
    specials = {
        token.content: token_id
        for token_id, token in tokenizer.get_added_tokens_decoder().items()
        if token.special
    }
    for name, token_id in sorted(specials.items(), key=lambda item: item[1]):
        if _EOS_LIKE.search(name):
            return name, token_id
    listed = ", ".join(sorted(specials)[:20]) or "none"
    raise DataError(
        f"tokenizer {path}: no end-of-text token; add {EOT_TOKEN!r} (or an EOS token such as "
        f"'</s>') as a special token. Its special tokens: {listed}"
    )


def read_tokenizer(path: Path) -> Tokenizer:
    """A tokenizer.json, or a DataError saying why it cannot be read."""
    from tokenizers import Tokenizer

    if not path.is_file():
        raise DataError(f"tokenizer {path}: no such file")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception for malformed files
        raise DataError(f"tokenizer {path}: not a valid tokenizer.json ({error})") from None


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
