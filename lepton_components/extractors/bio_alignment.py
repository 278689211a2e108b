"""Converts between character-level entity annotations and per-word-piece BIO tags.

Pure Python over plain types (no torch, no Rasa), so every rule here is testable with
nothing but a tokenizer's offset mapping. A fast tokenizer reports, for each word piece,
the ``(start, end)`` character span it came from as Python ``str`` indices (an emoji is one
index, as in ``text[start:end]``); special tokens and padding report ``(0, 0)``.

Tag scheme. Tag id 0 is ``O``; entity label ``k`` (in the sorted label list) owns
``B = 1 + 2k`` and ``I = 2 + 2k``; ``IGNORE_INDEX`` (-100, what torch's cross entropy skips)
marks pieces that must teach nothing. A label is the triple (entity, role, group), so
roles and groups are learned jointly with the entity type. Its display name is
``entity``, ``entity#role``, ``entity@group`` or ``entity#role@group`` ("B-city#destination");
names are only for people reading metadata: ids are arithmetic and labels are stored as
structured JSON, so ``#`` or ``@`` inside a name cannot confuse anything.

Sub-words. Every piece of an entity is tagged (first ``B``, the rest ``I``), continuation
pieces included, rather than only the first piece of each word: prediction reads a tag
from every piece, so training supervises every piece, and an annotation may then start or
end inside a pre-tokenizer word ("LP-123456" splits at "-") as long as it falls on a
word-piece boundary.

Confidence. An entity's confidence is the lowest tag probability among its pieces, as in
Rasa's own extractors: an entity is only as certain as its weakest piece, and a
``confidence_threshold`` then means that every piece cleared it.
"""

import math
import unicodedata
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Text, Tuple

IGNORE_INDEX = -100
OUTSIDE = 0
OUTSIDE_TAG = "O"

# A word piece's character span in the original text; None for special tokens.
Span = Tuple[int, int]


class EntityLabel(NamedTuple):
    """What a B/I tag pair stands for: an entity type with its optional role and group."""

    entity: str
    role: Optional[str] = None
    group: Optional[str] = None

    @property
    def name(self) -> str:
        """Display name: ``entity#role@group`` with absent parts left out."""
        role = f"#{self.role}" if self.role is not None else ""
        group = f"@{self.group}" if self.group is not None else ""
        return f"{self.entity}{role}{group}"

    @classmethod
    def of(cls, annotation: Mapping[str, Any]) -> "EntityLabel":
        """The label of a Rasa-style annotation dict (``entity`` plus optional role/group)."""
        return cls(annotation["entity"], annotation.get("role"), annotation.get("group"))

    def to_json(self) -> Dict[str, Optional[str]]:
        return {"entity": self.entity, "role": self.role, "group": self.group}


def _sort_key(label: EntityLabel) -> Tuple[str, str, str]:
    return (label.entity, label.role or "", label.group or "")


class TagScheme:
    """The BIO tag ids of a fixed, sorted list of entity labels."""

    def __init__(self, labels: Iterable[EntityLabel]) -> None:
        self.labels: List[EntityLabel] = sorted(set(labels), key=_sort_key)
        self._index = {label: index for index, label in enumerate(self.labels)}

    @classmethod
    def from_annotations(cls, annotations: Iterable[Mapping[str, Any]]) -> "TagScheme":
        return cls(EntityLabel.of(annotation) for annotation in annotations)

    @classmethod
    def from_json(cls, labels: Sequence[Mapping[str, Optional[str]]]) -> "TagScheme":
        return cls(EntityLabel(item["entity"], item.get("role"), item.get("group")) for item in labels)

    def to_json(self) -> List[Dict[str, Optional[str]]]:
        return [label.to_json() for label in self.labels]

    @property
    def num_tags(self) -> int:
        return 1 + 2 * len(self.labels)

    @property
    def tag_names(self) -> List[str]:
        """``["O", "B-<label>", "I-<label>", ...]`` in tag id order."""
        names = [OUTSIDE_TAG]
        for label in self.labels:
            names.extend([f"B-{label.name}", f"I-{label.name}"])
        return names

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def begin_id(self, label: EntityLabel) -> int:
        return 1 + 2 * self._index[label]

    def inside_id(self, label: EntityLabel) -> int:
        return 2 + 2 * self._index[label]


