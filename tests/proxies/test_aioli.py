"""Aioli: the exponentiated-gradient update, the least-squares fit of the interaction matrix, sweeps
that leave the model untouched, and short real runs on synthetic domains (a learnable pattern
against uniform noise)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from proxies.aioli import (
    fit_interactions,
    measure_sweeps,
    round_steps,
    sweep_mixtures,
    train_aioli,
    update_proportions,
)
from proxies.config import StageConfig, TrainConfig
from proxies.data import DomainTokens, MixtureBatches, ValidationWindows
from proxies.optim import build_optimizer
from proxies.presets import get_preset
from proxies.step import train_step
from proxies.train import train_proxy

from .conftest import MakeDomain, pattern_and_noise

VOCAB, T = 64, 32
MODEL = get_preset("tiny", vocab_size=VOCAB, seq_len=T)
STEPS = 40
UNIFORM = {"pattern": 0.5, "noise": 0.5}


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


# ------------------------------------------------------------------------ the update and the fit


def test_update_matches_a_hand_computed_example() -> None:
    # column sums of A: [1, 0, 2]; p * exp(0.5 * [1, 0, 2]) = [0.824361, 0.3, 0.543656], sum
    # 1.668017 -> [0.494216, 0.179854, 0.325930]; * 0.9 + 0.1 / 3 -> [0.478128, 0.195202, 0.326670]
    A = [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    new = update_proportions([0.5, 0.3, 0.2], A, eta=0.5, smoothing=0.1)
    assert new == pytest.approx([0.478128, 0.195202, 0.326670], abs=2e-6)
    same = update_proportions([0.5, 0.3, 0.2], np.array(A) + 7.0, eta=0.5, smoothing=0.1)
    assert same == pytest.approx(new)  # a shift common to every column cancels


def test_update_is_stable_keeps_zeros_and_respects_the_floor() -> None:
    p = np.array([0.2, 0.8, 0.0])
    huge = update_proportions(p, [[1e4, 0, 0], [0, 0, 0], [0, 0, 0]], eta=1.0, smoothing=0.0)
    assert huge == pytest.approx([1.0, 0.0, 0.0]) and np.all(np.isfinite(huge))
    assert update_proportions(p, np.zeros((3, 3)), eta=0.0, smoothing=0.0) == pytest.approx(p)
    floored = update_proportions(p, [[1e4, 0, 0], [0, 0, 0], [0, 0, 0]], eta=1.0, smoothing=0.3)
    assert floored == pytest.approx([0.8, 0.1, 0.1]) and floored.sum() == pytest.approx(1.0)


def test_fit_recovers_a_known_matrix_and_solves_least_squares_by_hand() -> None:
    A = np.array([[2.0, 1.0], [0.0, 1.0]])
    mixtures = sweep_mixtures([0.5, 0.5], 0.5)
    assert mixtures == pytest.approx(np.array([[0.75, 0.25], [0.25, 0.75]]))
    changes = -mixtures @ A.T  # [[-1.75, -0.25], [-1.25, -0.75]]
    assert changes == pytest.approx(np.array([[-1.75, -0.25], [-1.25, -0.75]]))
    assert fit_interactions(mixtures, changes) == pytest.approx(A)
    # three sweeps, two unknowns per row: row 0 targets [1, 2, 1.2] are not exactly fittable;
    # normal equations [[1.25, .25], [.25, 1.25]] a = [1.6, 2.6] -> a = [0.9, 1.9]
    over = fit_interactions([[1, 0], [0, 1], [0.5, 0.5]], [[-1, 0], [-2, -1], [-1.2, -0.5]])
    assert over == pytest.approx(np.array([[0.9, 1.9], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="n >= m"):
        fit_interactions([[1.0, 0.0]], [[-1.0, 0.0]])


def test_rounds_split_the_steps() -> None:
    assert round_steps(10, 3) == [4, 3, 3]
    assert round_steps(4, 4) == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="rounds"):
        round_steps(3, 4)


@pytest.mark.parametrize(
    ("knobs", "name"),
    [
        ({"rounds": 0}, "rounds"),
        ({"rounds": 2.0}, "rounds"),
        ({"rounds": 1_000}, "rounds"),  # more rounds than the run's 40 steps
        ({"sweep_steps": 0}, "sweep_steps"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.5}, "delta"),
        ({"eta": -1.0}, "eta"),
        ({"eta": math.inf}, "eta"),
        ({"eta": math.nan}, "eta"),
        ({"smoothing": -0.1}, "smoothing"),
        ({"smoothing": 1.0}, "smoothing"),
    ],
)
def test_bad_knobs_raise_naming_them(
    knobs: dict[str, float], name: str, domains: list[DomainTokens]
) -> None:
    with pytest.raises(ValueError, match=name):
        train_aioli(MODEL, quick(), domains, UNIFORM, **knobs)  # type: ignore[arg-type]


def test_stages_are_refused(domains: list[DomainTokens]) -> None:
    staged = quick(stages=(StageConfig(0.5), StageConfig(0.5)))
    with pytest.raises(ValueError, match="stages"):
        train_aioli(MODEL, staged, domains, UNIFORM)
    with pytest.raises(ValueError, match="unknown"):
        train_aioli(MODEL, quick(), domains, {"pattern": 0.5, "web": 0.5})


# ------------------------------------------------------------------------------ sweeps


def test_sweeps_restore_the_model_and_optimizer_exactly(domains: list[DomainTokens]) -> None:
    cfg = quick()
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = MODEL.build().train()
    optimizer = build_optimizer(model, cfg, device)
    batches = MixtureBatches(domains, UNIFORM, T, cfg.batch_size, seed=0)
    for _ in range(2):  # an optimizer with state
        train_step(model, optimizer, next(batches), grad_clip=1.0, device=device)
    params = {k: v.clone() for k, v in model.state_dict().items()}
    moments = {(i, key): v.clone() for i, s in optimizer.state_dict()["state"].items()
               for key, v in s.items()}  # fmt: skip
    windows = ValidationWindows(domains, T, 16 * (T + 1))
    mixtures = sweep_mixtures([0.5, 0.5], 0.5)

    def sweep() -> np.ndarray:
        return measure_sweeps(model, optimizer, domains, mixtures, windows, cfg, steps=3,
                              lr=1e-2, stream=7, device=device)  # fmt: skip

    first = sweep()
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())
    after = optimizer.state_dict()["state"]
    assert all(torch.equal(after[i][key], v) for (i, key), v in moments.items())
    assert first.shape == (2, 2) and np.all(first != 0)
    assert first[0, 0] < first[1, 0]  # more pattern data lowers the pattern loss more
    again = sweep()  # a restore that aliased the saved state would start here from elsewhere
    assert np.array_equal(again, first)
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())


def test_without_updates_the_main_run_is_the_trainers(domains: list[DomainTokens]) -> None:
    """eta = 0, smoothing = 0: the mixture never moves, and the sweeps (trained, then rolled back)
    leave the main run exactly ``train_proxy``'s: same batches, same lr schedule, same model."""
    cfg = quick(train_tokens=12 * 16 * T)
    weights = {"pattern": 0.7, "noise": 0.3}
    result = train_aioli(MODEL, cfg, domains, weights, rounds=3, eta=0.0, smoothing=0.0)
    assert result.metrics == train_proxy(MODEL, cfg, domains, weights).metrics
    assert [e["weights"] for e in result.schedule] == [pytest.approx(weights)] * 3


