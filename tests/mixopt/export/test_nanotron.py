"""nanotron: the data stage parsed back against nanotron's Nanoset schema.

nanotron's release on PyPI (0.4, installable here without a new torch) predates Nanosets and
data stages, and its repository is not reachable from here, so the export is checked against the
field names of the repository's ``DatasetStageArgs`` / ``DataArgs`` / ``NanosetDatasetsArgs``
dataclasses, not loaded by nanotron itself. A staged job has one data stage per mixture stage,
starting at absolute steps when the run's steps are known (``batch_tokens``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import yaml

from mixopt.errors import MixoptError
from mixopt.export import export
from tests.mixopt.export.conftest import DOMAINS, STAGE_MAIN, staged_job, sums_to_one


def test_nanotron_data_stage(job, rec_weights, manifest):
    doc = yaml.safe_load(export(job, "nanotron"))
    (stage,) = doc["data_stages"]
    dataset = stage["data"]["dataset"]  # nanotron's NanosetDatasetsArgs
    assert dataset["dataset_weights"] == [rec_weights[d] for d in DOMAINS]
    assert sums_to_one(dataset["dataset_weights"])
    folders = [str(Path(manifest[d]["train_path"]).parent) for d in DOMAINS]
    assert dataset["dataset_folder"] == folders
    assert stage["start_training_step"] == 1
    assert set(stage) == {"name", "start_training_step", "data"}  # DatasetStageArgs
    assert set(stage["data"]) == {"dataset", "num_loading_workers", "seed"}  # DataArgs


THREE_STAGES = [
    {"name": "warmup", "share": 0.1, "weights": {"code": 1.0}, "searched": False},
    {"name": "main", "share": 0.6, "weights": STAGE_MAIN, "searched": False},
    {
        "name": "anneal",
        "share": 0.3,
        "weights": {"dictionary": 0.2, "bible": 0.8},
        "searched": True,
    },
]


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _entries(text: str) -> list[dict]:
    stages = yaml.safe_load(text)["data_stages"]
    for stage in stages:  # every entry is a DatasetStageArgs with its own weights
        assert set(stage) == {"name", "start_training_step", "data"}
        dataset = stage["data"]["dataset"]
        assert sums_to_one(dataset["dataset_weights"])
        assert len(dataset["dataset_folder"]) == len(dataset["dataset_weights"])
    assert len({s["name"] for s in stages}) == len(stages)  # nanotron wants unique names
    return stages


def test_staged_job_exports_one_data_stage_per_stage_at_absolute_steps(job, tmp_path, manifest):
    staged = staged_job(job, tmp_path, THREE_STAGES)
    text = export(staged, "nanotron", batch_tokens=40)  # target.tokens 1000 -> 25 steps
    stages = _entries(text)
    steps = round(1000 / 40)
    starts = [s["start_training_step"] for s in stages]
    assert starts == [1 + half_up(f * steps) for f in (Decimal(0), Decimal("0.1"), Decimal("0.7"))]
    assert starts == sorted(set(starts)) and starts[0] == 1
    assert all(isinstance(s, int) for s in starts)
    assert f"set tokens.train_steps: {steps}" in text
    folder = {d: str(Path(manifest[d]["train_path"]).parent) for d in DOMAINS}
    for stage, spec in zip(stages, THREE_STAGES, strict=True):
        dataset = stage["data"]["dataset"]
        active = [d for d in DOMAINS if spec["weights"].get(d, 0) > 0]
        assert dataset["dataset_folder"] == [folder[d] for d in active]
        assert dataset["dataset_weights"] == [spec["weights"][d] for d in active]
        assert stage["name"].endswith(spec["name"])
    assert "this file holds only the searched" not in text


def test_staged_job_without_steps_states_fractions_and_how_to_get_steps(job, tmp_path):
    staged = staged_job(job, tmp_path, THREE_STAGES)
    text = export(staged, "nanotron")
    starts = [s["start_training_step"] for s in _entries(text)]
    assert starts == [1, 0.1, 0.7]  # later stages: the fraction of the run, not a step
    assert "1 + round(fraction x tokens.train_steps)" in text
    assert "--batch-tokens" in text


def test_batch_tokens_errors(job, tmp_path):
    staged = staged_job(job, tmp_path, THREE_STAGES)
    with pytest.raises(MixoptError, match="too few for its stages"):
        export(staged, "nanotron", batch_tokens=400)  # 2 steps for 3 stages
    with pytest.raises(MixoptError, match="only used by the nanotron format, not 'olmo'"):
        export(staged, "olmo", batch_tokens=40)
    with pytest.raises(MixoptError, match="must be a whole number >= 1"):
        export(staged, "nanotron", batch_tokens=0)
    spec = yaml.safe_load((staged / "spec.yaml").read_text())
    spec["target"]["tokens"] = None
    (staged / "spec.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(MixoptError, match=r"target\.tokens, which this job does not set"):
        export(staged, "nanotron", batch_tokens=40)


def test_single_stage_job_with_batch_tokens_states_the_steps(job):
    plain = export(job, "nanotron")
    with_steps = export(job, "nanotron", batch_tokens=100)
    assert yaml.safe_load(with_steps) == yaml.safe_load(plain)  # the same single data stage
    assert "set tokens.train_steps: 10" in with_steps and "train_steps" not in plain


def test_export_command_takes_batch_tokens(job, tmp_path):
    from typer.testing import CliRunner

    from mixopt.cli.main import app

    staged = staged_job(job, tmp_path, THREE_STAGES)
    args = ["export", str(staged), "--format", "nanotron", "--batch-tokens", "40"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    starts = [s["start_training_step"] for s in yaml.safe_load(result.stdout)["data_stages"]]
    assert starts == [
        s["start_training_step"] for s in _entries(export(staged, "nanotron", batch_tokens=40))
    ]
