"""Mixture-of-Experts MLP: token-choice top-k router, dropless SwiGLU experts, balancing losses.

The pieces are pure keyword-only functions, so each can be read and tested on its own:

- ``route``: router logits (float32) -> top-k experts per token and their gate weights; an
  optional per-expert bias (DeepSeek-V3's auxiliary-loss-free balancing) shifts *which* experts
  are selected but not their gate weights.
- ``expert_counts``: tokens routed to each expert.
- ``experts_forward``: every (token, choice) slot goes through its expert with no token dropped:
  the slots are sorted by expert, the rows gathered, the experts applied as one grouped matmul
  per projection (``torch.nn.functional.grouped_mm``: no Python loop over experts; or, where that
  kernel is missing, a batched matmul over slots padded to the largest expert's load) and the
  outputs put back in token order and mixed by the gate weights.
- ``load_balancing_loss`` (Switch: ``E * sum_e f_e P_e``), ``z_loss`` (mean squared logsumexp of
  the router logits) and ``update_bias`` (the aux-free bias step).

``MoE`` is the layer that wires them together. It holds the weights of ``n_models`` independent
layers stacked on a leading axis, (K, ...), so the same code serves one proxy (K = 1) and K
stacked proxies: the (model, expert) pairs are the groups of one grouped matmul. The gate runs in
float32 even under bf16 autocast. The layer returns each model's auxiliary loss (already scaled
by its coefficients) and adds the tokens it routed to a ``counts`` buffer (K, E) that the trainer
resets: per optimizer step during training (the "global batch" of the Switch loss and the load
that moves the aux-free bias), per evaluation when counting the validation tokens per expert.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from proxies.config import MoEConfig

# ----------------------------------------------------------------------------------- routing


def route(
    logits: torch.Tensor, *, top_k: int, bias: torch.Tensor | None = None, norm_topk: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token-choice top-k routing of router logits (..., N, E).

    Returns ``gates`` (..., N, k) float32 (the softmax probabilities of the chosen experts,
    renormalised to sum to 1 when ``norm_topk``), ``experts`` (..., N, k) int64 and ``probs``
    (..., N, E) float32. ``bias`` (..., E) is added to the probabilities for the choice only.
    """
    probs = logits.float().softmax(dim=-1)  # (..., N, E)
    scores = probs if bias is None else probs + bias.unsqueeze(-2)  # selection only
    experts = scores.topk(top_k, dim=-1).indices  # (..., N, k)
    gates = probs.gather(-1, experts)  # (..., N, k)
    if norm_topk:
        gates = gates / gates.sum(dim=-1, keepdim=True)
    return gates, experts, probs


def expert_counts(experts: torch.Tensor, *, n_experts: int) -> torch.Tensor:
    """Tokens routed to each expert: experts (..., N, k) int64 -> counts (..., E) int64."""
    flat = experts.flatten(-2)  # (..., N*k)
    counts = torch.zeros(*flat.shape[:-1], n_experts, dtype=torch.int64, device=flat.device)
    return counts.scatter_add_(-1, flat, torch.ones_like(flat))


# ----------------------------------------------------------------------------------- losses


