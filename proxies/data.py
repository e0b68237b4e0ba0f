"""Token data for proxies: mixture batches and fixed validation windows over domain token files.

Each domain (``DomainTokens``, from the torch-free ``proxies.tokens``, re-exported here) is two
flat binary files of token ids (uint16 or uint32, native byte order), read
through numpy memmaps so nothing is loaded up front. ``MixtureBatches`` is the training stream:
every sequence independently picks its domain with the mixture's weights and a uniform start
offset in that domain's train tokens, all drawn from one seeded ``numpy.random.Generator`` (same
seed and mixture, same stream; domains with weight 0 are never opened, so they may be short or
missing; ``state``/``set_state`` save and resume a stream; ``stream`` picks an independent
stream of the same seed, one per stage of a staged run). ``ValidationWindows`` is the
evaluation set: the first non-overlapping (T+1)-token windows of each domain's val file (and of
each eval set's, a ``DomainTokens`` that is never trained on), the same for every trial, so losses
are comparable.

With mixture stages (``proxies.stages``) a run draws from one stream per stage
(``stage_stream``), counting the tokens each domain gave each stage (``draw_counted``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from proxies.stages import StageConfig
from proxies.tokens import DomainTokens, TokenDtype, check_weights

__all__ = ["DomainTokens", "MixtureBatches", "TokenDtype", "ValidationWindows", "check_weights"]


class MixtureBatches:
    """Endless iterator of (B, T+1) int64 token batches drawn from a weighted mixture of domains.

    ``batch[:, :-1]`` are the inputs and ``batch[:, 1:]`` the targets.

    Common random numbers: every row draws two uniforms from one seeded stream, the first picks
    its domain (inverse CDF over the domains in a fixed order), the second where its window
    starts (as a fraction of that domain's length). Row ``r`` of step ``s`` thus sees the same
    window under any mixture that assigns it the same domain, and two nearby mixtures with the
    same seed differ only in the few rows whose first uniform falls between their CDFs: the
    difference between their proxies measures the mixture rather than sampling noise.

    ``stream`` (default 0) selects an independent generator of the same seed: a staged run
    draws stage ``k`` from stream ``k``, so stages do not replay each other's windows while two
    runs with the same seed still share their random numbers stage by stage.
    """

    def __init__(
        self,
        domains: list[DomainTokens],
        weights: Mapping[str, float],
        seq_len: int,
        batch_size: int,
        seed: int,
        stream: int = 0,
    ) -> None:
        if seq_len <= 0 or batch_size <= 0:
            raise ValueError(
                f"seq_len and batch_size must be positive, got {seq_len}, {batch_size}"
            )
        w = check_weights(domains, weights)
        self.seq_len, self.batch_size = seq_len, batch_size
        positions = [i for i, x in enumerate(w) if x > 0]
        self.domains = [domains[i] for i in positions]
        self.probs = w[positions] / w[positions].sum()
        self._cdf = np.cumsum(self.probs)
        self._cdf[-1] = 1.0
        self.tokens = [d.open("train") for d in self.domains]  # memmaps, only of sampled domains
        for d, toks in zip(self.domains, self.tokens, strict=True):
            if len(toks) < seq_len + 1:
                raise ValueError(
                    f"domain {d.name!r} has weight > 0 but only {len(toks)} train tokens; "
                    f"need at least seq_len + 1 = {seq_len + 1}"
                )
        self.rng = np.random.default_rng([seed, stream])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def state(self) -> dict[str, Any]:
        """The random generators' states (plain data): ``set_state`` resumes the stream there."""
        return {"rng": self.rng.bit_generator.state}

    def set_state(self, state: Mapping[str, Any]) -> None:
        if "rng" not in state:
            raise ValueError("not a MixtureBatches stream state (no 'rng')")
        self.rng.bit_generator.state = state["rng"]

    def __next__(self) -> torch.Tensor:
        return torch.from_numpy(self.sample()[0])

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One batch: tokens (B, T+1) int64 and the index (into ``self.domains``) of each row."""
        span = self.seq_len + 1
        u = self.rng.random((self.batch_size, 2))  # (B, 2): domain, window start
        which = np.searchsorted(self._cdf, u[:, 0], side="right").clip(max=len(self.domains) - 1)
        batch = np.empty((self.batch_size, span), dtype=np.int64)  # (B, T+1)
        for row, d in enumerate(which):
            toks = self.tokens[d]
            start = min(int(u[row, 1] * (len(toks) - span + 1)), len(toks) - span)
            batch[row] = toks[start : start + span]
        return batch, which


class ValidationWindows:
    """Per domain, the first non-overlapping (T+1)-token windows of its val file.

    A domain gets ``max(1, eval_tokens // (T+1))`` windows, or fewer if its val file is shorter;
    a val file shorter than one window raises ValueError. The windows are loaded into memory.
    """

    def __init__(self, domains: list[DomainTokens], seq_len: int, eval_tokens: int) -> None:
        if seq_len <= 0 or eval_tokens <= 0:
            raise ValueError(
                f"seq_len and eval_tokens must be positive, got {seq_len}, {eval_tokens}"
            )
        self.seq_len = seq_len
        self.domains = {d.name: d for d in domains}
        if len(self.domains) != len(domains):
            raise ValueError(f"duplicate domain names in {[d.name for d in domains]}")
        span = seq_len + 1
        self.windows: dict[str, np.ndarray] = {}
        self.val_tokens: dict[str, int] = {}
        for d in domains:
            toks = d.open("val")
            if len(toks) < span:
                raise ValueError(
                    f"domain {d.name!r}: val file has {len(toks)} tokens, fewer than one "
                    f"window of seq_len + 1 = {span}"
                )
            n = min(len(toks) // span, max(1, eval_tokens // span))
            self.windows[d.name] = np.asarray(toks[: n * span], dtype=np.int64).reshape(n, span)
            self.val_tokens[d.name] = len(toks)

    @property
    def names(self) -> list[str]:
        return list(self.windows)

    def window_tokens(self, name: str) -> int:
        """Tokens covered by the domain's windows (n * (T+1))."""
        return self.windows[name].size

    def predicted_tokens(self, name: str) -> int:
        """Tokens whose loss is evaluated (n * T: every window position but the first)."""
        n, span = self.windows[name].shape
        return n * (span - 1)

    def bytes_evaluated(self, name: str) -> float:
        """Approximate text bytes behind the windows: val_bytes * window tokens / val tokens."""
        d = self.domains[name]
        return d.val_bytes * self.window_tokens(name) / self.val_tokens[name]

    def batches(self, name: str, batch_size: int) -> Iterator[torch.Tensor]:
        """The domain's windows in order, as (b, T+1) int64 tensors with b <= batch_size."""
        windows = self.windows[name]
        for i in range(0, len(windows), batch_size):
            yield torch.from_numpy(windows[i : i + batch_size])


# -- mixture stages: a stream per stage, counting what each stage drew ---------------------------


def stage_stream(
    domains: list[DomainTokens],
    stage: StageConfig,
    index: int,
    run_weights: Mapping[str, float],
    seq_len: int,
    batch_size: int,
    seed: int,
    staged: bool,
) -> MixtureBatches:
    """Stage ``index``'s stream: its weights (the run's mixture when it has none), stream
    ``index`` of the seed. Bad weights raise ValueError naming the stage."""
    weights = run_weights if stage.weights is None else stage.weights
    try:
        return MixtureBatches(domains, weights, seq_len, batch_size, seed=seed, stream=index)
    except ValueError as error:
        if not staged:
            raise  # the error is the run's mixture's, as before stages
        raise ValueError(f"stage {index} {stage.label}: {error}") from None


def zero_counts(
    domains: list[DomainTokens], n_models: int, n_stages: int
) -> list[list[dict[str, int]]]:
    return [[{d.name: 0 for d in domains} for _ in range(n_stages)] for _ in range(n_models)]


def draw_counted(stream: MixtureBatches, counts: dict[str, int], seq_len: int) -> torch.Tensor:
    """The stream's next batch; adds the tokens each domain contributed (T per row) to counts."""
    batch, which = stream.sample()
    for d, rows in zip(
        stream.domains, np.bincount(which, minlength=len(stream.domains)), strict=True
    ):
        counts[d.name] += int(rows) * seq_len
    return torch.from_numpy(batch)


def stream_states(streams: list[list[MixtureBatches]]) -> list[Any]:
    """Per model, its stream's state (one stage, the format before stages) or its list of
    per-stage states."""
    return [[s.state() for s in per_model] if len(per_model) > 1 else per_model[0].state()
            for per_model in streams]  # fmt: skip


def set_stream_states(streams: list[list[MixtureBatches]], states: list[Any]) -> None:
    for per_model, state in zip(streams, states, strict=True):
        for stream, one in zip(per_model, state if len(per_model) > 1 else [state], strict=True):
            stream.set_state(one)
