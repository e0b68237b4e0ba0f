"""Aioli (Chen et al. 2024): learn a data mixture online by fitting a linear mixing law each round.

Aioli's law (the paper's "linear mixing optimization" form) says that training a while on mixture
``p`` changes domain ``i``'s validation loss by ``-sum_j A_ij p_j``: ``A`` (m x m) is the
interaction matrix (``A_ij`` > 0: data of domain j lowers domain i's loss). ``train_aioli`` splits
the ``ceil(train_tokens / (batch_size * seq_len))`` optimizer steps into ``rounds`` rounds
(``np.array_split`` sizes, each at least one step) and in each round:

1. LearnParams: from the current model and optimizer state, for each domain j, train
   ``sweep_steps`` steps on the perturbed mixture ``p^(j) = (1 - delta) p + delta e_j`` at the
   current learning rate, measure every domain's loss change on a small fixed evaluation batch
   (the first ``batch_size`` validation windows of each domain), then restore the model,
   optimizer and torch RNG state exactly (``measure_sweeps``). The sweeps of a round share one
   random stream (stream ``SWEEP_STREAM + round`` of the seed): they differ only in the rows
   whose domain the perturbation changes. ``fit_interactions`` solves ``change = -p^(j) A^T``
   for ``A`` by least squares (m sweeps, m unknowns per row: exact when the design is regular).
2. ``update_proportions``: exponentiated gradient on the law's total loss,
   ``p' ∝ p * exp(eta * A^T 1)`` (in log space), then ``p = (1 - smoothing) p' + smoothing / m``.
3. Train the round's steps on ``p`` (the main stream, stream 0 of the seed, carried across
   rounds: with ``eta = 0`` and ``smoothing = 0`` the model is exactly ``train_proxy``'s).

The lr schedule (warmup + cosine/constant/wsd of ``train_cfg``) runs over the main steps only; a
sweep uses the lr of the round's first step and is not a step of the schedule. The output is the
schedule (``{"round", "steps", "share", "weights"}`` per round: the mixture each round trained on)
and its step-weighted average ``weights``, the fitted ``A`` of every round, the trained model's
final metrics, the tokens spent (``tokens`` = main + ``sweep_tokens``) and warnings: a round with
a weight >= ``COLLAPSE_SHARE`` (``collapsed``), or a sweep design whose mixture matrix has a
condition number above ``CONDITION_LIMIT`` (about 1 / delta: the fit amplifies the measurement
noise by that much), or sweeps too alike to tell apart: sharing their random numbers, two sweeps
differ in about ``delta * batch_size * sweep_steps`` rows, warned about below
``MIN_DIFFERING_ROWS`` (with none, every column of ``A`` gets the same sum and ``p`` stays).

Choices and deviations from the paper (stated, not hidden):

- As we read the paper, its LearnParams trains *through* its sweeps (a fraction of every
  round's steps, on near one-hot mixtures ``(1 - eps) e_j + eps / m``, interleaved over several
  passes) and keeps those updates. Here every sweep starts from the same state and is rolled
  back, so each column of ``A`` is measured from one point and the main run's batches are
  untouched; sweeps cost extra tokens (reported as ``sweep_tokens``). One pass per round (the
  paper's k passes are not offered). With a uniform ``p``, ``delta = 1 - eps`` is the paper's
  sweep mixture exactly; later rounds perturb around the current ``p`` instead of uniform.
- ``A`` is in nats per unit weight over ``sweep_steps`` steps, not normalised, so ``eta`` is in
  1 / nats (the normalisation of the update cancels any shift common to all columns).
- Every round, the first included, starts with sweeps (no warm-up on ``initial_weights``).
- The defaults (4 rounds, 4 sweep steps, delta 0.5, eta 1, smoothing 0.05) are ours, picked on
  tiny proxies, not the paper's settings.
- The objective is the unweighted sum of the training domains' validation losses; evaluation
  sets (``evals``) are only reported in ``metrics``.

Knobs: ``rounds`` (>= 1, at most the number of steps), ``sweep_steps`` (>= 1), ``delta`` in
(0, 1], ``eta`` >= 0 and finite, ``smoothing`` in [0, 1); a bad one raises ValueError naming it
before anything trains. Deterministic given ``train_cfg.seed``. fp32 on CPU, bf16 autocast on
CUDA (``proxies.runtime``), micro-batches and ``compile`` as the trainer. Stages are refused (Aioli
makes its own schedule); ``base``/``init_from`` set the starting weights (no forgetting metrics);
``checkpoint_dir`` and ``eval_every`` are not used.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from proxies.branch import initial_states, load_into
from proxies.config import GPTConfig, TrainConfig
from proxies.data import DomainTokens, MixtureBatches, ValidationWindows, check_weights
from proxies.doremi import COLLAPSE_SHARE
from proxies.evaluate import evaluate_models, metric_hooks
from proxies.optim import Model, build_optimizer, lr_at
from proxies.results import AioliResult
from proxies.runtime import cpu_settings, maybe_compile, resolve_device
from proxies.step import LossFn, train_step

CONDITION_LIMIT = 100.0  # a sweep design with a larger condition number is warned about
MIN_DIFFERING_ROWS = 4.0  # fewer expected rows telling two sweeps apart are warned about
SWEEP_STREAM = 1_000  # round r's sweeps draw from stream SWEEP_STREAM + r of the seed


def check_knobs(rounds: int, sweep_steps: int, delta: float, eta: float, smoothing: float) -> None:
    """ValueError naming the first bad knob (ranges in the module docstring)."""
    for name, value in (("rounds", rounds), ("sweep_steps", sweep_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Aioli {name} must be an integer >= 1, got {value!r}")
    if not isinstance(delta, int | float) or not 0 < delta <= 1:
        raise ValueError(f"Aioli delta must be in (0, 1], got {delta!r}")
    if not isinstance(eta, int | float) or not math.isfinite(eta) or eta < 0:
        raise ValueError(f"Aioli eta must be >= 0 and finite, got {eta!r}")
    if not isinstance(smoothing, int | float) or not 0 <= smoothing < 1:
        raise ValueError(f"Aioli smoothing must be in [0, 1), got {smoothing!r}")


def sweep_mixtures(p: Sequence[float] | np.ndarray, delta: float) -> np.ndarray:
    """The m sweep mixtures (m, m): row j is ``(1 - delta) p + delta e_j``."""
    q = np.asarray(p, dtype=np.float64)
    return (1.0 - delta) * q[None, :] + delta * np.eye(len(q))


def fit_interactions(
    mixtures: Sequence[Sequence[float]] | np.ndarray,
    changes: Sequence[Sequence[float]] | np.ndarray,
) -> np.ndarray:
    """The interaction matrix A (m, m) fitting ``changes[s, i] ≈ -sum_j A[i, j] mixtures[s, j]``
    by least squares: ``mixtures`` (n, m) are the n >= m sweeps' mixtures, ``changes`` (n, m)
    each domain's loss change after each sweep (minimum-norm A for a rank-deficient design)."""
    M = np.asarray(mixtures, dtype=np.float64)
    C = np.asarray(changes, dtype=np.float64)
    if M.ndim != 2 or M.shape != C.shape or M.shape[0] < M.shape[1] or not M.size:
        raise ValueError(f"mixtures {M.shape} and changes {C.shape} must both be (n, m), n >= m")
    if not (np.all(np.isfinite(M)) and np.all(np.isfinite(C))):
        raise ValueError("mixtures and loss changes must be finite")
    A_transposed = np.linalg.lstsq(M, -C, rcond=None)[0]  # (m, m): column i is row i of A
    return np.ascontiguousarray(A_transposed.T)


