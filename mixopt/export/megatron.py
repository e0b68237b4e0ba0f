"""megatron: Megatron-LM's ``--data-path w1 prefix1 w2 prefix2 ...``, and its indexed datasets.

Megatron's ``GPTDataset`` draws fixed-length token sequences, so the weights are token shares.
Without a data directory the prefixes are mixopt's flat token files (which Megatron cannot read
without an ``.idx``: the header says how to get one); with ``--data-dir`` every domain is written
there as a Megatron indexed dataset (``<prefix>.bin`` + ``<prefix>.idx``), one document per
sequence entry, and the blend points at them.

A staged job gets one ``--data-path`` per stage, in training order, each under a comment with its
range of the run (a fraction of ``--train-iters``, and of the target's tokens when the job has
``target.tokens``): train each stage on its blend (switching ``--data-path`` when resuming from
the previous stage's checkpoint). A single-stage job exports one ``--data-path`` as always.
"""

from __future__ import annotations

import os
import shlex
import shutil
import struct
from pathlib import Path

import numpy as np

from mixopt.errors import MixoptError
from mixopt.export.base import Exporter, number
from mixopt.export.blend import Blend, Source

MEGATRON_HEADER = b"MMIDIDX\x00\x00"
MEGATRON_DTYPES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "uint16": 8}
_CHUNK = 1 << 24  # tokens scanned at a time


class MegatronExport(Exporter):
    name = "megatron"
    title = "Megatron-LM data blend"
    unit = "tokens"
    writes_data = True
    staged = True

    def render(self, blend: Blend) -> str:
        if not blend.stages:
            note, line = self._blend(blend, {})
            return self.header(blend, *note) + line
        written: dict[str, str] = {}  # a domain's dataset is written once for every stage
        parts: list[str] = []
        notes: tuple[str, ...] = ()
        for stage in blend.stages:
            notes, line = self._blend(blend.for_stage(stage), written)
            tokens = blend.stage_tokens(stage)
            where = f"iterations [{stage.start:.6g}, {stage.end:.6g}) x --train-iters"
            if tokens is not None:
                where += f", tokens [{tokens[0]:,.0f}, {tokens[1]:,.0f}) of target.tokens"
            parts.append(f"{self.comment} {stage.label}: {stage.share:g} of the tokens, {where}\n")
            parts.append(line)
        schedule = (
            f"{len(blend.stages)} stages, one --data-path each, in training order: train each "
            "stage on its blend",
            "for its range of the run (switch --data-path when resuming from the previous "
            "stage's checkpoint)",
        )
        return self.header(blend.any_stage(), *notes, *schedule) + "".join(parts)

    def _blend(self, blend: Blend, written: dict[str, str]) -> tuple[tuple[str, ...], str]:
        """(header notes, ``--data-path ...`` line) of one mixture; datasets written with
        ``--data-dir`` are remembered in ``written`` (domain -> prefix)."""
        active = blend.active(self.unit)
        if blend.data_dir is not None:
            if blend.retokenized is not None:
                raise MixoptError(
                    "megatron --data-dir writes mixopt's own token files as Megatron datasets; "
                    "with --tokenizer the shares are for your tokenization of the domains: export "
                    "without --data-dir and point the prefixes at your datasets"
                )
            data_dir, eot_id = blend.data_dir, blend.eot_id
            prefixes = [
                written.get(s.name)
                or written.setdefault(s.name, write_megatron_dataset(s, data_dir / s.name, eot_id))
                for s, _ in active
            ]
            note: tuple[str, ...] = (
                "prefixes: Megatron indexed datasets (<prefix>.bin + <prefix>.idx) written by "
                f"mixopt to {blend.data_dir}",
            )
        else:
            prefixes = [s.prefix for s, _ in active]
            note = (
                "prefixes: mixopt's flat token files (<prefix>.bin: raw token ids, each document "
                "followed by",
                "the end-of-text id); Megatron also needs <prefix>.idx: export with --data-dir "
                "DIR to write",
                "Megatron indexed datasets (.bin + .idx) there and point the blend at them",
            )
            if blend.retokenized is not None:
                note = (
                    "prefixes: replace each with your Megatron dataset of that domain, tokenized "
                    "with the tokenizer above",
                )
        pairs = " ".join(
            f"{number(w)} {shlex.quote(p)}" for (_, w), p in zip(active, prefixes, strict=True)
        )
        return note, f"--data-path {pairs}\n"


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
