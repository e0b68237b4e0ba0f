"""Stacked or one at a time: how a worker should train a group of same-shape trials.

``plan_group`` returns a ``GroupPlan``: ``"sequential"`` (train the trials one after another)
or ``"stacked"`` (``train_stacked`` on chunks of ``group_size`` trials), with the reason.

What it rests on (``experiments/bench/proxy_throughput.py``):

- CPU (2-core Xeon with AVX-512, torch 2.13, fp32, one thread, vocab 4096, T=128, B=16;
  a shared machine, load average 4-5), stacked/sequential tokens per CPU-second:
  tiny 1.11 / 1.08 / 1.08 at K = 1 / 4 / 16, 1m 0.96 / 0.96 / 0.91; measured again on a
  quieter machine (load average 1-2): tiny 0.98 / 1.08 / 0.85, 1m 1.07 / 0.90 / 0.88. One
  proxy's matmuls already keep a core busy (the 1m dense preset runs at ~59% of the measured
  fp32 matmul peak); stacking gains at most ~10% on the smallest preset and loses on the 1M
  class, while it costs the isolation of one trial per task and the parallelism of one trial
  per core. So on CPU: sequential, always.
- CUDA: one tiny proxy's step is a few hundred kernels of microseconds each; at 1M parameters
  and 2k tokens a step is ~30 GFLOP, well under a millisecond of an H100's bf16 throughput, so
  the step is launch-bound and the device mostly idle. Stacking K models does K times the work
  per kernel at nearly the same launch cost, until the work per step fills the device. The rule:
  stack when one model's step is below ``STACK_BELOW_FLOPS`` and make groups of about
  ``GROUP_FLOPS`` per step (at most ``max_group``, and only as many as fit in ``MEMORY_FRACTION``
  of free GPU memory by ``training_memory_bytes``). These thresholds are not yet measured in this
  repository (no GPU was lent to the session that wrote this); running the benchmark on a GPU
  measures the K = 1/4/16 speedups that should confirm or move them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proxies.config import GPTConfig, MoEConfig

STACK_BELOW_FLOPS = 1e12  # one model's training FLOPs per step below which CUDA stacks
GROUP_FLOPS = 4e12  # aim for about this much work per stacked step
MEMORY_FRACTION = 0.6  # of the free GPU memory a stacked group may plan to use

Policy = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class GroupPlan:
    mode: Literal["stacked", "sequential"]
    group_size: int  # trials per stacked run (1 when sequential)
    reason: str


def step_flops(cfg: GPTConfig, batch_size: int) -> float:
    """Training FLOPs of one optimizer step of one model."""
    return cfg.flops_per_token() * batch_size * cfg.seq_len


def training_memory_bytes(cfg: GPTConfig, batch_size: int) -> int:
    """A generous estimate of one model's training memory: fp32 weights, gradients and the two
    AdamW moments (16 bytes a parameter), plus fp32 activations kept for the backward (per token
    and layer ~12 d_model + 4 x the active MLP width, the routed copies of an MoE, and ~10 bytes
    per vocabulary entry for the logits and their saved softmax)."""
    d = cfg.d_model
    mlp = cfg.d_ff
    if isinstance(cfg, MoEConfig):
        mlp = cfg.top_k * cfg.d_ff + cfg.shared_expert_d_ff + 2 * cfg.top_k * d
    per_token = 4 * cfg.n_layer * (12 * d + 4 * mlp) + 10 * cfg.vocab_size
    return 16 * cfg.total_params() + per_token * batch_size * cfg.seq_len


def _resolve(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _free_cuda_memory() -> int:
    import torch

    free, _ = torch.cuda.mem_get_info()
    return int(free)


def plan_group(
    cfg: GPTConfig,
    *,
    batch_size: int,
    n_trials: int,
    device: str = "auto",
    policy: Policy = "auto",
    max_group: int = 16,
    free_memory: int | None = None,
) -> GroupPlan:
    """How to train ``n_trials`` trials of ``cfg`` on ``device`` ("auto", "cpu", "cuda").

    ``policy``: "auto" (the rule above), "on" (stack whenever more than one trial, memory
    permitting), "off" (never). ``free_memory`` (bytes) replaces the CUDA query (for tests)."""
    if policy not in ("auto", "on", "off"):
        raise ValueError(f"stacking policy must be 'auto', 'on' or 'off', got {policy!r}")
    if n_trials < 1 or max_group < 1 or batch_size < 1:
        raise ValueError("n_trials, max_group and batch_size must be >= 1")
    if policy == "off":
        return GroupPlan("sequential", 1, "stacking is off")
    if n_trials == 1:
        return GroupPlan("sequential", 1, "a single trial")
    where = _resolve(device)
    work = step_flops(cfg, batch_size)
    if policy == "auto":
        if where != "cuda":
            return GroupPlan(
                "sequential", 1, "CPU: stacking measured 0.91-1.11x of sequential; one per core"
            )
        if work >= STACK_BELOW_FLOPS:
            return GroupPlan(
                "sequential", 1, f"a step is {work:.2g} FLOP, enough to keep the GPU busy alone"
            )
    size = min(n_trials, max_group)
    if policy == "auto":
        size = min(size, max(1, int(GROUP_FLOPS // work)))
    if where == "cuda":
        budget = MEMORY_FRACTION * (free_memory if free_memory is not None else _free_cuda_memory())
        fits = int(budget // training_memory_bytes(cfg, batch_size))
        size = min(size, fits)
    if size < 2:
        return GroupPlan("sequential", 1, "only one model fits in memory")
    return GroupPlan(
        "stacked", size, f"{where}: a step is {work:.2g} FLOP; {size} models per stacked run"
    )
