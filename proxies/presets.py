"""Named proxy sizes: plain functions returning a model config for a vocabulary and context length.

Dense presets (``arch="dense"``, a GPTConfig). Non-embedding parameter counts
(GPTConfig.non_embedding_params; the embedding/head adds vocab_size x d_model, e.g. 0.26M for
tiny at vocab 4096):

=======  ======  =====  =======  =====  ===============  ==========================================
name     layers  d      heads    d_ff   non-embedding    note
=======  ======  =====  =======  =====  ===============  ==========================================
nano     2       32     2        128    0.033M           scale-ladder rung below tiny (CPU grids)
micro    2       48     4        192    0.074M           scale-ladder rung between nano and tiny
tiny     2       64     4        256    0.13M            fast on one CPU thread (demo proxy)
small    3       128    4        256    0.49M
1m       2       256    8        512    1.31M            RegMix's "1M" proxy (same shape, SwiGLU)
5m       6       256    8        768    5.1M
20m      6       512    8        1408   19.3M
60m      10      768    12       1536   59M              RegMix's "60M" width/depth class
=======  ======  =====  =======  =====  ===============  ==========================================

MoE presets (``arch="moe"``, a MoEConfig) have the same names and the dense preset's attention,
depth and width, with each MLP replaced by 8 experts of half the dense hidden width, top-2
routing: the *active* parameters and FLOPs per token match the dense preset (plus a d x 8 router
per layer) while the total is about 3x. Defaults: Switch auxiliary loss over the global batch
(coefficient 0.01), router z-loss 1e-3, no shared expert.

=======  ==========  ===============  ===============
name     expert d_ff non-embedding    active
=======  ==========  ===============  ===============
nano     64          0.11M            0.033M
micro    96          0.25M            0.074M
tiny     128         0.43M            0.13M
small    128         1.38M            0.50M
1m       256         3.68M            1.32M
5m       384         15.7M            5.1M
20m      704         58.2M            19.3M
60m      768         165M             59M
=======  ==========  ===============  ===============

``get_preset("1m", vocab_size=4096, seq_len=256, tie_embeddings=False)`` returns the preset with
fields replaced (``arch="moe"`` for the MoE variant; MoE fields such as ``n_experts`` or
``balance`` are overrides too); unknown names and unknown fields raise ValueError listing the valid
ones. This module does not import torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from proxies.config import GPTConfig, MoEConfig


def nano(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=2, n_head=2, d_model=32, d_ff=128)


def micro(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=2, n_head=4, d_model=48, d_ff=192)


def tiny(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=2, n_head=4, d_model=64, d_ff=256)


def small(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=3, n_head=4, d_model=128, d_ff=256)


def gpt_1m(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=2, n_head=8, d_model=256, d_ff=512)


def gpt_5m(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=6, n_head=8, d_model=256, d_ff=768)


def gpt_20m(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=6, n_head=8, d_model=512, d_ff=1408)


def gpt_60m(vocab_size: int, seq_len: int) -> GPTConfig:
    return GPTConfig(vocab_size, seq_len, n_layer=10, n_head=12, d_model=768, d_ff=1536)


PRESETS: dict[str, Callable[[int, int], GPTConfig]] = {
    "nano": nano,
    "micro": micro,
    "tiny": tiny,
    "small": small,
    "1m": gpt_1m,
    "5m": gpt_5m,
    "20m": gpt_20m,
    "60m": gpt_60m,
}

ARCHS = ("dense", "moe")
MOE_EXPERTS, MOE_TOP_K = 8, 2


def moe_preset(name: str, vocab_size: int, seq_len: int) -> MoEConfig:
    """The MoE variant of dense preset ``name``: 8 experts of half the dense d_ff, top-2."""
    dense = PRESETS[name](vocab_size, seq_len)
    return MoEConfig(
        **{**dense.to_dict(), "d_ff": dense.d_ff // MOE_TOP_K},
        n_experts=MOE_EXPERTS,
        top_k=MOE_TOP_K,
    )


def get_preset(
    name: str, *, vocab_size: int, seq_len: int, arch: str = "dense", **overrides: Any
) -> GPTConfig:
    """The preset ``name`` of ``arch`` for this vocabulary and context, ``overrides`` replacing
    fields (a MoEConfig when ``arch="moe"``)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown proxy arch {arch!r}; valid archs: {', '.join(ARCHS)}")
    if name not in PRESETS:
        raise ValueError(f"unknown proxy preset {name!r}; valid presets: {', '.join(PRESETS)}")
    cfg = (
        PRESETS[name](vocab_size, seq_len)
        if arch == "dense"
        else moe_preset(name, vocab_size, seq_len)
    )
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        kind = type(cfg).__name__
        raise ValueError(
            f"unknown {kind} field(s) {', '.join(map(repr, unknown))} in overrides; "
            f"valid fields: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
