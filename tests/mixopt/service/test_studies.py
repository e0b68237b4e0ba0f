"""Studies over REST (``/studies/...``) against a real server on a loopback port, driven by the
service client: the ask/tell loop, ownership, bad input that leaves the stored study as it was,
concurrent workers, and the limits.

The studies run ``random`` (no model to fit) so the tests stay fast; what the strategies
propose is tested in ``tests/mixopt/test_study.py``.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mixopt.service.client import ServiceClient, ServiceError
from mixopt.study import Study
from mixopt.testing import synthetic_losses
from tests.mixopt.service.conftest import TOKENS
from tests.mixopt.service.test_attacks import users
from tests.mixopt.service.test_server import fake_service

DOMAINS = ["web", "code", "math"]


def loss(weights: dict[str, float]) -> float:
    return float(np.mean(list(synthetic_losses(weights).values())))


class Service:
    """A running server, a client per user, and where the server keeps each user's studies."""

    def __init__(self, url: str, state: Path) -> None:
        self.url, self.state = url, state
        self.alice = ServiceClient(url, TOKENS["alice"])
        self.bob = ServiceClient(url, TOKENS["bob"])

    def client(self) -> ServiceClient:
        return ServiceClient(self.url, TOKENS["alice"])

    def file(self, study_id: str, user: str = "alice") -> Path:
        return self.state / "studies" / user / f"{study_id}.json"

    def new_study(self, **config: Any) -> str:
        values: dict[str, Any] = {"strategy": "random", "initial": 2, "seed": 0}
        study: dict[str, Any] = self.alice.create_study("team", DOMAINS, **(values | config))
        return str(study["id"])


@contextlib.contextmanager
def running(tmp_path: Path, **extra: str) -> Iterator[Service]:
    with fake_service(tmp_path, **users(tmp_path), **extra) as server:
        service = Service(server.url, tmp_path / "state")
        try:
            yield service
        finally:
            service.alice.close()
            service.bob.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running(tmp_path_factory.mktemp("studies")) as started:
        yield started


def refused(call: Any, status: int, detail: str) -> None:
    with pytest.raises(ServiceError) as caught:
        call()
    assert caught.value.status == status, caught.value
    assert detail in str(caught.value)


# ------------------------------------------------------------------------------ the loop


def test_ask_tell_fail_enqueue_and_best_over_http(service):
    api = service.alice
    study_id = service.new_study()
    asked = api.ask(study_id, 2)
    assert [s["source"] for s in asked] == ["asked", "asked"]
    assert asked[0]["mixture_id"] != asked[1]["mixture_id"]
    assert asked[0]["weights"] != asked[1]["weights"]
    assert all(sum(s["weights"].values()) == pytest.approx(1.0) for s in asked)
    told = {s["mixture_id"]: loss(s["weights"]) for s in asked}
    first, second = asked
    assert api.tell(study_id, first["mixture_id"], told[first["mixture_id"]])["objective"] == (
        pytest.approx(told[first["mixture_id"]])
    )
    by_metrics = api.tell(study_id, second["mixture_id"], {"objective": told[second["mixture_id"]]})
    assert by_metrics["objective"] == pytest.approx(told[second["mixture_id"]])

    crashed = api.ask(study_id, 1)[0]
    assert api.fail(study_id, crashed["mixture_id"], "OOM")["state"] == "failed"

    production = {"web": 0.5, "code": 0.3, "math": 0.2}
    assert api.enqueue(study_id, production)["queued"] == 1
    assert api.study(study_id)["queued"] == 1
    nxt = api.ask(study_id, 2)
    assert nxt[0]["source"] == "enqueued" and nxt[0]["weights"] == pytest.approx(production)
    assert nxt[1]["source"] == "asked"
    for s in nxt:
        told[s["mixture_id"]] = loss(s["weights"])
        api.tell(study_id, s["mixture_id"], told[s["mixture_id"]])

    winner = min(told, key=told.__getitem__)
    observed = api.best(study_id, observed=True)
    assert observed["mixture_id"] == winner
    assert observed["objective"] == pytest.approx(told[winner])
    best = api.best(study_id)  # random's model: the best result told
    assert best["weights"] == pytest.approx(observed["weights"])
    assert best["supported_by"] == [winner] and best["params"] is None

    summary = api.study(study_id)
    assert (summary["mixtures"], summary["told"], summary["pending"]) == (5, 4, 0)
    assert (summary["failed"], summary["queued"]) == (1, 0)
    assert summary["best_observed"]["mixture_id"] == winner
    assert study_id in [s["id"] for s in api.studies()["studies"]]
    stored = Study.load(service.file(study_id))  # what the server wrote is a study file
    assert stored.suggestions[crashed["mixture_id"]].failed == "OOM"
    assert stored.best_observed().mixture_id == winner


