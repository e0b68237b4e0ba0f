"""The token shares each per-example export realises, measured with the real libraries.

    python experiments/bench/export_shares.py JOB_DIR [--draws 20000]

For a finished job: draws examples the way each framework does with the exported weights and
counts the tokens (the job's tokenizer, one end-of-text per document) each domain gets:

- ``hf``: ``datasets.interleave_datasets`` over the hf-python snippet's own ``load_domain``
  datasets (repeated so no domain runs out), with the exported per-document probabilities; and,
  for contrast, with the token shares used as row probabilities (what exports did before,
  ``hf_naive``). ``*_expected`` columns are the limit of infinitely many draws (row probability
  times the domain's mean document length), which tells sampling noise from bias;
- ``torchtitan``: the exported config's real ``InterleavedHuggingFaceTextDataLoader`` (each draw
  is one packed ``seq_len`` sequence, so draw shares are token shares);
- ``streaming``: the domains written as MDS datasets (``--data-dir``) and read back by a real
  ``StreamingDataset`` through the exported streams (needs mosaicml-streaming in
  ``.venv/extras/streaming`` or ``$MIXOPT_STREAMING_PATH``, see scripts/test.sh; run in a
  subprocess with an empty torchvision module, as the tests do).

Prints a table, then one JSON object (the last line).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def token_lengths(tokenizer_path: str, texts: list[str]) -> list[int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_path)
    return [len(e.ids) + 1 for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def shares(tokens: dict[str, float]) -> dict[str, float]:
    total = sum(tokens.values())
    return {k: v / total for k, v in tokens.items()}


def hf_shares(job: Path, tokenizer: str, draws: int) -> dict[str, dict[str, float]]:
    from datasets import Dataset, interleave_datasets

    from mixopt.export import export

    namespace: dict[str, Any] = {}
    exec(compile(export(job, "hf-python"), "<hf-python>", "exec"), namespace)
    probabilities = namespace["PROBABILITIES"]
    token_weights = json.loads(export(job, "hf-json"))["token_shares"]
    parts = []
    mean_tokens: dict[str, float] = {}
    for name in probabilities:
        lengths = token_lengths(tokenizer, list(namespace["load_domain"](name)["text"]))
        mean_tokens[name] = sum(lengths) / len(lengths)
        rows = Dataset.from_dict({"domain": [name] * len(lengths), "tokens": lengths})
        parts.append(rows.repeat(draws // len(lengths) + 1))
    out = {}
    for label, weights in (("hf", list(probabilities.values())), ("hf_naive", token_weights)):
        # what infinitely many draws give: row probability times the domain's mean document
        # length, over the documents load_domain reads (separates sampling noise from bias)
        expected = dict(zip(probabilities, weights, strict=True))
        out[f"{label}_expected"] = shares({k: w * mean_tokens[k] for k, w in expected.items()})
        mixed = interleave_datasets(parts, probabilities=weights, seed=0).select(range(draws))
        counts: Counter[str] = Counter()
        for domain, n in zip(mixed["domain"], mixed["tokens"], strict=True):
            counts[domain] += n
        out[label] = shares(dict(counts))
    return out


def torchtitan_shares(job: Path, tokenizer: str, draws: int) -> dict[str, float]:
    from torchtitan.components.tokenizer import HuggingFaceTokenizer
    from torchtitan.hf_datasets.text_datasets import InterleavedHuggingFaceTextDataLoader

    from mixopt.export import export

    namespace: dict[str, Any] = {}
    exec(compile(export(job, "torchtitan"), "<torchtitan>", "exec"), namespace)
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(tokenizer, Path(folder) / "tokenizer.json")
        loader = InterleavedHuggingFaceTextDataLoader(
            namespace["dataloader"],
            dp_world_size=1,
            dp_rank=0,
            tokenizer=HuggingFaceTokenizer(tokenizer_path=folder),
            seq_len=128,
            local_batch_size=1,
        )
        interleaved = loader.dataset  # torchtitan's interleaver over its packed sources
        interleaved._datasets = [Tagged(d) for d in interleaved._datasets]
        picks = Counter(tag for tag, _ in itertools.islice(iter(interleaved), draws))
    return shares({k.removeprefix("mixopt-"): float(v) for k, v in picks.items()})


class Tagged:
    """A torchtitan source whose samples (packed ``seq_len`` sequences) carry its name."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __iter__(self) -> Any:
        for sample in self.inner:
            yield self.inner.dataset_name, sample

    def state_dict(self) -> Any:
        return self.inner.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.inner.load_state_dict(state)

    def reloop(self) -> None:
        self.inner.reloop()


