"""The GPT model: shapes, causality, tied weights, the fused cross-entropy and lm head."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from proxies import gpt
from proxies.config import GPTConfig
from proxies.gpt import GPT, cross_entropy, linear_cross_entropy

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


def _loss_and_grads(
    fn: object, h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    loss = fn(h, w, targets)  # type: ignore[operator]
    loss.backward(scale)
    assert h.grad is not None and w.grad is not None
    return loss.detach(), h.grad, w.grad


@pytest.mark.parametrize("rows", [None, 40])  # one chunk; chunks of 40 rows and a rest
def test_linear_cross_entropy_matches_the_logits_path(
    rows: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if rows is not None:
        monkeypatch.setattr(gpt, "LINEAR_CE_ROWS", rows)
    torch.manual_seed(2)
    h, w = torch.randn(3, 50, 8), 2 * torch.randn(11, 8)
    targets = torch.randint(0, 11, (3, 50))
    ref = _loss_and_grads(
        lambda h, w, t: cross_entropy(h @ w.t(), t), h, w, targets, torch.tensor(1.5)
    )
    ours = _loss_and_grads(linear_cross_entropy, h, w, targets, torch.tensor(1.5))
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)
    with torch.no_grad():  # evaluation: the plain path, same value
        torch.testing.assert_close(linear_cross_entropy(h, w, targets), ref[0])


def test_linear_cross_entropy_per_model_and_extreme_logits() -> None:
    torch.manual_seed(3)
    h, w = torch.randn(2, 30, 8), torch.randn(2, 11, 8)
    w[1] *= 40  # model 1's target probabilities underflow: its loss comes from the logits
    targets = torch.randint(0, 11, (2, 30))
    scale = torch.tensor([1.0, 0.5])

    def per_model(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return gpt.cross_entropy_per_model(torch.bmm(h, w.transpose(1, 2)), t)

    ref = _loss_and_grads(per_model, h, w, targets, scale)
    ours = _loss_and_grads(linear_cross_entropy, h, w, targets, scale)
    assert ours[0].shape == (2,) and torch.isfinite(ours[0]).all() and ours[0][1] > 50
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b)


def test_fused_head_trains_like_the_plain_head(model: GPT) -> None:
    idx = torch.randint(0, 97, (2, 16))
    grads = []
    for fused in (True, False):
        model.zero_grad(set_to_none=True)
        model.fused_head = fused
        total, ce = model.train_loss(idx, torch.roll(idx, -1, 1))
        total.backward()
        grads.append(
            (ce.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None])
        )
    torch.testing.assert_close(grads[0][0], grads[1][0])
    assert len(grads[0][1]) == len(list(model.parameters()))
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b)
