"""Exports of a staged recommendation: json/yaml carry the schedule, megatron writes one blend per
stage with its range of the run, hf one interleaved dataset per stage (olmo and nanotron: their
own test files), and the formats without stages say that they hold the searched stage only. A
single-stage job exports as before."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from mixopt.errors import MixoptError
from mixopt.export import export
from tests.mixopt.export.conftest import DOMAINS, STAGE_MAIN, staged_job, sums_to_one

pytestmark = pytest.mark.filterwarnings("ignore:Transformer Engine and Apex:UserWarning")


@pytest.fixture
def staged(job: Path, tmp_path: Path) -> Path:
    return staged_job(job, tmp_path)


def test_json_and_yaml_carry_the_schedule(staged: Path, rec_weights: dict[str, float]) -> None:
    for doc in (json.loads(export(staged, "json")), yaml.safe_load(export(staged, "yaml"))):
        assert doc["mixture"] == rec_weights  # the searched stage's, as in a single-stage job
        assert list(doc)[:2] == ["mixture", "stages"]
        main, anneal = doc["stages"]
        assert main == {
            "name": "main", "share": 0.75, "start": 0.0, "end": 0.75, "searched": False,
            "mixture": {"code": 0.5, "bible": 0.5, "dictionary": 0.0}, "tokens": [0.0, 750.0],
        }  # fmt: skip
        assert anneal["searched"] and anneal["mixture"] == rec_weights
        assert (anneal["start"], anneal["end"], anneal["tokens"]) == (0.75, 1.0, [750.0, 1000.0])
        assert all(sums_to_one(s["mixture"].values()) for s in doc["stages"])


def test_single_stage_jobs_export_no_stages(job: Path) -> None:
    assert "stages" not in json.loads(export(job, "json"))
    assert "stages" not in json.loads(export(job, "hf-json"))
    assert "stages" not in export(job, "olmo")


def _blends(text: str) -> list[tuple[str, list[str]]]:
    """(the comment above it, the --data-path arguments) of every blend line."""
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("--data-path"):
            out.append((lines[i - 1], shlex.split(line)[1:]))
    return out


def test_megatron_writes_one_blend_per_stage(
    staged: Path, rec_weights: dict[str, float], manifest: dict, tmp_path: Path
) -> None:
    from megatron.core.datasets.utils import get_blend_from_list

    text = export(staged, "megatron")
    assert "2 stages, one --data-path each, in training order" in text
    assert "left out (weight 0)" not in text  # every domain trains in some stage
    (main_note, main), (anneal_note, anneal) = _blends(text)
    assert main_note == (
        "# stage 0 'main' (fixed): 0.75 of the tokens, iterations [0, 0.75) x --train-iters, "
        "tokens [0, 750) of target.tokens"
    )
    assert anneal_note.startswith("# stage 1 'anneal' (searched): 0.25 of the tokens, ")
    assert "iterations [0.75, 1) x --train-iters, tokens [750, 1,000)" in anneal_note
    prefixes, weights = get_blend_from_list(main)  # Megatron's own parser
    assert weights == [0.5, 0.5]
    assert [p + ".bin" for p in prefixes] == [manifest[d]["train_path"] for d in ("code", "bible")]
    prefixes, weights = get_blend_from_list(anneal)
    assert weights == [rec_weights[d] for d in DOMAINS]

    out = tmp_path / "megatron"
    written = _blends(export(staged, "megatron", data_dir=out))
    assert written[0][1][1::2] == [str((out / d).resolve()) for d in ("code", "bible")]
    assert written[1][1][1::2] == [str((out / d).resolve()) for d in DOMAINS]
    assert all((out / f"{d}.idx").is_file() for d in DOMAINS)


def test_hf_exports_one_dataset_per_stage(staged: Path, rec_weights: dict[str, float]) -> None:
    doc = json.loads(export(staged, "hf-json"))
    main, anneal = doc["stages"]
    assert set(main["probabilities"]) == {"code", "bible"} and not main["searched"]
    assert main["token_shares"] == {"code": 0.5, "bible": 0.5}
    assert anneal["probabilities"] == dict(zip(doc["datasets"], doc["probabilities"], strict=True))
    for stage in (main, anneal):
        assert sum(stage["probabilities"].values()) == pytest.approx(1.0)
    assert set(doc["sources"]) == set(DOMAINS)
    snippet = export(staged, "hf-python")
    namespace: dict[str, Any] = {}
    start = snippet.index("STAGES = ")
    exec(snippet[start : snippet.index("\n\n", start)], namespace)  # the literal is Python
    assert [s["name"] for s in namespace["STAGES"]] == ["main", "anneal"]
    assert namespace["STAGES"][0]["probabilities"] == main["probabilities"]
    compile(snippet, "hf.py", "exec")
    assert "stage_datasets = [" in snippet


@pytest.mark.parametrize("fmt", ["torchtitan", "streaming"])
def test_formats_without_stages_say_they_hold_the_searched_stage(staged: Path, fmt: str) -> None:
    text = export(staged, fmt)
    assert "this job's mixture has 2 stages; this file holds only the searched stage 1 " in text
    assert "'anneal' (0.25 of the tokens)" in text


def test_malformed_stages_are_an_error(job: Path, tmp_path: Path) -> None:
    bad = staged_job(job, tmp_path, stages=[{"name": "main", "weights": STAGE_MAIN}])
    with pytest.raises(MixoptError, match=r"stages\.0 must have a share and weights"):
        export(bad, "json")
