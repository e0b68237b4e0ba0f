"""Spec sections about data: the domains and their files, the evaluation sets (never trained
on), the tokenizer, the data stage, the target budget (repetition caps) and domain groups."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from mixopt.data.formats import FORMAT_NAMES, check_format_name, check_format_settings
from mixopt.spec.section import NAME_PATTERN, Section


class SourceSpec(Section):
    """Text (or token) files under a name: what a training domain and an evaluation set share.

    Text formats: plain text (a file is a document), JSONL (a line is a document; gzip/zstd
    compressed files are recognised by their magic bytes) and Parquet (a row is a document).
    Pre-tokenized formats: ``npy`` (a 1-D integer array) and ``bin`` (raw ``dtype`` token ids);
    documents in them are separated by the tokenizer's end-of-text id, and the job's tokenizer
    must be the one they were made with (``tokenizer.kind: file``).
    """

    KIND: ClassVar[str] = "source"

    name: str = Field(pattern=NAME_PATTERN, description="Name (letters, digits, _.-).")
    paths: list[str] = Field(
        min_length=1, description="Files, directories (read recursively) or glob patterns."
    )
    format: Annotated[str, AfterValidator(check_format_name)] = Field(
        "auto",
        json_schema_extra={"enum": list(FORMAT_NAMES)},
        description="File format (see mixopt.data.formats); 'auto' decides by each file's "
        "extension, compressed JSONL by its magic bytes.",
    )
    text_field: str = Field("text", description="JSONL key / Parquet column holding the text.")
    dtype: Literal["uint16", "uint32"] | None = Field(
        None, description="Token type of raw pre-tokenized .bin files (required for them)."
    )
    skip_bad_records: bool | None = Field(
        None, description="Skip unreadable records instead of failing (default: data's)."
    )

    @property
    def label(self) -> str:
        """How errors name it: ``domain 'web'`` or ``eval set 'held_out'``."""
        return f"{self.KIND} {self.name!r}"

    @model_validator(mode="after")
    def _dtype_matches_format(self) -> SourceSpec:
        check_format_settings(self.format, self.dtype)
        return self


class DomainSpec(SourceSpec):
    """One training domain: a name and the files that hold its documents (formats: see
    :class:`SourceSpec`). A share of its documents is held out for validation."""

    KIND: ClassVar[str] = "domain"

    name: str = Field(pattern=NAME_PATTERN, description="Domain name (letters, digits, _.-).")
    max_epochs: float | None = Field(
        None, gt=0, description="Repetition limit of this domain (default: target.max_epochs)."
    )
    group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$",
        description="Group path (e.g. 'web' or 'web/en'): groups can be searched as one unit.",
    )
    share: float | None = Field(
        None, gt=0, description="Fixed share within its group (relative; default: natural)."
    )

    @model_validator(mode="after")
    def _share_needs_group(self) -> DomainSpec:
        if self.share is not None and self.group is None:
            raise ValueError("share is the proportion within a group; set group too")
        return self


class EvalSpec(SourceSpec):
    """An evaluation set: text that is never trained on (a team's held-out target data, an
    out-of-distribution set), tokenized like a domain but kept whole as validation tokens.

    Every proxy reports ``val_loss/<name>`` and ``bpb/<name>`` on it, and objectives and guard
    rails may name them. Its files must not be a training domain's files.
    """

    KIND: ClassVar[str] = "eval set"

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Eval set name (letters, digits, _.-), distinct from every domain's: its "
        "metrics are val_loss/<name> and bpb/<name>.",
    )
    max_tokens: int | None = Field(
        None,
        gt=0,
        description="Cap on the tokens kept (whole documents, chosen by content hash when "
        "there are more); default data.max_val_tokens. Proxies evaluate the first "
        "proxy.eval_tokens of them.",
    )


class TokenizerSpec(Section):
    """Either train a byte-level BPE on a sample of every domain, or load a tokenizer.json."""

    kind: Literal["bpe", "file"] = "bpe"
    vocab_size: int = Field(4096, ge=256, le=1_000_000)
    sample_bytes_per_domain: int = Field(2_000_000, gt=0)
    path: str | None = Field(None, description="A HF tokenizer.json (kind: file).")

    @model_validator(mode="after")
    def _path_matches_kind(self) -> TokenizerSpec:
        if self.kind == "file" and not self.path:
            raise ValueError("kind 'file' needs 'path' to a tokenizer.json")
        if self.kind == "bpe" and self.path:
            raise ValueError("'path' is only used with kind 'file'")
        return self


class DataSpec(Section):
    """How domains become token shards."""

    cache_dir: str = Field(
        "~/.cache/mixopt", description="Where tokenizers and token shards are cached."
    )
    val_fraction: float = Field(0.05, gt=0.0, lt=0.5, description="Share of each domain held out.")
    max_val_tokens: int = Field(262_144, gt=0, description="Cap on each domain's held-out tokens.")
    workers: int = Field(
        0, ge=0, description="Tokenizer processes; 0 = one per available CPU core."
    )
    token_dtype: Literal["auto", "uint16", "uint32"] = Field(
        "auto", description="Shard token type; 'auto' is the narrowest that holds the vocab."
    )
    skip_bad_records: bool = Field(
        False, description="Skip unreadable records (counted and reported) instead of failing."
    )
    allow_mixed_versions: bool = Field(
        False, description="Let a job use trials that trained on other versions of a domain."
    )
    trust_mtime: bool = Field(
        True,
        description="Reuse a file's content digest while its size and mtime are unchanged.",
    )


class TargetSpec(Section):
    """The model the mixture is for: its size and token budget.

    ``tokens`` sets each domain's repetition cap: a domain with ``n`` train tokens and a limit of
    ``e`` epochs can take at most ``n * e / tokens`` of the target run (Olmix); without it there
    are no caps. With ``params`` (and ``tokens``) given, scale-aware laws fitted on the search's
    trials predict every mixture's losses at the target, and the recommendation is the mixture
    best *there*, beside the proxy-scale one.
    """

    params: float | None = Field(
        None,
        gt=0,
        le=1e15,
        description="Non-embedding parameters of the target model (e.g. 1e9).",
    )
    tokens: float | None = Field(
        None, gt=0, le=1e16, description="Training tokens of the target model (e.g. 1e11)."
    )
    max_epochs: float = Field(4.0, gt=0, description="Default repetition limit per domain.")


class GroupsSpec(Section):
    """Hierarchical domains (``DomainSpec.group``): search over groups or over leaves.

    ``level: groups`` searches one weight per top-level group (and per ungrouped domain); the
    leaves of a group keep fixed proportions (their ``share``, else their natural token share).
    ``depth`` picks how many levels of the group path form a unit (1: 'web', 2: 'web/en').
    """

    level: Literal["leaves", "groups"] = "leaves"
    depth: int = Field(1, ge=1, le=8)
