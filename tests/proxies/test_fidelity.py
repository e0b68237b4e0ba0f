"""Fidelity: a golden loss curve on the tiny real corpus, and (slow) proxies that tell mixtures
apart on the demo corpus.

The golden test trains the tiny preset (dense and MoE) for a fixed number of steps on the asset
corpus (``tests/assets/corpus``, byte-level tokens, so it depends on no tokenizer) and compares
the curve and the final validation losses with the recorded ones in
``tests/assets/proxies/golden_tiny.json``. Float differences between machines stay far below the
tolerance; a change to the model, initialisation, optimizer, schedule or data order does not.
After an intended change, re-record with ``PROXIES_UPDATE_GOLDEN=1 pytest tests/proxies/test_fidelity.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from proxies.data import DomainTokens
from proxies.presets import get_preset
from proxies.train import TrainConfig, train_proxy

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "assets" / "corpus"
GOLDEN = ROOT / "tests" / "assets" / "proxies" / "golden_tiny.json"
TOLERANCE = 0.01  # nats, on every curve point and final validation loss
MIXTURE = {"code": 0.4, "bible": 0.3, "dictionary": 0.3}


def corpus_texts() -> dict[str, bytes]:
    """The asset corpus's three domains as UTF-8 bytes, documents joined by blank lines."""
    import pyarrow.parquet as pq

    code = [json.loads(line)["text"] for line in (CORPUS / "code" / "stdlib_excerpts.jsonl").open()]
    bible = [p.read_text() for p in sorted((CORPUS / "bible").glob("*.txt"))]
    dictionary = pq.read_table(CORPUS / "dictionary" / "gcide_entries.parquet")["text"].to_pylist()
    return {
        name: "\n\n".join(docs).encode()
        for name, docs in (("code", code), ("bible", bible), ("dictionary", dictionary))
    }


def byte_domains(folder: Path) -> list[DomainTokens]:
    """Byte-level token files (ids 0-255): the last 10% of each domain is its validation split."""
    domains = []
    for name, data in corpus_texts().items():
        tokens = np.frombuffer(data, dtype=np.uint8).astype(np.uint16)
        cut = int(len(tokens) * 0.9)
        train, val = folder / f"{name}.train.bin", folder / f"{name}.val.bin"
        tokens[:cut].tofile(train)
        tokens[cut:].tofile(val)
        domains.append(DomainTokens(name, train, val, "uint16", cut, len(tokens) - cut))
    return domains


def run(arch: str, folder: Path) -> dict[str, Any]:
    model = get_preset("tiny", vocab_size=256, seq_len=64, arch=arch)
    cfg = TrainConfig(
        train_tokens=40 * 8 * 64, batch_size=8, lr=3e-3, eval_tokens=1024, seed=0,
        device="cpu", threads=1,
    )  # fmt: skip
    result = train_proxy(model, cfg, byte_domains(folder), MIXTURE)
    metrics = {k: v for k, v in result.metrics.items() if k.startswith("val_loss/")}
    return {"curve": [list(p) for p in result.curve], "metrics": metrics}


@pytest.mark.parametrize("arch", ["dense", "moe"])
def test_golden_loss_curve(arch: str, tmp_path: Path) -> None:
    got = run(arch, tmp_path)
    if os.environ.get("PROXIES_UPDATE_GOLDEN") == "1":
        golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
        golden[arch] = got
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"  {json.dumps(a)}: {json.dumps(golden[a], sort_keys=True)}" for a in sorted(golden)
        ]
        GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
        pytest.skip("golden curve re-recorded")
    want = json.loads(GOLDEN.read_text())[arch]
    assert [t for t, _ in got["curve"]] == [t for t, _ in want["curve"]]
    for (tokens, loss), (_, expected) in zip(got["curve"], want["curve"], strict=True):
        assert loss == pytest.approx(expected, abs=TOLERANCE), f"train loss at {tokens} tokens"
    assert set(got["metrics"]) == set(want["metrics"])
    for key, expected in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(expected, abs=TOLERANCE), key
    assert got["curve"][-1][1] < got["curve"][0][1] - 1.0  # it learnt something


# ------------------------------------------------------------------------------ demo corpus

DEMO = ROOT / "experiments" / "demo"
DEMO_DOMAINS = ("code", "bible", "dictionary")


def demo_corpus() -> Path:
    """experiments/demo/corpus, built by its script when missing (its Debian sources are
    installed by the ``demo_sources`` fixture)."""
    corpus = DEMO / "corpus"
    if not all((corpus / f"{d}.jsonl").is_file() for d in DEMO_DOMAINS):
        done = subprocess.run(
            [sys.executable, str(DEMO / "build_corpus.py"), "--out", str(corpus)],
            capture_output=True,
            text=True,
        )
        missing = [d for d in DEMO_DOMAINS if not (corpus / f"{d}.jsonl").is_file()]
        if missing:
            pytest.fail(
                f"demo corpus domains {missing} could not be built: "
                f"{done.stdout[-300:]} {done.stderr[-300:]}"
            )
    return corpus


@pytest.mark.slow
def test_domain_loss_falls_as_its_weight_rises(
    make_spec: Any, tmp_path: Path, demo_sources: None
) -> None:
    """Three mixtures move 70% of the weight from code to bible (dictionary stays at 20%):
    bible's validation loss must fall at each step and code's must rise."""
    from mixopt.data import prepare_data

    corpus = demo_corpus()
    spec = make_spec(
        domains=[{"name": d, "paths": [str(corpus / f"{d}.jsonl")]} for d in DEMO_DOMAINS],
        tokenizer={"vocab_size": 512, "sample_bytes_per_domain": 300_000},
    )
    manifest = prepare_data(spec, log=lambda _: None)
    domains = [
        DomainTokens(s.name, s.train_path, s.val_path, s.dtype, s.train_bytes, s.val_bytes)
        for s in manifest.domains.values()
    ]
    model = get_preset("tiny", vocab_size=manifest.vocab_size, seq_len=128)
    cfg = TrainConfig(
        train_tokens=400_000, batch_size=16, lr=3e-3, eval_tokens=16_384, seed=0, device="cpu",
        threads=1,
    )  # fmt: skip
    losses: dict[str, list[float]] = {"bible": [], "code": []}
    for bible_weight in (0.05, 0.4, 0.75):
        weights = {"bible": bible_weight, "code": 0.8 - bible_weight, "dictionary": 0.2}
        result = train_proxy(model, cfg, domains, weights)
        for name in losses:
            losses[name].append(result.metrics[f"val_loss/{name}"])
    bible, code = losses["bible"], losses["code"]
    assert bible[0] > bible[1] > bible[2], losses
    assert code[0] < code[1] < code[2], losses
