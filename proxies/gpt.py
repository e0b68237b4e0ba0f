"""GPT: the decoder-only proxy transformer (LLaMA-style, nanoGPT-sized code), dense or MoE.

Pre-norm blocks with RMSNorm, rotary position embeddings (pairs (2i, 2i+1), fp32), causal
``F.scaled_dot_product_attention`` (flash/efficient kernels where available), a SwiGLU MLP whose
hidden width is ``d_ff`` (or, for a ``MoEConfig``, the Mixture-of-Experts MLP of ``proxies.moe``),
no biases anywhere, and an lm head that shares the embedding matrix when ``tie_embeddings``.
Weights start at N(0, init_std); the residual output projections of each block (attention
``proj``, MLP ``down``, experts' ``w_out``) are scaled by 1/sqrt(2 * n_layer) as in GPT-2.

``model.loss(idx, targets)`` is what evaluation calls (mean token cross-entropy, computed in fp32
even under bf16 autocast); training calls ``model.train_loss(idx, targets)``, which adds an MoE's
balancing losses and returns ``(total, cross_entropy)``; ``model(idx, targets)`` returns
``(logits, loss)``. ``begin_step``/``end_step`` bracket an optimizer step (an MoE counts the
step's routed tokens and moves its aux-free bias). The cross-entropy is a small fused autograd
function: its backward turns the saved probabilities into the gradient in place (softmax -
onehot) instead of allocating and filling two more (B*T, V) buffers; with a 4096 vocabulary the
tiny proxy's CPU step gets ~12% faster (1m: ~4%). It also computes one mean per model for K
stacked models (``cross_entropy_per_model``). While training on CPU, ``train_loss`` goes further
(``linear_cross_entropy``, ``GPT.fused_head``): the lm head and the cross-entropy run together in
row chunks whose logits stay in cache, and the (B*T, V) logits are never materialised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from proxies.config import GPTConfig, MoEConfig
from proxies.moe import MoE, MoEHost


class _CrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of logits (G*n, V) against targets (G*n,) for each of G equal groups
    of rows, (G,); the gradient is computed in place of the saved probabilities."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, logits: torch.Tensor, targets: torch.Tensor, groups: int
    ) -> torch.Tensor:
        logp = torch.log_softmax(logits, dim=-1)  # (G*n, V)
        loss = -logp.gather(1, targets[:, None]).view(groups, -1).mean(dim=1)  # (G,)
        ctx.save_for_backward(logp.exp_(), targets)  # probabilities, reusing the buffer
        ctx.groups = groups  # type: ignore[attr-defined]
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        probs, targets = ctx.saved_tensors  # type: ignore[attr-defined]
        groups = ctx.groups  # type: ignore[attr-defined]
        n = targets.shape[0]
        probs[torch.arange(n, device=probs.device), targets] -= 1.0  # softmax - onehot
        scale = (grad * groups / n).repeat_interleave(n // groups)  # (G*n,) grad_g / n_g
        return probs.mul_(scale[:, None]), None, None


def cross_entropy_per_model(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each model, (K,) fp32, for logits (K, ..., V) and
    targets (K, ...)."""
    K = logits.shape[0]
    logits, targets = logits.float().reshape(-1, logits.shape[-1]), targets.flatten()
    if torch.is_grad_enabled() and logits.requires_grad and not torch.compiler.is_compiling():
        return _CrossEntropy.apply(logits, targets, K)
    # evaluation (nothing to save for backward), or torch.compile (which fuses this form itself)
    return F.cross_entropy(logits, targets, reduction="none").view(K, -1).mean(dim=1)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (fp32 scalar) of logits (B, T, V) against targets (B, T)."""
    logits, targets = logits.float().flatten(0, 1), targets.flatten()  # (B*T, V), (B*T,)
    if torch.is_grad_enabled() and logits.requires_grad and not torch.compiler.is_compiling():
        return _CrossEntropy.apply(logits, targets, 1)[0]
    return F.cross_entropy(logits, targets)  # evaluation, or torch.compile (as above)


# rows per model in a chunk of ``linear_cross_entropy``: (256, V) logits stay in L2/L3, and the
# head's gradient (V, C), updated once per chunk, is not re-read too often (64 rows made the 1m
# proxy's head 2.4x slower at vocab 4096; 256: 1m as fast as unfused, tiny's head ~1.3x faster)
LINEAR_CE_ROWS = 256
_TINY_PROB = 1e-30  # a target probability below this takes its loss from the logits


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy per model of the logits h @ w^T, for h (K, N, C), w (K, V, C) and
    targets (K, N), (K,), without the (K, N, V) logits: chunks of ``LINEAR_CE_ROWS`` rows whose
    logits stay in cache, with both gradients computed in the forward pass (the backward scales
    them by the incoming gradient)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        K, N, _ = h.shape
        rows = LINEAR_CE_ROWS
        grad_h = torch.empty_like(h)
        grad_wt = h.new_zeros(K, h.shape[2], w.shape[1])  # (K, C, V): h^T @ probs runs faster
        wt = w.transpose(1, 2)  # (K, C, V)
        nll = h.new_zeros(K)
        for start in range(0, N, rows):
            hc, tc = h[:, start : start + rows], targets[:, start : start + rows, None]
            logits = torch.bmm(hc, wt)  # (K, n, V)
            probs = torch.softmax(logits, dim=-1)  # one vectorised exp (torch.exp is ~1.5x slower)
            pt = probs.gather(2, tc)  # (K, n, 1)
            if bool((pt < _TINY_PROB).any()):  # log(pt) would lose digits or be -inf
                lse = torch.logsumexp(logits, dim=-1, keepdim=True)
                nll += (lse - logits.gather(2, tc)).sum(dim=(1, 2))
            else:
                nll -= pt.log().sum(dim=(1, 2))
            probs.scatter_(2, tc, pt - 1.0)  # softmax - onehot
            torch.bmm(probs, w, out=grad_h[:, start : start + rows])
            grad_wt.baddbmm_(hc.transpose(1, 2), probs)
        ctx.save_for_backward(grad_h, grad_wt)
        return nll / N

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        grad_h, grad_wt = ctx.saved_tensors  # type: ignore[attr-defined]
        scale = (grad / grad_h.shape[1]).view(-1, 1, 1)  # (K, 1, 1): d mean / d logits
        return grad_h.mul_(scale), grad_wt.transpose(1, 2).mul(scale), None


def linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean next-token cross-entropy (fp32) of the lm head ``weight`` on hidden states h.

    One model: h (B, T, C), weight (V, C), targets (B, T) -> a scalar; K models: h (K, N, C),
    weight (K, V, C), targets (K, N) -> (K,). While training on CPU the logits are never
    materialised (``_LinearCrossEntropy``); elsewhere (CUDA, evaluation, torch.compile, which
    fuses the plain form itself) it is ``cross_entropy`` of the logits.
    """
    single = weight.dim() == 2
    train = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad)
    if (
        h.device.type != "cpu"
        or h.dtype != torch.float32
        or not train
        or torch.compiler.is_compiling()
    ):
        if single:
            return cross_entropy(F.linear(h, weight), targets)
        return cross_entropy_per_model(torch.bmm(h, weight.transpose(1, 2)), targets)
    C = h.shape[-1]
    K = 1 if single else weight.shape[0]
    hk, wk = h.reshape(K, -1, C), weight.view(K, -1, C)
    loss = _LinearCrossEntropy.apply(hk, wk, targets.reshape(K, -1))
    return loss[0] if single else loss


