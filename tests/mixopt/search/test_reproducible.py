"""The same spec, data and seed give the same search, whatever order trials finish in and
however many run at once: identical proposed trials and an identical recommendation."""

import numpy as np
import pandas as pd

from mixopt.job import JobDir
from mixopt.runners.base import RunnerEvent
from mixopt.search import SearchJob
from mixopt.testing import ScriptedRunner
from tests.conftest import QUICK_SEARCH

DOMAINS = ("code", "bible", "dictionary")


class ReversedRunner(ScriptedRunner):
    """Finishes the trials it holds last-submitted first, one per poll (a worker pool whose
    later trials happen to be faster)."""

    def poll(self, timeout: float) -> list[RunnerEvent]:
        if not self._queue:
            return []
        return [self._run(self._queue.pop())]


def _search(make_spec, path, runner, concurrency):
    spec = make_spec(
        search={**QUICK_SEARCH, "strategy": "bo"},
        proxy={"seq_len": 16},
        resources={"max_concurrent_trials": concurrency},
        validate={"enabled": False},
    )
    job = SearchJob(spec, JobDir.new(spec, path).path, runner=runner)
    outcome = job.run()
    runs = pd.read_parquet(outcome.job_dir / "runs.parquet").sort_values("trial_id")
    search = runs[runs["stage"] == "search"]
    weights = search[[f"weight/{d}" for d in DOMAINS]].to_numpy()
    recommended = np.array([outcome.recommendation["weights"][d] for d in DOMAINS])
    return runner, search["trial_id"].tolist(), search["round"].tolist(), weights, recommended


def test_finish_order_and_concurrency_do_not_change_the_search(make_spec, tmp_path):
    in_order = _search(make_spec, tmp_path / "a", ScriptedRunner(), concurrency=1)
    shuffled = _search(make_spec, tmp_path / "b", ReversedRunner(), concurrency=4)
    runner_a, ids_a, rounds_a, weights_a, rec_a = in_order
    runner_b, ids_b, rounds_b, weights_b, rec_b = shuffled
    assert rounds_a == rounds_b and max(rounds_a) == QUICK_SEARCH["rounds"]
    assert ids_a == ids_b
    # the runs really finished in different orders
    assert runner_a.finished != runner_b.finished
    np.testing.assert_array_equal(weights_a, weights_b)  # every proposed trial, bit for bit
    np.testing.assert_array_equal(rec_a, rec_b)
