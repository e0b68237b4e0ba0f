"""The train/validation split planner, on synthetic document lengths (and on real shards)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.data import prepare_data
from mixopt.data.encode import document_key
from mixopt.data.shard_writer import token_dtype
from mixopt.data.split import MIN_VAL_TOKENS, plan_split, plan_split_indices

from .conftest import CORPUS, LogCollector, MakeSpec, corpus_domains


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


def reference_split(
    tokens: np.ndarray, keys: np.ndarray, val_fraction: float, max_val_tokens: int
) -> tuple[str, list[int], int]:
    """The planner as first written: sort every document by key, greedy in that order."""
    total = int(tokens.sum())
    floor = min(MIN_VAL_TOKENS, max_val_tokens, total // 4)
    want = min(max_val_tokens, max(floor, math.ceil(val_fraction * total)))
    limit = min(max_val_tokens, want + want // 2)
    held, chosen = 0, []
    for i in np.argsort(keys, kind="stable").tolist():
        if held >= want:
            break
        if held + int(tokens[i]) <= limit:
            chosen.append(i)
            held += int(tokens[i])
    if held >= max(want // 2, 1) and held < total:
        return "hash", sorted(chosen), 0
    return "tail", [], max(1, min(want, total - 1))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=400),
    duplicates=st.integers(0, 30),
    val_fraction=st.floats(0.001, 0.4),
    max_val_tokens=st.integers(1, 50_000),
)
def test_bounded_planner_equals_sorting_everything(
    sizes: list[int], duplicates: int, val_fraction: float, max_val_tokens: int
) -> None:
    tokens = np.array(sizes, dtype=np.int64)
    keys = keys_for(len(sizes))
    keys[: min(duplicates, len(keys))] = keys[0]  # identical documents share a key
    method, docs, tail = plan_split_indices(tokens, keys, val_fraction, max_val_tokens)
    assert (method, docs.tolist(), tail) == reference_split(
        tokens, keys, val_fraction, max_val_tokens
    )


def test_index_chunking_does_not_change_the_shards(
    make_spec: MakeSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "bible.txt"
    big.write_text("".join(p.read_text() for p in sorted((CORPUS / "bible").glob("*.txt"))))
    domains = [*corpus_domains()[:2], {"name": "one_file", "paths": [str(big)]}]
    plain = prepare_data(make_spec(domains, cache_dir=tmp_path / "a"), log=LogCollector())
    monkeypatch.setattr("mixopt.data.docindex._INDEX_CHUNK", 3)
    chunked = prepare_data(make_spec(domains, cache_dir=tmp_path / "b"), log=LogCollector())
    assert {d.split for d in chunked.domains.values()} == {"hash", "tail"}
    for name, shards in plain.domains.items():
        other = chunked.domains[name]
        assert Path(shards.train_path).read_bytes() == Path(other.train_path).read_bytes()
        assert Path(shards.val_path).read_bytes() == Path(other.val_path).read_bytes()
        assert (shards.val_bytes, shards.train_bytes) == (other.val_bytes, other.train_bytes)
