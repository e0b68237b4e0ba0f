"""Shared trunks: a staged run branched from a trunk gets exactly its from-scratch result, trains
only its own stages, and runs of one seed share one trunk (also across processes)."""

from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path

import pytest

from proxies.branch import Trunk, trunk_stage_count
from proxies.config import BaseConfig, StageConfig
from proxies.data import DomainTokens
from proxies.train import StepInfo, train_proxy

from .conftest import MakeDomain
from .test_train_stages import ANNEAL, FIXED, MODEL, N_STEPS, staged, three_domains

OTHER = {"web": 0.5, "code": 0.5}


@pytest.fixture
def domains(make_domain: MakeDomain) -> list[DomainTokens]:
    return three_domains(make_domain)


def test_trunk_stage_count() -> None:
    fixed, searched = StageConfig(0.5, FIXED), StageConfig(0.25)
    assert trunk_stage_count([fixed, searched]) == 1
    assert trunk_stage_count([fixed, fixed, searched, fixed]) == 2
    assert trunk_stage_count([searched, fixed]) == 0  # the run's mixture comes first
    assert trunk_stage_count([fixed, fixed]) == 0  # no stage takes the run's mixture
    assert trunk_stage_count([]) == 0
    parts = {"mixtures": [{"a": 1.0}], "seeds": [0]}
    assert Trunk.of(None, [fixed, searched], [9, 3], parts) is None
    trunk = Trunk.of("/x", [fixed, searched], [9, 3], parts)
    assert trunk is not None and trunk.steps == 9
    other_mixture = Trunk.of("/x", [fixed, searched], [9, 3], {**parts, "mixtures": [{"b": 1.0}]})
    other_seed = Trunk.of("/x", [fixed, searched], [9, 3], {**parts, "seeds": [1]})
    assert other_mixture == trunk  # a trunk does not depend on the run's mixture
    assert other_seed is not None and other_seed.fingerprint != trunk.fingerprint


def test_branched_runs_equal_runs_from_scratch(domains: list[DomainTokens], tmp_path: Path) -> None:
    cfg = staged(trunk_dir=str(tmp_path / "trunks"), eval_every=4)
    steps: list[int] = []
    first = train_proxy(MODEL, cfg, domains, ANNEAL)
    second = train_proxy(MODEL, cfg, domains, OTHER, on_step=lambda i: steps.append(i.step))
    assert first.trunk_trained and first.trunk_steps == 0
    assert not second.trunk_trained and second.trunk_steps == 9  # 0.75 of 12 steps
    assert steps == [9, 10, 11]  # the branch trains only the anneal stage
    for result, weights in ((first, ANNEAL), (second, OTHER)):
        scratch = train_proxy(MODEL, staged(eval_every=4), domains, weights)
        assert result.metrics == scratch.metrics
        assert result.curve == scratch.curve and result.evals == scratch.evals
        assert result.stage_tokens == scratch.stage_tokens
    assert first.metrics != second.metrics  # the anneal mixture matters
    assert len(list((tmp_path / "trunks").glob("*/checkpoint.pt"))) == 1


def test_seeds_and_settings_get_their_own_trunks(
    domains: list[DomainTokens], tmp_path: Path
) -> None:
    trunks = tmp_path / "trunks"
    assert train_proxy(MODEL, staged(trunk_dir=str(trunks)), domains, ANNEAL).trunk_trained
    assert train_proxy(MODEL, staged(trunk_dir=str(trunks), seed=1), domains, ANNEAL).trunk_trained
    longer = staged(trunk_dir=str(trunks), train_tokens=2 * N_STEPS * 8 * 32)
    assert train_proxy(MODEL, longer, domains, ANNEAL).trunk_trained
    assert len(list(trunks.glob("*/checkpoint.pt"))) == 3
    # A run without a fixed leading stage has no trunk.
    searched_first = (StageConfig(0.5, name="searched"), StageConfig(0.5, FIXED))
    result = train_proxy(
        MODEL, staged(trunk_dir=str(trunks), stages=searched_first), domains, ANNEAL
    )
    assert not result.trunk_trained and result.trunk_steps == 0
    assert len(list(trunks.glob("*/checkpoint.pt"))) == 3


def test_a_run_killed_in_the_trunk_resumes_and_shares_it(
    domains: list[DomainTokens], tmp_path: Path
) -> None:
    class Interrupt(Exception):
        pass

    def stop_at_step_6(info: StepInfo) -> None:
        if info.step == 6:
            raise Interrupt

    cfg = staged(
        trunk_dir=str(tmp_path / "trunks"), checkpoint_dir=str(tmp_path / "ckpt"),
        checkpoint_every=4,
    )  # fmt: skip
    with pytest.raises(Interrupt):
        train_proxy(MODEL, cfg, domains, ANNEAL, on_step=stop_at_step_6)
    assert not list((tmp_path / "trunks").glob("*/checkpoint.pt"))  # the trunk was not done
    resumed = train_proxy(MODEL, cfg, domains, ANNEAL)
    assert resumed.resumed_from_step == 4 and resumed.trunk_trained
    assert resumed.metrics == train_proxy(MODEL, staged(), domains, ANNEAL).metrics


def test_an_unreadable_trunk_is_trained_again(domains: list[DomainTokens], tmp_path: Path) -> None:
    cfg = staged(trunk_dir=str(tmp_path / "trunks"))
    first = train_proxy(MODEL, cfg, domains, ANNEAL)
    (saved,) = (tmp_path / "trunks").glob("*/checkpoint.pt")
    saved.write_bytes(saved.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="unreadable"):
        again = train_proxy(MODEL, cfg, domains, ANNEAL)
    assert again.trunk_trained and again.metrics == first.metrics


