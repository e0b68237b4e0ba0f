"""The data-format registry: every format a domain's files can be in, one line each.

    get_format("jsonl").pretokenized           # False
    detect_format(Path("a.jsonl.zst"), "auto")  # the jsonl format (compression: by magic bytes)
    FORMAT_NAMES                                # ("auto", "text", "jsonl", ...): DomainSpec.format

A format is a module of this package with a :class:`~mixopt.data.formats.base.DataFormat`
subclass (its hooks: extensions, reader, encoder, exporter, ``pretokenized``, ``needs_dtype``);
adding one is that module plus its line in :data:`_REGISTRY`. Modules are imported on first use,
so importing the registry (the spec does) stays cheap, and ``pyarrow``/``zstandard``/``numpy``
load only when a file needs them.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

from mixopt.data.compression import strip_compression_suffix
from mixopt.data.formats.base import DataFormat, TextFormat, TokenFormat
from mixopt.errors import DataError

_REGISTRY: dict[str, str] = {  # name → "module:class"
    "text": "mixopt.data.formats.text:PlainText",
    "jsonl": "mixopt.data.formats.jsonl:JsonLines",
    "parquet": "mixopt.data.formats.parquet:Parquet",
    "npy": "mixopt.data.formats.npy:NpyTokens",
    "bin": "mixopt.data.formats.bin:RawTokens",
}

AUTO = "auto"
"""The format name that means "by the file's extension"."""
FALLBACK = "text"
"""What ``auto`` reads a file as when no format claims its extension."""
FORMAT_NAMES: tuple[str, ...] = (AUTO, *_REGISTRY)
"""Every valid value of ``DomainSpec.format``."""

__all__ = [
    "AUTO",
    "FORMAT_NAMES",
    "DataFormat",
    "TextFormat",
    "TokenFormat",
    "check_format_name",
    "check_format_settings",
    "detect_format",
    "get_format",
    "registered_formats",
]


def get_format(name: str) -> DataFormat:
    """The registered format called ``name``; an unknown name is an error listing valid ones."""
    if name not in _REGISTRY:
        raise DataError(_unknown(name))
    return _load(name)


def registered_formats() -> list[DataFormat]:
    """Every registered format, in registry order."""
    return [_load(name) for name in _REGISTRY]


def detect_format(path: Path, declared: str = AUTO) -> DataFormat:
    """The format a file is read in: the declared one, or by extension for ``auto`` (a
    compression suffix such as ``.gz`` or ``.zst`` is looked through; no file is read)."""
    if declared != AUTO:
        return get_format(declared)
    suffix = Path(strip_compression_suffix(path.name.lower())).suffix
    return _by_extension().get(suffix) or get_format(FALLBACK)


def check_format_name(name: str) -> str:
    """``name`` when it is in :data:`FORMAT_NAMES`, else a ValueError listing the valid names
    (a validator for ``DomainSpec.format``)."""
    if name not in FORMAT_NAMES:
        raise ValueError(_unknown(name))
    return name


def check_format_settings(name: str, dtype: str | None) -> None:
    """Raise ValueError when a domain's ``format`` and ``dtype`` do not go together: an unknown
    format, a dtype for a text format, or no dtype for a format that needs one."""
    if check_format_name(name) == AUTO:
        return
    fmt = get_format(name)
    if dtype is not None and not fmt.pretokenized:
        raise ValueError(f"dtype is only used with pre-tokenized formats, not {name!r}")
    if dtype is None and fmt.needs_dtype:
        raise ValueError(f"format {name!r} needs dtype (uint16 or uint32)")


def _unknown(name: str) -> str:
    return (
        f"unknown data format {name!r}; valid formats: {', '.join(FORMAT_NAMES)} "
        f"({AUTO!r} chooses by file extension)"
    )


@functools.cache
def _load(name: str) -> DataFormat:
    module, _, cls = _REGISTRY[name].partition(":")
    fmt = getattr(importlib.import_module(module), cls)()
    if not isinstance(fmt, DataFormat) or fmt.name != name:
        raise TypeError(f"data format {name!r}: {_REGISTRY[name]} is not a DataFormat so named")
    return fmt


@functools.cache
def _by_extension() -> dict[str, DataFormat]:
    table: dict[str, DataFormat] = {}
    for fmt in registered_formats():
        for extension in fmt.extensions:
            if extension in table:
                raise TypeError(
                    f"data formats {table[extension].name!r} and {fmt.name!r} both claim "
                    f"{extension!r}"
                )
            table[extension] = fmt
    return table
