"""Probe scoring: hand-checked log-likelihoods, accuracy, accuracy_norm and margin on a model
whose log-probabilities are fixed; truncation keeps the context's end; a real GPT's batched,
padded scores match a direct computation; stacked models score like their members."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from proxies.config import GPTConfig
from proxies.probe_tasks import ProbeItem, ProbeTask, load_probe_task, save_probe_task
from proxies.probes import choice_loglikelihoods, score_probe, score_probes, truncate
from proxies.stacked import StackedGPT

# next-token probabilities of the stub models, by conditioning token (rows sum to 1)
P = [
    [0.1, 0.6, 0.2, 0.1],
    [0.25, 0.25, 0.25, 0.25],
    [0.1, 0.1, 0.1, 0.7],
    [0.25, 0.25, 0.25, 0.25],
]
CPU = torch.device("cpu")


class Bigram(nn.Module):
    """Logits whose softmax is P[previous token] at every position."""

    def __init__(self, seq_len: int = 16, first_token: bool = False) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(seq_len=seq_len)
        self.table = torch.log(torch.tensor(P))
        self.first_token = first_token  # condition on the window's first token instead
        self.calls: list[tuple[int, ...]] = []

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        assert idx.shape[1] <= self.cfg.seq_len
        self.calls.append(tuple(idx.shape))
        assert not self.training
        if self.first_token:
            return self.table[idx[:, :1]].expand(-1, idx.shape[1], -1)
        return self.table[idx]


def item(context, choices, nbytes, answer):
    return ProbeItem(tuple(context), tuple(tuple(c) for c in choices), tuple(nbytes), answer)


TASK = ProbeTask(
    "hand",
    (
        item([0], [[1], [2, 3]], [4, 4], 1),  # raw and per-byte pick 0: both wrong
        item([0], [[1], [2, 3]], [1, 8], 1),  # raw picks 0 (wrong), per byte picks 1 (right)
        item([3, 0], [[1], [3], [2]], [1, 1, 1], 0),  # both pick 0: right
    ),
)


@pytest.mark.parametrize("batch_size", [1, 2, 7])
def test_scores_match_the_hand_computation(batch_size):
    model = Bigram().train()
    ll = choice_loglikelihoods(model, TASK, CPU, batch_size)
    assert ll[0] == pytest.approx([math.log(0.6), math.log(0.2) + math.log(0.7)])
    assert ll[2] == pytest.approx([math.log(0.6), math.log(0.1), math.log(0.2)])
    assert model.training  # left in the mode it was in
    metrics = score_probe(model, TASK, CPU, batch_size)
    margins = [
        (math.log(0.2 * 0.7) - math.log(0.6)) / 4,
        math.log(0.2 * 0.7) / 8 - math.log(0.6),
        math.log(0.6) - math.log(0.2),
    ]
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    assert metrics["accuracy_norm"] == pytest.approx(2 / 3)
    assert metrics["margin"] == pytest.approx(sum(margins) / 3)
    assert all(shape[0] <= batch_size for shape in model.calls)


def test_ties_go_to_the_first_choice():
    task = ProbeTask("ties", (item([1], [[0], [2]], [1, 1], 0), item([1], [[0], [2]], [1, 1], 1)))
    metrics = score_probe(Bigram(), task, CPU, 4)
    assert metrics["accuracy"] == 0.5 and metrics["margin"] == pytest.approx(0.0)


def test_truncation_keeps_the_end_of_the_context():
    assert truncate([1, 2, 3, 4, 5, 6], [7, 8], 4) == ([4, 5, 6, 7, 8], 2)
    assert truncate([1, 2], [7, 8], 4) == ([1, 2, 7, 8], 2)
    assert truncate([1], [5, 6, 7, 8, 9, 10], 4) == ([6, 7, 8, 9, 10], 4)
    # the model conditions on the window's first token: kept end [0] -> P[0], start [2] -> P[2]
    task = ProbeTask("long", (item([2, 2, 2, 0], [[1], [3]], [1, 1], 0),))
    model = Bigram(seq_len=1, first_token=True)
    assert choice_loglikelihoods(model, task, CPU, 2)[0] == pytest.approx(
        [math.log(0.6), math.log(0.1)]
    )
    assert all(shape[1] <= 1 for shape in model.calls)


def tiny_config(seq_len: int = 12) -> GPTConfig:
    return GPTConfig(vocab_size=16, seq_len=seq_len, n_layer=1, n_head=2, d_model=16, d_ff=32)


def random_task(seed: int, n_items: int = 6) -> ProbeTask:
    g = torch.Generator().manual_seed(seed)

    def ids(n: int) -> list[int]:
        return torch.randint(0, 16, (n,), generator=g).tolist()

    items = []
    for i in range(n_items):
        n_choices = 2 + i % 3
        choices = [ids(1 + (i + j) % 4) for j in range(n_choices)]
        items.append(item(ids(3 + 3 * i), choices, [2 + j for j in range(n_choices)], i % 2))
    return ProbeTask("random", tuple(items))


def test_a_real_gpt_padded_in_batches_scores_like_one_sequence_at_a_time():
    torch.manual_seed(0)
    model = tiny_config().build().eval()
    task = random_task(1)  # contexts up to 18 tokens: some are cut to the 12-token window
    batched = choice_loglikelihoods(model, task, CPU, 5)
    for i, probe_item in enumerate(task.items):
        for j, choice in enumerate(probe_item.choices):
            tokens, n = truncate(probe_item.context, choice, model.cfg.seq_len)
            seq = torch.tensor([tokens])
            with torch.no_grad():
                logp = torch.log_softmax(model.logits(seq[:, :-1]).float(), dim=-1)[0]
            picked = logp[torch.arange(len(tokens) - 1), seq[0, 1:]]
            assert batched[i][j] == pytest.approx(float(picked[-n:].sum()), abs=1e-4)
    metrics = score_probe(model, task, CPU, 3)
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["accuracy_norm"] <= 1


def test_a_stack_scores_each_model_like_the_model_alone():
    cfg = tiny_config()
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(cfg.build())
    stack = StackedGPT.from_models(models)
    task = random_task(2)
    stacked = score_probes(stack, [task], CPU, 4)
    alone = [score_probes(m, [task], CPU, 4)[0] for m in models]
    assert len(stacked) == 2
    for got, want in zip(stacked, alone, strict=True):
        assert set(got) == {f"probe/random/{m}" for m in ("accuracy", "accuracy_norm", "margin")}
        assert got == pytest.approx(want, abs=1e-5)
    assert stacked[0] != stacked[1]


def test_a_task_file_round_trips(tmp_path):
    path = tmp_path / "task.json"
    save_probe_task(TASK, path)
    assert load_probe_task(path) == TASK
    path.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match=r"task\.json"):
        load_probe_task(path)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (dict(choices=((1,),), choice_bytes=(1,)), "at least 2 choices"),
        (dict(answer=2), "not a choice index"),
        (dict(context=()), "at least one token"),
        (dict(choice_bytes=(1, 0)), "positive byte length"),
    ],
)
def test_a_malformed_item_is_refused(bad, message):
    fields = dict(context=(1,), choices=((1,), (2,)), choice_bytes=(1, 1), answer=0) | bad
    with pytest.raises(ValueError, match=message):
        ProbeItem(**fields)
