"""Mixture-of-Experts: routing, dropless experts, balancing losses, the layer and MoE configs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from proxies.config import GPTConfig, MoEConfig
from proxies.moe import (
    MoE,
    expert_counts,
    experts_forward,
    load_balancing_loss,
    route,
    update_bias,
    z_loss,
)
from proxies.presets import get_preset

BASE = dict(vocab_size=97, seq_len=16, n_layer=2, n_head=2, d_model=32, d_ff=24)


def moe_cfg(**changes: object) -> MoEConfig:
    return MoEConfig(**{**BASE, "n_experts": 4, "top_k": 2, **changes})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- routing


def test_route_picks_top_k_and_renormalises() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 50, 6)
    gates, experts, probs = route(logits, top_k=2)
    assert gates.shape == experts.shape == (2, 50, 2) and probs.shape == (2, 50, 6)
    torch.testing.assert_close(probs, logits.softmax(-1))
    torch.testing.assert_close(experts, probs.topk(2, dim=-1).indices)
    torch.testing.assert_close(gates.sum(-1), torch.ones(2, 50))
    raw, _, _ = route(logits, top_k=2, norm_topk=False)
    torch.testing.assert_close(raw, probs.topk(2, dim=-1).values)


def test_route_bias_changes_the_choice_not_the_gate_values() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 40, 4)
    bias = torch.tensor([[0.0, 0.0, 0.0, 10.0]])  # expert 3 always wins the selection
    gates, experts, probs = route(logits, top_k=1, bias=bias, norm_topk=False)
    assert (experts == 3).all()
    torch.testing.assert_close(gates[..., 0], probs[..., 3])  # the unbiased probability


def test_route_gate_is_float32_under_bf16_input() -> None:
    gates, _, probs = route(torch.randn(1, 8, 4, dtype=torch.bfloat16), top_k=2)
    assert gates.dtype == probs.dtype == torch.float32


def test_expert_counts() -> None:
    experts = torch.tensor([[[0, 1], [1, 2], [1, 3]], [[2, 3], [2, 0], [3, 0]]])  # (2, 3, 2)
    counts = expert_counts(experts, n_experts=4)
    assert counts.tolist() == [[1, 3, 1, 1], [2, 0, 2, 2]]


# ----------------------------------------------------------------------------------- losses


def test_load_balancing_loss_is_one_when_balanced_and_e_when_collapsed() -> None:
    E = 4
    uniform = torch.full((10, E), 1 / E)
    assert load_balancing_loss(probs=uniform, counts=torch.full((E,), 5)).item() == pytest.approx(1)
    collapsed = F.one_hot(torch.zeros(10, dtype=torch.int64), E).float()
    counts = torch.tensor([10, 0, 0, 0])
    assert load_balancing_loss(probs=collapsed, counts=counts).item() == pytest.approx(E)


def test_load_balancing_loss_batched_and_differentiates_through_probs_only() -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 20, 5, requires_grad=True)
    probs = logits.softmax(-1)
    counts = torch.randint(0, 9, (3, 5))
    loss = load_balancing_loss(probs=probs, counts=counts)
    assert loss.shape == (3,)
    f = counts.float() / counts.sum(-1, keepdim=True)
    expected = 5 * (f * probs.mean(1)).sum(-1)
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_z_loss() -> None:
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])  # lse = ln 2, ln 4
    expected = (math.log(2) ** 2 + math.log(4) ** 2) / 2
    assert z_loss(logits=logits).item() == pytest.approx(expected)


def test_update_bias_moves_toward_balance() -> None:
    bias = torch.zeros(2, 3)
    counts = torch.tensor([[10, 5, 0], [5, 5, 5]])
    new = update_bias(bias=bias, counts=counts, rate=0.1)
    torch.testing.assert_close(new, torch.tensor([[-0.1, 0.0, 0.1], [0.0, 0.0, 0.0]]))


# ----------------------------------------------------------------------------------- experts


def naive_experts(
    x: torch.Tensor,
    experts: torch.Tensor,
    gates: torch.Tensor,
    w_in: torch.Tensor,
    w_out: torch.Tensor,
) -> torch.Tensor:
    """The definition, token by token."""
    rows = []
    for n in range(x.shape[0]):
        y = torch.zeros(x.shape[1])
        for j in range(experts.shape[1]):
            e = int(experts[n, j])
            gate, up = (x[n] @ w_in[e]).chunk(2)
            y = y + gates[n, j] * ((F.silu(gate) * up) @ w_out[e])
        rows.append(y)
    return torch.stack(rows)


@pytest.mark.parametrize(
    ("backend", "Fd"), [("grouped_mm", 8), ("padded", 8), ("padded", 6), ("auto", 6)]
)
def test_experts_forward_matches_definition_and_gradients(backend: str, Fd: int) -> None:
    torch.manual_seed(3)
    N, C, G, k = 30, 8, 5, 2
    x = torch.randn(N, C, requires_grad=True)
    experts = torch.randint(0, G - 1, (N, k))  # expert G-1 gets no token: an empty group
    gates = torch.rand(N, k)
    w_in = torch.randn(G, C, 2 * Fd, requires_grad=True)
    w_out = torch.randn(G, Fd, C, requires_grad=True)
    out = experts_forward(x, experts=experts, gates=gates, w_in=w_in, w_out=w_out, backend=backend)
    ref = naive_experts(x, experts, gates, w_in, w_out)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, w_in, w_out), grad)
    ref_grads = torch.autograd.grad(ref, (x, w_in, w_out), grad)
    for ours, theirs in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert grads[1][G - 1].abs().sum() == 0  # the unused expert gets no gradient


def test_grouped_mm_needs_16_byte_rows() -> None:
    from proxies.moe import grouped_mm_supported

    assert grouped_mm_supported(torch.zeros(2, 8), width=4)
    assert not grouped_mm_supported(torch.zeros(2, 8), width=6)  # 24-byte rows
    assert not grouped_mm_supported(torch.zeros(2, 6), width=8)


def test_experts_forward_unknown_backend() -> None:
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match="unknown expert backend 'loop'"):
        experts_forward(
            x,
            experts=torch.zeros(2, 1, dtype=torch.int64),
            gates=torch.ones(2, 1),
            w_in=torch.randn(1, 4, 6),
            w_out=torch.randn(1, 3, 4),
            backend="loop",
        )


# ----------------------------------------------------------------------------------- layer


def test_moe_layer_counts_and_aux_in_training_only() -> None:
    torch.manual_seed(4)
    cfg = moe_cfg(z_loss_coef=0.0)
    layer = MoE(cfg, n_models=2)
    x = torch.randn(2, 3, 5, 32)  # (K, B, T, C)
    y, aux = layer(x)
    assert y.shape == x.shape and aux.shape == (2,)
    assert layer.counts.sum(dim=1).tolist() == [3 * 5 * 2, 3 * 5 * 2]  # every slot routed
    assert (aux > 0).all()  # balancing loss ~ coef
    layer.eval()
    _, aux_eval = layer(x)
    assert (aux_eval == 0).all()
    assert layer.counts.sum(dim=1).tolist() == [60, 60]  # counted again until reset
    layer.reset_counts()
    assert layer.counts.sum() == 0


def test_global_scope_uses_the_step_counts_micro_scope_the_micro_batch() -> None:
    torch.manual_seed(5)
    x1, x2 = torch.randn(1, 2, 8, 32), torch.randn(1, 2, 8, 32)
    aux = {}
    for scope in ("micro", "global"):
        torch.manual_seed(6)
        layer = MoE(moe_cfg(aux_scope=scope, z_loss_coef=0.0, aux_loss_coef=1.0), n_models=1)
        layer.reset_counts()
        layer(x1)
        first = layer.counts.clone()
        _, aux[scope] = layer(x2)
        second = layer.counts - first
        with torch.no_grad():
            logits = torch.bmm(x2.reshape(1, 16, 32), layer.router)
            probs = logits.softmax(-1)
        expected_counts = second if scope == "micro" else first + second
        expected = load_balancing_loss(probs=probs, counts=expected_counts)
        torch.testing.assert_close(aux[scope].detach(), expected)
    assert not torch.allclose(aux["micro"], aux["global"])


def test_aux_free_bias_moves_after_the_step_and_aux_loss_mode_keeps_it() -> None:
    torch.manual_seed(7)
    x = torch.randn(1, 4, 8, 32)
    for balance, moves in (("aux_free", True), ("aux_loss", False)):
        layer = MoE(moe_cfg(balance=balance, bias_update_rate=0.01), n_models=1)
        layer.reset_counts()
        layer(x)
        counts = layer.counts.clone().float()
        layer.end_step()
        if moves:
            expected = 0.01 * torch.sign(counts.mean() - counts)
            torch.testing.assert_close(layer.bias, expected)
        else:
            assert layer.bias.abs().sum() == 0


def test_shared_expert_adds_parameters_and_output() -> None:
    torch.manual_seed(8)
    with_shared = MoE(moe_cfg(shared_expert_d_ff=16), n_models=1)
    assert with_shared.shared_in is not None and with_shared.shared_in.shape == (1, 32, 32)
    x = torch.randn(1, 2, 4, 32)
    y, _ = with_shared(x)
    assert with_shared.shared_out is not None
    with torch.no_grad():
        with_shared.shared_out.zero_()
    y0, _ = with_shared(x)
    assert not torch.allclose(y, y0)


# ----------------------------------------------------------------------------------- model


def test_moe_gpt_counts_match_built_model_and_train_loss_adds_aux() -> None:
    cfg = moe_cfg(shared_expert_d_ff=8)
    torch.manual_seed(9)
    model = cfg.build()
    assert model.num_params(non_embedding=True) == cfg.non_embedding_params()
    assert model.num_params(non_embedding=False) == cfg.total_params()
    idx = torch.randint(0, 97, (2, 16))
    total, ce = model.train_loss(idx, idx)
    assert total.item() > ce.item()
    torch.testing.assert_close(ce, model.loss(idx, idx))
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_moe_active_params_and_flops() -> None:
    cfg = moe_cfg()
    d, E, k, Fd, L = 32, 4, 2, 24, 2
    per_block_all = 4 * d * d + d * E + 3 * d * E * Fd + 2 * d
    assert cfg.non_embedding_params() == L * per_block_all + d
    assert cfg.active_params() == cfg.non_embedding_params() - L * 3 * d * (E - k) * Fd
    active_matmul = L * (4 * d * d + d * E + 3 * d * k * Fd) + 97 * d
    assert cfg.flops_per_token() == 6 * active_matmul + 12 * L * d * 16
    dense = GPTConfig(**BASE)  # type: ignore[arg-type]
    assert dense.active_params() == dense.non_embedding_params()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"top_k": 5}, "must not exceed n_experts"),
        ({"n_experts": 0}, "n_experts must be a positive integer"),
        ({"shared_expert_d_ff": -1}, "shared_expert_d_ff"),
        ({"balance": "switch"}, "balance must be one of aux_loss, aux_free, none"),
        ({"aux_scope": "batch"}, "aux_scope"),
        ({"aux_loss_coef": -0.1}, "aux_loss_coef"),
        ({"z_loss_coef": float("nan")}, "z_loss_coef"),
        ({"expert_backend": "loop"}, "expert_backend"),
        ({"norm_topk": 1}, "norm_topk"),
    ],
)
def test_invalid_moe_config(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        moe_cfg(**change)


@pytest.mark.parametrize("name", ["tiny", "small", "1m", "5m", "20m", "60m"])
def test_moe_presets_match_dense_active_size(name: str) -> None:
    dense = get_preset(name, vocab_size=4096, seq_len=128)
    moe = get_preset(name, vocab_size=4096, seq_len=128, arch="moe")
    assert isinstance(moe, MoEConfig) and moe.arch == "moe" and dense.arch == "dense"
    assert moe.n_experts == 8 and moe.top_k == 2
    assert moe.active_params() == pytest.approx(dense.active_params(), rel=0.01)
    assert moe.non_embedding_params() > 2.5 * dense.non_embedding_params()


def test_get_preset_moe_overrides_and_errors() -> None:
    cfg = get_preset("tiny", vocab_size=64, seq_len=16, arch="moe", balance="aux_free", top_k=1)
    assert isinstance(cfg, MoEConfig) and cfg.balance == "aux_free" and cfg.top_k == 1
    with pytest.raises(ValueError, match="unknown proxy arch 'sparse'; valid archs: dense, moe"):
        get_preset("tiny", vocab_size=64, seq_len=16, arch="sparse")
    with pytest.raises(ValueError, match=r"unknown GPTConfig field.*'n_experts'"):
        get_preset("tiny", vocab_size=64, seq_len=16, n_experts=4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_experts_use_grouped_mm_and_match_padded() -> None:
    from proxies.moe import grouped_mm_supported

    torch.manual_seed(10)
    x = torch.randn(64, 32, device="cuda", dtype=torch.bfloat16)
    experts = torch.randint(0, 4, (64, 2), device="cuda")
    gates = torch.rand(64, 2, device="cuda")
    w_in = torch.randn(4, 32, 48, device="cuda", dtype=torch.bfloat16) / 8
    w_out = torch.randn(4, 24, 32, device="cuda", dtype=torch.bfloat16) / 8
    if torch.cuda.get_device_capability()[0] >= 8:
        assert grouped_mm_supported(x, width=24)
    kw = dict(experts=experts, gates=gates, w_in=w_in, w_out=w_out)
    a = experts_forward(x, backend="auto", **kw)  # type: ignore[arg-type]
    b = experts_forward(x, backend="padded", **kw)  # type: ignore[arg-type]
    torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)
