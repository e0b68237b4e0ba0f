"""StackedGPT: K proxies of one shape as one module, every weight a (K, ...) tensor.

The K models never interact: each linear map is a batched matmul over the model axis, attention
folds the model axis into its batch (K*B sequences), the embedding looks up model k's rows of a
(K*V, C) table, an MoE layer routes each model's tokens to that model's experts (the (model,
expert) pairs are the groups of one grouped matmul), and ``train_loss`` sums the models' losses,
so model k's gradient is exactly the gradient of its own loss. What K models of one shape gain
from this is fewer, larger kernels: a tiny proxy leaves a GPU idle, K of them fill it.

``StackedGPT.from_models(models)`` stacks K separately built ``GPT``s (so stacked training starts
from exactly the weights K separate runs would) and ``unstack(k)`` returns model k as a ``GPT``
(for checkpoints, metric hooks, or further use). Parameter names follow ``GPT``'s, with a leading
K axis: ``blocks.0.attn.qkv.weight`` is (K, 3C, C) here and (3C, C) there.

Shapes: K models, B sequences each, T positions, C = d_model, H heads, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from proxies.config import GPTConfig, MoEConfig
from proxies.gpt import (
    GPT,
    apply_rope,
    cross_entropy_per_model,
    linear_cross_entropy,
    rms_norm,
    rope_tables,
)
from proxies.moe import MoE, MoEHost


class StackedLinear(nn.Module):
    """K independent bias-free linear maps, weight (K, out, in): x (K, N, in) -> (K, N, out)."""

    def __init__(self, n_models: int, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_models, d_out, d_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x, self.weight.transpose(1, 2))


class StackedRMSNorm(nn.Module):
    """K RMSNorms, gain (K, C): x (K, ..., C) -> x / rms(x) * gain[k]."""

    def __init__(self, n_models: int, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n_models, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class StackedEmbedding(nn.Module):
    """K token embeddings, weight (K, V, C): idx (K, B, T) -> (K, B, T, C)."""

    def __init__(self, n_models: int, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_models, vocab_size, dim))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        K, V, C = self.weight.shape
        offsets = V * torch.arange(K, device=idx.device).view(K, *([1] * (idx.dim() - 1)))
        return F.embedding(idx + offsets, self.weight.view(K * V, C))  # model k's rows


class StackedAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, n_models: int) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = StackedLinear(n_models, cfg.d_model, 3 * cfg.d_model)
        self.proj = StackedLinear(n_models, cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        K, B, T, C = x.shape
        H = self.n_head
        qkv = self.qkv(x.view(K, B * T, C)).view(K * B, T, 3 * C)  # models folded into batch
        q, k, v = (t.view(K * B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=-1))
        q, k = apply_rope(q, cos, sin).to(v.dtype), apply_rope(k, cos, sin).to(v.dtype)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (K*B, H, T, hd)
        y = y.transpose(1, 2).reshape(K, B * T, C)  # (K, B*T, C)
        return self.proj(y).view(K, B, T, C)


class StackedSwiGLU(nn.Module):
    def __init__(self, cfg: GPTConfig, n_models: int) -> None:
        super().__init__()
        self.gate_up = StackedLinear(n_models, cfg.d_model, 2 * cfg.d_ff)
        self.down = StackedLinear(n_models, cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        K, B, T, C = x.shape
        gate, up = self.gate_up(x.view(K, B * T, C)).chunk(2, dim=-1)  # each (K, B*T, d_ff)
        return self.down(F.silu(gate) * up).view(K, B, T, C)


class StackedBlock(nn.Module):
    def __init__(self, cfg: GPTConfig, n_models: int) -> None:
        super().__init__()
        self.attn_norm = StackedRMSNorm(n_models, cfg.d_model, cfg.norm_eps)
        self.attn = StackedAttention(cfg, n_models)
        self.mlp_norm = StackedRMSNorm(n_models, cfg.d_model, cfg.norm_eps)
        self.mlp: StackedSwiGLU | MoE = (
            MoE(cfg, n_models) if isinstance(cfg, MoEConfig) else StackedSwiGLU(cfg, n_models)
        )

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (K, B, T, C) -> (x (K, B, T, C), auxiliary loss per model (K,) or None if dense)."""
        x = x + self.attn(self.attn_norm(x), cos, sin)
        h = self.mlp_norm(x)
        if isinstance(self.mlp, MoE):
            y, aux = self.mlp(h)
            return x + y, aux
        return x + self.mlp(h), None


