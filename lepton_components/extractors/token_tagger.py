"""A transformer encoder with a per-word-piece tagging layer, and the loop that fine-tunes it.

Rasa-free: the entity extractor turns messages into windows of token ids with BIO tag ids
(see ``bio_alignment``) and calls into this module. The optimiser, schedule, batching and
early stopping are the ones the intent classifier uses (``train_with_early_stopping``);
only the loss, the held-out score and the head-only cache differ.
"""

import dataclasses
import logging
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lepton_components.batching import sorted_batches
from lepton_components.fine_tuning import stratified_holdout, train_with_early_stopping
from lepton_components.encoder_config import EncoderConfig
from lepton_components.extractors.bio_alignment import IGNORE_INDEX, OUTSIDE, is_begin, label_index_of, tag_runs
from lepton_components.torch_encoder import pad_batch, trainable_parameters

logger = logging.getLogger(__name__)

INFERENCE_BATCH_SIZE = 64


class TokenTagger(torch.nn.Module):
    """Encoder output for every word piece followed by dropout and one linear layer."""

    def __init__(self, encoder: torch.nn.Module, num_tags: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(encoder.config.hidden_size, num_tags)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector per word piece: ``(batch, length, hidden)``."""
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def tag(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Tag logits from word-piece vectors."""
        return self.head(self.dropout(hidden_states))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.tag(self.encode(input_ids, attention_mask))


@dataclasses.dataclass
class TaggingReport:
    """What happened during fine-tuning; stored with the model for diagnosis."""

    epochs_run: int
    best_epoch: int
    validation_messages: int
    best_validation_f1: Optional[float]
    final_training_loss: float
    seconds: float


def pad_tags(tags: Sequence[List[int]], device: torch.device) -> torch.Tensor:
    """Tag ids padded with ``IGNORE_INDEX`` so padding adds nothing to the loss."""
    longest = max(len(row) for row in tags)
    padded = torch.full((len(tags), longest), IGNORE_INDEX, dtype=torch.long)
    for index, row in enumerate(tags):
        padded[index, : len(row)] = torch.tensor(row, dtype=torch.long)
    return padded.to(device)


def message_holdout(
    tags: Sequence[List[int]], message_of_window: Sequence[int], fraction: float, seed: int
) -> Tuple[List[int], List[int]]:
    """Splits windows into training and held-out parts, whole messages at a time.

    Windows of one long message overlap, so they go to the same side. Messages are
    stratified by the first entity label they contain (or "none"), as intents are for the
    classifier, so every entity type keeps training examples. Returns window indices
    ``(train, held_out)``; ``held_out`` is empty when it would hold no entity at all.
    """
    message_count = max(message_of_window) + 1
    strata = [0] * message_count
    for window, message in enumerate(message_of_window):
        labels = [label_index_of(tag) for tag in tags[window] if is_begin(tag)]
        if labels and (strata[message] == 0 or min(labels) + 1 < strata[message]):
            strata[message] = min(labels) + 1
    _, held_messages = stratified_holdout(strata, fraction, seed)
    if not any(strata[message] for message in held_messages):
        held_messages = []
    held = set(held_messages)
    train = [w for w, message in enumerate(message_of_window) if message not in held]
    held_out = [w for w, message in enumerate(message_of_window) if message in held]
    return train, held_out


def _cached_hidden_states(
    model: TokenTagger, token_ids: Sequence[List[int]], pad_token_id: int, device: torch.device
) -> List[torch.Tensor]:
    """Word-piece vectors of a frozen encoder, computed once for head-only training."""
    model.eval()
    cache: List[Optional[torch.Tensor]] = [None] * len(token_ids)
    with torch.inference_mode():
        for batch in sorted_batches([len(ids) for ids in token_ids], INFERENCE_BATCH_SIZE):
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            hidden = model.encode(input_ids, attention_mask).float()
            for row, index in enumerate(batch):
                cache[index] = hidden[row, : len(token_ids[index])].clone()
    return cache  # type: ignore[return-value]


def fine_tune(
    model: TokenTagger,
    token_ids: Sequence[List[int]],
    tags: Sequence[List[int]],
    message_of_window: Sequence[int],
    config: EncoderConfig,
    pad_token_id: int,
    device: torch.device,
    epochs: int,
) -> TaggingReport:
    """Trains ``model`` in place on windows of token ids with one tag id per token.

    Early stopping picks the epoch with the best exact-span entity F1 on held-out
    messages. With ``training_mode: head_only`` the frozen encoder runs once and only the
    tagging layer trains on the cached word-piece vectors.
    """
    started = time.perf_counter()
    model.to(device)
    validation_fraction = config.validation_fraction_for(max(message_of_window, default=-1) + 1)
    train_indices, held_out = message_holdout(tags, message_of_window, validation_fraction, config.random_seed)
    if config.validation_fraction > 0 and not held_out:
        logger.info(
            "Too few annotated messages to hold some out for early stopping (see `min_held_out_examples`); "
            f"training for all {epochs} epochs."
        )
    head_only = config.training_mode == "head_only"

    if head_only:
        cache = _cached_hidden_states(model, token_ids, pad_token_id, device)

        def logits_for(batch: List[int]) -> torch.Tensor:
            hidden = torch.nn.utils.rnn.pad_sequence([cache[i] for i in batch], batch_first=True)
            return model.tag(hidden)

    else:

        def logits_for(batch: List[int]) -> torch.Tensor:
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            return model(input_ids, attention_mask)

    def batch_loss(batch: List[int]) -> torch.Tensor:
        logits = logits_for(batch)
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), pad_tags([tags[i] for i in batch], device).flatten(), ignore_index=IGNORE_INDEX
        )

    def evaluate() -> Tuple[float, float]:
        return _evaluate(logits_for, held_out, tags, device)

    result = train_with_early_stopping(
        model,
        head_parameters=list(model.head.parameters()),
        encoder_parameters=[] if head_only else trainable_parameters(model.encoder),
        train_indices=train_indices,
        lengths=[len(ids) for ids in token_ids],
        batch_loss=batch_loss,
        evaluate=evaluate if held_out else None,
        config=config,
        epochs=epochs,
        metric_name="val_f1",
    )
    return TaggingReport(
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        validation_messages=len({message_of_window[w] for w in held_out}),
        best_validation_f1=result.best_score,
        final_training_loss=result.final_training_loss,
        seconds=round(time.perf_counter() - started, 2),
    )


