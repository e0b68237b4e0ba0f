"""Attacks on a shared service, tried against a real server on a loopback port (and against the
job process itself, which enforces the service's policy a second time before it reads or trains
anything). Each test reproduces what a hostile user did and asserts it fails.

- a tracking URI of the user's choosing makes the job fetch it (SSRF) and show the answer;
- a cache or MLflow store pointed into the service's state writes into other users' jobs or the
  jobs database;
- a symbolic link planted under a data root after admission is read at run time;
- responses, job errors and log tails show the server's paths;
- resource requests beyond the machine or the user's quota are admitted.
"""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ASSETS, CORPUS
from tests.mixopt.service.conftest import TOKENS, spec_dict, wait_for
from tests.mixopt.service.test_server import fake_service

REPO = Path(__file__).resolve().parents[3]
HEADERS = {"Authorization": f"Bearer {TOKENS['alice']}"}
FINAL = ("completed", "failed", "cancelled")


class Canary:
    """An HTTP server on loopback that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(f"GET {self.path}")
                body = b'{"secret": "canary-body-7f3a"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Canary:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    with Canary() as server:
        yield server


def users(tmp_path: Path) -> dict[str, str]:
    """fake_service settings for the users alice and bob (a tokens file)."""
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump(TOKENS))
    return {"MIXOPT_TOKEN_FILE": str(path), "MIXOPT_TOKEN": ""}


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers=HEADERS, timeout=60.0)


def post_spec(http: httpx.Client, spec: dict[str, Any], **params: str) -> httpx.Response:
    return http.post(
        "/jobs",
        content=json.dumps(spec),
        headers={"Content-Type": "application/json"},
        params={"base_dir": str(ASSETS), **params},
    )


def job_process(tmp_path: Path, spec: dict[str, Any], policy_env: dict[str, str]) -> Any:
    """``mixopt run`` as the service starts it: with its user's policy in the environment."""
    path = tmp_path / "submitted.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXOPT_")}
    env.update(policy_env)
    command = [sys.executable, "-m", "mixopt.cli.main", "run", str(path)]
    command += ["--job-dir", str(tmp_path / "job"), "--runner", "local"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


def absolute(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with absolute domain paths (a job process has no base folder to resolve from)."""
    for domain, path in zip(spec["domains"], ("code", "bible/*.txt", "dictionary"), strict=True):
        domain["paths"] = [str(CORPUS / path)]
    return spec


def alice_policy(tmp_path: Path, **settings: Any) -> Any:
    from mixopt.service.policy import JobPolicy
    from mixopt.service.settings import ServiceSettings

    values = {"tokens": dict(TOKENS), "state_dir": tmp_path / "state", "data_roots": [ASSETS]}
    return JobPolicy.for_user(ServiceSettings(**{**values, **settings}), "alice")


# ------------------------------------------------------------------------- 1: tracking (SSRF)


def test_a_tracking_uri_of_the_users_choosing_is_never_fetched(tmp_path, canary):
    tracking = {"enabled": True, "mlflow_uri": f"{canary.url}/anything"}
    with fake_service(tmp_path) as server, client(server.url) as http:
        for params in ({"dry_run": "true"}, {}):
            response = post_spec(http, spec_dict("ssrf", tracking=tracking), **params)
            assert response.status_code == 403, response.text
            assert response.json()["detail"].startswith("tracking.mlflow_uri: ")
        assert http.get("/jobs").json()["total"] == 0
    assert canary.requests == []


def test_the_job_process_refuses_a_tracking_uri_too(tmp_path, canary):
    """At use: a spec that reached a job process without admission (edited on disk, or a job
    started by hand with the service's policy) is refused before any request is made."""
    spec = absolute(spec_dict("ssrf", tracking={"enabled": True, "mlflow_uri": f"{canary.url}/x"}))
    policy = alice_policy(tmp_path)
    spec["data"] = {"cache_dir": str(policy.cache_dir)}
    result = job_process(tmp_path, spec, policy.to_env())
    assert result.returncode == 2, result.stderr
    assert "tracking.mlflow_uri: this service keeps each job's MLflow runs" in result.stderr
    assert "Traceback" not in result.stderr
    assert canary.requests == []
    assert not (tmp_path / "job" / "job.json").exists()  # nothing started


def test_a_service_with_an_mlflow_server_admits_that_server_only(tmp_path, canary):
    with (
        fake_service(tmp_path, MIXOPT_TEST_MLFLOW_URI=canary.url) as server,
        client(server.url) as http,
    ):
        for given in (None, canary.url, canary.url + "/"):
            tracking = (
                {"enabled": True} if given is None else {"enabled": True, "mlflow_uri": given}
            )
            response = post_spec(http, spec_dict("ok", tracking=tracking), dry_run="true")
            assert response.status_code == 200, response.text
            assert response.json()["spec"]["tracking"]["mlflow_uri"].rstrip("/") == canary.url
        tracking = {"enabled": True, "mlflow_uri": f"{canary.url}/other"}
        response = post_spec(http, spec_dict("no", tracking=tracking), dry_run="true")
        assert response.status_code == 403
        assert f"its own MLflow server only ({canary.url})" in response.json()["detail"]
    assert canary.requests == []  # admission itself fetches nothing


# ------------------------------------------------------- 2: writes into the service's state


def test_an_mlflow_store_in_the_service_database_is_refused(tmp_path):
    state = tmp_path / "state"
    with fake_service(tmp_path) as server, client(server.url) as http:
        for uri in (f"sqlite:///{state}/service.db", f"file://{state}/jobs", str(state / "x")):
            tracking = {"enabled": True, "mlflow_uri": uri}
            response = post_spec(http, spec_dict("db", tracking=tracking))
            assert response.status_code == 403, (uri, response.text)
            assert str(state) not in response.text
    with sqlite3.connect(state / "service.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"mixopt_jobs"}  # no MLflow tables landed in the service's database


def test_a_job_writes_into_its_users_cache_whatever_its_spec_says(tmp_path):
    """Attack: alice names bob's job directory as her cache; the job's shards land in alice's
    own cache (the service chooses it), and bob's directory is untouched."""
    state = tmp_path / "state"
    bob_job = state / "jobs" / "jbob" / "run"
    with fake_service(tmp_path, **users(tmp_path)) as server, client(server.url) as http:
        bob_job.mkdir(parents=True)
        (bob_job / "runs.parquet").write_bytes(b"bob's runs")
        spec = spec_dict("into-bob", data={"cache_dir": str(bob_job)}, output_dir=str(bob_job))
        response = post_spec(http, spec)
        assert response.status_code == 201, response.text
        job = response.json()
        wait_for(lambda: http.get(f"/jobs/{job['id']}").json(), lambda j: j["state"] in FINAL)
    submitted = yaml.safe_load((state / "jobs" / job["id"] / "submitted.yaml").read_text())
    assert submitted["data"]["cache_dir"] == str(state / "cache" / "alice")
    assert submitted["output_dir"] == str(state / "jobs" / job["id"])
    assert sorted(p.name for p in bob_job.iterdir()) == ["runs.parquet"]


def test_the_job_process_refuses_a_cache_the_service_did_not_choose(tmp_path):
    policy = alice_policy(tmp_path)
    elsewhere = tmp_path / "state" / "jobs" / "jbob"
    spec = absolute(spec_dict("cache", data={"cache_dir": str(elsewhere)}))
    result = job_process(tmp_path, spec, policy.to_env())
    assert result.returncode == 2, result.stderr
    assert "data.cache_dir: the service chooses each user's cache" in result.stderr
    assert not elsewhere.exists()


# ------------------------------------------------------------------ 3: data roots at read time


def test_reads_are_checked_against_the_data_roots_when_files_are_read(tmp_path, monkeypatch):
    """The data layer's own check: a link under a data root to a file outside is refused."""
    from mixopt.data.sources import READ_ROOTS_ENV, ReadRoots, resolve_sources
    from mixopt.errors import DataError
    from mixopt.spec import DomainSpec

    root, secret = tmp_path / "data", tmp_path / "secret.txt"
    (root / "web").mkdir(parents=True)
    (root / "web" / "a.txt").write_text("fine\n")
    secret.write_text("the secret")
    domain = DomainSpec(name="web", paths=[str(root / "web")])
    monkeypatch.setenv(READ_ROOTS_ENV, ReadRoots((root,), (root / "private",)).to_env())
    assert [f.path.name for f in resolve_sources(domain)] == ["a.txt"]
    (root / "web" / "b.txt").symlink_to(secret)
    with pytest.raises(DataError, match=r"resolves outside the service's data roots"):
        resolve_sources(domain)
    monkeypatch.setenv(READ_ROOTS_ENV, "not json")
    with pytest.raises(DataError, match="malformed; refusing to read data"):
        resolve_sources(domain)
    monkeypatch.delenv(READ_ROOTS_ENV)
    assert len(resolve_sources(domain)) == 2  # outside the service: the user's own files


def test_a_link_planted_after_admission_is_not_read(tmp_path):
    """Attack: a domain folder passes admission; a link to a file outside every data root is
    planted in it while the job waits in the queue. The real job process refuses the link when
    it reads the domain, and the secret never reaches the cache."""
    root, secret = tmp_path / "data", tmp_path / "outside" / "secret.txt"
    for name, source in (("code", CORPUS / "code"), ("dictionary", CORPUS / "dictionary")):
        (root / name).mkdir(parents=True)
        for file in source.iterdir():
            (root / name / file.name).write_bytes(file.read_bytes())
    secret.parent.mkdir()
    secret.write_text("top secret: canary-9c1d " * 200)
    spec = spec_dict("victim", tracking={"enabled": False})
    spec["domains"] = [
        {"name": "code", "paths": [str(root / "code")]},
        {"name": "dictionary", "paths": [str(root / "dictionary")]},
    ]
    with (
        fake_service(tmp_path, [root, ASSETS], MIXOPT_TEST_MIXED_JOBS="1") as server,
        client(server.url) as http,
    ):
        blocker = post_spec(http, spec_dict("slow-blocker")).json()  # holds the one job slot
        wait_for(lambda: http.get(f"/jobs/{blocker['id']}").json(), lambda j: j["stage"])
        victim = post_spec(http, spec)
        assert victim.status_code == 201, victim.text  # admitted: no link yet
        victim_id = victim.json()["id"]
        assert http.get(f"/jobs/{victim_id}").json()["state"] == "queued"
        (root / "code" / "zz-planted.txt").symlink_to(secret)
        http.post(f"/jobs/{blocker['id']}/cancel")
        done = wait_for(
            lambda: http.get(f"/jobs/{victim_id}").json(),
            lambda j: j["state"] in FINAL,
            timeout=300,
            interval=0.5,
        )
        log = http.get(f"/jobs/{victim_id}/logs").text
    assert done["state"] == "failed", done
    # refused by the job process: its check of the spec at start, or the data layer's own
    assert "zz-planted.txt is a link to outside the allowed data roots" in done["error"] or (
        "resolves outside the service's data roots" in done["error"]
    ), done["error"]
    assert str(secret) not in done["error"]
    assert "canary-9c1d" not in log
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert b"canary-9c1d" not in path.read_bytes(), path


# ---------------------------------------------------------------------- 5: no server paths


def test_responses_errors_and_logs_carry_no_server_paths(tmp_path):
    state = tmp_path / "state"
    secrets = {str(state), sys.prefix, sysconfig.get_paths()["purelib"]}
    home = str(Path.home())
    if home != "/" and not str(ASSETS).startswith(home):
        secrets.add(home)

    def clean(text: str, where: str) -> None:
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{where} shows {leaked}: {text[:2000]}"

    with fake_service(tmp_path) as server, client(server.url) as http:
        job = post_spec(http, spec_dict("leak")).json()
        done = wait_for(
            lambda: http.get(f"/jobs/{job['id']}").json(), lambda j: j["state"] in FINAL
        )
        assert done["state"] == "failed" and "checkpoints/t0001" in done["error"]
        assert done["error"].startswith("cannot open run/checkpoints/t0001")  # relative to the job
        assert done["job_dir"] == f"jobs/{job['id']}/run"
        answers = {
            "job": http.get(f"/jobs/{job['id']}").text,
            "list": http.get("/jobs").text,
            "process log": http.get(f"/jobs/{job['id']}/logs").text,
            "job log": http.get(f"/jobs/{job['id']}/logs", params={"source": "job"}).text,
            "spec": http.get(f"/jobs/{job['id']}/spec").text,
        }
        assert "<python>" in answers["process log"] and "Traceback" in answers["process log"]
        peek = spec_dict("peek")
        peek["domains"][0]["paths"] = [str(state / "jobs" / job["id"] / "run")]
        refused = post_spec(http, peek)
        assert refused.status_code == 403
        answers["refusal"] = refused.text
        answers["dry run"] = post_spec(http, spec_dict("dry"), dry_run="true").text
        for where, text in answers.items():
            clean(text, where)


# ------------------------------------------------------------------------ 10: resource limits


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"proxy": {"train_tokens": 10**15}}, 403, "proxy.train_tokens: the job plans up to"),
        ({"proxy": {"batch_size": 10**9}}, 422, "proxy: one trial needs about"),
        (  # its logits alone: 64 x 512 x 1e6 floats, twice
            {"tokenizer": {"vocab_size": 10**6}, "proxy": {"batch_size": 64, "seq_len": 512}},
            422,
            "vocab_size 1000000",
        ),
        ({"proxy": {"lr": "inf"}}, 422, "proxy.lr"),
        ({"data": {"workers": 10**6}}, 422, "data.workers: 1000000 tokenizer processes"),
        ({"search": {"initial_trials": 10**9}}, 422, "search.initial_trials"),
        ({"search": {"initial_trials": 6000}}, 403, "the job plans 6006 trials"),
    ],
)
def test_resource_requests_beyond_the_machine_or_the_quota_are_refused(
    tmp_path, change, status, message
):
    spec = spec_dict("big")
    for section, values in change.items():
        spec[section] = {**spec.get(section, {}), **values}
    if spec["proxy"].get("lr") == "inf":
        body = json.dumps(spec).replace('"inf"', "Infinity")
    else:
        body = json.dumps(spec)
    with fake_service(tmp_path) as server, client(server.url) as http:
        for params in ({"dry_run": "true"}, {}):
            response = http.post(
                "/jobs",
                content=body,
                headers={"Content-Type": "application/json"},
                params={"base_dir": str(ASSETS), **params},
            )
            assert response.status_code == status, response.text
            assert message in response.json()["detail"], response.text
        assert http.get("/jobs").json()["total"] == 0  # nothing was queued, nothing trained


