"""The service's API through FastAPI's TestClient: auth, submissions, errors, ownership, limits.

Jobs here run ``fake_job.py`` (a stand-in process writing what a real job writes); the real
``mixopt run`` is exercised against a real server in ``test_server.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import ASSETS, CORPUS
from tests.mixopt.service.conftest import ALICE, BOB, spec_dict, spec_yaml, wait_for

YAML = {"Content-Type": "application/yaml"}


def submit(api, text: str, headers=ALICE, **params):
    return api.post("/jobs", content=text, headers={**headers, **YAML}, params=params)


def job_of(api, job_id: str, headers=ALICE) -> dict:
    response = api.get(f"/jobs/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def finished(api, job_id: str, timeout: float = 30.0) -> dict:
    return wait_for(
        lambda: job_of(api, job_id),
        lambda j: j["state"] in ("completed", "failed", "cancelled"),
        timeout,
    )


# ------------------------------------------------------------------------------------- auth


def test_health_needs_no_token(api):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer "},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs"),
        ("POST", "/jobs"),
        ("GET", "/jobs/j123"),
        ("POST", "/jobs/j123/cancel"),
        ("POST", "/jobs/j123/resume"),
        ("GET", "/jobs/j123/recommendation"),
        ("GET", "/jobs/j123/export"),
        ("GET", "/jobs/j123/logs"),
        ("GET", "/jobs/j123/spec"),
        ("GET", "/studies"),
        ("POST", "/studies"),
        ("POST", "/studies/s123/ask"),
        ("GET", "/studies/s123/best"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
    ],
)
def test_every_endpoint_but_health_needs_a_valid_token(api, method, path, headers):
    response = api.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing or invalid bearer token"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_openapi_documents_the_api_with_a_token(api):
    response = api.get("/openapi.json", headers=ALICE)
    assert response.status_code == 200
    doc = response.json()
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/export", "/health"} <= set(doc["paths"])
    assert {"/studies", "/studies/{study_id}/ask", "/studies/{study_id}/best"} <= set(doc["paths"])
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
    docs = api.get("/docs", headers=ALICE)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_public_docs_can_be_enabled(service_settings):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    with TestClient(create_app(service_settings(public_docs=True), supervise=False)) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/jobs").status_code == 401


# ------------------------------------------------------------------------------ submissions


def test_submitted_job_runs_to_completion_and_serves_its_results(api):
    response = submit(api, spec_yaml("tiny"), base_dir=str(ASSETS))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["state"] in ("queued", "running")
    assert job["owner"] == "alice" and job["name"] == "tiny"
    # search budget + (recommended, uniform, natural, halfway to natural)
    assert job["trials_total"] == 4 + 2 + 4
    done = finished(api, job["id"])
    assert done["state"] == "completed", done
    assert done["trials_completed"] == 4 and done["progress"] == 1.0
    assert done["best_objective"] == pytest.approx(4.2)
    assert done["eta_s"] is None and done["finished"] is not None

    rec = api.get(f"/jobs/{job['id']}/recommendation", headers=ALICE)
    assert rec.status_code == 200 and rec.json()["weights"] == {"a": 0.25, "b": 0.75}
    exported = api.get(f"/jobs/{job['id']}/export", params={"format": "yaml"}, headers=ALICE)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    assert "mixture:" in exported.text and "b: 0.75" in exported.text
    bad = api.get(f"/jobs/{job['id']}/export", params={"format": "pickle"}, headers=ALICE)
    assert bad.status_code == 400 and "unknown export format 'pickle'" in bad.json()["detail"]

    logs = api.get(f"/jobs/{job['id']}/logs", headers=ALICE)
    assert logs.status_code == 200 and "trial t0004 done" in logs.text
    assert int(logs.headers["x-log-offset"]) > 0
    job_log = api.get(f"/jobs/{job['id']}/logs", params={"source": "job", "tail": 1}, headers=ALICE)
    assert job_log.text.strip().endswith("completed") and job_log.text.count("\n") == 1
    spec = api.get(f"/jobs/{job['id']}/spec", headers=ALICE)
    assert spec.status_code == 200 and f"{CORPUS}/code" in spec.text  # resolved paths


def test_json_body_is_accepted(api):
    response = api.post(
        "/jobs",
        content=json.dumps(spec_dict("as-json")),
        headers={**ALICE, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert finished(api, response.json()["id"])["state"] == "completed"


def test_dry_run_checks_without_creating_a_job(api):
    response = submit(api, spec_yaml("dry"), dry_run="true")
    assert response.status_code == 200, response.text
    check = response.json()
    assert check["valid"] is True and check["name"] == "dry" and check["trials_total"] == 10
    assert check["spec"]["domains"][0]["paths"] == [str(CORPUS / "code")]
    assert api.get("/jobs", headers=ALICE).json()["total"] == 0


def test_relative_paths_resolve_against_the_first_data_root_by_default(api):
    response = submit(api, spec_yaml("rel"), dry_run="true")
    assert response.status_code == 200
    assert response.json()["spec"]["domains"][1]["paths"] == [str(CORPUS / "bible" / "*.txt")]


def test_service_owns_job_folders_and_cache(api, service_settings):
    """Where a job writes is the service's choice, per user, shown without server paths."""
    settings = service_settings()
    job = submit(api, spec_yaml("where")).json()
    assert job["job_dir"] == f"jobs/{job['id']}/run"  # relative to the service's state
    spec = api.get(f"/jobs/{job['id']}/spec", headers=ALICE).text
    assert "cache_dir: <state>/cache/alice\n" in spec
    assert "output_dir: .\n" in spec  # the job's own folder, shown relative to itself
    assert str(settings.state_dir) not in spec
    finished(api, job["id"])
    submitted = (settings.jobs_dir / job["id"] / "submitted.yaml").read_text()
    assert f"cache_dir: {settings.user_cache_dir('alice')}" in submitted  # what the job runs
    bobs = submit(api, spec_yaml("where"), headers=BOB).json()
    assert "cache_dir: <state>/cache/bob\n" in api.get(f"/jobs/{bobs['id']}/spec", headers=BOB).text


