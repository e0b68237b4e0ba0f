"""Proxy training speed on this machine: tokens/s and FLOPs/token per preset, context and batch.

For each (preset, seq_len, batch, threads) it runs the real training step (``proxies.train``'s
``train_step`` on ``MixtureBatches`` from a random-token file, vocab 4096, fp32 on CPU): a few
warmup steps, then steps timed for at least ``--seconds``; tokens/s is per median step time, so
other processes sharing the cores perturb it less (the JSON also has the mean). With
``--concurrent`` it also runs two one-thread processes at the same time (how a demo job trains
proxies two at a time on two cores) and reports their mean rate. Ends with one JSON line.

    .venv/bin/python experiments/bench/proxy_speed.py                # full grid, ~2 min on 2 cores
    .venv/bin/python experiments/bench/proxy_speed.py --presets tiny --seq-lens 128 --concurrent
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from proxies.data import DomainTokens, MixtureBatches
from proxies.presets import get_preset
from proxies.train import TrainConfig, build_optimizer, resolve_device, train_step, tune_malloc

VOCAB = 4096


def make_domain(folder: Path, n_tokens: int = 1_000_000) -> DomainTokens:
    tokens = np.random.default_rng(0).integers(0, VOCAB, size=n_tokens, dtype=np.uint16)
    path = folder / "random.bin"
    tokens.tofile(path)
    return DomainTokens("random", path, path, dtype="uint16")


def measure(
    preset: str,
    seq_len: int,
    batch: int,
    threads: int,
    domain: DomainTokens,
    *,
    seconds: float,
    warmup: int,
    device: str,
) -> dict[str, Any]:
    """Training tokens/s of one configuration (after ``warmup`` untimed steps)."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    tune_malloc()  # as train_proxy does on CPU
    torch.manual_seed(0)
    dev = resolve_device(device)
    cfg = get_preset(preset, vocab_size=VOCAB, seq_len=seq_len)
    model = cfg.build().to(dev)
    optimizer = build_optimizer(model, TrainConfig(train_tokens=1, batch_size=batch), dev)
    batches = MixtureBatches([domain], {domain.name: 1.0}, seq_len, batch, seed=0)

    def step() -> torch.Tensor:
        return train_step(model, optimizer, next(batches), grad_clip=1.0, device=dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    step_s: list[float] = []  # per-step wall times; the median shrugs off other load's spikes
    while sum(step_s) < seconds or len(step_s) < 5:
        start = time.perf_counter()
        float(step())  # waits for the step to finish
        step_s.append(time.perf_counter() - start)
    tokens_per_step = batch * seq_len
    tokens_per_s = tokens_per_step / float(np.median(step_s))
    return {
        "preset": preset,
        "seq_len": seq_len,
        "batch": batch,
        "threads": threads,
        "tokens_per_s": tokens_per_s,
        "tokens_per_s_mean": tokens_per_step * len(step_s) / sum(step_s),
        "steps_timed": len(step_s),
        "flops_per_token": cfg.flops_per_token(),
        "gflops_per_s": tokens_per_s * cfg.flops_per_token() / 1e9,
        "non_embedding_params": cfg.non_embedding_params(),
        "total_params": cfg.total_params(),
    }


def _worker(args: tuple[Any, ...]) -> float:
    preset, seq_len, batch, domain, seconds, warmup = args
    out = measure(preset, seq_len, batch, 1, domain, seconds=seconds, warmup=warmup, device="cpu")
    return float(out["tokens_per_s"])


def measure_concurrent(
    preset: str, seq_len: int, batch: int, domain: DomainTokens, *, seconds: float, warmup: int
) -> float:
    """Mean per-process tokens/s of two one-thread processes training at the same time."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        rates = pool.map(_worker, [(preset, seq_len, batch, domain, seconds, warmup)] * 2)
    return float(np.mean(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "1m"])
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--batches", nargs="+", type=int, default=[16, 32])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per config")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument(
        "--concurrent", action="store_true", help="also time two 1-thread processes at once"
    )
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    header = (
        f"{'preset':<6} {'T':>4} {'B':>3} {'thr':>3} {'tok/s':>9} {'MFLOP/tok':>10} "
        f"{'GFLOP/s':>8} {'non-emb':>9}"
    )
    print(
        f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, vocab {VOCAB}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(header + ("  tok/s 1thr x2 procs" if args.concurrent else ""))
    with tempfile.TemporaryDirectory() as tmp:
        domain = make_domain(Path(tmp))
        for preset in args.presets:
            for seq_len in args.seq_lens:
                for batch in args.batches:
                    for threads in args.threads:
                        row = measure(
                            preset,
                            seq_len,
                            batch,
                            threads,
                            domain,
                            seconds=args.seconds,
                            warmup=args.warmup,
                            device=args.device,
                        )
                        line = (
                            f"{preset:<6} {seq_len:>4} {batch:>3} {threads:>3} "
                            f"{row['tokens_per_s']:>9.0f} {row['flops_per_token'] / 1e6:>10.2f} "
                            f"{row['gflops_per_s']:>8.1f} {row['non_embedding_params']:>9,}"
                        )
                        if args.concurrent and threads == 1 and args.device == "cpu":
                            row["tokens_per_s_concurrent_2x1"] = measure_concurrent(
                                preset,
                                seq_len,
                                batch,
                                domain,
                                seconds=args.seconds,
                                warmup=args.warmup,
                            )
                            line += f"  {row['tokens_per_s_concurrent_2x1']:>9.0f}"
                        print(line, flush=True)
                        rows.append(row)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(json.dumps({"bench": "proxy_speed", "torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
