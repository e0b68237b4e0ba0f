"""Staged training: the mixture changes at stage boundaries, each stage drawn at its weights from
its own stream; the wsd schedule; bad stages fail clearly; a staged run resumes exactly."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from proxies.config import StageConfig, TrainConfig, stage_steps
from proxies.data import DomainTokens, MixtureBatches
from proxies.presets import get_preset
from proxies.train import StepInfo, lr_at, train_proxy, train_stacked

from .conftest import MakeDomain, pattern, web_and_code

VOCAB, T, B = 64, 32, 8
MODEL = get_preset("tiny", vocab_size=VOCAB, seq_len=T)
N_STEPS = 12
FIXED = {"web": 0.9, "code": 0.1}  # the first stage's fixed mixture
ANNEAL = {"web": 0.2, "code": 0.3, "math": 0.5}  # the run's mixture, used by the second stage


def three_domains(make_domain: MakeDomain) -> list[DomainTokens]:
    """web, code and math token files."""
    math_ = make_domain("math", pattern(11, 20_000, VOCAB, 2), pattern(11, 3_000, VOCAB, 2))
    return [*web_and_code(make_domain, VOCAB), math_]


@pytest.fixture
def domains(make_domain: MakeDomain) -> list[DomainTokens]:
    return three_domains(make_domain)


def staged(**changes: object) -> TrainConfig:
    base: dict[str, object] = dict(
        train_tokens=N_STEPS * B * T, batch_size=B, lr=5e-3, eval_tokens=500, device="cpu",
        threads=1, schedule="wsd", warmup_ratio=0.0,
        stages=(StageConfig(0.75, FIXED, name="main"), StageConfig(0.25, name="anneal")),
    )  # fmt: skip
    return TrainConfig(**{**base, **changes})  # type: ignore[arg-type]


def drawn(
    domains: list[DomainTokens], weights: dict[str, float], seed: int, stream: int, steps: int
) -> dict[str, int]:
    """Tokens per domain that ``steps`` batches of a fresh stream draw (recounted here)."""
    batches = MixtureBatches(domains, weights, T, B, seed=seed, stream=stream)
    counts = {d.name: 0 for d in domains}
    for _ in range(steps):
        _, which = batches.sample()
        for i in which:
            counts[batches.domains[i].name] += T
    return counts


def test_two_stages_draw_each_stage_at_its_weights(domains: list[DomainTokens]) -> None:
    infos: list[StepInfo] = []
    result = train_proxy(MODEL, staged(seed=5), domains, ANNEAL, on_step=infos.append)
    assert result.steps == N_STEPS and result.stage_steps == [9, 3]
    assert [info.stage for info in infos] == [0] * 9 + [1] * 3
    first, second = result.stage_tokens
    # Every stage drew exactly its steps' tokens, only from its own domains...
    assert sum(first.values()) == 9 * B * T and sum(second.values()) == 3 * B * T
    assert first["math"] == 0 and second["math"] > 0 and second["web"] < first["web"]
    # ... exactly what its own stream (stream k of the seed) draws at its weights.
    assert first == drawn(domains, FIXED, seed=5, stream=0, steps=9)
    assert second == drawn(domains, ANNEAL, seed=5, stream=1, steps=3)
    assert math.isfinite(result.metrics["val_loss/math"])
    json.dumps(result.to_dict())  # plain data


def test_stage_weights_over_many_draws(domains: list[DomainTokens]) -> None:
    """The counted shares follow the weights (binomial: within 4 standard deviations)."""
    rows = 200 * B
    for weights in (FIXED, ANNEAL):
        counts = drawn(domains, weights, seed=1, stream=1, steps=200)
        for name, weight in weights.items():
            share = counts[name] / (rows * T)
            assert abs(share - weight) <= 4 * math.sqrt(weight * (1 - weight) / rows), name


def test_same_seed_shares_the_fixed_stage(domains: list[DomainTokens]) -> None:
    """Two runs that differ only in the searched (last) stage train identically until it starts:
    the common-random-numbers property holds stage by stage."""
    other = {"web": 0.5, "code": 0.5}
    lrs: dict[str, list[float]] = {"a": [], "b": []}
    a = train_proxy(MODEL, staged(), domains, ANNEAL, on_step=lambda i: lrs["a"].append(i.loss))
    b = train_proxy(MODEL, staged(), domains, other, on_step=lambda i: lrs["b"].append(i.loss))
    assert a.stage_tokens[0] == b.stage_tokens[0]
    assert lrs["a"][:9] == lrs["b"][:9]  # bit-identical through the fixed stage
    assert a.stage_tokens[1] != b.stage_tokens[1] and a.metrics != b.metrics


def test_stacked_staged_runs_match_separate_ones(domains: list[DomainTokens]) -> None:
    cfg = staged(train_tokens=6 * B * T)
    mixtures = [ANNEAL, {"code": 1.0}]
    together = train_stacked(MODEL, cfg, domains, mixtures, seeds=[0, 1])
    for k, (weights, seed) in enumerate(zip(mixtures, [0, 1], strict=True)):
        alone = train_proxy(MODEL, dataclasses.replace(cfg, seed=seed), domains, weights)
        assert together[k].stage_tokens == alone.stage_tokens
        for name, value in alone.metrics.items():
            assert together[k].metrics[name] == pytest.approx(value, rel=1e-4, abs=1e-5)


def test_unstaged_run_is_one_stage(domains: list[DomainTokens]) -> None:
    cfg = staged(stages=(), schedule="cosine")
    result = train_proxy(MODEL, cfg, domains, FIXED)
    assert result.stage_steps == [N_STEPS]
    assert result.stage_tokens == [drawn(domains, FIXED, seed=0, stream=0, steps=N_STEPS)]
    assert cfg.to_dict()["stages"] == []


def test_staged_run_resumes_exactly(domains: list[DomainTokens], tmp_path: Path) -> None:
    class Interrupt(Exception):
        pass

    def stop_at_step_10(info: StepInfo) -> None:
        if info.step == 10:
            raise Interrupt

    cfg = staged(checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=4)
    with pytest.raises(Interrupt):
        train_proxy(MODEL, cfg, domains, ANNEAL, on_step=stop_at_step_10)
    resumed = train_proxy(MODEL, cfg, domains, ANNEAL)
    whole = train_proxy(MODEL, staged(), domains, ANNEAL)
    assert resumed.resumed_from_step == 8
    assert resumed.metrics == whole.metrics and resumed.curve == whole.curve
    assert resumed.stage_tokens == whole.stage_tokens


# ------------------------------------------------------------------------------ lr schedule


def test_wsd_schedule_shape() -> None:
    kw: dict = dict(lr=1.0, warmup_steps=10, min_lr_ratio=0.5, schedule="wsd")
    lrs = [lr_at(s, 100, decay_steps=20, **kw) for s in range(100)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # the same warmup
    assert set(lrs[10:80]) == {1.0}  # stable
    assert lrs[80:] == pytest.approx([(20 - i) / 20 for i in range(20)])  # linear decay
    assert lrs[-1] == pytest.approx(1 / 20) and all(x > 0 for x in lrs)  # zero after the end
    assert all(a > b for a, b in itertools.pairwise(lrs[80:]))
    # No decay length: the decay takes every step after the warmup.
    whole = [lr_at(s, 50, **kw) for s in range(50)]
    assert whole[10] == 1.0 and whole[11:] == pytest.approx([(40 - i) / 40 for i in range(1, 40)])
    # A decay longer than the run after warmup starts after the warmup.
    assert lr_at(10, 20, decay_steps=15, **kw) == 1.0


def test_training_uses_wsd_over_the_last_stage(domains: list[DomainTokens]) -> None:
    infos: list[StepInfo] = []
    train_proxy(MODEL, staged(), domains, ANNEAL, on_step=infos.append)
    assert [i.lr for i in infos] == pytest.approx([5e-3] * 9 + [5e-3 * d / 3 for d in (3, 2, 1)])


# ----------------------------------------------------------------------------- bad stages


def test_stage_steps_rounding() -> None:
    assert stage_steps([0.75, 0.25], 12) == [9, 3]
    assert stage_steps([1 / 3] * 3, 10) == [4, 3, 3]
    assert stage_steps([0.999, 0.001], 10) == [9, 1]  # every stage gets a step
    assert sum(stage_steps([0.1, 0.2, 0.3, 0.4], 7)) == 7
    with pytest.raises(ValueError, match="3 stages need at least one optimizer step each"):
        stage_steps([0.5, 0.25, 0.25], 2)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{"share": 0.5, "weights": {"web": 1.0}}], r"shares must sum to 1 .*\[0.5\]"),
        ([{"share": 0.0}, {"share": 1.0}], r"stage 0: share must be in \(0, 1\], got 0.0"),
        (
            [{"share": 0.5, "name": "main"}, {"share": 0.5, "weights": {"web": 0.7}}],
            r"stage 1: weights must sum to 1",
        ),
        (
            [{"share": 0.5, "weights": {"web": -0.5, "code": 1.5}, "name": "main"}, {"share": 0.5}],
            r"stage 0 \('main'\): weights must map domain names to finite weights >= 0",
        ),
        ([{"share": 1.0, "mixture": {}}], r"stage 0: unknown stage setting\(s\) \['mixture'\]"),
        ([{"weights": {"web": 1.0}}], "stage 0: needs a share"),
        ("main", "must be a list of stages"),
    ],
)
def test_bad_stages_raise_naming_the_stage(stages: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        staged(stages=stages)
    assert str(error.value).startswith("TrainConfig.stages ")


def test_stages_from_plain_data_equal_stage_configs() -> None:
    cfg = staged()
    again = TrainConfig(**{**cfg.to_dict(), "stages": cfg.to_dict()["stages"]})
    assert again == cfg and isinstance(again.stages[0], StageConfig)


def test_bad_stages_at_training_time(domains: list[DomainTokens]) -> None:
    unknown = staged(stages=({"share": 0.5, "weights": {"books": 1.0}}, {"share": 0.5}))
    with pytest.raises(ValueError, match=r"stage 0 \(unnamed\): weights name unknown domain"):
        train_proxy(MODEL, unknown, domains, ANNEAL)
    with pytest.raises(ValueError, match=r"stage 1 'anneal': weights must sum to 1"):
        train_proxy(MODEL, staged(), domains, {"web": 0.5})
    too_short = staged(train_tokens=B * T)  # one step, two stages
    with pytest.raises(ValueError, match="2 stages need at least one optimizer step"):
        train_proxy(MODEL, too_short, domains, ANNEAL)
    assert np.isclose(sum(s.share for s in staged().stages), 1.0)
