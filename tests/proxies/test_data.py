"""Token files, mixture batches and validation windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from proxies.data import DomainTokens, MixtureBatches, ValidationWindows, check_weights

from .conftest import MakeDomain


def counting(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint32)


def test_domain_tokens_validation(make_domain: MakeDomain, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        DomainTokens("a", "x", "y", dtype="int8")  # type: ignore[arg-type]
    d = make_domain("a", np.arange(10), np.arange(3))
    assert d.num_tokens("train") == 10 and d.num_tokens("val") == 3
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="not a multiple"):
        DomainTokens("odd", odd, odd).num_tokens("train")
    with pytest.raises(ValueError, match="does not exist"):
        DomainTokens("missing", tmp_path / "nope", odd).num_tokens("train")


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"a": 0.5, "b": 0.6}, "sum to 1"),
        ({"a": 1.2, "b": -0.2}, ">= 0"),
        ({"a": float("nan"), "b": 1.0}, ">= 0"),
        ({"a": 0.5, "b": 0.25, "c": 0.25}, "unknown domain"),
        ({}, "sum to 1"),
    ],
)
def test_bad_weights(make_domain: MakeDomain, weights: dict[str, float], message: str) -> None:
    domains = [make_domain(n, np.arange(100), np.arange(100)) for n in ("a", "b")]
    with pytest.raises(ValueError, match=message):
        MixtureBatches(domains, weights, seq_len=8, batch_size=2, seed=0)


def test_weights_missing_domain_is_zero_and_duplicates_fail(make_domain: MakeDomain) -> None:
    a, b = (make_domain(n, np.arange(100), np.arange(100)) for n in ("a", "b"))
    assert check_weights([a, b], {"a": 1.0}).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="duplicate"):
        check_weights([a, a], {"a": 1.0})


def test_batches_are_contiguous_windows(make_domain: MakeDomain) -> None:
    d = make_domain("a", counting(5000), counting(100), dtype="uint32")
    batches = MixtureBatches([d], {"a": 1.0}, seq_len=16, batch_size=8, seed=0)
    starts = []
    for _ in range(200):
        batch = next(batches)
        assert batch.shape == (8, 17) and batch.dtype == torch.int64
        assert (batch.diff(dim=1) == 1).all()  # each row is a slice of the file
        starts.extend(batch[:, 0].tolist())
    assert min(starts) >= 0 and max(starts) <= 5000 - 17
    assert min(starts) < 100 and max(starts) > 5000 - 17 - 100  # spread over the whole file


def test_same_seed_same_stream_other_seed_differs(make_domain: MakeDomain) -> None:
    domains = [
        make_domain(n, counting(3000) + 10_000 * i, counting(50), dtype="uint32")
        for i, n in enumerate("abc")
    ]
    weights = {"a": 0.2, "b": 0.3, "c": 0.5}

    def stream(seed: int) -> list[torch.Tensor]:
        it = MixtureBatches(domains, weights, seq_len=8, batch_size=4, seed=seed)
        return [next(it) for _ in range(10)]

    first, again, other = stream(1), stream(1), stream(2)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(first, other, strict=True))


def test_nearby_mixtures_share_most_of_their_stream(make_domain: MakeDomain) -> None:
    """Common random numbers: a small change of weights changes only a few windows."""
    domains = [
        make_domain(n, counting(5000) + 10_000 * i, counting(50), dtype="uint32")
        for i, n in enumerate("abc")
    ]

    def windows(weights: dict[str, float]) -> set[tuple[int, ...]]:
        it = MixtureBatches(domains, weights, seq_len=8, batch_size=16, seed=3)
        return {tuple(row.tolist()) for _ in range(50) for row in next(it)}

    base = windows({"a": 0.30, "b": 0.30, "c": 0.40})
    near = windows({"a": 0.31, "b": 0.30, "c": 0.39})
    far = windows({"a": 0.60, "b": 0.10, "c": 0.30})
    assert len(base & near) / len(base) > 0.9
    assert len(base & far) / len(base) < len(base & near) / len(base)


def test_domain_proportions_follow_weights(make_domain: MakeDomain) -> None:
    weights = {"a": 0.6, "b": 0.3, "c": 0.1, "zero": 0.0}
    domains = [make_domain(n, np.full(200, i), np.full(200, i)) for i, n in enumerate(weights)]
    it = MixtureBatches(domains, weights, seq_len=8, batch_size=50, seed=0)
    rows = torch.cat([next(it)[:, 0] for _ in range(200)])  # 10,000 sequences
    counts = torch.bincount(rows, minlength=4).double() / len(rows)
    assert counts[3] == 0  # the zero-weight domain is never drawn
    np.testing.assert_allclose(counts[:3].numpy(), [0.6, 0.3, 0.1], atol=0.02)


def test_zero_weight_domain_may_be_short_positive_may_not(make_domain: MakeDomain) -> None:
    long = make_domain("long", np.arange(100), np.arange(100))
    short = make_domain("short", np.arange(5), np.arange(5))
    empty = make_domain("empty", np.zeros(0), np.zeros(0))
    MixtureBatches([long, short, empty], {"long": 1.0, "short": 0.0}, 16, 2, seed=0)
    with pytest.raises(ValueError, match="'short' has weight > 0 but only 5 train tokens"):
        MixtureBatches([long, short], {"long": 0.5, "short": 0.5}, 16, 2, seed=0)
    with pytest.raises(ValueError, match="'empty'"):
        MixtureBatches([long, empty], {"long": 0.5, "empty": 0.5}, 16, 2, seed=0)
    # exactly seq_len + 1 tokens is enough
    MixtureBatches([make_domain("exact", np.arange(17), np.arange(17))], {"exact": 1.0}, 16, 2, 0)


def test_validation_windows_fixed_and_non_overlapping(make_domain: MakeDomain) -> None:
    d = make_domain("a", counting(10), counting(1000), dtype="uint32", val_bytes=4000)
    windows = ValidationWindows([d], seq_len=9, eval_tokens=35)  # 35 // 10 = 3 windows
    w = windows.windows["a"]
    np.testing.assert_array_equal(w, np.arange(30).reshape(3, 10))  # from the start, disjoint
    assert windows.predicted_tokens("a") == 27 and windows.window_tokens("a") == 30
    assert windows.bytes_evaluated("a") == pytest.approx(4000 * 30 / 1000)
    again = ValidationWindows([d], seq_len=9, eval_tokens=35)
    np.testing.assert_array_equal(again.windows["a"], w)
    batches = list(windows.batches("a", batch_size=2))
    assert [b.shape for b in batches] == [(2, 10), (1, 10)]
    assert batches[0].dtype == torch.int64


def test_validation_windows_limits(make_domain: MakeDomain) -> None:
    d = make_domain("a", counting(10), counting(25), dtype="uint32")
    assert ValidationWindows([d], seq_len=9, eval_tokens=1).windows["a"].shape == (1, 10)
    assert ValidationWindows([d], seq_len=9, eval_tokens=10**6).windows["a"].shape == (2, 10)
    short = make_domain("short", counting(10), counting(9), dtype="uint32")
    with pytest.raises(ValueError, match="'short': val file has 9 tokens"):
        ValidationWindows([d, short], seq_len=9, eval_tokens=100)


def test_stream_state_resumes_the_same_batches(make_domain: MakeDomain) -> None:
    domains = [
        make_domain(n, counting(3000) + 10_000 * i, counting(50), dtype="uint32")
        for i, n in enumerate("ab")
    ]
    weights = {"a": 0.4, "b": 0.6}
    stream = MixtureBatches(domains, weights, seq_len=8, batch_size=4, seed=1)
    for _ in range(3):
        next(stream)
    state = stream.state()
    expected = [next(stream) for _ in range(5)]
    fresh = MixtureBatches(domains, weights, seq_len=8, batch_size=4, seed=1)
    fresh.set_state(state)
    assert all(
        torch.equal(x, y) for x, y in zip(expected, (next(fresh) for _ in range(5)), strict=True)
    )
    with pytest.raises(ValueError, match="not a MixtureBatches stream state"):
        fresh.set_state({"choice": 1})
