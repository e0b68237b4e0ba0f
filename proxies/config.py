"""GPTConfig: the shape of a dense proxy language model, validated, counted and buildable.

A config is a frozen dataclass that checks itself on construction (``dataclasses.replace`` checks
again), knows its parameter count and its training FLOPs per token without building anything, and
builds its model with ``cfg.build()``. This module does not import torch, so configs are cheap to
create in the driver process.

Counting conventions (documented because papers differ):

- ``non_embedding_params``: every parameter except the token embedding and the lm head, i.e.
  attention and MLP matrices plus RMSNorm gains. RegMix's "1M" proxy (2 layers, d=256, MLP 512,
  SwiGLU) is 1.31M by this count.
- ``flops_per_token``: training FLOPs (forward + backward) per token,
  ``6 * N_matmul + 12 * n_layer * d_model * seq_len``, where ``N_matmul`` is the number of weights
  used in matrix multiplies: attention and MLP matrices *and the lm head* (V x d; tied or not, the
  head matmul is computed). The embedding lookup and norms are free. The attention term is
  PaLM's (Chowdhery et al. 2022, App. B): QK^T and AV for every (query, key) pair, without halving
  for the causal mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxies.gpt import GPT


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a dense decoder-only transformer (pre-norm RMSNorm, RoPE, SwiGLU, no biases)."""

    vocab_size: int
    seq_len: int
    n_layer: int
    n_head: int
    d_model: int
    d_ff: int  # hidden width of the SwiGLU MLP (each of the gate and up projections is d x d_ff)
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "n_layer", "n_head", "d_model", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if self.head_dim % 2 != 0:
            raise ValueError(
                f"GPTConfig head dim d_model/n_head = {self.head_dim} must be even for rotary "
                "embeddings"
            )
        for name in ("rope_base", "norm_eps", "init_std"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"GPTConfig.{name} must be a positive number, got {value!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise ValueError(
                f"GPTConfig.tie_embeddings must be a bool, got {self.tie_embeddings!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    # ------------------------------------------------------------------------------ counting

    def _block_matmul_params(self) -> int:
        """Weights of one block's matrices: q,k,v,o (4 d^2) and SwiGLU gate, up, down (3 d d_ff)."""
        return 4 * self.d_model**2 + 3 * self.d_model * self.d_ff

    def non_embedding_params(self) -> int:
        """Parameters outside the token embedding and lm head (matrices + norm gains)."""
        per_block = self._block_matmul_params() + 2 * self.d_model  # two RMSNorm gains
        return self.n_layer * per_block + self.d_model  # + final RMSNorm

    def total_params(self) -> int:
        """All distinct parameters (a tied head is counted once, with the embedding)."""
        embedding = self.vocab_size * self.d_model
        head = 0 if self.tie_embeddings else self.vocab_size * self.d_model
        return self.non_embedding_params() + embedding + head

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 * (block matrices + lm head) + 12 * L * d * T (see above)."""
        n_matmul = self.n_layer * self._block_matmul_params() + self.vocab_size * self.d_model
        attention = 12 * self.n_layer * self.d_model * self.seq_len
        return float(6 * n_matmul + attention)

    # ------------------------------------------------------------------------------ building

    def build(self) -> GPT:
        """Build the model with freshly initialised weights (seed torch first for determinism)."""
        from proxies.gpt import GPT

        return GPT(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
