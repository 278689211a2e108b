"""One transformer encoder with an intent head and a tag head, read from one forward pass.

Rasa-free. The encoder's word-piece vectors feed the tag head (as in `TokenTagger`); their
mean over real pieces is the sentence vector, which feeds the intent head (as in
`SentenceClassifier`) and, scaled to unit length, the knowledge-base search. So a message
costs one encoder pass however many of the three it needs.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from lepton_components.batching import sorted_batches
from lepton_components.torch_encoder import mean_pool, pad_batch

INFERENCE_BATCH_SIZE = 64


class JointOutput(NamedTuple):
    """What one pass over a batch of windows gives."""

    pooled: torch.Tensor  # (batch, hidden): mean of the real pieces' vectors
    intent_logits: torch.Tensor  # (batch, intents)
    tag_logits: Optional[torch.Tensor]  # (batch, length, tags); None without a tag head


class JointModel(torch.nn.Module):
    """Encoder + `head["intent"]` (linear over the pooled vector) + optional `head["tags"]`.

    The heads live in one ModuleDict named `head`, so `encoder_persistence` saves and
    restores both as one safetensors file, like the single head of the other components.
    ``normalize`` scales the pooled vector to unit length before the intent head
    (`normalize_embeddings`).
    """

    def __init__(
        self, encoder: torch.nn.Module, num_intents: int, num_tags: int, dropout: float = 0.1, normalize: bool = False
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.dropout = torch.nn.Dropout(dropout)
        hidden = encoder.config.hidden_size
        heads = {"intent": torch.nn.Linear(hidden, num_intents)}
        if num_tags:
            heads["tags"] = torch.nn.Linear(hidden, num_tags)
        self.head = torch.nn.ModuleDict(heads)

    @property
    def has_tagger(self) -> bool:
        return "tags" in self.head

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The encoder pass: one vector per word piece, ``(batch, length, hidden)``."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def heads(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> JointOutput:
        """Both heads from word-piece vectors (fresh from `encode` or cached)."""
        pooled = mean_pool(hidden_states, attention_mask)
        sentence = torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled
        intent_logits = self.head["intent"](self.dropout(sentence))
        tag_logits = self.head["tags"](self.dropout(hidden_states)) if self.has_tagger else None
        return JointOutput(pooled, intent_logits, tag_logits)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> JointOutput:
        return self.heads(self.encode(input_ids, attention_mask), attention_mask)


class JointPredictions(NamedTuple):
    """Per window, in input order."""

    intent_probabilities: np.ndarray  # (windows, intents)
    tag_probabilities: Optional[List[np.ndarray]]  # (pieces, tags) each; None without a tag head
    sentence_vectors: np.ndarray  # (windows, hidden), unit length, float32


def predict(
    model: JointModel, token_ids: Sequence[List[int]], pad_token_id: int, device: torch.device
) -> JointPredictions:
    """Intent and tag probabilities and unit sentence vectors, one encoder pass per batch.

    Batches hold up to 64 windows, so the windows of one message (at most `max_windows`)
    and of a few messages share one pass.
    """
    model.eval()
    count = len(token_ids)
    intents = np.zeros((count, model.head["intent"].out_features), dtype=np.float32)
    vectors = np.zeros((count, model.head["intent"].in_features), dtype=np.float32)
    tags: Dict[int, np.ndarray] = {}
    with torch.inference_mode():
        for batch in sorted_batches([len(ids) for ids in token_ids], INFERENCE_BATCH_SIZE):
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            output = model(input_ids, attention_mask)
            intents[batch] = torch.softmax(output.intent_logits.float(), dim=-1).cpu().numpy()
            vectors[batch] = torch.nn.functional.normalize(output.pooled.float(), dim=-1).cpu().numpy()
            if output.tag_logits is not None:
                probabilities = torch.softmax(output.tag_logits.float(), dim=-1).cpu().numpy()
                for row, index in enumerate(batch):
                    tags[index] = probabilities[row, : len(token_ids[index])]
    return JointPredictions(
        intents, [tags[index] for index in range(count)] if model.has_tagger else None, vectors
    )


def sentence_vectors(
    model: JointModel, token_ids: Sequence[List[int]], pad_token_id: int, device: torch.device
) -> np.ndarray:
    """Unit-length mean-pooled encoder vectors (no heads), e.g. of knowledge-base questions."""
    model.eval()
    vectors = np.zeros((len(token_ids), model.head["intent"].in_features), dtype=np.float32)
    with torch.inference_mode():
        for batch in sorted_batches([len(ids) for ids in token_ids], INFERENCE_BATCH_SIZE):
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            pooled = mean_pool(model.encode(input_ids, attention_mask), attention_mask)
            vectors[batch] = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
    return vectors