def entity_counts(gold: Sequence[int], predicted: Sequence[int]) -> Tuple[int, int, int]:
    """``(correct, predicted, gold)`` entity counts of one window, exact spans and labels.

    Pieces the gold tags ignore (special tokens, misaligned annotations) are not judged.
    """
    predicted = [OUTSIDE if g == IGNORE_INDEX else p for g, p in zip(gold, predicted)]
    gold_runs, predicted_runs = set(tag_runs(gold)), set(tag_runs(predicted))
    return len(gold_runs & predicted_runs), len(predicted_runs), len(gold_runs)


def _evaluate(
    logits_for: Callable[[List[int]], torch.Tensor],
    indices: List[int],
    tags: Sequence[List[int]],
    device: torch.device,
) -> Tuple[float, float]:
    """Entity F1 and mean per-piece loss on the held-out windows."""
    counts = np.zeros(3, dtype=np.int64)  # correct, predicted, gold
    loss_sum, piece_count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(indices), INFERENCE_BATCH_SIZE):
            batch = indices[start : start + INFERENCE_BATCH_SIZE]
            logits = logits_for(batch)
            gold = pad_tags([tags[i] for i in batch], device)
            loss_sum += torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), gold.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
            ).item()
            piece_count += int((gold != IGNORE_INDEX).sum().item())
            predictions = logits.argmax(dim=-1).cpu().tolist()
            for row, index in enumerate(batch):
                length = len(tags[index])
                counts += entity_counts(tags[index], predictions[row][:length])
    correct, predicted_total, gold_total = (int(count) for count in counts)
    f1 = 1.0 if predicted_total + gold_total == 0 else 2 * correct / (predicted_total + gold_total)
    return f1, loss_sum / max(1, piece_count)


def predict_tag_probabilities(
    model: TokenTagger,
    token_ids: Sequence[List[int]],
    pad_token_id: int,
    device: torch.device,
) -> List[np.ndarray]:
    """Per window: a ``(tokens, num_tags)`` array of tag probabilities."""
    model.eval()
    results: Dict[int, np.ndarray] = {}
    with torch.inference_mode():
        for batch in sorted_batches([len(ids) for ids in token_ids], INFERENCE_BATCH_SIZE):
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            probabilities = torch.softmax(model(input_ids, attention_mask).float(), dim=-1).cpu().numpy()
            for row, index in enumerate(batch):
                results[index] = probabilities[row, : len(token_ids[index])]
    return [results[index] for index in range(len(token_ids))]
