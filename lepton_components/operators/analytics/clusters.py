"""The questions the bot could not answer, grouped by meaning, biggest group first.

Texts come from the turn log: bot turns in the window that fell back, asked to
rephrase, had a low intent confidence or found no knowledge-base answer, and that the
knowledge base did not answer after all; button payloads (`/intent`) are left out. The
newest `MAX_TEXTS` are taken, identical texts (ignoring case and spacing) counted once
with their frequency, embedded with the loaded FaqRetriever's sentence encoder (so
"similar" means what it means for retrieval), and grouped by agglomerative clustering
on cosine distance with average linkage: two questions share a group when the
average distance between the groups is below `review.cluster_distance`. Each group
is a candidate for a new knowledge-base answer. CPU work: run it through `asyncio.to_thread`.
"""

import datetime
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Text, Tuple

import numpy as np
import sqlalchemy as sa

from lepton_components.operators.analytics.turn_log import turns

MAX_TEXTS = 2000
EXAMPLES = 5
MAX_CLUSTERS = 12
# Vectors remembered per encoder: a page view then encodes only the questions new since the last.
CACHED_VECTORS = 20_000


@dataclass(frozen=True)
class Cluster:
    """A group of similar unanswered questions: how often they were asked, the commonest ones."""

    size: int
    examples: Tuple[Text, ...]


class CachingEncoder:
    """`encoder` with the vectors of texts it encoded before remembered (thread-safe)."""

    def __init__(self, encoder: Any, capacity: int = CACHED_VECTORS) -> None:
        self.encoder = encoder
        self._capacity = capacity
        self._vectors: "OrderedDict[Text, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[Text]) -> np.ndarray:
        with self._lock:
            missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
            if missing:
                for text, vector in zip(missing, np.asarray(self.encoder.encode(missing), dtype=np.float32)):
                    self._vectors[text] = vector
            for text in texts:
                self._vectors.move_to_end(text)
            vectors = np.stack([self._vectors[text] for text in texts]) if texts else np.zeros((0, 0), np.float32)
            while len(self._vectors) > self._capacity:
                self._vectors.popitem(last=False)
            return vectors


def unanswered_texts(engine: sa.engine.Engine, since: datetime.date, limit: int = MAX_TEXTS) -> List[Text]:
    """The newest unanswered customer texts since `since`, newest first."""
    failed = sa.or_(
        turns.c.fallback.is_(True),
        turns.c.rephrase.is_(True),
        turns.c.low_confidence.is_(True),
        turns.c.kb_missed.is_(True),
    )
    query = (
        sa.select(turns.c.text)
        .where(
            turns.c.day >= since,
            turns.c.human.is_(False),
            turns.c.faq_answered.is_(False),
            turns.c.text.is_not(None),
            failed,
        )
        .order_by(turns.c.at.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        texts = [row.text for row in connection.execute(query)]
    return [text for text in texts if text.strip() and not text.lstrip().startswith("/")]


def _counted(texts: Sequence[Text]) -> Tuple[List[Text], List[int]]:
    """Distinct texts (first spelling seen) and how often each occurs."""
    index: Dict[Text, int] = {}
    distinct: List[Text] = []
    counts: List[int] = []
    for text in texts:
        key = " ".join(text.split()).casefold()
        if key in index:
            counts[index[key]] += 1
        else:
            index[key] = len(distinct)
            distinct.append(" ".join(text.split()))
            counts.append(1)
    return distinct, counts


def cluster_texts(texts: Sequence[Text], encoder: Any, distance: float, limit: int = MAX_CLUSTERS) -> List[Cluster]:
    """Groups of `texts` by meaning; `encoder.encode(texts)` gives one unit vector per text."""
    distinct, counts = _counted(texts)
    if not distinct:
        return []
    if len(distinct) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import AgglomerativeClustering

        vectors = np.asarray(encoder.encode(distinct), dtype=np.float32)
        labels = AgglomerativeClustering(
            n_clusters=None, affinity="cosine", linkage="average", distance_threshold=distance
        ).fit_predict(vectors)
    groups: Dict[int, List[int]] = {}
    for position, label in enumerate(labels):
        groups.setdefault(int(label), []).append(position)
    clusters = []
    for members in groups.values():
        # Most asked first; ties keep the newest first (the order texts came in).
        members.sort(key=lambda position: (-counts[position], position))
        size = sum(counts[position] for position in members)
        clusters.append((size, members[0], Cluster(size, tuple(distinct[position] for position in members[:EXAMPLES]))))
    clusters.sort(key=lambda entry: (-entry[0], entry[1]))
    return [cluster for _, _, cluster in clusters[:limit]]
