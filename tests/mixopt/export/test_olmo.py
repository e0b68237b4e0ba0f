"""olmo: the source mixture parsed back, validated and built by the real OLMo-core (its sources
are token arrays: the weights are token shares); a staged job's one source mixture per stage."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from mixopt.export import export
from tests.mixopt.export.conftest import DOMAINS, STAGE_MAIN, staged_job, sums_to_one


def test_olmo_source_mixture(job, rec_weights, manifest):
    text = export(job, "olmo")
    assert "requested_tokens: 1000" in text and "eos_token_id 0" in text
    doc = yaml.safe_load(text)
    sources = doc["sources"]
    olmo_fields = {  # olmo_core.data.source_mixture.SourceMixtureConfig (OLMo-core 3.0)
        "source_name",
        "target_ratio",
        "paths",
        "max_repetition_ratio",
        "max_source_fraction",
    }
    assert list(doc) == ["sources"] and all(set(s) == olmo_fields for s in sources)
    assert [s["source_name"] for s in sources] == DOMAINS
    assert [s["target_ratio"] for s in sources] == [rec_weights[d] for d in DOMAINS]
    assert sums_to_one(s["target_ratio"] for s in sources)
    assert [s["paths"] for s in sources] == [[manifest[d]["train_path"]] for d in DOMAINS]
    assert [s["max_repetition_ratio"] for s in sources] == [2.0, 4.0, 4.0]  # epoch limits
    # OLMo-core refuses a source that cannot supply its share within its repetition limit
    for s in sources:
        flat = np.fromfile(s["paths"][0], dtype=manifest[s["source_name"]]["dtype"])
        assert len(flat) * s["max_repetition_ratio"] >= int(1000 * s["target_ratio"])


def test_olmo_mixture_builds_in_olmo_core(job, rec_weights, tmp_path):
    """With ai2-olmo-core (the `frameworks` extra, which scripts/test.sh installs)."""
    import olmo_core.data.source_mixture as mixtures

    path = tmp_path / "mixture.yaml"
    path.write_text(export(job, "olmo"))
    sources = mixtures.SourceMixtureList.from_file(path)
    sources.validate()
    config = mixtures.SourceMixtureDatasetConfig(
        source_list=sources,
        requested_tokens=1000,
        global_batch_size=64,
        render_tables=False,
        quiet=True,
    )
    built = config.build(npdtype=np.uint16, sequence_length=16)
    tokens = {o.name: sum(p.tokens for p in o.path_tokens) for o in built.sources}
    total = sum(tokens.values())
    for domain in DOMAINS:  # OLMo-core rounds each source to whole batches
        assert tokens[domain] / total == pytest.approx(rec_weights[domain], abs=0.03)


def test_olmo_without_a_target_budget_allows_no_repetition(job, tmp_path):
    copy = tmp_path / "job-copy"
    shutil.copytree(job, copy)
    spec = yaml.safe_load((copy / "spec.yaml").read_text())
    spec["target"]["tokens"] = None
    (copy / "spec.yaml").write_text(yaml.safe_dump(spec))
    text = export(copy, "olmo")
    assert "no target budget was set" in text
    assert {s["max_repetition_ratio"] for s in yaml.safe_load(text)["sources"]} == {1.0}


def test_staged_job_exports_one_source_mixture_per_stage(job, tmp_path, rec_weights, manifest):
    staged = staged_job(job, tmp_path)
    text = export(staged, "olmo")
    assert "this file holds only the searched" not in text
    doc = yaml.safe_load(text)
    assert list(doc) == ["stages"]
    main, anneal = doc["stages"]
    assert (main["name"], main["share"], main["start"], main["end"]) == ("main", 0.75, 0.0, 0.75)
    assert (anneal["name"], anneal["share"], anneal["start"], anneal["end"]) == (
        "anneal",
        0.25,
        0.75,
        1.0,
    )
    assert not main["searched"] and anneal["searched"]
    assert main["tokens"] == [0, 750] and anneal["tokens"] == [750, 1000]  # target.tokens 1000
    assert main["requested_tokens"] + anneal["requested_tokens"] == 1000
    expected = [STAGE_MAIN, rec_weights]
    for stage, weights in zip(doc["stages"], expected, strict=True):
        sources = stage["sources"]
        active = [d for d in DOMAINS if weights.get(d, 0) > 0]
        assert [s["source_name"] for s in sources] == active
        assert [s["target_ratio"] for s in sources] == [weights[d] for d in active]
        assert sums_to_one(s["target_ratio"] for s in sources)
        assert [s["paths"] for s in sources] == [[manifest[d]["train_path"]] for d in active]
    assert main["start"] < anneal["start"] and main["end"] == anneal["start"]


def test_staged_olmo_stages_load_in_olmo_core(job, tmp_path):
    """Each stage's sources are a SourceMixtureList OLMo-core validates."""
    import olmo_core.data.source_mixture as mixtures

    doc = yaml.safe_load(export(staged_job(job, tmp_path), "olmo"))
    for stage in doc["stages"]:
        sources = mixtures.SourceMixtureList.from_dict({"sources": stage["sources"]})
        sources.validate()
        assert [s.source_name for s in sources.sources] == [
            s["source_name"] for s in stage["sources"]
        ]