def update_proportions(
    p: Sequence[float] | np.ndarray,
    A: Sequence[Sequence[float]] | np.ndarray,
    *,
    eta: float,
    smoothing: float,
) -> np.ndarray:
    """One Aioli update: ``p' ∝ p * exp(eta * A^T 1)`` (log space, a 0 stays 0), returned as
    ``(1 - smoothing) * p' + smoothing / m``."""
    check_knobs(1, 1, 1.0, eta, smoothing)
    q, a = np.asarray(p, dtype=np.float64), np.asarray(A, dtype=np.float64)
    if q.ndim != 1 or not len(q) or a.shape != (len(q), len(q)):
        raise ValueError(f"p {q.shape} must be (m,) and A {a.shape} must be (m, m)")
    if not np.all(np.isfinite(q)) or np.any(q < 0) or q.sum() <= 0:
        raise ValueError(f"p must be non-negative proportions with a positive sum, got {q}")
    if not np.all(np.isfinite(a)):
        raise ValueError("the interaction matrix A must be finite")
    with np.errstate(divide="ignore"):
        logits = np.log(q) + eta * a.sum(axis=0)
    logits -= logits.max()
    new = np.exp(logits)
    return (1.0 - smoothing) * new / new.sum() + smoothing / len(q)


def _losses(
    model: Model, windows: ValidationWindows, batch_size: int, device: torch.device
) -> np.ndarray:
    metrics = evaluate_models(model, windows, batch_size=batch_size, device=device)[0].metrics
    losses = np.array([metrics[f"val_loss/{name}"] for name in windows.names])
    if not np.all(np.isfinite(losses)):
        raise FloatingPointError(f"Aioli: a validation loss became non-finite ({losses})")
    return losses


