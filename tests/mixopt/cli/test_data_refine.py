"""``mixopt data refine``: one CLIMB iteration on a job over a small real corpus clustered by the
spec (the data stage is real; the trials are the synthetic executor's known losses)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mixopt.cli.main import app
from mixopt.data import prepare_data
from mixopt.job import JobDir
from mixopt.runners.local import InProcessRunner
from mixopt.search import run_job
from mixopt.spec import load_spec, parse_spec
from mixopt.testing import synthetic_execute

UNLABELED = Path(__file__).parents[2] / "assets" / "unlabeled" / "mixed.jsonl"
cli = CliRunner()


def climb_job(tmp_path: Path) -> Path:
    """A finished job over 3 clusters of the corpus whose objective only counts the losses of
    cluster_00 and cluster_01: weight on cluster_02 only takes from them (harmful)."""
    spec = parse_spec(
        {
            "name": "climb",
            "output_dir": str(tmp_path / "runs"),
            "domains": {"cluster": {"paths": [str(UNLABELED)], "k": 3}},
            "data": {"cache_dir": str(tmp_path / "cache"), "val_fraction": 0.1},
            "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
            "objective": {"metrics": {"val_loss/cluster_00": 0.5, "val_loss/cluster_01": 0.5}},
            "space": {"bounds": {"cluster_02": [0.0, 0.9]}},
            "search": {"initial_trials": 12, "rounds": 1, "trials_per_round": 4,
                       "strategy": "regmix", "candidates": 2000, "top_k": 40},
            "validate": {"enabled": False},
            "tracking": {"enabled": False},
        }
    )  # fmt: skip
    job = JobDir.new(spec, tmp_path / "job")
    run_job(spec, job.path, runner=InProcessRunner(synthetic_execute))
    return job.path


def test_one_refinement_iteration(tmp_path: Path) -> None:
    job = climb_job(tmp_path)
    exported = cli.invoke(app, ["export", str(job), "-f", "yaml"])  # cluster domains export
    assert exported.exit_code == 0, exported.output
    assert "document_shares:\n  cluster_00:" in exported.output
    out = tmp_path / "next" / "climb-r1.yaml"
    result = cli.invoke(app, ["data", "refine", str(job), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cluster_02: prune: harmful" in result.output
    assert "dropped space.bounds.cluster_02" in result.output
    spec = load_spec(out)
    assert spec.name == "climb-r1" and spec.cluster is None
    assert spec.domain_names == ["cluster_00", "cluster_01"]
    assert spec.space.bounds == {}
    text = out.read_text()
    assert text.startswith("# refined from job climb") and "# cluster_02: prune: harmful" in text
    for domain in spec.domains:  # the cluster files in the job's data cache
        assert [Path(p).name for p in domain.paths] == [f"{domain.name}.jsonl"]
        assert Path(domain.paths[0]).is_relative_to(tmp_path / "cache")
    with (tmp_path / "next" / "climb-r1.carried.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and list(rows[0]) == ["trial_id", "weight/cluster_00", "weight/cluster_01",
                                      "objective"]  # fmt: skip
    for row in rows:
        assert float(row["weight/cluster_00"]) + float(row["weight/cluster_01"]) == pytest.approx(1)
    assert f"{len(rows)} of 16 trials carried over" in " ".join(result.output.split())
    # the refined spec prepares: two domains, the same documents as the two clusters had
    manifest = prepare_data(spec, log=lambda _: None)
    assert list(manifest.domains) == ["cluster_00", "cluster_01"]
    # the carried trials warm-start a study on the refined domains
    study = tmp_path / "next" / "study.json"
    imported = cli.invoke(app, ["runs", "import", str(tmp_path / "next" / "climb-r1.carried.csv"),
                                "--weights", "weight/", "--target", "objective",
                                "--study", str(study)])  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert study.is_file()
    # never over an existing file
    again = cli.invoke(app, ["data", "refine", str(job), "--out", str(out)])
    assert again.exit_code != 0
    assert "already exists" in again.output


def test_refine_refuses_bad_input(tmp_path: Path, make_spec) -> None:
    missing = cli.invoke(app, ["data", "refine", str(tmp_path / "nope"), "--out", "x.yaml"])
    assert missing.exit_code != 0 and "no such job directory" in missing.output
    listed = make_spec(tracking={"enabled": False})
    job = JobDir.new(listed, tmp_path / "listed")
    job.write_spec(listed)
    out = cli.invoke(app, ["data", "refine", str(job.path), "--out", str(tmp_path / "r.yaml")])
    assert out.exit_code != 0 and "listed, not discovered" in out.output
    assert not (tmp_path / "r.yaml").exists()
    data = yaml.safe_load(listed.to_yaml())
    assert isinstance(data["domains"], list)  # listed specs are written as before
