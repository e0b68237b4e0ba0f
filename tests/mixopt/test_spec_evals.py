"""Eval sets in the spec: their names and files, and which metrics objectives and guard rails may
name (every metric a trial reports, eval sets' included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mixopt.errors import SpecError
from mixopt.spec import load_spec, parse_spec
from tests.conftest import CORPUS

DOMAINS = [
    {"name": "code", "paths": [str(CORPUS / "code")]},
    {"name": "bible", "paths": [str(CORPUS / "bible" / "[egpr]*.txt")]},
]
HELD_OUT = {"name": "gospel", "paths": [str(CORPUS / "bible" / "john_01.txt")]}


def spec(**sections: Any) -> dict[str, Any]:
    return {"name": "evals", "domains": DOMAINS, "evals": [HELD_OUT], **sections}


def test_an_objective_and_guard_rails_may_name_eval_set_metrics() -> None:
    job = parse_spec(
        spec(
            search={"strategy": "pareto"},
            objective={
                "metrics": {"val_loss/gospel": 1.0},
                "constraints": [
                    {"metric": "bpb/gospel", "max_value": 3.0},
                    {"metric": "val_loss/code", "max_increase": 0.01},
                ],
            },
        )
    )
    assert job.eval_names == ["gospel"]
    assert job.objective_weights() == {"val_loss/gospel": 1.0}
    assert {"val_loss/gospel", "bpb/gospel", "val_loss/code", "bpb/bible"} <= set(
        job.reported_metrics()
    )
    # the default objective stays the mean over the training domains
    assert parse_spec(spec()).objective_weights() == {"val_loss/code": 0.5, "val_loss/bible": 0.5}


def test_an_unknown_metric_lists_what_trials_report() -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(spec(objective={"metrics": {"val_loss/gospels": 1.0}}))
    message = str(error.value)
    assert "objective.metrics: unknown metric(s) ['val_loss/gospels']" in message
    assert "val_loss/gospel" in message and "bpb/gospel" in message and "val_loss/code" in message
    with pytest.raises(SpecError, match=r"objective\.constraints\.0\.metric: unknown metric"):
        parse_spec(
            spec(
                search={"strategy": "pareto"},
                objective={"constraints": [{"metric": "bpb/ood", "max_value": 2.0}]},
            )
        )


def test_metric_hooks_and_moe_metrics_may_be_named() -> None:
    hooks = {"metrics": ["accuracy", "my_pkg.probes:copy_probe"]}
    job = parse_spec(
        spec(
            proxy=hooks,
            search={"strategy": "pareto"},
            objective={
                "metrics": {"accuracy/gospel": -1.0, "copy_probe/exact": -0.5},
                "constraints": [{"metric": "copy_probe", "max_value": 1.0}],
            },
        )
    )
    assert "accuracy/gospel" in job.reported_metrics()
    assert job.hook_metrics() == ["copy_probe"]
    with pytest.raises(SpecError, match=r"copy_probe or copy_probe/<key>"):
        parse_spec(spec(proxy=hooks, objective={"metrics": {"other_probe/x": 1.0}}))
    # without the hook, its metrics are unknown
    with pytest.raises(SpecError, match=r"unknown metric\(s\) \['accuracy/gospel'\]"):
        parse_spec(spec(objective={"metrics": {"accuracy/gospel": -1.0}}))
    moe = parse_spec(spec(proxy={"arch": "moe"}, objective={"metrics": {"moe/max_load": 1.0}}))
    assert "moe/dropped_tokens" in moe.reported_metrics()
    with pytest.raises(SpecError, match=r"unknown metric\(s\) \['moe/max_load'\]"):
        parse_spec(spec(objective={"metrics": {"moe/max_load": 1.0}}))


@pytest.mark.parametrize(
    ("evals", "match"),
    [
        ([{"name": "code", "paths": ["x.txt"]}], r"evals: \['code'\] also name training domain"),
        ([HELD_OUT, {**HELD_OUT, "paths": ["y.txt"]}], r"evals: duplicate names \['gospel'\]"),
        ([{"name": "gospel", "paths": []}], r"evals\.0\.paths: List should have at least 1"),
        ([{"name": "bad name", "paths": ["x"]}], r"evals\.0\.name: String should match"),
        ([{"name": "x", "paths": ["x"], "max_tokens": 0}], r"evals\.0\.max_tokens"),
        ([{"name": "x", "paths": ["x"], "format": "bin"}], r"evals\.0: .*dtype"),
        (
            [{"name": "gospel", "paths": [str(CORPUS / "code" / ".." / "code")]}],
            r"evals\.0\.paths\.0: eval set 'gospel' names .*, which training domain 'code' "
            r"also names",
        ),
    ],
)
def test_bad_eval_sets_are_spec_errors(evals: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        parse_spec(spec(evals=evals))


def test_relative_eval_paths_resolve_against_the_spec_file(tmp_path: Path) -> None:
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "a.txt").write_text("held-out text\n")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec(evals=[{"name": "held", "paths": ["held"]}])))
    job = load_spec(path)
    assert job.evals[0].paths == [str(tmp_path / "held")]
    # the same file named relative to the spec as a domain and as an eval set is caught
    overlap = spec(
        domains=[*DOMAINS, {"name": "held_dom", "paths": ["held"]}],
        evals=[{"name": "held", "paths": [str(tmp_path / "held")]}],
    )
    path.write_text(yaml.safe_dump(overlap))
    with pytest.raises(SpecError, match=r"training domain 'held_dom'"):
        load_spec(path)
