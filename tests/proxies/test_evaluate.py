"""Evaluation: metric hooks by name or import path, MoE expert loads, stacked evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from proxies.data import DomainTokens, ValidationWindows
from proxies.evaluate import (
    MetricContext,
    evaluate_models,
    get_metric,
    metric_hooks,
    register_metric,
    registered_metrics,
)
from proxies.presets import get_preset
from proxies.stacked import StackedGPT
from proxies.train import TrainConfig, train_proxy

from .conftest import MakeDomain, web_and_code

VOCAB, T = 64, 32
CPU = torch.device("cpu")


def window_count(ctx: MetricContext) -> float:
    """A hook importable as 'tests.proxies.test_evaluate:window_count'."""
    return float(sum(len(ctx.windows.windows[name]) for name in ctx.windows.names))


@pytest.fixture
def domains(make_domain: MakeDomain) -> list[DomainTokens]:
    return web_and_code(make_domain, VOCAB)


def test_register_and_resolve_hooks() -> None:
    calls = []

    @register_metric("probe_test")
    def probe(ctx: MetricContext) -> dict[str, float]:
        calls.append(ctx.step)
        return {"a": 1.0}

    assert "probe_test" in registered_metrics() and "accuracy" in registered_metrics()
    assert get_metric("probe_test") is probe
    assert get_metric("tests.proxies.test_evaluate:window_count") is window_count
    hooks = metric_hooks(["probe_test", "tests.proxies.test_evaluate:window_count"])
    assert list(hooks) == ["probe_test", "window_count"]  # logged under the attribute name
    with pytest.raises(ValueError, match=r"unknown metric hook 'nope'; registered: .*accuracy"):
        get_metric("nope")
    with pytest.raises(ValueError, match="cannot be imported"):
        get_metric("tests.proxies.test_evaluate:missing")
    with pytest.raises(ValueError, match="non-empty without"):
        register_metric("a/b", probe)


def test_hooks_run_at_every_evaluation(domains: list[DomainTokens]) -> None:
    cfg = TrainConfig(
        train_tokens=20 * 8 * T, batch_size=8, lr=1e-2, eval_tokens=330, device="cpu", threads=1,
        eval_every=10, metrics=["accuracy", "tests.proxies.test_evaluate:window_count"],
    )  # fmt: skip
    model = get_preset("tiny", vocab_size=VOCAB, seq_len=T)
    result = train_proxy(model, cfg, domains, {"web": 0.5, "code": 0.5})
    assert cfg.metrics == ("accuracy", "tests.proxies.test_evaluate:window_count")
    m = result.metrics
    assert m["window_count"] == 20.0  # 330 // 33 = 10 windows per domain
    assert 0.6 < m["accuracy/web"] <= 1.0 and 0.6 < m["accuracy/code"] <= 1.0  # learnt patterns
    first = result.evals[0]["metrics"]
    assert result.evals[0]["step"] == 10 and first["accuracy/web"] < m["accuracy/web"]
    with pytest.raises(ValueError, match="unknown metric hook 'missing'"):
        train_proxy(
            model, TrainConfig(train_tokens=10, metrics=("missing",)), domains, {"web": 1.0}
        )


def test_expert_counts_cover_every_evaluated_token(domains: list[DomainTokens]) -> None:
    cfg = get_preset("tiny", vocab_size=VOCAB, seq_len=T, arch="moe")
    torch.manual_seed(0)
    model = cfg.build()
    windows = ValidationWindows(domains, T, eval_tokens=200)  # 6 windows per domain
    (evaluation,) = evaluate_models(model, windows, batch_size=4, device=CPU)
    tokens = 2 * 6 * T
    assert len(evaluation.expert_counts) == cfg.n_layer
    for layer in evaluation.expert_counts:
        assert len(layer) == cfg.n_experts and sum(layer) == tokens * cfg.top_k
    worst = max(max(c) / (sum(c) / len(c)) for c in evaluation.expert_counts)
    assert evaluation.metrics["moe/max_load"] == pytest.approx(worst)
    assert evaluation.metrics["moe/dropped_tokens"] == 0.0
    assert model.training  # left in the mode it was in


def test_stacked_evaluation_equals_each_model_alone(domains: list[DomainTokens]) -> None:
    cfg = get_preset("tiny", vocab_size=VOCAB, seq_len=T, arch="moe")
    singles = []
    for seed in range(3):
        torch.manual_seed(seed)
        singles.append(cfg.build())
    stacked = StackedGPT.from_models(singles)
    windows = ValidationWindows(domains, T, eval_tokens=200)
    together = evaluate_models(
        stacked, windows, batch_size=4, device=CPU, hooks=metric_hooks(["accuracy"])
    )
    for single, ours in zip(singles, together, strict=True):
        (alone,) = evaluate_models(
            single, windows, batch_size=4, device=CPU, hooks=metric_hooks(["accuracy"])
        )
        assert ours.expert_counts == alone.expert_counts
        assert set(ours.metrics) == set(alone.metrics)
        for key, value in alone.metrics.items():
            assert ours.metrics[key] == pytest.approx(value, rel=1e-5), key
    assert together[0].metrics["val_loss/web"] != together[1].metrics["val_loss/web"]
    bpb = together[0].metrics["bpb/web"]
    assert bpb == pytest.approx(together[0].metrics["val_loss/web"] / math.log(2) * 3000 / 9000)
