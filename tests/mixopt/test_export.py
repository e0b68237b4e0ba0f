"""Exports of a real finished job, parsed back and (where the library installs here) loaded by
the library that consumes them: Megatron-LM (megatron-core's blend parser, indexed dataset and
blended GPT dataset builder) and Hugging Face ``datasets``. OLMo-core, nanotron, torchtitan and
MosaicML streaming pull in heavy dependencies (a CUDA torch, cloud SDKs): their exports are parsed
back and checked against those libraries' field names (OLMo-core 3.0 ``SourceMixtureConfig``,
nanotron ``NanosetDatasetsArgs``, torchtitan 0.3 ``HFDataSource``, streaming 0.13 ``Stream``).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import types
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mixopt.cli.main import app
from mixopt.errors import MixoptError
from mixopt.export import FORMATS, exact_weights, export, write_megatron_dataset
from mixopt.export import Source as ExportSource
from mixopt.job import JobDir
from mixopt.search import SearchJob
from mixopt.spec import JobSpec
from mixopt.testing import ScriptedRunner
from tests.conftest import CORPUS, corpus_domains

DOMAINS = ["code", "bible", "dictionary"]
pytestmark = pytest.mark.filterwarnings("ignore:Transformer Engine and Apex:UserWarning")


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A finished job over the asset corpus (synthetic trials, real data stage), with a target
    budget so it has repetition limits (code: 2 epochs, the others the default 4)."""
    root = tmp_path_factory.mktemp("export-job")
    domains = corpus_domains()
    domains[0]["max_epochs"] = 2.0
    spec = JobSpec.model_validate(
        {
            "name": "exp",
            "output_dir": str(root / "runs"),
            "domains": domains,
            "data": {"cache_dir": str(root / "cache")},
            "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
            "search": {
                "initial_trials": 4,
                "rounds": 1,
                "trials_per_round": 2,
                "strategy": "random",
            },
            "proxy": {"seq_len": 16},
            "validate": {"enabled": False},
            "tracking": {"enabled": False},
            "target": {"tokens": 1000},
        }
    )
    job_dir = JobDir.new(spec, root / "job").path
    SearchJob(spec, job_dir, runner=ScriptedRunner()).run()
    return job_dir


@pytest.fixture
def rec_weights(job) -> dict[str, float]:
    return exact_weights(json.loads((job / "recommendation.json").read_text())["weights"])


@pytest.fixture
def manifest(job) -> dict:
    data = json.loads((job / "data_manifest.json").read_text())
    return {"eot_id": data["eot_id"], **{d["name"]: d for d in data["domains"]}}


def _sums_to_one(weights) -> bool:
    return sum(Decimal(repr(float(w))) for w in weights) == 1


def _edited_job(job: Path, tmp_path: Path, weights: dict[str, float]) -> Path:
    """A copy of the job whose recommendation has other weights."""
    copy = tmp_path / "job-copy"
    shutil.copytree(job, copy)
    rec = json.loads((copy / "recommendation.json").read_text())
    rec["weights"] = weights
    (copy / "recommendation.json").write_text(json.dumps(rec))
    return copy


# ------------------------------------------------------------------------------- the weights


@pytest.mark.parametrize(
    "weights",
    [
        {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3},
        {"a": 0.1, "b": 0.2, "c": 0.7},
        {"a": 2.0, "b": 6.0},  # not normalised
        {"a": 1e-9, "b": 1.0, "c": 0.0},
        {f"d{i}": 1 / 7 for i in range(7)},
    ],
)
def test_exact_weights_sum_to_one_at_six_decimals(weights):
    exact = exact_weights(weights)
    assert list(exact) == list(weights)
    assert _sums_to_one(exact.values())
    total = sum(weights.values())
    for name, w in weights.items():
        assert exact[name] == pytest.approx(w / total, abs=1e-6)
        assert round(exact[name], 6) == exact[name]


