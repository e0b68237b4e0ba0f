"""proxies: small proxy language models and their trainer (a standalone library mixopt calls).

Importing ``proxies`` is cheap: names below are loaded from their submodules on first access, so
torch is imported only when a model, the data streams or the trainer are actually used.

    from proxies import DomainTokens, TrainConfig, get_preset, train_proxy, train_stacked

    cfg = get_preset("tiny", vocab_size=4096, seq_len=128)              # or arch="moe"
    result = train_proxy(cfg, TrainConfig(train_tokens=500_000, threads=1), domains, weights)
    result.metrics["val_loss/web"]
    results = train_stacked(cfg, TrainConfig(train_tokens=500_000), domains, [w1, w2], seeds=[0, 1])

Modules, one concern each. Torch-free (a driver builds and checks a whole run request with them):
``config`` (GPTConfig, MoEConfig: shapes, counts, FLOPs; TrainConfig), ``presets`` (named sizes,
dense and MoE), ``tokens`` (DomainTokens: a domain's token files; mixture weights),
``results`` (TrainResult, StepInfo, the loss curve), ``plan`` (stacked or one at a time). With
torch: ``gpt`` (the model), ``moe`` (router, dropless experts, balancing losses), ``stacked`` (K
models as one), ``data`` (mixture batches, validation windows), ``evaluate`` (per-domain loss and
bpb, expert loads, metric hooks), ``checkpoint`` (resumable runs), ``runtime`` (device, threads,
autocast, compile), ``optim`` (AdamW, lr schedule), ``step`` (one optimizer step), ``train``
(train_proxy, train_stacked; re-exports the pieces), ``doremi`` (DoReMi: a mixture learned online
against a reference proxy), ``aioli`` (Aioli: a mixture schedule from an online-fitted linear
mixing law).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxies.config import ConfigError, GPTConfig, MoEConfig, TrainConfig
    from proxies.data import MixtureBatches, ValidationWindows
    from proxies.evaluate import MetricContext, evaluate_models, register_metric
    from proxies.gpt import GPT
    from proxies.plan import GroupPlan, plan_group
    from proxies.presets import PRESETS, get_preset
    from proxies.results import StepInfo, TrainResult
    from proxies.stacked import StackedGPT
    from proxies.tokens import DomainTokens
    from proxies.train import train_proxy, train_stacked

_EXPORTS = {
    "ConfigError": "proxies.config",
    "GPTConfig": "proxies.config",
    "MoEConfig": "proxies.config",
    "TrainConfig": "proxies.config",
    "PRESETS": "proxies.presets",
    "get_preset": "proxies.presets",
    "GPT": "proxies.gpt",
    "StackedGPT": "proxies.stacked",
    "DomainTokens": "proxies.tokens",
    "MixtureBatches": "proxies.data",
    "ValidationWindows": "proxies.data",
    "MetricContext": "proxies.evaluate",
    "evaluate_models": "proxies.evaluate",
    "register_metric": "proxies.evaluate",
    "GroupPlan": "proxies.plan",
    "plan_group": "proxies.plan",
    "StepInfo": "proxies.results",
    "TrainResult": "proxies.results",
    "DoremiResult": "proxies.results",
    "AioliResult": "proxies.results",
    "train_aioli": "proxies.aioli",
    "train_doremi": "proxies.doremi",
    "train_proxy": "proxies.train",
    "train_stacked": "proxies.train",
}

__all__ = [
    "GPT",
    "PRESETS",
    "AioliResult",
    "ConfigError",
    "DomainTokens",
    "DoremiResult",
    "GPTConfig",
    "GroupPlan",
    "MetricContext",
    "MixtureBatches",
    "MoEConfig",
    "StackedGPT",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "ValidationWindows",
    "evaluate_models",
    "get_preset",
    "plan_group",
    "register_metric",
    "train_aioli",
    "train_doremi",
    "train_proxy",
    "train_stacked",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'proxies' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