def is_begin(tag_id: int) -> bool:
    return tag_id > 0 and tag_id % 2 == 1


def label_index_of(tag_id: int) -> int:
    """The label index of a B or I tag id."""
    return (tag_id - 1) // 2


# ------------------------------------------------------------------ annotations -> tags


class Misalignment(NamedTuple):
    """An annotation that could not be turned into tags, and why (for a warning)."""

    annotation: Mapping[str, Any]
    reason: str


class Alignment(NamedTuple):
    tags: List[int]
    misaligned: List[Misalignment]


def _is_special(span: Optional[Span]) -> bool:
    return span is None or span[0] >= span[1]


def _covered_characters(text: str, piece_spans: Sequence[Optional[Span]]) -> List[bool]:
    covered = [False] * len(text)
    for span in piece_spans:
        if not _is_special(span):
            for index in range(span[0], min(span[1], len(text))):
                covered[index] = True
    return covered


def _trim_to_covered(start: int, end: int, covered: Sequence[bool]) -> Tuple[int, int]:
    """Drops characters no piece covers (whitespace, accents and controls the
    tokenizer removed) from both ends, so "Jose\\u0301" matches the piece "jose"."""
    while start < end and not covered[start]:
        start += 1
    while end > start and not covered[end - 1]:
        end -= 1
    return start, end


def align_annotations(
    text: str,
    piece_spans: Sequence[Optional[Span]],
    annotations: Sequence[Mapping[str, Any]],
    scheme: TagScheme,
) -> Alignment:
    """BIO tag ids, one per word piece, for the annotated entities of ``text``.

    ``piece_spans`` is the tokenizer's offset mapping; ``None`` or an empty span marks a
    special token or padding, which gets ``IGNORE_INDEX``. An annotation must start where a
    piece starts and end where a piece ends (ignoring uncovered characters at its edges).
    One that does not, or that overlaps an earlier annotation, is returned in
    ``misaligned`` and its pieces get ``IGNORE_INDEX``: the model is taught neither a wrong
    boundary nor that the text is no entity. Every label must be in ``scheme``.
    """
    tags = [IGNORE_INDEX if _is_special(span) else OUTSIDE for span in piece_spans]
    covered = _covered_characters(text, piece_spans)
    claimed = [False] * len(piece_spans)
    misaligned: List[Misalignment] = []
    for annotation in sorted(annotations, key=lambda a: (a["start"], -a["end"])):
        label = EntityLabel.of(annotation)
        if label not in scheme:
            raise ValueError(f"Entity label '{label.name}' is not in the tag scheme.")
        start, end = annotation["start"], annotation["end"]
        if not 0 <= start < end <= len(text):
            misaligned.append(
                Misalignment(annotation, f"its span {start}-{end} lies outside the {len(text)}-character text")
            )
            continue
        start, end = _trim_to_covered(start, end, covered)
        pieces = [
            index
            for index, span in enumerate(piece_spans)
            if not _is_special(span) and span[0] < end and span[1] > start
        ]
        if not pieces:
            misaligned.append(Misalignment(annotation, "it covers no word piece (only whitespace?)"))
            continue
        first, last = piece_spans[pieces[0]], piece_spans[pieces[-1]]
        if first[0] != start or last[1] != end:
            inside = first if first[0] != start else last
            misaligned.append(
                Misalignment(
                    annotation,
                    f"it {'starts' if first[0] != start else 'ends'} inside the word piece "
                    f"'{text[inside[0]:inside[1]]}' (characters {inside[0]}-{inside[1]}); "
                    "annotate whole word pieces",
                )
            )
            for index in pieces:
                if not claimed[index]:
                    tags[index] = IGNORE_INDEX
            continue
        if any(claimed[index] for index in pieces):
            misaligned.append(Misalignment(annotation, "it overlaps another annotation"))
            continue
        for position, index in enumerate(pieces):
            tags[index] = scheme.begin_id(label) if position == 0 else scheme.inside_id(label)
            claimed[index] = True
    return Alignment(tags, misaligned)


# ------------------------------------------------------------------ tags -> entities


class PiecePrediction(NamedTuple):
    """The predicted tag of one word piece and its probability."""

    start: int
    end: int
    tag_id: int
    probability: float


