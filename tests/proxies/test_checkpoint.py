"""Checkpoints: an interrupted run resumes to exactly the result of an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from proxies.checkpoint import (
    CHECKPOINT_FILE,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from proxies.config import GPTConfig
from proxies.data import DomainTokens
from proxies.presets import get_preset
from proxies.train import StepInfo, TrainConfig, TrainResult, train_proxy, train_stacked

from .conftest import MakeDomain, web_and_code

VOCAB, T = 64, 32
WEIGHTS = {"web": 0.4, "code": 0.6}


class Interrupt(Exception):
    pass


def stop_at(step: int):  # type: ignore[no-untyped-def]
    def on_step(info: StepInfo) -> None:
        if info.step == step:
            raise Interrupt

    return on_step


@pytest.fixture
def domains(make_domain: MakeDomain) -> list[DomainTokens]:
    return web_and_code(make_domain, VOCAB)


def config(**changes: object) -> TrainConfig:
    base: dict[str, object] = dict(
        train_tokens=30 * 8 * T, batch_size=8, lr=5e-3, eval_tokens=500, device="cpu",
        threads=1, eval_every=7, metrics=("accuracy",),
    )  # fmt: skip
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


def assert_same_run(a: TrainResult, b: TrainResult) -> None:
    assert a.metrics == b.metrics
    assert a.curve == b.curve
    assert a.evals == b.evals
    assert a.expert_counts == b.expert_counts


@pytest.mark.parametrize(
    ("model", "changes"),
    [
        (get_preset("tiny", vocab_size=VOCAB, seq_len=T), {"micro_batch_size": 4}),
        (get_preset("tiny", vocab_size=VOCAB, seq_len=T, arch="moe", balance="aux_free"), {}),
    ],
    ids=["dense-micro-batches", "moe-aux-free"],
)
def test_interrupted_run_resumes_to_the_same_result(
    domains: list[DomainTokens], tmp_path: Path, model: GPTConfig, changes: dict[str, object]
) -> None:
    full = train_proxy(model, config(**changes), domains, WEIGHTS)
    folder = tmp_path / "ckpt"
    resumable = config(checkpoint_dir=str(folder), checkpoint_every=5, **changes)
    with pytest.raises(Interrupt):
        train_proxy(model, resumable, domains, WEIGHTS, on_step=stop_at(23))
    assert (folder / CHECKPOINT_FILE).is_file()  # saved at step 20
    resumed = train_proxy(model, resumable, domains, WEIGHTS)
    assert resumed.resumed_from_step == 20 and full.resumed_from_step == 0
    assert_same_run(resumed, full)
    assert len(resumed.evals) == 4 and [e["step"] for e in resumed.evals] == [7, 14, 21, 28]
    assert not folder.exists()  # removed after success


def test_stacked_run_resumes_too(domains: list[DomainTokens], tmp_path: Path) -> None:
    model = get_preset("tiny", vocab_size=VOCAB, seq_len=T)
    mixtures = [WEIGHTS, {"web": 1.0}]
    full = train_stacked(model, config(), domains, mixtures, seeds=[0, 1])
    resumable = config(checkpoint_dir=str(tmp_path / "stack"))  # every tenth: 3 steps
    with pytest.raises(Interrupt):
        train_stacked(model, resumable, domains, mixtures, seeds=[0, 1], on_step=stop_at(10))
    resumed = train_stacked(model, resumable, domains, mixtures, seeds=[0, 1])
    assert [r.resumed_from_step for r in resumed] == [9, 9]
    for a, b in zip(resumed, full, strict=True):
        assert_same_run(a, b)


def test_kept_checkpoint_skips_training_on_rerun(
    domains: list[DomainTokens], tmp_path: Path
) -> None:
    model = get_preset("tiny", vocab_size=VOCAB, seq_len=T, n_layer=1)
    cfg = config(checkpoint_dir=str(tmp_path / "keep"), keep_checkpoint=True, eval_every=0)
    first = train_proxy(model, cfg, domains, WEIGHTS)
    again = train_proxy(model, cfg, domains, WEIGHTS)
    assert again.resumed_from_step == again.steps == 30
    assert_same_run(first, again)


def test_checkpoint_of_another_run_is_refused(domains: list[DomainTokens], tmp_path: Path) -> None:
    model = get_preset("tiny", vocab_size=VOCAB, seq_len=T, n_layer=1)
    folder = str(tmp_path / "ckpt")
    with pytest.raises(Interrupt):
        train_proxy(model, config(checkpoint_dir=folder), domains, WEIGHTS, on_step=stop_at(5))
    with pytest.raises(ValueError, match="written by a different run"):
        train_proxy(model, config(checkpoint_dir=folder), domains, {"web": 1.0})
    with pytest.raises(ValueError, match="written by a different run"):
        train_proxy(model, config(checkpoint_dir=folder, lr=1e-3), domains, WEIGHTS)
    # settings that do not change the result may differ
    train_proxy(model, config(checkpoint_dir=folder, checkpoint_every=2), domains, WEIGHTS)


def test_save_is_atomic_and_remove_cleans_up(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    path = save_checkpoint(folder, {"step": 3, "w": torch.ones(2)}, fingerprint="abc")
    assert path == folder / CHECKPOINT_FILE and [p.name for p in folder.iterdir()] == [
        CHECKPOINT_FILE
    ]
    state = load_checkpoint(folder, fingerprint="abc")
    assert state is not None and state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert load_checkpoint(tmp_path / "none", fingerprint="abc") is None
    remove_checkpoint(folder)
    assert not folder.exists()


def test_checkpoint_settings_need_a_folder() -> None:
    with pytest.raises(ValueError, match="need a checkpoint_dir"):
        TrainConfig(train_tokens=10, checkpoint_every=5)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0"):
        TrainConfig(train_tokens=10, checkpoint_dir="x", checkpoint_every=-1)


def test_a_corrupt_checkpoint_is_set_aside_and_training_starts_over(
    domains: list[DomainTokens], tmp_path: Path
) -> None:
    model = get_preset("tiny", vocab_size=VOCAB, seq_len=T, n_layer=1)
    folder = tmp_path / "ckpt"
    full = train_proxy(model, config(), domains, WEIGHTS)
    with pytest.raises(Interrupt):
        train_proxy(model, config(checkpoint_dir=str(folder)), domains, WEIGHTS, on_step=stop_at(9))
    path = folder / CHECKPOINT_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # a disk filled mid-write
    with pytest.warns(RuntimeWarning, match="unreadable"):
        rerun = train_proxy(model, config(checkpoint_dir=str(folder)), domains, WEIGHTS)
    assert rerun.resumed_from_step == 0
    assert (folder / (CHECKPOINT_FILE + ".corrupt")).is_file()
    assert_same_run(rerun, full)
