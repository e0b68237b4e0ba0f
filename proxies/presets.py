"""Named proxy sizes: plain functions returning a GPTConfig for a vocabulary and context length.

Non-embedding parameter counts (GPTConfig.non_embedding_params; the embedding/head adds
vocab_size x d_model, e.g. 0.26M for tiny at vocab 4096):

=======  ======  =====  =======  =====  ===============  ==========================================
name     layers  d      heads    d_ff   non-embedding    note
=======  ======  =====  =======  =====  ===============  ==========================================
tiny     2       64     4        256    0.13M            fast on one CPU thread (demo proxy)
small    3       128    4        256    0.49M
1m       2       256    8        512    1.31M            RegMix's "1M" proxy (same shape, SwiGLU)
5m       6       256    8        768    5.1M
20m      6       512    8        1408   19.3M
60m      10      768    12       1536   59M              RegMix's "60M" width/depth class
=======  ======  =====  =======  =====  ===============  ==========================================

``get_preset("1m", vocab_size=4096, seq_len=256, tie_embeddings=False)`` returns the preset with
fields replaced; unknown names and unknown fields raise ValueError listing the valid ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from proxies.config import GPTConfig


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
    "tiny": tiny,
    "small": small,
    "1m": gpt_1m,
    "5m": gpt_5m,
    "20m": gpt_20m,
    "60m": gpt_60m,
}


def get_preset(name: str, *, vocab_size: int, seq_len: int, **overrides: Any) -> GPTConfig:
    """The preset ``name`` for this vocabulary and context, with ``overrides`` replacing fields."""
    if name not in PRESETS:
        raise ValueError(f"unknown proxy preset {name!r}; valid presets: {', '.join(PRESETS)}")
    cfg = PRESETS[name](vocab_size, seq_len)
    fields = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown GPTConfig field(s) {', '.join(map(repr, unknown))} in overrides; "
            f"valid fields: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