def _names(domains: Sequence[DomainTokens], values: np.ndarray) -> dict[str, float]:
    return {d.name: float(v) for d, v in zip(domains, values, strict=True)}


def measure_sweeps(
    model: Model,
    optimizer: torch.optim.Optimizer,
    domains: list[DomainTokens],
    mixtures: np.ndarray,
    windows: ValidationWindows,
    train_cfg: TrainConfig,
    *,
    steps: int,
    lr: float,
    stream: int,
    device: torch.device,
    loss_fn: LossFn | None = None,
) -> np.ndarray:
    """Loss changes (n, m) on ``windows`` (one per domain, in order) after ``steps`` steps at
    ``lr`` on each of the n ``mixtures``, each from the same state: the model, the optimizer and
    torch's RNG are restored exactly after every sweep."""
    T, B = windows.seq_len, train_cfg.batch_size
    before = _losses(model, windows, B, device)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    rng = torch.get_rng_state()
    changes = []
    for mixture in mixtures:
        batches = MixtureBatches(domains, _names(domains, mixture), T, B, train_cfg.seed, stream)
        for _ in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr
            train_step(
                model, optimizer, next(batches), grad_clip=train_cfg.grad_clip, device=device,
                micro_batches=train_cfg.micro_batches, loss_fn=loss_fn,
            )  # fmt: skip
        changes.append(_losses(model, windows, B, device) - before)
        model.load_state_dict(saved[0])  # copies into the parameters
        optimizer.load_state_dict(copy.deepcopy(saved[1]))  # it would alias the saved tensors
        torch.set_rng_state(rng)
    return np.array(changes)


def round_warnings(
    r: int, mixtures: np.ndarray, weights: Mapping[str, float], *, rows: float
) -> list[str]:
    """Round ``r``'s warnings: a badly conditioned sweep design, sweeps differing in only ``rows``
    rows (said once, in round 0), a weight >= COLLAPSE_SHARE."""
    out = []
    condition = float(np.linalg.cond(mixtures))
    if condition > CONDITION_LIMIT:
        out.append(f"round {r}: the sweep design is badly conditioned (condition number "
                   f"{condition:.3g} > {CONDITION_LIMIT:g}; raise delta)")  # fmt: skip
    if r == 0 and rows < MIN_DIFFERING_ROWS:
        out.append(f"two sweeps differ in only ~{rows:.2g} rows (delta * batch_size * "
                   f"sweep_steps < {MIN_DIFFERING_ROWS:g}): the fit sees little but noise; "
                   "raise delta or sweep_steps")  # fmt: skip
    top = max(weights, key=lambda name: weights[name])
    if weights[top] >= COLLAPSE_SHARE:
        out.append(f"collapsed: round {r} gives domain {top!r} {weights[top]:.3f} of its weight "
                   f"(>= {COLLAPSE_SHARE})")  # fmt: skip
    return out


def round_steps(n_steps: int, rounds: int) -> list[int]:
    """Steps of each round (``np.array_split`` sizes); ValueError when a round would get none."""
    if rounds > n_steps:
        raise ValueError(f"Aioli rounds ({rounds}) must not exceed the run's {n_steps} steps")
    return [len(part) for part in np.array_split(np.arange(n_steps), rounds)]


