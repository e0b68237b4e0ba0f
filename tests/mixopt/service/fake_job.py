"""A stand-in for ``mixopt run`` / ``mixopt resume`` in the service's fast tests.

    python fake_job.py run SPEC --job-dir DIR --runner R
    python fake_job.py resume DIR --runner R

It writes what the real job writes for the service to read (``spec.yaml``, ``state.json``,
``job.json`` with progress, ``job.log``, ``recommendation.json``) in a fraction of a second, and
behaves by the spec's name: ``fail*`` fails like a spec error (exit 2), ``slow*`` takes a minute
unless cancelled with SIGTERM (exit 3, status cancelled), ``crash*`` dies by a signal on its
first run and completes when resumed, ``hang*`` ignores SIGTERM, ``leak*`` fails with a
traceback and an error naming its own directory, the interpreter's library folder and the home
directory (what a real crash shows).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml


def write_status(job_dir: Path, **state: object) -> None:
    tmp = job_dir / ".job.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, job_dir / "job.json")


def say(job_dir: Path, text: str) -> None:
    with (job_dir / "job.log").open("a") as log:
        log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
    print(text, flush=True)


class Cancelled(Exception):
    pass


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "run":
        spec_path, job_dir = Path(argv[1]), Path(argv[argv.index("--job-dir") + 1])
        if job_dir.exists() and any(job_dir.iterdir()):
            print(f"error: {job_dir}: already exists and is not empty", file=sys.stderr)
            return 2
        job_dir.mkdir(parents=True, exist_ok=True)
        spec = yaml.safe_load(spec_path.read_text())
        (job_dir / "spec.yaml").write_text(yaml.safe_dump(spec))
        done = 0
        (job_dir / "state.json").write_text(json.dumps({"done": done}))
    elif command == "resume":
        job_dir = Path(argv[1])
        spec = yaml.safe_load((job_dir / "spec.yaml").read_text())
        done = json.loads((job_dir / "state.json").read_text())["done"]
        say(job_dir, f"resuming after {done} trials")
    else:
        print(f"error: no such command {command!r}", file=sys.stderr)
        return 2
    name = spec["name"]
    total = int(spec.get("search", {}).get("initial_trials", 4))
    pause = 0.05

    def cancel(signum: int, frame: object) -> None:
        raise Cancelled

    if name.startswith("hang"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, cancel)
    base = {"job": name, "trials_total": total, "pid": os.getpid()}
    try:
        write_status(job_dir, status="preparing", stage="preparing", trials_completed=done, **base)
        if name.startswith("leak"):
            import sysconfig

            library = sysconfig.get_paths()["purelib"]
            home = Path.home()
            print("Traceback (most recent call last):", file=sys.stderr)
            print(f'  File "{library}/torch/nn/module.py", line 1, in f', file=sys.stderr)
            print(f'  File "{home}/.cache/mixopt/x.py", line 2, in g', file=sys.stderr)
            error = f"cannot open {job_dir.resolve()}/checkpoints/t0001 (from {sys.prefix})"
            say(job_dir, error)
            write_status(job_dir, status="failed", error=error, **base)
            print(f"error: {error}", file=sys.stderr)
            return 2
        if name.startswith("fail"):
            say(job_dir, "domain 'code': no such file")
            write_status(job_dir, status="failed", error="domain 'code': boom", **base)
            print("error: domain 'code': boom", file=sys.stderr)
            return 2
        if name.startswith(("slow", "hang")):
            pause = 60.0
        while done < total:
            write_status(
                job_dir,
                status="running",
                stage="initial design",
                trials_completed=done,
                best_objective=5.0 - 0.1 * done if done else None,
                **base,
            )
            time.sleep(pause)
            done += 1
            (job_dir / "state.json").write_text(json.dumps({"done": done}))
            say(job_dir, f"trial t{done:04d} done")
            if name.startswith("crash") and command == "run" and done == 2:
                os.kill(os.getpid(), signal.SIGKILL)
    except Cancelled:
        write_status(job_dir, status="cancelled", trials_completed=done, **base)
        print("error: cancelled (SIGTERM)", file=sys.stderr)
        return 3
    weights = {"a": 0.25, "b": 0.75}
    (job_dir / "recommendation.json").write_text(json.dumps({"job": name, "weights": weights}))
    write_status(
        job_dir, status="completed", stage="done", trials_completed=done, best_objective=4.2, **base
    )
    say(job_dir, "completed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
