"""Export a job's recommended mixture in the formats training stacks read.

Every format is built from the job directory's files, never from live state, so an export can be
repeated at any time and gives the same answer: ``recommendation.json`` (the weights, repetition
caps), ``data_manifest.json`` (each domain's token file, dtype, source files, end-of-text id) and
``spec.yaml`` (text fields, target budget, epoch limits).

Weights are exported with 6 decimals that sum to exactly 1 (largest-remainder rounding, so
``sum(Decimal(str(w)))`` is 1). The training-framework formats leave out domains whose weight is
0 (several frameworks reject a zero weight) and say so in a comment.

=============  ==========================================================================
format         what
=============  ==========================================================================
json, yaml     the mixture, its predicted objective and provenance
megatron       Megatron-LM ``--data-path w1 prefix1 w2 prefix2 ...``; with ``data_dir`` the
               domains are written there as Megatron indexed datasets (``.bin`` + ``.idx``)
hf-python      a runnable ``datasets.interleave_datasets`` snippet over the domains' files
hf-json        the same as JSON: dataset names, probabilities, files
olmo           OLMo-core ``SourceMixtureList`` YAML (source names, target ratios, paths,
               max repetition)
nanotron       nanotron ``data_stages`` YAML (``dataset_folder`` + ``dataset_weights``)
torchtitan     torchtitan ``InterleavedHuggingFaceTextDataLoader.Config`` with weighted sources
streaming      MosaicML streaming ``Stream(..., proportion=w)`` list
=============  ==========================================================================
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from mixopt.errors import MixoptError
from mixopt.job import JobDir
from mixopt.job.directory import MANIFEST_FILE

if TYPE_CHECKING:
    from mixopt.spec import DomainSpec, JobSpec

DECIMALS = 6


# ---------------------------------------------------------------------------------- inputs


def load_recommendation(job_dir: str | Path) -> dict[str, Any]:
    return JobDir(job_dir).load_recommendation()


def exact_weights(weights: dict[str, float], decimals: int = DECIMALS) -> dict[str, float]:
    """``weights`` normalised and rounded to ``decimals`` places so that they sum to exactly 1
    (largest remainder: the units lost to rounding go to the largest fractional parts)."""
    names = list(weights)
    try:
        values = np.array([float(weights[n]) for n in names], dtype=float)
    except (TypeError, ValueError):
        raise MixoptError(f"mixture weights must be numbers: {weights}") from None
    if not names:
        raise MixoptError("the mixture has no domains")
    if not np.all(np.isfinite(values)) or np.any(values < -1e-9) or values.sum() <= 0:
        raise MixoptError(f"mixture weights must be finite, >= 0 and not all 0: {weights}")
    scale = 10**decimals
    shares = np.clip(values, 0.0, None) / np.clip(values, 0.0, None).sum() * scale
    units = np.floor(shares).astype(np.int64)
    order = np.argsort(-(shares - units), kind="stable")
    units[order[: scale - int(units.sum())]] += 1
    return {n: round(int(u) / scale, decimals) for n, u in zip(names, units, strict=True)}


@dataclass(frozen=True)
class Source:
    """One domain as the exports see it."""

    name: str
    weight: float
    token_file: str | None = None  # mixopt's flat train token file (raw ids, EOT after each doc)
    dtype: str | None = None
    train_tokens: int | None = None
    files: tuple[str, ...] = ()  # the documents the domain was built from
    format: str = "auto"
    text_field: str = "text"
    max_epochs: float | None = None  # repetition limit, when the job had a target budget

    @property
    def prefix(self) -> str:
        """The token file without its extension (Megatron's dataset prefix)."""
        assert self.token_file is not None
        return str(Path(self.token_file).with_suffix(""))


@dataclass(frozen=True)
class Blend:
    """Everything an export needs: the exact weights and where each domain's data is."""

    job: str
    job_dir: Path
    recommendation: dict[str, Any]
    sources: tuple[Source, ...]
    target_tokens: float | None = None
    eot_id: int | None = None
    seed: int = 0
    data_dir: Path | None = None
    has_data: bool = False

    @property
    def weights(self) -> dict[str, float]:
        return {s.name: s.weight for s in self.sources}

    @property
    def active(self) -> list[Source]:
        """The domains with a weight above 0 (what the framework blends list)."""
        return [s for s in self.sources if s.weight > 0]

    def header(self, what: str, comment: str = "#") -> str:
        lines = [
            f"mixopt job {self.job!r}: {what}",
            f"weights sum to 1 ({DECIMALS} decimals); recommended from {self.job_dir}",
        ]
        dropped = [s.name for s in self.sources if s.weight <= 0]
        if dropped:
            lines.append(f"left out (weight 0): {', '.join(dropped)}")
        return "".join(f"{comment} {line}\n" for line in lines)

    def require_data(self, fmt: str) -> None:
        if not self.has_data:
            raise MixoptError(
                f"{self.job_dir}: format {fmt!r} needs the job's {MANIFEST_FILE} "
                "(where each domain's data is), which is missing"
            )


def load_blend(job_dir: str | Path, *, data_dir: str | Path | None = None) -> Blend:
    job = JobDir(job_dir)
    rec = job.load_recommendation()
    weights = exact_weights(rec["weights"])
    spec = job.load_spec() if job.spec_path.is_file() else None
    manifest = job.load_manifest()
    target_tokens = spec.target.tokens if spec is not None else None
    sources = []
    for name, weight in weights.items():
        domain = _domain(spec, name)
        fields: dict[str, Any] = {
            "format": domain.format if domain is not None else "auto",
            "text_field": domain.text_field if domain is not None else "text",
            "max_epochs": spec.max_epochs(name) if spec is not None and target_tokens else None,
        }
        if manifest is not None:
            shards = manifest.domains.get(name)
            if shards is None:
                raise MixoptError(f"{job.path}: the data manifest has no domain {name!r}")
            fields.update(
                token_file=shards.train_path,
                dtype=shards.dtype,
                train_tokens=shards.train_tokens,
                files=tuple(shards.files),
            )
        sources.append(Source(name, weight, **fields))
    return Blend(
        job=str(rec.get("job") or (spec.name if spec is not None else job.path.name)),
        job_dir=job.path.resolve(),
        recommendation=rec,
        sources=tuple(sources),
        target_tokens=float(target_tokens) if target_tokens else None,
        eot_id=manifest.eot_id if manifest is not None else None,
        seed=spec.search.seed if spec is not None else 0,
        data_dir=Path(data_dir) if data_dir is not None else None,
        has_data=manifest is not None,
    )


def _domain(spec: JobSpec | None, name: str) -> DomainSpec | None:
    if spec is None:
        return None
    return next((d for d in spec.domains if d.name == name), None)


# ---------------------------------------------------------------------------------- formats


def mixture_document(blend: Blend) -> dict[str, Any]:
    """The json/yaml content: the mixture first, then what it is expected to achieve and why."""
    rec = blend.recommendation
    return {
        "mixture": blend.weights,
        "objective": rec.get("objective"),
        "predicted_objective": rec.get("predicted_objective"),
        "predicted_std": rec.get("predicted_std"),
        "verdict": rec.get("verdict"),
        "job": rec.get("job"),
        "data_hash": rec.get("data_hash"),
        "repetition_caps": rec.get("repetition_caps"),
        "target_epochs": rec.get("target_epochs"),
    }


def to_json(blend: Blend) -> str:
    return json.dumps(mixture_document(blend), indent=2) + "\n"


def to_yaml(blend: Blend) -> str:
    return yaml.safe_dump(mixture_document(blend), sort_keys=False)


def to_megatron(blend: Blend) -> str:
    """Megatron-LM's ``--data-path``: weight and dataset prefix pairs."""
    blend.require_data("megatron")
    sources = blend.active
    if blend.data_dir is not None:
        prefixes = [
            write_megatron_dataset(s, blend.data_dir / s.name, blend.eot_id) for s in sources
        ]
        note = (
            f"# prefixes: Megatron indexed datasets (<prefix>.bin + <prefix>.idx) written by "
            f"mixopt to {blend.data_dir}\n"
        )
    else:
        prefixes = [s.prefix for s in sources]
        note = (
            "# prefixes: mixopt's flat token files (<prefix>.bin: raw token ids, each document "
            "followed by\n# the end-of-text id); Megatron also needs <prefix>.idx: "
            "export with --data-dir DIR to write\n# Megatron indexed datasets "
            "(.bin + .idx) there and point the blend at them\n"
        )
    pairs = " ".join(
        f"{_num(s.weight)} {_shell(p)}" for s, p in zip(sources, prefixes, strict=True)
    )
    return blend.header("Megatron-LM data blend") + note + f"--data-path {pairs}\n"


def hf_document(blend: Blend, fmt: str = "hf-json") -> dict[str, Any]:
    blend.require_data(fmt)
    sources = blend.active
    return {
        "format": "datasets.interleave_datasets",
        "datasets": [s.name for s in sources],
        "probabilities": [s.weight for s in sources],
        "seed": blend.seed,
        "stopping_strategy": "first_exhausted",
        "sources": {
            s.name: {"text_field": s.text_field, "data_files": _hf_files(s)} for s in sources
        },
        "job": blend.job,
    }


def to_hf_json(blend: Blend) -> str:
    return json.dumps(hf_document(blend), indent=2) + "\n"


def to_hf_python(blend: Blend) -> str:
    from mixopt.data.formats import registered_formats

    doc = hf_document(blend, "hf-python")
    text_builders = tuple(sorted({f.hf_builder for f in registered_formats() if f.hf_builder}))
    sources = json.dumps(doc["sources"], indent=4)
    probabilities = json.dumps(dict(zip(doc["datasets"], doc["probabilities"], strict=True)))
    return (
        blend.header("Hugging Face datasets.interleave_datasets")
        + f'''# Loads each domain from the files mixopt read (a text file is one document,
# a JSONL line or a Parquet row is one), keeps its text as a "text" column and interleaves the
# domains with the recommended probabilities. Pre-tokenized domains have no text: load those
# yourself.
from datasets import Features, Value, concatenate_datasets, interleave_datasets, load_dataset

PROBABILITIES = {probabilities}
SOURCES = {sources}


def load_domain(name):
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


mixed = interleave_datasets(
    [load_domain(name) for name in PROBABILITIES],
    probabilities=list(PROBABILITIES.values()),
    seed={doc["seed"]},
    stopping_strategy="{doc["stopping_strategy"]}",  # or "all_exhausted" (repeats small domains)
)
'''
    )


def to_olmo(blend: Blend) -> str:
    """OLMo-core ``SourceMixtureList`` (``SourceMixtureList.from_file``)."""
    blend.require_data("olmo")
    sources = []
    for s in blend.active:
        sources.append(
            {
                "source_name": s.name,
                "target_ratio": s.weight,
                "paths": [s.token_file],
                "max_repetition_ratio": max(1.0, s.max_epochs or 1.0),
                "max_source_fraction": 1.0,
            }
        )
    dtypes = sorted({s.dtype for s in blend.active if s.dtype})
    if blend.target_tokens:
        budget = (
            f"# requested_tokens: {int(blend.target_tokens)} (the target budget the repetition "
            "caps were made for;\n# max_repetition_ratio is each domain's epoch limit)\n"
        )
    else:
        budget = (
            "# no target budget was set: max_repetition_ratio is OLMo-core's default 1.0 "
            "(no repetition)\n"
        )
    note = (
        "# load: olmo_core.data.source_mixture.SourceMixtureList.from_file(this file)\n"
        f"# paths: mixopt's flat token files, raw {'/'.join(dtypes)} memmaps as OLMo-core's "
        f"numpy datasets read them\n# (dtype {'/'.join(dtypes)}, eos_token_id {blend.eot_id}: "
        "set them in the dataset config; the token ids are mixopt's tokenizer's)\n"
    )
    return (
        blend.header("OLMo-core source mixture")
        + note
        + budget
        + yaml.safe_dump({"sources": sources}, sort_keys=False)
    )


def to_nanotron(blend: Blend) -> str:
    blend.require_data("nanotron")
    sources = blend.active
    doc = {
        "data_stages": [
            {
                "name": f"mixopt {blend.job}",
                "start_training_step": 1,
                "data": {
                    "dataset": {
                        "dataset_folder": [str(Path(s.token_file or "").parent) for s in sources],
                        "dataset_weights": [s.weight for s in sources],
                    },
                    "num_loading_workers": 1,
                    "seed": blend.seed,
                },
            }
        ]
    }
    note = (
        "# nanotron Nanoset data stage (goes under the config's top level; domains in order:\n"
        f"# {', '.join(s.name for s in sources)}). dataset_folder: the folders of mixopt's "
        "token files, which are\n# not datatrove-tokenized: point each at your tokenized "
        "copy of that domain\n"
    )
    return blend.header("nanotron dataset weights") + note + yaml.safe_dump(doc, sort_keys=False)


def to_torchtitan(blend: Blend) -> str:
    lines = "\n".join(
        f"        HFDataSource(dataset={s.name!r}, weight={_num(s.weight)})," for s in blend.active
    )
    return (
        blend.header("torchtitan weighted dataset sources")
        + f"""# torchtitan (>= 0.3) interleaves sources by weight. Each dataset name must be
# registered in torchtitan.hf_datasets.text_datasets.DATASETS (a DatasetConfig with your loader
# for the domain).
from torchtitan.hf_datasets.text_datasets import (
    HFDataSource,
    InterleavedHuggingFaceTextDataLoader,
)

dataloader = InterleavedHuggingFaceTextDataLoader.Config(
    sources=[
{lines}
    ],
    seed={blend.seed},
)
"""
    )


def to_streaming(blend: Blend) -> str:
    lines = "\n".join(
        f'    Stream(local=f"{{MDS_ROOT}}/{s.name}", proportion={_num(s.weight)}),'
        for s in blend.active
    )
    return (
        blend.header("MosaicML streaming streams")
        + f"""# One MDS dataset per domain (written with streaming.MDSWriter), under MDS_ROOT or
# a remote (then pass remote=... as well). Use as StreamingDataset(streams=streams, ...).
from streaming import Stream

MDS_ROOT = "/path/to/mds"  # edit: where each domain's MDS dataset is

streams = [
{lines}
]
"""
    )


Exporter = Callable[[Blend], str]

FORMATS: dict[str, Exporter] = {
    "json": to_json,
    "yaml": to_yaml,
    "megatron": to_megatron,
    "hf-python": to_hf_python,
    "hf-json": to_hf_json,
    "olmo": to_olmo,
    "nanotron": to_nanotron,
    "torchtitan": to_torchtitan,
    "streaming": to_streaming,
}


def export(job_dir: str | Path, fmt: str, *, data_dir: str | Path | None = None) -> str:
    """The recommendation of the job in ``job_dir`` as format ``fmt`` (see :data:`FORMATS`).

    ``data_dir`` (megatron only): write the domains there as Megatron indexed datasets and point
    the blend at them.
    """
    if fmt not in FORMATS:
        raise MixoptError(f"unknown export format {fmt!r}; available: {', '.join(FORMATS)}")
    if data_dir is not None and fmt != "megatron":
        raise MixoptError(f"a data directory is only used by the megatron format, not {fmt!r}")
    return FORMATS[fmt](load_blend(job_dir, data_dir=data_dir))


# ------------------------------------------------------------------- Megatron indexed dataset

MEGATRON_HEADER = b"MMIDIDX\x00\x00"
MEGATRON_DTYPES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "uint16": 8}
_CHUNK = 1 << 24  # tokens scanned at a time