def test_best_at_a_target_scale_and_at_a_told_one(service):
    api = service.alice
    study_id = service.new_study(law="joint", initial=4)
    sizes = (1e6, 1e7)
    for s in api.ask(study_id, 4):
        for n in sizes:
            scaled = loss(s["weights"]) + 5.0 * n**-0.3
            api.tell(study_id, s["mixture_id"], scaled, params=n, tokens=20 * n)
    at_target = api.best(study_id, params=1e9, tokens=2e10)
    assert (at_target["params"], at_target["tokens"]) == (1e9, 2e10)
    assert at_target["method"].startswith("joint scaling law")
    assert sum(at_target["weights"].values()) == pytest.approx(1.0)
    assert api.best(study_id)["params"] == sizes[-1]  # no target: the largest told scale
    small = api.best(study_id, observed=True, params=sizes[0], tokens=20 * sizes[0])
    large = api.best(study_id, observed=True)
    assert (small["params"], large["params"]) == (sizes[0], sizes[-1])
    assert small["objective"] > large["objective"]  # the same mixtures, a smaller model
    refused(lambda: api.best(study_id, params=1e9), 422, "give both params")


def test_every_study_endpoint_needs_a_token(service):
    for method, path in (
        ("GET", "/studies"),
        ("POST", "/studies"),
        ("GET", "/studies/s0123456789abcdef"),
        ("POST", "/studies/s0123456789abcdef/ask"),
        ("POST", "/studies/s0123456789abcdef/tell"),
        ("GET", "/studies/s0123456789abcdef/best"),
        ("DELETE", "/studies/s0123456789abcdef"),
    ):
        response = httpx.request(method, f"{service.url}{path}", json={}, timeout=30)
        assert response.status_code == 401, (method, path)


# ----------------------------------------------------------------------------- ownership


def test_another_team_can_neither_see_nor_touch_a_study(service):
    study_id = service.new_study()
    mixture_id = service.alice.ask(study_id, 1)[0]["mixture_id"]
    before = service.file(study_id).read_bytes()
    bob = service.bob
    assert study_id not in [s["id"] for s in bob.studies()["studies"]]
    for call in (
        lambda: bob.study(study_id),
        lambda: bob.ask(study_id, 1),
        lambda: bob.tell(study_id, mixture_id, 1.0),
        lambda: bob.fail(study_id, mixture_id),
        lambda: bob.enqueue(study_id, {"web": 0.4, "code": 0.3, "math": 0.3}),
        lambda: bob.best(study_id, observed=True),
        lambda: bob.delete_study(study_id),
    ):
        refused(call, 404, f"no study '{study_id}'")
    assert service.file(study_id).read_bytes() == before
    assert not service.file(study_id, "bob").exists()
    assert service.alice.study(study_id)["pending"] == 1


# ---------------------------------------------------------------------------- bad input


