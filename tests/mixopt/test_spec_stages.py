"""The stages section: validation at load (with field paths), what trials train through, the
repetition caps over all stages, and the runs-table and recommendation views of a schedule."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from mixopt.data.caps import apply_caps, caps_for_job, repetition_caps
from mixopt.errors import InfeasibleSpaceError, SpecError
from mixopt.runs_table import trial_row
from mixopt.space import MixtureSpace
from mixopt.spec import parse_spec
from mixopt.spec.stages import fixed_tokens, overall, searched_share, stage_list
from mixopt.trials import Trial, TrialRequest
from proxies.config import StageConfig
from proxies.tokens import DomainTokens

MAIN = {"code": 0.2, "prose": 0.7, "dict": 0.1}
STAGES = [
    {"name": "main", "share": 0.8, "weights": MAIN},
    {"name": "anneal", "share": 0.2, "search": True},
]


def _spec(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t",
        "domains": [
            {"name": "code", "paths": ["code.jsonl"]},
            {"name": "prose", "paths": ["prose"]},
            {"name": "dict", "paths": ["d/*.txt"]},
        ],
        "stages": STAGES,
    }
    base.update(sections)
    return base


def test_stages_build_the_trainers_stage_list() -> None:
    spec = parse_spec(_spec(proxy={"schedule": "wsd"}))
    stages = spec.train_stages()
    assert stages == (StageConfig(0.8, MAIN, "main"), StageConfig(0.2, None, "anneal"))
    train = spec.proxy.train_config(seed=3, stages=stages)
    assert train.stages == stages and train.schedule == "wsd" and train.seed == 3
    assert parse_spec(_spec(stages=[])).train_stages() == ()  # no stages: one mixture


def test_a_trial_trains_the_fixed_stages_and_its_mixture_in_the_searched_one() -> None:
    spec = parse_spec(_spec())
    trial_weights = {"code": 0.5, "prose": 0.25, "dict": 0.25}
    domain = DomainTokens("code", "c.train", "c.val")
    request = TrialRequest.build(
        "t0001", trial_weights, seed=0, proxy=spec.proxy, vocab_size=256, domains=[domain],
        stages=spec.train_stages(),
    )  # fmt: skip
    from mixopt.testing import consumed_mixture

    assert request.weights == trial_weights and request.train.stages[0].weights == MAIN
    assert request.train.stages[1].weights is None  # the trainer puts the trial's mixture here
    consumed = consumed_mixture(request)
    for d in MAIN:
        assert consumed[d] == pytest.approx(0.8 * MAIN[d] + 0.2 * trial_weights[d])
    assert request.to_dict()["train"]["stages"][0] == {
        "share": 0.8,
        "weights": MAIN,
        "name": "main",
    }


def test_the_spec_round_trips_with_stages() -> None:
    import yaml

    spec = parse_spec(_spec())
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec and again.stages[1].search


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (
            [{"share": 0.5, "weights": MAIN}, {"share": 0.4, "search": True}],
            r"s\.yaml: stages: shares must sum to 1, got \[0\.5, 0\.4\]",
        ),
        (
            [{"share": 0.5, "search": True}, {"share": 0.5, "search": True}],
            r"stages: exactly one stage must have search: true .* got stages \[0, 1\]",
        ),
        (
            [{"share": 0.5, "weights": MAIN}, {"share": 0.5, "weights": MAIN}],
            r"stages: exactly one stage must have search: true .* got none",
        ),
        (
            [{"share": 0.5, "weights": MAIN, "search": True}, {"share": 0.5, "weights": MAIN}],
            r"stages\.0: .*give either weights \(a fixed mixture\) or search: true, not both",
        ),
        (
            [{"share": 0.5}, {"share": 0.5, "search": True}],
            r"stages\.0: .*give either weights",
        ),
        (
            [{"share": 0.5, "weights": {"code": 0.5, "prose": 0.4}}, {"share": 0.5, "search": 1}],
            r"stages\.0: .*weights must sum to 1, got 0\.9",
        ),
        (
            [{"share": 0.5, "weights": {"code": 1.5, "prose": -0.5}}, {"share": 0.5, "search": 1}],
            r"stages\.0: .*weights must be finite and >= 0; bad for \['prose'\]",
        ),
        (
            [{"share": 0.5, "weights": {"web": 1.0}}, {"share": 0.5, "search": True}],
            r"stages\.0\.weights: unknown domain\(s\) \['web'\]",
        ),
        ([{"share": 0.0, "weights": MAIN}, {"share": 1.0, "search": True}], r"stages\.0\.share"),
        ([{"share": 1.0, "search": True, "lr": "wsd"}], r"stages\.0\.lr: Extra inputs"),
    ],
)
def test_bad_stages_name_the_field(stages: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec(stages=stages), source="s.yaml")


def test_every_proxy_needs_a_step_per_stage() -> None:
    many = [{"share": 0.25, "weights": MAIN}] * 3 + [{"share": 0.25, "search": True}]
    short = {"train_tokens": 3 * 16 * 128, "batch_size": 16, "seq_len": 128}  # 3 steps
    with pytest.raises(SpecError, match=r"stages: proxy dense:tiny:6144: 4 stages need at least"):
        parse_spec(_spec(stages=many, proxy=short, validate={"enabled": False}))


def test_schedule_helpers() -> None:
    spec = parse_spec(_spec())
    searched = {"code": 0.6, "prose": 0.4}
    assert searched_share(spec.stages) == 0.2 and searched_share([]) == 1.0
    assert fixed_tokens(spec.stages, 1000.0) == pytest.approx(
        {"code": 160, "prose": 560, "dict": 80}
    )
    listed = stage_list(spec.stages, searched)
    assert [s["searched"] for s in listed] == [False, True] and listed[1]["weights"] == searched
    assert stage_list([], searched) == [
        {"name": None, "share": 1.0, "weights": searched, "searched": True}
    ]
    mix = overall(spec.stages, searched)
    assert mix == pytest.approx({"code": 0.28, "prose": 0.64, "dict": 0.08})
    assert sum(mix.values()) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ caps


def test_caps_count_the_fixed_stages() -> None:
    tokens = {"code": 1_000, "prose": 10_000, "dict": 500}
    caps = repetition_caps(
        tokens, 10_000, max_epochs=2.0, fixed_tokens={"code": 1_600, "dict": 800},
        searched_share=0.2,
    )  # fmt: skip
    # (n * e - fixed) / (share * T): code (2000 - 1600) / 2000, dict (1000 - 800) / 2000
    assert caps.caps == pytest.approx({"code": 0.2, "prose": 1.0, "dict": 0.1})
    assert caps.needed == pytest.approx(2_000) and caps.supply == pytest.approx(20_600)
    assert "1,600 in fixed stages" in caps.describe()
    space = apply_caps(MixtureSpace.from_bounds(list(tokens)), caps)
    assert space.upper.tolist() == pytest.approx([0.2, 1.0, 0.1])
    # The same domain without the fixed stages: the plain cap, over the whole run.
    plain = repetition_caps(tokens, 10_000, max_epochs=2.0)
    assert plain.caps["code"] == pytest.approx(0.2) and plain.needed == 10_000


def test_fixed_stages_that_overdraw_a_domain_are_an_error() -> None:
    tokens = {"code": 1_000, "prose": 10_000}
    caps = repetition_caps(
        tokens, 10_000, max_epochs=2.0, fixed_tokens={"code": 2_500}, searched_share=0.5
    )
    with pytest.raises(
        InfeasibleSpaceError, match=r"fixed stages alone repeat domain\(s\) \['code'\]"
    ):
        apply_caps(MixtureSpace.from_bounds(list(tokens)), caps)
    starved = repetition_caps(
        {"code": 1_000, "prose": 1_000}, 10_000, max_epochs=2.0,
        fixed_tokens={"code": 1_900, "prose": 1_900}, searched_share=0.5,
    )  # fmt: skip
    with pytest.raises(InfeasibleSpaceError, match=r"searched stage needs 5,000 tokens"):
        apply_caps(MixtureSpace.from_bounds(["code", "prose"]), starved)


def test_caps_for_job_reads_the_stages() -> None:
    spec = parse_spec(_spec(target={"tokens": 10_000, "max_epochs": 2.0}))
    manifest = SimpleNamespace(train_tokens=lambda: {"code": 1_000, "prose": 10_000, "dict": 500})
    caps = caps_for_job(spec, manifest)  # type: ignore[arg-type]
    assert caps is not None and caps.searched_share == 0.2
    assert caps.fixed_tokens == pytest.approx({"code": 1_600, "prose": 5_600, "dict": 800})
    assert caps.caps["code"] == pytest.approx((2_000 - 1_600) / 2_000)


# ------------------------------------------------------------------------------- records


def test_runs_table_row_has_the_fixed_stages_and_counts_every_stage() -> None:
    spec = parse_spec(_spec())
    weights = {"code": 0.5, "prose": 0.5, "dict": 0.0}
    trial = Trial("t0001", 0, weights, seed=0, result={"tokens": 1_000, "metrics": {}})
    stages = stage_list(spec.stages, weights)
    train_tokens = {"code": 100, "prose": 1_000, "dict": 50}
    row = trial_row(
        trial, job="t", fidelity="f", data_hash="h", train_tokens=train_tokens, stages=stages
    )
    assert {k: v for k, v in row.items() if k.startswith("stage0/")} == {
        f"stage0/weight/{d}": w for d, w in MAIN.items()
    }
    assert not any(k.startswith("stage1/") for k in row)  # the searched stage: weight/<domain>
    assert row["weight/code"] == 0.5
    assert row["epochs/code"] == pytest.approx(1_000 * (0.8 * 0.2 + 0.2 * 0.5) / 100)
    assert row["epochs/dict"] == pytest.approx(1_000 * 0.8 * 0.1 / 50)
    unstaged = trial_row(trial, job="t", fidelity="f", data_hash="h", train_tokens=train_tokens)
    assert unstaged["epochs/code"] == pytest.approx(5.0)
    assert not any(k.startswith("stage") and "/" in k for k in unstaged)
    assert np.isclose(sum(overall(spec.stages, weights).values()), 1.0)


def test_tracked_params_name_the_stages() -> None:
    from mixopt.tracking.mlflow_content import trial_params

    spec = parse_spec(_spec())
    weights = {"code": 0.5, "prose": 0.5, "dict": 0.0}
    domain = DomainTokens("code", "c.train", "c.val")
    request = TrialRequest.build(
        "t0001", weights, seed=0, proxy=spec.proxy, vocab_size=256, domains=[domain],
        stages=spec.train_stages(),
    )  # fmt: skip
    params = trial_params(Trial("t0001", 0, weights, seed=0), request=request)
    assert params["stage0/share"] == 0.8 and params["stage1/share"] == 0.2
    assert {d: params[f"stage0/weight/{d}"] for d in MAIN} == MAIN
    assert params["stage1/searched"] is True and params["weight/code"] == "0.500000"
    assert "train.stages" not in params
    unstaged = TrialRequest.build(
        "t0001", weights, seed=0, proxy=spec.proxy, vocab_size=256, domains=[domain]
    )
    plain = trial_params(Trial("t0001", 0, weights, seed=0), request=unstaged)
    assert not any(k.startswith("stage") and "/" in k for k in plain)