def write_megatron_dataset(source: Source, prefix: Path, eot_id: int | None) -> str:
    """Write ``source``'s train tokens as a Megatron indexed dataset ``prefix.bin/.idx``.

    A document is a run of tokens ending with the end-of-text id (a trailing run without one is a
    document too). ``uint16`` tokens are Megatron's layout already, so the ``.bin`` is a hard link
    to (or, across file systems, a copy of) mixopt's token file; ``uint32`` tokens, which
    Megatron has no code for, are rewritten as ``int32``. Returns the prefix as a string.
    """
    if source.token_file is None or source.dtype is None or eot_id is None:
        raise MixoptError(f"domain {source.name!r}: no token file in the data manifest")
    token_file = Path(source.token_file)
    if not token_file.is_file():
        raise MixoptError(
            f"domain {source.name!r}: token file {token_file} is missing (the data cache was "
            "moved or cleaned); rerun the data stage or export without --data-dir"
        )
    tokens: np.ndarray = np.zeros(0, dtype=source.dtype)  # numpy cannot map an empty file
    if token_file.stat().st_size:
        tokens = np.memmap(token_file, dtype=source.dtype, mode="r")
    out_dtype = {"uint32": "int32"}.get(source.dtype, source.dtype)
    if out_dtype not in MEGATRON_DTYPES:
        raise MixoptError(
            f"domain {source.name!r}: token dtype {source.dtype} has no Megatron code"
        )
    prefix.parent.mkdir(parents=True, exist_ok=True)
    ends = []
    for start in range(0, len(tokens), _CHUNK):
        chunk = np.asarray(tokens[start : start + _CHUNK])
        if out_dtype != source.dtype and chunk.size and int(chunk.max()) > np.iinfo(np.int32).max:
            raise MixoptError(f"domain {source.name!r}: token ids do not fit Megatron's int32")
        ends.append(np.flatnonzero(chunk == eot_id) + start + 1)
    bounds = np.concatenate([np.zeros(1, dtype=np.int64), *ends]).astype(np.int64)
    if bounds[-1] < len(tokens):
        bounds = np.append(bounds, len(tokens))
    lengths = np.diff(bounds).astype(np.int32)
    itemsize = np.dtype(out_dtype).itemsize
    pointers = (bounds[:-1] * itemsize).astype(np.int64)
    documents = np.arange(len(lengths) + 1, dtype=np.int64)  # one sequence per document

    bin_path, idx_path = prefix.with_suffix(".bin"), prefix.with_suffix(".idx")
    tmp = bin_path.with_suffix(".bin.tmp")
    tmp.unlink(missing_ok=True)
    if out_dtype == source.dtype:
        try:
            os.link(token_file, tmp)
        except OSError:
            shutil.copyfile(token_file, tmp)
    else:
        with tmp.open("wb") as out:
            for start in range(0, len(tokens), _CHUNK):
                out.write(np.asarray(tokens[start : start + _CHUNK]).astype(out_dtype).tobytes())
    os.replace(tmp, bin_path)
    tmp_idx = idx_path.with_suffix(".idx.tmp")
    with tmp_idx.open("wb") as out:
        out.write(MEGATRON_HEADER)
        out.write(struct.pack("<Q", 1))
        out.write(struct.pack("<B", MEGATRON_DTYPES[out_dtype]))
        out.write(struct.pack("<Q", len(lengths)))
        out.write(struct.pack("<Q", len(documents)))
        out.write(lengths.tobytes(order="C"))
        out.write(pointers.tobytes(order="C"))
        out.write(documents.tobytes(order="C"))
    os.replace(tmp_idx, idx_path)
    return str(prefix.resolve())


# ----------------------------------------------------------------------------------- helpers


def _hf_files(source: Source) -> dict[str, list[str]]:
    """The domain's files grouped by Hugging Face builder (each format's exporter hook: json,
    parquet, text; token formats under their own name, which the snippet refuses with a clear
    error)."""
    from mixopt.data.formats import detect_format

    grouped: dict[str, list[str]] = {}
    for name in source.files:
        fmt = detect_format(Path(name), source.format)
        grouped.setdefault(fmt.hf_builder or fmt.name, []).append(name)
    return grouped


def _num(weight: float) -> str:
    """A weight as written: the shortest plain decimal of its 6-decimal value (no exponent)."""
    return format(Decimal(repr(weight)), "f")


def _shell(text: str) -> str:
    import shlex

    return shlex.quote(text)
