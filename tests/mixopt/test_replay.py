import numpy as np
import pytest

from mixopt.errors import MixoptError
from mixopt.replay import ReplayConfig, replay
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
