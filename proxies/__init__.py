"""proxies: small proxy language models and their trainer (a standalone library mixopt calls).

Importing ``proxies`` is cheap: names below are loaded from their submodules on first access, so
torch is imported only when a model, the data streams or the trainer are actually used.

    from proxies import DomainTokens, TrainConfig, get_preset, train_proxy

    cfg = get_preset("tiny", vocab_size=4096, seq_len=128)
    result = train_proxy(cfg, TrainConfig(train_tokens=500_000, threads=1), domains, weights)
    result.metrics["val_loss/web"]

Modules: ``config`` (GPTConfig), ``presets`` (named sizes), ``gpt`` (the model), ``data`` (token
files, mixture batches, validation windows), ``train`` (train_proxy and its pieces).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxies.config import GPTConfig
    from proxies.data import DomainTokens, MixtureBatches, ValidationWindows
    from proxies.gpt import GPT
    from proxies.presets import PRESETS, get_preset
    from proxies.train import StepInfo, TrainConfig, TrainResult, train_proxy

_EXPORTS = {
    "GPTConfig": "proxies.config",
    "PRESETS": "proxies.presets",
    "get_preset": "proxies.presets",
    "GPT": "proxies.gpt",
    "DomainTokens": "proxies.data",
    "MixtureBatches": "proxies.data",
    "ValidationWindows": "proxies.data",
    "StepInfo": "proxies.train",
    "TrainConfig": "proxies.train",
    "TrainResult": "proxies.train",
    "train_proxy": "proxies.train",
}

__all__ = [
    "GPT",
    "PRESETS",
    "DomainTokens",
    "GPTConfig",
    "MixtureBatches",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "ValidationWindows",
    "get_preset",
    "train_proxy",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'proxies' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