@pytest.mark.parametrize(
    "section",
    [
        {"output_dir": "/etc/mixopt"},
        {"data": {"cache_dir": "/var/tmp/x"}},
        {"data": {"cache_dir": "<state>"}},  # the service's own state: its database lives there
        {"data": {"cache_dir": "<state>/jobs/jother/run"}},  # another user's job
        {"output_dir": "<state>/jobs/jother"},
    ],
)
def test_specs_cannot_choose_where_jobs_write(api, service_settings, section):
    """Attack: a spec naming the service's state, another user's job or any folder as its
    cache or output gets the service's choice instead (the files land in the user's own)."""
    state = str(service_settings().state_dir)
    body = json.loads(json.dumps(spec_dict("where", **section)).replace("<state>", state))
    response = submit(api, json.dumps(body))
    assert response.status_code == 201, response.text
    job = response.json()
    finished(api, job["id"])
    spec = yaml.safe_load(api.get(f"/jobs/{job['id']}/spec", headers=ALICE).text)
    assert spec["data"]["cache_dir"] == "<state>/cache/alice"
    assert spec["output_dir"] == "."  # its own folder
    assert not (Path(state) / "jobs" / "jother").exists()


# ----------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ("name: [unclosed", 400, "malformed YAML"),
        ("", 400, "empty body"),
        ("- just\n- a list\n", 422, "the spec must be a mapping of sections, got list"),
        ("name: x\ndomains: []\n", 422, "domains: List should have at least 2 items"),
        (
            spec_yaml("typo").replace("proxy:", "proxxy:"),
            422,
            "proxxy: Extra inputs are not permitted",
        ),
        (
            spec_yaml("neg", search={"initial_trials": -1}),
            422,
            "search.initial_trials: Input should be greater than or equal to 2",
        ),
    ],
)
def test_bad_specs_get_4xx_naming_the_problem(api, body, status, message):
    response = submit(api, body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_malformed_json_and_non_utf8_are_400(api):
    response = api.post(
        "/jobs", content=b"{not json", headers={**ALICE, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("malformed JSON: Expecting property name")
    response = api.post("/jobs", content=b"name: \xff\xfe", headers={**ALICE, **YAML})
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]


def test_missing_data_is_422_at_submission(api):
    spec = spec_dict("gone")
    spec["domains"][0]["paths"] = ["corpus/nope"]
    response = submit(api, json.dumps(spec))
    assert response.status_code == 422
    assert (
        response.json()["detail"]
        == f"domains.0.paths.0: {CORPUS / 'nope'}: no such file or directory"
    )


def test_unknown_job_is_404_and_bad_query_is_422(api):
    response = api.get("/jobs/jnope", headers=ALICE)
    assert response.status_code == 404 and response.json()["detail"] == "no job 'jnope'"
    assert api.get("/jobs/..%2F..%2Fetc", headers=ALICE).status_code == 404
    for path in ("recommendation", "export", "logs", "spec"):
        assert api.get(f"/jobs/jnope/{path}", headers=ALICE).status_code == 404
    assert api.post("/jobs/jnope/cancel", headers=ALICE).status_code == 404
    response = api.get("/jobs", params={"state": "running,bogus"}, headers=ALICE)
    assert response.status_code == 422 and "unknown state(s) ['bogus']" in response.json()["detail"]
    response = api.get("/jobs", params={"limit": "many"}, headers=ALICE)
    assert response.status_code == 422 and response.json()["detail"].startswith("query.limit:")


# --------------------------------------------------------------------------------- security


def _with_paths(name: str, *paths: str) -> str:
    spec = spec_dict(name)
    spec["domains"][0]["paths"] = list(paths)
    return json.dumps(spec)


@pytest.mark.parametrize(
    "entry",
    ["/etc/passwd", "../../../../etc/passwd", "corpus/../../../etc", "/etc/*", "~/.bashrc"],
)
def test_specs_cannot_read_outside_the_data_roots(api, entry):
    response = submit(api, _with_paths("evil", entry), base_dir=str(ASSETS))
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert detail.startswith("domains.0.paths.0: ") and "outside the allowed data roots" in detail


@pytest.mark.parametrize("entry", ["/etc/passwd", "corpus/../../../etc", "/etc/*", "~/.bashrc"])
def test_eval_sets_cannot_read_outside_the_data_roots(api, entry):
    spec = spec_dict("evil", evals=[{"name": "held", "paths": [entry]}])
    response = submit(api, json.dumps(spec), base_dir=str(ASSETS))
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert detail.startswith("evals.0.paths.0: ") and "outside the allowed data roots" in detail


def test_an_eval_set_link_out_of_a_data_root_is_rejected(service_settings, tmp_path):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    root = tmp_path / "data"
    (root / "held").mkdir(parents=True)
    (root / "held" / "a.txt").write_text("held-out text\n" * 50)
    (tmp_path / "secret.txt").write_text("the secret")
    settings = service_settings(data_roots=[root, ASSETS])
    with TestClient(create_app(settings, supervise=False)) as client:
        spec = spec_dict("held", evals=[{"name": "held", "paths": [str(root / "held")]}])
        response = submit(client, json.dumps(spec), dry_run="true", base_dir=str(ASSETS))
        assert response.status_code == 200, response.text
        (root / "held" / "sneaky.txt").symlink_to(tmp_path / "secret.txt")
        response = submit(client, json.dumps(spec), dry_run="true", base_dir=str(ASSETS))
        assert response.status_code == 403, response.text
        assert response.json()["detail"].startswith("evals.0.paths.0: ")


def test_glob_with_parent_components_is_rejected(api):
    response = submit(api, _with_paths("evil", str(CORPUS / "*" / ".." / ".." / ".." / "*")))
    assert response.status_code == 403
    assert "'..' is not allowed in a glob pattern" in response.json()["detail"]


def test_symlink_out_of_a_data_root_is_rejected(service_settings, tmp_path):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    root = tmp_path / "data"
    (root / "code").mkdir(parents=True)
    (root / "code" / "a.txt").write_text("print('hi')\n" * 50)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_text("the secret")
    (root / "code" / "sneaky.txt").symlink_to(secret / "key.txt")
    (root / "linked").symlink_to(secret)
    settings = service_settings(data_roots=[root, ASSETS])
    with TestClient(create_app(settings, supervise=False)) as client:
        for entry, where in (
            (str(root / "code"), "domains.0.paths.0"),  # a directory holding the link
            (str(root / "code" / "*.txt"), "domains.0.paths.0"),  # a glob matching it
            (str(root / "linked" / "key.txt"), "domains.0.paths.0"),  # through a linked folder
        ):
            response = submit(client, _with_paths("evil", entry))
            assert response.status_code == 403, (entry, response.text)
            assert response.json()["detail"].startswith(f"{where}: ")
        (root / "code" / "sneaky.txt").unlink()
        response = submit(
            client, _with_paths("fine", str(root / "code")), dry_run="true", base_dir=str(ASSETS)
        )
        assert response.status_code == 200, response.text


def test_specs_cannot_read_the_service_state(service_settings, tmp_path):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    settings = service_settings(data_roots=[tmp_path], state_dir=tmp_path / "state")
    (settings.jobs_dir / "jother" / "run").mkdir(parents=True)
    (settings.jobs_dir / "jother" / "run" / "runs.parquet").write_text("someone else's")
    with TestClient(create_app(settings, supervise=False)) as client:
        response = submit(client, _with_paths("peek", str(settings.jobs_dir / "jother" / "run")))
        assert response.status_code == 403
        assert "outside the allowed data roots" in response.json()["detail"]


@pytest.mark.parametrize(
    ("section", "where"),
    [
        (
            {"tokenizer": {"kind": "file", "path": "/etc/hostname"}},
            "tokenizer.path: /etc/hostname is outside the allowed data roots",
        ),
        (
            {"tracking": {"enabled": True, "mlflow_uri": "sqlite:////etc/mlflow.db"}},
            "tracking.mlflow_uri: this service keeps each job's MLflow runs in its job directory",
        ),
        (
            {"tracking": {"enabled": True, "mlflow_uri": "ftp://example.org/x"}},
            "tracking.mlflow_uri: this service keeps each job's MLflow runs in its job directory",
        ),
        (
            {"proxy": {**spec_dict()["proxy"], "metrics": ["os:system"]}},
            "proxy.metrics.0: 'os:system' imports code",
        ),
        (
            {"resources": {"ray_address": "10.0.0.1:6379"}},
            "resources.ray_address: the service decides",
        ),
    ],
)
def test_policy_on_writes_code_and_cluster(api, section, where):
    response = submit(api, json.dumps(spec_dict("policy", **section)))
    assert response.status_code == 403 or response.status_code == 422, response.text
    assert response.status_code == 403 or "mlflow_uri" not in where
    assert where in response.json()["detail"]


def test_a_dry_run_shows_where_the_service_puts_the_job(api):
    body = json.dumps(spec_dict("ok", data={"cache_dir": "/tmp/mine"}, output_dir="/tmp/out"))
    response = submit(api, body, dry_run="true")
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["data"]["cache_dir"] == "<state>/cache/alice"


def test_code_hooks_can_be_allowed(service_settings):
    from mixopt.service.admission import admit

    spec = spec_dict("hooks", proxy={**spec_dict()["proxy"], "metrics": ["json:dumps"]})
    admitted = admit(spec, service_settings(allow_code_hooks=True), base_dir=str(ASSETS))
    assert admitted.proxy.metrics == ["json:dumps"]


def test_jobs_of_one_user_are_invisible_to_another(api):
    job = submit(api, spec_yaml("mine")).json()
    finished(api, job["id"])
    for path in ("", "/recommendation", "/export", "/logs", "/spec"):
        response = api.get(f"/jobs/{job['id']}{path}", headers=BOB)
        assert response.status_code == 404, path
        assert response.json()["detail"] == f"no job '{job['id']}'"
    assert api.post(f"/jobs/{job['id']}/cancel", headers=BOB).status_code == 404
    assert api.post(f"/jobs/{job['id']}/resume", headers=BOB).status_code == 404
    assert api.get("/jobs", headers=BOB).json()["total"] == 0
    assert [j["id"] for j in api.get("/jobs", headers=ALICE).json()["jobs"]] == [job["id"]]


def test_request_size_limit(service_settings):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    with TestClient(
        create_app(service_settings(max_request_bytes=4096), supervise=False)
    ) as client:
        big = spec_yaml("big") + "#" * 5000 + "\n"
        response = submit(client, big)
        assert response.status_code == 413
        assert response.json()["detail"] == "request body larger than 4096 bytes"

        def chunks():
            for _ in range(10):
                yield b"#" * 1000 + b"\n"

        streamed = client.post("/jobs", content=chunks(), headers={**ALICE, **YAML})
        assert streamed.status_code == 413
        assert submit(client, spec_yaml("small"), dry_run="true").status_code == 200


def test_yaml_alias_bomb_is_refused(api):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        bomb += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    response = submit(api, bomb)
    assert response.status_code == 413
    assert "expands to more than 100000 values" in response.json()["detail"]


def test_deep_nesting_is_400(api):
    response = api.post(
        "/jobs", content="[" * 100_000, headers={**ALICE, "Content-Type": "application/json"}
    )
    assert response.status_code == 400


# ------------------------------------------------------------------------ list and lifecycle


def test_list_filters_and_pages(api):
    ids = [submit(api, spec_yaml(f"n{i}")).json()["id"] for i in range(3)]
    for job_id in ids:
        finished(api, job_id)
    page = api.get("/jobs", params={"limit": 2}, headers=ALICE).json()
    assert page["total"] == 3 and [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    rest = api.get("/jobs", params={"limit": 2, "offset": 2}, headers=ALICE).json()
    assert [j["id"] for j in rest["jobs"]] == [ids[0]]
    assert api.get("/jobs", params={"state": "completed"}, headers=ALICE).json()["total"] == 3
    assert api.get("/jobs", params={"state": "queued,running"}, headers=ALICE).json()["total"] == 0


def test_failed_job_reports_its_error_and_resumes(api):
    job = submit(api, spec_yaml("fail-data")).json()
    done = finished(api, job["id"])
    assert done["state"] == "failed"
    assert done["error"] == "domain 'code': boom"
    response = api.get(f"/jobs/{job['id']}/recommendation", headers=ALICE)
    assert response.status_code == 409
    assert response.json()["detail"] == f"job {job['id']} is failed: no recommendation yet"
    again = api.post(f"/jobs/{job['id']}/resume", headers=ALICE)
    assert again.status_code == 200 and again.json()["state"] in ("queued", "running")
    assert finished(api, job["id"])["state"] == "failed"  # the fake fails every time
    log = api.get(f"/jobs/{job['id']}/logs", headers=ALICE).text
    assert log.count("=== ") == 2  # one header per start of the job's process


def test_cancel_a_running_job(api):
    job = submit(api, spec_yaml("slow-one")).json()
    wait_for(
        lambda: job_of(api, job["id"]),
        lambda j: j["state"] == "running" and j["stage"] == "initial design",
    )
    response = api.post(f"/jobs/{job['id']}/cancel", headers=ALICE)
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True
    done = finished(api, job["id"], timeout=15)
    assert done["state"] == "cancelled"
    again = api.post(f"/jobs/{job['id']}/cancel", headers=ALICE)
    assert (
        again.status_code == 409
        and again.json()["detail"] == f"job {job['id']} is already cancelled"
    )


def test_cancel_escalates_to_sigkill(service_settings):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    app = create_app(service_settings(cancel_grace_s=0.5))
    with TestClient(app) as client:
        job = submit(client, spec_yaml("hang")).json()
        wait_for(lambda: job_of(client, job["id"]), lambda j: j["stage"] == "initial design")
        client.post(f"/jobs/{job['id']}/cancel", headers=ALICE)
        done = finished(client, job["id"], timeout=15)
        assert done["state"] == "cancelled"
        assert app.state.store.get(job["id"]).exit_code == -9


def test_queued_jobs_wait_for_a_slot_and_cancel_at_once(api):
    first = submit(api, spec_yaml("slow-first")).json()
    wait_for(lambda: job_of(api, first["id"]), lambda j: j["state"] == "running")
    second = submit(api, spec_yaml("second")).json()
    assert job_of(api, second["id"])["state"] == "queued"  # max_concurrent_jobs = 1
    cancelled = api.post(f"/jobs/{second['id']}/cancel", headers=ALICE).json()
    assert cancelled["state"] == "cancelled"
    api.post(f"/jobs/{first['id']}/cancel", headers=ALICE)
    assert finished(api, first["id"])["state"] == "cancelled"
    resumed = api.post(f"/jobs/{second['id']}/resume", headers=ALICE)
    assert resumed.status_code == 200
    assert finished(api, second["id"])["state"] == "completed"
    assert api.post(f"/jobs/{second['id']}/resume", headers=ALICE).status_code == 409


def test_a_crashed_job_process_is_resumed_automatically(api):
    job = submit(api, spec_yaml("crash-once")).json()
    done = finished(api, job["id"])
    assert done["state"] == "completed", done
    assert done["resumes"] == 1 and done["trials_completed"] == 4
    assert "resumed automatically" not in (done["error"] or "")
    log = api.get(f"/jobs/{job['id']}/logs", headers=ALICE).text
    assert "mixopt run" in log and "mixopt resume" in log and "resuming after 2 trials" in log


def test_resumes_are_bounded(service_settings):
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    with TestClient(create_app(service_settings(max_resumes=0))) as client:
        job = submit(client, spec_yaml("crash-always")).json()
        done = finished(client, job["id"])
        assert done["state"] == "failed"
        assert done["error"] == "job process ended (killed by signal 9) after 0 automatic resume(s)"


def test_a_restarted_server_adopts_a_running_job(service_settings, kill_jobs):
    """The job's process outlives the server (its own session); the next server watches it."""
    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    settings = service_settings()
    first = create_app(settings)
    with TestClient(first) as client:
        job = submit(client, spec_yaml("slow-adopted")).json()
        running = wait_for(
            lambda: job_of(client, job["id"]), lambda j: j["stage"] == "initial design"
        )
    pid = first.state.store.get(job["id"]).pid
    assert pid and Path(f"/proc/{pid}").exists()  # the server stopped; the job did not
    second = create_app(settings)
    try:
        with TestClient(second) as client:
            assert job_of(client, job["id"])["state"] == "running"
            assert second.state.store.get(job["id"]).pid == pid
            client.post(f"/jobs/{job['id']}/cancel", headers=ALICE)  # adopted: still controllable
            assert finished(client, job["id"], timeout=15)["state"] == "cancelled"
    finally:
        kill_jobs(second.state.store)
    assert running["state"] == "running"


def test_a_job_whose_process_vanished_while_the_server_was_down_is_resumed(service_settings):
    import os
    import signal

    from fastapi.testclient import TestClient

    from mixopt.service.app import create_app

    settings = service_settings()
    first = create_app(settings)
    with TestClient(first) as client:
        job = submit(client, spec_yaml("slow-lost", search={"initial_trials": 2})).json()
        wait_for(lambda: job_of(client, job["id"]), lambda j: j["stage"] == "initial design")
    os.killpg(first.state.store.get(job["id"]).pid, signal.SIGKILL)
    second = create_app(settings)
    with TestClient(second) as client:
        resumed = job_of(client, job["id"])
        assert resumed["resumes"] == 1 and resumed["state"] in ("queued", "running")
        wait_for(lambda: job_of(client, job["id"]), lambda j: j["state"] == "running")
        client.post(f"/jobs/{job['id']}/cancel", headers=ALICE)
        assert finished(client, job["id"], timeout=15)["state"] == "cancelled"
    log = (Path(second.state.store.get(job["id"]).folder) / "process.log").read_text()
    assert "mixopt resume" in log


def test_a_lost_job_without_saved_state_starts_again(tmp_path):
    from types import SimpleNamespace

    from mixopt.service.supervisor import Supervisor

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    record = SimpleNamespace(job_dir=str(job_dir))
    assert Supervisor._next_command(record) == "run"  # killed while preparing data
    (job_dir / "spec.yaml").write_text("name: x\n")
    assert Supervisor._next_command(record) == "run"
    (job_dir / "state.json").write_text("{}")
    assert Supervisor._next_command(record) == "resume"
