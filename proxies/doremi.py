"""DoReMi (Xie et al. 2023): learn a data mixture online, with Group DRO against a reference.

``train_doremi`` runs the two steps of the paper on one proxy config:

1. A *reference* proxy trains on ``reference_weights`` (natural or uniform, the caller's choice)
   with the ordinary trainer (``train_reference``: ``train_proxy``, whose final checkpoint
   hands the weights back), unless the caller passes an already-trained one (``reference``).
2. A fresh proxy of the same config, with the same schedule (AdamW, warmup + decay, clipping),
   draws its batches from the reference mixture (stream 1 of the seed: not the reference's own
   batches). At every step, on the same batch, the proxy's and the frozen reference's per-token
   losses give each domain's *excess loss* ``lambda_i``: the mean over the domain's tokens of
   ``max(0, proxy - reference)`` (0 for a domain absent from the batch). The domain weights move
   by exponentiated gradient ascent, ``update_domain_weights``::

       alpha' = normalize(alpha * exp(step_size * lambda))        (in log space)
       alpha  = (1 - smoothing) * alpha' + smoothing * uniform

   starting from uniform, and the proxy takes an optimizer step on the alpha-weighted loss
   ``sum_i alpha_i * (mean token loss of domain i's rows)`` (domains in the batch; an MoE's
   balancing losses added). Domains where the proxy lags the reference most gain weight; a
   domain neither model can learn (noise) has ~0 excess and loses weight.

Clipping per token (the paper's rule) biases a high-entropy domain's excess upward: two models
of equal mean loss still differ token by token and only the positive differences count, so pure
noise does not get 0. With a large ``step_size`` on a short run the weights swing to the
learnable domains and the neglected proxy's predictions on noise drift from uniform (a real
excess), so noise regains weight late in the run; a smaller ``step_size`` (0.1) keeps it low.

The output mixture is the average of alpha over all steps (``DoremiResult.weights``), with its
trajectory, both models' final validation metrics, the tokens spent and warnings: a domain holding
>= ``COLLAPSE_SHARE`` of the averaged weights (``collapsed``) or one driven to the smoothing floor.

Knobs: ``step_size`` (the paper's eta, 1.0) and ``smoothing`` (the paper's c, 1e-3). The run is
deterministic given ``train_cfg.seed`` (the reference trains with that seed, the proxy starts from
the same initial weights). fp32 on CPU, bf16 autocast on CUDA, as the trainer. Stages are not
supported (DoReMi learns one mixture). With ``checkpoint_dir`` the reference's checkpoint is kept
in ``<checkpoint_dir>/reference`` (a rerun reuses it); the DoReMi proxy itself does not resume.
``micro_batch_size`` works: the excess is then measured in a no-grad pass before the gradient one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from proxies.checkpoint import load_checkpoint, run_fingerprint, run_parts
from proxies.config import GPTConfig, TrainConfig
from proxies.data import DomainTokens, MixtureBatches, ValidationWindows
from proxies.evaluate import evaluate_models, metric_hooks
from proxies.gpt import GPT
from proxies.optim import build_optimizer, lr_at
from proxies.results import DoremiResult, TrainResult
from proxies.runtime import autocast_for, cpu_settings, resolve_device
from proxies.train import train_proxy

COLLAPSE_SHARE = 0.9  # an averaged weight at least this large marks the run as collapsed
TRAJECTORY_POINTS = 20  # the weights are recorded about this many times along the run
ReferenceState = Mapping[str, torch.Tensor]  # a GPT state_dict of the proxy's config


def check_knobs(step_size: float, smoothing: float) -> None:
    """ValueError naming the bad knob: ``step_size`` > 0 and finite, 0 <= ``smoothing`` < 1."""
    if not isinstance(step_size, int | float) or not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"DoReMi step_size must be > 0 and finite, got {step_size!r}")
    if not isinstance(smoothing, int | float) or not 0 <= smoothing < 1:
        raise ValueError(f"DoReMi smoothing must be in [0, 1), got {smoothing!r}")


def update_domain_weights(
    alpha: Sequence[float] | np.ndarray,
    excess: Sequence[float] | np.ndarray,
    *,
    step_size: float,
    smoothing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One DoReMi update: ``(alpha', smoothed)`` with ``alpha' ∝ alpha * exp(step_size * excess)``
    and ``smoothed = (1 - smoothing) * alpha' + smoothing / k`` (the weights the next step uses)."""
    check_knobs(step_size, smoothing)
    a, lam = np.asarray(alpha, dtype=np.float64), np.asarray(excess, dtype=np.float64)
    if a.ndim != 1 or a.shape != lam.shape or not len(a):
        raise ValueError(f"alpha {a.shape} and excess {lam.shape} must be equal-length vectors")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
        raise ValueError(f"alpha must be non-negative weights with a positive sum, got {a}")
    if not np.all(np.isfinite(lam)):
        raise ValueError(f"excess losses must be finite, got {lam}")
    with np.errstate(divide="ignore"):  # a weight of exactly 0 stays 0
        logits = np.log(a) + step_size * lam
    logits -= logits.max()
    new = np.exp(logits)
    new /= new.sum()
    return new, (1.0 - smoothing) * new + smoothing / len(a)


