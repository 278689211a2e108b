"""A transformer encoder with a linear classification head, and how it is fine-tuned.

Rasa-free: the intent classifier component converts Rasa messages to token ids and label
indices and calls into this module, which keeps the training logic testable on its own.
"""

import dataclasses
import logging
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lepton_components.batching import sorted_batches
from lepton_components.encoder_config import EncoderConfig
from lepton_components.fine_tuning import LoopResult, stratified_holdout, train_with_early_stopping
from lepton_components.torch_encoder import mean_pool, pad_batch, trainable_parameters

logger = logging.getLogger(__name__)

INFERENCE_BATCH_SIZE = 64


class SentenceClassifier(torch.nn.Module):
    """Mean-pooled encoder output followed by dropout and one linear layer.

    ``normalize`` scales each sentence vector to unit length first: sentence encoders such
    as all-MiniLM-L6-v2 are trained to compare sentences by cosine, so the direction carries
    the meaning; on 10-shot BANKING77 it lifted head-only accuracy by about a point
    (docs/benchmarks.md).
    """

    def __init__(
        self, encoder: torch.nn.Module, num_labels: int, dropout: float = 0.1, normalize: bool = False
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_labels)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector per sentence."""
        output = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        pooled = mean_pool(output.last_hidden_state, attention_mask)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def classify(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Label logits from sentence vectors."""
        return self.head(self.dropout(embeddings))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(input_ids, attention_mask))


@dataclasses.dataclass
class TrainingReport:
    """What happened during fine-tuning; stored with the model for diagnosis."""

    epochs_run: int
    best_epoch: int
    validation_examples: int
    best_validation_accuracy: Optional[float]
    final_training_loss: float
    seconds: float


def predict_probabilities(
    model: SentenceClassifier,
    token_ids: Sequence[List[int]],
    pad_token_id: int,
    device: torch.device,
) -> np.ndarray:
    """Softmax label probabilities, one row per example, in input order."""
    model.eval()
    probabilities = np.zeros((len(token_ids), model.head.out_features), dtype=np.float32)
    with torch.inference_mode():
        for batch in sorted_batches([len(ids) for ids in token_ids], INFERENCE_BATCH_SIZE):
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            logits = model(input_ids, attention_mask)
            probabilities[batch] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return probabilities


def _cached_embeddings(
    model: SentenceClassifier, token_ids: Sequence[List[int]], pad_token_id: int, device: torch.device
) -> torch.Tensor:
    """Sentence vectors of a frozen encoder, computed once for head-only training."""
    model.eval()
    embeddings = torch.zeros((len(token_ids), model.head.in_features), device=device)
    with torch.inference_mode():
        for batch in sorted_batches([len(ids) for ids in token_ids], INFERENCE_BATCH_SIZE):
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            embeddings[batch] = model.embed(input_ids, attention_mask).float()
    return embeddings.clone()


def fine_tune(
    model: SentenceClassifier,
    token_ids: Sequence[List[int]],
    labels: Sequence[int],
    config: EncoderConfig,
    pad_token_id: int,
    device: torch.device,
    epochs: int,
    head_warmup_epochs: int = 0,
) -> TrainingReport:
    """Trains ``model`` in place and restores the weights of its best held-out epoch.

    With ``training_mode: head_only`` the frozen encoder runs once over the data and only
    the head trains on the cached sentence vectors, which is orders of magnitude faster.
    ``head_warmup_epochs`` first trains the head that way before the encoder trains too
    (linear probing, then fine-tuning: Kumar et al., 2022): the encoder's first steps then
    follow a sensible head instead of a random one, so fewer full epochs reach the same
    accuracy. It costs one encoder pass over the data.
    """
    started = time.perf_counter()
    model.to(device)
    validation_fraction = config.validation_fraction_for(len(labels))
    train_indices, held_out = stratified_holdout(labels, validation_fraction, config.random_seed)
    if config.validation_fraction > 0 and not held_out:
        logger.info(
            "Too few examples to hold some out for early stopping (see `min_held_out_examples`); "
            f"training for all {epochs} epochs."
        )
    label_tensor = torch.tensor(labels, dtype=torch.long, device=device)
    head_only = config.training_mode == "head_only"

    def train_loop(logits_for: Callable[[List[int]], torch.Tensor], train_encoder: bool, loop_epochs: int) -> LoopResult:
        return train_with_early_stopping(
            model,
            head_parameters=list(model.head.parameters()),
            encoder_parameters=trainable_parameters(model.encoder) if train_encoder else [],
            train_indices=train_indices,
            lengths=[len(ids) for ids in token_ids],
            batch_loss=lambda batch: torch.nn.functional.cross_entropy(logits_for(batch), label_tensor[batch]),
            evaluate=(lambda: _evaluate(model, logits_for, held_out, label_tensor)) if held_out else None,
            config=config,
            epochs=loop_epochs,
            metric_name="val_acc",
        )

    if head_only or head_warmup_epochs > 0:
        cache = _cached_embeddings(model, token_ids, pad_token_id, device)
        result = train_loop(lambda batch: model.classify(cache[batch]), False, epochs if head_only else head_warmup_epochs)
        del cache
    if not head_only:

        def logits_for(batch: List[int]) -> torch.Tensor:
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            return model(input_ids, attention_mask)

        result = train_loop(logits_for, True, epochs)
    return TrainingReport(
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        validation_examples=len(held_out),
        best_validation_accuracy=result.best_score,
        final_training_loss=result.final_training_loss,
        seconds=round(time.perf_counter() - started, 2),
    )


def _evaluate(
    model: SentenceClassifier,
    logits_for: Callable[[List[int]], torch.Tensor],
    indices: List[int],
    labels: torch.Tensor,
) -> Tuple[float, float]:
    model.eval()
    correct, total_loss = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(indices), INFERENCE_BATCH_SIZE):
            batch = indices[start : start + INFERENCE_BATCH_SIZE]
            logits = logits_for(batch)
            total_loss += torch.nn.functional.cross_entropy(logits, labels[batch], reduction="sum").item()
            correct += int((logits.argmax(dim=-1) == labels[batch]).sum().item())
    return correct / len(indices), total_loss / len(indices)
