"""Soak test of a long-lived worker: many sequential trials in one Ray worker process, its memory
after each.

Prepares a small corpus (the test assets by default), starts a local Ray with one CPU (so every
trial lands on the same worker process, which the output confirms by its pid) and trains
``--trials`` proxies one after another on random mixtures, through mixopt's own worker entry
point (:func:`mixopt.worker.execute_trial`). Inside the worker a sampler reads the process's
memory every 0.2 s while a trial trains; after each trial (and a garbage collection) it reports:

- ``anon_mb``: anonymous resident memory (``RssAnon``: what the worker itself allocated; the
  token files are memory-mapped and count as ``file_mb``, which the kernel can reclaim),
- ``peak_mb``: the highest anonymous memory seen during the trial,
- ``slope_mb_s``: how fast anonymous memory grew during the trial (least squares over the
  samples after the trial's first second).

Target: flat within 10 % after warm-up (``--warmup`` trials): the largest anonymous memory after
warm-up at most 1.1 x the memory at the end of warm-up. The last line is one JSON object.

    .venv/bin/python experiments/bench/soak.py [--trials 50] [--train-tokens 100000]
        [--preset small] [--runner ray|process] [--tracemalloc N]

``--runner process`` trains in this process instead (no Ray). ``--tracemalloc N`` runs N trials
in this process under tracemalloc and prints where Python memory grew between the third and the
last trial (the tool this benchmark's fix was found with).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mixopt.trials import TrialRequest
from mixopt.worker import execute_trial

REPO = Path(__file__).resolve().parents[2]
ASSET_CORPUS = REPO / "tests" / "assets" / "corpus"


def memory_mb() -> dict[str, float]:
    """This process's resident memory by kind, in MB (Linux)."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) / 1024
    return out


class Sampler:
    """Samples anonymous memory every ``interval`` s in a thread while a trial trains."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - start, memory_mb()["RssAnon"]))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def slope(self) -> float:
        points = [(t, m) for t, m in self.samples if t >= 1.0]
        if len(points) < 3:
            return 0.0
        t, m = np.array(points).T
        return float(np.polyfit(t, m, 1)[0])


def measured_trial(request: TrialRequest) -> dict[str, Any]:
    """Train one trial; report the worker's memory during and after it."""
    with Sampler() as sampler:
        started = time.monotonic()
        result = execute_trial(request)
        wall = time.monotonic() - started
    gc.collect()
    after = memory_mb()
    peak = max((m for _, m in sampler.samples), default=after["RssAnon"])
    return {
        "trial_id": request.trial_id,
        "pid": os.getpid(),
        "anon_mb": round(after["RssAnon"], 1),
        "file_mb": round(after["RssFile"], 1),
        "peak_mb": round(max(peak, after["RssAnon"]), 1),
        "slope_mb_s": round(sampler.slope(), 3),
        "wall_s": round(wall, 2),
        "objective_ok": bool(np.isfinite(list(result["metrics"].values())).all()),
    }


def prepare(args: argparse.Namespace, work: Path) -> tuple[Any, Any, list[str]]:
    from mixopt.data import prepare_data
    from mixopt.spec import JobSpec

    corpus = Path(args.corpus)
    folders = sorted(p for p in corpus.iterdir() if p.is_dir() or p.suffix == ".jsonl")
    spec = JobSpec.model_validate(
        {
            "name": "soak",
            "output_dir": str(work / "runs"),
            "domains": [{"name": p.stem, "paths": [str(p)]} for p in folders],
            "data": {"cache_dir": str(work / "cache")},
            "tokenizer": {"vocab_size": args.vocab, "sample_bytes_per_domain": 200_000},
            "proxy": {
                "preset": args.preset,
                "arch": args.arch,
                "seq_len": args.seq_len,
                "batch_size": args.batch_size,
                "train_tokens": args.train_tokens,
                "eval_tokens": 4096,
                "device": args.device,
            },
            "tracking": {"enabled": False},
        }
    )
    manifest = prepare_data(spec, log=lambda _: None)
    return spec, manifest, [p.stem for p in folders]


