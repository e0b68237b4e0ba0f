"""The optimizer and its learning rate: ``build_optimizer`` (AdamW) and ``lr_at`` (warmup, then
cosine, constant, or warmup-stable-decay).

Weight decay applies to the block matrices (and an untied lm head); RMSNorm gains and the token
embedding (with the tied head, which is the same tensor) are not decayed, as in LLaMA/OLMo recipes.
On CPU and CUDA the step is torch's fused AdamW kernel (same update rule as the reference loop).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from proxies.config import TrainConfig
from proxies.gpt import GPT
from proxies.stacked import StackedGPT

Model = GPT | StackedGPT
# devices with torch's fused AdamW kernel: one kernel per step instead of ~10 per parameter (the
# tiny proxy's CPU optimizer step ~4x faster); other devices use torch's default implementation
FUSED_ADAMW_DEVICES = frozenset({"cuda", "cpu"})


def lr_at(
    step: int,
    n_steps: int,
    *,
    lr: float,
    warmup_steps: int,
    min_lr_ratio: float,
    schedule: Literal["cosine", "constant", "wsd"],
    decay_steps: int | None = None,
) -> float:
    """Learning rate at 0-based ``step`` of ``n_steps``.

    Linear warmup ``lr * (step + 1) / warmup_steps`` for the first ``warmup_steps`` steps; then
    ``constant`` stays at ``lr`` while ``cosine`` decays from ``lr`` to ``lr * min_lr_ratio``,
    reached exactly at the last step (if any step follows the peak).

    ``wsd`` (warmup-stable-decay) stays at ``lr`` and then decays linearly to zero over the last
    ``decay_steps`` steps (the trainer passes the last stage's; ``None``: every step after the
    warmup): decay step ``i`` of ``d`` uses ``lr * (d - i) / d``, so the decay starts at ``lr``
    and the rate reaches zero just after the last step (which still trains, at ``lr / d``).
    ``min_lr_ratio`` is not used. A decay that would overlap the warmup starts after it.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "wsd":
        decay_start = warmup_steps if decay_steps is None else n_steps - decay_steps
        decay_start = max(warmup_steps, decay_start)
        if step < decay_start:
            return lr
        return lr * (n_steps - step) / (n_steps - decay_start)
    decay_steps = n_steps - 1 - warmup_steps
    if decay_steps <= 0:  # no step after the peak to decay over
        return lr
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    min_lr = lr * min_lr_ratio
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: Model, cfg: TrainConfig, device: torch.device, *, fused: bool | None = None
) -> torch.optim.AdamW:
    """AdamW(betas 0.9/0.95); decay on the block matrices and an untied head only.

    ``fused``: torch's fused AdamW kernel (None: on the devices that have it,
    ``FUSED_ADAMW_DEVICES``); False is torch's per-parameter loop (the benchmarks' baseline).

    For a StackedGPT this one optimizer is exactly K independent AdamWs: every AdamW operation is
    elementwise, and the K models share the hyperparameters and the step count.
    """
    no_decay = {id(model.wte.weight)} | {
        id(p) for name, p in model.named_parameters() if name.endswith("norm.weight")
    }
    params = list(model.parameters())  # distinct tensors (a tied head appears once)
    groups = [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]
    if fused is None:
        fused = device.type in FUSED_ADAMW_DEVICES
    options: dict[str, bool] = {"fused": True} if fused else {"foreach": False}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, **options)