def test_exact_weights_on_random_mixtures():
    rng = np.random.default_rng(0)
    for n in (2, 5, 17, 40):
        for _ in range(50):
            raw = rng.dirichlet(np.full(n, 0.3))
            exact = exact_weights({f"d{i}": w for i, w in enumerate(raw)})
            assert _sums_to_one(exact.values())
            assert np.max(np.abs(np.array(list(exact.values())) - raw)) <= 1e-6


@pytest.mark.parametrize(
    "weights, message",
    [
        ({"a": -0.5, "b": 1.5}, ">= 0"),
        ({"a": float("nan"), "b": 1.0}, "finite"),
        ({"a": 0.0, "b": 0.0}, "not all 0"),
        ({}, "no domains"),
        ({"a": "x", "b": 1.0}, "must be numbers"),
    ],
)
def test_exact_weights_rejects_bad_mixtures(weights, message):
    with pytest.raises(MixoptError, match=message):
        exact_weights(weights)


# ---------------------------------------------------------------------------- json and yaml


def test_json_and_yaml_round_trip(job, rec_weights):
    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        doc = load(export(job, fmt))
        assert doc["mixture"] == rec_weights and list(doc["mixture"]) == DOMAINS
        assert _sums_to_one(doc["mixture"].values())
        assert doc["job"] == "exp" and doc["data_hash"]
        assert doc["repetition_caps"].keys() == set(DOMAINS)


def test_json_needs_only_the_recommendation(tmp_path):
    (tmp_path / "recommendation.json").write_text(json.dumps({"weights": {"a": 0.25, "b": 0.75}}))
    assert json.loads(export(tmp_path, "json"))["mixture"] == {"a": 0.25, "b": 0.75}
    with pytest.raises(MixoptError, match=r"format 'megatron' needs the job's data_manifest.json"):
        export(tmp_path, "megatron")


def test_unknown_format_lists_the_valid_ones(job):
    with pytest.raises(MixoptError) as error:
        export(job, "toml")
    assert f"available: {', '.join(FORMATS)}" in str(error.value)
    assert {"megatron", "hf-python", "hf-json", "olmo", "nanotron", "torchtitan"} <= set(FORMATS)
    with pytest.raises(MixoptError, match="only used by the megatron format"):
        export(job, "olmo", data_dir=job / "x")


# --------------------------------------------------------------------------------- megatron


