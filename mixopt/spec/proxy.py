"""The proxy section: the model trained on each candidate mixture, and how it is trained."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from mixopt.spec.section import Section

if TYPE_CHECKING:
    from proxies.config import BaseConfig, GPTConfig, StageConfig, TrainConfig


class ProxySpec(Section):
    """The proxy model trained on each candidate mixture, and how it is trained.

    ``arch: moe`` swaps every MLP of the preset for 8 experts of half its width, top-2 routed
    (same active FLOPs); MoE settings (``n_experts``, ``top_k``, ``shared_expert_d_ff``,
    ``balance: aux_loss | aux_free | none``, ``aux_scope: micro | global``, ``aux_loss_coef``,
    ``z_loss_coef``, ...) go in ``overrides`` like any other model field (see
    ``proxies.config.MoEConfig``). Preset, arch and overrides are checked here, without torch.
    """

    arch: Literal["dense", "moe"] = Field("dense", description="dense GPT or Mixture-of-Experts.")
    preset: str = Field("tiny", description="A preset in proxies.presets (e.g. tiny, 1m).")
    overrides: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="Model fields that replace the preset's."
    )
    seq_len: int = Field(128, ge=8, le=65_536)
    batch_size: int = Field(16, ge=1)
    train_tokens: int = Field(500_000, gt=0, description="Tokens each proxy trains on.")
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    schedule: Literal["cosine", "constant", "wsd"] = Field(
        "cosine",
        description="Learning rate after warmup: cosine decay, constant, or wsd (constant, then "
        "linear decay to zero over the last stage: the whole run without stages).",
    )
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, ge=0)
    eval_tokens: int = Field(32_768, gt=0, description="Validation tokens per domain.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    micro_batch_size: int | None = Field(
        None, ge=1, description="Split each step's batch (gradient accumulation); must divide it."
    )
    eval_every: int = Field(
        0, ge=0, description="Also evaluate every this many steps (0 = only at the end)."
    )
    metrics: list[str] = Field(
        default_factory=list,
        description="Metric hooks run at each evaluation: registered names or 'module:function'.",
    )
    checkpoint_every: int = Field(
        0, ge=0, description="Steps between resumable trial checkpoints (0 = no checkpoints)."
    )
    compile: bool = Field(
        False,
        description="torch.compile the training step (on CPU it needs a C++ compiler and trains "
        "eagerly, with a warning, without one; it does not pay at CPU proxy sizes).",
    )
    stacking: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Train trials of one shape together as one stacked model: 'auto' where the "
        "benchmark says it is faster (GPU, small proxies), 'on' always, 'off' never.",
    )
    max_stack: int = Field(16, ge=1, le=256, description="Most trials stacked in one process.")

    @model_validator(mode="after")
    def _builds(self) -> ProxySpec:
        """The model and training configs must build: their own checks are the spec's."""
        fixed = sorted({"vocab_size", "seq_len"} & set(self.overrides))
        if fixed:
            raise ValueError(
                f"overrides cannot set {', '.join(fixed)}: seq_len is proxy.seq_len and "
                "vocab_size comes from the tokenizer"
            )
        from proxies.config import ConfigError

        try:
            self.gpt_config(vocab_size=256)
            self.train_config()
        except ConfigError as error:  # the training config names its field as the spec does
            raise ValueError(f"{error.field} {error.reason}") from None
        except (TypeError, ValueError) as error:
            raise ValueError(str(error)) from None
        return self

    @property
    def fidelity(self) -> str:
        """The proxy's name in the runs table's ``fidelity`` column: ``arch:preset:tokens``."""
        return f"{self.arch}:{self.preset}:{self.train_tokens}"

    def gpt_config(self, vocab_size: int) -> GPTConfig:
        """The proxy's model (a GPTConfig, or a MoEConfig for ``arch: moe``) for a vocabulary."""
        from proxies.presets import get_preset  # torch-free

        return get_preset(
            self.preset,
            vocab_size=vocab_size,
            seq_len=self.seq_len,
            arch=self.arch,
            **self.overrides,
        )

    @property
    def steps(self) -> int:
        """Optimizer steps of one trial: ``ceil(train_tokens / (batch_size * seq_len))``."""
        return math.ceil(self.train_tokens / (self.batch_size * self.seq_len))

    def train_config(
        self,
        *,
        seed: int = 0,
        threads: int | None = None,
        checkpoint_dir: str | None = None,
        stages: Sequence[StageConfig] = (),
        trunk_dir: str | None = None,
        base: BaseConfig | None = None,
        init_from: str | None = None,
    ) -> TrainConfig:
        """How one trial trains; ``checkpoint_dir`` is used when ``checkpoint_every`` > 0;
        ``stages`` are the job's (``JobSpec.train_stages``; none: one mixture); ``trunk_dir``
        is the job's folder of shared trunks (``proxies.branch``), never the spec's; ``base``
        the continual-pretraining base proxy (``mixopt.spec.continual``)."""
        from proxies.config import TrainConfig  # torch-free

        checkpoints = self.checkpoint_every > 0 and checkpoint_dir is not None
        return TrainConfig(
            train_tokens=self.train_tokens,
            batch_size=self.batch_size,
            lr=self.lr,
            min_lr_ratio=self.min_lr_ratio,
            warmup_ratio=self.warmup_ratio,
            schedule=self.schedule,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            eval_tokens=self.eval_tokens,
            seed=seed,
            device=self.device,
            threads=threads,
            micro_batch_size=self.micro_batch_size,
            eval_every=self.eval_every,
            metrics=tuple(self.metrics),
            checkpoint_dir=checkpoint_dir if checkpoints else None,
            checkpoint_every=self.checkpoint_every if checkpoints else 0,
            compile=self.compile,
            stages=tuple(stages),
            trunk_dir=trunk_dir,
            base=base,
            init_from=init_from,
        )

    def size(self) -> tuple[int, int]:
        """(non-embedding parameters, training tokens): how large a proxy this is."""
        return self.gpt_config(vocab_size=256).non_embedding_params(), self.train_tokens

    def scaled_up(self, factor: float) -> ProxySpec:
        """A proxy at least ``factor`` times larger in non-embedding parameters and tokens: the
        smallest preset of the same arch that is large enough (the largest when none is), on
        ``factor`` times the tokens, with this proxy's learning rate carried over (Step Law)."""
        from proxies.presets import PRESETS

        params = self.size()[0]
        candidates = []
        for name in PRESETS:
            try:
                candidate = self.replace(preset=name)
            except ValueError:  # an override that does not fit that preset
                continue
            candidates.append((candidate.size()[0], name, candidate))
        candidates.sort(key=lambda c: c[0])
        large = [c for c in candidates if c[0] >= factor * params] or candidates[-1:]
        tokens = math.ceil(factor * self.train_tokens)
        return large[0][2].replace(train_tokens=tokens).with_lr_from(self)

    def with_lr_from(self, anchor: ProxySpec) -> ProxySpec:
        """This proxy with ``anchor``'s learning rate carried to its own size and tokens by the
        Step Law's N exponent (:func:`proxies.hparams.transfer_lr`); unchanged when the sizes are
        equal. The batch stays fixed across proxies, where the law's D exponent does not hold
        (``FIXED_BATCH_EXPONENTS``)."""
        from proxies.hparams import FIXED_BATCH_EXPONENTS, transfer_lr

        (n_from, d_from), (n_to, d_to) = anchor.size(), self.size()
        if (n_from, d_from) == (n_to, d_to):
            return self.replace(lr=anchor.lr)
        return self.replace(
            lr=transfer_lr(anchor.lr, n_from, d_from, n_to, d_to, exponents=FIXED_BATCH_EXPONENTS)
        )

    def replace(self, **changes: Any) -> ProxySpec:
        """This proxy with some fields replaced (validated again)."""
        return ProxySpec.model_validate({**self.model_dump(), **changes})
