"""What runs on a worker: turn :class:`TrialRequest`s into trained, evaluated proxies.

Kept free of Ray and MLflow so the same functions run in-process (tests, ``--runner local``) and
as Ray tasks. Threads follow the CPUs the worker was granted: Ray sets ``OMP_NUM_THREADS`` to a
task's ``num_cpus``, so that value wins over the machine's core count.

- ``execute_trial(request)``: one proxy (dense or MoE, ``request.arch``), resuming from
  ``request.checkpoint_dir`` when a checkpoint of the same run is there.
- ``execute_doremi(request, reference_weights=..., step_size=..., smoothing=...)``: DoReMi
  (``proxies.doremi``) on the request's proxy and data: a reference proxy on
  ``reference_weights``, then the online Group-DRO proxy; returns ``DoremiResult.to_dict()``
  (``weights`` is the learned mixture; ``request.weights`` is not used).
- ``execute_aioli(request, rounds=..., sweep_steps=..., delta=..., eta=..., smoothing=...)``:
  Aioli (``proxies.aioli``) on the request's proxy and data, starting from ``request.weights``;
  returns ``AioliResult.to_dict()`` (``schedule`` per round, ``weights`` its average).
- ``execute_group(requests)``: several trials in one task. Trials of one shape (same arch,
  preset, overrides, vocabulary, context, training settings and data; seeds and mixtures may
  differ) are trained together as a stacked model where ``proxies.plan.plan_group`` says that is
  faster (small proxies on a GPU), else one at a time. Returns one dict per request, in order:
  the result of ``execute_trial``, or ``{"trial_id", "error", "retryable": False}`` for a trial
  that failed (bad mixture, non-finite loss, ...), so one bad trial does not sink its group.
  Staged trials that branch from a shared trunk (``proxies.branch``) are never stacked.

Workers live long (a Ray worker trains trial after trial), so each entry point hands back what a
trial allocated before it returns (:func:`release_memory`): Python's garbage, the C heap's free
pages (glibc keeps them, as fragmented arenas, unless asked to trim: a worker's resident memory
otherwise stays at the high-water mark of every trial so far) and CUDA's cached blocks. The
soak benchmark ``experiments/bench/soak.py`` measures it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import gc
import hashlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixopt.trials import TrialRequest

if TYPE_CHECKING:
    from proxies.config import TrainConfig
    from proxies.probe_tasks import ProbeTask


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_memory() -> None:
    """Give back what a finished trial allocated (see the module docstring)."""
    gc.collect()
    libc = _libc()
    if libc is not None:  # glibc only
        libc.malloc_trim(0)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def granted_threads(default: int) -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else max(1, default)


def _train_config(request: TrialRequest, *, checkpoint_dir: str | None = None) -> TrainConfig:
    """The request's training config with the threads this worker was granted (and, for a
    stacked chunk, the chunk's own checkpoint folder)."""
    changes: dict[str, Any] = {"threads": granted_threads(request.train.threads or 1)}
    if checkpoint_dir is not None:
        changes["checkpoint_dir"] = checkpoint_dir
    return dataclasses.replace(request.train, **changes)


def _stamp(result: dict[str, Any], request: TrialRequest, started: float) -> dict[str, Any]:
    result.update(
        trial_id=request.trial_id,
        started_at=started,
        finished_at=time.time(),
        host=platform.node(),
        pid=os.getpid(),
    )
    return result


def _run(request: TrialRequest, train: Callable[[TrainConfig], Any]) -> dict[str, Any]:
    """``train(config)`` with the threads this worker was granted; its result's ``to_dict()``,
    stamped, and the trial's memory handed back."""
    train_cfg = _train_config(request)
    started = time.time()
    try:
        result: dict[str, Any] = train(train_cfg).to_dict()
    finally:
        release_memory()
    return _stamp(result, request, started)


def execute_trial(request: TrialRequest) -> dict[str, Any]:
    """Train the proxy of ``request`` on its mixture; return ``TrainResult.to_dict()``."""
    from proxies.train import train_proxy

    return _run(request, lambda cfg: train_proxy(
        request.model, cfg, list(request.domains), request.weights, evals=request.evals,
        probes=_probe_tasks(request),
    ))  # fmt: skip


def execute_doremi(
    request: TrialRequest,
    *,
    reference_weights: dict[str, float],
    step_size: float,
    smoothing: float,
) -> dict[str, Any]:
    """DoReMi's mixture for the request's proxy, data and seed (``proxies.doremi``); returns
    ``DoremiResult.to_dict()`` stamped like a trial's result."""
    from proxies.doremi import train_doremi

    return _run(request, lambda cfg: train_doremi(
        request.model, cfg, list(request.domains), reference_weights, step_size=step_size,
        smoothing=smoothing, evals=request.evals,
    ))  # fmt: skip


def execute_aioli(
    request: TrialRequest,
    *,
    rounds: int,
    sweep_steps: int,
    delta: float,
    eta: float,
    smoothing: float,
) -> dict[str, Any]:
    """Aioli's mixture schedule for the request's proxy, data and seed from ``request.weights``
    (``proxies.aioli``); returns ``AioliResult.to_dict()`` stamped like a trial's result."""
    from proxies.aioli import train_aioli

    return _run(request, lambda cfg: train_aioli(
        request.model, cfg, list(request.domains), request.weights, rounds=rounds,
        sweep_steps=sweep_steps, delta=delta, eta=eta, smoothing=smoothing, evals=request.evals,
    ))  # fmt: skip