def _data_path(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    args = shlex.split(lines[0])
    assert args[0] == "--data-path"
    return args[1:]


def test_megatron_blend_of_flat_token_files(job, rec_weights, manifest):
    from megatron.core.datasets.utils import get_blend_from_list

    text = export(job, "megatron")
    assert "Megatron also needs <prefix>.idx" in text  # says the flat shards must be converted
    prefixes, weights = get_blend_from_list(_data_path(text))  # Megatron's own parser
    assert weights == [rec_weights[d] for d in DOMAINS] and _sums_to_one(weights)
    for domain, prefix in zip(DOMAINS, prefixes, strict=True):
        assert prefix + ".bin" == manifest[domain]["train_path"]


def test_megatron_indexed_datasets_load_and_blend_in_megatron(job, rec_weights, manifest, tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import (
        BlendedMegatronDatasetBuilder,
    )
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import get_blend_from_list

    out = tmp_path / "megatron"
    text = export(job, "megatron", data_dir=out)
    prefixes, weights = get_blend_from_list(_data_path(text))
    assert prefixes == [str((out / d).resolve()) for d in DOMAINS]
    assert weights == [rec_weights[d] for d in DOMAINS]
    eot = manifest["eot_id"]
    for domain, prefix in zip(DOMAINS, prefixes, strict=True):
        flat = np.fromfile(manifest[domain]["train_path"], dtype=manifest[domain]["dtype"])
        dataset = IndexedDataset(prefix)
        assert len(dataset) == int((flat == eot).sum()) + int(flat[-1] != eot)
        docs = [dataset[i] for i in range(len(dataset))]
        assert all(doc[-1] == eot for doc in docs[:-1])
        np.testing.assert_array_equal(np.concatenate(docs), flat)  # every token, in order

    class Tokenizer:  # what GPTDataset asks of a tokenizer
        def __init__(self) -> None:
            self.eod, self.pad, self.vocab_size = eot, 299, 300
            self.unique_identifiers = {"class": "test"}

    config = GPTDatasetConfig(
        random_seed=0,
        sequence_length=16,
        blend=(prefixes, weights),
        split="100,0,0",
        tokenizer=Tokenizer(),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(
        GPTDataset, [3000, 0, 0], lambda: True, config
    ).build()
    shares = np.bincount(np.asarray(train.dataset_index)[:3000], minlength=3) / 3000
    np.testing.assert_allclose(shares, weights, atol=2e-3)  # Megatron samples at our weights
    assert int(train[0]["tokens"].max()) < 300


def test_megatron_dataset_from_uint32_tokens(tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    tokens = np.array([70_000, 5, 0, 7, 8, 99_999, 0, 3], dtype=np.uint32)  # 0 = end of text
    path = tmp_path / "train.bin"
    tokens.tofile(path)
    source = ExportSource("big", 1.0, token_file=str(path), dtype="uint32")
    prefix = write_megatron_dataset(source, tmp_path / "out" / "big", eot_id=0)
    dataset = IndexedDataset(prefix)
    assert [d.tolist() for d in (dataset[i] for i in range(len(dataset)))] == [
        [70_000, 5, 0],
        [7, 8, 99_999, 0],
        [3],  # a trailing document without its end-of-text
    ]
    assert dataset[0].dtype == np.int32


def test_zero_weight_domains_are_left_out_of_framework_blends(job, tmp_path):
    copy = _edited_job(job, tmp_path, {"code": 0.5, "bible": 0.0, "dictionary": 0.5})
    text = export(copy, "megatron")
    assert "left out (weight 0): bible" in text
    args = _data_path(text)
    assert args[0::2] == ["0.5", "0.5"] and all("bible" not in p for p in args[1::2])
    hf = json.loads(export(copy, "hf-json"))
    assert hf["datasets"] == ["code", "dictionary"] and hf["probabilities"] == [0.5, 0.5]
    assert json.loads(export(copy, "json"))["mixture"]["bible"] == 0.0  # kept where harmless


# ----------------------------------------------------------------------- Hugging Face datasets


def test_hf_json_probabilities_drive_interleave_datasets(job, rec_weights):
    from datasets import Dataset, interleave_datasets

    doc = json.loads(export(job, "hf-json"))
    assert doc["datasets"] == DOMAINS and _sums_to_one(doc["probabilities"])
    assert doc["probabilities"] == [rec_weights[d] for d in DOMAINS]
    assert doc["sources"]["code"]["data_files"] == {
        "json": [str((CORPUS / "code" / "stdlib_excerpts.jsonl").resolve())]
    }
    assert list(doc["sources"]["dictionary"]["data_files"]) == ["parquet"]
    assert len(doc["sources"]["bible"]["data_files"]["text"]) == 6
    parts = [Dataset.from_dict({"domain": [name] * 20_000}) for name in doc["datasets"]]
    mixed = interleave_datasets(
        parts,
        probabilities=doc["probabilities"],
        seed=doc["seed"],
        stopping_strategy=doc["stopping_strategy"],
    )
    picked = mixed.select(range(6000))["domain"]
    shares = [picked.count(name) / 6000 for name in doc["datasets"]]
    np.testing.assert_allclose(shares, doc["probabilities"], atol=0.025)  # ~4 sigma


def test_hf_python_snippet_runs_with_datasets(job, rec_weights, tmp_path):
    snippet = export(job, "hf-python")
    script = tmp_path / "mix.py"
    script.write_text(
        snippet
        + """
import json
domains = {name: set(load_domain(name)["text"]) for name in PROBABILITIES}
rows = mixed["text"]
print(json.dumps({
    "probabilities": PROBABILITIES,
    "rows": len(rows),
    "sizes": {name: len(texts) for name, texts in domains.items()},
    "unknown": sum(not any(t in texts for texts in domains.values()) for t in rows),
    "per_domain": {name: sum(t in texts for t in rows) for name, texts in domains.items()},
}))
"""
    )
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["probabilities"] == {d: rec_weights[d] for d in DOMAINS}
    # a file is a document (bible: 6 files), a JSONL line or a Parquet row is one
    assert (
        out["sizes"]["bible"] == 6 and out["sizes"]["code"] > 6 and out["sizes"]["dictionary"] > 6
    )
    assert out["rows"] > 0 and out["unknown"] == 0
    assert all(n > 0 for n in out["per_domain"].values())


# -------------------------------------------------------------- OLMo-core, nanotron, others


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
    assert _sums_to_one(s["target_ratio"] for s in sources)
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


def test_nanotron_data_stage(job, rec_weights, manifest):
    doc = yaml.safe_load(export(job, "nanotron"))
    (stage,) = doc["data_stages"]
    dataset = stage["data"]["dataset"]  # nanotron's NanosetDatasetsArgs
    assert dataset["dataset_weights"] == [rec_weights[d] for d in DOMAINS]
    assert _sums_to_one(dataset["dataset_weights"])
    folders = [str(Path(manifest[d]["train_path"]).parent) for d in DOMAINS]
    assert dataset["dataset_folder"] == folders
    assert stage["start_training_step"] == 1


class Recorder:
    """Stands in for a library class: records the keyword arguments it was built with."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


def _run_with_stub(snippet: str, module: str, objects: dict) -> dict:
    """Execute ``snippet`` with ``module`` replaced by a module holding ``objects``."""
    stub = types.ModuleType(module)
    for name, obj in objects.items():
        setattr(stub, name, obj)
    parents = module.split(".")
    saved = {
        m: sys.modules.get(m) for m in [".".join(parents[: i + 1]) for i in range(len(parents))]
    }
    try:
        for i in range(len(parents) - 1):
            sys.modules[".".join(parents[: i + 1])] = types.ModuleType(parents[i])
        sys.modules[module] = stub
        namespace: dict = {}
        exec(compile(snippet, "<export>", "exec"), namespace)
        return namespace
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def test_torchtitan_sources(job, rec_weights):
    snippet = export(job, "torchtitan")
    ns = _run_with_stub(
        snippet,
        "torchtitan.hf_datasets.text_datasets",
        {
            "HFDataSource": type("HFDataSource", (Recorder,), {}),
            "InterleavedHuggingFaceTextDataLoader": types.SimpleNamespace(
                Config=type("Config", (Recorder,), {})
            ),
        },
    )
    sources = ns["dataloader"].kwargs["sources"]
    assert [s.kwargs["dataset"] for s in sources] == DOMAINS
    assert [s.kwargs["weight"] for s in sources] == [rec_weights[d] for d in DOMAINS]
    assert _sums_to_one(s.kwargs["weight"] for s in sources)


def test_torchtitan_snippet_builds_the_real_config(job, rec_weights):
    """With torchtitan (the `frameworks` extra, which scripts/test.sh installs)."""
    import torchtitan.hf_datasets.text_datasets  # noqa: F401

    namespace: dict = {}
    exec(compile(export(job, "torchtitan"), "<export>", "exec"), namespace)
    config = namespace["dataloader"]
    assert [(s.dataset, s.weight) for s in config.sources] == [(d, rec_weights[d]) for d in DOMAINS]


def test_streaming_streams(job, rec_weights):
    ns = _run_with_stub(export(job, "streaming"), "streaming", {"Stream": Recorder})
    streams = ns["streams"]
    assert [s.kwargs["proportion"] for s in streams] == [rec_weights[d] for d in DOMAINS]
    assert [s.kwargs["local"] for s in streams] == [f"/path/to/mds/{d}" for d in DOMAINS]
    assert _sums_to_one(s.kwargs["proportion"] for s in streams)


# ---------------------------------------------------------------------------------------- CLI


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
