"""train_proxy: train one proxy on one mixture, then evaluate every domain's validation loss.

What happens, in order: resolve the device (``auto`` = CUDA when available); on CPU turn on
flush-to-zero for denormals (tiny AdamW updates are otherwise 4-60x slower) and set torch's thread
count to ``threads`` (the CPUs the runner granted; restored afterwards); seed torch; build the
model, AdamW and the data streams (validation windows first, so bad files fail before training);
run ``ceil(train_tokens / (batch_size * seq_len))`` steps of warmup + cosine (or constant) lr with
gradient clipping, fp32 on CPU and bf16 autocast on CUDA; evaluate ``val_loss/<domain>`` (mean
token cross-entropy on fixed windows) and ``bpb/<domain>`` for every domain, weight 0 included.

Also on CPU (Linux/glibc), ``tune_malloc`` raises glibc's mmap and trim thresholds to 1 GiB once
per process: the (B*T, V) logit-sized buffers are otherwise fresh mmaps that page-fault on every
step (the tiny proxy trains ~1.3x faster without that); ``PROXIES_MALLOC_TUNING=0`` turns it off.

Weight decay applies to the block matrices (and an untied lm head); RMSNorm gains and the token
embedding (with the tied head, which is the same tensor) are not decayed, as in LLaMA/OLMo recipes.
Per-step losses stay on the device and are read once at the end (no per-step sync on CUDA) unless
an ``on_step`` callback asks for them.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from proxies.config import GPTConfig
from proxies.data import DomainTokens, MixtureBatches, ValidationWindows
from proxies.gpt import GPT

CURVE_POINTS = 50
_EMA_BETA = 0.9


@dataclass(frozen=True)
class TrainConfig:
    """How a proxy is trained (defaults match mixopt's ProxySpec)."""

    train_tokens: int
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio (ignored by "constant")
    warmup_ratio: float = 0.05  # fraction of steps with linear warmup
    schedule: Literal["cosine", "constant"] = "cosine"
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global grad norm; 0 turns clipping off
    eval_tokens: int = 32_768  # validation tokens per domain (whole windows, at least one)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None  # torch CPU threads; None leaves torch's setting alone

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"TrainConfig: {what}")

        need(self.train_tokens > 0, f"train_tokens must be > 0, got {self.train_tokens}")
        need(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        need(math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(
            0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"
        )
        need(0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need(
            self.schedule in ("cosine", "constant"),
            f"schedule must be 'cosine' or 'constant', got {self.schedule!r}",
        )
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        need(self.eval_tokens > 0, f"eval_tokens must be > 0, got {self.eval_tokens}")
        need(
            self.device in ("auto", "cpu", "cuda"),
            f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}",
        )
        need(
            self.threads is None or self.threads >= 1,
            f"threads must be None or >= 1, got {self.threads}",
        )


@dataclass
class TrainResult:
    """What a trained proxy reports back to the driver (plain data, picklable)."""

    metrics: dict[str, float]  # val_loss/<domain>, bpb/<domain> (when val_bytes > 0)
    curve: list[tuple[int, float]]  # (tokens seen, EMA-smoothed train loss), ~50 points
    tokens: int  # training tokens processed
    flops: float  # training FLOPs: cfg.flops_per_token() * tokens (evaluation not counted)
    wall_s: float  # whole call: setup + training + evaluation
    train_s: float
    eval_s: float
    tokens_per_s: float  # training throughput: tokens / train_s
    device: str
    n_params: int  # non-embedding
    n_params_total: int
    steps: int = 0
    threads: int = 0  # torch CPU threads used

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["curve"] = [list(point) for point in self.curve]
        return out


@dataclass(frozen=True)
class StepInfo:
    """Passed to ``on_step`` after every optimizer step."""

    step: int  # 0-based step just taken
    n_steps: int
    tokens: int  # tokens seen so far
    loss: float  # this step's train loss
    lr: float


# ------------------------------------------------------------------------------------- pieces


def lr_at(
    step: int,
    n_steps: int,
    *,
    lr: float,
    warmup_steps: int,
    min_lr_ratio: float,
    schedule: Literal["cosine", "constant"],
) -> float:
    """Learning rate at 0-based ``step`` of ``n_steps``.

    Linear warmup ``lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps; then
    ``constant`` stays at ``lr`` while ``cosine`` decays from ``lr`` to ``lr * min_lr_ratio``,
    reached exactly at the last step (if any step follows the peak).
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    decay_steps = n_steps - 1 - warmup_steps
    if decay_steps <= 0:  # no step after the peak to decay over
        return lr
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    min_lr = lr * min_lr_ratio
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW(betas 0.9/0.95); decay on the block matrices and an untied head only."""
    no_decay = {id(model.wte.weight)} | {
        id(p) for name, p in model.named_parameters() if name.endswith("norm.weight")
    }
    params = list(model.parameters())  # distinct tensors (a tied head appears once)
    groups = [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but CUDA is not available")
    return torch.device(device)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; nothing (fp32) on CPU, where bf16 matmuls are ~100x slower."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    *,
    grad_clip: float,
    device: torch.device,
) -> torch.Tensor:
    """One optimizer step on batch (B, T+1); returns the detached loss (still on the device)."""
    batch = batch.to(device, non_blocking=True)
    with autocast_for(device):
        loss = model.loss(batch[:, :-1], batch[:, 1:])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


@torch.inference_mode()
def evaluate(
    model: GPT, windows: ValidationWindows, *, batch_size: int, device: torch.device
) -> dict[str, float]:
    """val_loss/<domain> (mean token loss over its windows) and bpb/<domain> where bytes known."""
    model.eval()
    metrics: dict[str, float] = {}
    for name in windows.names:
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        for batch in windows.batches(name, batch_size):
            batch = batch.to(device, non_blocking=True)
            with autocast_for(device):
                loss = model.loss(batch[:, :-1], batch[:, 1:])
            n = batch[:, 1:].numel()
            total += loss.double() * n
            count += n
        val_loss = float(total) / count
        metrics[f"val_loss/{name}"] = val_loss
        bytes_evaluated = windows.bytes_evaluated(name)
        if bytes_evaluated > 0:
            tokens_per_byte = windows.window_tokens(name) / bytes_evaluated
            metrics[f"bpb/{name}"] = val_loss / math.log(2) * tokens_per_byte
    model.train()
    return metrics


def smooth_curve(losses: list[float], tokens_per_step: int) -> list[tuple[int, float]]:
    """~CURVE_POINTS (tokens seen, bias-corrected EMA of the train loss), last step included."""
    n = len(losses)
    every = max(1, math.ceil(n / CURVE_POINTS))
    curve, ema = [], 0.0
    for i, loss in enumerate(losses):
        ema = _EMA_BETA * ema + (1 - _EMA_BETA) * loss
        if (i + 1) % every == 0 or i == n - 1:
            curve.append(((i + 1) * tokens_per_step, ema / (1 - _EMA_BETA ** (i + 1))))
    return curve


@functools.cache
def tune_malloc() -> bool:
    """Keep freed large buffers in the heap (glibc mallopt); True when applied. Once per process."""
    if os.environ.get("PROXIES_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(
            libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 30)
        )
    except (OSError, AttributeError):  # not glibc
        return False


def _check_token_ids(tokens: torch.Tensor, vocab_size: int, where: str) -> None:
    """Out-of-range ids would crash the embedding (a device-side assert on CUDA): fail clearly."""
    top = int(tokens.max())
    if top >= vocab_size:  # ids come from unsigned files: never negative
        raise ValueError(f"{where} has token id {top} outside the model's vocab_size {vocab_size}")


@contextlib.contextmanager
def _cpu_settings(device: torch.device, threads: int | None) -> Any:
    """On CPU: flush denormals and use ``threads`` torch threads; both are restored after
    (flush-to-zero is process-wide state that other numerical code must not inherit)."""
    previous = torch.get_num_threads()
    flushing = False
    if device.type == "cpu":
        tune_malloc()
        flushing = torch.set_flush_denormal(True)
        if threads is not None:
            torch.set_num_threads(threads)
    try:
        yield
    finally:
        if flushing:
            torch.set_flush_denormal(False)
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------- driver


def train_proxy(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    weights: Mapping[str, float],
    *,
    on_step: Callable[[StepInfo], None] | None = None,
) -> TrainResult:
    """Train ``model_cfg`` on the mixture ``weights`` over ``domains``; evaluate every domain."""
    t_start = time.perf_counter()
    device = resolve_device(train_cfg.device)
    T, B = model_cfg.seq_len, train_cfg.batch_size
    # Data first: bad weights or short files fail before any model is built.
    windows = ValidationWindows(domains, T, train_cfg.eval_tokens)
    for name, array in windows.windows.items():
        _check_token_ids(torch.from_numpy(array), model_cfg.vocab_size, f"{name!r} val file")
    batches = MixtureBatches(domains, weights, T, B, seed=train_cfg.seed)
    n_steps = math.ceil(train_cfg.train_tokens / (B * T))
    warmup_steps = int(train_cfg.warmup_ratio * n_steps)

    schedule = functools.partial(
        lr_at,
        n_steps=n_steps,
        lr=train_cfg.lr,
        warmup_steps=warmup_steps,
        min_lr_ratio=train_cfg.min_lr_ratio,
        schedule=train_cfg.schedule,
    )

    with _cpu_settings(device, train_cfg.threads):
        threads = torch.get_num_threads()
        torch.manual_seed(train_cfg.seed)
        model = model_cfg.build().to(device)
        model.train()
        optimizer = build_optimizer(model, train_cfg, device)

        t_train = time.perf_counter()
        losses: list[torch.Tensor] = []  # 0-d tensors on the device
        for step in range(n_steps):
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = next(batches)  # (B, T+1) on the CPU
            _check_token_ids(batch, model_cfg.vocab_size, "training batch")
            loss = train_step(model, optimizer, batch, grad_clip=train_cfg.grad_clip, device=device)
            losses.append(loss)
            if on_step is not None:
                on_step(StepInfo(step, n_steps, (step + 1) * B * T, float(loss), lr))
        step_losses = torch.stack(losses).float().cpu().tolist()  # one device sync
        train_s = time.perf_counter() - t_train
        bad = next((i for i, x in enumerate(step_losses) if not math.isfinite(x)), None)
        if bad is not None:
            raise FloatingPointError(f"train loss became {step_losses[bad]} at step {bad}")

        t_eval = time.perf_counter()
        metrics = evaluate(model, windows, batch_size=B, device=device)
        eval_s = time.perf_counter() - t_eval

    tokens = n_steps * B * T
    return TrainResult(
        metrics=metrics,
        curve=smooth_curve(step_losses, B * T),
        tokens=tokens,
        flops=model_cfg.flops_per_token() * tokens,
        wall_s=time.perf_counter() - t_start,
        train_s=train_s,
        eval_s=eval_s,
        tokens_per_s=tokens / train_s if train_s > 0 else float("nan"),
        device=str(device),
        n_params=model.num_params(non_embedding=True),
        n_params_total=model.num_params(non_embedding=False),
        steps=n_steps,
        threads=threads,
    )
