"""GPTConfig validation and counting, presets, the cheap top-level import, and TrainConfig's
checks (each names its field) and torch-free run requests."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from proxies.config import ConfigError, GPTConfig, TrainConfig
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
        "proxies.TrainConfig(train_tokens=1); proxies.DomainTokens('web', 'a', 'b')\n"
        "assert 'torch' not in sys.modules, 'the run request imported torch'\n"
        "proxies.train_proxy\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_attribute() -> None:
    import proxies

    with pytest.raises(AttributeError, match="nope"):
        proxies.nope  # noqa: B018


# ------------------------------------------------------------------------------- TrainConfig


def test_run_request_is_torch_free() -> None:
    code = (
        "import json, sys\n"
        "import proxies.config, proxies.tokens, proxies.results\n"
        "cfg = proxies.config.TrainConfig(train_tokens=1000, lr=1e-3, metrics=['m'])\n"
        "json.dumps(cfg.to_dict())\n"
        "web = proxies.tokens.DomainTokens('web', 'w.train', 'w.val', dtype='uint32')\n"
        "code = proxies.tokens.DomainTokens('code', 'c.train', 'c.val')\n"
        "proxies.tokens.check_weights([web, code], {'web': 0.25, 'code': 0.75})\n"
        "proxies.results.smooth_curve([3.0, 2.0], 8)\n"
        "try:\n"
        "    proxies.config.TrainConfig(train_tokens=1000, lr=float('inf'))\n"
        "except proxies.config.ConfigError as error:\n"
        "    assert error.field == 'lr', error\n"
        "else:\n"
        "    raise AssertionError('lr=inf was accepted')\n"
        "assert 'torch' not in sys.modules, 'a torch-free module imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_config_defaults_and_normalisation(tmp_path: Path) -> None:
    cfg = TrainConfig(train_tokens=np.int64(4096), lr=np.float32(0.5), metrics=["a", "b"])  # type: ignore[arg-type]
    assert type(cfg.train_tokens) is int and type(cfg.lr) is float and cfg.lr == 0.5
    assert cfg.metrics == ("a", "b") and cfg.micro_batches == 1
    assert json.loads(json.dumps(cfg.to_dict()))["metrics"] == ["a", "b"]
    with_dir = TrainConfig(train_tokens=1, checkpoint_dir=tmp_path, checkpoint_every=3)  # type: ignore[arg-type]
    assert with_dir.checkpoint_dir == str(tmp_path)
    assert TrainConfig(train_tokens=64, batch_size=8, micro_batch_size=2).micro_batches == 4
    with pytest.raises(ConfigError, match="lr"):
        dataclasses.replace(cfg, lr=-1.0)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"train_tokens": 0}, "train_tokens", "must be an integer > 0, got 0"),
        ({"batch_size": 2.5}, "batch_size", "must be an integer > 0, got 2.5"),
        ({"eval_tokens": True}, "eval_tokens", "must be an integer > 0, got True"),
        ({"seed": -1}, "seed", "must be >= 0 (an integer; it seeds numpy's generators), got -1"),
        (
            {"eval_every": -1},
            "eval_every",
            "must be >= 0 (an integer; 0 = only at the end), got -1",
        ),
        (
            {"checkpoint_every": -2, "checkpoint_dir": "ckpt"},
            "checkpoint_every",
            "must be >= 0 (an integer; 0 = every tenth of the run), got -2",
        ),
        ({"lr": math.inf}, "lr", "must be > 0 and finite, got inf"),
        ({"lr": math.nan}, "lr", "must be > 0 and finite, got nan"),
        ({"lr": 0}, "lr", "must be > 0 and finite, got 0.0"),
        ({"lr": "3e-3"}, "lr", "must be > 0 and finite, got '3e-3'"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio", "must be in [0, 1], got 1.5"),
        ({"min_lr_ratio": math.nan}, "min_lr_ratio", "must be in [0, 1], got nan"),
        ({"warmup_ratio": 1.0}, "warmup_ratio", "must be in [0, 1), got 1.0"),
        ({"warmup_ratio": -math.inf}, "warmup_ratio", "must be in [0, 1), got -inf"),
        ({"weight_decay": -0.1}, "weight_decay", "must be >= 0 and finite, got -0.1"),
        ({"weight_decay": math.inf}, "weight_decay", "must be >= 0 and finite, got inf"),
        ({"grad_clip": math.nan}, "grad_clip", "must be >= 0 and finite (0 = off), got nan"),
        ({"grad_clip": -1.0}, "grad_clip", "must be >= 0 and finite (0 = off), got -1.0"),
        (
            {"schedule": "linear"},
            "schedule",
            "must be one of 'cosine', 'constant', 'wsd', got 'linear'",
        ),
        ({"device": "tpu"}, "device", "must be one of 'auto', 'cpu', 'cuda', got 'tpu'"),
        ({"threads": 0}, "threads", "must be None or an integer >= 1, got 0"),
        (
            {"micro_batch_size": 5},
            "micro_batch_size",
            "must divide batch_size (16), got 5",
        ),
        ({"micro_batch_size": 0}, "micro_batch_size", "must divide batch_size (16), got 0"),
        ({"metrics": "accuracy"}, "metrics", "must be a list of names, got 'accuracy'"),
        ({"metrics": [1]}, "metrics", "must be a list of names, got [1]"),
        ({"keep_checkpoint": 1}, "keep_checkpoint", "must be a bool, got 1"),
        ({"compile": "yes"}, "compile", "must be a bool, got 'yes'"),
        ({"checkpoint_dir": 3}, "checkpoint_dir", "must be None or a path, got 3"),
        ({"checkpoint_every": 5}, "checkpoint_every", "would need a checkpoint_dir, got none"),
        ({"keep_checkpoint": True}, "keep_checkpoint", "would need a checkpoint_dir, got none"),
    ],
)
def test_train_config_errors_name_the_field(
    change: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**{"train_tokens": 1000, **change})  # type: ignore[arg-type]
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.config, error.field, error.reason) == ("TrainConfig", field, reason)
    assert str(error) == f"TrainConfig.{field} {reason}"
    again = pickle.loads(pickle.dumps(error))  # crosses process boundaries intact
    assert (again.field, again.reason, str(again)) == (field, reason, str(error))
