"""Domains from unlabeled data: TF-IDF + SVD + k-means, as CLIMB does with embeddings.

    result = cluster_corpus(["raw/*.jsonl.zst"], Path("clusters"), k=8)
    # clusters/cluster_00.jsonl … cluster_07.jsonl, clusters.json, domains.yaml

The corpus is read with the data stage's readers (any text format, compressed or not). A sample of
``fit_docs`` documents (reservoir sampling, so spread over the whole corpus) fits the vectorizer
(TF-IDF on words, sublinear term frequency), a truncated SVD to ``dims`` dimensions (LSA), and
k-means on the unit-normalised vectors. Every document is then assigned in a second streaming pass
and written, as a JSONL record ``{"text": ...}``, to its cluster's file; memory holds the sample
and one batch. Each cluster's summary has its size (documents, bytes), its top terms (the centroid
mapped back to term space) and the documents nearest its centroid. ``domains.yaml`` lists the
clusters as domains to paste into a search spec.

Everything is written into a temporary folder renamed into place at the end; an existing
non-empty output folder is refused, never overwritten.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml

from mixopt.data.readers import iter_pieces, scan_domain
from mixopt.errors import DataError, MixoptError

SUMMARY_FILE = "clusters.json"
DOMAINS_FILE = "domains.yaml"
_BATCH = 2000


@dataclass
class ClusterSummary:
    name: str
    path: str
    documents: int = 0
    bytes: int = 0
    top_terms: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


@dataclass
class ClusterResult:
    out_dir: str
    method: str
    k: int
    documents: int
    fit_documents: int
    clusters: list[ClusterSummary]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_corpus(
    paths: list[str],
    out_dir: Path,
    k: int,
    *,
    text_field: str = "text",
    format: str = "auto",
    seed: int = 0,
    fit_docs: int = 20_000,
    dims: int = 100,
    max_features: int = 50_000,
    max_chars: int = 20_000,
    examples: int = 3,
    log: Callable[[str], None] = print,
) -> ClusterResult:
    """Split the documents under ``paths`` into ``k`` clusters written to ``out_dir``."""
    from mixopt.spec import DomainSpec

    if k < 2:
        raise MixoptError(f"k must be at least 2, got {k}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise MixoptError(f"{out_dir}: already exists and is not empty; choose another folder")
    try:
        domain = DomainSpec(name="corpus", paths=paths, format=format, text_field=text_field)
    except ValueError as error:
        raise MixoptError(f"corpus: {error}") from None
    sources = scan_domain(domain)
    if sources.pretokenized:
        raise DataError("corpus: clustering needs text, not pre-tokenized files")

    def documents() -> Iterator[str]:
        current: list[str] = []
        for piece in iter_pieces(sources):
            current.append(piece.text)
            if piece.ends_doc:
                yield "".join(current)
                current = []

    sample, total = _reservoir(documents(), fit_docs, seed)
    if total < k:
        raise DataError(f"corpus: {total} document(s), fewer than k = {k} clusters")
    log(f"cluster: fitting TF-IDF + SVD + k-means (k={k}) on {len(sample)} of {total} documents")
    model = _fit(sample, k, seed=seed, dims=dims, max_features=max_features, max_chars=max_chars)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        summaries = [
            ClusterSummary(name=f"cluster_{i:02d}", path=str(out_dir / f"cluster_{i:02d}.jsonl"))
            for i in range(k)
        ]
        nearest: list[list[tuple[float, int, str]]] = [[] for _ in range(k)]
        handles: list[TextIO] = [
            (staging / f"cluster_{i:02d}.jsonl").open("w", encoding="utf-8") for i in range(k)
        ]
        seen = 0
        try:
            for batch in _batches(documents(), _BATCH):
                labels, scores = model.assign(batch)
                for text, label, score in zip(batch, labels.tolist(), scores.tolist(), strict=True):
                    handles[label].write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                    summary = summaries[label]
                    summary.documents += 1
                    summary.bytes += len(text.encode())
                    entry = (score, -seen, text[:300])
                    if len(nearest[label]) < examples:
                        heapq.heappush(nearest[label], entry)
                    else:
                        heapq.heappushpop(nearest[label], entry)
                    seen += 1
        finally:
            for handle in handles:
                handle.close()
        for i, summary in enumerate(summaries):
            summary.top_terms = model.top_terms(i, 10)
            summary.examples = [text for _, _, text in sorted(nearest[i], reverse=True)]
        result = ClusterResult(str(out_dir), "tfidf-svd-kmeans", k, seen, len(sample), summaries)
        (staging / SUMMARY_FILE).write_text(json.dumps(result.to_dict(), indent=2))
        domains = [{"name": s.name, "paths": [s.path]} for s in summaries if s.documents]
        (staging / DOMAINS_FILE).write_text(yaml.safe_dump({"domains": domains}, sort_keys=False))
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        os.rename(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for s in summaries:
        terms = ", ".join(s.top_terms[:6])
        log(f"cluster: {s.name}: {s.documents} docs, {s.bytes / 1e6:.2f} MB: {terms}")
    return result


def _reservoir(items: Iterator[str], n: int, seed: int) -> tuple[list[str], int]:
    """A uniform sample of ``n`` items (Algorithm R, seeded) and the number of items."""
    rng = random.Random(seed)
    sample: list[str] = []
    count = 0
    for count, item in enumerate(items, start=1):
        if len(sample) < n:
            sample.append(item)
        else:
            j = rng.randrange(count)
            if j < n:
                sample[j] = item
    return sample, count


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class _Model:
    vectorizer: Any
    svd: Any
    kmeans: Any
    centroids: np.ndarray  # unit-normalised, in SVD space
    max_chars: int

    def embed(self, texts: list[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        reduced = self.svd.transform(
            self.vectorizer.transform([t[: self.max_chars] for t in texts])
        )
        return normalize(reduced)

    def assign(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cluster of each text and its cosine similarity to that cluster's centroid."""
        vectors = self.embed(texts)
        similarity = vectors @ self.centroids.T
        labels = similarity.argmax(axis=1)
        return labels, similarity[np.arange(len(texts)), labels]

    def top_terms(self, cluster: int, n: int) -> list[str]:
        terms = self.vectorizer.get_feature_names_out()
        weights = self.svd.inverse_transform(self.centroids[cluster][None])[0]
        return [str(terms[i]) for i in np.argsort(-weights)[:n] if weights[i] > 0]


def _fit(
    sample: list[str], k: int, *, seed: int, dims: int, max_features: int, max_chars: int
) -> _Model:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    vectorizer = TfidfVectorizer(
        max_features=max_features,
        sublinear_tf=True,
        min_df=2 if len(sample) >= 1000 else 1,
        max_df=0.9 if len(sample) >= 100 else 1.0,
        stop_words="english",
        token_pattern=r"(?u)\b[^\W\d_][\w']+\b",
        dtype=np.float32,
    )
    try:
        X = vectorizer.fit_transform([t[:max_chars] for t in sample])
    except ValueError as error:  # e.g. no words at all
        raise DataError(f"corpus: cannot build TF-IDF features ({error})") from None
    # LSA needs far fewer dimensions than documents: k-means on near-raw TF-IDF of a small
    # sample splits on rare words instead of topics
    n_components = max(1, min(dims, max(2 * k, len(sample) // 10), X.shape[1] - 1, len(sample) - 1))
    svd = TruncatedSVD(n_components=n_components, random_state=seed)
    vectors = normalize(svd.fit_transform(X))
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vectors)
    centroids = normalize(kmeans.cluster_centers_)
    return _Model(vectorizer, svd, kmeans, centroids, max_chars)