def tag_runs(tag_ids: Sequence[int]) -> List[Tuple[int, int, int]]:
    """``(label_index, first, last)`` for each entity in a tag sequence (last inclusive).

    ``B`` always starts an entity; ``I`` continues the entity before it when the label is
    the same and otherwise starts one, so a model that predicts ``I`` without ``B`` still
    yields the entity. ``O`` and ``IGNORE_INDEX`` end an entity.
    """
    runs: List[List[int]] = []
    previous = OUTSIDE
    for position, tag_id in enumerate(tag_ids):
        if tag_id <= OUTSIDE:
            previous = OUTSIDE
            continue
        label = label_index_of(tag_id)
        if previous > OUTSIDE and not is_begin(tag_id) and label_index_of(previous) == label:
            runs[-1][2] = position
        else:
            runs.append([label, position, position])
        previous = tag_id
    return [(label, first, last) for label, first, last in runs]


def _extend_over_marks(text: str, end: int, covered: Sequence[bool]) -> int:
    """Takes in combining marks the tokenizer dropped after a piece ("e\\u0301", the
    variation selector of "❤️"): they belong to the character before them."""
    while end < len(text) and not covered[end] and unicodedata.category(text[end]).startswith("M"):
        end += 1
    return end


def decode_entities(
    text: str, pieces: Sequence[PiecePrediction], scheme: TagScheme
) -> List[Dict[str, Any]]:
    """Entity dicts with exact character ``start``/``end`` and ``value == text[start:end]``.

    ``pieces`` are the predictions of the real (non-special) pieces in text order. Adjacent
    tags of one label merge (see ``tag_runs``); surrounding whitespace is stripped; the
    confidence is the lowest piece probability. Roles and groups appear only when the
    label has them.
    """
    covered = _covered_characters(text, [(piece.start, piece.end) for piece in pieces])
    entities: List[Dict[str, Any]] = []
    for label_index, first, last in tag_runs([piece.tag_id for piece in pieces]):
        start = pieces[first].start
        end = _extend_over_marks(text, pieces[last].end, covered)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            continue
        label = scheme.labels[label_index]
        entity: Dict[str, Any] = {
            "entity": label.entity,
            "start": start,
            "end": end,
            "value": text[start:end],
            "confidence_entity": float(min(piece.probability for piece in pieces[first : last + 1])),
        }
        if label.role is not None:
            entity["role"] = label.role
        if label.group is not None:
            entity["group"] = label.group
        entities.append(entity)
    return entities


# ------------------------------------------------------------------ windows


def merge_windows(windows: Sequence[Sequence[PiecePrediction]]) -> List[PiecePrediction]:
    """One prediction per piece from the overlapping windows of one long text.

    ``windows`` are in text order (as the tokenizer's overflow returns them), each holding
    its real pieces in order. A piece seen in several windows keeps the prediction from
    the window where it has the most context on its poorer side; the text's own start and
    end count as full context, so edge pieces of the first and last window are not
    penalised. Pieces are identified by their character span.
    """
    best: Dict[Span, Tuple[float, PiecePrediction]] = {}
    last_window = len(windows) - 1
    for window_index, window in enumerate(windows):
        for position, piece in enumerate(window):
            left = position if window_index > 0 else math.inf
            right = len(window) - 1 - position if window_index < last_window else math.inf
            context = min(left, right)
            key = (piece.start, piece.end)
            if key not in best or context > best[key][0]:
                best[key] = (context, piece)
    return [best[key][1] for key in sorted(best)]


def unique_piece_spans(windows: Sequence[Sequence[Optional[Span]]]) -> List[Span]:
    """The real pieces of a text, in order, from its (possibly overlapping) windows."""
    return sorted({span for window in windows for span in window if not _is_special(span)})


def drop_overlapping(
    candidates: Sequence[Dict[Text, Any]], existing: Sequence[Dict[Text, Any]]
) -> List[Dict[Text, Any]]:
    """Candidates whose character span overlaps none of the ``existing`` entities.

    Used so that an extractor earlier in the pipeline (e.g. a regex for order numbers,
    exact by construction) wins over a learned guess for the same characters.
    """
    return [
        candidate
        for candidate in candidates
        if not any(candidate["start"] < other["end"] and other["start"] < candidate["end"] for other in existing)
    ]