def requests(args: argparse.Namespace, spec: Any, manifest: Any, names: list[str]) -> list[Any]:
    rng = np.random.default_rng(0)
    domains = manifest.domain_tokens()
    out = []
    for i in range(args.trials):
        weights = rng.dirichlet(np.ones(len(names)))
        out.append(
            TrialRequest.build(
                f"t{i:04d}",
                dict(zip(names, weights.tolist(), strict=True)),
                seed=i,
                proxy=spec.proxy,
                vocab_size=manifest.vocab_size,
                domains=domains,
                threads=1,
                checkpoint_dir=None,
            )
        )
    return out


def run_ray(batch: list[Any]) -> list[dict[str, Any]]:
    import ray

    ray.init(
        address="local",
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=100 * 1024**2,
    )
    try:
        remote = ray.remote(measured_trial).options(num_cpus=1, max_retries=0)
        results = []
        for request in batch:  # one at a time: the same idle worker takes each
            results.append(ray.get(remote.remote(request)))
            report(results[-1], len(results))
        return results
    finally:
        ray.shutdown()


def report(row: dict[str, Any], n: int) -> None:
    print(
        f"trial {n:3d} pid {row['pid']} anon {row['anon_mb']:8.1f} MB  peak {row['peak_mb']:8.1f}"
        f" MB  file {row['file_mb']:7.1f} MB  slope {row['slope_mb_s']:+.3f} MB/s  "
        f"{row['wall_s']:.1f} s",
        flush=True,
    )


def trace(args: argparse.Namespace, batch: list[Any]) -> None:
    import tracemalloc

    tracemalloc.start(25)
    baseline = None
    for i, request in enumerate(batch[: args.tracemalloc]):
        report(measured_trial(request), i + 1)
        if i == 2:
            baseline = tracemalloc.take_snapshot()
    assert baseline is not None, "--tracemalloc needs at least 3 trials"
    for stat in tracemalloc.take_snapshot().compare_to(baseline, "traceback")[:10]:
        print(stat)
        print("\n".join(stat.traceback.format()[-6:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--train-tokens", type=int, default=100_000)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--arch", default="dense", choices=["dense", "moe"])
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--corpus", default=str(ASSET_CORPUS))
    parser.add_argument("--runner", default="ray", choices=["ray", "process"])
    parser.add_argument("--tracemalloc", type=int, default=0)
    args = parser.parse_args()
    if args.trials <= args.warmup:
        parser.error("--trials must exceed --warmup")

    with tempfile.TemporaryDirectory(prefix="mixopt-soak-") as tmp:
        spec, manifest, names = prepare(args, Path(tmp))
        batch = requests(args, spec, manifest, names)
        if args.tracemalloc:
            trace(args, batch)
            return
        started = time.monotonic()
        if args.runner == "ray":
            rows = run_ray(batch)
        else:
            rows = []
            for request in batch:
                rows.append(measured_trial(request))
                report(rows[-1], len(rows))
        wall = time.monotonic() - started

    anon = [r["anon_mb"] for r in rows]
    base = anon[args.warmup - 1]
    growth = (max(anon[args.warmup :]) - base) / base
    slopes = [r["slope_mb_s"] for r in rows[args.warmup :]]
    summary = {
        "runner": args.runner,
        "trials": len(rows),
        "workers": len({r["pid"] for r in rows}),
        "preset": args.preset,
        "arch": args.arch,
        "train_tokens": args.train_tokens,
        "anon_mb_first": anon[0],
        "anon_mb_after_warmup": base,
        "anon_mb_last": anon[-1],
        "anon_mb_max_after_warmup": max(anon[args.warmup :]),
        "growth_after_warmup": round(growth, 4),
        "flat_within_10pct": growth <= 0.10,
        "peak_mb_max": max(r["peak_mb"] for r in rows),
        "median_slope_mb_s": round(float(np.median(slopes)), 4),
        "all_finite": all(r["objective_ok"] for r in rows),
        "wall_s": round(wall, 1),
        "anon_mb": anon,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