STREAMING_READ = """
import hashlib, json, sys
from mixopt.export import export
job, out, epoch_size = sys.argv[1:4]
text = export(job, "streaming", data_dir=out).replace("epoch_size=None", f"epoch_size={epoch_size}")
namespace = {}
exec(compile(text, "<streaming>", "exec"), namespace)
print(json.dumps([hashlib.sha1(s["text"].encode()).hexdigest() for s in namespace["dataset"]]))
"""


def streaming_shares(job: Path, tokenizer: str, draws: int) -> dict[str, float] | None:
    given = os.environ.get("MIXOPT_STREAMING_PATH")
    path = Path(given) if given else Path(sys.prefix) / "extras" / "streaming"
    if not (path / "streaming" / "__init__.py").is_file():
        return None
    import yaml

    from mixopt.job import JobDir

    manifest = JobDir(job).load_manifest()
    assert manifest is not None
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "job"
        shutil.copytree(job, copy, ignore=shutil.ignore_patterns("mlartifacts", "mlflow.db"))
        spec = yaml.safe_load((copy / "spec.yaml").read_text())
        spec["target"]["tokens"] = None  # proportions (per document), not a budget's choose
        (copy / "spec.yaml").write_text(yaml.safe_dump(spec))
        stub = Path(tmp) / "stub" / "torchvision"
        (stub / "transforms").mkdir(parents=True)
        (stub / "__init__.py").write_text("")
        (stub / "datasets.py").write_text(
            "from torch.utils.data import Dataset as VisionDataset\nclass CIFAR10:\n    pass\n"
        )
        (stub / "transforms" / "__init__.py").write_text("")
        (stub / "transforms" / "functional.py").write_text(
            "def to_tensor(x):\n    raise ValueError\n"
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": tmp,
            "PYTHONPATH": os.pathsep.join([str(REPO), str(path), str(stub.parent)]),
        }
        proc = subprocess.run(
            [sys.executable, "-c", STREAMING_READ, str(copy), str(Path(tmp) / "mds"), str(draws)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        hashes = json.loads(proc.stdout.strip().splitlines()[-1])
    # which domain and how many tokens each sample is: decode the domains' documents the way
    # the MDS writer did, from the job's token files
    owner: dict[str, tuple[str, int]] = {}
    from tokenizers import Tokenizer

    from mixopt.export.retokenize import iter_documents, open_tokens

    decoder = Tokenizer.from_file(manifest.tokenizer_path)
    for name, shards in manifest.domains.items():
        for file in (shards.train_path, shards.val_path):
            data = open_tokens(name, file, shards.dtype, "the benchmark reads")
            docs = list(iter_documents(data, manifest.eot_id, len(data)))
            for doc, text in zip(
                docs, decoder.decode_batch([d.tolist() for d in docs]), strict=True
            ):
                owner[hashlib.sha1(text.encode()).hexdigest()] = (name, len(doc) + 1)
    counts: Counter[str] = Counter()
    for digest in hashes:
        name, n = owner[digest]
        counts[name] += n
    return shares({k: float(v) for k, v in counts.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path)
    parser.add_argument("--draws", type=int, default=20_000)
    args = parser.parse_args(argv)
    if "HF_HOME" in os.environ:
        return measure(args.job, args.draws)
    # the datasets cache (load_dataset's arrow files) goes to a scratch folder, not ~/.cache
    with tempfile.TemporaryDirectory(prefix="export-shares-hf-") as hf_home:
        os.environ["HF_HOME"] = hf_home
        return measure(args.job, args.draws)


def measure(job_dir: Path, draws: int) -> int:
    """Prints the table and the JSON line for the finished job in ``job_dir``."""
    from mixopt.export import exact_weights
    from mixopt.job import JobDir

    job = JobDir(job_dir)
    recommended = exact_weights(job.load_recommendation()["weights"])
    manifest = job.load_manifest()
    assert manifest is not None
    results: dict[str, Any] = {"recommended": recommended}
    results.update(hf_shares(job_dir, manifest.tokenizer_path, draws))
    results["torchtitan"] = torchtitan_shares(job_dir, manifest.tokenizer_path, draws)
    results["streaming"] = streaming_shares(job_dir, manifest.tokenizer_path, draws)
    columns = [k for k, v in results.items() if v is not None]
    widths = {c: max(12, len(c) + 2) for c in columns}
    print(f"{'domain':<12}" + "".join(f"{c:>{widths[c]}}" for c in columns))
    for domain in recommended:
        row = "".join(f"{results[c].get(domain, 0.0):>{widths[c]}.4f}" for c in columns)
        print(f"{domain:<12}{row}")
    gaps = {
        c: max(abs(results[c].get(d, 0.0) - w) for d, w in recommended.items())
        for c in columns
        if c != "recommended"
    }
    print("max |realised - recommended|: " + ", ".join(f"{c} {g:.4f}" for c, g in gaps.items()))
    print(json.dumps({"job": str(job_dir), "draws": draws, **results, "max_gap": gaps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
