"""hf-python and hf-json: Hugging Face ``datasets.interleave_datasets`` over the domains' files.

``interleave_datasets`` draws *rows*, so its ``probabilities`` are per example: with one document
per row (a text file, a JSONL line, a Parquet row, as mixopt reads them) they are the document
shares that realise the recommended token shares in expectation (each domain's recommended
share divided by its mean tokens per document, renormalised; :mod:`mixopt.export.units`).
Document shares do not depend on the tokenizer. The snippet loads each domain from the files
mixopt read, keeps its text as a ``text`` column and interleaves the domains.

A staged job adds ``stages`` (hf-json) / ``STAGES`` (hf-python): each stage's name, share, range
of the run and per-example probabilities, and the snippet builds one interleaved dataset per
stage; ``datasets``/``probabilities`` (``mixed``) stay the searched stage's.
"""

from __future__ import annotations

import json
import pprint
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mixopt.export.base import Exporter, provenance
from mixopt.export.blend import Blend, Source

STOPPING = "first_exhausted"

# The loader both snippets (hf-python, torchtitan) define: SOURCES[name] → a Dataset of "text".
LOAD_DOMAIN = '''
def load_domain(name):
    """The domain's documents as a Dataset with one "text" column, one document per row."""
    parts = []
    for builder, files in SOURCES[name]["data_files"].items():
        if builder not in {text_builders}:
            raise ValueError(f"domain {{name}}: {{builder}} files hold token ids, not text")
        options = {{"sample_by": "document"}} if builder == "text" else {{}}
        part = load_dataset(builder, data_files=files, split="train", **options)
        column = "text" if builder == "text" else SOURCES[name]["text_field"]
        part = part.select_columns([column])
        if column != "text":
            part = part.rename_column(column, "text")
        parts.append(part.cast(Features({{"text": Value("string")}})))
    return concatenate_datasets(parts)
'''


def load_domain_source() -> str:
    """The ``load_domain`` function's source, for a snippet that has ``SOURCES``."""
    from mixopt.data.formats import registered_formats

    builders = tuple(sorted({f.hf_builder for f in registered_formats() if f.hf_builder}))
    return LOAD_DOMAIN.format(text_builders=builders)


def hf_files(source: Source) -> dict[str, list[str]]:
    """The domain's files grouped by Hugging Face builder (each data format's exporter hook:
    json, parquet, text; token formats under their own name, which the snippet refuses)."""
    from mixopt.data.formats import detect_format

    grouped: dict[str, list[str]] = {}
    for name in source.files:
        fmt = detect_format(Path(name), source.format)
        grouped.setdefault(fmt.hf_builder or fmt.name, []).append(name)
    return grouped


def hf_sources(sources: Iterable[Source]) -> dict[str, dict[str, Any]]:
    """Each domain's text field and files by builder (the snippets' ``SOURCES``)."""
    return {s.name: {"text_field": s.text_field, "data_files": hf_files(s)} for s in sources}


def hf_stages(blend: Blend) -> list[dict[str, Any]]:
    """Each stage with its per-example probabilities (empty for a single-stage job)."""
    out = []
    for stage in blend.stages:
        active = blend.for_stage(stage).active("examples")
        out.append(
            {
                "name": stage.name,
                "share": stage.share,
                "start": round(stage.start, 9),
                "end": round(stage.end, 9),
                "searched": stage.searched,
                "probabilities": {s.name: w for s, w in active},
                "token_shares": {s.name: stage.weights[s.name] for s, _ in active},
            }
        )
    return out


def hf_document(blend: Blend) -> dict[str, Any]:
    active = blend.active("examples")
    tokens = blend.weights  # the recommendation (the job's tokenizer), for reference
    stages = hf_stages(blend)
    if stages:
        used = {name for stage in stages for name in stage["probabilities"]}
        sources = hf_sources(s for s in blend.sources if s.name in used)
    else:
        sources = hf_sources(s for s, _ in active)
    return {
        "format": "datasets.interleave_datasets",
        "unit": "probabilities per example (one document per row)",
        "datasets": [s.name for s, _ in active],
        "probabilities": [w for _, w in active],
        "token_shares": [tokens[s.name] for s, _ in active],
        "seed": blend.seed,
        "stopping_strategy": STOPPING,
        "sources": sources,
        "job": blend.job,
        **({"stages": stages} if stages else {}),
    }


class HFJsonExport(Exporter):
    name = "hf-json"
    title = "Hugging Face datasets.interleave_datasets (JSON)"
    unit = "examples"
    staged = True

    def render(self, blend: Blend) -> str:
        return json.dumps({**hf_document(blend), "provenance": provenance(blend)}, indent=2) + "\n"


class HFPythonExport(Exporter):
    name = "hf-python"
    title = "Hugging Face datasets.interleave_datasets"
    unit = "examples"
    staged = True

    def render(self, blend: Blend) -> str:
        doc = hf_document(blend)
        sources = json.dumps(doc["sources"], indent=4)
        probabilities = json.dumps(dict(zip(doc["datasets"], doc["probabilities"], strict=True)))
        notes = (
            "Loads each domain from the files mixopt read (a text file is one document, a JSONL "
            "line or a",
            'Parquet row is one), keeps its text as a "text" column and interleaves the domains '
            "by rows.",
            "Pre-tokenized domains have no text: load those yourself.",
        )
        return (
            self.header(blend, *notes)
            + "from datasets import Features, Value, concatenate_datasets, interleave_datasets, "
            "load_dataset\n\n"
            f"PROBABILITIES = {probabilities}  # per row (document), not per token\n"
            f"SOURCES = {sources}\n\n"
            + load_domain_source()
            + f"""

mixed = interleave_datasets(
    [load_domain(name) for name in PROBABILITIES],
    probabilities=list(PROBABILITIES.values()),
    seed={doc["seed"]},
    stopping_strategy="{doc["stopping_strategy"]}",  # or "all_exhausted" (repeats small domains)
)
"""
            + (_stages_snippet(doc) if "stages" in doc else "")
        )


def _stages_snippet(doc: dict[str, Any]) -> str:
    """The staged job's schedule: one interleaved dataset per stage, in training order."""
    stages = [
        {k: stage[k] for k in ("name", "share", "start", "end", "searched", "probabilities")}
        for stage in doc["stages"]
    ]
    return f"""
# The mixture changes over training: train on stage k's dataset for its share of the tokens
# (from start to end, as fractions of the run); `mixed` above is the searched stage's.
STAGES = {pprint.pformat(stages, sort_dicts=False)}

stage_datasets = [
    interleave_datasets(
        [load_domain(name) for name in stage["probabilities"]],
        probabilities=list(stage["probabilities"].values()),
        seed={doc["seed"]},
        stopping_strategy="{doc["stopping_strategy"]}",
    )
    for stage in STAGES
]
"""
