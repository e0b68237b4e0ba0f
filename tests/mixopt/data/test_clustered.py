"""Discovered domains in a spec (``domains: {cluster: …}``) on a small real unlabeled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixopt.data import prepare_data
from mixopt.data.clustered import CLUSTERS_DIR
from mixopt.data.versions import current_state
from mixopt.errors import DataError, SpecError
from mixopt.service.policy import JobPolicy, Rejected
from mixopt.service.settings import ServiceSettings
from mixopt.space import MixtureSpace
from mixopt.spec import parse_spec

from .conftest import LogCollector

UNLABELED = Path(__file__).parents[2] / "assets" / "unlabeled" / "mixed.jsonl"


def cluster_spec(tmp_path: Path, **cluster: object) -> dict:
    return {
        "name": "climb",
        "output_dir": str(tmp_path / "runs"),
        "domains": {"cluster": {"paths": [str(UNLABELED)], "k": 3, **cluster}},
        "data": {"cache_dir": str(tmp_path / "cache"), "val_fraction": 0.1},
        "tokenizer": {"vocab_size": 300, "sample_bytes_per_domain": 20_000},
    }


def test_spec_names_the_clusters_as_domains(tmp_path: Path) -> None:
    raw = cluster_spec(tmp_path)
    raw["space"] = {"bounds": {"cluster_01": [0.0, 0.5]}}
    raw["objective"] = {"metrics": {"val_loss/cluster_02": 1.0}}
    spec = parse_spec(raw)
    assert spec.domain_names == ["cluster_00", "cluster_01", "cluster_02"]
    space = MixtureSpace.from_spec(spec)
    assert list(space.domains) == spec.domain_names
    assert space.upper[1] == pytest.approx(0.5)
    # written back as the user wrote it, and read again to the same spec
    dumped = spec.to_dict()
    assert dumped["domains"] == {"cluster": spec.cluster.model_dump(mode="json")}
    assert "cluster" not in dumped
    again = parse_spec(dumped)
    assert again.domain_names == spec.domain_names and again.cluster == spec.cluster


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"k": 1}, "domains.cluster.k: Input should be greater than or equal to 2"),
        ({"paths": []}, "domains.cluster.paths"),
        ({"bogus": 1}, "domains.cluster.bogus: Extra inputs are not permitted"),
    ],
)
def test_bad_cluster_settings_are_named(tmp_path: Path, change: dict, message: str) -> None:
    raw = cluster_spec(tmp_path)
    raw["domains"]["cluster"].update(change)
    with pytest.raises(SpecError) as error:
        parse_spec(raw)
    assert message in str(error.value)
    assert "at least 2 items" not in str(error.value)  # no noise about the stand-in domains


def test_unknown_cluster_in_bounds_lists_the_cluster_names(tmp_path: Path) -> None:
    raw = cluster_spec(tmp_path)
    raw["space"] = {"bounds": {"cluster_07": [0.0, 0.5]}}
    with pytest.raises(SpecError, match=r"unknown domain\(s\) \['cluster_07'\]; domains are "
                       r"\['cluster_00', 'cluster_01', 'cluster_02'\]"):  # fmt: skip
        parse_spec(raw)
    raw = cluster_spec(tmp_path)
    raw["domains"] = {"clusters": {"k": 3}}
    with pytest.raises(SpecError, match=r"domains: give a list of domains or \{cluster"):
        parse_spec(raw)


def test_prepare_clusters_into_the_cache_once(tmp_path: Path) -> None:
    spec = parse_spec(cluster_spec(tmp_path))
    logs = LogCollector()
    manifest = prepare_data(spec, log=logs)
    assert list(manifest.domains) == spec.domain_names
    clusters = list((tmp_path / "cache" / CLUSTERS_DIR).iterdir())
    assert len(clusters) == 1  # written into the cache, nowhere else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    summary = json.loads((clusters[0] / "clusters.json").read_text())
    docs = {c["name"]: c["documents"] for c in summary["clusters"]}
    assert sum(docs.values()) == 90
    for name, shards in manifest.domains.items():
        assert shards.documents == docs[name]
        assert shards.files == [str(clusters[0] / f"{name}.jsonl")]
    natural = manifest.natural_distribution()
    tokens = {n: d.train_tokens for n, d in manifest.domains.items()}
    for name in spec.domain_names:  # natural shares are the clusters' token counts
        assert natural[name] == pytest.approx(tokens[name] / sum(tokens.values()))
    assert "k-means (k=3)" in logs.text()
    # the data state of the job matches what was prepared (nothing reported stale)
    state = current_state(spec)
    assert state.domains == {n: h[:len(state.domains[n] or "")] for n, h in
                             manifest.domain_hashes().items()}  # fmt: skip
    # a job that lost the race to cluster the same corpus uses the winner's clusters
    from mixopt.data.clustered import _cluster

    assert spec.cluster is not None
    _cluster(spec.cluster, clusters[0], LogCollector())
    assert json.loads((clusters[0] / "clusters.json").read_text()) == summary
    # again: reused, not re-clustered; other settings: a new folder
    again = LogCollector()
    assert prepare_data(spec, log=again).data_hash == manifest.data_hash
    assert "reused 3 clusters" in again.text() and "k-means" not in again.text()
    other = parse_spec(cluster_spec(tmp_path, seed=1))
    prepare_data(other, log=LogCollector())
    assert len(list((tmp_path / "cache" / CLUSTERS_DIR).iterdir())) == 2


def test_prepare_refuses_more_clusters_than_documents(tmp_path: Path) -> None:
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"text": f"doc {i} words"}) + "\n" for i in range(3)))
    raw = cluster_spec(tmp_path, k=5)
    raw["domains"]["cluster"]["paths"] = [str(few)]
    with pytest.raises(DataError, match=r"domains.cluster: 3 document\(s\), fewer than k = 5"):
        prepare_data(parse_spec(raw), log=LogCollector())
    raw["domains"]["cluster"]["paths"] = [str(tmp_path / "missing.jsonl")]
    with pytest.raises(DataError, match=r"missing\.jsonl: no such file"):
        prepare_data(parse_spec(raw), log=LogCollector())
    assert not (tmp_path / "cache" / CLUSTERS_DIR).exists() or not any(
        (tmp_path / "cache" / CLUSTERS_DIR).iterdir()
    )


def test_service_refuses_a_corpus_outside_its_data_roots(tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    roots.mkdir()
    settings = ServiceSettings(
        tokens={"ann": "t" * 32}, state_dir=tmp_path / "state", data_roots=[roots]
    )
    policy = JobPolicy.for_user(settings, "ann")
    spec = parse_spec(cluster_spec(tmp_path))
    with pytest.raises(Rejected, match=r"domains.cluster.paths.0: .*outside"):
        policy.check(spec)
    inside = roots / "corpus.jsonl"
    inside.write_text(UNLABELED.read_text())
    raw = cluster_spec(tmp_path)
    raw["domains"]["cluster"]["paths"] = [str(inside)]
    policy.check(parse_spec(raw))  # allowed


def test_bring_your_own_data_cluster_block_is_valid(tmp_path: Path) -> None:
    import re

    import yaml

    guide = (Path(__file__).parents[3] / "docs" / "bring-your-own-data.md").read_text()
    base = re.search(r"## 2\. A spec\n\n```yaml\n(.*?)```", guide, re.S)
    block = re.search(r"discover them \(CLIMB\)\n.*?```yaml\n(.*?)```", guide, re.S)
    assert base is not None and block is not None
    (tmp_path / "data" / "raw").mkdir(parents=True)
    data = {**yaml.safe_load(base.group(1)), **yaml.safe_load(block.group(1))}
    spec = parse_spec(data, base_dir=tmp_path)
    assert spec.domain_names == [f"cluster_{i:02d}" for i in range(8)]
    assert spec.cluster is not None and spec.cluster.paths[0].startswith(str(tmp_path))


def test_read_roots_apply_to_the_corpus_not_to_the_cached_clusters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixopt.data.sources import READ_ROOTS_ENV, ReadRoots

    roots = tmp_path / "roots"
    roots.mkdir()
    monkeypatch.setenv(READ_ROOTS_ENV, ReadRoots((roots,)).to_env())
    with pytest.raises(DataError, match="outside the service's data roots"):
        prepare_data(parse_spec(cluster_spec(tmp_path)), log=LogCollector())
    inside = roots / "corpus.jsonl"
    inside.write_text(UNLABELED.read_text())
    raw = cluster_spec(tmp_path)
    raw["domains"]["cluster"]["paths"] = [str(inside)]
    manifest = prepare_data(parse_spec(raw), log=LogCollector())  # the cache is outside roots
    assert sum(d.documents for d in manifest.domains.values()) == 90


def test_cluster_domains_read_like_their_cluster_files(tmp_path: Path) -> None:
    parquet_like = cluster_spec(tmp_path, text_field="content")
    spec = parse_spec(parquet_like)
    assert spec.cluster is not None and spec.cluster.text_field == "content"
    assert {(d.format, d.text_field) for d in spec.domains} == {("jsonl", "text")}
