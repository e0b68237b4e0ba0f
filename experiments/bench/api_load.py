"""Load test of the service's API: many status/list calls and submissions from a second process.

Starts ``mixopt serve`` on a free loopback port (its own state directory and token, SQLite) —
or uses ``--server URL`` with ``$MIXOPT_TOKEN`` — seeds it with finished jobs, then sends a
bounded number of requests from a pool of client threads in this process:

- ``status``: ``GET /jobs/{id}`` (70 %), ``list``: ``GET /jobs?limit=20`` (15 %),
- ``dry_run``: ``POST /jobs?dry_run=true`` with a valid spec (10 %: parsed, validated, every
  data path checked against the roots; no job is created, nothing trains),
- ``invalid``: ``POST /jobs`` with a spec that fails validation (5 %, expected 422).

An error is a transport failure or an unexpected status. Prints p50/p99 latency per kind and
overall, throughput and errors; the last line is one JSON object with every number.

    .venv/bin/python experiments/bench/api_load.py [--requests 1000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

KINDS = {"status": 0.70, "list": 0.15, "dry_run": 0.10, "invalid": 0.05}
EXPECTED = {"status": 200, "list": 200, "dry_run": 200, "invalid": 422}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_corpus(root: Path) -> Path:
    """Two tiny domains the dry-run spec points at."""
    corpus = root / "corpus"
    for name, line in (("code", "def f(x):\n    return x + 1\n"), ("prose", "The cat sat.\n")):
        folder = corpus / name
        folder.mkdir(parents=True)
        for i in range(5):
            (folder / f"{i}.txt").write_text(line * 200)
    return corpus


def spec_text(corpus: Path, valid: bool) -> str:
    spec: dict[str, Any] = {
        "name": "load",
        "domains": [
            {"name": "code", "paths": [str(corpus / "code")]},
            {"name": "prose", "paths": [str(corpus / "prose" / "*.txt")]},
        ],
        "proxy": {"preset": "tiny", "seq_len": 32, "batch_size": 4, "train_tokens": 12000},
        "search": {"initial_trials": 4, "rounds": 1, "trials_per_round": 2},
        "tracking": {"enabled": False},
    }
    if not valid:
        spec["search"]["initial_trials"] = 1  # must be >= 2: a 422 naming the field
    return yaml.safe_dump(spec)


def seed_jobs(state_dir: Path, count: int) -> list[str]:
    """Finished jobs written straight into the service's database (nothing to run)."""
    from mixopt.service.store import JobRecord, JobStore

    store = JobStore(f"sqlite:///{state_dir / 'service.db'}")
    ids = []
    now = time.time()
    for i in range(count):
        job_id = f"jseed{i:06d}"
        store.add(
            JobRecord(
                id=job_id,
                owner="default",
                name=f"seeded-{i}",
                state="completed",
                command="run",
                runner="local",
                spec="name: seeded\n",
                folder=str(state_dir / "jobs" / job_id),
                job_dir=str(state_dir / "jobs" / job_id / "run"),
                direction="minimize",
                trials_total=30,
                trials_completed=30,
                best_objective=3.5 + i * 1e-3,
                stage="done",
                created=now - count + i,
                updated=now,
                started=now - count + i,
                finished=now,
            )
        )
        ids.append(job_id)
    store.close()
    return ids


