"""The trainer: ``train_proxy`` trains one proxy on one mixture, ``train_stacked`` K at once.

What happens, in order: resolve the device (``auto`` = CUDA when available); on CPU flush
denormals and use ``threads`` torch threads (``proxies.runtime.cpu_settings``); build the data
streams (validation windows first, so bad files fail before training) and resolve the metric
hooks; seed torch with each model's seed and build it (dense or MoE, from the config); resume from
the checkpoint if ``checkpoint_dir`` holds one of this run; run ``ceil(train_tokens / (batch_size
* seq_len))`` optimizer steps of warmup + cosine (constant, or warmup-stable-decay) lr with
gradient clipping, fp32 on
CPU and bf16 autocast on CUDA (optionally ``torch.compile``d; ``proxies.runtime.maybe_compile``
falls back to eager on CPU without a C++ compiler), each step's batch optionally split
into micro-batches (gradient accumulation); evaluate every ``eval_every`` steps and at the end:
``val_loss/<domain>`` and ``bpb/<domain>`` for every domain, weight 0 included, and for every
evaluation set (``evals``: validation tokens never trained on), MoE expert loads, the metric
hooks (``proxies.evaluate``) and the downstream probe tasks (``probes``: ``probe/<task>/*``,
``proxies.probes``).

Stages (``TrainConfig.stages``): the steps are split between the stages by their shares
(``TrainConfig.stage_steps``: every stage gets at least one step, else a ValueError before any
model is built) and each stage draws its batches from its own mixture (a stage without weights
uses the run's mixture) through its own ``MixtureBatches`` stream (stream ``k`` of the seed for
stage ``k``): within a stage, runs with the same seed keep common random numbers. The ``wsd``
schedule decays over the last stage. ``TrainResult.stage_tokens`` counts the tokens actually
drawn from each domain in each stage (one stage for an unstaged run). With ``trunk_dir`` set, the
fixed stages before the run's own mixture are trained once per seed and shared
(``proxies.branch``): a run then trains only its own stages and gets the same result. With
``base`` set (continual pretraining) every model starts from its seed's base proxy and reports
``forgetting/<loss>`` next to its losses.

Stacked training (``train_stacked``) runs K models of one config as one ``StackedGPT``: model k
starts from the weights ``train_proxy`` would build with seed k, draws its own mixture's stream,
and gets its own gradient (the summed loss separates), its own clipping (per-model global norm)
and, because AdamW is elementwise, its own AdamW — so each result matches a separate
``train_proxy`` run to float tolerance. It pays where one model leaves the device idle (tiny
proxies on a GPU); ``proxies.plan`` decides when.

Per-step losses stay on the device and are read at checkpoints and at the end (no per-step sync on
CUDA) unless an ``on_step`` callback asks for them. An MoE's balancing losses are added to the
loss that is differentiated; the curve and ``StepInfo.loss`` are the cross-entropy alone.

The pieces live in their own modules, all re-exported here: ``proxies.config`` (TrainConfig),
``proxies.optim`` (AdamW, the lr schedule), ``proxies.step`` (one optimizer step),
``proxies.results`` (TrainResult, StepInfo, the loss curve).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from proxies.branch import Trunk, forgetting, initial_states, load_into
from proxies.checkpoint import (
    Progress,
    load_checkpoint,
    remove_checkpoint,
    run_fingerprint,
    run_parts,
    save_checkpoint,
)
from proxies.config import GPTConfig, StageConfig, TrainConfig
from proxies.data import (
    DomainTokens,
    ValidationWindows,
    draw_counted,
    set_stream_states,
    stage_stream,
    stream_states,
    zero_counts,
)
from proxies.evaluate import Evaluation, MetricHook, evaluate, evaluate_models, metric_hooks
from proxies.optim import Model, build_optimizer, lr_at
from proxies.results import CURVE_POINTS, StepInfo, TrainResult, smooth_curve
from proxies.runtime import (
    autocast_for,
    cpu_settings,
    maybe_compile,
    resolve_device,
    tune_malloc,
)
from proxies.stacked import StackedGPT
from proxies.step import LossFn, train_step

if TYPE_CHECKING:
    from proxies.probe_tasks import ProbeTask

_cpu_settings = cpu_settings  # the name this module used to define
__all__ = [
    "CURVE_POINTS",
    "LossFn",
    "StepInfo",
    "TrainConfig",
    "TrainResult",
    "autocast_for",
    "build_optimizer",
    "evaluate",
    "lr_at",
    "resolve_device",
    "smooth_curve",
    "train_proxy",
    "train_stacked",
    "train_step",
    "tune_malloc",
]


def _check_token_ids(tokens: torch.Tensor, vocab_size: int, where: str) -> None:
    """Out-of-range ids would crash the embedding (a device-side assert on CUDA): fail clearly."""
    top = int(tokens.max())
    if top >= vocab_size:  # ids come from unsigned files: never negative
        raise ValueError(f"{where} has token id {top} outside the model's vocab_size {vocab_size}")


# ------------------------------------------------------------------------------------- driver


def train_proxy(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    weights: Mapping[str, float],
    *,
    on_step: Callable[[StepInfo], None] | None = None,
    evals: Sequence[DomainTokens] = (),
    probes: Sequence[ProbeTask] = (),
) -> TrainResult:
    """Train ``model_cfg`` on the mixture ``weights`` over ``domains``; evaluate every domain
    and every eval set of ``evals`` (their val files only: they are never trained on), and score
    every probe task of ``probes``."""
    return _train(
        model_cfg, train_cfg, domains, [weights], [train_cfg.seed], stacked=False,
        on_step=on_step, evals=evals, probes=probes,
    )[0]  # fmt: skip


def train_stacked(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    mixtures: Sequence[Mapping[str, float]],
    *,
    seeds: Sequence[int] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    evals: Sequence[DomainTokens] = (),
    probes: Sequence[ProbeTask] = (),
) -> list[TrainResult]:
    """Train K = len(mixtures) models of ``model_cfg`` together, model k on ``mixtures[k]`` with
    seed ``seeds[k]`` (default: ``train_cfg.seed`` for all); ``train_cfg.seed`` is otherwise
    unused. Result k matches ``train_proxy`` with seed ``seeds[k]`` to float tolerance."""
    if not mixtures:
        raise ValueError("train_stacked needs at least one mixture")
    seeds = [train_cfg.seed] * len(mixtures) if seeds is None else list(seeds)
    if len(seeds) != len(mixtures):
        raise ValueError(f"got {len(mixtures)} mixtures but {len(seeds)} seeds")
    return _train(
        model_cfg, train_cfg, domains, mixtures, seeds, stacked=True, on_step=on_step, evals=evals,
        probes=probes,
    )  # fmt: skip


LOSS_FLUSH_STEPS = 256  # per-step loss tensors kept on the device before one sync


def _eval_record(step: int, tokens: int, evaluation: Evaluation) -> dict[str, Any]:
    return {
        "step": step,
        "tokens": tokens,
        "metrics": evaluation.metrics,
        "expert_counts": evaluation.expert_counts,
    }


def _train(
    model_cfg: GPTConfig,
    train_cfg: TrainConfig,
    domains: list[DomainTokens],
    mixtures: Sequence[Mapping[str, float]],
    seeds: Sequence[int],
    *,
    stacked: bool,
    on_step: Callable[[StepInfo], None] | None,
    evals: Sequence[DomainTokens] = (),
    probes: Sequence[ProbeTask] = (),
) -> list[TrainResult]:
    t_start = time.perf_counter()
    device = resolve_device(train_cfg.device)
    K, T, B = len(mixtures), model_cfg.seq_len, train_cfg.batch_size
    # Data and hooks first: bad weights, short files or unknown hooks fail before any model.
    windows = ValidationWindows([*domains, *evals], T, train_cfg.eval_tokens)
    for name, array in windows.windows.items():
        _check_token_ids(torch.from_numpy(array), model_cfg.vocab_size, f"{name!r} val file")
    if probes:
        from proxies.probes import check_probe_tokens

        check_probe_tokens(probes, model_cfg.vocab_size)
    stages = train_cfg.stages or (StageConfig(1.0),)
    streams = [  # streams[k][j]: model k's batches in stage j
        [
            stage_stream(domains, stage, j, weights, T, B, seed, bool(train_cfg.stages))
            for j, stage in enumerate(stages)
        ]
        for weights, seed in zip(mixtures, seeds, strict=True)
    ]
    hooks: dict[str, MetricHook] = metric_hooks(train_cfg.metrics)
    n_steps = math.ceil(train_cfg.train_tokens / (B * T))
    steps_per_stage = train_cfg.stage_steps(n_steps)
    stage_ends = list(itertools.accumulate(steps_per_stage))  # first step after each stage
    tokens_per_step = B * T
    schedule = functools.partial(
        lr_at,
        n_steps=n_steps,
        lr=train_cfg.lr,
        warmup_steps=int(train_cfg.warmup_ratio * n_steps),
        min_lr_ratio=train_cfg.min_lr_ratio,
        schedule=train_cfg.schedule,
        decay_steps=steps_per_stage[-1] if train_cfg.stages else None,
    )
    ckpt_dir = train_cfg.checkpoint_dir
    ckpt_every = train_cfg.checkpoint_every or max(1, n_steps // 10)
    parts = run_parts(model_cfg, train_cfg, domains, mixtures, seeds, stacked, evals)
    fingerprint = run_fingerprint(parts)
    trunk = None if stacked else Trunk.of(train_cfg.trunk_dir, stages, steps_per_stage, parts)

    # continual pretraining: per seed, the starting weights and the base's metrics
    bases = initial_states(model_cfg, train_cfg, domains, seeds, evals)

    with cpu_settings(device, train_cfg.threads):
        threads = torch.get_num_threads()
        models = []
        for k, seed in enumerate(seeds):
            torch.manual_seed(seed)
            models.append(model_cfg.build())
            if bases:
                load_into(models[-1], bases[k][0], f"init_from {train_cfg.init_from}")
        model: Model = StackedGPT.from_models(models) if stacked else models[0]
        model = model.to(device).train()
        del models
        optimizer = build_optimizer(model, train_cfg, device)
        progress = Progress(K, stage_tokens=zero_counts(domains, K, len(stages)))

        def evaluate_now(step: int) -> list[Evaluation]:
            return evaluate_models(
                model, windows, batch_size=B, device=device, hooks=hooks, step=step,
                tokens=step * tokens_per_step, probes=probes,
            )  # fmt: skip

        def state_now(step: int) -> dict[str, Any]:
            progress.step = step
            return {
                "step": step,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "streams": stream_states(streams),
                "stage_tokens": progress.stage_tokens,
                "losses": progress.losses,
                "evals": progress.evals,
                "torch_rng": torch.get_rng_state(),
            }

        def save(step: int) -> None:
            assert ckpt_dir is not None
            save_checkpoint(ckpt_dir, state_now(step), fingerprint=fingerprint)

        def restore(saved: dict[str, Any]) -> Progress:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            set_stream_states(streams, saved["streams"])
            torch.set_rng_state(saved["torch_rng"])
            return Progress(
                K, saved["step"], saved["losses"], saved["evals"],
                saved.get("stage_tokens") or progress.stage_tokens,
            )  # fmt: skip

        if bases and bases[0][1] is None:  # init_from: the base's metrics are its checkpoint's
            bases = [
                (state, e.metrics) for (state, _), e in zip(bases, evaluate_now(0), strict=True)
            ]
        if ckpt_dir is not None:
            saved = load_checkpoint(ckpt_dir, fingerprint=fingerprint, map_location=device)
            if saved is not None:
                progress = restore(saved)
        resumed_from = progress.step
        loss_fn = maybe_compile(model.train_loss, device, train_cfg.compile)
        pending: list[torch.Tensor] = []  # per-step (K,) losses still on the device

        def advance(stop: int) -> None:
            """Train from ``progress.step`` up to step ``stop``."""
            for step in range(progress.step, stop):
                lr = schedule(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                stage = bisect.bisect_right(stage_ends, step)
                parts = [  # each (B, T+1) on the CPU
                    draw_counted(model_streams[stage], progress.stage_tokens[k][stage], T)
                    for k, model_streams in enumerate(streams)
                ]
                batch = torch.stack(parts) if stacked else parts[0]
                _check_token_ids(batch, model_cfg.vocab_size, "training batch")
                ce = train_step(
                    model, optimizer, batch, grad_clip=train_cfg.grad_clip, device=device,
                    micro_batches=train_cfg.micro_batches, loss_fn=loss_fn,
                )  # fmt: skip
                pending.append(ce)
                if len(pending) >= LOSS_FLUSH_STEPS:  # bounded: a tensor per step adds up to GBs
                    progress.add_losses(pending)
                done = step + 1
                if on_step is not None:
                    values = ce.reshape(-1).float().tolist()
                    info = StepInfo(
                        step, n_steps, done * tokens_per_step, sum(values) / K, lr,
                        tuple(values), stage,
                    )  # fmt: skip
                    on_step(info)
                if train_cfg.eval_every and done % train_cfg.eval_every == 0 and done < n_steps:
                    for k, evaluation in enumerate(evaluate_now(done)):
                        record = _eval_record(done, done * tokens_per_step, evaluation)
                        progress.evals[k].append(record)
                if ckpt_dir is not None and done % ckpt_every == 0 and done < n_steps:
                    progress.add_losses(pending)
                    save(done)
            progress.add_losses(pending)
            progress.step = stop

        t_train = time.perf_counter()
        trunk_from, trunk_trained = 0, False  # steps loaded from a shared trunk; trained it here
        if trunk is not None and progress.step < trunk.steps:
            with trunk.lock():  # one run per seed trains the trunk, the others wait and load it
                shared = trunk.load(device)
                if shared is not None:
                    progress, trunk_from = restore(shared), trunk.steps
                else:
                    advance(trunk.steps)
                    trunk.save(state_now(trunk.steps))
                    trunk_trained = True
        advance(n_steps)
        progress.add_losses(pending)
        train_s = time.perf_counter() - t_train
        for k, losses in enumerate(progress.losses):
            bad = next((i for i, x in enumerate(losses) if not math.isfinite(x)), None)
            if bad is not None:
                which = f"model {k}: " if stacked else ""
                raise FloatingPointError(f"{which}train loss became {losses[bad]} at step {bad}")

        t_eval = time.perf_counter()
        final = evaluate_now(n_steps)
        eval_s = time.perf_counter() - t_eval

    if ckpt_dir is not None and not train_cfg.keep_checkpoint:
        remove_checkpoint(ckpt_dir)
    elif ckpt_dir is not None and resumed_from < n_steps:  # else it holds this state already
        save(n_steps)
    wall_s = time.perf_counter() - t_start
    tokens = n_steps * tokens_per_step
    trained_now = (n_steps - max(resumed_from, trunk_from)) * tokens_per_step * K
    return [
        TrainResult(
            metrics={**evaluation.metrics, **forgetting(evaluation.metrics, bases[k][1] or {})}
            if bases
            else evaluation.metrics,
            curve=smooth_curve(progress.losses[k], tokens_per_step),
            tokens=tokens,
            flops=model_cfg.flops_per_token() * tokens,
            wall_s=wall_s / K,
            train_s=train_s / K,
            eval_s=eval_s / K,
            tokens_per_s=trained_now / train_s if train_s > 0 else float("nan"),
            device=str(device),
            n_params=model_cfg.non_embedding_params(),
            n_params_total=model_cfg.total_params(),
            steps=n_steps,
            threads=threads,
            arch=model_cfg.arch,
            n_params_active=model_cfg.active_params(),
            evals=progress.evals[k],
            expert_counts=evaluation.expert_counts,
            resumed_from_step=resumed_from,
            n_models=K,
            group_wall_s=wall_s,
            stage_steps=steps_per_stage,
            stage_tokens=progress.stage_tokens[k],
            trunk_steps=trunk_from,
            trunk_trained=trunk_trained,
            base_metrics=(bases[k][1] or {}) if bases else {},
        )
        for k, evaluation in enumerate(final)
    ]
