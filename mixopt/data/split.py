"""The train/validation split of a domain: whole documents chosen by content key, or the tail.

The plan is made on the document index (token counts and content keys, see
:mod:`mixopt.data.docindex`) before any token is copied, and only the documents that can be held
out are ever loaded, so memory grows with the validation set, not with the domain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mixopt.data.docindex import column_sum, keys_below

MIN_VAL_TOKENS = 4096
"""Validation aims for at least this many tokens (if the domain has four times as many)."""


@dataclass(frozen=True)
class SplitPlan:
    """Which tokens are held out: whole documents (``val_docs``) or the last ``tail_tokens``."""

    method: Literal["hash", "tail"]
    val_docs: np.ndarray | None = None
    tail_tokens: int = 0


def plan_split(
    tokens: np.ndarray, keys: np.ndarray, val_fraction: float, max_val_tokens: int
) -> SplitPlan:
    """Choose the validation documents by content key, or fall back to the stream's tail.

    The aim is ``want = min(max_val_tokens, max(floor, val_fraction * total))`` tokens, where
    ``floor = min(MIN_VAL_TOKENS, max_val_tokens, total // 4)`` (a few thousand tokens whenever
    the domain has them). Documents are held out in order of their content key (a uniform 64-bit
    hash, so this is a random, deterministic choice spread over the whole domain, and duplicate
    documents land on the same side) until ``want`` is reached; a document that would take the
    held-out tokens past ``min(max_val_tokens, 1.5 * want)`` is passed over. When whole documents
    cannot reach half of ``want`` (a domain of a few big files), or would leave nothing to train
    on, the last ``want`` tokens of the stream are held out instead.

    ``val_docs`` is a boolean mask over the documents; see :func:`plan_split_indices` for the
    same plan as indices, computed in bounded memory.
    """
    method, docs, tail = plan_split_indices(tokens, keys, val_fraction, max_val_tokens)
    if method == "tail":
        return SplitPlan("tail", tail_tokens=tail)
    mask = np.zeros(len(tokens), dtype=bool)
    mask[docs] = True
    return SplitPlan("hash", val_docs=mask)


def plan_split_indices(
    tokens: np.ndarray, keys: np.ndarray, val_fraction: float, max_val_tokens: int
) -> tuple[Literal["hash", "tail"], np.ndarray, int]:
    """:func:`plan_split` as ``(method, sorted held-out document indices, tail tokens)``.

    Only documents whose key falls below a threshold are loaded and sorted: keys are uniform, so
    a threshold ``t`` holds about ``total * t / 2**64`` tokens; it starts at four times the most
    that can be held out and is raised until the greedy choice completes inside it. The result is
    the same as sorting every document (the greedy only ever looks at a prefix of the key order),
    while memory grows with the validation set, not with the domain.
    """
    total = column_sum(tokens)
    floor = min(MIN_VAL_TOKENS, max_val_tokens, total // 4)
    want = min(max_val_tokens, max(floor, math.ceil(val_fraction * total)))
    limit = min(max_val_tokens, want + want // 2)
    fraction = min(1.0, 4.0 * limit / max(total, 1))
    while True:
        candidates = keys_below(keys, fraction)
        order = candidates[np.argsort(np.asarray(keys[candidates]), kind="stable")]
        chosen: list[int] = []
        held = 0
        for i, size in zip(order.tolist(), np.asarray(tokens[order]).tolist(), strict=True):
            if held >= want:
                break
            if held + size <= limit:
                chosen.append(i)
                held += size
        if held >= want or fraction >= 1.0:
            break
        fraction = min(1.0, 4.0 * fraction)
    if held >= max(want // 2, 1) and held < total:
        return "hash", np.sort(np.array(chosen, dtype=np.int64)), 0
    return "tail", np.zeros(0, dtype=np.int64), max(1, min(want, total - 1))
