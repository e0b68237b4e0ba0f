"""The optimizer: torch's fused AdamW on CPU matches its per-parameter reference loop."""

from __future__ import annotations

import pytest
import torch

from proxies.config import TrainConfig
from proxies.optim import FUSED_ADAMW_DEVICES, build_optimizer
from proxies.presets import get_preset

CPU = torch.device("cpu")
CFG = get_preset("nano", vocab_size=64, seq_len=16)


def _train(fused: bool | None, steps: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = CFG.build()
    optimizer = build_optimizer(model, TrainConfig(train_tokens=1, lr=1e-2), CPU, fused=fused)
    data = torch.randint(
        0, CFG.vocab_size, (steps, 4, CFG.seq_len + 1), generator=torch.Generator().manual_seed(1)
    )
    for batch in data:
        optimizer.zero_grad(set_to_none=True)
        model.train_loss(batch[:, :-1], batch[:, 1:])[0].backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def test_cpu_uses_the_fused_kernel_by_default() -> None:
    assert "cpu" in FUSED_ADAMW_DEVICES
    model = CFG.build()
    assert build_optimizer(model, TrainConfig(train_tokens=1), CPU).defaults["fused"] is True
    loop = build_optimizer(model, TrainConfig(train_tokens=1), CPU, fused=False)
    assert not loop.defaults["fused"] and loop.defaults["foreach"] is False


def test_fused_cpu_adamw_matches_the_reference_loop() -> None:
    fused, loop = _train(None), _train(False)
    start = _train(None, steps=0)
    for a, b, p0 in zip(fused, loop, start, strict=True):
        assert not torch.equal(a, p0)  # the steps moved every parameter
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fused", [None, False])
def test_same_seed_same_parameters(fused: bool | None) -> None:
    for a, b in zip(_train(fused), _train(fused), strict=True):
        assert torch.equal(a, b)
