"""The export-format registry: every format ``mixopt export`` writes, one line each.

Adding a format is its module (an :class:`~mixopt.export.base.Exporter` subclass) plus its line
in :data:`_REGISTRY`; nothing else changes (the CLI, the service and the docs read this table).
Modules are imported on first use, so the registry stays cheap to import.
"""

from __future__ import annotations

import functools
import importlib

from mixopt.errors import MixoptError
from mixopt.export.base import Exporter

_REGISTRY: dict[str, str] = {  # name → "module:class"
    "json": "mixopt.export.mixture:JsonExport",
    "yaml": "mixopt.export.mixture:YamlExport",
    "megatron": "mixopt.export.megatron:MegatronExport",
    "hf-python": "mixopt.export.hf:HFPythonExport",
    "hf-json": "mixopt.export.hf:HFJsonExport",
    "olmo": "mixopt.export.olmo:OlmoExport",
    "nanotron": "mixopt.export.nanotron:NanotronExport",
    "torchtitan": "mixopt.export.torchtitan:TorchtitanExport",
    "streaming": "mixopt.export.streaming:StreamingExport",
}

FORMATS: tuple[str, ...] = tuple(_REGISTRY)
"""Every export format's name, in registry order."""


def get_exporter(name: str) -> Exporter:
    """The registered format called ``name``; an unknown name is an error listing valid ones."""
    if name not in _REGISTRY:
        raise MixoptError(f"unknown export format {name!r}; available: {', '.join(FORMATS)}")
    return _load(name)


def registered_exporters() -> list[Exporter]:
    """Every registered format, in registry order."""
    return [_load(name) for name in _REGISTRY]


@functools.cache
def _load(name: str) -> Exporter:
    module, _, cls = _REGISTRY[name].partition(":")
    exporter = getattr(importlib.import_module(module), cls)()
    if not isinstance(exporter, Exporter) or exporter.name != name:
        raise TypeError(f"export format {name!r}: {_REGISTRY[name]} is not an Exporter so named")
    return exporter
