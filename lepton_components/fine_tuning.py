"""The fine-tuning loop every encoder component shares, whatever its head. Rasa-free.

Two learning rates (a fresh head takes larger steps than pretrained weights), linear
warm-up and decay, length-bucketed batches reshuffled each epoch, gradient clipping and
early stopping on a held-out split with the best epoch's weights restored.
"""

import dataclasses
import logging
import math
from typing import Callable, Dict, List, Optional, Sequence, Text, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

from lepton_components.batching import length_bucketed_batches
from lepton_components.encoder_config import EncoderConfig

logger = logging.getLogger(__name__)


# Held-out examples enough to pick an epoch however many labels there are.
MIN_HELD_OUT = 20


def stratified_holdout(
    labels: Sequence[int], fraction: float, seed: int
) -> Tuple[List[int], List[int]]:
    """Splits example indices into training and held-out parts, per label.

    Each label gives ``floor(count * fraction)`` examples to the held-out part, so labels
    with few examples keep all of them for training. Returns ``(train, held_out)``; the
    held-out part is empty when there are too few examples for a meaningful check
    (fewer held-out examples than labels, or than MIN_HELD_OUT when there are more labels:
    many small labels, such as knowledge-base answers with a few questions each, give
    none but still leave the others a check).
    """
    rng = np.random.default_rng(seed)
    by_label: Dict[int, List[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    train: List[int] = []
    held_out: List[int] = []
    for label in sorted(by_label):
        indices = list(rng.permutation(by_label[label]))
        cut = int(len(indices) * fraction)
        held_out.extend(int(i) for i in indices[:cut])
        train.extend(int(i) for i in indices[cut:])
    if len(held_out) < min(len(by_label), MIN_HELD_OUT):
        return sorted(train + held_out), []
    return sorted(train), sorted(held_out)


@dataclasses.dataclass
class LoopResult:
    """How a run of ``train_with_early_stopping`` went."""

    epochs_run: int
    best_epoch: int
    best_score: Optional[float]
    final_training_loss: float


def train_with_early_stopping(
    model: torch.nn.Module,
    head_parameters: List[torch.nn.Parameter],
    encoder_parameters: List[torch.nn.Parameter],
    train_indices: Sequence[int],
    lengths: Sequence[int],
    batch_loss: Callable[[List[int]], torch.Tensor],
    evaluate: Optional[Callable[[], Tuple[float, float]]],
    config: EncoderConfig,
    epochs: int,
    metric_name: Text,
) -> LoopResult:
    """The fine-tuning loop every encoder component shares, whatever its head.

    Two learning rates (a fresh head takes larger steps than pretrained weights), linear
    warm-up and decay, length-bucketed batches reshuffled each epoch, gradient clipping,
    and early stopping on ``evaluate()``'s ``(score, loss)``: a higher score wins, a lower
    loss breaks ties. The best epoch's trainable weights are restored at the end. Without
    ``evaluate`` it trains for exactly ``epochs`` epochs. ``batch_loss`` receives example
    indices (from ``train_indices``) and returns the mean loss of that batch.
    """
    parameter_groups = [{"params": head_parameters, "lr": config.head_learning_rate}]
    if encoder_parameters:
        parameter_groups.append({"params": encoder_parameters, "lr": config.encoder_learning_rate})
    optimizer = torch.optim.AdamW(parameter_groups, weight_decay=0.01)
    train_lengths = [lengths[i] for i in train_indices]
    steps_per_epoch = math.ceil(len(train_indices) / config.batch_size)
    total_steps = max(1, steps_per_epoch * epochs)
    warmup_steps = int(0.06 * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / max(1, warmup_steps), max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))),
    )
    trained = [p for group in parameter_groups for p in group["params"]]
    best_state = _snapshot(model)
    best_score: Optional[float] = None
    best_loss = math.inf
    best_epoch = 0
    epochs_without_improvement = 0
    epoch_loss = math.nan
    progress = tqdm(range(1, epochs + 1), desc="Epochs", disable=not config.show_progress_bar)
    epochs_run = 0
    for epoch in progress:
        model.train()
        losses = []
        for local_batch in length_bucketed_batches(train_lengths, config.batch_size, config.random_seed + epoch):
            loss = batch_loss([train_indices[i] for i in local_batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        epochs_run = epoch
        epoch_loss = float(np.mean(losses))
        if evaluate is None:
            progress.set_postfix(loss=f"{epoch_loss:.3f}")
            continue
        model.eval()
        score, held_out_loss = evaluate()
        progress.set_postfix(loss=f"{epoch_loss:.3f}", **{metric_name: f"{score:.3f}"})
        if best_score is None or (score, -held_out_loss) > (best_score, -best_loss):
            best_score, best_loss, best_epoch = score, held_out_loss, epoch
            best_state = _snapshot(model)
            epochs_without_improvement = 0
        else:
            epochs_without_improvement += 1
            if epochs_without_improvement >= config.early_stopping_patience:
                logger.info(f"Early stopping after epoch {epoch}; best was epoch {best_epoch}.")
                break
    if evaluate is not None:
        _restore(model, best_state)
    else:
        best_epoch = epochs_run
    model.eval()
    return LoopResult(
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        best_score=best_score,
        final_training_loss=epoch_loss,
    )


def _snapshot(model: torch.nn.Module) -> Dict[Text, torch.Tensor]:
    """Copies of the weights that train; frozen ones never change so need no copy."""
    return {
        name: parameter.detach().clone()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def _restore(model: torch.nn.Module, state: Dict[Text, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in state:
                parameter.copy_(state[name])
