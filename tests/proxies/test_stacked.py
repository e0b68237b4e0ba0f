"""Stacked proxies: K models in one module match K separate ones (forward, gradients, clipping,
AdamW, and whole training runs)."""

from __future__ import annotations

import copy

import pytest
import torch

from proxies.config import GPTConfig
from proxies.data import DomainTokens
from proxies.gpt import GPT
from proxies.presets import get_preset
from proxies.stacked import StackedGPT, clip_grad_norm_per_model
from proxies.train import TrainConfig, build_optimizer, train_proxy, train_stacked

from .conftest import MakeDomain, web_and_code

VOCAB, T = 64, 32


def configs() -> list[GPTConfig]:
    return [
        get_preset("tiny", vocab_size=VOCAB, seq_len=T),
        get_preset("tiny", vocab_size=VOCAB, seq_len=T, tie_embeddings=False),
        get_preset("tiny", vocab_size=VOCAB, seq_len=T, arch="moe", shared_expert_d_ff=16),
    ]


def models(cfg: GPTConfig, k: int) -> list[GPT]:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(cfg.build())
    return out


@pytest.mark.parametrize("cfg", configs(), ids=["tied", "untied", "moe"])
def test_stack_unstack_round_trip(cfg: GPTConfig) -> None:
    singles = models(cfg, 3)
    stacked = StackedGPT.from_models(singles)
    assert stacked.n_models == 3
    assert stacked.num_params(non_embedding=True) == cfg.non_embedding_params()
    assert stacked.num_params(non_embedding=False) == cfg.total_params()
    assert (stacked.lm_head.weight is stacked.wte.weight) == cfg.tie_embeddings
    for k, single in enumerate(singles):
        back = stacked.unstack(k)
        for (name, a), b in zip(
            single.state_dict().items(), back.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), name
    with pytest.raises(IndexError):
        stacked.unstack(3)


@pytest.mark.parametrize("cfg", configs(), ids=["tied", "untied", "moe"])
def test_stacked_losses_and_gradients_match_separate_models(cfg: GPTConfig) -> None:
    singles = models(cfg, 3)
    stacked = StackedGPT.from_models(copy.deepcopy(singles))
    idx = torch.randint(0, VOCAB, (3, 4, T + 1))
    total, ce = stacked.train_loss(idx[..., :-1], idx[..., 1:])
    total.backward()
    expected_total = 0.0
    for k, single in enumerate(singles):
        single_total, single_ce = single.train_loss(idx[k, :, :-1], idx[k, :, 1:])
        single_total.backward()
        expected_total += single_total.item()
        torch.testing.assert_close(ce[k], single_ce)
        grads = {n: p.grad for n, p in single.named_parameters()}
        for name, p in stacked.named_parameters():
            assert p.grad is not None
            g = p.grad[k : k + 1] if p.grad.dim() == grads[name].dim() else p.grad[k]
            torch.testing.assert_close(g, grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert total.item() == pytest.approx(expected_total, rel=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(
            stacked.losses(idx[..., :-1], idx[..., 1:]),
            torch.stack([m.loss(idx[k, :, :-1], idx[k, :, 1:]) for k, m in enumerate(singles)]),
        )


def test_stacked_rejects_wrong_number_of_rows_and_mixed_configs() -> None:
    cfg = configs()[0]
    stacked = StackedGPT.from_models(models(cfg, 2))
    with pytest.raises(ValueError, match="3 models' rows, the stack has 2"):
        stacked.logits(torch.zeros(3, 1, 4, dtype=torch.int64))
    other = get_preset("tiny", vocab_size=VOCAB, seq_len=T, n_layer=1).build()
    with pytest.raises(ValueError, match="share one config"):
        StackedGPT.from_models([cfg.build(), other])
    with pytest.raises(ValueError, match="n_models >= 1"):
        StackedGPT(cfg, 0)


def test_per_model_clipping_matches_clip_grad_norm() -> None:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 5, 4)), torch.nn.Parameter(torch.randn(3, 7))]
    scales = torch.tensor([0.01, 1.0, 100.0])  # model 0 under the limit, 1 and 2 over
    for p in params:
        p.grad = torch.randn_like(p) * scales.view(3, *([1] * (p.dim() - 1)))
    singles = []
    for k in range(3):
        ps = [torch.nn.Parameter(p[k].detach().clone()) for p in params]
        for p, q in zip(ps, params, strict=True):
            assert q.grad is not None
            p.grad = q.grad[k].clone()
        norm = torch.nn.utils.clip_grad_norm_(ps, 1.0)
        singles.append((norm, ps))
    norms = clip_grad_norm_per_model(params, 1.0, 3)
    for k, (norm, ps) in enumerate(singles):
        torch.testing.assert_close(norms[k], norm)
        for p, q in zip(ps, params, strict=True):
            assert q.grad is not None and p.grad is not None
            torch.testing.assert_close(q.grad[k], p.grad)
    assert norms[0] < 1 and norms[2] > 1


