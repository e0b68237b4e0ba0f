"""The Ray runner against a real multi-node Ray cluster on this machine (head + worker node
processes), including a worker node killed in the middle of a trial."""

import os
import threading
import time

import pandas as pd
import pytest

from mixopt.job import JobDir
from mixopt.runners.ray_runner import RayRunner
from mixopt.search import SearchJob
from mixopt.testing import quick_synthetic_execute, slow_synthetic_execute

pytestmark = pytest.mark.slow


@pytest.fixture
def markers(tmp_path, monkeypatch):
    """Trials touch a file here when they start (node processes inherit the variable)."""
    folder = tmp_path / "markers"
    folder.mkdir()
    monkeypatch.setenv("MIXOPT_TEST_MARKERS", str(folder))
    return folder


@pytest.fixture
def cluster(markers):
    import ray
    from ray.cluster_utils import Cluster

    fast_failure = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "_system_config": fast_failure, "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster, worker
    ray.shutdown()
    cluster.shutdown()


def _spec(make_spec):
    return make_spec(
        search={"initial_trials": 2, "rounds": 0, "strategy": "random"},
        proxy={"seq_len": 16, "train_tokens": 1000},
        validate={"enabled": False},
        resources={"max_concurrent_trials": 2, "max_retries": 1},
    )


def test_trials_spread_over_nodes_and_a_killed_node_is_retried(
    make_spec, tmp_path, cluster, markers
):
    ray_cluster, worker = cluster
    spec = _spec(make_spec)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    runner = RayRunner(address=ray_cluster.address, execute=slow_synthetic_execute)

    def kill_worker_node_mid_trial() -> None:
        while len(list(markers.glob("*.started"))) < 2:  # both trials are running
            time.sleep(0.1)
        ray_cluster.remove_node(worker)

    killer = threading.Thread(target=kill_worker_node_mid_trial, daemon=True)
    killer.start()
    outcome = SearchJob(spec, job_dir, runner=runner).run()
    killer.join(timeout=60)

    runs = pd.read_parquet(job_dir / "runs.parquet")
    assert (runs["status"] == "completed").all() and len(runs) == 2
    retried = [t for t in outcome.trials if t.attempts == 2]
    assert len(retried) == 1, [t.attempts for t in outcome.trials]
    assert retried[0].failures and "Error" in retried[0].failures[0]
    first = next(t for t in outcome.trials if t.attempts == 1)
    # the two first attempts overlapped: they ran on different nodes at the same time
    assert retried[0].result["started_at"] > first.result["started_at"] + 1.0


def test_joining_a_cluster_by_address_runs_on_it(make_spec, tmp_path, cluster):
    import ray

    ray_cluster, _ = cluster
    spec = _spec(make_spec)
    job_dir = JobDir.new(spec, tmp_path / "job").path
    runner = RayRunner(address=ray_cluster.address, execute=quick_synthetic_execute)
    outcome = SearchJob(spec, job_dir, runner=runner).run()
    assert all(t.status.value == "completed" for t in outcome.trials)
    assert all(t.result["pid"] != os.getpid() for t in outcome.trials)  # ran in Ray workers
    assert ray.is_initialized() is False  # the runner disconnected; the cluster lives on
    assert len(ray_cluster.list_all_nodes()) == 2


def test_a_local_runner_never_joins_a_cluster_already_running_here(cluster):
    import ray

    ray_cluster, _ = cluster
    runner = RayRunner(num_cpus=1)
    runner.start()
    try:
        assert len(ray.nodes()) == 1  # its own one-node Ray, not the two-node cluster
        assert ray.cluster_resources()["CPU"] == 1
    finally:
        runner.shutdown()
    assert len(ray_cluster.list_all_nodes()) == 2