class _RMSNorm(torch.autograd.Function):
    """RMSNorm of x (K, N, C) with per-model gains w (K, C) in few passes over memory.

    On CPU ``F.rms_norm`` is a chain of ~15 elementwise kernels forward and backward; this one
    saves rstd and turns the two reductions of the backward into batched matrix-vector products
    (fwd+bwd ~1.8x faster at (2048, 256), ~3% of the 1m proxy's step).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        rstd = torch.rsqrt(x.square().mean(dim=-1, keepdim=True).add_(eps))  # (K, N, 1)
        ctx.save_for_backward(x, w, rstd)
        return x * rstd * w.unsqueeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        x, w, rstd = ctx.saved_tensors  # type: ignore[attr-defined]
        gx = g * x  # (K, N, C)
        dw = torch.bmm(rstd.transpose(1, 2), gx).squeeze(1)  # (K, C): sum_n g x rstd
        dot = torch.bmm(gx, w.unsqueeze(-1))  # (K, N, 1): sum_c g w x
        dx = (g * w.unsqueeze(1)).mul_(rstd)  # (K, N, C)
        dx.addcmul_(x, rstd.pow(3).mul_(dot).div_(-x.shape[-1]))
        return dx, dw, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x (..., C) / rms(x) * weight, for weight (C,), or per model (K, C) with x (K, ..., C)."""
    C = x.shape[-1]
    K = 1 if weight.dim() == 1 else weight.shape[0]
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        return _RMSNorm.apply(x.reshape(K, -1, C), weight.view(K, C), eps).view(x.shape)
    if weight.dim() == 1:  # CUDA: the fused kernel (torch.compile: one inductor kernel)
        return F.rms_norm(x, (C,), weight, eps)
    return F.rms_norm(x, (C,), eps=eps) * weight.view(K, *([1] * (x.dim() - 2)), C)


