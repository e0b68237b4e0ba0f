"""The GPT model: shapes, causality, tied weights, the fused cross-entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from proxies.config import GPTConfig
from proxies.gpt import GPT, cross_entropy

CFG = GPTConfig(vocab_size=97, seq_len=16, n_layer=2, n_head=2, d_model=32, d_ff=64)


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    return CFG.build()


def test_forward_shapes(model: GPT) -> None:
    idx = torch.randint(0, 97, (3, 16))
    logits = model(idx)
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 16, 97)
    logits2, loss = model(idx, idx)
    assert logits2.shape == (3, 16, 97) and loss.shape == () and loss.dtype == torch.float32
    assert torch.allclose(loss, model.loss(idx, idx))
    assert model(idx[:, :5]).shape == (3, 5, 97)  # shorter than seq_len is fine
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.randint(0, 97, (1, 17)))


def test_initial_loss_near_uniform(model: GPT) -> None:
    idx = torch.randint(0, 97, (8, 16))
    assert abs(model.loss(idx, torch.roll(idx, -1, 1)).item() - math.log(97)) < 0.3


def test_causal(model: GPT) -> None:
    idx = torch.randint(0, 97, (2, 16))
    base = model(idx)
    for t in (0, 7, 14):
        changed = idx.clone()
        changed[:, t + 1] = (changed[:, t + 1] + 1) % 97
        out = model(changed)
        assert isinstance(base, torch.Tensor) and isinstance(out, torch.Tensor)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1])
        assert not torch.allclose(out[:, t + 1], base[:, t + 1])


def test_tied_and_untied_heads() -> None:
    tied = CFG.build()
    assert tied.lm_head.weight is tied.wte.weight
    assert len({id(p) for p in tied.parameters()}) == len(list(tied.parameters()))
    untied = GPTConfig(**{**CFG.to_dict(), "tie_embeddings": False}).build()
    assert untied.lm_head.weight is not untied.wte.weight
    assert untied.num_params(non_embedding=False) - tied.num_params(non_embedding=False) == 97 * 32


def test_cross_entropy_matches_torch() -> None:
    torch.manual_seed(1)
    logits = (3 * torch.randn(4, 5, 11)).requires_grad_()
    targets = torch.randint(0, 11, (4, 5))
    ours = cross_entropy(logits, targets)
    ours.backward(torch.tensor(2.0))
    grad_ours = logits.grad
    logits.grad = None
    ref = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    ref.backward(torch.tensor(2.0))
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad_ours, logits.grad)


def test_gradients_reach_every_parameter(model: GPT) -> None:
    idx = torch.randint(0, 97, (2, 16))
    model.loss(idx, torch.roll(idx, -1, 1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
