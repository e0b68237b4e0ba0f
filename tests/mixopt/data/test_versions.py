"""Data versions: per-domain hashes in the runs table, stale trials, the mixing gate, `mixopt runs`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixopt.cli.main import app
from mixopt.data import DataManifest, prepare_data
from mixopt.data.versions import DataState, check_versions, current_state, stale_reasons
from mixopt.errors import DataError
from mixopt.runs_table import trial_row, write_runs
from mixopt.spec import JobSpec
from mixopt.trials import Trial, TrialStatus

from .conftest import CORPUS, LogCollector, MakeSpec, corpus_domains

cli = CliRunner()


def copied_corpus(tmp_path: Path) -> list[dict[str, object]]:
    shutil.copytree(CORPUS, tmp_path / "corpus")
    domains = corpus_domains()
    for d in domains:
        d["paths"] = [str(p).replace(str(CORPUS), str(tmp_path / "corpus")) for p in d["paths"]]  # type: ignore[attr-defined]
    return domains


def make_row(trial_id: str, manifest: DataManifest, weights: dict[str, float]) -> dict[str, object]:
    trial = Trial(trial_id, 0, weights, seed=0, status=TrialStatus.COMPLETED)
    trial.result = {"metrics": {"val_loss/code": 3.0}, "objective": 3.0, "tokens": 40_000}
    return trial_row(
        trial,
        job="test",
        fidelity="dense:tiny:40000",
        data_hash=manifest.data_hash,
        domain_hashes=manifest.domain_hashes(),
        tokenizer_hash=manifest.tokenizer_hash[:16],
        train_tokens=manifest.train_tokens(),
    )


def job_with_trials(spec: JobSpec, tmp_path: Path) -> tuple[Path, DataManifest]:
    manifest = prepare_data(spec, log=LogCollector())
    job = tmp_path / "job"
    job.mkdir()
    (job / "spec.yaml").write_text(spec.to_yaml())
    rows = [
        make_row("t0000", manifest, {"code": 0.5, "bible": 0.25, "dictionary": 0.25}),
        make_row("t0001", manifest, {"code": 0.2, "bible": 0.4, "dictionary": 0.4}),
    ]
    write_runs(rows, job / "runs.parquet")
    return job, manifest


def test_rows_carry_domain_hashes_tokenizer_and_epochs(make_spec: MakeSpec, tmp_path: Path) -> None:
    job, manifest = job_with_trials(make_spec(), tmp_path)
    frame = pd.read_parquet(job / "runs.parquet")
    row = frame.iloc[0]
    for name, shards in manifest.domains.items():
        assert row[f"data_hash/{name}"] == shards.content_hash[:16]
        assert row[f"epochs/{name}"] == pytest.approx(
            40_000 * row[f"weight/{name}"] / shards.train_tokens
        )
    assert row["tokenizer_hash"] == manifest.tokenizer_hash[:16]


def test_current_state_matches_until_a_domain_changes(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec(copied_corpus(tmp_path))
    job, manifest = job_with_trials(spec, tmp_path)
    row = pd.read_parquet(job / "runs.parquet").iloc[0].to_dict()
    state = current_state(spec)
    assert state.domains == manifest.domain_hashes()
    assert state.tokenizer == manifest.tokenizer_hash[:16]
    assert stale_reasons(row, state) == []
    (tmp_path / "corpus" / "bible" / "ruth_01.txt").write_text("And it came to pass.\n")
    changed = current_state(spec)
    reasons = stale_reasons(row, changed)
    assert reasons[0].startswith("bible changed (") and len(reasons) == 2
    assert reasons[1] == "tokenizer would be retrained"  # a BPE trained on the old data
    # a fixed tokenizer file: only the changed domain is named
    fixed = spec.model_copy(deep=True)
    fixed.tokenizer = type(spec.tokenizer)(kind="file", path=manifest.tokenizer_path)
    assert [r.split(" (")[0] for r in stale_reasons(row, current_state(fixed))] == ["bible changed"]


def test_stale_reasons_for_missing_and_unknown_versions() -> None:
    state = DataState({"a": "1111", "b": None}, "tok", {"b": "gone"})
    row = {
        "data_hash/a": "1111",
        "data_hash/b": "2222",
        "data_hash/c": "3333",
        "tokenizer_hash": "old",
    }
    assert stale_reasons(row, state) == [
        "b: unreadable now",
        "c: no longer a domain",
        "tokenizer changed (old -> tok)",
    ]
    assert stale_reasons({"data_hash/a": "1111"}, DataState({"a": "1111", "n": "9"}, None)) == [
        "n: not in the trial's data"
    ]
    assert stale_reasons({"data_hash": "x"}, state) == [
        "unknown: the trial has no per-domain data hashes"
    ]
    assert (
        stale_reasons(
            {"data_hash/a": "1111", "data_hash/b": float("nan")}, DataState({"a": "1111"}, None)
        )
        == []
    )


def test_mixing_versions_is_refused_unless_allowed(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec(copied_corpus(tmp_path))
    job, old = job_with_trials(spec, tmp_path)
    rows = pd.read_parquet(job / "runs.parquet").to_dict(orient="records")
    assert check_versions(rows, old) == []
    (tmp_path / "corpus" / "code" / "stdlib_excerpts.jsonl").write_text(
        '{"text": "import os"}\n' * 200
    )
    new = prepare_data(spec, log=LogCollector())
    with pytest.raises(
        DataError,
        match=r"2 trial\(s\) trained on other versions of the data — t0000: code changed .*allow_mixed_versions",
    ):
        check_versions(rows, new)
    assert check_versions(rows, new, allow_mixed=True) == ["t0000", "t0001"]


def test_runs_command_marks_stale_trials(make_spec: MakeSpec, tmp_path: Path) -> None:
    spec = make_spec(copied_corpus(tmp_path))
    job, _ = job_with_trials(spec, tmp_path)
    result = cli.invoke(app, ["runs", "show", str(job), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(t["trial_id"], t["stale"]) for t in lines] == [("t0000", []), ("t0001", [])]
    (tmp_path / "corpus" / "dictionary" / "gcide_entries.parquet").unlink()
    result = cli.invoke(app, ["runs", "show", str(job)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "2 of 2 trial(s) stale" in result.output
    assert "dictionary: unreadable now" in result.output
    assert "note: dictionary: domain 'dictionary'" in result.output
    missing = cli.invoke(app, ["runs", "show", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a job directory" in missing.output
