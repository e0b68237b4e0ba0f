"""The configs of a proxy run: GPTConfig and MoEConfig (the model), TrainConfig (its training).

A config is a frozen dataclass that checks itself on construction (``dataclasses.replace`` checks
again). A model config knows its parameter count and its training FLOPs per token without building
anything, and builds its model with ``cfg.build()``. This module does not import torch, so a whole
run request (model config, ``TrainConfig`` and ``proxies.tokens.DomainTokens``) is cheap to create
and check in the driver process.

``TrainConfig`` is the one place the training settings are checked: every problem raises a
``ConfigError`` (a ValueError) whose ``field`` names the setting and whose ``reason`` says what is
wrong (``str(error)`` is ``"TrainConfig.<field> <reason>"``), so a caller with its own names for
the settings (mixopt's ProxySpec) can report the reason under its own field.

Counting conventions (documented because papers differ):

- ``non_embedding_params``: every parameter except the token embedding and the lm head, i.e.
  attention and MLP matrices plus RMSNorm gains. RegMix's "1M" proxy (2 layers, d=256, MLP 512,
  SwiGLU) is 1.31M by this count. For an MoE this counts every expert (and the router).
- ``active_params``: the non-embedding parameters one token uses (an MoE counts ``top_k``
  experts, the shared expert and the router; for a dense model it equals non_embedding_params).
- ``flops_per_token``: training FLOPs (forward + backward) per token,
  ``6 * N_matmul + 12 * n_layer * d_model * seq_len``, where ``N_matmul`` is the number of weights
  used in matrix multiplies by one token: attention and MLP matrices (an MoE's *active* experts
  and its router) *and the lm head* (V x d; tied or not, the head matmul is computed). The
  embedding lookup, norms and routing bookkeeping are free. The attention term is PaLM's
  (Chowdhery et al. 2022, App. B): QK^T and AV for every (query, key) pair, without halving for
  the causal mask.

Stages (``proxies.stages.StageConfig``, importable from here too): a run may change its mixture
over training; ``TrainConfig.stages`` is their ordered list (none: one mixture throughout).

``MoEConfig`` extends GPTConfig: every block's MLP becomes ``n_experts`` SwiGLU experts of hidden
width ``d_ff`` with token-choice top-k routing, an optional always-on shared expert, and one of
the balancing schemes (see ``proxies.moe``).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from proxies.stages import BaseConfig, StageConfig, coerce_stages, is_finite, stage_steps

if TYPE_CHECKING:
    from proxies.gpt import GPT


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a dense decoder-only transformer (pre-norm RMSNorm, RoPE, SwiGLU, no biases)."""

    vocab_size: int
    seq_len: int
    n_layer: int
    n_head: int
    d_model: int
    d_ff: int  # hidden width of the SwiGLU MLP (each of the gate and up projections is d x d_ff)
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "n_layer", "n_head", "d_model", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(
                f"GPTConfig head dim d_model/n_head = {self.head_dim} must be even for rotary "
                "embeddings"
            )
        for name in ("rope_base", "norm_eps", "init_std"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"GPTConfig.{name} must be a positive number, got {value!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(
                f"GPTConfig.tie_embeddings must be a bool, got {self.tie_embeddings!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    # ------------------------------------------------------------------------------ counting

    @property
    def arch(self) -> Literal["dense", "moe"]:
        return "dense"

    def _mlp_params(self) -> int:
        """One block's MLP weights: SwiGLU gate, up and down (3 d d_ff)."""
        return 3 * self.d_model * self.d_ff

    def _mlp_active_params(self) -> int:
        """The MLP weights one token multiplies with (all of them, for a dense MLP)."""
        return self._mlp_params()

    def non_embedding_params(self) -> int:
        """Parameters outside the token embedding and lm head (matrices + norm gains)."""
        per_block = 4 * self.d_model**2 + self._mlp_params() + 2 * self.d_model  # + 2 norm gains
        return self.n_layer * per_block + self.d_model  # + final RMSNorm

    def active_params(self) -> int:
        """Non-embedding parameters used per token (the same as non_embedding_params if dense)."""
        unused = self.n_layer * (self._mlp_params() - self._mlp_active_params())
        return self.non_embedding_params() - unused

    def total_params(self) -> int:
        """All distinct parameters (a tied head is counted once, with the embedding)."""
        embedding = self.vocab_size * self.d_model
        head = 0 if self.tie_embeddings else self.vocab_size * self.d_model
        return self.non_embedding_params() + embedding + head

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 * (active matrices + head) + 12 * L * d * T (see above)."""
        per_block = 4 * self.d_model**2 + self._mlp_active_params()
        n_matmul = self.n_layer * per_block + self.vocab_size * self.d_model
        attention = 12 * self.n_layer * self.d_model * self.seq_len
        return float(6 * n_matmul + attention)

    # ------------------------------------------------------------------------------ building

    def build(self) -> GPT:
        """Build the model with freshly initialised weights (seed torch first for determinism)."""
        from proxies.gpt import GPT

        return GPT(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Balance = Literal["aux_loss", "aux_free", "none"]
AuxScope = Literal["micro", "global"]
ExpertBackend = Literal["auto", "grouped_mm", "padded"]


@dataclass(frozen=True)
class MoEConfig(GPTConfig):
    """A GPT whose block MLPs are token-choice top-k mixtures of SwiGLU experts (dropless).

    ``d_ff`` is each routed expert's hidden width. ``balance`` picks how the load is balanced:

    - ``aux_loss``: Switch-style loss ``E * sum_e f_e * P_e`` times ``aux_loss_coef``, with the
      routed fractions f over the micro-batch (``aux_scope="micro"``) or over every micro-batch of
      the optimizer step so far (``"global"``, "Demons in the Detail"; with one micro-batch per
      step the two coincide);
    - ``aux_free``: DeepSeek-V3's per-expert bias, added to the scores for expert *selection*
      only and moved by ``bias_update_rate * sign(mean load - load)`` after every step;
    - ``none``.

    ``seq_aux_loss_coef`` adds the sequence-wise balancing loss (DeepSeek-V3 uses a tiny one with
    aux_free) and ``z_loss_coef`` the router z-loss, in any mode.
    """

    n_experts: int = 8
    top_k: int = 2
    shared_expert_d_ff: int = 0  # hidden width of an always-on shared SwiGLU expert; 0 = none
    norm_topk: bool = True  # renormalise the top-k gate weights to sum to 1
    balance: Balance = "aux_loss"
    aux_scope: AuxScope = "global"
    aux_loss_coef: float = 0.01
    seq_aux_loss_coef: float = 0.0
    bias_update_rate: float = 1e-3
    z_loss_coef: float = 1e-3
    expert_backend: ExpertBackend = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_experts", "top_k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MoEConfig.{name} must be a positive integer, got {value!r}")
        if self.top_k > self.n_experts:
            raise ValueError(
                f"MoEConfig.top_k ({self.top_k}) must not exceed n_experts ({self.n_experts})"
            )
        value = self.shared_expert_d_ff
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"MoEConfig.shared_expert_d_ff must be an integer >= 0 (0 = none), got {value!r}"
            )
        if not isinstance(self.norm_topk, bool):
            raise ValueError(f"MoEConfig.norm_topk must be a bool, got {self.norm_topk!r}")
        choices: dict[str, tuple[str, ...]] = {
            "balance": ("aux_loss", "aux_free", "none"),
            "aux_scope": ("micro", "global"),
            "expert_backend": ("auto", "grouped_mm", "padded"),
        }
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(
                    f"MoEConfig.{name} must be one of {', '.join(valid)}; "
                    f"got {getattr(self, name)!r}"
                )
        for name in ("aux_loss_coef", "seq_aux_loss_coef", "bias_update_rate", "z_loss_coef"):
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                raise ValueError(f"MoEConfig.{name} must be a finite number >= 0, got {value!r}")

    @property
    def arch(self) -> Literal["dense", "moe"]:
        return "moe"

    def _mlp_params(self) -> int:
        """Router (d x E), every expert (E x 3 d d_ff) and the shared expert (3 d d_shared)."""
        d = self.d_model
        return d * self.n_experts + 3 * d * (self.n_experts * self.d_ff + self.shared_expert_d_ff)

    def _mlp_active_params(self) -> int:
        """Router, top_k experts and the shared expert."""
        d = self.d_model
        return d * self.n_experts + 3 * d * (self.top_k * self.d_ff + self.shared_expert_d_ff)


# ------------------------------------------------------------------------------------ training


class ConfigError(ValueError):
    """A bad config value: ``config`` and ``field`` name it, ``reason`` says what is wrong."""

    def __init__(self, config: str, field: str, reason: str) -> None:
        super().__init__(f"{config}.{field} {reason}")
        self.config, self.field, self.reason = config, field, reason

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (errors cross process boundaries)
        return type(self), (self.config, self.field, self.reason)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(value: object, kind: type[int] | type[float]) -> object:
    """numpy integers and floats as Python ones (configs are hashed as JSON); others unchanged."""
    if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool | int):
        return int(value)
    if kind is float and isinstance(value, numbers.Real) and not isinstance(value, bool | float):
        return float(value)
    return value


Schedule = Literal["cosine", "constant", "wsd"]
Device = Literal["auto", "cpu", "cuda"]
SCHEDULES: tuple[str, ...] = ("cosine", "constant", "wsd")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """How a proxy is trained (defaults match mixopt's ProxySpec)."""

    train_tokens: int
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio (ignored by "constant")
    warmup_ratio: float = 0.05  # fraction of steps with linear warmup
    schedule: Schedule = "cosine"  # "wsd": constant, then linear decay over the last stage
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global grad norm (per model); 0 turns clipping off
    eval_tokens: int = 32_768  # validation tokens per domain (whole windows, at least one)
    seed: int = 0
    device: Device = "auto"
    threads: int | None = None  # torch CPU threads; None leaves torch's setting alone
    micro_batch_size: int | None = None  # split each step's batch (gradient accumulation)
    eval_every: int = 0  # also evaluate every this many steps (0: only at the end)
    metrics: tuple[str, ...] = ()  # metric hooks (proxies.evaluate) run at every evaluation
    checkpoint_dir: str | None = None  # resume from / save to <checkpoint_dir>/checkpoint.pt
    checkpoint_every: int = 0  # steps between checkpoints (0: every tenth of the run)
    keep_checkpoint: bool = False  # keep the last checkpoint after a successful run
    compile: bool = False  # torch.compile the training step (CPU: eager without a C++ compiler)
    stages: tuple[StageConfig, ...] = ()  # mixture stages in order; () = one mixture throughout
    trunk_dir: str | None = None  # share the fixed leading stages' state here (proxies.branch)
    base: BaseConfig | None = None  # continual pretraining: start from this base proxy's weights
    init_from: str | None = None  # ... or from this checkpoint's weights (a file or its folder)

    def __post_init__(self) -> None:
        for name in _INT_FIELDS + _FLOAT_FIELDS:
            kind = int if name in _INT_FIELDS else float
            object.__setattr__(self, name, _plain(getattr(self, name), kind))
        problem = self._stage_problem() or self._problem()
        if problem is not None:
            raise ConfigError("TrainConfig", *problem)
        object.__setattr__(self, "metrics", tuple(self.metrics))  # lists from JSON/YAML
        for name in _PATH_FIELDS:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, os.fspath(getattr(self, name)))

    def _stage_problem(self) -> tuple[str, str] | None:
        """("stages" or "base", reason) when the stages or the base proxy are bad (coerced to
        StageConfigs and a BaseConfig otherwise)."""
        try:
            object.__setattr__(self, "stages", coerce_stages(self.stages))
        except ValueError as error:
            return "stages", str(error)
        if self.base is None:
            return None
        if self.init_from is not None:
            return "init_from", "and base both set: a run starts from one of them"
        try:
            object.__setattr__(self, "base", BaseConfig.coerce(self.base))
        except (TypeError, ValueError) as error:
            return "base", str(error)
        return None

    def stage_steps(self, n_steps: int) -> list[int]:
        """Optimizer steps of each stage (one stage of ``n_steps`` without stages); see
        :func:`stage_steps`."""
        return stage_steps([stage.share for stage in self.stages], n_steps)

    def _problem(self) -> tuple[str, str] | None:
        """(field, reason) of the first bad setting, or None."""
        for name in ("train_tokens", "batch_size", "eval_tokens"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                return name, f"must be an integer > 0, got {value!r}"
        for name, what in (
            ("seed", "it seeds numpy's generators"),
            ("eval_every", "0 = only at the end"),
            ("checkpoint_every", "0 = every tenth of the run"),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                return name, f"must be >= 0 (an integer; {what}), got {value!r}"
        if not is_finite(self.lr) or self.lr <= 0:
            return "lr", f"must be > 0 and finite, got {self.lr!r}"
        if not is_finite(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            return "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio!r}"
        if not is_finite(self.warmup_ratio) or not 0 <= self.warmup_ratio < 1:
            return "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio!r}"
        for name, what in (("weight_decay", ""), ("grad_clip", " (0 = off)")):
            value = getattr(self, name)
            if not is_finite(value) or value < 0:
                return name, f"must be >= 0 and finite{what}, got {value!r}"
        for name, valid in (("schedule", SCHEDULES), ("device", DEVICES)):
            if getattr(self, name) not in valid:
                choices = ", ".join(map(repr, valid))
                return name, f"must be one of {choices}, got {getattr(self, name)!r}"
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            return "threads", f"must be None or an integer >= 1, got {self.threads!r}"
        mb = self.micro_batch_size
        if mb is not None and (not _is_int(mb) or mb <= 0 or self.batch_size % mb):
            return "micro_batch_size", f"must divide batch_size ({self.batch_size}), got {mb!r}"
        if isinstance(self.metrics, str) or not all(isinstance(m, str) for m in self.metrics):
            return "metrics", f"must be a list of names, got {self.metrics!r}"
        for name in ("keep_checkpoint", "compile"):
            if not isinstance(getattr(self, name), bool):
                return name, f"must be a bool, got {getattr(self, name)!r}"
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | os.PathLike):
                return name, f"must be None or a path, got {value!r}"
        if self.checkpoint_dir is None:
            if self.checkpoint_every:
                return "checkpoint_every", "would need a checkpoint_dir, got none"
            if self.keep_checkpoint:
                return "keep_checkpoint", "would need a checkpoint_dir, got none"
        return None

    @property
    def micro_batches(self) -> int:
        return self.batch_size // (self.micro_batch_size or self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = list(self.metrics)
        out["stages"] = [stage.to_dict() for stage in self.stages]
        out["base"] = None if self.base is None else self.base.to_dict()
        return out


_PATH_FIELDS = ("checkpoint_dir", "trunk_dir", "init_from")
_INT_FIELDS = (
    "train_tokens", "batch_size", "eval_tokens", "seed", "threads", "micro_batch_size",
    "eval_every", "checkpoint_every",
)  # fmt: skip
_FLOAT_FIELDS = ("lr", "min_lr_ratio", "warmup_ratio", "weight_decay", "grad_clip")
