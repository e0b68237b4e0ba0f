"""Probe tasks in the spec: their files are checked line by line at load time, their names are
their own, their metrics may be named by objectives and guard rails, and on the service their
files are read only inside the data roots."""

from __future__ import annotations

import json
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
GOOD = {"context": "Acanthine:", "choices": [" of the plant acanthus", " a worm"], "answer": 0}


def write_task(folder: Path, lines: list[Any], name: str = "task.jsonl") -> Path:
    path = folder / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def spec(probes: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    return {"name": "probes", "domains": DOMAINS, "probes": probes, **sections}


def load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def test_relative_probe_paths_resolve_and_metrics_are_reported(tmp_path: Path) -> None:
    write_task(tmp_path, [GOOD, {**GOOD, "answer": 1}])
    job = load(tmp_path, spec([{"name": "define", "path": "task.jsonl"}]))
    assert job.probes[0].path == str(tmp_path / "task.jsonl")
    assert job.probes[0].max_items == 1000
    reported = job.reported_metrics()
    assert {
        "probe/define/accuracy",
        "probe/define/accuracy_norm",
        "probe/define/margin",
    } <= set(reported)
    assert "val_loss/code" in reported


def test_question_is_an_alias_of_context(tmp_path: Path) -> None:
    question = {"question": "Acanthine?", "choices": ["a", "b"], "answer": 1}
    write_task(tmp_path, [question])
    assert load(tmp_path, spec([{"name": "q", "path": "task.jsonl"}])).probes[0].name == "q"
    write_task(tmp_path, [{**question, "context": "both"}])
    with pytest.raises(SpecError, match="not both"):
        load(tmp_path, spec([{"name": "q", "path": "task.jsonl"}]))


@pytest.mark.parametrize(
    ("bad_line", "match"),
    [
        ({"context": "c", "choices": ["a", "b"]}, r":2: missing 'answer'"),
        ({"context": "c", "choices": ["a", "b"], "answer": 2}, r":2: answer 2 is out of range"),
        ({"context": "c", "choices": ["a", "b"], "answer": -1}, r":2: answer -1 is out of range"),
        ({"context": "c", "choices": ["a", "b"], "answer": "0"}, r":2: 'answer' must be an int"),
        ({"context": "c", "choices": ["a", "b"], "answer": True}, r":2: 'answer' must be an int"),
        ({"context": "c", "choices": ["a"], "answer": 0}, r":2: 'choices' must list at least 2"),
        ({"context": "c", "choices": "ab", "answer": 0}, r":2: 'choices' must list at least 2"),
        ({"context": "c", "choices": ["a", ""], "answer": 0}, r":2: choice 1 must be a non-emp"),
        ({"choices": ["a", "b"], "answer": 0}, r":2: 'context' \(or 'question'\) must be"),
        ('{"context": "c", "choices": ["a", "b"], "answer": 0', r":2: not valid JSON"),
        ("[1, 2]", r":2: an item must be a JSON object"),
    ],
)
def test_a_bad_item_names_the_file_and_line(tmp_path: Path, bad_line: Any, match: str) -> None:
    path = write_task(tmp_path, [GOOD, bad_line, GOOD])
    with pytest.raises(SpecError, match=match) as error:
        load(tmp_path, spec([{"name": "define", "path": "task.jsonl"}]))
    assert f"probes.0 ('define'): {path}:2: " in str(error.value)


def test_an_empty_or_missing_task_file_is_refused(tmp_path: Path) -> None:
    write_task(tmp_path, ["", "   "])
    with pytest.raises(SpecError, match=r"task\.jsonl: no items"):
        load(tmp_path, spec([{"name": "define", "path": "task.jsonl"}]))
    with pytest.raises(SpecError, match=r"nothere\.jsonl: cannot read"):
        load(tmp_path, spec([{"name": "define", "path": "nothere.jsonl"}]))


@pytest.mark.parametrize(
    ("probes", "extra", "match"),
    [
        ([{"name": "d", "path": "t"}, {"name": "d", "path": "u"}], {}, r"duplicate names \['d'\]"),
        ([{"name": "code", "path": "t"}], {}, r"probes\.0\.name: 'code' is also the name of dom"),
        (
            [{"name": "gospel", "path": "t"}],
            {"evals": [{"name": "gospel", "paths": [str(CORPUS / "bible" / "john_01.txt")]}]},
            r"'gospel' is also the name of eval set",
        ),
        ([{"name": "a/b", "path": "t"}], {}, r"probes\.0\.name"),
        ([{"name": "d", "path": "t", "max_items": 0}], {}, r"probes\.0\.max_items"),
    ],
)
def test_bad_probe_entries_are_spec_errors(
    probes: list[dict[str, Any]], extra: dict[str, Any], match: str
) -> None:
    with pytest.raises(SpecError, match=match):
        parse_spec(spec(probes, **extra))


def test_objectives_and_guard_rails_may_name_probe_metrics(tmp_path: Path) -> None:
    write_task(tmp_path, [GOOD])
    job = load(
        tmp_path,
        spec(
            [{"name": "define", "path": "task.jsonl"}],
            search={"strategy": "pareto"},
            objective={
                "metrics": {"val_loss/code": 1.0},
                "constraints": [
                    {"metric": "probe/define/margin", "max_value": 0.5},
                    {"metric": "probe/define/accuracy_norm", "max_increase": 0.1},
                ],
            },
        ),
    )
    assert [c.metric for c in job.objective.constraints] == [
        "probe/define/margin",
        "probe/define/accuracy_norm",
    ]
    maximise = parse_spec(
        spec(
            [{"name": "define", "path": "unchecked.jsonl"}],  # no base_dir: files not read
            objective={"metrics": {"probe/define/accuracy": 1.0}, "direction": "maximize"},
        )
    )
    assert maximise.objective_weights() == {"probe/define/accuracy": 1.0}


def test_an_unknown_probe_metric_is_refused() -> None:
    probes = [{"name": "define", "path": "t.jsonl"}]
    with pytest.raises(SpecError, match=r"unknown metric\(s\) \['probe/define/f1'\]") as error:
        parse_spec(spec(probes, objective={"metrics": {"probe/define/f1": 1.0}}))
    assert "probe/define/accuracy" in str(error.value)
    with pytest.raises(SpecError, match=r"constraints\.0\.metric: unknown metric 'probe/other/"):
        parse_spec(
            spec(
                probes,
                search={"strategy": "pareto"},
                objective={"constraints": [{"metric": "probe/other/margin", "max_value": 1.0}]},
            )
        )


def test_the_service_reads_probe_files_only_inside_its_data_roots(tmp_path: Path) -> None:
    from mixopt.service.admission import admit
    from mixopt.service.policy import Rejected
    from mixopt.service.settings import ServiceSettings

    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    write_task(root, [GOOD])
    write_task(outside, ["not json at all"])
    settings = ServiceSettings(
        tokens={"alice": "alice-token-0123456789abcdef"},
        state_dir=tmp_path / "state",
        data_roots=[root, CORPUS],
        runner="local",
    )
    ok = admit(spec([{"name": "define", "path": "task.jsonl"}]), settings, base_dir=str(root))
    assert ok.probes[0].path == str(root / "task.jsonl")
    with pytest.raises(Rejected) as error:  # refused by path, before its content is read
        admit(spec([{"name": "define", "path": str(outside / "task.jsonl")}]), settings)
    assert error.value.status == 403
    assert "probes.0.path" in str(error.value) and "outside the allowed data roots" in str(
        error.value
    )
    assert "JSON" not in str(error.value)
    write_task(root, [GOOD, {"context": "c", "choices": ["a", "b"], "answer": 5}], "bad.jsonl")
    with pytest.raises(Rejected, match=r"bad\.jsonl:2: answer 5 is out of range") as error:
        admit(spec([{"name": "define", "path": "bad.jsonl"}]), settings, base_dir=str(root))
    assert error.value.status == 422


def test_a_job_process_refuses_a_probe_file_outside_the_read_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixopt.data.probes import read_probe_file
    from mixopt.data.sources import READ_ROOTS_ENV, ReadRoots
    from mixopt.errors import DataError

    root = tmp_path / "data"
    root.mkdir()
    secret = write_task(tmp_path, [GOOD], "secret.jsonl")
    (root / "link.jsonl").symlink_to(secret)
    monkeypatch.setenv(READ_ROOTS_ENV, ReadRoots((root,)).to_env())
    with pytest.raises(DataError, match="outside the service's data roots"):
        read_probe_file(root / "link.jsonl")