def load_balancing_loss(*, probs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Switch Transformer balancing loss ``E * sum_e f_e * P_e`` per leading index.

    probs (..., N, E): router probabilities of the tokens this loss differentiates through.
    counts (..., E): tokens routed to each expert, over the same tokens (micro-batch scope) or
    over more (global-batch scope); f_e = counts_e / sum(counts), a constant.
    Returns (...); 1.0 when both the load and the mean probability are uniform.
    """
    n_experts = probs.shape[-1]
    f = counts.float() / counts.sum(dim=-1, keepdim=True).clamp_min(1)  # (..., E)
    p = probs.mean(dim=-2)  # (..., E)
    return n_experts * (f * p).sum(dim=-1)


def z_loss(*, logits: torch.Tensor) -> torch.Tensor:
    """Router z-loss: mean over tokens of logsumexp(logits)^2; logits (..., N, E) -> (...)."""
    return logits.float().logsumexp(dim=-1).square().mean(dim=-1)


def update_bias(*, bias: torch.Tensor, counts: torch.Tensor, rate: float) -> torch.Tensor:
    """Aux-loss-free step: raise the bias of under-loaded experts, lower the over-loaded ones.

    bias (..., E) float32, counts (..., E) -> new bias ``bias + rate * sign(mean - counts)``.
    """
    load = counts.float()
    return bias + rate * torch.sign(load.mean(dim=-1, keepdim=True) - load)


# ----------------------------------------------------------------------------------- experts


def grouped_mm_supported(x: torch.Tensor, *, width: int) -> bool:
    """Whether ``F.grouped_mm`` takes rows x (S, C) and experts of hidden ``width``: every row
    must be 16-byte aligned (C and width multiples of 4 in fp32, 8 in bf16); on CUDA also bf16
    and compute capability >= 8.0. CPU runs it in fp32 (torch >= 2.9)."""
    if not hasattr(F, "grouped_mm"):
        return False
    if any(d * x.element_size() % 16 for d in (x.shape[-1], width)):
        return False
    if x.device.type == "cpu":
        return True
    if x.device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(x.device)
        return major >= 8 and x.dtype == torch.bfloat16
    return False


def _padded_mm(
    xs: torch.Tensor, w: torch.Tensor, *, group: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """Grouped matmul by padding: rows xs (S, C) sorted by ``group`` (S,), counts (G,), w (G, C, D).

    Rows are placed in a (G, capacity, C) buffer (capacity = the largest count, read on the
    host), multiplied with one batched matmul and gathered back: (S, D).
    """
    n_groups, capacity = w.shape[0], int(counts.max())
    starts = counts.cumsum(0) - counts  # (G,)
    slot = group * capacity + (torch.arange(len(group), device=xs.device) - starts[group])  # (S,)
    padded = xs.new_zeros(n_groups * capacity, xs.shape[-1]).index_copy(0, slot, xs)
    out = torch.bmm(padded.view(n_groups, capacity, -1), w)  # (G, capacity, D)
    return out.flatten(0, 1).index_select(0, slot)  # (S, D)


def experts_forward(
    x: torch.Tensor,
    *,
    experts: torch.Tensor,
    gates: torch.Tensor,
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """Dropless SwiGLU experts: sum_j gates[n, j] * expert_{experts[n, j]}(x[n]).

    x (N, C); experts (N, k) int64 group ids in [0, G); gates (N, k); w_in (G, C, 2F) (gate and
    up, fused); w_out (G, F, C). Returns (N, C) in x's dtype. ``backend``: "grouped_mm",
    "padded" or "auto" (grouped_mm where supported, see ``grouped_mm_supported``).
    """
    N, k = experts.shape
    n_groups, width = w_in.shape[0], w_out.shape[1]
    flat = experts.flatten()  # (N*k,) expert of every (token, choice) slot
    order = flat.argsort(stable=True)  # (N*k,) slots sorted by expert
    group = flat[order]  # (N*k,) the sorted slots' experts
    counts = torch.bincount(flat, minlength=n_groups)  # (G,)
    xs = x.index_select(0, order // k)  # (N*k, C) each slot's token, in expert order
    if backend == "auto":
        backend = "grouped_mm" if grouped_mm_supported(x, width=width) else "padded"
    if backend == "grouped_mm":
        offs = counts.cumsum(0).to(torch.int32)  # (G,) end of each expert's rows
        h = F.grouped_mm(xs, w_in, offs=offs)  # (N*k, 2F)
        gate, up = h.chunk(2, dim=-1)
        ys = F.grouped_mm((F.silu(gate) * up).contiguous(), w_out, offs=offs)  # (N*k, C)
    elif backend == "padded":
        h = _padded_mm(xs, w_in, group=group, counts=counts)  # (N*k, 2F)
        gate, up = h.chunk(2, dim=-1)
        ys = _padded_mm(F.silu(gate) * up, w_out, group=group, counts=counts)  # (N*k, C)
    else:
        raise ValueError(f"unknown expert backend {backend!r}; valid: auto, grouped_mm, padded")
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)  # sorted position of a slot
    y = ys.index_select(0, inverse).view(N, k, -1)  # (N, k, C) back in token order
    return (y * gates.unsqueeze(-1).to(y.dtype)).sum(dim=1).to(x.dtype)  # (N, C)


# ----------------------------------------------------------------------------------- layer


class MoE(nn.Module):
    """The MoE MLP of one block for ``n_models`` stacked models: x (K, B, T, C) -> (K, B, T, C).

    Parameters (K = n_models, E = n_experts, F = d_ff, S = shared_expert_d_ff):
    ``router`` (K, C, E), ``w_in`` (K, E, C, 2F), ``w_out`` (K, E, F, C), and when S > 0
    ``shared_in`` (K, C, 2S), ``shared_out`` (K, S, C). Buffers: ``bias`` (K, E) float32 (the
    aux-free selection bias, saved with the model) and ``counts`` (K, E) int64 (tokens routed
    since ``reset_counts``; not saved).
    """

    def __init__(self, cfg: MoEConfig, n_models: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        K, E, C, Fd, S = n_models, cfg.n_experts, cfg.d_model, cfg.d_ff, cfg.shared_expert_d_ff
        self.n_models = K
        self.router = nn.Parameter(torch.empty(K, C, E))
        self.w_in = nn.Parameter(torch.empty(K, E, C, 2 * Fd))
        self.w_out = nn.Parameter(torch.empty(K, E, Fd, C))
        self.shared_in = nn.Parameter(torch.empty(K, C, 2 * S)) if S else None
        self.shared_out = nn.Parameter(torch.empty(K, S, C)) if S else None
        self.bias: torch.Tensor
        self.counts: torch.Tensor
        self.register_buffer("bias", torch.zeros(K, E))
        self.register_buffer("counts", torch.zeros(K, E, dtype=torch.int64), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.cfg.init_std
        residual_std = std / math.sqrt(2 * self.cfg.n_layer)
        nn.init.normal_(self.router, mean=0.0, std=std)
        nn.init.normal_(self.w_in, mean=0.0, std=std)
        nn.init.normal_(self.w_out, mean=0.0, std=residual_std)
        if self.shared_in is not None and self.shared_out is not None:
            nn.init.normal_(self.shared_in, mean=0.0, std=std)
            nn.init.normal_(self.shared_out, mean=0.0, std=residual_std)
        self.bias.zero_()

    def reset_counts(self) -> None:
        self.counts.zero_()

    @torch.no_grad()
    def end_step(self) -> None:
        """After an optimizer step: the aux-free bias moves by this step's load."""
        if self.cfg.balance == "aux_free" and self.cfg.bias_update_rate > 0:
            self.bias.copy_(
                update_bias(bias=self.bias, counts=self.counts, rate=self.cfg.bias_update_rate)
            )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (K, B, T, C) -> (output (K, B, T, C), auxiliary loss per model (K,) float32)."""
        cfg = self.cfg
        K, B, T, C = x.shape
        E = cfg.n_experts
        tokens = x.reshape(K, B * T, C)  # (K, N, C)
        with torch.autocast(device_type=x.device.type, enabled=False):  # the gate in float32
            logits = torch.bmm(tokens.float(), self.router.float())  # (K, N, E)
        bias = self.bias if cfg.balance == "aux_free" else None
        gates, experts, probs = route(logits, top_k=cfg.top_k, bias=bias, norm_topk=cfg.norm_topk)
        counts = expert_counts(experts, n_experts=E)  # (K, E)
        self.counts += counts

        # Every model's experts are groups of one grouped matmul: model k's expert e is k*E + e.
        groups = experts + E * torch.arange(K, device=x.device).view(K, 1, 1)  # (K, N, k)
        dtype = _compute_dtype(x)
        y = experts_forward(
            tokens.reshape(K * B * T, C).to(dtype),
            experts=groups.flatten(0, 1),
            gates=gates.flatten(0, 1),
            w_in=self.w_in.flatten(0, 1).to(dtype),
            w_out=self.w_out.flatten(0, 1).to(dtype),
            backend=cfg.expert_backend,
        ).view(K, B * T, C)  # (K, N, C)
        if self.shared_in is not None and self.shared_out is not None:
            gate, up = torch.bmm(tokens, self.shared_in).chunk(2, dim=-1)  # each (K, N, S)
            y = y + torch.bmm(F.silu(gate) * up, self.shared_out)  # (K, N, C)

        aux = logits.new_zeros(K)  # (K,)
        if self.training:
            if cfg.balance == "aux_loss" and cfg.aux_loss_coef > 0:
                scope = self.counts if cfg.aux_scope == "global" else counts
                aux = aux + cfg.aux_loss_coef * load_balancing_loss(probs=probs, counts=scope)
            if cfg.seq_aux_loss_coef > 0:
                per_seq = expert_counts(experts.view(K, B, T, -1), n_experts=E)  # (K, B, E)
                seq = load_balancing_loss(probs=probs.view(K, B, T, E), counts=per_seq)  # (K, B)
                aux = aux + cfg.seq_aux_loss_coef * seq.mean(dim=-1)
            if cfg.z_loss_coef > 0:
                aux = aux + cfg.z_loss_coef * z_loss(logits=logits)
        return y.view(K, B, T, C).to(x.dtype), aux


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The experts' matmul dtype: the autocast dtype when autocast is on for x's device."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class MoEHost(nn.Module):
    """A model whose MLPs may be MoE layers (GPT, StackedGPT): hooks around an optimizer step."""

    def moe_layers(self) -> list[MoE]:
        return [m for m in self.modules() if isinstance(m, MoE)]

    def begin_step(self) -> None:
        """Before an optimizer step's micro-batches: MoE layers start counting routed tokens."""
        for layer in self.moe_layers():
            layer.reset_counts()

    def end_step(self) -> None:
        """After the optimizer step: MoE layers update their aux-free bias from the counts."""
        for layer in self.moe_layers():
            layer.end_step()