class RMSNorm(nn.Module):
    """x / rms(x) * gain, with a learned per-channel gain and no bias."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def rope_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles of channel pairs (2i, 2i+1), each (T, head_dim/2), fp32."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (2i, 2i+1) of x (..., T, hd) by angles (T, hd/2); fp32 result.

    Eager CPU multiplies by unit complex numbers (one kernel each way, ~3x faster than the
    real form there); elsewhere (CUDA, torch.compile) the same rotation in real arithmetic.
    """
    pairs = x.float().unflatten(-1, (-1, 2))  # (..., T, hd/2, 2)
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        rotated = torch.view_as_complex(pairs) * torch.complex(cos, sin)
        return torch.view_as_real(rotated).flatten(-2)
    x0, x1 = pairs.unbind(-1)
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rope(q, cos, sin).to(v.dtype), apply_rope(k, cos, sin).to(v.dtype)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class SwiGLU(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)  # gate and up, fused
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # each (B, T, d_ff)
        return self.down(F.silu(gate) * up)  # (B, T, C)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = CausalSelfAttention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp: SwiGLU | MoE = MoE(cfg) if isinstance(cfg, MoEConfig) else SwiGLU(cfg)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, C) -> (x (B, T, C), the MoE's auxiliary loss (a scalar) or None if dense)."""
        x = x + self.attn(self.attn_norm(x), cos, sin)
        h = self.mlp_norm(x)
        if isinstance(self.mlp, MoE):
            y, aux = self.mlp(h.unsqueeze(0))  # one model: K = 1
            return x + y.squeeze(0), aux[0]
        return x + self.mlp(h), None


class GPT(MoEHost):
    fused_head = True  # train_loss: the lm head and its cross-entropy as linear_cross_entropy

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        cos, sin = rope_tables(cfg.seq_len, cfg.head_dim, cfg.rope_base)
        self.rope_cos: torch.Tensor
        self.rope_sin: torch.Tensor
        self.register_buffer("rope_cos", cos, persistent=False)  # (T, hd/2)
        self.register_buffer("rope_sin", sin, persistent=False)  # (T, hd/2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        residual_std = std / math.sqrt(2 * self.cfg.n_layer)
        for block in self.blocks:
            assert isinstance(block, Block)
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            if isinstance(block.mlp, MoE):
                block.mlp.reset_parameters()
            else:
                nn.init.normal_(block.mlp.down.weight, mean=0.0, std=residual_std)

    def hidden(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Final normed hidden states (B, T, C) and the summed auxiliary loss (a scalar) of
        token ids idx (B, T), T <= cfg.seq_len."""
        T = idx.shape[1]
        if self.cfg.seq_len < T:
            raise ValueError(f"sequence length {T} exceeds the model's seq_len {self.cfg.seq_len}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # (T, hd/2)
        x = self.wte(idx)  # (B, T, C)
        aux = torch.zeros((), device=x.device)
        for block in self.blocks:
            x, block_aux = block(x, cos, sin)
            if block_aux is not None:
                aux = aux + block_aux
        return self.norm(x), aux

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, T, V) for token ids idx (B, T), T <= cfg.seq_len."""
        return self.lm_head(self.hidden(idx)[0])  # (B, T, V)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (a scalar, fp32) of idx (B, T) against targets (B, T)."""
        return cross_entropy(self.logits(idx), targets)

    def train_loss(
        self, idx: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy + auxiliary losses, cross-entropy), both fp32 scalars."""
        h, aux = self.hidden(idx)
        if self.fused_head:
            ce = linear_cross_entropy(h, self.lm_head.weight, targets)
        else:
            ce = cross_entropy(self.lm_head(h), targets)
        return ce + aux, ce

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """logits (B, T, V), or (logits, loss) when targets (B, T) are given."""
        logits = self.logits(idx)
        if targets is None:
            return logits
        return logits, cross_entropy(logits, targets)

    def num_params(self, *, non_embedding: bool = True) -> int:
        """Distinct parameters; non_embedding leaves out the token embedding and the lm head."""
        params = {id(p): p for p in self.parameters()}  # a tied head is one tensor
        if non_embedding:
            params.pop(id(self.wte.weight), None)
            params.pop(id(self.lm_head.weight), None)
        return sum(p.numel() for p in params.values())