class StackedGPT(MoEHost):
    """K GPTs of config ``cfg`` trained side by side. Build with ``from_models`` to start from
    given weights; the constructor leaves the weights uninitialised (``torch.empty``)."""

    fused_head = True  # train_loss: the lm head and its cross-entropy as linear_cross_entropy

    def __init__(self, cfg: GPTConfig, n_models: int) -> None:
        super().__init__()
        if n_models < 1:
            raise ValueError(f"StackedGPT needs n_models >= 1, got {n_models}")
        self.cfg, self.n_models = cfg, n_models
        K, C = n_models, cfg.d_model
        self.wte = StackedEmbedding(K, cfg.vocab_size, C)
        self.blocks = nn.ModuleList(StackedBlock(cfg, K) for _ in range(cfg.n_layer))
        self.norm = StackedRMSNorm(K, C, cfg.norm_eps)
        self.lm_head = StackedLinear(K, C, cfg.vocab_size)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight  # both (K, V, C)
        cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_base)
        self.rope_cos: torch.Tensor
        self.rope_sin: torch.Tensor
        self.register_buffer("rope_cos", cos, persistent=False)  # (T, hd/2)
        self.register_buffer("rope_sin", sin, persistent=False)  # (T, hd/2)

    # ------------------------------------------------------------------------- stack/unstack

    @classmethod
    def from_models(cls, models: list[GPT]) -> StackedGPT:
        """The K models stacked, on the first model's device."""
        if not models:
            raise ValueError("from_models needs at least one model")
        cfg = models[0].cfg
        if any(m.cfg != cfg for m in models):
            raise ValueError("stacked models must share one config")
        stacked = cls(cfg, len(models)).to(next(models[0].parameters()).device)
        states = [m.state_dict() for m in models]
        target = stacked.state_dict()
        stacked.load_state_dict(
            {name: _stack([s[name] for s in states], like) for name, like in target.items()}
        )
        return stacked

    def unstack(self, k: int) -> GPT:
        """Model k as a plain GPT (a copy, on this model's device, in this model's mode)."""
        if not 0 <= k < self.n_models:
            raise IndexError(f"model index {k} out of range for {self.n_models} stacked models")
        model = GPT(self.cfg).to(self.rope_cos.device)
        like = model.state_dict()
        state = self.state_dict()
        model.load_state_dict({name: _slice(state[name], k, t) for name, t in like.items()})
        return model.train(self.training)

    # ----------------------------------------------------------------------------- forward

    def hidden(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final normed hidden states (K, B, T, C) and each model's summed auxiliary loss (K,)
        of token ids idx (K, B, T)."""
        K, _, T = idx.shape
        if self.n_models != K:
            raise ValueError(f"batch has {K} models' rows, the stack has {self.n_models}")
        if self.cfg.seq_len < T:
            raise ValueError(f"sequence length {T} exceeds the model's seq_len {self.cfg.seq_len}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # (T, hd/2)
        x = self.wte(idx)  # (K, B, T, C)
        aux = torch.zeros(K, device=x.device)
        for block in self.blocks:
            x, block_aux = block(x, cos, sin)
            if block_aux is not None:
                aux = aux + block_aux
        return self.norm(x), aux

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits (K, B, T, V) of token ids idx (K, B, T)."""
        h = self.hidden(idx)[0]
        K, B, T, C = h.shape
        return self.lm_head(h.view(K, B * T, C)).view(K, B, T, -1)

    def losses(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each model's mean next-token cross-entropy (K,) fp32; idx, targets (K, B, T)."""
        return cross_entropy_per_model(self.logits(idx), targets)

    def train_loss(
        self, idx: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum over models of cross-entropy + auxiliary loss, a scalar; cross-entropies (K,))."""
        h, aux = self.hidden(idx)
        K, B, T, C = h.shape
        if self.fused_head:
            ce = linear_cross_entropy(h.view(K, B * T, C), self.lm_head.weight, targets)  # (K,)
        else:
            ce = cross_entropy_per_model(self.lm_head(h.view(K, B * T, C)), targets)
        return (ce + aux).sum(), ce

    def num_params(self, *, non_embedding: bool = True) -> int:
        """Distinct parameters of one of the K models (as ``GPT.num_params``)."""
        params = {id(p): p for p in self.parameters()}
        if non_embedding:
            params.pop(id(self.wte.weight), None)
            params.pop(id(self.lm_head.weight), None)
        return sum(p.numel() for p in params.values()) // self.n_models


def _stack(tensors: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Single-model tensors to one (K, ...) tensor: stacked, or concatenated when each already
    has the leading model axis (an MoE layer's weights are (1, ...) in a single GPT)."""
    if tensors[0].dim() == like.dim():
        return torch.cat(tensors)
    return torch.stack(tensors)


def _slice(tensor: torch.Tensor, k: int, like: torch.Tensor) -> torch.Tensor:
    """Model k's part of a (K, ...) tensor, shaped like the single model's ``like``."""
    return tensor[k : k + 1] if like.dim() == tensor.dim() else tensor[k]


@torch.no_grad()
def clip_grad_norm_per_model(
    parameters: list[nn.Parameter], max_norm: float, n_models: int
) -> torch.Tensor:
    """Clip each model's gradient to global norm ``max_norm`` independently; parameters are
    (K, ...) tensors. Same rule as ``torch.nn.utils.clip_grad_norm_`` (coefficient
    ``max_norm / (norm + 1e-6)``, clamped to 1). Returns the norms before clipping, (K,)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(n_models)
    sq = torch.stack([g.float().pow(2).reshape(n_models, -1).sum(dim=1) for g in grads])
    norms = sq.sum(dim=0).sqrt()  # (K,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # (K,)
    for g in grads:
        g.mul_(coef.view(n_models, *([1] * (g.dim() - 1))).to(g.dtype))
    return norms
