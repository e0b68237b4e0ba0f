"""Evaluation: per-domain validation loss and bits per byte, MoE expert loads, user metric hooks.

``evaluate_models`` evaluates one ``GPT`` or every model of a ``StackedGPT`` on the fixed
validation windows (the same for every trial, so losses compare) of every domain and eval set:

- ``val_loss/<domain>``: mean next-token cross-entropy (nats) over the domain's windows;
- ``bpb/<domain>``: bits per byte, ``val_loss / ln 2 * tokens / bytes`` (tokenizer-independent:
  runs with different tokenizers compare), where the domain's text bytes are known;
- for an MoE, the tokens each layer routed to each expert over all windows
  (``Evaluation.expert_counts``, layers x experts), ``moe/max_load`` (the most loaded expert's
  share over the mean share, worst layer; 1.0 is perfect balance) and ``moe/dropped_tokens``
  (routed slots missing from the counts: 0 for these dropless experts, checked, not assumed);
- the user's metric hooks;
- the downstream probe tasks (``probes``): ``probe/<task>/accuracy``, ``accuracy_norm`` and
  ``margin`` by log-likelihood over choices (``proxies.probes``).

A metric hook is a callable registered by name, ``hook(ctx: MetricContext)`` returning a float
(logged as ``<name>``) or a mapping (logged as ``<name>/<key>``). Name one in
``TrainConfig.metrics`` either by its registered name or as ``"package.module:function"`` (which
is imported, so hooks also work in worker processes that never ran the registering code)::

    from proxies.evaluate import register_metric

    @register_metric("copy_probe")
    def copy_probe(ctx):
        ...  # ctx.model (a GPT, eval mode), ctx.windows, ctx.device, ctx.batch_size
        return {"accuracy": 0.42}

Built in: ``accuracy`` (per-domain top-1 next-token accuracy on the validation windows).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from proxies.data import ValidationWindows
from proxies.gpt import GPT
from proxies.runtime import autocast_for
from proxies.stacked import StackedGPT

if TYPE_CHECKING:
    from proxies.probe_tasks import ProbeTask


@dataclass(frozen=True)
class MetricContext:
    """What a metric hook gets: one model (eval mode, on ``device``) and the validation data."""

    model: GPT
    windows: ValidationWindows
    device: torch.device
    batch_size: int
    step: int = 0  # optimizer steps taken
    tokens: int = 0  # training tokens seen


MetricHook = Callable[[MetricContext], float | Mapping[str, float]]
_HOOKS: dict[str, MetricHook] = {}


def register_metric(
    name: str, hook: MetricHook | None = None
) -> Callable[[MetricHook], MetricHook] | MetricHook:
    """Register ``hook`` under ``name`` (also usable as a decorator); re-registering replaces."""
    if not name or "/" in name or ":" in name:
        raise ValueError(f"metric hook name must be non-empty without '/' or ':', got {name!r}")

    def add(fn: MetricHook) -> MetricHook:
        if not callable(fn):
            raise ValueError(f"metric hook {name!r} must be callable, got {fn!r}")
        _HOOKS[name] = fn
        return fn

    return add if hook is None else add(hook)


def registered_metrics() -> list[str]:
    return sorted(_HOOKS)


def get_metric(name: str) -> MetricHook:
    """The hook registered as ``name``, or the callable at ``"package.module:attribute"``."""
    if name in _HOOKS:
        return _HOOKS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            hook = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"metric hook {name!r} cannot be imported: {error}") from error
        if not callable(hook):
            raise ValueError(f"metric hook {name!r} is not callable")
        return hook
    raise ValueError(
        f"unknown metric hook {name!r}; registered: {', '.join(registered_metrics()) or 'none'} "
        "(or name one as 'package.module:function')"
    )


def _hook_metrics(name: str, value: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(value, Mapping):
        return {f"{name}/{key}": float(v) for key, v in value.items()}
    return {name: float(value)}


@dataclass
class Evaluation:
    """One model's evaluation."""

    metrics: dict[str, float]
    expert_counts: list[list[int]] = field(default_factory=list)  # per MoE layer, per expert


