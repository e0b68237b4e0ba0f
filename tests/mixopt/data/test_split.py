"""The train/validation split planner, on synthetic document lengths."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.data.shards import MIN_VAL_TOKENS, document_key, plan_split, token_dtype


def keys_for(n: int) -> np.ndarray:
    return np.array([document_key(str(i).encode()) for i in range(n)], dtype=np.uint64)


def test_many_documents_hold_out_about_val_fraction() -> None:
    rng = np.random.default_rng(0)
    tokens = rng.integers(50, 500, size=5000)
    plan = plan_split(tokens, keys_for(5000), val_fraction=0.05, max_val_tokens=10**9)
    assert plan.method == "hash" and plan.val_docs is not None
    held = int(tokens[plan.val_docs].sum())
    assert 0.05 * tokens.sum() <= held <= 0.05 * tokens.sum() + 500
    again = plan_split(tokens, keys_for(5000), val_fraction=0.05, max_val_tokens=10**9)
    assert again.val_docs is not None and (again.val_docs == plan.val_docs).all()


def test_cap_is_respected() -> None:
    tokens = np.full(10_000, 100)
    plan = plan_split(tokens, keys_for(10_000), val_fraction=0.2, max_val_tokens=5_000)
    assert plan.val_docs is not None and int(tokens[plan.val_docs].sum()) == 5_000


def test_small_domain_gets_the_floor() -> None:
    tokens = np.full(400, 100)  # 40k tokens: 5% would be 2000 < MIN_VAL_TOKENS
    plan = plan_split(tokens, keys_for(400), val_fraction=0.05, max_val_tokens=10**6)
    assert plan.val_docs is not None
    assert MIN_VAL_TOKENS <= int(tokens[plan.val_docs].sum()) < 1.5 * MIN_VAL_TOKENS


def test_identical_documents_land_on_the_same_side() -> None:
    keys = np.array([document_key(b"same")] * 50 + list(keys_for(950)), dtype=np.uint64)
    plan = plan_split(np.full(1000, 100), keys, val_fraction=0.1, max_val_tokens=10**6)
    assert plan.val_docs is not None
    assert len(set(plan.val_docs[:50].tolist())) == 1


@pytest.mark.parametrize("sizes", [[1_000_000], [400_000, 600_000], [10, 999_990]])
def test_few_big_documents_fall_back_to_the_tail(sizes: list[int]) -> None:
    tokens = np.array(sizes)
    plan = plan_split(tokens, keys_for(len(sizes)), val_fraction=0.05, max_val_tokens=20_000)
    assert plan.method == "tail" and plan.tail_tokens == 20_000


def test_tiny_domain_still_has_both_splits() -> None:
    plan = plan_split(np.array([3]), keys_for(1), val_fraction=0.05, max_val_tokens=1000)
    assert plan.method == "tail" and plan.tail_tokens == 1


def test_token_dtype() -> None:
    assert token_dtype(4096) == token_dtype(65536) == "uint16"
    assert token_dtype(65537) == "uint32"
