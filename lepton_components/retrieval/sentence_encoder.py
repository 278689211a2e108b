"""Sentence embeddings for retrieval, from a local sentence-transformers or Hugging Face folder."""

from pathlib import Path
from typing import Sequence, Text

import numpy as np


class SentenceEncoder:
    """Wraps SentenceTransformer so vectors are always float32 and unit length."""

    def __init__(self, path: Path, device: Text = "cpu", batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        from lepton_components.torch_encoder import quiet_model_loading

        with quiet_model_loading():
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self._batch_size = batch_size

    @property
    def dimension(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[Text]) -> np.ndarray:
        """One unit-length row per text; cosine similarity is then a dot product."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


