"""Export a job's recommended mixture in the formats training stacks read, in the unit each needs.

    export("runs/demo-…", "hf-json")                        # per-example probabilities
    export("runs/demo-…", "megatron", tokenizer="tok/")      # token shares under your tokenizer
    export("runs/demo-…", "streaming", data_dir="mds/")      # + the domains as MDS datasets

=============  ===========  ====================================================================
format         unit         what
=============  ===========  ====================================================================
json, yaml     all          the mixture as token, byte and document shares; its prediction,
                            provenance, the tokenizer (and ``--tokenizer``'s shares)
megatron       tokens       Megatron-LM ``--data-path w1 prefix1 ...``; ``--data-dir``: the
                            domains as Megatron indexed datasets (``.bin`` + ``.idx``)
hf-python      examples     a runnable ``datasets.interleave_datasets`` snippet
hf-json        examples     the same as JSON: dataset names, probabilities, files
olmo           tokens       OLMo-core ``SourceMixtureList`` YAML
nanotron       tokens       nanotron ``data_stages`` YAML (Nanoset ``dataset_weights``);
                            ``--batch-tokens``: stages start at absolute steps
torchtitan     tokens       torchtitan ``InterleavedHuggingFaceTextDataLoader.Config`` (packed
                            sequences: token shares of the trainer's tokenizer)
streaming      examples     MosaicML streaming ``Stream`` list; ``--data-dir``: MDS datasets
=============  ===========  ====================================================================

Weights are exported with 6 decimals that sum to exactly 1. Framework formats leave out domains
whose weight is 0 (several frameworks reject a zero weight) and say so in their header.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.errors import MixoptError
from mixopt.export.registry import FORMATS, get_exporter, registered_exporters

if TYPE_CHECKING:
    from mixopt.export.blend import Blend, Source, load_blend
    from mixopt.export.megatron import write_megatron_dataset
    from mixopt.export.units import exact_weights

_LAZY = {  # imported on first use, so the registry (the CLI's help) stays light
    "Blend": "mixopt.export.blend",
    "Source": "mixopt.export.blend",
    "load_blend": "mixopt.export.blend",
    "exact_weights": "mixopt.export.units",
    "write_megatron_dataset": "mixopt.export.megatron",
}

__all__ = [
    "FORMATS",
    "Blend",
    "Source",
    "exact_weights",
    "export",
    "get_exporter",
    "load_blend",
    "load_recommendation",
    "registered_exporters",
    "write_megatron_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixopt.export' has no attribute {name!r}")


def load_recommendation(job_dir: str | Path) -> dict:
    """The job's recommendation.json (``MixoptError`` saying why it cannot be read)."""
    from mixopt.job import JobDir

    return JobDir(job_dir).load_recommendation()


def export(
    job_dir: str | Path,
    fmt: str,
    *,
    data_dir: str | Path | None = None,
    tokenizer: str | None = None,
    batch_tokens: int | None = None,
) -> str:
    """The recommendation of the job in ``job_dir`` as format ``fmt`` (see :data:`FORMATS`).

    ``data_dir``: formats that can (megatron, streaming) write the domains there in the
    framework's own dataset format and point the export at them. ``tokenizer``: a local
    tokenizer (file, folder or cached name) to convert token shares into (never downloaded).
    ``batch_tokens``: the trainer's global batch in tokens (sequences x sequence length); with
    the spec's ``target.tokens`` it gives the run's steps, so nanotron's stages start at
    absolute steps.
    """
    exporter = get_exporter(fmt)
    if data_dir is not None and not exporter.writes_data:
        writers = ", ".join(e.name for e in registered_exporters() if e.writes_data)
        raise MixoptError(f"a data directory is only used by the {writers} formats, not {fmt!r}")
    if batch_tokens is not None:
        if not exporter.uses_batch:
            users = ", ".join(e.name for e in registered_exporters() if e.uses_batch)
            raise MixoptError(f"--batch-tokens is only used by the {users} format, not {fmt!r}")
        if isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int) or batch_tokens < 1:
            raise MixoptError(f"--batch-tokens must be a whole number >= 1, got {batch_tokens!r}")
    from mixopt.export.blend import load_blend

    blend = load_blend(job_dir, data_dir=data_dir, tokenizer=tokenizer, batch_tokens=batch_tokens)
    if exporter.needs_data:
        blend.require_data(f"format {fmt!r}")
    return exporter.render(blend)