def test_one_adamw_over_stacked_weights_is_k_independent_adamws() -> None:
    cfg = configs()[1]  # untied: decayed head, undecayed embedding
    singles = models(cfg, 3)
    stacked = StackedGPT.from_models(copy.deepcopy(singles))
    train_cfg = TrainConfig(train_tokens=1, lr=1e-2, weight_decay=0.1)
    device = torch.device("cpu")
    stacked_opt = build_optimizer(stacked, train_cfg, device)
    single_opts = [build_optimizer(m, train_cfg, device) for m in singles]
    torch.manual_seed(1)
    for _ in range(3):
        for name, p in stacked.named_parameters():
            p.grad = torch.randn_like(p)
            for k, single in enumerate(singles):
                q = dict(single.named_parameters())[name]
                q.grad = p.grad[k : k + 1].clone() if q.dim() == p.dim() else p.grad[k].clone()
        stacked_opt.step()
        for opt in single_opts:
            opt.step()
    for k, single in enumerate(singles):
        back = stacked.unstack(k)
        for (name, a), b in zip(
            single.state_dict().items(), back.state_dict().values(), strict=True
        ):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


@pytest.fixture
def domains(make_domain: MakeDomain) -> list[DomainTokens]:
    return web_and_code(make_domain, VOCAB)


@pytest.mark.parametrize("arch", ["dense", "moe"])
def test_train_stacked_matches_separate_runs(domains: list[DomainTokens], arch: str) -> None:
    cfg = get_preset("tiny", vocab_size=VOCAB, seq_len=T, arch=arch)
    train_cfg = TrainConfig(
        train_tokens=12 * 8 * T, batch_size=8, lr=3e-3, eval_tokens=500, device="cpu", threads=1
    )
    mixtures = [{"web": 0.2, "code": 0.8}, {"web": 0.9, "code": 0.1}, {"web": 1.0}]
    seeds = [0, 1, 5]
    stacked = train_stacked(cfg, train_cfg, domains, mixtures, seeds=seeds)
    assert len(stacked) == 3
    for result, weights, seed in zip(stacked, mixtures, seeds, strict=True):
        alone = train_proxy(
            cfg, TrainConfig(**{**train_cfg.__dict__, "seed": seed}), domains, weights
        )
        assert result.n_models == 3 and alone.n_models == 1
        assert set(result.metrics) == set(alone.metrics)
        for key, value in alone.metrics.items():
            assert result.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
        for (tok_a, loss_a), (tok_b, loss_b) in zip(result.curve, alone.curve, strict=True):
            assert tok_a == tok_b and loss_a == pytest.approx(loss_b, rel=1e-4)
        assert result.expert_counts == alone.expert_counts
    # different mixtures and seeds give different models
    assert stacked[0].metrics["val_loss/web"] != stacked[2].metrics["val_loss/web"]


def test_train_stacked_argument_errors(domains: list[DomainTokens]) -> None:
    cfg = configs()[0]
    train_cfg = TrainConfig(train_tokens=256, batch_size=2, device="cpu")
    with pytest.raises(ValueError, match="at least one mixture"):
        train_stacked(cfg, train_cfg, domains, [])
    with pytest.raises(ValueError, match="2 mixtures but 1 seeds"):
        train_stacked(cfg, train_cfg, domains, [{"web": 1.0}, {"code": 1.0}], seeds=[0])
    with pytest.raises(ValueError, match="sum to 1"):
        train_stacked(cfg, train_cfg, domains, [{"web": 1.0}, {"code": 0.5}])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch", ["dense", "moe"])
def test_cuda_stacked_training_learns(domains: list[DomainTokens], arch: str) -> None:
    cfg = get_preset("tiny", vocab_size=VOCAB, seq_len=T, arch=arch)
    train_cfg = TrainConfig(
        train_tokens=100 * 8 * T, batch_size=8, lr=1e-2, eval_tokens=500, device="cuda"
    )
    results = train_stacked(cfg, train_cfg, domains, [{"web": 1.0}, {"code": 1.0}], seeds=[0, 1])
    assert all(r.device.startswith("cuda") for r in results)
    assert results[0].metrics["val_loss/web"] < results[0].metrics["val_loss/code"]
    assert results[1].metrics["val_loss/code"] < results[1].metrics["val_loss/web"]