def test_a_users_active_jobs_are_bounded_by_the_quota(tmp_path):
    quotas = json.dumps({"max_active_jobs": 2})
    with (
        fake_service(tmp_path, MIXOPT_TEST_QUOTAS=quotas, **users(tmp_path)) as server,
        client(server.url) as http,
    ):
        first = post_spec(http, spec_dict("slow-1")).json()
        second = post_spec(http, spec_dict("slow-2")).json()  # queued behind the first
        third = post_spec(http, spec_dict("third"))
        assert third.status_code == 429, third.text
        assert "3 active jobs (at most 2)" in third.json()["detail"]
        bob = {"Authorization": f"Bearer {TOKENS['bob']}"}
        response = http.post(
            "/jobs",
            content=json.dumps(spec_dict("bobs")),
            headers={**bob, "Content-Type": "application/json"},
            params={"dry_run": "true"},
        )
        assert response.status_code == 200  # quotas are per user
        http.post(f"/jobs/{second['id']}/cancel")
        assert post_spec(http, spec_dict("third")).status_code == 201
        resumed = http.post(f"/jobs/{second['id']}/resume")  # would be a third active job
        assert resumed.status_code == 429, resumed.text
        for job in (first,):
            http.post(f"/jobs/{job['id']}/cancel")


def test_local_runs_check_the_machine_before_anything_trains(tmp_path):
    from typer.testing import CliRunner

    from mixopt.cli.main import app

    spec = absolute(spec_dict("huge", proxy={"batch_size": 10**9}))
    spec["output_dir"] = str(tmp_path / "runs")
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(spec))
    for args in (["--dry-run"], ["--runner", "local"]):
        result = CliRunner().invoke(app, ["run", str(path), *args])
        assert result.exit_code == 2, result.output
        assert "proxy: one trial needs about" in result.output
        assert "lower batch_size" in result.output
    assert not (tmp_path / "runs").exists()  # no job directory was even created