@torch.inference_mode()
def evaluate_models(
    model: GPT | StackedGPT,
    windows: ValidationWindows,
    *,
    batch_size: int,
    device: torch.device,
    hooks: Mapping[str, MetricHook] | None = None,
    step: int = 0,
    tokens: int = 0,
    probes: Sequence[ProbeTask] = (),
) -> list[Evaluation]:
    """Evaluate every model (one for a GPT, K for a StackedGPT); the model is left in the mode
    it was in."""
    stacked = isinstance(model, StackedGPT)
    K = model.n_models if isinstance(model, StackedGPT) else 1
    was_training = model.training
    model.eval()
    layers = model.moe_layers()
    for layer in layers:
        layer.reset_counts()
    metrics: list[dict[str, float]] = [{} for _ in range(K)]
    routed = 0  # tokens each model pushed through its MoE layers
    for name in windows.names:
        total = torch.zeros(K, dtype=torch.float64, device=device)
        count = 0
        for batch in windows.batches(name, batch_size):
            batch = batch.to(device, non_blocking=True)  # (b, T+1)
            if stacked:
                batch = batch.expand(K, *batch.shape)  # (K, b, T+1): every model, same windows
            x, y = batch[..., :-1], batch[..., 1:]
            with autocast_for(device):
                losses = model.losses(x, y) if isinstance(model, StackedGPT) else model.loss(x, y)
            n = y.shape[-2] * y.shape[-1]  # tokens per model
            total += losses.double().reshape(-1) * n
            count += n
        routed += count
        val_loss = (total / count).tolist()
        tokens_per_byte = _tokens_per_byte(windows, name)
        for k in range(K):
            metrics[k][f"val_loss/{name}"] = val_loss[k]
            if tokens_per_byte is not None:
                metrics[k][f"bpb/{name}"] = val_loss[k] / math.log(2) * tokens_per_byte

    counts = [layer.counts.tolist() for layer in layers]  # per layer, (K, E)
    evaluations = []
    for k in range(K):
        per_layer = [c[k] for c in counts]
        if layers:
            metrics[k].update(_load_metrics(per_layer, routed * layers[0].cfg.top_k))
        evaluations.append(Evaluation(metrics[k], per_layer))
    if hooks or probes:
        from proxies.probes import score_with

        for k in range(K):
            single = model.unstack(k) if isinstance(model, StackedGPT) else model
            ctx = MetricContext(single.eval(), windows, device, batch_size, step, tokens)
            for hook_name, hook in (hooks or {}).items():
                evaluations[k].metrics.update(_hook_metrics(hook_name, hook(ctx)))
            if probes:
                evaluations[k].metrics.update(score_with(single, probes, device, batch_size))
    model.train(was_training)
    return evaluations


def _tokens_per_byte(windows: ValidationWindows, name: str) -> float | None:
    bytes_evaluated = windows.bytes_evaluated(name)
    if bytes_evaluated <= 0:
        return None
    return windows.window_tokens(name) / bytes_evaluated


def _load_metrics(per_layer: Iterable[list[int]], slots_per_layer: int) -> dict[str, float]:
    """moe/max_load (worst layer's max/mean expert load) and moe/dropped_tokens (summed)."""
    max_load, dropped = 0.0, 0
    for counts in per_layer:
        mean = sum(counts) / len(counts)
        max_load = max(max_load, max(counts) / mean if mean > 0 else math.inf)
        dropped += slots_per_layer - sum(counts)
    return {"moe/max_load": max_load, "moe/dropped_tokens": float(dropped)}


def evaluate(
    model: GPT, windows: ValidationWindows, *, batch_size: int, device: torch.device
) -> dict[str, float]:
    """val_loss/<domain> (mean token loss over its windows) and bpb/<domain> where bytes known
    (plus moe/* for an MoE) of one model."""
    return evaluate_models(model, windows, batch_size=batch_size, device=device)[0].metrics


# ------------------------------------------------------------------------------ built-in hooks


@torch.inference_mode()
def next_token_accuracy(ctx: MetricContext) -> dict[str, float]:
    """Per-domain top-1 next-token accuracy on the validation windows."""
    out = {}
    for name in ctx.windows.names:
        correct, count = 0, 0
        for batch in ctx.windows.batches(name, ctx.batch_size):
            batch = batch.to(ctx.device)
            with autocast_for(ctx.device):
                predicted = ctx.model.logits(batch[:, :-1]).argmax(dim=-1)  # (b, T)
            correct += int((predicted == batch[:, 1:]).sum())
            count += predicted.numel()
        out[name] = correct / count
    return out


register_metric("accuracy", next_token_accuracy)


def metric_hooks(names: Iterable[str]) -> dict[str, MetricHook]:
    """Hooks by the name their metrics are logged under (the attribute of an import path):
    resolving fails on the first unknown one, before any training."""
    return {name.rpartition(":")[2]: get_metric(name) for name in names}
