"""streaming: MosaicML streaming ``Stream`` s for a ``StreamingDataset``; with ``--data-dir``, the
domains written as MDS datasets for them.

A ``StreamingDataset`` draws *samples*, so a stream's share is per example: with one document per
sample the weights are the document shares that realise the recommended token shares. With a
target budget each stream gets ``choose`` = the documents the budget takes from it (recommended
share × budget ÷ mean tokens per document): more than the stream holds means repeating it
(``repeat`` = choose ÷ documents is shown beside each stream and stays within the job's epoch
limit), and the epoch is their sum. Without one, streams get ``proportion`` = the document
shares.

``--data-dir DIR`` writes ``DIR/<domain>/`` as an MDS dataset (``streaming.MDSWriter``, one
``text`` column, one document per sample: the domain's documents, train and held-out, decoded
from mixopt's token files with the job's tokenizer) and sizes the streams by the documents and
tokens actually written. Needs the ``mosaicml-streaming`` package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixopt.errors import MixoptError
from mixopt.export.base import Exporter, number
from mixopt.export.blend import Blend, Source
from mixopt.export.units import DomainMeasure, document_shares


@dataclass(frozen=True)
class Written:
    """An MDS dataset mixopt wrote: where, and how many documents and tokens it holds."""

    path: Path
    measure: DomainMeasure


class StreamingExport(Exporter):
    name = "streaming"
    title = "MosaicML streaming streams"
    unit = "examples"
    writes_data = True

    def render(self, blend: Blend) -> str:
        active = blend.active(self.unit)
        measures = blend.measures
        if blend.data_dir is not None:
            written = {
                s.name: write_mds_dataset(blend, s, blend.data_dir / s.name) for s, _ in active
            }
            measures = {name: w.measure for name, w in written.items()}
            root = str(blend.data_dir.resolve())
            where = f"MDS datasets written by mixopt (documents of mixopt's token files) in {root}"
        else:
            root = "/path/to/mds"
            where = (
                "one MDS dataset per domain, one document per sample (write them with "
                "streaming.MDSWriter, or export with --data-dir DIR)"
            )
        names = [s.name for s, _ in active]
        tokens = blend.weights  # the recommended token shares (the job's tokenizer)
        shares = document_shares({n: tokens[n] for n in names}, measures)
        lines, epoch = [], ""
        if blend.target_tokens:
            chosen = {
                n: max(1, round(tokens[n] * blend.target_tokens / measures[n].tokens_per_document))
                for n in names
            }
            epoch = f"  # None: the sum of choose ({sum(chosen.values())} documents)"
            for s, _ in active:
                repeat = chosen[s.name] / measures[s.name].documents
                limit = f", limit {s.max_epochs:g}" if s.max_epochs else ""
                lines.append(
                    f'    Stream(local=f"{{MDS_ROOT}}/{s.name}", choose={chosen[s.name]}),'
                    f"  # repeat {repeat:.3f}{limit}"
                )
            sizing = (
                f"choose: documents per epoch for the target budget of {int(blend.target_tokens)} "
                "tokens (repeat = choose / the stream's documents)"
            )
        else:
            lines = [
                f'    Stream(local=f"{{MDS_ROOT}}/{n}", proportion={number(shares[n])}),'
                for n in names
            ]
            sizing = "proportion: document shares (no target budget: set epoch_size yourself)"
        listed = "\n".join(lines)
        notes = (where, sizing)
        return (
            self.header(blend, *notes)
            + f"""from streaming import Stream, StreamingDataset

MDS_ROOT = {root!r}  # where each domain's MDS dataset is (or pass remote=... too)

streams = [
{listed}
]
dataset = StreamingDataset(streams=streams, epoch_size=None, shuffle=True, batch_size=1){epoch}
"""
        )


def write_mds_dataset(blend: Blend, source: Source, out: Path) -> Written:
    """Write ``source``'s documents (train, then held-out) to ``out`` as an MDS dataset."""
    try:
        from streaming import MDSWriter
    except ImportError:
        raise MixoptError(
            "streaming --data-dir writes MDS datasets with MosaicML streaming: "
            "pip install mosaicml-streaming"
        ) from None
    from mixopt.data.tokenizer import read_tokenizer
    from mixopt.export.retokenize import batches, iter_documents, open_tokens

    manifest = blend.manifest
    assert manifest is not None and source.dtype is not None
    if out.exists() and any(out.iterdir()):
        raise MixoptError(f"{out}: already exists and is not empty; choose another --data-dir")
    decoder = read_tokenizer(Path(manifest.tokenizer_path))
    tokens = nbytes = documents = 0
    with MDSWriter(out=str(out), columns={"text": "str"}) as writer:
        for path in (source.token_file, source.val_file):
            data = open_tokens(source.name, path, source.dtype, "streaming --data-dir writes")
            for batch in batches(iter_documents(data, manifest.eot_id, len(data))):
                texts = decoder.decode_batch([d.tolist() for d in batch], skip_special_tokens=True)
                for text in texts:
                    writer.write({"text": text})
                tokens += sum(len(d) + 1 for d in batch)  # + the end-of-text of each
                nbytes += sum(len(t.encode()) for t in texts)
                documents += len(texts)
    if documents == 0:
        raise MixoptError(f"domain {source.name!r}: no documents to write")
    return Written(out, DomainMeasure(tokens, nbytes, documents))