def _train_in_process(
    args: tuple[list[DomainTokens], str, dict[str, float]],
) -> tuple[dict[str, float], int, bool]:
    domains, trunk_dir, weights = args
    result = train_proxy(MODEL, staged(trunk_dir=trunk_dir), domains, weights)
    return result.metrics, result.trunk_steps, result.trunk_trained


def test_concurrent_runs_of_one_seed_train_the_trunk_once(
    domains: list[DomainTokens], tmp_path: Path
) -> None:
    trunk_dir = str(tmp_path / "trunks")
    jobs = [(domains, trunk_dir, w) for w in (ANNEAL, OTHER, FIXED)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_train_in_process, jobs)
    assert sorted(trained for _, _, trained in results) == [False, False, True]
    assert sorted(steps for _, steps, _ in results) == [0, 9, 9]
    for (metrics, _, _), (_, _, weights) in zip(results, jobs, strict=True):
        assert metrics == train_proxy(MODEL, staged(), domains, weights).metrics


# ------------------------------------------------------------------ continual pretraining

BASE = {"web": 0.5, "code": 0.5}


def test_runs_continue_from_the_base_proxy(domains: list[DomainTokens], tmp_path: Path) -> None:
    base = BaseConfig(BASE, train_tokens=N_STEPS * 8 * 32)
    cfg = staged(stages=(), schedule="cosine", base=base, trunk_dir=str(tmp_path / "trunks"))
    first = train_proxy(MODEL, cfg, domains, ANNEAL)
    alone = train_proxy(MODEL, staged(stages=(), schedule="cosine"), domains, BASE)
    assert first.base_metrics == alone.metrics  # the base is an ordinary run on its mixture
    for name in ("val_loss/math", "bpb/math", "val_loss/web"):
        if name in first.metrics:
            rise = first.metrics[name] / alone.metrics[name] - 1
            assert first.metrics[f"forgetting/{name}"] == pytest.approx(rise)
    # The base never saw math, the run did: math improves over the base, and the run, which
    # started from trained weights, ends below a run from scratch on the same tokens.
    assert first.metrics["forgetting/val_loss/math"] < 0
    scratch = train_proxy(MODEL, staged(stages=(), schedule="cosine"), domains, ANNEAL)
    assert first.metrics["val_loss/web"] < scratch.metrics["val_loss/web"]
    # The base is trained once per seed and kept; the next run of the seed reuses it.
    (saved,) = (tmp_path / "trunks").glob("base-*/checkpoint.pt")
    stamp = saved.stat().st_mtime_ns
    second = train_proxy(MODEL, cfg, domains, OTHER)
    assert saved.stat().st_mtime_ns == stamp and second.base_metrics == first.base_metrics
    other_seed = train_proxy(MODEL, dataclasses.replace(cfg, seed=1), domains, ANNEAL)
    assert other_seed.base_metrics != first.base_metrics
    assert len(list((tmp_path / "trunks").glob("base-*/checkpoint.pt"))) == 2


def test_a_bad_base_is_refused() -> None:
    with pytest.raises(ValueError, match=r"TrainConfig.base .*sum to 1"):
        staged(base={"weights": {"web": 0.5}, "train_tokens": 100})
    with pytest.raises(ValueError, match=r"TrainConfig.base train_tokens must be an integer"):
        staged(base={"weights": BASE, "train_tokens": 0})
    assert staged(base={"weights": BASE, "train_tokens": 10}).base == BaseConfig(BASE, 10)


def test_runs_start_from_a_checkpoint(domains: list[DomainTokens], tmp_path: Path) -> None:
    plain = dict(stages=(), schedule="cosine")
    kept = staged(**plain, checkpoint_dir=str(tmp_path / "team"), keep_checkpoint=True)
    team = train_proxy(MODEL, kept, domains, BASE)  # a team's proxy, kept at its end
    for given in (tmp_path / "team", tmp_path / "team" / "checkpoint.pt"):  # folder or file
        run = train_proxy(MODEL, staged(**plain, init_from=str(given)), domains, ANNEAL)
        assert run.base_metrics == team.metrics  # the checkpoint's weights, evaluated first
        rise = run.metrics["val_loss/math"] / team.metrics["val_loss/math"] - 1
        assert run.metrics["forgetting/val_loss/math"] == pytest.approx(rise) and rise < 0
    scratch = train_proxy(MODEL, staged(**plain), domains, ANNEAL)
    assert run.metrics["val_loss/web"] < scratch.metrics["val_loss/web"]


def test_a_bad_checkpoint_to_start_from_is_refused(
    domains: list[DomainTokens], tmp_path: Path
) -> None:
    plain = dict(stages=(), schedule="cosine")
    with pytest.raises(ValueError, match="no such checkpoint file"):
        train_proxy(MODEL, staged(**plain, init_from=str(tmp_path / "none")), domains, ANNEAL)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        train_proxy(MODEL, staged(**plain, init_from=str(tmp_path / "junk.pt")), domains, ANNEAL)
    other = dataclasses.replace(MODEL, n_layer=MODEL.n_layer + 1)
    kept = staged(**plain, checkpoint_dir=str(tmp_path / "deep"), keep_checkpoint=True)
    train_proxy(other, kept, domains, BASE)
    with pytest.raises(ValueError, match="does not fit this proxy's model"):
        train_proxy(MODEL, staged(**plain, init_from=str(tmp_path / "deep")), domains, ANNEAL)
    with pytest.raises(ValueError, match="init_from and base both set"):
        staged(**plain, init_from="x.pt", base={"weights": BASE, "train_tokens": 10})
