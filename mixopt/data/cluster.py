"""Domains from unlabeled data: k-means on document vectors, as CLIMB does with embeddings.

    result = cluster_corpus(["raw/*.jsonl.zst"], Path("clusters"), k=8)
    # clusters/cluster_00.jsonl … cluster_07.jsonl, clusters.json, domains.yaml
    cluster_corpus(paths, out, k=8, embedding_model=Path("models/all-MiniLM-L6-v2"))

The corpus is read with the data stage's readers (any text format, compressed or not). A sample of
``fit_docs`` documents (reservoir sampling, so spread over the whole corpus) fits the model; the
vectors come from one of two embedders:

- ``tfidf-svd`` (default, no model needed): TF-IDF on words (sublinear term frequency) and a
  truncated SVD to ``dims`` dimensions (LSA). Top terms: the centroid mapped back to term space.
- a local sentence-transformers model (``embedding_model``: a model directory on this machine,
  never a hub download; CUDA when available): the model's normalised embeddings. Top terms: the
  cluster's mean TF-IDF over the sample's members (class-based TF-IDF, as BERTopic does).

k-means runs on the unit-normalised vectors. Every document is then assigned (cosine to the
nearest centroid) in a second streaming pass and written, as a JSONL record ``{"text": ...}``, to
its cluster's file; memory holds the sample and one batch. Each cluster's summary has its size
(documents, bytes), its top terms and the documents nearest its centroid; ``centroids.npy`` holds
the centroids (how alike two clusters are, for ``mixopt data refine``). ``domains.yaml`` lists
the clusters as domains to paste into a search spec.

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
from typing import Any, Protocol, TextIO

import numpy as np
import yaml

from mixopt.data.readers import iter_pieces
from mixopt.data.sources import scan_domain
from mixopt.errors import DataError, MixoptError

SUMMARY_FILE = "clusters.json"
DOMAINS_FILE = "domains.yaml"
CENTROIDS_FILE = "centroids.npy"  # (k, dims) unit rows: how alike clusters are (refinement)
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
    embedding_model: Path | None = None,
    batch_size: int = 64,
    log: Callable[[str], None] = print,
) -> ClusterResult:
    """Split the documents under ``paths`` into ``k`` clusters written to ``out_dir``.

    ``embedding_model``: a local sentence-transformers model directory to embed documents with
    (default: TF-IDF + SVD); ``batch_size``: documents per embedding call."""
    from mixopt.spec import DomainSpec

    if k < 2:
        raise MixoptError(f"k must be at least 2, got {k}")
    encoder = _load_encoder(Path(embedding_model)) if embedding_model is not None else None
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
    model: _Model
    if encoder is None:
        method, how = "tfidf-svd-kmeans", "TF-IDF + SVD"
        model = _fit_lsa(
            sample, k, seed=seed, dims=dims, max_features=max_features, max_chars=max_chars
        )
    else:
        method, how = "embeddings-kmeans", f"{embedding_model} embeddings"
        model = _fit_embeddings(
            sample, k, encoder, seed=seed, max_features=max_features, max_chars=max_chars,
            batch_size=batch_size,
        )  # fmt: skip
    log(f"cluster: fitted {how} + k-means (k={k}) on {len(sample)} of {total} documents")
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
                labels, scores = _assign(model, batch)
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
        result = ClusterResult(str(out_dir), method, k, seen, len(sample), summaries)
        (staging / SUMMARY_FILE).write_text(json.dumps(result.to_dict(), indent=2))
        np.save(staging / CENTROIDS_FILE, np.asarray(model.centroids, dtype=np.float32))
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


class _Model(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...  # (n, dims), unit rows

    @property
    def centroids(self) -> np.ndarray: ...  # (k, dims), unit rows

    def top_terms(self, cluster: int, n: int) -> list[str]: ...


def _assign(model: _Model, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cluster of each text and its cosine similarity to that cluster's centroid."""
    similarity = model.embed(texts) @ model.centroids.T  # (n, k)
    labels = similarity.argmax(axis=1)
    return labels, similarity[np.arange(len(texts)), labels]


def _tfidf(sample_size: int, max_features: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        max_features=max_features,
        sublinear_tf=True,
        min_df=2 if sample_size >= 1000 else 1,
        max_df=0.9 if sample_size >= 100 else 1.0,
        stop_words="english",
        token_pattern=r"(?u)\b[^\W\d_][\w']+\b",
        dtype=np.float32,
    )


