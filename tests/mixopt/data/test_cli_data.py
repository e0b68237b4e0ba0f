"""`mixopt data prepare`: the manifest summary, caps, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mixopt.cli.main import app

from .conftest import MakeSpec

cli = CliRunner()


def write_spec(make_spec: MakeSpec, tmp_path: Path, **sections: object) -> Path:
    spec = make_spec(**sections)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    return path


def test_prepare_prints_domains_and_caps(make_spec: MakeSpec, tmp_path: Path) -> None:
    path = write_spec(make_spec, tmp_path, target={"tokens": 50_000, "max_epochs": 2})
    result = cli.invoke(app, ["data", "prepare", str(path), "-q"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("code", "bible", "dictionary", "max weight", "tokenizer:"):
        assert name in result.output
    as_json = cli.invoke(app, ["data", "prepare", str(path), "-q", "--json"])
    manifest = json.loads(as_json.output)
    assert [d["name"] for d in manifest["domains"]] == ["code", "bible", "dictionary"]


def test_prepare_reports_an_unreachable_budget(make_spec: MakeSpec, tmp_path: Path) -> None:
    path = write_spec(make_spec, tmp_path, target={"tokens": 1e12})
    result = cli.invoke(app, ["data", "prepare", str(path), "-q"])
    assert result.exit_code == 2
    assert "error: target.tokens = 1,000,000,000,000 cannot be reached" in result.output


def test_prepare_reports_bad_data(make_spec: MakeSpec, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": nope}\n')
    domains = [{"name": "a", "paths": [str(bad)]}, {"name": "b", "paths": [str(bad)]}]
    path = write_spec(make_spec, tmp_path, domains=domains)
    result = cli.invoke(app, ["data", "prepare", str(path), "-q"])
    assert result.exit_code == 2 and "bad.jsonl:2: malformed JSON" in result.output


def test_prepare_lists_eval_sets_apart_from_the_domains(
    make_spec: MakeSpec, tmp_path: Path
) -> None:
    from .conftest import CORPUS

    domains = [
        {"name": "code", "paths": [str(CORPUS / "code")]},
        {"name": "bible", "paths": [str(CORPUS / "bible" / "[egpr]*.txt")]},
    ]
    evals = [{"name": "gospel", "paths": [str(CORPUS / "bible" / "john_01.txt")]}]
    path = write_spec(make_spec, tmp_path, domains=domains, evals=evals, target={"tokens": 20_000})
    result = cli.invoke(app, ["data", "prepare", str(path), "-q"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "gospel (eval)" in line)
    assert row.count(" - ") >= 3  # no train tokens, no natural share, no max weight
    as_json = cli.invoke(app, ["data", "prepare", str(path), "-q", "--json"])
    manifest = json.loads(as_json.output)
    assert [d["name"] for d in manifest["evals"]] == ["gospel"]
    assert manifest["evals"][0]["train_tokens"] == 0
