"""Messages as overlapping windows of word pieces, their BIO tags, and entities from tag scores.

Shared by BertEntityExtractor and JointNluComponent, which tag the same windows with
different models. Torch-free: the backbone's fast tokenizer splits the text (`split_windows`),
`bio_alignment` aligns the annotations once per message over all its pieces
(`window_tags`), and `decode_entities` turns per-window tag probabilities back into
Rasa entity dicts with Viterbi decoding (`tag_decoding`) over the merged windows.
"""

from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Text, Tuple

import numpy as np
import rasa.shared.utils.io
from rasa.shared.nlu.constants import ENTITIES
from rasa.shared.nlu.training_data.message import Message

from lepton_components.extractors import bio_alignment, tag_decoding
from lepton_components.extractors.bio_alignment import Span, TagScheme
from lepton_components.word_pieces import PieceTokenizer

# Misaligned annotations named in the training warning; the rest are only counted.
MISALIGNED_EXAMPLES_SHOWN = 5


class Window(NamedTuple):
    """At most ``max_length`` word pieces of one message, with their character spans."""

    message: int
    input_ids: List[int]
    spans: List[Optional[Span]]  # None for special tokens


def split_windows(tokenizer: PieceTokenizer, texts: List[Text], max_windows: Optional[int] = None) -> List[Window]:
    """Overlapping windows of the tokenizer's `max_length` pieces, overlapping by its stride,
    in text order.

    The first window of a message is exactly its truncated encoding. With ``max_windows``,
    only the first that many windows of each message.
    """
    windows = []
    for pieces in tokenizer.windows(texts, max_windows):
        spans = [
            None if is_special or start >= end else (start, end)
            for (start, end), is_special in zip(pieces.offsets, pieces.special)
        ]
        windows.append(Window(pieces.text_index, pieces.input_ids, spans))
    return windows


def window_tags(
    component: Text,
    texts: List[Text],
    annotations: List[List[Dict[Text, Any]]],
    windows: List[Window],
    scheme: TagScheme,
) -> List[List[int]]:
    """Tag ids for every window, aligned once per message over all its pieces.

    Annotations that do not fall on word-piece boundaries teach nothing and are named in
    one training warning.
    """
    spans_by_message: Dict[int, List[List[Optional[Span]]]] = {}
    for window in windows:
        spans_by_message.setdefault(window.message, []).append(window.spans)
    tag_by_span: List[Dict[Span, int]] = []
    misaligned: List[Tuple[Text, bio_alignment.Misalignment]] = []
    for message, text in enumerate(texts):
        pieces = bio_alignment.unique_piece_spans(spans_by_message[message])
        alignment = bio_alignment.align_annotations(text, pieces, annotations[message], scheme)
        tag_by_span.append(dict(zip(pieces, alignment.tags)))
        misaligned.extend((text, problem) for problem in alignment.misaligned)
    if misaligned:
        _warn_misaligned(component, misaligned)
    return [
        [bio_alignment.IGNORE_INDEX if span is None else tag_by_span[window.message][span] for span in window.spans]
        for window in windows
    ]


def _warn_misaligned(component: Text, misaligned: List[Tuple[Text, bio_alignment.Misalignment]]) -> None:
    lines = []
    for text, (annotation, reason) in misaligned[:MISALIGNED_EXAMPLES_SHOWN]:
        value = annotation.get("value", text[annotation["start"] : annotation["end"]])
        lines.append(f"  - '{value}' ({annotation['entity']}) in '{text}': {reason}")
    if len(misaligned) > MISALIGNED_EXAMPLES_SHOWN:
        lines.append(f"  ... and {len(misaligned) - MISALIGNED_EXAMPLES_SHOWN} more")
    rasa.shared.utils.io.raise_warning(
        f"{component} left {len(misaligned)} entity annotation(s) out of "
        f"training because they do not start and end on word-piece boundaries of the "
        f"backbone's tokenizer (or overlap another annotation):\n" + "\n".join(lines) + "\n"
        "Move the annotation to cover whole word pieces, e.g. annotate "
        "`[LP-123456](order_number)` rather than part of it."
    )


def log_transitions_of(counts: Optional[Sequence[Sequence[int]]], scheme: TagScheme) -> np.ndarray:
    """Viterbi transition scores from training tag-bigram counts (None: uniform over valid steps)."""
    return tag_decoding.transition_log_probabilities(
        counts or np.zeros((scheme.num_tags + 1, scheme.num_tags)), scheme.num_tags
    )


def decode_entities(
    texts: List[Text],
    windows: List[Window],
    probabilities: Sequence[np.ndarray],
    log_transitions: np.ndarray,
    scheme: TagScheme,
    confidence_threshold: float,
) -> List[List[Dict[Text, Any]]]:
    """Entities per text from each window's ``(pieces, num_tags)`` tag probabilities.

    Special tokens are dropped, each window is Viterbi-decoded, overlapping windows are
    merged piece by piece, and entities below ``confidence_threshold`` are left out.
    """
    pieces_by_message: Dict[int, List[List[bio_alignment.PiecePrediction]]] = {}
    for window, window_probabilities in zip(windows, probabilities):
        real = [position for position, span in enumerate(window.spans) if span is not None]
        piece_probabilities = window_probabilities[real]
        tag_ids = tag_decoding.viterbi(piece_probabilities, log_transitions)
        pieces_by_message.setdefault(window.message, []).append(
            [
                bio_alignment.PiecePrediction(
                    window.spans[position][0], window.spans[position][1], tag_id, float(row[tag_id])
                )
                for position, tag_id, row in zip(real, tag_ids, piece_probabilities)
            ]
        )
    results = []
    for index, text in enumerate(texts):
        pieces = bio_alignment.merge_windows(pieces_by_message[index])
        results.append(
            [
                entity
                for entity in bio_alignment.decode_entities(text, pieces, scheme)
                if entity["confidence_entity"] >= confidence_threshold
            ]
        )
    return results


def append_entities(message: Message, entities: List[Dict[Text, Any]], overlapping_entities: Text) -> None:
    """Adds ``entities`` (extractor name already set) after those earlier components found.

    ``overlapping_entities: skip`` drops a new entity whose characters overlap an existing
    one: an earlier extractor (e.g. a regex for order numbers) wins over a learned guess.
    """
    existing = message.get(ENTITIES, [])
    if overlapping_entities == "skip":
        entities = bio_alignment.drop_overlapping(entities, existing)
    message.set(ENTITIES, existing + entities, add_to_output=True)
