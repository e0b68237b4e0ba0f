import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.replay import Pool, ReplayConfig, replay, replay_strategies
from mixopt.runs_table import read_table, weights_and_target

TARGET = "metric/the_pile_pile_cc_val_loss"


@pytest.fixture
def pool(regmix_runs):
    X, y, _ = weights_and_target(read_table(regmix_runs), "train_the_pile_", TARGET, source="t")
    return X.to_numpy(), y.to_numpy()


@pytest.mark.parametrize("strategy", ["random", "regmix"])
def test_trace_respects_budget_and_never_repeats(pool, strategy):
    X, y = pool
    trace = replay(X, y, ReplayConfig(budget=20, initial=8, batch=4, strategy=strategy, seed=1))
    assert len(trace) == 20
    assert trace["pool_index"].is_unique
    assert trace["step"].tolist() == list(range(20))
    np.testing.assert_allclose(trace["value"], y[trace["pool_index"]])


@pytest.mark.parametrize("predictor", ["lightgbm", "linear"])
def test_regmix_finds_better_rows_than_random(pool, predictor):
    X, y = pool
    best: dict[str, list[float]] = {"random": [], "regmix": []}
    for seed in range(10):
        for strategy in best:
            config = ReplayConfig(
                budget=24, initial=8, batch=4, strategy=strategy, seed=seed, predictor=predictor
            )
            best[strategy].append(replay(X, y, config)["value"].min())
    assert np.mean(best["regmix"]) < np.mean(best["random"])


def test_maximize_flips_the_search(pool):
    X, y = pool
    low = replay(X, y, ReplayConfig(budget=24, initial=8, batch=8, seed=0))
    high = replay(X, y, ReplayConfig(budget=24, initial=8, batch=8, seed=0, maximize=True))
    assert high["value"].iloc[8:].mean() > low["value"].iloc[8:].mean()


def test_budget_larger_than_pool_and_bad_config(pool):
    X, y = pool
    assert len(replay(X[:10], y[:10], ReplayConfig(budget=50, initial=4, batch=3))) == 10
    with pytest.raises(MixoptError, match="unknown strategy 'sigopt'"):
        ReplayConfig(budget=5, initial=2, batch=1, strategy="sigopt")


@pytest.mark.parametrize("strategy", [s for s in replay_strategies() if s != "mfbo"])
def test_every_strategy_replays_through_its_proposer(pool, strategy):
    X, y = pool
    config = ReplayConfig(budget=16, initial=8, batch=4, strategy=strategy, seed=2)
    trace = replay(X, y, config)
    assert len(trace) == 16 and trace["pool_index"].is_unique
    np.testing.assert_allclose(trace["value"], y[trace["pool_index"]])
    again = replay(X, y, config)  # the proposers are deterministic: so is a replay
    assert again["pool_index"].tolist() == trace["pool_index"].tolist()
    if strategy != "random":  # the model-based strategies beat the initial design's median
        assert trace["value"].iloc[8:].mean() < np.median(trace["value"].iloc[:8])


def test_mfbo_replays_a_multi_fidelity_pool_within_its_cost_budget(pool):
    X, y = pool
    cheap = 0.9 * y + 0.4 + 0.01 * np.sin(10 * X[:, 0])  # a biased, cheaper fidelity
    both = Pool(
        np.vstack([X, X]),
        np.concatenate([y, cheap]),
        fidelity=np.concatenate([np.ones(len(y)), np.full(len(y), 0.1)]),
        cost=np.concatenate([np.ones(len(y)), np.full(len(y), 0.1)]),
    )
    config = ReplayConfig(budget=100, initial=6, batch=3, strategy="mfbo", seed=0, budget_cost=4.0)
    trace = replay(both, config=config)
    assert trace["pool_index"].is_unique and trace["cost"].sum() <= 4.0 + 1e-9
    assert (trace["fidelity"].iloc[:6] == 0.1).all()  # the initial design runs cheapest
    assert trace["cost"].sum() > 3.0  # it spends its budget
    # single-fidelity strategies only ever evaluate the target fidelity's rows
    bo = replay(both, config=ReplayConfig(budget=12, initial=8, batch=4, strategy="bo"))
    assert (bo["fidelity"] == 1.0).all()


def test_strategies_a_pool_cannot_replay_are_refused(pool):
    X, y = pool
    with pytest.raises(MixoptError, match="'pareto' needs constraints on per-target values"):
        ReplayConfig(budget=5, initial=2, batch=1, strategy="pareto")
    with pytest.raises(MixoptError, match="strategy mfbo needs a fidelity column"):
        replay(X, y, ReplayConfig(budget=5, initial=2, batch=1, strategy="mfbo"))
    flat = Pool(X, y, fidelity=np.ones(len(y)))
    with pytest.raises(MixoptError, match="two or more positive fidelities up to the target"):
        replay(flat, config=ReplayConfig(budget=5, initial=2, batch=1, strategy="mfbo"))
