"""The proxies' loader over real shards: deterministic mixture streams, EOT-separated documents,
a fixed validation slice (the loader is ``proxies.data``; these tests pin what the data stage
relies on)."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.data import DataManifest, prepare_data

from .conftest import LogCollector, MakeSpec

data = pytest.importorskip("proxies.data")


def domain_tokens(manifest: DataManifest) -> list:  # type: ignore[type-arg]
    return [
        data.DomainTokens(
            name=s.name,
            train_path=s.train_path,
            val_path=s.val_path,
            dtype=s.dtype,
            train_bytes=s.train_bytes,
            val_bytes=s.val_bytes,
        )
        for s in manifest.domains.values()
    ]


def stream(manifest: DataManifest, weights: dict[str, float], seed: int, n: int = 6) -> np.ndarray:
    batches = data.MixtureBatches(
        domain_tokens(manifest), weights, seq_len=32, batch_size=8, seed=seed
    )
    return np.stack([batches.sample()[0] for _ in range(n)])


def test_same_seed_and_mixture_give_the_same_stream(make_spec: MakeSpec) -> None:
    manifest = prepare_data(make_spec(), log=LogCollector())
    mix = {"code": 0.5, "bible": 0.3, "dictionary": 0.2}
    a, b = stream(manifest, mix, seed=7), stream(manifest, mix, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stream(manifest, mix, seed=8))
    # common random numbers: a nearby mixture picks the same domain for almost every row
    near = data.MixtureBatches(
        domain_tokens(manifest),
        {"code": 0.48, "bible": 0.32, "dictionary": 0.2},
        seq_len=32,
        batch_size=8,
        seed=7,
    )
    base = data.MixtureBatches(domain_tokens(manifest), mix, seq_len=32, batch_size=8, seed=7)
    names = [[d.name for d in b.domains] for b in (base, near)]
    picks = [
        [names[i][j] for _ in range(20) for j in b.sample()[1]] for i, b in enumerate((base, near))
    ]
    agree = np.mean([x == y for x, y in zip(*picks, strict=True)])
    assert agree > 0.9


def test_nearby_mixtures_share_most_windows(make_spec: MakeSpec) -> None:
    manifest = prepare_data(make_spec(), log=LogCollector())
    a = stream(manifest, {"code": 0.5, "bible": 0.3, "dictionary": 0.2}, seed=7, n=20)
    near = stream(manifest, {"code": 0.48, "bible": 0.32, "dictionary": 0.2}, seed=7, n=20)
    assert (a == near).all(axis=-1).mean() > 0.9


def test_rows_are_windows_of_the_chosen_domain(make_spec: MakeSpec) -> None:
    manifest = prepare_data(make_spec(), log=LogCollector())
    batches = data.MixtureBatches(
        domain_tokens(manifest), {"code": 0.5, "bible": 0.5}, seq_len=16, batch_size=16, seed=0
    )
    trains = [np.asarray(s.tokens("train")) for s in manifest.domains.values()]
    for _ in range(3):
        batch, which = batches.sample()
        for row, d in zip(batch, which, strict=True):
            name = batches.domains[d].name
            source = trains[list(manifest.domains).index(name)]
            starts = np.flatnonzero(source[: len(source) - 16] == row[0])
            assert any((source[s : s + 17] == row).all() for s in starts)
    # documents in the shards are separated by the end-of-text id
    for shards in manifest.domains.values():
        train = shards.tokens("train")
        assert train[-1] == manifest.eot_id and (train == manifest.eot_id).sum() >= 1


def test_validation_is_a_fixed_slice(make_spec: MakeSpec) -> None:
    manifest = prepare_data(make_spec(), log=LogCollector())
    a = data.ValidationWindows(domain_tokens(manifest), seq_len=32, eval_tokens=1000)
    b = data.ValidationWindows(domain_tokens(manifest), seq_len=32, eval_tokens=1000)
    for name, shards in manifest.domains.items():
        np.testing.assert_array_equal(a.windows[name], b.windows[name])
        n = a.windows[name].shape[0]
        np.testing.assert_array_equal(
            a.windows[name].reshape(-1), np.asarray(shards.tokens("val"))[: n * 33]
        )
