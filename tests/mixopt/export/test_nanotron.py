"""nanotron: the data stage parsed back against nanotron's Nanoset schema.

nanotron's release on PyPI (0.4, installable here without a new torch) predates Nanosets and
data stages, and its repository is not reachable from here, so the export is checked against the
field names of the repository's ``DatasetStageArgs`` / ``DataArgs`` / ``NanosetDatasetsArgs``
dataclasses, not loaded by nanotron itself.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mixopt.export import export
from tests.mixopt.export.conftest import DOMAINS, sums_to_one


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
