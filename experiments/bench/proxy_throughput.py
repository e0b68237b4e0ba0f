"""Proxy throughput on this machine: tokens/s, FLOPs/token, FLOP/s and MFU per preset (dense and
MoE), and stacked vs sequential training of K proxies at once.

Every number is the real training step (``proxies.train.train_step``: forward, backward, per-model
clipping, AdamW) on ``MixtureBatches`` from a random-token file, vocab 4096, fp32 on CPU and bf16
autocast on CUDA, after untimed warmup steps; a number is the median over at least ``--seconds``.

- FLOPs per token are the model's (``cfg.flops_per_token()``: 6 x active matmul weights incl. the
  lm head, plus PaLM's attention term); achieved FLOP/s = tokens/s x FLOPs/token.
- MFU = achieved FLOP/s / peak. The CPU peak is *measured in this run* as the median FLOP/s of a
  large fp32 matmul (``--peak-size``, default 2048^3) on the same threads, before and after the
  presets (the larger is used). On CUDA the peak is the device's dense bf16 peak from its data
  sheet (table below; an unknown device gets a measured large bf16 matmul instead).
- On CPU every time is taken twice: wall clock, and this process's CPU time. On a machine shared
  with other work the wall clock measures the neighbours as much as the code (two threads that
  wait for each other at every kernel lose whole scheduler slices), so the CPU numbers, for the
  model and the peak alike, are the headline ones (``mfu_*``); the wall-clock ones are
  ``mfu_*_wall``. On an idle machine with one thread per proxy the two agree. The default is one
  thread, as mixopt runs CPU trials (one per granted core).
- Tokens/s per core: on CPU, tokens per second of this process's CPU time (``tokens_per_core_s``;
  with one thread, tokens per second of the one core the trial was granted).
- The demo's shape (``--demo-presets``, default the demo spec's ladder nano/micro/tiny and its
  validation preset small; B 8, T 128, vocab 1024 as ``experiments/demo/search.yaml``): each
  preset trains twice, interleaved step by step so that both arms see the same machine load:
  today's step and the baseline (``--baseline`` kinds, default the pre-issue-15 step: torch's
  per-parameter AdamW loop and the lm head's logits materialised before the cross-entropy).
  Rows ``<preset>_demo`` get ``baseline_tokens_per_core_s`` and ``speedup_vs_baseline``.
  ``--compile tiny`` also times those presets under ``torch.compile``: ``compile_wall_s`` (until
  the first compiled step is done; cold unless inductor's on-disk cache holds the graph),
  ``compile_warm_wall_s`` (again after ``torch._dynamo.reset()``, inductor's cache warm) and
  ``compiled_speedup`` over eager.
- Stacked vs sequential, for K in ``--ks``: sequential trains K separate models taking turns (one
  step each per round), stacked trains one ``StackedGPT`` of the K models; both report tokens/s
  over all K models, and the ratio stacked/sequential.

The last line is one JSON object with ``mfu_dense_tiny``, ``mfu_dense_1m``, ``mfu_moe_1m``,
``mfu_dense_tiny_demo`` (tiny at the demo's shape), ``demo_speedup_vs_baseline`` (per demo
preset), ``stacked_speedup_k16`` (for the 1m preset), ``device``, the load average and every row.

    .venv/bin/python experiments/bench/proxy_throughput.py            # ~4 min on 2 CPU cores
    .venv/bin/python experiments/bench/proxy_throughput.py --presets tiny 1m --ks 1 4 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from proxies.config import GPTConfig
from proxies.data import DomainTokens, MixtureBatches
from proxies.gpt import GPT
from proxies.presets import get_preset
from proxies.runtime import cpp_compiler, cpu_settings, maybe_compile, resolve_device, synchronize
from proxies.stacked import StackedGPT
from proxies.train import TrainConfig, build_optimizer, train_step

VOCAB = 4096
DEMO_VOCAB, DEMO_BATCH, DEMO_SEQ_LEN = 1024, 8, 128  # experiments/demo/search.yaml's proxies
BASELINES = ("loop_adamw", "unfused_head")  # the step before issue 15, part by part

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from NVIDIA's data sheets.
CUDA_BF16_PEAK = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 80GB HBM3": 989e12,  # the SXM part's name as the driver reports it
    "H100 NVL": 835e12,
    "H100 PCIe": 756e12,
    "H100": 756e12,  # other H100 names: the conservative PCIe figure
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10G": 70e12,
    "A10": 125e12,
}


@dataclass(frozen=True)
class Timing:
    wall_s: float  # median wall seconds per call
    cpu_s: float  # median process CPU seconds per call (meaningless for CUDA work)
    calls: int


def time_calls(
    fn: Callable[[], Any], device: torch.device, *, seconds: float, warmup: int, min_calls: int = 5
) -> Timing:
    """Median wall and CPU time of ``fn`` (synchronised) after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    walls: list[float] = []
    cpus: list[float] = []
    while sum(walls) < seconds or len(walls) < min_calls:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        synchronize(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Timing(float(np.median(walls)), float(np.median(cpus)), len(walls))


def time_pair(
    fns: tuple[Callable[[], Any], Callable[[], Any]], *, seconds: float, warmup: int
) -> tuple[Timing, Timing]:
    """``time_calls`` of two CPU functions, called in turns (each at least ``seconds``)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    walls: tuple[list[float], list[float]] = ([], [])
    cpus: tuple[list[float], list[float]] = ([], [])
    while min(sum(walls[0]), sum(walls[1])) < seconds or len(walls[0]) < 5:
        for fn, wall_list, cpu_list in zip(fns, walls, cpus, strict=True):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall_list.append(time.perf_counter() - wall)
            cpu_list.append(time.process_time() - cpu)
    return tuple(  # type: ignore[return-value]
        Timing(float(np.median(w)), float(np.median(c)), len(w))
        for w, c in zip(walls, cpus, strict=True)
    )


def make_domain(folder: Path, vocab: int = VOCAB, n_tokens: int = 2_000_000) -> DomainTokens:
    tokens = np.random.default_rng(0).integers(0, vocab, size=n_tokens, dtype=np.uint16)
    path = folder / f"random{vocab}.bin"
    tokens.tofile(path)
    return DomainTokens(f"random{vocab}", path, path, dtype="uint16")


def matmul_peak(device: torch.device, *, size: int, dtype: torch.dtype) -> tuple[float, float]:
    """FLOP/s of a (size x size) @ (size x size) matmul: (per wall second, per CPU second)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    t = time_calls(lambda: torch.mm(a, b, out=out), device, seconds=1.0, warmup=2, min_calls=7)
    flops = 2 * size**3
    return flops / t.wall_s, flops / t.cpu_s if t.cpu_s > 0 else float("nan")


def device_peak(device: torch.device, size: int) -> tuple[float, float, str]:
    """(peak per wall second, peak per CPU second, how it was obtained)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in CUDA_BF16_PEAK.items():
            if key in name:
                return peak, peak, f"{name}: data-sheet dense bf16 peak"
        wall, _ = matmul_peak(device, size=8192, dtype=torch.bfloat16)
        return wall, wall, f"{name}: measured bf16 8192^3 matmul"
    wall, cpu = matmul_peak(device, size=size, dtype=torch.float32)
    return wall, cpu, f"measured fp32 {size}^3 matmul"


def build(cfg: GPTConfig, device: torch.device, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return cfg.build().to(device).train()


def step_fn(
    cfg: GPTConfig,
    domain: DomainTokens,
    device: torch.device,
    batch: int,
    baseline: tuple[str, ...],
    *,
    compile: bool = False,
) -> Callable[[], None]:
    """One training step of a fresh model of ``cfg`` per call; ``baseline``: the old parts used;
    ``compile``: ``model.train_loss`` under ``torch.compile`` (``maybe_compile``)."""
    model = build(cfg, device)
    model.fused_head = "unfused_head" not in baseline
    fused = False if "loop_adamw" in baseline else None
    optimizer = build_optimizer(model, TrainConfig(train_tokens=1), device, fused=fused)
    batches = MixtureBatches([domain], {domain.name: 1.0}, cfg.seq_len, batch, seed=0)
    loss_fn = maybe_compile(model.train_loss, device, compile)

    def step() -> None:
        train_step(model, optimizer, next(batches), grad_clip=1.0, device=device, loss_fn=loss_fn)

    return step


def measure_compiled(
    cfg: GPTConfig, domain: DomainTokens, device: torch.device, args: argparse.Namespace, batch: int
) -> dict[str, float]:
    """``torch.compile`` on CPU: the seconds until the first compiled step is done (wall and this
    process's CPU; cold unless inductor's on-disk cache holds this graph), the same again after
    ``torch._dynamo.reset()`` (as a new process would: traced again, inductor's cache warm), and
    the compiled step's speed, timed in turns with the eager step."""
    row: dict[str, float] = {}
    for key in ("compile", "compile_warm"):
        torch._dynamo.reset()
        compiled = step_fn(cfg, domain, device, batch, (), compile=True)
        wall, cpu = time.perf_counter(), time.process_time()
        compiled()
        row[f"{key}_wall_s"] = time.perf_counter() - wall
        row[f"{key}_cpu_s"] = time.process_time() - cpu
    eager = step_fn(cfg, domain, device, batch, ())
    t_eager, t_compiled = time_pair((eager, compiled), seconds=args.seconds, warmup=args.warmup)
    row["compiled_tokens_per_core_s"] = batch * cfg.seq_len / t_compiled.cpu_s
    row["compiled_speedup"] = t_eager.cpu_s / t_compiled.cpu_s
    return row


def measure_preset(
    cfg: GPTConfig,
    domain: DomainTokens,
    device: torch.device,
    args: argparse.Namespace,
    *,
    batch: int,
    baseline: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Training tokens/s of one model of ``cfg``; with ``baseline``, also of the baseline step
    (CPU only), the two timed in turns."""
    step = step_fn(cfg, domain, device, batch, ())
    tokens = batch * cfg.seq_len
    row: dict[str, Any] = {"batch": batch, "seq_len": cfg.seq_len, "vocab": cfg.vocab_size}
    if baseline is not None:
        old = step_fn(cfg, domain, device, batch, baseline)
        t, t_old = time_pair((step, old), seconds=args.seconds, warmup=args.warmup)
        row["baseline"] = list(baseline)
        row["baseline_tokens_per_core_s"] = tokens / t_old.cpu_s
        row["speedup_vs_baseline"] = t_old.cpu_s / t.cpu_s
        row["speedup_vs_baseline_wall"] = t_old.wall_s / t.wall_s
    else:
        t = time_calls(step, device, seconds=args.seconds, warmup=args.warmup)
    row |= {
        "tokens_per_s": tokens / t.wall_s,
        "flops_per_token": cfg.flops_per_token(),
        "steps_timed": t.calls,
        "non_embedding_params": cfg.non_embedding_params(),
        "active_params": cfg.active_params(),
    }
    row["flops_per_s"] = row["tokens_per_s"] * cfg.flops_per_token()
    if device.type == "cpu":
        row["tokens_per_cpu_s"] = tokens / t.cpu_s
        row["tokens_per_core_s"] = row["tokens_per_cpu_s"]
        row["flops_per_cpu_s"] = row["tokens_per_cpu_s"] * cfg.flops_per_token()
    return row


def measure_stacking(
    cfg: GPTConfig, k: int, domain: DomainTokens, device: torch.device, args: argparse.Namespace
) -> dict[str, Any]:
    """Tokens/s of K models: taking turns (sequential) and as one StackedGPT."""
    train_cfg = TrainConfig(train_tokens=1, batch_size=args.batch)
    streams = [
        MixtureBatches([domain], {domain.name: 1.0}, cfg.seq_len, args.batch, seed=i)
        for i in range(k)
    ]
    tokens = k * args.batch * cfg.seq_len
    singles = [build(cfg, device, seed=i) for i in range(k)]
    optimizers = [build_optimizer(m, train_cfg, device) for m in singles]

    def sequential_round() -> None:
        for model, optimizer, stream in zip(singles, optimizers, streams, strict=True):
            train_step(model, optimizer, next(stream), grad_clip=1.0, device=device)

    seq = time_calls(sequential_round, device, seconds=args.seconds, warmup=1, min_calls=3)
    stacked = StackedGPT.from_models(singles)
    singles.clear()
    optimizers.clear()
    optimizer = build_optimizer(stacked, train_cfg, device)

    def stacked_step() -> None:
        batch = torch.stack([next(s) for s in streams])  # (K, B, T+1)
        train_step(stacked, optimizer, batch, grad_clip=1.0, device=device)

    stk = time_calls(stacked_step, device, seconds=args.seconds, warmup=2, min_calls=3)
    row: dict[str, Any] = {
        "k": k,
        "sequential_tokens_per_s": tokens / seq.wall_s,
        "stacked_tokens_per_s": tokens / stk.wall_s,
        "speedup_wall": seq.wall_s / stk.wall_s,
    }
    if device.type == "cpu":
        row["sequential_tokens_per_cpu_s"] = tokens / seq.cpu_s
        row["stacked_tokens_per_cpu_s"] = tokens / stk.cpu_s
        row["speedup"] = seq.cpu_s / stk.cpu_s
    else:
        row["speedup"] = row["speedup_wall"]
    return row


def pick(rows: list[dict[str, Any]], key: str, **match: Any) -> float | None:
    found = [r[key] for r in rows if all(r.get(k) == v for k, v in match.items())]
    return found[0] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=None, help="default: by device")
    parser.add_argument("--archs", nargs="+", default=["dense", "moe"])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--stack-presets", nargs="+", default=["tiny", "1m"])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per number")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--peak-size", type=int, default=2048)
    parser.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    parser.add_argument(
        "--demo-presets", nargs="*", default=["nano", "micro", "tiny", "small"],
        help="dense presets also measured at the demo's shape (B 8, T 128, vocab 1024)",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", nargs="*", default=list(BASELINES), choices=BASELINES,
        help="the old parts the demo-shape rows are compared with (CPU; none: no comparison)",
    )  # fmt: skip
    parser.add_argument(
        "--compile", nargs="*", default=[], metavar="PRESET",
        help="demo presets also timed under torch.compile (CPU; compile seconds, cold and warm)",
    )  # fmt: skip
    args = parser.parse_args()

    device = resolve_device(args.device)
    cpu = device.type == "cpu"
    presets = args.presets or (
        ["tiny", "small", "1m", "5m"] if cpu else ["tiny", "1m", "5m", "20m", "60m"]
    )
    load_start = os.getloadavg()
    rows: list[dict[str, Any]] = []
    stacking: list[dict[str, Any]] = []
    with cpu_settings(device, args.threads), tempfile.TemporaryDirectory() as tmp:
        domain = make_domain(Path(tmp))
        peak_wall, peak_cpu, peak_note = device_peak(device, args.peak_size)
        print(
            f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, device "
            f"{device}, threads {torch.get_num_threads()}, vocab {VOCAB}, T {args.seq_len}, "
            f"B {args.batch}, load average {load_start[0]:.2f}"
        )
        for arch in args.archs:
            for name in presets:
                cfg = get_preset(name, vocab_size=VOCAB, seq_len=args.seq_len, arch=arch)
                measured = measure_preset(cfg, domain, device, args, batch=args.batch)
                rows.append({"arch": arch, "preset": name, **measured})
                print(f"  measured {arch}/{name}: {measured['tokens_per_s']:.0f} tok/s", flush=True)
        demo_domain = make_domain(Path(tmp), DEMO_VOCAB) if args.demo_presets else None
        for name in args.demo_presets:
            assert demo_domain is not None
            cfg = get_preset(name, vocab_size=DEMO_VOCAB, seq_len=DEMO_SEQ_LEN)
            baseline = tuple(args.baseline) if cpu and args.baseline else None
            measured = measure_preset(
                cfg, demo_domain, device, args, batch=DEMO_BATCH, baseline=baseline
            )
            rows.append({"arch": "dense", "preset": f"{name}_demo", **measured})
            print(f"  measured demo/{name}: {measured['tokens_per_s']:.0f} tok/s", flush=True)
            if cpu and name in args.compile:
                if cpp_compiler() is None:
                    print(f"  compile/{name}: skipped, no C++ compiler")
                    continue
                rows[-1] |= measure_compiled(cfg, demo_domain, device, args, DEMO_BATCH)
                print(
                    f"  compile/{name}: {rows[-1]['compile_wall_s']:.1f} s "
                    f"({rows[-1]['compile_warm_wall_s']:.1f} s warm), then "
                    f"{rows[-1]['compiled_speedup']:.2f}x the eager step",
                    flush=True,
                )
        if cpu:  # the peak again, under the load the presets ran under
            again_wall, again_cpu, _ = device_peak(device, args.peak_size)
            peak_wall, peak_cpu = max(peak_wall, again_wall), max(peak_cpu, again_cpu)
        print(
            f"peak {peak_cpu / 1e9:.1f} GFLOP/s per CPU-s, {peak_wall / 1e9:.1f} per s "
            f"({peak_note})"
        )
        for row in rows:
            row["mfu_wall"] = row["flops_per_s"] / peak_wall
            row["mfu"] = row["flops_per_cpu_s"] / peak_cpu if cpu else row["mfu_wall"]

        print(
            f"{'arch':<6} {'preset':<11} {'active':>7} {'MFLOP/tok':>10} {'tok/s':>8} "
            f"{'GFLOP/s':>8} {'MFU':>6}"
            + (f" {'tok/CPU-s':>10} {'GFLOP/CPU-s':>12} {'MFU':>6}  vs baseline" if cpu else "")
        )
        for row in rows:
            line = (
                f"{row['arch']:<6} {row['preset']:<11} {row['active_params'] / 1e6:>6.2f}M "
                f"{row['flops_per_token'] / 1e6:>10.2f} {row['tokens_per_s']:>8.0f} "
                f"{row['flops_per_s'] / 1e9:>8.1f} {row['mfu_wall']:>6.1%}"
            )
            if cpu:
                line += (
                    f" {row['tokens_per_cpu_s']:>10.0f} {row['flops_per_cpu_s'] / 1e9:>12.1f} "
                    f"{row['mfu']:>6.1%}"
                )
                if "speedup_vs_baseline" in row:
                    line += (
                        f"  {row['speedup_vs_baseline']:.2f}x "
                        f"(baseline {row['baseline_tokens_per_core_s']:.0f} tok/CPU-s)"
                    )
            print(line)

        unit = "tok/CPU-s" if cpu else "tok/s"
        print(
            f"{'preset':<6} {'K':>3} {'sequential ' + unit:>21} {'stacked ' + unit:>18} "
            f"{'ratio':>6}"
        )
        for name in args.stack_presets:
            cfg = get_preset(name, vocab_size=VOCAB, seq_len=args.seq_len)
            for k in args.ks:
                row = {"preset": name, **measure_stacking(cfg, k, domain, device, args)}
                stacking.append(row)
                seq_key = "sequential_tokens_per_cpu_s" if cpu else "sequential_tokens_per_s"
                stk_key = "stacked_tokens_per_cpu_s" if cpu else "stacked_tokens_per_s"
                print(
                    f"{name:<6} {k:>3} {row[seq_key]:>21.0f} {row[stk_key]:>18.0f} "
                    f"{row['speedup']:>6.2f}  (wall {row['sequential_tokens_per_s']:.0f} vs "
                    f"{row['stacked_tokens_per_s']:.0f}: {row['speedup_wall']:.2f})",
                    flush=True,
                )
    load_end = os.getloadavg()
    print(f"load average (1 min): {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end")

    summary = {
        "bench": "proxy_throughput",
        "device": torch.cuda.get_device_name(device) if not cpu else "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "mfu_basis": "process CPU time" if cpu else "wall clock",
        "peak_flops": peak_cpu if cpu else peak_wall,
        "peak_flops_wall": peak_wall,
        "peak_note": peak_note,
        "mfu_dense_tiny": pick(rows, "mfu", arch="dense", preset="tiny"),
        "mfu_dense_tiny_demo": pick(rows, "mfu", arch="dense", preset="tiny_demo"),
        "mfu_dense_1m": pick(rows, "mfu", arch="dense", preset="1m"),
        "mfu_moe_1m": pick(rows, "mfu", arch="moe", preset="1m"),
        "mfu_dense_1m_wall": pick(rows, "mfu_wall", arch="dense", preset="1m"),
        "mfu_moe_1m_wall": pick(rows, "mfu_wall", arch="moe", preset="1m"),
        "demo_speedup_vs_baseline": {
            r["preset"]: r["speedup_vs_baseline"] for r in rows if "speedup_vs_baseline" in r
        },
        "demo_tokens_per_core_s": {
            r["preset"]: r["tokens_per_core_s"] for r in rows if r["preset"].endswith("_demo")
        },
        "compiled_speedup_tiny_demo": pick(rows, "compiled_speedup", preset="tiny_demo"),
        "compile_wall_s_tiny_demo": pick(rows, "compile_wall_s", preset="tiny_demo"),
        "stacked_speedup_k16": pick(stacking, "speedup", preset="1m", k=16),
        "stacked_speedup_k16_wall": pick(stacking, "speedup_wall", preset="1m", k=16),
        "load_average_start": load_start[0],
        "load_average_end": load_end[0],
        "presets": rows,
        "stacking": stacking,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