def bad_requests(study_id: str, pending: str, done: str) -> list[tuple[str, str, Any, int, str]]:
    """(method, path, JSON body, status, what the answer says)."""
    at = f"/studies/{study_id}"
    return [
        ("POST", f"{at}/tell", {"mixture_id": "m9999", "value": 1.0}, 409, "no mixture 'm9999'"),
        ("POST", f"{at}/tell", {"mixture_id": pending, "metrics": {"loss": 1.0}}, 422, "lack"),
        ("POST", f"{at}/tell", {"mixture_id": pending}, 422, "exactly one of value and metrics"),
        ("POST", f"{at}/tell", {"mixture_id": pending, "value": "x"}, 422, "body.value"),
        ("POST", f"{at}/tell", {"mixture_id": pending, "value": 1.0, "params": 1e6}, 422, "both"),
        ("POST", f"{at}/tell", {"mixture_id": "../x", "value": 1.0}, 422, "body.mixture_id"),
        ("POST", f"{at}/fail", {"mixture_id": done}, 409, "only a pending one can fail"),
        ("POST", f"{at}/fail", {"mixture_id": "m9999"}, 409, "no mixture 'm9999'"),
        ("POST", f"{at}/enqueue", {"weights": {"web": 2.0}}, 422, "weights"),
        ("POST", f"{at}/enqueue", {"weights": {"web": 0.5, "wiki": 0.5}}, 422, "wiki"),
        ("POST", f"{at}/enqueue", {"weights": {"web": -0.5, "code": 1.5}}, 422, "weights"),
        ("POST", f"{at}/ask", {"n": 0}, 422, "body.n"),
        ("POST", f"{at}/ask", {"n": 10_000}, 422, "at most 64 mixtures per ask"),
        ("POST", f"{at}/ask", {"n": 1, "extra": 1}, 422, "body.extra"),
        ("POST", f"{at}/ask", "not json", 422, "body"),
        ("GET", f"{at}/best?params=-1&tokens=1", None, 422, "params"),
        ("GET", f"{at}/best?params=1e9&tokens=2e10", None, 409, "needs results at 2 or more"),
        ("POST", "/studies/s0000000000000000/ask", {"n": 1}, 404, "no study"),
        ("POST", "/studies/..%2F..%2Fjobs/ask", {"n": 1}, 404, ""),
    ]


def test_bad_input_is_refused_clearly_and_leaves_the_stored_study_unchanged(service):
    api = service.alice
    study_id = service.new_study()
    done, pending = (s["mixture_id"] for s in api.ask(study_id, 2))
    api.tell(study_id, done, 3.0)
    path = service.file(study_id)
    before = path.read_bytes()
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as http:
        for method, url, body, status, detail in bad_requests(study_id, pending, done):
            kwargs = {"content": body} if isinstance(body, str) else {"json": body}
            response = http.request(method, url, **kwargs)
            assert response.status_code == status, (url, body, response.text)
            assert detail in response.json()["detail"], (url, body, response.text)
        # a non-finite number (Python's JSON writes NaN) is no result either
        nan = http.post(
            f"/studies/{study_id}/tell",
            content=json.dumps({"mixture_id": pending, "value": float("nan")}),
            headers={"Content-Type": "application/json"},
        )
        assert nan.status_code == 422 and "body.value" in nan.json()["detail"]
    assert path.read_bytes() == before
    refused(lambda: api.best(study_id), 409, "needs at least 2 results")


