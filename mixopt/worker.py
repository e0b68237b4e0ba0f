"""What runs on a worker: turn a :class:`TrialRequest` into a trained, evaluated proxy.

Kept free of Ray and MLflow so the same function runs in-process (tests, ``--runner local``) and
as a Ray task. Threads follow the CPUs the worker was granted: Ray sets ``OMP_NUM_THREADS`` to a
task's ``num_cpus``, so that value wins over the machine's core count.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from mixopt.trials import TrialRequest


def granted_threads(default: int) -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else max(1, default)


def execute_trial(request: TrialRequest) -> dict[str, Any]:
    """Train the proxy of ``request`` on its mixture; return ``TrainResult.to_dict()``."""
    from proxies.data import DomainTokens
    from proxies.presets import get_preset
    from proxies.train import TrainConfig, train_proxy

    model_cfg = get_preset(
        request.preset,
        vocab_size=request.vocab_size,
        seq_len=request.seq_len,
        **request.model_overrides,
    )
    train = dict(request.train)
    train["threads"] = granted_threads(int(train.get("threads") or 1))
    train_cfg = TrainConfig(**train, seed=request.seed)
    domains = [DomainTokens(**d) for d in request.domains]
    started = time.time()
    result = train_proxy(model_cfg, train_cfg, domains, request.weights).to_dict()
    result.update(
        started_at=started, finished_at=time.time(), host=platform.node(), pid=os.getpid()
    )
    return result