def domain_excess(
    proxy_tokens: torch.Tensor, reference_tokens: torch.Tensor, rows: torch.Tensor, k: int
) -> torch.Tensor:
    """Per domain (k,), the mean over its tokens of max(0, proxy - reference) for per-token
    losses (B, T) and each row's domain ``rows`` (B,); 0 for a domain with no row."""
    per_row = (proxy_tokens - reference_tokens).clamp_min(0).mean(dim=1)  # rows are T tokens each
    sums = torch.zeros(k, dtype=per_row.dtype, device=per_row.device).index_add_(0, rows, per_row)
    return sums / torch.bincount(rows, minlength=k).clamp_min(1)


def token_losses(model: GPT, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-token cross-entropy (B, T) in fp32 and the summed auxiliary loss (an MoE's)."""
    hidden, aux = model.hidden(idx)
    logits = model.lm_head(hidden).float()
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view_as(targets), aux


def train_reference(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    weights: Mapping[str, float],
    *,
    evals: Sequence[DomainTokens] = (),
) -> tuple[dict[str, torch.Tensor], TrainResult]:
    """Train the reference with ``train_proxy``; its final state_dict (CPU) and result. Reuse
    the state as ``train_doremi(..., reference=state)`` to try several knobs on one reference."""
    n_steps = math.ceil(train_cfg.train_tokens / (train_cfg.batch_size * model_cfg.seq_len))
    with tempfile.TemporaryDirectory(prefix="doremi-reference-") as scratch:
        if train_cfg.checkpoint_dir is None:  # only the final state is saved
            changes = {"checkpoint_dir": scratch, "checkpoint_every": n_steps}
        else:
            changes = {"checkpoint_dir": str(Path(train_cfg.checkpoint_dir) / "reference")}
        cfg = dataclasses.replace(train_cfg, keep_checkpoint=True, **changes)  # type: ignore[arg-type]
        result = train_proxy(model_cfg, cfg, domains, weights, evals=evals)
        parts = run_parts(model_cfg, cfg, domains, [weights], [cfg.seed], False, evals)
        assert cfg.checkpoint_dir is not None
        saved = load_checkpoint(cfg.checkpoint_dir, fingerprint=run_fingerprint(parts))
    if saved is None:
        raise RuntimeError("the reference run left no checkpoint to read its weights from")
    return saved["model"], result


def _names(domains: Sequence[DomainTokens], values: np.ndarray) -> dict[str, float]:
    return {d.name: float(v) for d, v in zip(domains, values, strict=True)}


def train_doremi(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    reference_weights: Mapping[str, float],
    *,
    step_size: float = 1.0,
    smoothing: float = 1e-3,
    reference: ReferenceState | None = None,
    evals: Sequence[DomainTokens] = (),
) -> DoremiResult:
    """DoReMi's mixture for ``domains`` (see the module docstring); ``reference`` skips step 1."""
    check_knobs(step_size, smoothing)
    if train_cfg.stages:
        raise ValueError("DoReMi learns one mixture: train_cfg.stages must be empty")
    t_start = time.perf_counter()
    device = resolve_device(train_cfg.device)
    T, B, k = model_cfg.seq_len, train_cfg.batch_size, len(domains)
    windows = ValidationWindows([*domains, *evals], T, train_cfg.eval_tokens)
    stream = MixtureBatches(domains, reference_weights, T, B, seed=train_cfg.seed, stream=1)
    unsampled = sorted({d.name for d in domains} - {d.name for d in stream.domains})
    if unsampled:
        raise ValueError(f"DoReMi needs every domain in reference_weights > 0; 0 for {unsampled}")
    hooks = metric_hooks(train_cfg.metrics)
    reference_metrics: dict[str, float] | None = None
    reference_tokens = 0
    if reference is None:
        reference, trained = train_reference(model_cfg, train_cfg, domains, reference_weights,
                                             evals=evals)  # fmt: skip
        reference_metrics, reference_tokens = trained.metrics, trained.tokens
    n_steps = math.ceil(train_cfg.train_tokens / (B * T))
    schedule = functools.partial(
        lr_at, n_steps=n_steps, lr=train_cfg.lr, warmup_steps=int(train_cfg.warmup_ratio * n_steps),
        min_lr_ratio=train_cfg.min_lr_ratio, schedule=train_cfg.schedule,
    )  # fmt: skip
    micro = train_cfg.micro_batches
    every = max(1, math.ceil(n_steps / TRAJECTORY_POINTS))
    with cpu_settings(device, train_cfg.threads):
        ref_model = model_cfg.build()
        ref_model.load_state_dict(dict(reference))
        ref_model = ref_model.to(device).eval().requires_grad_(False)
        if reference_metrics is None:
            evaluation = evaluate_models(
                ref_model, windows, batch_size=B, device=device, hooks=hooks
            )
            reference_metrics = evaluation[0].metrics
        torch.manual_seed(train_cfg.seed)
        model = model_cfg.build().to(device).train()
        optimizer = build_optimizer(model, train_cfg, device)
        alpha = np.full(k, 1.0 / k)
        total = np.zeros(k)
        trajectory = [
            {"step": 0, "weights": _names(domains, alpha), "excess": _names(domains, total)}
        ]
        for step in range(n_steps):
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            tokens, which = stream.sample()
            if int(tokens.max()) >= model_cfg.vocab_size:
                raise ValueError(f"training batch has token id {int(tokens.max())} outside the "
                                 f"model's vocab_size {model_cfg.vocab_size}")  # fmt: skip
            batch = torch.from_numpy(tokens).to(device)
            rows = torch.from_numpy(which).to(device)
            x, y = batch[:, :-1], batch[:, 1:]
            chunks = list(zip(x.chunk(micro), y.chunk(micro), strict=True))
            with torch.no_grad(), autocast_for(device):
                ref_tokens = torch.cat([token_losses(ref_model, a, b)[0] for a, b in chunks])
                if micro > 1:  # measure the excess first, the gradient pass needs the weights
                    proxy_tokens = torch.cat([token_losses(model, a, b)[0] for a, b in chunks])
            model.begin_step()
            optimizer.zero_grad(set_to_none=True)
            if micro == 1:
                with autocast_for(device):
                    graph = token_losses(model, x, y)
                proxy_tokens = graph[0].detach()
            excess = domain_excess(proxy_tokens, ref_tokens, rows, k).double().cpu().numpy()
            if not np.all(np.isfinite(excess)):
                raise FloatingPointError(f"DoReMi proxy loss became non-finite at step {step}")
            _, alpha = update_domain_weights(
                alpha, excess, step_size=step_size, smoothing=smoothing
            )
            total += alpha
            per_row = alpha / np.maximum(np.bincount(which, minlength=k), 1) / T  # per token
            row_weights = torch.from_numpy(per_row[which]).float().to(device)[:, None]  # (B, 1)
            if micro == 1:
                ((graph[0] * row_weights).sum() + graph[1]).backward()
            else:
                for (a, b), w in zip(chunks, row_weights.chunk(micro), strict=True):
                    with autocast_for(device):
                        ce, aux = token_losses(model, a, b)
                    ((ce * w).sum() + aux / micro).backward()
            if train_cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            optimizer.step()
            model.end_step()
            done = step + 1
            if done % every == 0 or done == n_steps:
                record = {"weights": _names(domains, alpha), "excess": _names(domains, excess)}
                trajectory.append({"step": done, **record})
        final = evaluate_models(model, windows, batch_size=B, device=device, hooks=hooks,
                                step=n_steps, tokens=n_steps * B * T)  # fmt: skip
    averaged = total / n_steps
    collapsed, warnings = mixture_warnings([d.name for d in domains], averaged, alpha, smoothing)
    return DoremiResult(
        weights=_names(domains, averaged),
        final_weights=_names(domains, alpha),
        trajectory=trajectory,
        reference=reference_metrics,
        proxy=final[0].metrics,
        reference_weights={d.name: float(reference_weights.get(d.name, 0.0)) for d in domains},
        step_size=float(step_size),
        smoothing=float(smoothing),
        steps=n_steps,
        tokens=reference_tokens + n_steps * B * T,
        reference_tokens=reference_tokens,
        wall_s=time.perf_counter() - t_start,
        device=str(device),
        collapsed=collapsed,
        warnings=warnings,
    )


def mixture_warnings(
    names: Sequence[str], averaged: np.ndarray, final: np.ndarray, smoothing: float
) -> tuple[bool, list[str]]:
    """(collapsed, warnings): a domain with >= COLLAPSE_SHARE of the averaged weights; domains
    whose final weight sits at the smoothing floor (smoothing / k)."""
    out = []
    top = int(np.argmax(averaged))
    collapsed = bool(averaged[top] >= COLLAPSE_SHARE)
    if collapsed:
        out.append(f"collapsed: domain {names[top]!r} holds {averaged[top]:.3f} of the "
                   f"averaged weights (>= {COLLAPSE_SHARE})")  # fmt: skip
    floor = smoothing / len(names)
    for name, value in zip(names, final, strict=True):
        if value <= max(1.5 * floor, 1e-6):
            out.append(f"domain {name!r} was driven to the smoothing floor (final weight "
                       f"{value:.2g}, floor smoothing / k = {floor:.2g})")  # fmt: skip
    return collapsed, out
