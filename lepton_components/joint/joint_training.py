"""Trains the joint model's adapter and both heads together. Rasa-free.

One batch of windows is one encoder pass, and its loss adds up to three parts:

* intent cross entropy on the first window of each message that has an intent (the
  window the classifier reads at parse time);
* tag cross entropy on every window (special tokens and misaligned annotations ignored),
  when the data has entity annotations; messages without entities teach `O`;
* `sentence_vector_weight` times the cosine distance between the adapted pooled vector
  of a first window and the frozen backbone's, computed once before training. The
  knowledge-base search reads the same pooled vector, and a sentence encoder's space
  is what makes unseen paraphrases of knowledge-base questions land near them; intent
  training alone is free to fold that space into a few intent clusters.

The optimiser, schedule, batching and early stopping are the shared loop's
(`fine_tuning.train_with_early_stopping`); the held-out split is of whole messages,
stratified by intent, scored by the mean of intent accuracy and entity F1.
"""

import contextlib
import dataclasses
import logging
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from lepton_components.batching import sorted_batches
from lepton_components.encoder_config import EncoderConfig
from lepton_components.extractors.bio_alignment import IGNORE_INDEX
from lepton_components.extractors.token_tagger import entity_counts, pad_tags
from lepton_components.fine_tuning import LoopResult, stratified_holdout, train_with_early_stopping
from lepton_components.joint.joint_graph import INFERENCE_BATCH_SIZE
from lepton_components.joint.joint_model import JointModel, JointOutput
from lepton_components.torch_encoder import mean_pool, pad_batch, trainable_parameters

logger = logging.getLogger(__name__)

# The intent of a message that has none (an entity-only example): it trains tags only.
NO_INTENT = -1


@dataclasses.dataclass
class JointExamples:
    """Training windows (a long message has several, in text order) and their targets."""

    token_ids: List[List[int]]  # per window
    message_of_window: List[int]  # per window
    intents: List[int]  # per message: label index, or NO_INTENT
    tags: Optional[List[List[int]]]  # per window, one tag id per token; None: no tag head

    def first_windows(self) -> List[bool]:
        """Whether each window is its message's first (the one intents and retrieval read)."""
        return [w == 0 or self.message_of_window[w] != self.message_of_window[w - 1] for w in range(len(self.token_ids))]


@dataclasses.dataclass
class JointTrainingReport:
    """What happened during fine-tuning; stored with the model for diagnosis."""

    epochs_run: int
    best_epoch: int
    validation_messages: int
    best_validation_score: Optional[float]
    validation_intent_accuracy: Optional[float]
    validation_entity_f1: Optional[float]
    final_training_loss: float
    sentence_vector_weight: float
    seconds: float


