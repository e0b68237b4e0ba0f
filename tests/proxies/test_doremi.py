"""DoReMi: the Group-DRO weight update, the per-domain excess, and short real runs on synthetic
domains (a learnable pattern against uniform noise)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from proxies.config import StageConfig, TrainConfig
from proxies.data import DomainTokens
from proxies.doremi import (
    domain_excess,
    mixture_warnings,
    train_doremi,
    train_reference,
    update_domain_weights,
)
from proxies.presets import get_preset

from .conftest import MakeDomain, pattern_and_noise

VOCAB, T = 64, 32
MODEL = get_preset("tiny", vocab_size=VOCAB, seq_len=T)
STEPS = 40


def quick(**changes: object) -> TrainConfig:
    """40 steps of 16 x 32 tokens on one CPU thread."""
    base: dict[str, object] = dict(
        train_tokens=STEPS * 16 * T, batch_size=16, lr=1e-2, eval_tokens=1_000, device="cpu",
        threads=1,
    )  # fmt: skip
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture
def domains(make_domain: MakeDomain) -> list[DomainTokens]:
    return pattern_and_noise(make_domain, VOCAB)


UNIFORM = {"pattern": 0.5, "noise": 0.5}

# ------------------------------------------------------------------------------ the update


def test_update_matches_a_hand_computed_example() -> None:
    # alpha * exp(0.5 * excess) = [0.5 e^0.5, 0.3, 0.2 e] = [0.824361, 0.3, 0.543656]
    # sum 1.668017 -> [0.494216, 0.179854, 0.325930]; * 0.9 + 0.1 / 3 -> [0.478128, 0.195202, 0.326670]
    new, smoothed = update_domain_weights(
        [0.5, 0.3, 0.2], [1.0, 0.0, 2.0], step_size=0.5, smoothing=0.1
    )
    assert new == pytest.approx([0.494216, 0.179854, 0.325930], abs=2e-6)
    assert smoothed == pytest.approx([0.478128, 0.195202, 0.326670], abs=2e-6)


def test_no_excess_leaves_the_weights_and_huge_excess_is_stable() -> None:
    alpha = np.array([0.2, 0.5, 0.3])
    new, _ = update_domain_weights(alpha, [0.0, 0.0, 0.0], step_size=1.0, smoothing=0.0)
    assert new == pytest.approx(alpha)
    new, smoothed = update_domain_weights(alpha, [1e4, 0.0, 0.0], step_size=1.0, smoothing=0.0)
    assert np.all(np.isfinite(new)) and new[0] == pytest.approx(1.0)
    assert smoothed == pytest.approx(new)


def test_smoothing_floor_holds_and_weights_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    alpha = np.full(4, 0.25)
    for _ in range(200):  # push hard towards one domain, at random
        excess = rng.exponential(5.0, size=4) * (rng.random(4) < 0.5)
        new, alpha = update_domain_weights(alpha, excess, step_size=2.0, smoothing=0.02)
        assert new.sum() == pytest.approx(1.0) and alpha.sum() == pytest.approx(1.0)
        assert alpha.min() >= 0.02 / 4 - 1e-12
    _, floored = update_domain_weights(alpha, [500.0, 0, 0, 0], step_size=1.0, smoothing=0.02)
    assert floored[1:] == pytest.approx([0.005] * 3, rel=1e-6)  # exactly smoothing / k


@pytest.mark.parametrize(
    ("knobs", "name"),
    [
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": -1.0}, "step_size"),
        ({"step_size": math.nan}, "step_size"),
        ({"step_size": math.inf}, "step_size"),
        ({"smoothing": -0.1}, "smoothing"),
        ({"smoothing": 1.0}, "smoothing"),
    ],
)
def test_bad_knobs_raise_naming_them(
    knobs: dict[str, float], name: str, domains: list[DomainTokens]
) -> None:
    full = {"step_size": 1.0, "smoothing": 1e-3, **knobs}
    step_size, smoothing = full["step_size"], full["smoothing"]
    with pytest.raises(ValueError, match=name):
        update_domain_weights([0.5, 0.5], [0.0, 0.0], step_size=step_size, smoothing=smoothing)
    with pytest.raises(ValueError, match=name):  # before anything trains
        train_doremi(MODEL, quick(), domains, UNIFORM, step_size=step_size, smoothing=smoothing)


def test_bad_weights_and_stages_raise(domains: list[DomainTokens]) -> None:
    with pytest.raises(ValueError, match="equal-length"):
        update_domain_weights([0.5, 0.5], [0.0], step_size=1.0, smoothing=0.0)
    with pytest.raises(ValueError, match="noise"):
        train_doremi(MODEL, quick(), domains, {"pattern": 1.0, "noise": 0.0})
    staged = quick(stages=(StageConfig(0.5), StageConfig(0.5)))
    with pytest.raises(ValueError, match="stages"):
        train_doremi(MODEL, staged, domains, UNIFORM)


def test_excess_clips_per_token_and_averages_per_domain() -> None:
    proxy = torch.tensor([[3.0, 1.0], [2.0, 2.0], [5.0, 5.0]])
    reference = torch.tensor([[1.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    rows = torch.tensor([0, 0, 2])  # domain 1 is absent
    excess = domain_excess(proxy, reference, rows, 3)
    # domain 0: row 0 -> mean(max(2, 0), max(-1, 0)) = 1 (not 0.5: the clip is per token); row 1 -> 1
    assert excess.tolist() == pytest.approx([1.0, 0.0, 5.0])


# ------------------------------------------------------------------------------ real runs


def test_learnable_domain_outweighs_noise(domains: list[DomainTokens]) -> None:
    """The proxy lags the reference on the pattern, not on noise: the pattern gains weight.
    (step_size 0.1: at 1 a two-domain toy swings to the pattern at once, and the neglected
    proxy's noise predictions drift from uniform, see ``proxies.doremi``.)"""
    result = train_doremi(MODEL, quick(), domains, UNIFORM, step_size=0.1)
    assert result.weights["pattern"] > result.weights["noise"]
    assert sum(result.weights.values()) == pytest.approx(1.0)
    first = result.trajectory[1]  # the first recorded step after the start
    assert first["excess"]["pattern"] > first["excess"]["noise"]
    assert first["weights"]["pattern"] > 0.5
    steps = [point["step"] for point in result.trajectory]
    assert steps[0] == 0 and steps[-1] == STEPS == result.steps and steps == sorted(steps)
    assert result.tokens == 2 * STEPS * 16 * T == 2 * result.reference_tokens
    assert result.reference["val_loss/pattern"] < result.reference["val_loss/noise"]
    assert set(result.proxy) == set(result.reference) >= {"val_loss/pattern", "val_loss/noise"}
    assert not result.collapsed and result.warnings == []
    assert result.to_dict()["weights"] == result.weights


def test_deterministic_and_a_given_reference_gives_the_same_mixture(
    domains: list[DomainTokens],
) -> None:
    cfg = quick(train_tokens=20 * 16 * T)
    first = train_doremi(MODEL, cfg, domains, UNIFORM).to_dict()
    again = train_doremi(MODEL, cfg, domains, UNIFORM).to_dict()
    for run in (first, again):
        run.pop("wall_s")
    assert first == again
    state, trained = train_reference(MODEL, cfg, domains, UNIFORM)
    reused = train_doremi(MODEL, cfg, domains, UNIFORM, reference=state)
    assert reused.weights == first["weights"]
    assert reused.reference == pytest.approx(trained.metrics) and reused.reference_tokens == 0
    other = train_doremi(MODEL, dataclasses.replace(cfg, seed=1), domains, UNIFORM, reference=state)
    assert other.weights != first["weights"]


def test_micro_batches_match_the_whole_batch(domains: list[DomainTokens]) -> None:
    cfg = quick(train_tokens=10 * 16 * T)
    state, _ = train_reference(MODEL, cfg, domains, UNIFORM)
    whole = train_doremi(MODEL, cfg, domains, UNIFORM, reference=state)
    split = train_doremi(MODEL, quick(train_tokens=10 * 16 * T, micro_batch_size=4), domains,
                         UNIFORM, reference=state)  # fmt: skip
    assert split.weights == pytest.approx(whole.weights, rel=1e-4)
    assert split.proxy == pytest.approx(whole.proxy, rel=1e-4)


def test_collapse_and_floor_are_reported() -> None:
    names = ["a", "b", "c"]
    collapsed, warnings = mixture_warnings(
        names, np.array([0.92, 0.05, 0.03]), np.array([0.998, 0.001, 0.001]), 0.003
    )
    assert collapsed
    assert any("collapsed" in w and "'a'" in w for w in warnings)
    floored = [w for w in warnings if "floor" in w]
    assert len(floored) == 2 and "'b'" in floored[0] and "'c'" in floored[1]
    collapsed, warnings = mixture_warnings(
        names, np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.3, 0.3]), 0.003
    )
    assert not collapsed and warnings == []
