"""TrainConfig, the lr schedule, and short end-to-end training runs on learnable patterns."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from proxies import runtime
from proxies.config import GPTConfig
from proxies.data import DomainTokens
from proxies.presets import get_preset
from proxies.train import StepInfo, TrainConfig, lr_at, smooth_curve, train_proxy

from .conftest import MakeDomain, pattern, web_and_code

VOCAB, T = 64, 32
MODEL = get_preset("tiny", vocab_size=VOCAB, seq_len=T)


def quick(**changes: object) -> TrainConfig:
    """A fast CPU training config (~40k tokens: 78 steps of 16 x 32)."""
    base: dict[str, object] = dict(
        train_tokens=40_000, batch_size=16, lr=1e-2, eval_tokens=2_000, device="cpu", threads=1
    )
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def domains(make_domain: MakeDomain) -> list[DomainTokens]:
    """Two learnable domains and a third (weight 0 in the tests) with a too-short train file."""
    math = make_domain("math", pattern(11, 10, VOCAB, 2), pattern(11, 3_000, VOCAB, 2), val_bytes=1)
    return [*web_and_code(make_domain, VOCAB), math]


# ----------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_tokens": 0}, "train_tokens"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"schedule": "linear"}, "schedule"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"eval_tokens": 0}, "eval_tokens"),
        ({"device": "tpu"}, "device"),
        ({"threads": 0}, "threads"),
    ],
)
def test_train_config_validation(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quick(**change)


# ------------------------------------------------------------------------------- lr schedule


def test_lr_schedule_cosine() -> None:
    kw: dict = dict(lr=1.0, warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    lrs = [lr_at(s, 100, **kw) for s in range(100)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # linear warmup
    assert lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)  # peak
    assert lrs[-1] == pytest.approx(0.1)  # ends at min_lr on the last step
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # decays monotonically
    mid = 10 + (99 - 10) / 2
    assert lr_at(int(mid), 100, **kw) == pytest.approx(0.55, abs=0.02)


def test_lr_schedule_constant_and_edge_cases() -> None:
    const = [
        lr_at(s, 50, lr=2.0, warmup_steps=5, min_lr_ratio=0.1, schedule="constant")
        for s in range(50)
    ]
    assert const[:5] == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0]) and set(const[5:]) == {2.0}
    assert lr_at(0, 1, lr=1.0, warmup_steps=0, min_lr_ratio=0.5, schedule="cosine") == 1.0
    assert lr_at(0, 10, lr=1.0, warmup_steps=0, min_lr_ratio=0.5, schedule="cosine") == 1.0


def test_smooth_curve() -> None:
    curve = smooth_curve([float(x) for x in np.linspace(5, 1, 1000)], tokens_per_step=10)
    assert 40 <= len(curve) <= 51
    assert curve[-1][0] == 10_000 and curve[0][1] == pytest.approx(5.0, abs=0.1)
    assert all(a[1] > b[1] for a, b in itertools.pairwise(curve))
    assert smooth_curve([2.0], 4) == [(4, 2.0)]


# ---------------------------------------------------------------------------------- training


def test_training_learns_and_reports_every_domain(domains: list[DomainTokens]) -> None:
    seen_threads: list[int] = []
    steps: list[StepInfo] = []

    def on_step(info: StepInfo) -> None:
        seen_threads.append(torch.get_num_threads())
        steps.append(info)

    torch.set_num_threads(2)  # the trainer must switch to its 1 thread and back
    before = torch.get_num_threads()
    result = train_proxy(
        MODEL, quick(), domains, {"web": 0.5, "code": 0.5, "math": 0.0}, on_step=on_step
    )
    assert torch.get_num_threads() == before  # restored

    m = result.metrics
    assert set(m) == {"val_loss/web", "val_loss/code", "val_loss/math", "bpb/web", "bpb/math"}
    assert m["val_loss/web"] < 0.5 and m["val_loss/code"] < 0.5  # vs ln(64) = 4.16 at start
    assert math.isfinite(m["val_loss/math"])  # never trained on, but still evaluated
    assert m["bpb/web"] == pytest.approx(m["val_loss/web"] / math.log(2) * 3_000 / 9_000)

    n_steps = math.ceil(40_000 / (16 * T))
    assert result.steps == n_steps == len(steps)
    assert result.tokens == n_steps * 16 * T and steps[-1].tokens == result.tokens
    assert result.flops == pytest.approx(MODEL.flops_per_token() * result.tokens)
    assert set(seen_threads) == {1} and result.threads == 1  # threads honoured
    assert result.device == "cpu"
    assert result.n_params == MODEL.non_embedding_params()
    assert result.n_params_total == MODEL.total_params()
    assert result.curve[0][1] > 3.0 and result.curve[-1][1] < 0.5 and len(result.curve) <= 51
    assert steps[-1].lr == pytest.approx(1e-2 * 0.1)
    assert result.wall_s >= result.train_s + result.eval_s > 0 and result.tokens_per_s > 0
    json.dumps(result.to_dict())  # plain data


def test_same_seed_same_result(domains: list[DomainTokens]) -> None:
    cfg = quick(train_tokens=5_000, schedule="constant", threads=1, seed=3)
    weights = {"web": 0.3, "code": 0.7}
    a = train_proxy(MODEL, cfg, domains, weights)
    b = train_proxy(MODEL, cfg, domains, weights)
    assert a.metrics == b.metrics and a.curve == b.curve
    c = train_proxy(MODEL, quick(train_tokens=5_000, schedule="constant", seed=4), domains, weights)
    assert c.metrics != a.metrics


def test_train_errors(domains: list[DomainTokens], make_domain: MakeDomain) -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        train_proxy(MODEL, quick(), domains, {"web": 0.5, "code": 0.2})
    with pytest.raises(ValueError, match="'math' has weight > 0"):
        train_proxy(MODEL, quick(), domains, {"web": 0.5, "math": 0.5})
    short_val = make_domain("short", pattern(5, 1000, VOCAB), pattern(5, 20, VOCAB))
    with pytest.raises(ValueError, match="fewer than one window"):
        train_proxy(MODEL, quick(), [*domains, short_val], {"web": 1.0})
    big = make_domain("big", np.full(1000, VOCAB), np.full(100, 1))
    with pytest.raises(ValueError, match="training batch has token id 64 outside"):
        train_proxy(MODEL, quick(), [big], {"big": 1.0})
    big_val = make_domain("big_val", np.full(1000, 1), np.full(100, VOCAB + 5))
    with pytest.raises(ValueError, match="'big_val' val file has token id 69"):
        train_proxy(MODEL, quick(), [*domains, big_val], {"web": 1.0})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_requested_without_cuda(domains: list[DomainTokens]) -> None:
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        train_proxy(MODEL, quick(device="cuda"), domains, {"web": 1.0})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_training(domains: list[DomainTokens]) -> None:
    result = train_proxy(MODEL, quick(device="auto"), domains, {"web": 0.5, "code": 0.5})
    assert result.device.startswith("cuda")
    assert result.metrics["val_loss/web"] < 0.5


def test_untied_model_trains(domains: list[DomainTokens]) -> None:
    cfg = GPTConfig(**{**MODEL.to_dict(), "tie_embeddings": False, "n_layer": 1})
    result = train_proxy(cfg, quick(train_tokens=20_000, grad_clip=0.0), domains, {"web": 1.0})
    assert result.metrics["val_loss/web"] < 1.0


def test_cpu_settings_are_restored_after_training() -> None:

    from proxies.train import _cpu_settings

    torch.set_num_threads(2)
    before = torch.get_num_threads()
    with _cpu_settings(torch.device("cpu"), threads=1):
        assert torch.get_num_threads() == 1
        assert torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0  # flushed
    assert torch.get_num_threads() == before
    assert torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() != 0.0  # restored


# --------------------------------------------------------------------- trainer additions


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"micro_batch_size": 5}, "micro_batch_size must divide batch_size"),
        ({"micro_batch_size": 0}, "micro_batch_size"),
        ({"eval_every": -1}, "eval_every"),
        ({"metrics": "accuracy"}, "metrics must be a list of names"),
        ({"keep_checkpoint": True}, "need a checkpoint_dir"),
    ],
)
def test_train_config_validation_of_new_fields(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quick(**change)


def test_micro_batches_give_the_same_training(domains: list[DomainTokens]) -> None:
    cfg = quick(train_tokens=10 * 16 * T)
    whole = train_proxy(MODEL, cfg, domains, {"web": 0.5, "code": 0.5})
    parts = train_proxy(
        MODEL,
        quick(train_tokens=10 * 16 * T, micro_batch_size=4),
        domains,
        {"web": 0.5, "code": 0.5},
    )
    for key, value in whole.metrics.items():
        assert parts.metrics[key] == pytest.approx(value, rel=1e-4), key
    for a, b in zip(whole.curve, parts.curve, strict=True):
        assert a[1] == pytest.approx(b[1], rel=1e-5)


def test_moe_balancing_scope_matters_only_with_micro_batches(domains: list[DomainTokens]) -> None:
    def run(scope: str, micro: int | None) -> dict[str, float]:
        model = get_preset(
            "tiny", vocab_size=VOCAB, seq_len=T, arch="moe", aux_scope=scope, aux_loss_coef=0.1
        )
        cfg = quick(train_tokens=6 * 16 * T, micro_batch_size=micro)
        return train_proxy(model, cfg, domains, {"web": 0.5, "code": 0.5}).metrics

    assert run("micro", None) == run("global", None)  # one micro-batch: the same counts
    assert run("micro", 4) != run("global", 4)


def test_periodic_evaluation_and_result_fields(domains: list[DomainTokens]) -> None:
    model = get_preset("tiny", vocab_size=VOCAB, seq_len=T, arch="moe")
    result = train_proxy(
        model, quick(train_tokens=10 * 16 * T, eval_every=4), domains, {"web": 1.0}
    )
    assert [e["step"] for e in result.evals] == [4, 8]  # the end (10) is result.metrics
    assert [e["tokens"] for e in result.evals] == [4 * 16 * T, 8 * 16 * T]
    assert result.evals[0]["metrics"]["val_loss/web"] > result.metrics["val_loss/web"]
    assert len(result.evals[0]["expert_counts"]) == 2
    assert result.arch == "moe" and result.n_params_active == model.active_params()
    assert result.n_params == model.non_embedding_params() > result.n_params_active
    assert result.expert_counts and result.metrics["moe/dropped_tokens"] == 0
    json.dumps(result.to_dict())


def test_compile_without_a_cpp_compiler_trains_eagerly(
    domains: list[DomainTokens], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "cpp_compiler", lambda: None)
    cfg = quick(train_tokens=3 * 16 * T)
    a = train_proxy(MODEL, cfg, domains, {"web": 1.0})
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        b = train_proxy(MODEL, quick(train_tokens=3 * 16 * T, compile=True), domains, {"web": 1.0})
    assert a.metrics == b.metrics


@pytest.mark.slow  # inductor compiles the step: ~1 min cold on 2 cores
@pytest.mark.skipif(runtime.cpp_compiler() is None, reason="needs a C++ compiler")
def test_compile_on_cpu_trains_a_nano_proxy(
    domains: list[DomainTokens], recwarn: pytest.WarningsRecorder
) -> None:
    nano = get_preset("nano", vocab_size=VOCAB, seq_len=T)
    cfg = quick(train_tokens=6 * 16 * T, compile=True)
    compiled = train_proxy(nano, cfg, domains, {"web": 1.0})
    fallbacks = [w for w in recwarn if "training eagerly" in str(w.message)]
    assert not fallbacks, fallbacks[0].message  # it compiled, not fell back to eager
    eager = train_proxy(nano, quick(train_tokens=6 * 16 * T), domains, {"web": 1.0})
    loss = compiled.metrics["val_loss/web"]
    assert math.isfinite(loss) and loss < math.log(VOCAB)
    assert loss == pytest.approx(eager.metrics["val_loss/web"], rel=1e-3)
