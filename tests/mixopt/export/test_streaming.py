"""streaming: the domains written as real MDS datasets (``--data-dir``) and read back with the
real MosaicML ``StreamingDataset`` through the exported streams: every stream gets the samples
the export asked for, and the token shares they realise match the recommendation.

mosaicml-streaming 0.13 pins numpy<2.2 and transformers<5 and would pull a second torch, so
``scripts/test.sh`` installs it without its dependencies into ``.venv/extras/streaming``
(``$MIXOPT_STREAMING_PATH`` elsewhere) and these tests run it in a subprocess with that folder on
its path. Importing ``streaming`` imports its vision datasets, hence torchvision, which has no
build for this CPU torch here: the subprocess gets an empty ``torchvision`` module for that
import (the MDS writer and reader used are streaming's own).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.mixopt.export.conftest import DOMAINS, domain_texts, ratio_within_error
from tests.processes import REPO

TORCHVISION_STUB = {
    "__init__.py": "",
    "datasets.py": "from torch.utils.data import Dataset as VisionDataset\n\n\nclass CIFAR10:\n    pass\n",
    "transforms/__init__.py": "",
    "transforms/functional.py": "def to_tensor(image):\n    raise NotImplementedError\n",
}

READ_BACK = """
import hashlib, json, sys
from tokenizers import Tokenizer
from mixopt.export import export

job, out, tokenizer_path, epoch_size = sys.argv[1:5]
text = export(job, "streaming", data_dir=out)
if epoch_size != "-":
    text = text.replace("epoch_size=None", f"epoch_size={epoch_size}")
namespace = {}
exec(compile(text, "<export>", "exec"), namespace)
dataset = namespace["dataset"]
tokenizer = Tokenizer.from_file(tokenizer_path)
samples = [sample["text"] for sample in dataset]
unique = sorted(set(samples))
lengths = {t: len(e.ids) + 1 for t, e in zip(unique, tokenizer.encode_batch(unique, add_special_tokens=False))}
print(json.dumps({
    "export": text,
    "samples": [[hashlib.sha1(t.encode()).hexdigest(), lengths[t]] for t in samples],
}))
"""


def _streaming_path() -> Path | None:
    given = os.environ.get("MIXOPT_STREAMING_PATH")
    path = Path(given) if given else Path(sys.prefix) / "extras" / "streaming"
    return path if (path / "streaming" / "__init__.py").is_file() else None


@pytest.fixture(scope="module")
def streaming_env(tmp_path_factory) -> dict[str, str]:
    path = _streaming_path()
    if path is None:
        message = (
            "mosaicml-streaming is not installed in .venv/extras/streaming "
            "(scripts/test.sh installs it; or set MIXOPT_STREAMING_PATH)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    stub = tmp_path_factory.mktemp("stub")
    for name, text in TORCHVISION_STUB.items():
        (stub / "torchvision" / name).parent.mkdir(parents=True, exist_ok=True)
        (stub / "torchvision" / name).write_text(text)
    home = tmp_path_factory.mktemp("home")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(path), str(stub)]),
    }


def _read_back(job: Path, out: Path, manifest: dict, env: dict, epoch_size: int | None) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            READ_BACK,
            str(job),
            str(out),
            manifest["tokenizer_path"],
            str(epoch_size) if epoch_size else "-",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=out.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _job_with_target(job: Path, tmp_path: Path, tokens: float | None) -> Path:
    copy = tmp_path / "job-copy"
    shutil.copytree(job, copy)
    spec = yaml.safe_load((copy / "spec.yaml").read_text())
    spec["target"]["tokens"] = tokens
    (copy / "spec.yaml").write_text(yaml.safe_dump(spec))
    return copy


def _owners() -> dict[str, str]:
    return {
        hashlib.sha1(text.encode()).hexdigest(): domain
        for domain in DOMAINS
        for text in domain_texts(domain)
    }


def test_mds_proportions_realise_the_token_shares(
    job, rec_weights, manifest, tmp_path, streaming_env
):
    copy = _job_with_target(job, tmp_path, None)
    out = _read_back(copy, tmp_path / "mds", manifest, streaming_env, epoch_size=8_000)
    assert "proportion=" in out["export"] and "choose=" not in out["export"]
    for domain in DOMAINS:  # mixopt wrote one MDS dataset per domain, one document per sample
        index = json.loads((tmp_path / "mds" / domain / "index.json").read_text())
        assert sum(s["samples"] for s in index["shards"]) == manifest[domain]["documents"]
    owners = _owners()
    names = np.array([owners[h] for h, _ in out["samples"]])  # every sample is a real document
    tokens = np.array([n for _, n in out["samples"]], dtype=float)
    assert len(tokens) == 8_000
    for domain in DOMAINS:
        ratio_within_error(np.where(names == domain, tokens, 0.0), tokens, rec_weights[domain])


def test_mds_choose_follows_the_target_budget(job, rec_weights, manifest, tmp_path, streaming_env):
    target = 300_000
    copy = _job_with_target(job, tmp_path, target)
    out = _read_back(copy, tmp_path / "mds", manifest, streaming_env, epoch_size=None)
    owners = _owners()
    names = [owners[h] for h, _ in out["samples"]]
    for domain in DOMAINS:
        m = manifest[domain]
        per_document = (m["train_tokens"] + m["val_tokens"]) / m["documents"]
        choose = round(rec_weights[domain] * target / per_document)
        assert f'{domain}", choose={choose})' in out["export"]
        assert names.count(domain) == choose  # streaming gives each stream exactly its choose
    tokens = np.array([n for _, n in out["samples"]], dtype=float)
    assert tokens.sum() == pytest.approx(target, rel=0.02)
    for domain in DOMAINS:
        share = tokens[np.array(names) == domain].sum() / tokens.sum()
        assert share == pytest.approx(rec_weights[domain], abs=0.02)


def test_streaming_without_data_dir_describes_the_streams(job, rec_weights):
    from mixopt.export import export

    text = export(job, "streaming")
    assert 'MDS_ROOT = "/path/to/mds"' in text or "MDS_ROOT = '/path/to/mds'" in text
    assert "one document per sample" in text
    assert "choose: documents per epoch for the target budget of 1000 tokens" in text
    assert "# repeat 0.083, limit 2" in text  # code: 1 of its 12 documents, within 2 epochs
