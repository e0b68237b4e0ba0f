"""Discovered domains in the spec: ``domains: {cluster: {...}}`` instead of a list (CLIMB).

    domains:
      cluster: {paths: [raw/*.jsonl.gz], k: 8, seed: 0}

The job's domains are then ``cluster_00 … cluster_{k-1}``: the data stage clusters the files once
into the data cache (:mod:`mixopt.data.clustered`, content-addressed by the files' contents and
these settings) and every cluster is a domain whose natural share is its token count. Bounds,
fixed weights, objectives (``val_loss/cluster_03``) and exports name them like listed domains.

Until the data stage has run, each cluster domain stands for the whole corpus (its ``paths`` are
the corpus's): the checks that read domain paths (eval sets that must never be trained on) then
check the corpus. Its ``format`` and ``text_field`` are those of the cluster files it becomes
(JSONL, ``text``), which exports describe; the corpus's own are ``cluster.format`` and
``cluster.text_field``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from mixopt.data.formats import FORMAT_NAMES, check_format_name
from mixopt.spec.section import Section

CLUSTER_PREFIX = "cluster_"
MAX_CLUSTERS = 1000


def cluster_name(i: int) -> str:
    """The domain name of cluster ``i`` (as ``mixopt data cluster`` writes it)."""
    return f"{CLUSTER_PREFIX}{i:02d}"


class ClusterDomainsSpec(Section):
    """Domains discovered by clustering unlabeled text (TF-IDF + SVD, then k-means)."""

    paths: list[str] = Field(
        min_length=1, description="Files, directories (read recursively) or glob patterns."
    )
    k: int = Field(
        ge=2, le=MAX_CLUSTERS, description="Number of clusters: the job's domains cluster_00…."
    )
    seed: int = Field(0, ge=0, description="Random seed (sample, SVD, k-means).")
    fit_docs: int = Field(20_000, ge=2, description="Documents sampled to fit the clustering.")
    dims: int = Field(100, ge=2, le=4096, description="SVD dimensions (at most).")
    format: Annotated[str, AfterValidator(check_format_name)] = Field(
        "auto",
        json_schema_extra={"enum": list(FORMAT_NAMES)},
        description="File format of the corpus (text formats only).",
    )
    text_field: str = Field("text", description="JSONL key / Parquet column holding the text.")

    @property
    def names(self) -> list[str]:
        return [cluster_name(i) for i in range(self.k)]

    def settings(self) -> dict[str, Any]:
        """What the clusters depend on besides the files' contents (the cache key)."""
        return {
            "k": self.k,
            "seed": self.seed,
            "fit_docs": self.fit_docs,
            "dims": self.dims,
            "text_field": self.text_field,
        }


def expand_cluster_domains(data: Any) -> Any:
    """A raw spec mapping with ``domains: {cluster: …}`` turned into ``cluster: …`` plus one
    stand-in domain per cluster; other specs pass unchanged. Raises ValueError."""
    if not isinstance(data, dict):
        return data
    domains = data.get("domains")
    if isinstance(domains, dict):
        if set(domains) != {"cluster"}:
            raise ValueError(
                f"domains: give a list of domains or {{cluster: {{paths, k, …}}}}; got keys "
                f"{sorted(map(str, domains))}"
            )
        if data.get("cluster") is not None:
            raise ValueError("cluster: given twice (top level and domains.cluster)")
        data = {**data, "cluster": domains["cluster"], "domains": None}
    raw = data.get("cluster")
    if raw is None:
        return data
    settings = raw.model_dump() if isinstance(raw, ClusterDomainsSpec) else raw
    if not isinstance(settings, dict):
        return data  # the cluster field reports the type error
    k, paths = settings.get("k"), settings.get("paths")
    if not (isinstance(k, int) and 2 <= k <= MAX_CLUSTERS and isinstance(paths, list) and paths):
        # the cluster field reports why; stand-ins keep the domains field itself quiet
        return {**data, "domains": data.get("domains") or [_placeholder(0), _placeholder(1)]}
    names = [cluster_name(i) for i in range(k)]
    if data.get("domains") is not None:  # a dumped spec: the stand-ins must match
        given = [
            d.get("name") if isinstance(d, dict) else getattr(d, "name", None)
            for d in data["domains"]
        ]
        if given != names:
            raise ValueError(
                f"domains: with domains.cluster the domains are {names[0]}..{names[-1]} "
                f"(set by k), got {given}"
            )
        return data
    # a stand-in reads like the cluster file it becomes (JSONL, "text"), which exports describe
    return {
        **data,
        "domains": [
            {"name": n, "paths": list(paths), "format": "jsonl", "text_field": "text"}
            for n in names
        ],
    }


def _placeholder(i: int) -> dict[str, Any]:
    return {"name": cluster_name(i), "paths": ["-"]}
