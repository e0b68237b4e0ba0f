"""json and yaml exports, the header every export carries, the registry and the CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from mixopt import __version__
from mixopt.cli.main import app
from mixopt.errors import MixoptError
from mixopt.export import FORMATS, export, get_exporter, registered_exporters
from tests.mixopt.export.conftest import DOMAINS, sums_to_one


def test_json_and_yaml_round_trip(job, rec_weights, manifest):
    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        doc = load(export(job, fmt))
        assert doc["mixture"] == rec_weights and list(doc["mixture"]) == DOMAINS
        assert sums_to_one(doc["mixture"].values())
        assert doc["job"] == "exp" and doc["data_hash"]
        assert doc["repetition_caps"].keys() == set(DOMAINS)
        assert doc["tokenizer"]["vocab_size"] == 300 and len(doc["tokenizer"]["hash"]) == 64
        for key in ("byte_shares", "document_shares"):
            assert list(doc[key]) == DOMAINS and sums_to_one(doc[key].values())
        assert doc["provenance"]["mixopt_version"] == __version__
        assert doc["notes"] == []


def test_json_units_follow_the_manifest_counts(job, rec_weights, manifest):
    doc = json.loads(export(job, "json"))
    tokens = {d: manifest[d]["train_tokens"] + manifest[d]["val_tokens"] for d in DOMAINS}
    nbytes = {d: manifest[d]["train_bytes"] + manifest[d]["val_bytes"] for d in DOMAINS}
    docs = {d: manifest[d]["documents"] for d in DOMAINS}
    raw_bytes = {d: rec_weights[d] * nbytes[d] / tokens[d] for d in DOMAINS}
    raw_docs = {d: rec_weights[d] * docs[d] / tokens[d] for d in DOMAINS}
    for d in DOMAINS:
        assert doc["byte_shares"][d] == pytest.approx(
            raw_bytes[d] / sum(raw_bytes.values()), abs=1e-6
        )
        assert doc["document_shares"][d] == pytest.approx(
            raw_docs[d] / sum(raw_docs.values()), abs=1e-6
        )
        assert doc["domains"][d]["documents"] == docs[d]
    # the bible's 6 chapters are long documents: it gets far fewer draws than its token share
    assert doc["document_shares"]["bible"] < rec_weights["bible"]


def test_yaml_and_framework_exports_carry_the_header(job):
    for fmt in ("yaml", "megatron", "hf-python", "olmo", "nanotron", "torchtitan", "streaming"):
        text = export(job, fmt)
        head = [line for line in text.splitlines() if line.startswith("#")]
        assert f"exported by mixopt {__version__} from job 'exp'" in head[0], fmt
        data_hash = json.loads(export(job, "json"))["data_hash"]
        assert f"data hash {data_hash}" in head[0], fmt
        assert head[1].startswith("# unit: "), fmt
    assert "# unit: per-example probabilities" in export(job, "hf-python")
    assert "# unit: token shares" in export(job, "megatron")
    assert "tokens are counted with the job's tokenizer" in export(job, "olmo")


def test_json_needs_only_the_recommendation(tmp_path):
    (tmp_path / "recommendation.json").write_text(json.dumps({"weights": {"a": 0.25, "b": 0.75}}))
    doc = json.loads(export(tmp_path, "json"))
    assert doc["mixture"] == {"a": 0.25, "b": 0.75}
    assert doc["byte_shares"] is None and "no data manifest" in doc["notes"][0]
    with pytest.raises(MixoptError, match=r"format 'megatron' needs the job's data_manifest.json"):
        export(tmp_path, "megatron")


def test_a_manifest_without_document_counts_loads_and_says_it_cannot_convert(job, tmp_path):
    copy = tmp_path / "old-job"
    shutil.copytree(job, copy)
    manifest = json.loads((copy / "data_manifest.json").read_text())
    for domain in manifest["domains"]:
        del domain["documents"], domain["train_bytes"], domain["val_bytes"]
    (copy / "data_manifest.json").write_text(json.dumps(manifest))
    doc = json.loads(export(copy, "json"))  # loads: the token shares are still exported
    assert doc["document_shares"] is None and doc["byte_shares"] is None
    assert any("records no documents" in n for n in doc["notes"])
    for fmt in ("hf-json", "streaming"):  # per-example formats cannot convert: a clear error
        with pytest.raises(
            MixoptError,
            match=r"per-example probabilities: the data manifest records no documents for domain\(s\) code, bible, dictionary \(it was written by an older mixopt",
        ):
            export(copy, fmt)
    assert "--data-path" in export(copy, "megatron")  # token shares need no conversion


def test_unknown_format_lists_the_valid_ones(job):
    with pytest.raises(MixoptError) as error:
        export(job, "toml")
    assert f"available: {', '.join(FORMATS)}" in str(error.value)
    assert {"megatron", "hf-python", "hf-json", "olmo", "nanotron", "torchtitan"} <= set(FORMATS)
    with pytest.raises(MixoptError, match="only used by the megatron, streaming formats"):
        export(job, "olmo", data_dir=job / "x")


def test_registry_names_and_units():
    exporters = registered_exporters()
    assert [e.name for e in exporters] == list(FORMATS)
    units = {e.name: e.unit for e in exporters}
    assert units["hf-json"] == units["hf-python"] == units["streaming"] == "examples"
    assert {units[f] for f in ("megatron", "olmo", "nanotron", "torchtitan")} == {"tokens"}
    assert get_exporter("json").needs_data is False
    assert {e.name for e in exporters if e.writes_data} == {"megatron", "streaming"}


def test_cli_export_writes_every_format(job, tmp_path):
    runner = CliRunner()
    for fmt in FORMATS:
        out = tmp_path / f"mix.{fmt}"
        result = runner.invoke(app, ["export", str(job), "--format", fmt, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_text() == export(job, fmt)
    result = runner.invoke(
        app, ["export", str(job), "-f", "megatron", "--data-dir", str(tmp_path / "meg")]
    )
    assert result.exit_code == 0 and (tmp_path / "meg" / "code.idx").is_file()
    bad = runner.invoke(app, ["export", str(job), "--format", "toml"])
    assert bad.exit_code == 2 and "available: json, yaml, megatron" in bad.output


def test_cli_version_and_spec_schema():
    from mixopt.spec import JobSpec

    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"mixopt {__version__}"
    schema = runner.invoke(app, ["spec", "schema"])
    assert schema.exit_code == 0
    assert json.loads(schema.output) == JobSpec.model_json_schema()