def start_server(
    state_dir: Path, data_root: Path, token: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "mixopt.cli.main", "serve", "--port", str(port)]
    command += ["--state-dir", str(state_dir), "--data-root", str(data_root)]
    command += ["--runner", "local", "--log-level", "warning"]
    env = {**os.environ, "MIXOPT_TOKEN": token}
    log = (state_dir / "server.log").open("ab")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited: {(state_dir / 'server.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not start in 60 s")


def run_load(
    url: str,
    token: str,
    job_ids: list[str],
    corpus: Path,
    requests: int,
    concurrency: int,
    time_limit: float,
    seed: int,
) -> dict[str, Any]:
    rng = random.Random(seed)
    plan = rng.choices(list(KINDS), weights=list(KINDS.values()), k=requests)
    bodies = {"dry_run": spec_text(corpus, True), "invalid": spec_text(corpus, False)}
    results: list[tuple[str, float, bool]] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    cursor = iter(range(len(plan)))
    deadline = time.monotonic() + time_limit

    def worker(index: int) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"}
        local = random.Random(seed + index)
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while time.monotonic() < deadline:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                kind = plan[i]
                started = time.perf_counter()
                try:
                    if kind == "status":
                        response = client.get(f"/jobs/{local.choice(job_ids)}")
                    elif kind == "list":
                        response = client.get("/jobs", params={"limit": 20})
                    elif kind == "dry_run":
                        response = client.post(
                            "/jobs", content=bodies[kind], params={"dry_run": "true"}
                        )
                    else:
                        response = client.post("/jobs", content=bodies[kind])
                    ok = response.status_code == EXPECTED[kind]
                    problem = "" if ok else f"{kind}: HTTP {response.status_code}"
                except httpx.HTTPError as error:
                    ok, problem = False, f"{kind}: {type(error).__name__}"
                elapsed = time.perf_counter() - started
                with lock:
                    results.append((kind, elapsed, ok))
                    if problem:
                        errors[problem] = errors.get(problem, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started

    def summary(latencies: list[float], failures: int) -> dict[str, Any]:
        ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
        return {
            "requests": len(latencies),
            "errors": failures,
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(np.max(ms)), 2),
        }

    by_kind = {
        kind: summary(
            [e for k, e, _ in results if k == kind],
            sum(not ok for k, _, ok in results if k == kind),
        )
        for kind in KINDS
    }
    overall = summary([e for _, e, _ in results], sum(not ok for *_, ok in results))
    return {
        **overall,
        "planned": requests,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(results) / wall, 1) if wall else None,
        "by_kind": by_kind,
        "error_kinds": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="Requests in all.")
    parser.add_argument("--concurrency", type=int, default=8, help="Client threads.")
    parser.add_argument("--seed-jobs", type=int, default=50, help="Finished jobs seeded first.")
    parser.add_argument("--time-limit", type=float, default=300.0, help="Stop sending after this.")
    parser.add_argument("--server", help="Use this running server (token: $MIXOPT_TOKEN).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mixopt-load-") as tmp:
        root = Path(tmp)
        corpus = make_corpus(root)
        server = None
        if args.server:
            url, token = args.server.rstrip("/"), os.environ.get("MIXOPT_TOKEN", "")
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
                listed = client.get(f"{url}/jobs", params={"limit": 100}).json()
            job_ids = [j["id"] for j in listed.get("jobs", [])] or ["jmissing"]
        else:
            state = root / "state"
            state.mkdir()
            token = secrets.token_urlsafe(32)
            job_ids = seed_jobs(state, args.seed_jobs)
            server, url = start_server(state, root, token)
        try:
            result = run_load(
                url,
                token,
                job_ids,
                corpus,
                args.requests,
                args.concurrency,
                args.time_limit,
                args.seed,
            )
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()
    print(f"API load test against {'--server' if args.server else 'a fresh mixopt serve'} ({url})")
    print(
        f"{result['requests']} requests from {result['concurrency']} threads in "
        f"{result['wall_s']} s: {result['throughput_rps']} req/s, {result['errors']} errors"
    )
    for kind, row in result["by_kind"].items():
        print(
            f"  {kind:<8} n={row['requests']:<5} p50 {row['p50_ms']:>7.2f} ms  "
            f"p99 {row['p99_ms']:>7.2f} ms  errors {row['errors']}"
        )
    print(f"  overall  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms")
    if result["error_kinds"]:
        print(f"  errors: {result['error_kinds']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
