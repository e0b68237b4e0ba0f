"""The jobs table on SQLite and on a real PostgreSQL server started by the tests."""

from __future__ import annotations

import threading
import time

import pytest

from mixopt.service.store import JobRecord, JobStore
from tests.mixopt.service.conftest import ALICE, BOB, spec_yaml, wait_for


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("postgres_url")


def record(job_id: str, owner: str = "alice", created: float | None = None, **values) -> JobRecord:
    now = time.time() if created is None else created
    fields = {
        "id": job_id,
        "owner": owner,
        "name": f"name-{job_id}",
        "state": "queued",
        "command": "run",
        "runner": "local",
        "spec": "name: x\n",
        "folder": f"/srv/{job_id}",
        "job_dir": f"/srv/{job_id}/run",
        "direction": "minimize",
        "trials_total": 9,
        "created": now,
        "updated": now,
    }
    fields.update(values)
    return JobRecord(**fields)


def test_add_get_and_ownership(database_url):
    store = JobStore(database_url)
    try:
        store.add(record("j1", best_objective=None, stage="préparation ✓"))
        got = store.get("j1")
        assert got is not None and got.owner == "alice" and got.stage == "préparation ✓"
        assert got.trials_total == 9 and got.best_objective is None and got.resumes == 0
        assert store.get("j1", owner="alice") == got
        assert store.get("j1", owner="bob") is None
        assert store.get("nope") is None
    finally:
        store.close()


def test_list_is_newest_first_filtered_and_paged(database_url):
    store = JobStore(database_url)
    try:
        for i in range(5):
            store.add(record(f"j{i}", owner="alice" if i % 2 == 0 else "bob", created=1000.0 + i))
        store.update("j4", state="running")
        jobs, total = store.list_jobs(owner="alice")
        assert [j.id for j in jobs] == ["j4", "j2", "j0"] and total == 3
        jobs, total = store.list_jobs(owner="alice", limit=1, offset=1)
        assert [j.id for j in jobs] == ["j2"] and total == 3
        jobs, total = store.list_jobs(owner="alice", states=("queued",))
        assert [j.id for j in jobs] == ["j2", "j0"] and total == 2
        assert [j.id for j in store.active()] == ["j0", "j1", "j2", "j3", "j4"]  # oldest first
    finally:
        store.close()


def test_transition_is_compare_and_set(database_url):
    store = JobStore(database_url)
    try:
        store.add(record("j1"))
        assert store.transition("j1", ("queued",), state="running", pid=42)
        assert not store.transition("j1", ("queued",), state="running", pid=43)
        assert store.get("j1").pid == 42
        assert not store.transition("nope", ("queued",), state="running")
    finally:
        store.close()


def test_only_one_of_many_racing_claims_wins(database_url):
    """Several servers on one database claim the same queued job: exactly one gets it."""
    stores = [JobStore(database_url) for _ in range(4)]
    try:
        stores[0].add(record("j1"))
        wins: list[int] = []
        barrier = threading.Barrier(len(stores))

        def claim(i: int) -> None:
            barrier.wait()
            if stores[i].transition("j1", ("queued",), state="running", host=f"h{i}"):
                wins.append(i)

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert stores[0].get("j1").host == f"h{wins[0]}"
    finally:
        for store in stores:
            store.close()


def test_service_on_postgresql_end_to_end(service_settings, postgres_url, kill_jobs):
    """The API with its jobs in PostgreSQL: submit, run (fake job), list per user, and a
    second server on the same database sees the same jobs."""
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    settings = service_settings(database_url=postgres_url)
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            response = client.post("/jobs", content=spec_yaml("on-pg"), headers=ALICE)
            assert response.status_code == 201, response.text
            job_id = response.json()["id"]
            done = wait_for(
                lambda: client.get(f"/jobs/{job_id}", headers=ALICE).json(),
                lambda j: j["state"] == "completed",
            )
            assert done["trials_completed"] == 4
            assert client.get("/jobs", headers=BOB).json()["total"] == 0
        other = create_app(service_settings(database_url=postgres_url), supervise=False)
        with TestClient(other) as client:
            listed = client.get("/jobs", headers=ALICE).json()
            assert [j["id"] for j in listed["jobs"]] == [job_id]
            assert listed["jobs"][0]["state"] == "completed"
    finally:
        kill_jobs(app.state.store)
    assert app.state.store.url.startswith("postgresql+psycopg://")
