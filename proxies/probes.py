"""Score downstream probe tasks on a proxy by log-likelihood, the lm-evaluation-harness way.

For each item of a :class:`~proxies.probe_tasks.ProbeTask` the model scores every choice
continuation given the context: ``ll_j`` is the sum of the log-probabilities of choice ``j``'s
tokens after the context. Per task (:func:`score_probe`):

- ``accuracy``: the share of items whose highest ``ll_j`` is the answer (harness ``acc``);
- ``accuracy_norm``: the same with ``ll_j / bytes_j``, the choice's log-likelihood per UTF-8
  byte of its text (harness ``acc_norm`` normalised by bytes, not characters);
- ``margin``: the mean over items of the answer's per-byte log-likelihood minus the best wrong
  choice's (nats per byte). It moves smoothly while accuracy is still at chance, so tiny proxies'
  mixtures still compare.

Ties go to the first choice (``argmax``). A context and choice longer than the model's context
window are cut from the left, as the harness does: the context's end is kept (the tokens next to
the continuation) and, only when the choice alone is longer than the window, the choice's first
tokens drop out too (its ``ll`` then sums the tokens that fit). Choices are batched,
``batch_size`` sequences per forward, right-padded; scoring runs in eval mode without gradients
and under the same autocast as the validation loss (bf16 on CUDA). :func:`score_probes` scores
every model of a ``StackedGPT`` (or the one ``GPT``) and names the metrics
``probe/<task>/<metric>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from proxies.gpt import GPT
from proxies.probe_tasks import PROBE_PREFIX, ProbeTask
from proxies.runtime import autocast_for
from proxies.stacked import StackedGPT


def truncate(context: Sequence[int], choice: Sequence[int], seq_len: int) -> tuple[list[int], int]:
    """The scored sequence (at most ``seq_len + 1`` tokens: the model reads all but the last)
    and how many of its final tokens are the choice's."""
    whole = [*context, *choice][-(seq_len + 1) :]
    return whole, min(len(choice), len(whole) - 1)


@torch.inference_mode()
def choice_loglikelihoods(
    model: GPT, task: ProbeTask, device: torch.device, batch_size: int
) -> list[list[float]]:
    """``ll[i][j]``: the summed log-probability of item ``i``'s choice ``j`` after its context."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    seq_len = model.cfg.seq_len
    requests = [  # (item, choice, tokens, continuation length)
        (i, j, *truncate(item.context, choice, seq_len))
        for i, item in enumerate(task.items)
        for j, choice in enumerate(item.choices)
    ]
    requests.sort(key=lambda r: -len(r[2]))  # similar lengths share a batch: less padding
    ll = [[0.0] * len(item.choices) for item in task.items]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(requests), batch_size):
            batch = requests[start : start + batch_size]
            width = max(len(r[2]) for r in batch) - 1
            ids = torch.zeros(len(batch), width + 1, dtype=torch.long)
            mask = torch.zeros(len(batch), width, dtype=torch.bool)
            for row, (_, _, tokens, n_cont) in enumerate(batch):
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, len(tokens) - 1 - n_cont : len(tokens) - 1] = True
            ids, mask = ids.to(device), mask.to(device)
            with autocast_for(device):
                logits = model.logits(ids[:, :-1])  # (b, width, V)
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (b, width)
            sums = (picked * mask).double().sum(dim=1).tolist()
            for (i, j, _, _), value in zip(batch, sums, strict=True):
                ll[i][j] = value
    finally:
        model.train(was_training)
    return ll


def probe_metrics(task: ProbeTask, ll: Sequence[Sequence[float]]) -> dict[str, float]:
    """``accuracy``, ``accuracy_norm`` and ``margin`` of ``task`` from its choices' summed
    log-likelihoods ``ll[i][j]`` (see the module docstring)."""
    correct = correct_norm = 0
    margin = 0.0
    for item, scores in zip(task.items, ll, strict=True):
        per_byte = [s / n for s, n in zip(scores, item.choice_bytes, strict=True)]
        correct += _argmax(scores) == item.answer
        correct_norm += _argmax(per_byte) == item.answer
        wrong = max(v for j, v in enumerate(per_byte) if j != item.answer)
        margin += per_byte[item.answer] - wrong
    n = len(task.items)
    return {"accuracy": correct / n, "accuracy_norm": correct_norm / n, "margin": margin / n}


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda j: (values[j], -j))  # ties: the first


def score_probe(
    model: GPT, task: ProbeTask, device: torch.device, batch_size: int
) -> dict[str, float]:
    """``accuracy``, ``accuracy_norm`` and ``margin`` of one model on one task."""
    return probe_metrics(task, choice_loglikelihoods(model, task, device, batch_size))


def score_probes(
    model: GPT | StackedGPT,
    tasks: Sequence[ProbeTask],
    device: torch.device,
    batch_size: int,
) -> list[dict[str, float]]:
    """``probe/<task>/<metric>`` of every task, for each model (one for a GPT, K for a stack)."""
    models = (
        [model.unstack(k) for k in range(model.n_models)]
        if isinstance(model, StackedGPT)
        else [model]
    )
    return [score_with(single, tasks, device, batch_size) for single in models]


def score_with(
    model: GPT, tasks: Sequence[ProbeTask], device: torch.device, batch_size: int
) -> dict[str, float]:
    """``probe/<task>/<metric>`` of one model on every task."""
    out: dict[str, float] = {}
    for task in tasks:
        for metric, value in score_probe(model, task, device, batch_size).items():
            out[f"{PROBE_PREFIX}/{task.name}/{metric}"] = value
    return out


def check_probe_tokens(tasks: Sequence[ProbeTask], vocab_size: int) -> None:
    """Out-of-range ids would crash the embedding: fail before training, naming the task."""
    for task in tasks:
        top = task.max_token_id()
        if top >= vocab_size:
            raise ValueError(
                f"probe task {task.name!r} has token id {top} outside the model's vocab_size "
                f"{vocab_size} (tokenized with another tokenizer?)"
            )