def _kmeans(vectors: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means on unit rows: (labels (n,), unit centroids (k, dims))."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vectors)
    return kmeans.labels_, normalize(kmeans.cluster_centers_)


@dataclass
class _LsaModel:
    """TF-IDF + truncated SVD (LSA) vectors."""

    vectorizer: Any
    svd: Any
    centroids: np.ndarray  # (k, dims) unit-normalised, in SVD space
    max_chars: int

    def embed(self, texts: list[str]) -> np.ndarray:
        from sklearn.preprocessing import normalize

        reduced = self.svd.transform(
            self.vectorizer.transform([t[: self.max_chars] for t in texts])
        )
        return normalize(reduced)

    def top_terms(self, cluster: int, n: int) -> list[str]:
        terms = self.vectorizer.get_feature_names_out()
        weights = self.svd.inverse_transform(self.centroids[cluster][None])[0]
        return [str(terms[i]) for i in np.argsort(-weights)[:n] if weights[i] > 0]


def _fit_lsa(
    sample: list[str], k: int, *, seed: int, dims: int, max_features: int, max_chars: int
) -> _LsaModel:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    vectorizer = _tfidf(len(sample), max_features)
    try:
        X = vectorizer.fit_transform([t[:max_chars] for t in sample])
    except ValueError as error:  # e.g. no words at all
        raise DataError(f"corpus: cannot build TF-IDF features ({error})") from None
    # LSA needs far fewer dimensions than documents: k-means on near-raw TF-IDF of a small
    # sample splits on rare words instead of topics
    n_components = max(1, min(dims, max(2 * k, len(sample) // 10), X.shape[1] - 1, len(sample) - 1))
    svd = TruncatedSVD(n_components=n_components, random_state=seed)
    _, centroids = _kmeans(normalize(svd.fit_transform(X)), k, seed)
    return _LsaModel(vectorizer, svd, centroids, max_chars)


@dataclass
class _EmbeddingModel:
    """A sentence-transformers model's normalised embeddings; terms from class-based TF-IDF."""

    encoder: Any  # sentence_transformers.SentenceTransformer
    centroids: np.ndarray  # (k, dims) unit-normalised, in embedding space
    terms: list[list[str]]  # per cluster, by mean TF-IDF over its sample members
    max_chars: int
    batch_size: int

    def embed(self, texts: list[str]) -> np.ndarray:
        return _encode(self.encoder, texts, self.max_chars, self.batch_size)

    def top_terms(self, cluster: int, n: int) -> list[str]:
        return self.terms[cluster][:n]


def _encode(encoder: Any, texts: list[str], max_chars: int, batch_size: int) -> np.ndarray:
    """Unit-normalised embeddings (n, dims)."""
    vectors = encoder.encode(
        [t[:max_chars] for t in texts],
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)


def _fit_embeddings(
    sample: list[str],
    k: int,
    encoder: Any,
    *,
    seed: int,
    max_features: int,
    max_chars: int,
    batch_size: int,
) -> _EmbeddingModel:
    labels, centroids = _kmeans(_encode(encoder, sample, max_chars, batch_size), k, seed)
    terms = _class_terms(sample, labels, k, max_features=max_features, max_chars=max_chars)
    return _EmbeddingModel(encoder, centroids, terms, max_chars, batch_size)


def _class_terms(
    sample: list[str], labels: np.ndarray, k: int, *, max_features: int, max_chars: int
) -> list[list[str]]:
    """Per cluster, the 20 terms of highest mean TF-IDF over its members (class-based TF-IDF);
    no terms when the sample has no words at all."""
    vectorizer = _tfidf(len(sample), max_features)
    try:
        X = vectorizer.fit_transform([t[:max_chars] for t in sample])  # (n, terms) sparse
    except ValueError:
        return [[] for _ in range(k)]
    names = vectorizer.get_feature_names_out()
    terms = []
    for cluster in range(k):
        members = np.flatnonzero(labels == cluster)
        weights = np.asarray(X[members].mean(axis=0)).ravel() if len(members) else np.zeros(0)
        terms.append([str(names[i]) for i in np.argsort(-weights)[:20] if weights[i] > 0])
    return terms


def _load_encoder(path: Path) -> Any:
    """A sentence-transformers model from a local directory (never downloaded)."""
    if not path.is_dir():
        raise MixoptError(
            f"embedding model {path}: not a directory; give a local sentence-transformers model "
            "folder (its modules.json or config.json inside)"
        )
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise MixoptError(
            f"embedding model {path}: no modules.json or config.json inside; not a "
            "sentence-transformers or Hugging Face model folder"
        )
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MixoptError(
            "embedding models need sentence-transformers: pip install 'mixopt[embeddings]' "
            "(or cluster with TF-IDF + SVD, the default)"
        ) from None
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as error:  # the library raises many kinds; the user needs the message
        raise MixoptError(f"embedding model {path}: cannot be loaded ({error})") from None