def train_aioli(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    initial_weights: Mapping[str, float],
    *,
    rounds: int = 4,
    sweep_steps: int = 4,
    delta: float = 0.5,
    eta: float = 1.0,
    smoothing: float = 0.05,
    evals: Sequence[DomainTokens] = (),
) -> AioliResult:
    """Aioli's mixture schedule for ``domains`` from ``initial_weights`` (module docstring)."""
    check_knobs(rounds, sweep_steps, delta, eta, smoothing)
    if train_cfg.stages:
        raise ValueError("Aioli makes its own mixture schedule: train_cfg.stages must be empty")
    t_start = time.perf_counter()
    device = resolve_device(train_cfg.device)
    T, B, m = model_cfg.seq_len, train_cfg.batch_size, len(domains)
    p = check_weights(domains, initial_weights)
    initial = p.copy()
    windows = ValidationWindows([*domains, *evals], T, train_cfg.eval_tokens)
    sweep_windows = ValidationWindows(domains, T, min(train_cfg.eval_tokens, B * (T + 1)))
    for name, array in windows.windows.items():
        if int(array.max()) >= model_cfg.vocab_size:
            raise ValueError(f"{name!r} val file has token id {int(array.max())} outside the "
                             f"model's vocab_size {model_cfg.vocab_size}")  # fmt: skip
    hooks = metric_hooks(train_cfg.metrics)
    n_steps = math.ceil(train_cfg.train_tokens / (B * T))
    steps_per_round = round_steps(n_steps, rounds)
    schedule = functools.partial(
        lr_at, n_steps=n_steps, lr=train_cfg.lr, warmup_steps=int(train_cfg.warmup_ratio * n_steps),
        min_lr_ratio=train_cfg.min_lr_ratio, schedule=train_cfg.schedule,
    )  # fmt: skip
    bases = initial_states(model_cfg, train_cfg, domains, [train_cfg.seed], evals)
    plan: list[dict[str, Any]] = []
    interactions: list[list[list[float]]] = []
    warnings: list[str] = []
    with cpu_settings(device, train_cfg.threads):
        torch.manual_seed(train_cfg.seed)
        model = model_cfg.build()
        if bases:
            load_into(model, bases[0][0], f"init_from {train_cfg.init_from or 'base'}")
        model = model.to(device).train()
        optimizer = build_optimizer(model, train_cfg, device)
        loss_fn = maybe_compile(model.train_loss, device, train_cfg.compile)
        step, stream_state = 0, None
        for r, steps in enumerate(steps_per_round):
            mixtures = sweep_mixtures(p, delta)
            changes = measure_sweeps(
                model, optimizer, domains, mixtures, sweep_windows, train_cfg, steps=sweep_steps,
                lr=schedule(step), stream=SWEEP_STREAM + r, device=device, loss_fn=loss_fn,
            )  # fmt: skip
            A = fit_interactions(mixtures, changes)
            interactions.append(A.tolist())
            p = update_proportions(p, A, eta=eta, smoothing=smoothing)
            weights = _names(domains, p)
            plan.append({"round": r, "steps": steps, "share": steps / n_steps, "weights": weights})
            warnings += round_warnings(r, mixtures, weights, rows=delta * B * sweep_steps)
            batches = MixtureBatches(domains, weights, T, B, train_cfg.seed, stream=0)
            if stream_state is not None:
                batches.set_state(stream_state)
            for _ in range(steps):
                for group in optimizer.param_groups:
                    group["lr"] = schedule(step)
                batch = next(batches)
                if int(batch.max()) >= model_cfg.vocab_size:
                    raise ValueError(f"training batch has token id {int(batch.max())} outside "
                                     f"the model's vocab_size {model_cfg.vocab_size}")  # fmt: skip
                train_step(model, optimizer, batch, grad_clip=train_cfg.grad_clip, device=device,
                           micro_batches=train_cfg.micro_batches, loss_fn=loss_fn)  # fmt: skip
                step += 1
            stream_state = batches.state()
        final = evaluate_models(model, windows, batch_size=B, device=device, hooks=hooks,
                                step=n_steps, tokens=n_steps * B * T)  # fmt: skip
    averaged = sum(entry["share"] * np.array(list(entry["weights"].values())) for entry in plan)
    sweep_tokens = rounds * m * sweep_steps * B * T
    return AioliResult(
        schedule=plan,
        weights=_names(domains, averaged / averaged.sum()),
        initial_weights=_names(domains, initial),
        interactions=interactions,
        metrics=final[0].metrics,
        rounds=rounds,
        sweep_steps=sweep_steps,
        delta=float(delta),
        eta=float(eta),
        smoothing=float(smoothing),
        steps=n_steps,
        tokens=n_steps * B * T + sweep_tokens,
        sweep_tokens=sweep_tokens,
        wall_s=time.perf_counter() - t_start,
        device=str(device),
        collapsed=any(max(entry["weights"].values()) >= COLLAPSE_SHARE for entry in plan),
        warnings=warnings,
    )
