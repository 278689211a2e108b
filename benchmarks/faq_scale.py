"""FAISS index scale benchmark: 1k, 10k and 100k knowledge-base entries.

    python -m benchmarks.faq_scale --sizes 1000 10000 100000 --out docs/faq_scale.json

Entries are generated, with the structure of real questions: real sentences from the
demo's NLU data and knowledge base are embedded with the packaged MiniLM, and every
generated entry is a unit vector near one of them (Gaussian noise, then normalised), so
neighbourhoods are clustered like paraphrases rather than uniformly random. Queries are
fresh perturbations of stored entries. Reported per index type: build time, index memory
(serialised size), single-query search latency p50/p95 and recall@1 against exact search.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import yaml

from lepton_components.backbone import packaged_backbone_path
from lepton_components.retrieval.knowledge_base import load_knowledge_base, question_rows
from lepton_components.retrieval.sentence_encoder import SentenceEncoder
from lepton_components.retrieval.vector_index import build_index, index_to_bytes, search

HNSW_EF_SEARCH = (64, 128, 256)  # 64 is FaqRetriever's default
IVF_NPROBE = (8, 16, 32)  # 16 is FaqRetriever's default
NOISE = 0.08  # per-dimension std before normalising: cosine to the seed sentence ~0.6-0.8


def seed_vectors() -> np.ndarray:
    """Embeddings of every real sentence in the demo data."""
    texts: List[str] = []
    nlu = yaml.safe_load(Path("data/nlu.yml").read_text(encoding="utf-8"))
    for block in nlu["nlu"]:
        if "intent" in block:
            texts += [line[2:].strip() for line in block["examples"].splitlines() if line.startswith("- ")]
    texts += question_rows(load_knowledge_base(Path("data/faq.yml")))[0]
    return SentenceEncoder(packaged_backbone_path()).encode(texts)


def perturb(seeds: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    vectors = seeds[rng.integers(0, len(seeds), size=count)] + rng.normal(0, NOISE, size=(count, seeds.shape[1]))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def measure(size: int, seeds: np.ndarray, queries: int, rng: np.random.Generator) -> List[Dict]:
    base = perturb(seeds, size, rng)
    probe = perturb(base, queries, rng)
    exact_ids = search(build_index(base, "flat"), probe, 1)[1][:, 0]
    rows = []
    for index_type, settings in (("flat", [None]), ("hnsw", HNSW_EF_SEARCH), ("ivf", IVF_NPROBE)):
        started = time.perf_counter()
        index = build_index(base, index_type)
        build_seconds = time.perf_counter() - started
        for setting in settings:
            label = index_type
            if index_type == "hnsw":
                index.hnsw.efSearch, label = setting, f"hnsw efSearch={setting}"
            elif index_type == "ivf":
                index.nprobe, label = min(setting, index.nlist), f"ivf nlist={index.nlist} nprobe={setting}"
            latencies, found = [], []
            for query in probe:
                started = time.perf_counter()
                _, ids = search(index, query[None, :], 1)
                latencies.append((time.perf_counter() - started) * 1000)
                found.append(ids[0, 0])
            rows.append(
                {
                    "entries": size,
                    "index": label,
                    "build_s": round(build_seconds, 3),
                    "memory_mb": round(len(index_to_bytes(index)) / 2**20, 1),
                    "p50_ms": round(float(np.percentile(latencies, 50)), 3),
                    "p95_ms": round(float(np.percentile(latencies, 95)), 3),
                    "recall@1_vs_exact": round(float(np.mean(np.array(found) == exact_ids)), 4),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    seeds = seed_vectors()
    rows = [row for size in args.sizes for row in measure(size, seeds, args.queries, rng)]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores; builds on all cores, searches on 1 thread",
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