@pytest.mark.parametrize(
    ("config", "detail"),
    [
        ({"strategy": "mfbo"}, "body.strategy: Value error, unknown strategy 'mfbo'"),
        ({"direction": "up"}, "body.direction"),
        ({"bounds": {"web": [0.7, 1.0], "code": [0.7, 1.0]}}, "minimum weights sum to 1.4"),
        ({"bounds": {"wiki": [0.0, 0.5]}}, "unknown domain(s) ['wiki']"),
        ({"natural": {"web": -1.0}}, "natural"),
        ({"initial": 1}, "body.initial"),
        ({"law": "nope"}, "unknown scale-aware law 'nope'"),
        ({"direction": "maximize", "target": {"params": 1e9, "tokens": 2e10}}, "maximises"),
        ({"output_dir": "/tmp/x"}, "body.output_dir: Extra inputs are not permitted"),
    ],
)
def test_a_bad_study_is_refused_naming_the_field_and_nothing_is_written(service, config, detail):
    folder = service.state / "studies" / "alice"
    before = sorted(folder.glob("*.json")) if folder.exists() else []
    refused(lambda: service.new_study(**config), 422, detail)
    after = sorted(folder.glob("*.json")) if folder.exists() else []
    assert after == before


# ---------------------------------------------------------------------------- concurrency


def test_two_clients_telling_in_parallel_lose_nothing(service):
    study_id = service.new_study()
    rounds = 8
    told: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with service.client() as api:
                for _ in range(rounds):
                    s = api.ask(study_id, 1)[0]
                    api.tell(study_id, s["mixture_id"], loss(s["weights"]))
                    told[index].append(s["mixture_id"])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    ids = told[0] + told[1]
    assert len(ids) == 2 * rounds and len(set(ids)) == 2 * rounds  # no mixture handed out twice
    summary = service.alice.study(study_id)
    assert (summary["mixtures"], summary["told"], summary["pending"]) == (2 * rounds,) * 2 + (0,)
    stored = Study.load(service.file(study_id))
    assert sorted(s.mixture_id for s in stored.suggestions.values() if s.done) == sorted(ids)


# -------------------------------------------------------------------------------- limits


def test_limits_on_studies_asks_mixtures_and_body_size(tmp_path):
    quotas = json.dumps({"max_studies": 2, "max_ask": 3, "max_study_mixtures": 4})
    with running(tmp_path, MIXOPT_TEST_QUOTAS=quotas) as service:
        first = service.new_study()
        service.new_study()
        refused(service.new_study, 429, "you keep 2 studies (at most 2)")
        assert len(service.alice.studies()["studies"]) == 2
        service.bob.create_study("bobs", DOMAINS, strategy="random")  # quotas are per user
        service.alice.delete_study(first)
        assert not service.file(first).exists()
        refused(lambda: service.alice.study(first), 404, "no study")
        third = service.new_study()

        refused(lambda: service.alice.ask(third, 4), 422, "at most 3 mixtures per ask")
        assert len(service.alice.ask(third, 3)) == 3
        refused(lambda: service.alice.ask(third, 2), 403, "at most 4 per study")
        assert service.alice.study(third)["mixtures"] == 3

        weights = {f"d{i}": 1.0 for i in range(200_000)}  # a body over the server's 1 MiB
        refused(lambda: service.alice.enqueue(third, weights), 413, "larger than")
        assert service.alice.study(third)["queued"] == 0


def test_a_study_held_too_long_by_another_worker_is_a_503_that_changes_nothing(
    service_settings, monkeypatch
):
    from fastapi.testclient import TestClient

    from mixopt.service import studies
    from mixopt.service.app import create_app
    from mixopt.study import StudyFile

    monkeypatch.setattr(studies, "LOCK_WAIT_S", 0.2)
    settings = service_settings()
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    with TestClient(create_app(settings, supervise=False)) as api:
        body = {"name": "held", "domains": DOMAINS, "strategy": "random"}
        study_id = api.post("/studies", json=body, headers=headers).json()["id"]
        path = settings.user_studies_dir("alice") / f"{study_id}.json"
        with StudyFile(path):  # another worker holds the study
            response = api.post(f"/studies/{study_id}/ask", json={"n": 1}, headers=headers)
        assert response.status_code == 503
        assert response.json()["detail"] == f"study {study_id} is busy; try again"
        assert Study.load(path).suggestions == {}
        assert (
            api.post(f"/studies/{study_id}/ask", json={"n": 1}, headers=headers).status_code == 200
        )