# ------------------------------------------------------------------------------ real runs


def test_learnable_domain_gains_weight_over_noise(domains: list[DomainTokens]) -> None:
    """A fresh model already predicts noise near log V (nothing left to learn) while the pattern's
    loss falls fast: the first round's fit favours the pattern, so its weight rises above 0.5."""
    result = train_aioli(MODEL, quick(), domains, UNIFORM, rounds=4, sweep_steps=4)
    first = result.schedule[0]["weights"]
    assert first["pattern"] > 0.5
    assert result.weights["pattern"] > result.weights["noise"]
    A = np.array(result.interactions[0])
    assert A.shape == (2, 2) and A[0, 0] > A[0, 1]  # pattern data helps the pattern loss most
    assert [e["round"] for e in result.schedule] == [0, 1, 2, 3]
    assert sum(e["share"] for e in result.schedule) == pytest.approx(1.0)
    assert sum(e["steps"] for e in result.schedule) == STEPS == result.steps
    for entry in result.schedule:
        assert sum(entry["weights"].values()) == pytest.approx(1.0)
        assert min(entry["weights"].values()) >= result.smoothing / 2 - 1e-12
    assert sum(result.weights.values()) == pytest.approx(1.0)
    assert result.weights["pattern"] == pytest.approx(
        sum(e["share"] * e["weights"]["pattern"] for e in result.schedule)
    )
    assert result.sweep_tokens == 4 * 2 * 4 * 16 * T
    assert result.tokens == STEPS * 16 * T + result.sweep_tokens
    assert result.metrics["val_loss/pattern"] < result.metrics["val_loss/noise"]
    assert result.initial_weights == UNIFORM
    assert not result.collapsed and result.warnings == []
    assert result.to_dict()["schedule"] == result.schedule


def test_deterministic_and_the_seed_matters(domains: list[DomainTokens]) -> None:
    cfg = quick(train_tokens=12 * 16 * T)
    first = train_aioli(MODEL, cfg, domains, UNIFORM, rounds=2, sweep_steps=2).to_dict()
    again = train_aioli(MODEL, cfg, domains, UNIFORM, rounds=2, sweep_steps=2).to_dict()
    for run in (first, again):
        run.pop("wall_s")
    assert first == again
    other = train_aioli(MODEL, dataclasses.replace(cfg, seed=1), domains, UNIFORM, rounds=2,
                        sweep_steps=2)  # fmt: skip
    assert other.interactions != first["interactions"]


def test_collapse_and_a_bad_design_are_warned(domains: list[DomainTokens]) -> None:
    cfg = quick(train_tokens=8 * 16 * T)
    result = train_aioli(MODEL, cfg, domains, UNIFORM, rounds=2, sweep_steps=2, delta=1.0,
                         eta=50.0, smoothing=0.01)  # fmt: skip
    assert result.collapsed and max(result.schedule[0]["weights"].values()) >= 0.9
    assert any("collapsed" in w and "round 0" in w for w in result.warnings)
    assert not any("conditioned" in w or "rows" in w for w in result.warnings)
    tiny = train_aioli(MODEL, cfg, domains, UNIFORM, rounds=2, sweep_steps=2, delta=0.005)
    assert any("badly conditioned" in w for w in tiny.warnings)
    # 0.005 * 16 rows * 2 steps: the sweeps share their random numbers and differ in ~0.16 rows
    assert any("rows" in w for w in tiny.warnings) and not tiny.collapsed
