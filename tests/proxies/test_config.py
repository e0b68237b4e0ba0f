"""GPTConfig validation and counting, presets, and the cheap top-level import."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from proxies.config import GPTConfig
from proxies.presets import PRESETS, get_preset

BASE = dict(vocab_size=256, seq_len=32, n_layer=2, n_head=4, d_model=64, d_ff=128)


def test_valid_config_builds_model_with_counted_params() -> None:
    cfg = GPTConfig(**BASE)  # type: ignore[arg-type]
    model = cfg.build()
    assert model.num_params(non_embedding=True) == cfg.non_embedding_params()
    assert model.num_params(non_embedding=False) == cfg.total_params()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"d_model": 66}, "divisible by n_head"),
        ({"n_head": 8, "d_model": 40}, "must be even"),
        ({"n_layer": 0}, "n_layer must be a positive integer"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"seq_len": 2.5}, "seq_len"),
        ({"d_ff": True}, "d_ff"),
        ({"norm_eps": 0.0}, "norm_eps"),
        ({"rope_base": -1.0}, "rope_base"),
        ({"init_std": 0}, "init_std"),
        ({"tie_embeddings": 1}, "tie_embeddings"),
    ],
)
def test_invalid_config_raises(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**BASE, **change})  # type: ignore[arg-type]


def test_replace_validates_again() -> None:
    cfg = GPTConfig(**BASE)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(cfg, n_head=3)


def test_untied_head_counts_in_total_not_non_embedding() -> None:
    tied = GPTConfig(**BASE)  # type: ignore[arg-type]
    untied = dataclasses.replace(tied, tie_embeddings=False)
    assert untied.non_embedding_params() == tied.non_embedding_params()
    assert untied.total_params() == tied.total_params() + 256 * 64
    assert untied.build().num_params(non_embedding=False) == untied.total_params()


def test_flops_per_token_formula() -> None:
    cfg = GPTConfig(**BASE)  # type: ignore[arg-type]
    block = 4 * 64 * 64 + 3 * 64 * 128
    expected = 6 * (2 * block + 256 * 64) + 12 * 2 * 64 * 32
    assert cfg.flops_per_token() == expected


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("tiny", 0.1e6, 0.3e6),
        ("small", 0.4e6, 0.6e6),
        ("1m", 0.9e6, 1.4e6),  # RegMix's shape: 1.31M with SwiGLU and norms
        ("5m", 4e6, 6e6),
        ("20m", 15e6, 25e6),
        ("60m", 50e6, 70e6),
    ],
)
def test_preset_sizes(name: str, low: float, high: float) -> None:
    cfg = get_preset(name, vocab_size=4096, seq_len=128)
    assert low <= cfg.non_embedding_params() <= high
    assert cfg.vocab_size == 4096 and cfg.seq_len == 128


def test_1m_preset_is_regmix_shape() -> None:
    cfg = get_preset("1m", vocab_size=50_000, seq_len=2048)
    assert (cfg.n_layer, cfg.d_model, cfg.n_head, cfg.d_ff) == (2, 256, 8, 512)


@pytest.mark.parametrize("name", ["tiny", "small", "1m"])
def test_small_presets_build_with_matching_counts(name: str) -> None:
    cfg = get_preset(name, vocab_size=512, seq_len=64)
    model = cfg.build()
    assert model.num_params(non_embedding=True) == cfg.non_embedding_params()


def test_get_preset_overrides_and_errors() -> None:
    cfg = get_preset("tiny", vocab_size=100, seq_len=16, n_layer=3, tie_embeddings=False)
    assert cfg.n_layer == 3 and not cfg.tie_embeddings
    with pytest.raises(ValueError, match=r"unknown proxy preset 'huge'.*tiny, small, 1m"):
        get_preset("huge", vocab_size=100, seq_len=16)
    with pytest.raises(ValueError, match=r"unknown GPTConfig field.*'n_layers'"):
        get_preset("tiny", vocab_size=100, seq_len=16, n_layers=3)
    with pytest.raises(ValueError, match="divisible"):
        get_preset("tiny", vocab_size=100, seq_len=16, n_head=3)
    assert set(PRESETS) >= {"tiny", "small", "1m", "5m", "20m", "60m"}


def test_import_is_lazy() -> None:
    code = (
        "import sys, proxies\n"
        "cfg = proxies.get_preset('tiny', vocab_size=64, seq_len=8)\n"
        "cfg.flops_per_token(); proxies.GPTConfig\n"
        "assert 'torch' not in sys.modules, 'proxies imported torch'\n"
        "assert 'mixopt' not in sys.modules\n"
        "proxies.TrainConfig\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute() -> None:
    import proxies

    with pytest.raises(AttributeError, match="nope"):
        proxies.nope  # noqa: B018