def _mean_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the targets that count; zero (not NaN) when a batch has none."""
    total = torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / max(1, int((targets != IGNORE_INDEX).sum()))


def _reference_vectors(
    model: JointModel, examples: JointExamples, first: List[bool], pad_token_id: int, device: torch.device
) -> torch.Tensor:
    """The frozen backbone's pooled vector of every first window (zeros elsewhere), once.

    LoRA adapters are switched off for it, so under `rasa train --finetune` it is still
    the backbone's; `training_mode: full` starts from the backbone itself.
    """
    encoder = model.encoder
    without_adapters = encoder.disable_adapter() if hasattr(encoder, "disable_adapter") else contextlib.nullcontext()
    reference = torch.zeros((len(examples.token_ids), model.head["intent"].in_features), device=device)
    indices = [w for w, is_first in enumerate(first) if is_first]
    model.eval()
    with without_adapters, torch.inference_mode():
        for batch in sorted_batches([len(examples.token_ids[w]) for w in indices], INFERENCE_BATCH_SIZE):
            rows = [indices[i] for i in batch]
            input_ids, attention_mask = pad_batch([examples.token_ids[w] for w in rows], pad_token_id, device)
            reference[rows] = mean_pool(model.encode(input_ids, attention_mask), attention_mask).float()
    return reference.clone()


def _cached_hidden_states(
    model: JointModel, token_ids: Sequence[List[int]], pad_token_id: int, device: torch.device
) -> List[torch.Tensor]:
    """Word-piece vectors of the frozen encoder, computed once for head-only training."""
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
    model: JointModel,
    examples: JointExamples,
    config: EncoderConfig,
    pad_token_id: int,
    device: torch.device,
    epochs: int,
    head_warmup_epochs: int = 0,
    sentence_vector_weight: float = 0.0,
) -> JointTrainingReport:
    """Trains ``model`` in place and restores the weights of its best held-out epoch.

    ``head_warmup_epochs`` first trains both heads on cached word-piece vectors of the
    frozen encoder (as the classifier's warm-up does); ``training_mode: head_only`` trains
    only that way, and then the sentence-vector term has nothing to keep.
    """
    started = time.perf_counter()
    model.to(device)
    token_ids, tags = examples.token_ids, examples.tags
    first = examples.first_windows()
    intent_targets = torch.tensor(
        [
            examples.intents[message] if is_first and examples.intents[message] != NO_INTENT else IGNORE_INDEX
            for message, is_first in zip(examples.message_of_window, first)
        ],
        dtype=torch.long,
        device=device,
    )
    # Windows that teach something: a first window with an intent, or any window with tags.
    teaching = [
        w
        for w in range(len(token_ids))
        if int(intent_targets[w]) != IGNORE_INDEX or (tags is not None and any(t != IGNORE_INDEX for t in tags[w]))
    ]
    validation_fraction = config.validation_fraction_for(len(examples.intents))
    _, held_messages = stratified_holdout(examples.intents, validation_fraction, config.random_seed)
    held = set(held_messages)
    train_indices = [w for w in teaching if examples.message_of_window[w] not in held]
    held_out = [w for w in teaching if examples.message_of_window[w] in held]
    if config.validation_fraction > 0 and not held_out:
        logger.info(
            "Too few examples to hold some out for early stopping (see `min_held_out_examples`); "
            f"training for all {epochs} epochs."
        )
    head_only = config.training_mode == "head_only"
    anchored = sentence_vector_weight > 0 and not head_only
    reference = _reference_vectors(model, examples, first, pad_token_id, device) if anchored else None
    first_tensor = torch.tensor(first, dtype=torch.bool, device=device)

    def from_encoder(batch: List[int]) -> JointOutput:
        input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
        return model(input_ids, attention_mask)

    def batch_loss(outputs_for: Callable[[List[int]], JointOutput], batch: List[int], anchor: bool) -> torch.Tensor:
        output = outputs_for(batch)
        loss = _mean_cross_entropy(output.intent_logits, intent_targets[batch])
        if output.tag_logits is not None:
            gold = pad_tags([tags[i] for i in batch], device)
            loss = loss + _mean_cross_entropy(output.tag_logits.flatten(0, 1), gold.flatten())
        rows = first_tensor[batch]
        if anchor and bool(rows.any()):
            similarity = torch.nn.functional.cosine_similarity(output.pooled[rows], reference[batch][rows], dim=-1)
            loss = loss + sentence_vector_weight * (1.0 - similarity).mean()
        return loss

    scores: List[Dict[str, Optional[float]]] = []

    def evaluate(outputs_for: Callable[[List[int]], JointOutput]) -> Tuple[float, float]:
        metrics = _evaluate(outputs_for, held_out, intent_targets, tags, device)
        scores.append(metrics)
        parts = [value for key, value in metrics.items() if key != "loss" and value is not None]
        return float(np.mean(parts)), float(metrics["loss"])

    def train_loop(outputs_for: Callable[[List[int]], JointOutput], train_encoder: bool, loop_epochs: int) -> LoopResult:
        scores.clear()
        return train_with_early_stopping(
            model,
            head_parameters=list(model.head.parameters()),
            encoder_parameters=trainable_parameters(model.encoder) if train_encoder else [],
            train_indices=train_indices,
            lengths=[len(ids) for ids in token_ids],
            batch_loss=lambda batch: batch_loss(outputs_for, batch, anchored and train_encoder),
            evaluate=(lambda: evaluate(outputs_for)) if held_out else None,
            config=config,
            epochs=loop_epochs,
            metric_name="val_score",
        )

    if head_only or head_warmup_epochs > 0:
        cache = _cached_hidden_states(model, token_ids, pad_token_id, device)

        def from_cache(batch: List[int]) -> JointOutput:
            hidden = torch.nn.utils.rnn.pad_sequence([cache[i] for i in batch], batch_first=True)
            _, attention_mask = pad_batch([token_ids[i] for i in batch], pad_token_id, device)
            return model.heads(hidden, attention_mask)

        result = train_loop(from_cache, False, epochs if head_only else head_warmup_epochs)
        del cache
    if not head_only:
        result = train_loop(from_encoder, True, epochs)
    best = scores[result.best_epoch - 1] if scores else {}
    return JointTrainingReport(
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        validation_messages=len({examples.message_of_window[w] for w in held_out}),
        best_validation_score=result.best_score,
        validation_intent_accuracy=best.get("intent_accuracy"),
        validation_entity_f1=best.get("entity_f1"),
        final_training_loss=result.final_training_loss,
        sentence_vector_weight=sentence_vector_weight if anchored else 0.0,
        seconds=round(time.perf_counter() - started, 2),
    )


def _evaluate(
    outputs_for: Callable[[List[int]], JointOutput],
    indices: List[int],
    intent_targets: torch.Tensor,
    tags: Optional[Sequence[List[int]]],
    device: torch.device,
) -> Dict[str, Optional[float]]:
    """Intent accuracy (first windows), exact-span entity F1 (all windows) and their mean losses."""
    correct_intents = intent_count = 0
    intent_loss = tag_loss = 0.0
    piece_count = 0
    counts = np.zeros(3, dtype=np.int64)  # correct, predicted, gold entities
    with torch.inference_mode():
        for start in range(0, len(indices), INFERENCE_BATCH_SIZE):
            batch = indices[start : start + INFERENCE_BATCH_SIZE]
            output = outputs_for(batch)
            targets = intent_targets[batch]
            counted = targets != IGNORE_INDEX
            intent_loss += torch.nn.functional.cross_entropy(
                output.intent_logits, targets, ignore_index=IGNORE_INDEX, reduction="sum"
            ).item()
            correct_intents += int((output.intent_logits.argmax(dim=-1)[counted] == targets[counted]).sum())
            intent_count += int(counted.sum())
            if output.tag_logits is None:
                continue
            gold = pad_tags([tags[i] for i in batch], device)
            tag_loss += torch.nn.functional.cross_entropy(
                output.tag_logits.flatten(0, 1), gold.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
            ).item()
            piece_count += int((gold != IGNORE_INDEX).sum())
            predictions = output.tag_logits.argmax(dim=-1).cpu().tolist()
            for row, index in enumerate(batch):
                counts += entity_counts(tags[index], predictions[row][: len(tags[index])])
    f1 = None
    if tags is not None:
        correct, predicted_total, gold_total = (int(count) for count in counts)
        f1 = 1.0 if predicted_total + gold_total == 0 else 2 * correct / (predicted_total + gold_total)
    return {
        "intent_accuracy": correct_intents / intent_count if intent_count else None,
        "entity_f1": f1,
        "loss": intent_loss / max(1, intent_count) + tag_loss / max(1, piece_count),
    }
