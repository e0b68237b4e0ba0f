"""The domains of a ``domains: {cluster: …}`` spec: the corpus clustered once into the data cache.

    sources = cluster_sources(spec, cache_dir, digests, log)   # one DomainSources per cluster

The clusters live in ``<cache>/clusters/<key>/`` (``cluster_XX.jsonl``, ``clusters.json``), the
key a hash of the corpus files' contents and the cluster settings: the same corpus and settings
reuse the folder, a changed file or setting makes a new one. Nothing is written outside the cache.
The corpus is read through the data stage's readers (so the service's data roots apply); the
cluster files are mixopt's own, in the job's cache, and are read from there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mixopt.data.cluster import SUMMARY_FILE, cluster_corpus
from mixopt.data.hashing import DigestCache, content_hash
from mixopt.data.sources import DomainSources, SourceFile, scan_domain
from mixopt.errors import DataError, MixoptError

if TYPE_CHECKING:
    from mixopt.spec import JobSpec
    from mixopt.spec.clusters import ClusterDomainsSpec

CLUSTERS_DIR = "clusters"
_KEY_VERSION = 1


def cluster_dir(
    cluster: ClusterDomainsSpec, cache_dir: Path, digests: DigestCache | None = None
) -> Path:
    """Where the clusters of this corpus and these settings live in the cache (hashes the
    corpus; the folder may not exist yet)."""
    from mixopt.spec import DomainSpec

    corpus = DomainSpec(
        name="corpus", paths=cluster.paths, format=cluster.format, text_field=cluster.text_field
    )
    sources = scan_domain(corpus, digests=digests)
    if sources.pretokenized:
        raise DataError("domains.cluster: clustering needs text, not pre-tokenized files")
    key = {"v": _KEY_VERSION, "corpus": sources.content_hash, **cluster.settings()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir / CLUSTERS_DIR / digest


def cluster_sources(
    spec: JobSpec,
    cache_dir: Path,
    digests: DigestCache | None = None,
    log: Callable[[str], None] = print,
    *,
    build: bool = True,
) -> list[DomainSources] | None:
    """Every cluster of ``spec.cluster`` as a domain's sources, clustering the corpus into the
    cache unless it is there (``build=False``: None instead)."""
    cluster = spec.cluster
    if cluster is None:
        raise MixoptError(f"{spec.name}: the spec has no domains.cluster")
    out = cluster_dir(cluster, cache_dir, digests)
    if not (out / SUMMARY_FILE).is_file():
        if not build:
            return None
        _cluster(cluster, out, log)
    else:
        log(f"data: domains.cluster: reused {cluster.k} clusters in {out}")
    summary = json.loads((out / SUMMARY_FILE).read_text())
    sizes = {c["name"]: int(c["documents"]) for c in summary["clusters"]}
    sources = []
    for name in cluster.names:
        if sizes.get(name, 0) == 0:
            raise DataError(
                f"domains.cluster: {name} received no documents (k = {cluster.k} is too many "
                "for this corpus); lower k"
            )
        files = [SourceFile(out / f"{name}.jsonl", "jsonl")]
        digest = content_hash(files, "text", digests=digests)
        sources.append(DomainSources(name, files, "text", digest))
    return sources


def _cluster(cluster: ClusterDomainsSpec, out: Path, log: Callable[[str], None]) -> None:
    try:
        cluster_corpus(
            cluster.paths,
            out,
            cluster.k,
            text_field=cluster.text_field,
            format=cluster.format,
            seed=cluster.seed,
            fit_docs=cluster.fit_docs,
            dims=cluster.dims,
            log=log,
        )
    except (OSError, MixoptError) as error:
        if (out / SUMMARY_FILE).is_file():  # another job put the same clusters in place first
            return
        if isinstance(error, OSError):
            raise
        raise type(error)(f"domains.cluster: {str(error).removeprefix('corpus: ')}") from None
