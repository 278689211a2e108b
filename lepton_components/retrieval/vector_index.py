"""FAISS indexes over unit-length sentence vectors, where inner product is cosine similarity.

Rasa-free. ``flat`` is exact and the default: a support knowledge base of a few thousand
question variants searches in well under a millisecond. ``hnsw`` and ``ivf`` trade a little
recall for speed on bases of hundreds of thousands of entries.
"""

import os
from typing import Dict, List, Optional, Sequence, Text, Tuple

import faiss
import numpy as np

INDEX_TYPES = ("flat", "hnsw", "ivf")


def build_index(
    vectors: np.ndarray,
    index_type: Text = "flat",
    hnsw_m: int = 32,
    hnsw_ef_construction: int = 80,
    hnsw_ef_search: int = 64,
    ivf_nlist: Optional[int] = None,
    ivf_nprobe: int = 16,
) -> faiss.Index:
    """Builds an inner-product index holding ``vectors`` (row i gets id i), on all cores."""
    previous_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    try:
        return _build(vectors, index_type, hnsw_m, hnsw_ef_construction, hnsw_ef_search, ivf_nlist, ivf_nprobe)
    finally:
        faiss.omp_set_num_threads(previous_threads)


def _build(
    vectors: np.ndarray,
    index_type: Text,
    hnsw_m: int,
    hnsw_ef_construction: int,
    hnsw_ef_search: int,
    ivf_nlist: Optional[int],
    ivf_nprobe: int,
) -> faiss.Index:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dimension = vectors.shape[1]
    if index_type == "flat":
        index = faiss.IndexFlatIP(dimension)
    elif index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = hnsw_ef_construction
        index.hnsw.efSearch = hnsw_ef_search
    elif index_type == "ivf":
        # faiss wants ~39 training points per list; small bases get fewer lists.
        nlist = ivf_nlist or max(1, int(4 * np.sqrt(len(vectors))))
        nlist = max(1, min(nlist, len(vectors) // 39 or 1))
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = min(ivf_nprobe, nlist)
    else:
        raise ValueError(f"index_type must be one of {INDEX_TYPES}, got {index_type!r}")
    index.add(vectors)
    return index


def index_to_bytes(index: faiss.Index) -> bytes:
    """FAISS's own binary format: plain arrays, nothing executable (unlike pickle)."""
    return faiss.serialize_index(index).tobytes()


def index_from_bytes(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def search(index: faiss.Index, queries: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, row ids) per query; missing hits have id -1.

    Searches run on one OpenMP thread: a chat server searches one message at a time, and
    extra threads only add barrier waits (measured: HNSW p95 16 ms with 2 threads on a
    busy 2-core machine, under 1 ms with one). The thread count is restored afterwards
    because torch shares the same OpenMP runtime and would otherwise drop to one thread.
    """
    previous_threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))
    finally:
        faiss.omp_set_num_threads(previous_threads)


def best_per_owner(
    scores: Sequence[float], row_ids: Sequence[int], owners: Sequence[int], limit: int
) -> List[Tuple[int, float, int]]:
    """Collapses question hits to answers: ``(owner, best score, best row)``, best first.

    Several variants of one answer often fill the top hits; a customer should see
    distinct answers, each scored by its closest variant.
    """
    best: Dict[int, Tuple[float, int]] = {}
    for score, row in zip(scores, row_ids):
        if row < 0:
            continue
        owner = owners[row]
        if owner not in best or score > best[owner][0]:
            best[owner] = (float(score), int(row))
    ranked = sorted(best.items(), key=lambda item: -item[1][0])[:limit]
    return [(owner, score, row) for owner, (score, row) in ranked]
