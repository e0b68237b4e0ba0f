"""mixopt's ProxySpec: arch, MoE settings through overrides, and the new training options are
checked when the spec loads (without importing torch)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from mixopt.spec import ProxySpec


def test_moe_spec_with_string_overrides() -> None:
    spec = ProxySpec(
        arch="moe",
        preset="1m",
        overrides={"balance": "aux_free", "n_experts": 4, "top_k": 1, "seq_aux_loss_coef": 1e-4},
        micro_batch_size=8,
        eval_every=50,
        metrics=["accuracy"],
        checkpoint_every=100,
        stacking="off",
    )
    assert spec.arch == "moe" and spec.overrides["balance"] == "aux_free"
    assert ProxySpec().arch == "dense" and ProxySpec().stacking == "auto"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"arch": "sparse"}, "arch"),
        ({"preset": "huge"}, "unknown proxy preset 'huge'"),
        ({"arch": "moe", "overrides": {"top_k": 9}}, "must not exceed n_experts"),
        ({"overrides": {"n_experts": 4}}, "unknown GPTConfig field"),
        ({"arch": "moe", "overrides": {"balance": "switch"}}, "balance must be one of"),
        ({"overrides": {"d_model": 66}}, "divisible by n_head"),
        ({"overrides": {"vocab_size": 7}}, "overrides cannot set vocab_size"),
        ({"micro_batch_size": 5}, "must divide batch_size"),
        ({"stacking": "always"}, "stacking"),
        ({"checkpoint_every": -1}, "checkpoint_every"),
    ],
)
def test_bad_proxy_spec(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProxySpec(**fields)  # type: ignore[arg-type]


def test_spec_validation_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from mixopt.spec import ProxySpec\n"
        "ProxySpec(arch='moe', overrides={'n_experts': 4})\n"
        "assert 'torch' not in sys.modules, 'validating a ProxySpec imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
