"""One optimizer step: ``train_step`` (forward and backward over micro-batches, per-model
gradient clipping, the optimizer step, an MoE's step hooks).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from proxies.optim import Model
from proxies.runtime import autocast_for
from proxies.stacked import StackedGPT, clip_grad_norm_per_model

LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def train_step(
    model: Model,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    *,
    grad_clip: float,
    device: torch.device,
    micro_batches: int = 1,
    loss_fn: LossFn | None = None,
) -> torch.Tensor:
    """One optimizer step on batch (B, T+1), or (K, B, T+1) for a StackedGPT, split into
    ``micro_batches`` equal parts along B. Returns the detached cross-entropy (still on the
    device): a scalar for a GPT, (K,) for a StackedGPT. ``loss_fn`` replaces
    ``model.train_loss`` (e.g. its compiled version)."""
    batch = batch.to(device, non_blocking=True)
    loss_fn = loss_fn or model.train_loss
    model.begin_step()
    optimizer.zero_grad(set_to_none=True)
    ce_sum: torch.Tensor | None = None
    for part in batch.chunk(micro_batches, dim=-2):
        with autocast_for(device):
            total, ce = loss_fn(part[..., :-1], part[..., 1:])
        (total / micro_batches if micro_batches > 1 else total).backward()
        ce_sum = ce.detach() if ce_sum is None else ce_sum + ce.detach()
    if grad_clip > 0:
        if isinstance(model, StackedGPT):
            clip_grad_norm_per_model(list(model.parameters()), grad_clip, model.n_models)
        else:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    model.end_step()
    assert ce_sum is not None
    return ce_sum / micro_batches if micro_batches > 1 else ce_sum
