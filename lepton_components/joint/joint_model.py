"""One transformer encoder with an intent head and a tag head, read from one forward pass.

Rasa-free. The encoder's word-piece vectors feed the tag head (as in `TokenTagger`); their
mean over real pieces is the sentence vector, which feeds the intent head (as in
`SentenceClassifier`) and, scaled to unit length, the knowledge-base search. So a message
costs one encoder pass however many of the three it needs.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from lepton_components.joint.joint_graph import JointPredictions, predict_in_batches
from lepton_components.torch_encoder import mean_pool


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


class ServingOutputs(torch.nn.Module):
    """What serving reads from a JointModel, as plain tensors in `joint_graph.OUTPUT_NAMES`
    order: intent probabilities, unit-length sentence vectors and, with a tag head, tag
    probabilities. The one definition both the PyTorch path and the exported ONNX graph run."""

    def __init__(self, model: JointModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        output = self.model(input_ids, attention_mask)
        served = (
            torch.softmax(output.intent_logits.float(), dim=-1),
            torch.nn.functional.normalize(output.pooled.float(), dim=-1),
        )
        if output.tag_logits is None:
            return served
        return (*served, torch.softmax(output.tag_logits.float(), dim=-1))


def predict(
    model: JointModel, token_ids: Sequence[List[int]], pad_token_id: int, device: torch.device
) -> JointPredictions:
    """`ServingOutputs` of every window with PyTorch (training, `inference_backend: torch`, CUDA)."""
    served = ServingOutputs(model).eval()

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> List[np.ndarray]:
        with torch.inference_mode():
            outputs = served(torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device))
        return [output.cpu().numpy() for output in outputs]

    return predict_in_batches(run, token_ids, pad_token_id)