def _probe_tasks(request: TrialRequest) -> list[ProbeTask]:
    """The request's probe tasks, read from their tokenized files (``proxies.probe_tasks``)."""
    from proxies.probe_tasks import load_probe_files

    return load_probe_files(request.probes)


# ------------------------------------------------------------------------------------- groups


def shape_key(request: TrialRequest) -> str:
    """Requests with equal keys can be stacked: everything but the trial, seed and mixture."""
    train = dataclasses.asdict(dataclasses.replace(request.train, seed=0, checkpoint_dir=None))
    parts = [
        dataclasses.asdict(request.model),
        train,
        [dataclasses.asdict(d) for d in request.domains],
        [dataclasses.asdict(d) for d in request.evals],
        [dataclasses.asdict(p) for p in request.probes],
    ]
    return json.dumps(parts, sort_keys=True, default=str)


def _failure(request: TrialRequest, error: BaseException) -> dict[str, Any]:
    detail = "".join(traceback.format_exception_only(error)).strip()
    return {"trial_id": request.trial_id, "error": detail, "retryable": False}


def _attempt(
    request: TrialRequest, run: Callable[[TrialRequest], dict[str, Any]]
) -> dict[str, Any]:
    try:
        return run(request)
    except Exception as error:  # one trial's failure must not stop the others
        return _failure(request, error)


def _group_checkpoint_dir(chunk: list[TrialRequest]) -> str | None:
    """A folder for a stacked chunk's checkpoint, next to its first trial's own folder and named
    by the chunk's trials and seeds (so a retried chunk finds it, a different chunk does not)."""
    first = chunk[0].train.checkpoint_dir
    if first is None:
        return None
    ids = json.dumps([(r.trial_id, r.seed) for r in chunk])
    digest = hashlib.sha256(ids.encode()).hexdigest()[:12]
    return str(Path(first).parent / f"stack-{digest}")


def _run_stacked(chunk: list[TrialRequest]) -> list[dict[str, Any]]:
    from proxies.train import train_stacked

    first = chunk[0]
    train_cfg = _train_config(first, checkpoint_dir=_group_checkpoint_dir(chunk))
    started = time.time()
    results = train_stacked(
        first.model,
        train_cfg,
        list(first.domains),
        [r.weights for r in chunk],
        seeds=[r.seed for r in chunk],
        evals=first.evals,
        probes=_probe_tasks(first),
    )
    return [_stamp(res.to_dict(), r, started) for res, r in zip(results, chunk, strict=True)]


def _check_request(request: TrialRequest) -> None:
    """Fail a bad trial before it joins a stack: its config, data and mixture must load."""
    from proxies.data import MixtureBatches

    MixtureBatches(
        list(request.domains),
        request.weights,
        request.model.seq_len,
        request.train.batch_size,
        request.seed,
    )


def _branches(request: TrialRequest) -> bool:
    """A staged trial that branches from a shared trunk trains alone (stacking does not)."""
    from proxies.branch import trunk_stage_count

    return request.train.trunk_dir is not None and trunk_stage_count(request.train.stages) > 0


def execute_group(
    requests: list[TrialRequest], *, stacking: str = "auto", max_stack: int = 16
) -> list[dict[str, Any]]:
    """Train every request (stacking same-shape ones where that is faster); one dict each, in
    the order given. ``stacking``: "auto" (``proxies.plan``), "on" or "off"."""
    from proxies.plan import plan_group

    ids = [r.trial_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError(f"execute_group got duplicate trial ids: {sorted(ids)}")
    out: dict[str, dict[str, Any]] = {}
    by_shape: dict[str, list[TrialRequest]] = {}
    for request in requests:
        by_shape.setdefault(shape_key(request), []).append(request)
    for group in by_shape.values():
        valid = []
        for request in group:
            try:
                _check_request(request)
                valid.append(request)
            except Exception as error:
                out[request.trial_id] = _failure(request, error)
        if not valid:
            continue
        first = valid[0]
        plan = plan_group(
            first.model,
            batch_size=first.train.batch_size,
            n_trials=len(valid),
            device=first.train.device,
            policy=stacking,  # type: ignore[arg-type]
            max_group=max_stack,
        )
        if plan.mode == "sequential" or _branches(first):
            for request in valid:
                out[request.trial_id] = _attempt(request, execute_trial)
            continue
        for start in range(0, len(valid), plan.group_size):
            chunk = valid[start : start + plan.group_size]
            try:
                for request, result in zip(chunk, _run_stacked(chunk), strict=True):
                    out[request.trial_id] = {**result, "plan": plan.reason}
            except Exception:  # e.g. one model's loss diverged: retrain the chunk one by one
                for request in chunk:
                    out[request.trial_id] = _attempt(request, execute_trial)
            release_memory()
    return [out[r.trial_id] for r in requests]
