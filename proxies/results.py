"""What a training run reports: ``TrainResult`` (per model), ``StepInfo`` (per step, to a
callback), ``smooth_curve`` (the loss curve a result carries), ``DoremiResult`` (the mixture
a DoReMi run learned, ``proxies.doremi``) and ``AioliResult`` (the mixture schedule an Aioli run
learned, ``proxies.aioli``). Plain data, torch-free.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

CURVE_POINTS = 50
_EMA_BETA = 0.9


@dataclass
class TrainResult:
    """What a trained proxy reports back to the driver (plain data, picklable).

    For a stacked run the time fields are the model's share of the group (the group's time / K)
    and ``tokens_per_s`` is the group's aggregate rate; ``group_wall_s`` is the whole group's.
    """

    metrics: dict[
        str, float
    ]  # val_loss/<domain|eval>, bpb/<...> (when val_bytes > 0), moe/*, hooks
    curve: list[tuple[int, float]]  # (tokens seen, EMA-smoothed train loss), ~50 points
    tokens: int  # training tokens processed
    flops: float  # training FLOPs: cfg.flops_per_token() * tokens (evaluation not counted)
    wall_s: float  # whole call: setup + training + evaluation
    train_s: float
    eval_s: float
    tokens_per_s: float  # training throughput: tokens trained in this call / train_s
    device: str
    n_params: int  # non-embedding
    n_params_total: int
    steps: int = 0
    threads: int = 0  # torch CPU threads used
    arch: str = "dense"
    n_params_active: int = 0  # non-embedding parameters used per token (MoE: top_k experts)
    evals: list[dict[str, Any]] = field(default_factory=list)  # every eval_every steps
    expert_counts: list[list[int]] = field(default_factory=list)  # final eval, layers x experts
    resumed_from_step: int = 0  # > 0 when this call continued from a checkpoint
    n_models: int = 1  # models trained together (stacked)
    group_wall_s: float = 0.0
    stage_steps: list[int] = field(default_factory=list)  # optimizer steps of each stage
    stage_tokens: list[dict[str, int]] = field(default_factory=list)  # per stage: domain -> tokens
    trunk_steps: int = 0  # steps loaded from a shared trunk (proxies.branch) instead of trained
    trunk_trained: bool = False  # this call trained that trunk (and saved it for the others)
    base_metrics: dict[str, float] = field(default_factory=dict)  # continual: the base proxy's

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["curve"] = [list(point) for point in self.curve]
        return out


@dataclass
class DoremiResult:
    """What ``proxies.doremi.train_doremi`` reports (plain data, picklable).

    ``weights`` is DoReMi's output mixture (the domain weights averaged over every proxy step);
    ``trajectory`` the weights along the run, ``{"step", "weights", "excess"}`` about every
    twentieth of it (``excess``: that step's per-domain excess loss); ``reference`` and ``proxy``
    the final ``val_loss/<domain>`` (and bpb, eval sets, hooks) of the two models; ``tokens``
    the training tokens spent on both (the reference's only when this call trained it).
    """

    weights: dict[str, float]
    final_weights: dict[str, float]  # the domain weights after the last step
    trajectory: list[dict[str, Any]]
    reference: dict[str, float]
    proxy: dict[str, float]
    reference_weights: dict[str, float]  # the mixture the reference trained on and batches use
    step_size: float
    smoothing: float
    steps: int  # proxy optimizer steps
    tokens: int
    reference_tokens: int  # 0 when the reference was given
    wall_s: float
    device: str
    collapsed: bool = False  # one domain holds >= COLLAPSE_SHARE of the averaged weights
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AioliResult:
    """What ``proxies.aioli.train_aioli`` reports (plain data, picklable).

    ``schedule`` holds one ``{"round", "steps", "share", "weights"}`` per round (``share``: the
    round's fraction of the main steps, summing to 1; ``weights``: the mixture it trained on);
    ``weights`` is their step-weighted average (Aioli's static mixture); ``interactions`` the
    fitted m x m matrix A of every round (rows and columns in domain order, nats per unit weight
    over ``sweep_steps`` steps); ``metrics`` the trained model's final ``val_loss/<domain>`` (and
    bpb, eval sets, hooks); ``tokens`` every training token spent, the sweeps' (``sweep_tokens``)
    included.
    """

    schedule: list[dict[str, Any]]
    weights: dict[str, float]
    initial_weights: dict[str, float]
    interactions: list[list[list[float]]]
    metrics: dict[str, float]
    rounds: int
    sweep_steps: int
    delta: float
    eta: float
    smoothing: float
    steps: int  # main optimizer steps (the sweeps' are not counted)
    tokens: int
    sweep_tokens: int
    wall_s: float
    device: str
    collapsed: bool = False  # a round gave one domain >= COLLAPSE_SHARE of its weight
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepInfo:
    """Passed to ``on_step`` after every optimizer step."""

    step: int  # 0-based step just taken
    n_steps: int
    tokens: int  # tokens seen so far (per model)
    loss: float  # this step's train cross-entropy (the mean over models when stacked)
    lr: float
    losses: tuple[float, ...] = ()  # per model
    stage: int = 0  # index of the stage the step was in (0 for an unstaged run)


def smooth_curve(losses: list[float], tokens_per_step: int) -> list[tuple[int, float]]:
    """~CURVE_POINTS (tokens seen, bias-corrected EMA of the train loss), last step included."""
    n = len(losses)
    every = max(1, math.ceil(n / CURVE_POINTS))
    curve, ema = [], 0.0
    for i, loss in enumerate(losses):
        ema = _EMA_BETA * ema + (1 - _EMA_BETA) * loss
        if (i + 1) % every == 0 or i == n - 1:
            curve.append(((i + 1) * tokens_per_step, ema / (1 - _EMA_BETA ** (i + 1))))
    return curve
