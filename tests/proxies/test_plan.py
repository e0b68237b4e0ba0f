"""The stacked-or-sequential plan for a group of trials."""

from __future__ import annotations

import pytest

from proxies.plan import GROUP_FLOPS, plan_group, step_flops, training_memory_bytes
from proxies.presets import get_preset

TINY = get_preset("tiny", vocab_size=4096, seq_len=128)
M1 = get_preset("1m", vocab_size=4096, seq_len=128)
M60 = get_preset("60m", vocab_size=4096, seq_len=1024)
GIB = 1 << 30


def test_cpu_trains_one_at_a_time() -> None:
    plan = plan_group(TINY, batch_size=16, n_trials=16, device="cpu")
    assert plan.mode == "sequential" and plan.group_size == 1 and "CPU" in plan.reason


def test_cuda_stacks_small_proxies_up_to_max_group() -> None:
    plan = plan_group(M1, batch_size=16, n_trials=40, device="cuda", free_memory=80 * GIB)
    assert plan.mode == "stacked" and plan.group_size == 16
    assert (
        plan_group(M1, batch_size=16, n_trials=5, device="cuda", free_memory=80 * GIB).group_size
        == 5
    )
    smaller = plan_group(
        M1, batch_size=16, n_trials=40, device="cuda", max_group=8, free_memory=80 * GIB
    )
    assert smaller.group_size == 8


def test_cuda_groups_are_sized_by_work_and_memory() -> None:
    cfg = get_preset("20m", vocab_size=4096, seq_len=128)
    work = step_flops(cfg, 16)
    plan = plan_group(cfg, batch_size=16, n_trials=64, device="cuda", free_memory=80 * GIB)
    assert plan.mode == "stacked" and plan.group_size == int(GROUP_FLOPS // work) == 14
    memory = training_memory_bytes(M1, 16)
    tight = plan_group(
        M1, batch_size=16, n_trials=16, device="cuda", free_memory=int(3.4 * memory / 0.6)
    )
    assert tight.group_size == 3
    none_fit = plan_group(M1, batch_size=16, n_trials=16, device="cuda", free_memory=memory)
    assert none_fit.mode == "sequential" and "memory" in none_fit.reason


def test_cuda_leaves_big_proxies_alone() -> None:
    plan = plan_group(M60, batch_size=32, n_trials=8, device="cuda", free_memory=80 * GIB)
    assert plan.mode == "sequential" and "busy" in plan.reason


def test_policies_and_errors() -> None:
    assert plan_group(TINY, batch_size=16, n_trials=8, device="cpu", policy="on").mode == "stacked"
    off = plan_group(
        M1, batch_size=16, n_trials=8, device="cuda", policy="off", free_memory=80 * GIB
    )
    assert off.mode == "sequential"
    assert (
        plan_group(TINY, batch_size=16, n_trials=1, device="cuda", policy="on").mode == "sequential"
    )
    with pytest.raises(ValueError, match="stacking policy"):
        plan_group(TINY, batch_size=16, n_trials=2, policy="always")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 1"):
        plan_group(TINY, batch_size=16, n_trials=0)


def test_memory_estimate_grows_with_size_and_experts() -> None:
    moe = get_preset("1m", vocab_size=4096, seq_len=128, arch="moe")
    assert (
        training_memory_bytes(M1, 32)
        > training_memory_bytes(M1, 16)
        > training_memory_bytes(TINY, 16)
    )
    assert training_memory_bytes(moe, 16) > training_memory_bytes(M1, 16)
    assert training_memory_bytes(M1, 16) >= 16 * M1.total_params()
