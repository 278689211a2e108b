"""BIO alignment: annotations -> word-piece tags -> entity spans, with real tokenizer offsets.

The module under test is pure Python; the tokenizers only supply realistic offset
mappings (the tiny word-piece vocabulary splits most words into characters, MiniLM's into
real sub-words, and both map accents, CJK and emoji in their own way).
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

import pytest

from lepton_components.extractors.bio_alignment import (
    IGNORE_INDEX,
    EntityLabel,
    PiecePrediction,
    TagScheme,
    align_annotations,
    decode_entities,
    merge_windows,
    tag_runs,
    unique_piece_spans,
)


def annotate(text: Text, *parts: Tuple[Text, Text], **extra: Any) -> Dict[Text, Any]:
    """``(value, entity)`` pairs -> one example with spans found in the text, in order."""
    entities, cursor = [], 0
    for value, entity in parts:
        start = text.index(value, cursor)
        entities.append({"start": start, "end": start + len(value), "value": value, "entity": entity})
        cursor = start + len(value)
    return {"text": text, "entities": entities}


# Gold examples for the round trip; every span must start and end on piece boundaries of
# both tokenizers.
EXAMPLES = [
    annotate("where is my order LP-123456.", ("LP-123456", "order_number")),
    annotate("order 123456, please", ("123456", "order_number")),
    annotate("Zoë wants a refund", ("Zoë", "person")),
    annotate("Jose\u0301 paid", ("Jose\u0301", "person")),
    annotate("我想查订单 LP-99", ("订单", "item"), ("LP-99", "order_number")),
    annotate("🎉 order 123456 👍", ("123456", "order_number")),
    annotate("👍🏽 love it ❤️", ("❤️", "emoji")),
    annotate(
        "cancel card 4242 and refund order 777 to zoë@example.com",
        ("card", "item"), ("4242", "card_number"), ("777", "order_number"), ("zoë@example.com", "email"),
    ),
    annotate("  spaced   order   55  ", ("55", "order_number")),
]


@pytest.fixture(scope="module")
def tokenizers(tiny_bert_path: Path, packaged_minilm_path: Path) -> Dict[Text, Any]:
    from transformers import AutoTokenizer

    return {
        "tiny": AutoTokenizer.from_pretrained(str(tiny_bert_path)),
        "minilm": AutoTokenizer.from_pretrained(str(packaged_minilm_path)),
    }


def piece_spans(tokenizer: Any, text: Text) -> List[Optional[Tuple[int, int]]]:
    encoding = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    return [
        None if special else tuple(span)
        for span, special in zip(encoding["offset_mapping"], encoding["special_tokens_mask"])
    ]


def scheme_for(examples: Sequence[Dict[Text, Any]]) -> TagScheme:
    return TagScheme.from_annotations(e for example in examples for e in example["entities"])


def perfect_predictions(spans: Sequence[Optional[Tuple[int, int]]], tags: Sequence[int]) -> List[PiecePrediction]:
    return [
        PiecePrediction(span[0], span[1], 0 if tag == IGNORE_INDEX else tag, 1.0)
        for span, tag in zip(spans, tags)
        if span is not None
    ]


def without_confidence(entities: List[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
    return [{k: v for k, v in entity.items() if k != "confidence_entity"} for entity in entities]


# ------------------------------------------------------------------ tag scheme


def test_tag_ids_and_names() -> None:
    scheme = TagScheme(
        [EntityLabel("order_number"), EntityLabel("city", "destination"), EntityLabel("city", "departure", "trip")]
    )
    assert scheme.tag_names == [
        "O",
        "B-city#departure@trip", "I-city#departure@trip",
        "B-city#destination", "I-city#destination",
        "B-order_number", "I-order_number",
    ]
    assert scheme.num_tags == 7
    assert scheme.begin_id(EntityLabel("order_number")) == 5
    assert scheme.inside_id(EntityLabel("order_number")) == 6


def test_scheme_json_round_trip_keeps_names_with_separators() -> None:
    scheme = TagScheme([EntityLabel("a#b", "c@d"), EntityLabel("plain", None, "g")])
    restored = TagScheme.from_json(scheme.to_json())
    assert restored.labels == scheme.labels
    assert restored.tag_names == scheme.tag_names


# ------------------------------------------------------------------ alignment, hand-made offsets


def test_sub_word_pieces_get_b_then_i_and_specials_are_ignored() -> None:
    text = "order LP-123456."
    # [CLS] order lp - 123 ##45 ##6 . [SEP]
    spans = [None, (0, 5), (6, 8), (8, 9), (9, 12), (12, 14), (14, 15), (15, 16), None]
    example = annotate(text, ("LP-123456", "order_number"))
    scheme = scheme_for([example])
    alignment = align_annotations(text, spans, example["entities"], scheme)
    assert alignment.tags == [IGNORE_INDEX, 0, 1, 2, 2, 2, 2, 0, IGNORE_INDEX]
    assert alignment.misaligned == []


def test_annotation_ending_inside_a_piece_is_reported_and_ignored() -> None:
    text = "order 123456"
    spans = [None, (0, 5), (6, 9), (9, 11), (11, 12), None]  # order 123 ##45 ##6
    annotation = {"start": 6, "end": 10, "value": "1234", "entity": "order_number"}
    alignment = align_annotations(text, spans, [annotation], scheme_for([{"entities": [annotation]}]))
    assert alignment.tags == [IGNORE_INDEX, 0, IGNORE_INDEX, IGNORE_INDEX, 0, IGNORE_INDEX]
    (problem,) = alignment.misaligned
    assert problem.annotation is annotation
    assert "ends inside the word piece '45'" in problem.reason


@pytest.mark.parametrize(
    "annotation,reason",
    [
        ({"start": 3, "end": 30, "entity": "x"}, "outside the"),
        ({"start": 5, "end": 6, "entity": "x"}, "covers no word piece"),
        ({"start": 1, "end": 5, "entity": "x"}, "starts inside the word piece 'order'"),
    ],
)
def test_impossible_annotations_are_reported(annotation: Dict[Text, Any], reason: Text) -> None:
    text = "order 123456"
    spans = [None, (0, 5), (6, 12), None]
    alignment = align_annotations(text, spans, [annotation], scheme_for([{"entities": [annotation]}]))
    (problem,) = alignment.misaligned
    assert reason in problem.reason


def test_overlapping_annotation_is_reported_and_first_one_kept() -> None:
    text = "refund order 123"
    spans = [(0, 6), (7, 12), (13, 16)]
    first = {"start": 7, "end": 16, "entity": "order"}
    second = {"start": 13, "end": 16, "entity": "number"}
    scheme = scheme_for([{"entities": [first, second]}])
    alignment = align_annotations(text, spans, [second, first], scheme)
    order = EntityLabel("order")
    assert alignment.tags == [0, scheme.begin_id(order), scheme.inside_id(order)]
    (problem,) = alignment.misaligned
    assert problem.annotation is second and "overlaps" in problem.reason


def test_unknown_label_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not in the tag scheme"):
        align_annotations("a b", [(0, 1), (2, 3)], [{"start": 0, "end": 1, "entity": "x"}], TagScheme([]))


# ------------------------------------------------------------------ decoding


@pytest.mark.parametrize(
    "tags,runs",
    [
        ([0, 1, 2, 2, 0], [(0, 1, 3)]),
        ([1, 1, 0], [(0, 0, 0), (0, 1, 1)]),  # B B: two entities
        ([0, 2, 2, 0], [(0, 1, 2)]),  # I without B still yields the entity
        ([1, 4, 4], [(0, 0, 0), (1, 1, 2)]),  # I of another label starts a new one
        ([1, IGNORE_INDEX, 2], [(0, 0, 0), (0, 2, 2)]),
        ([], []),
    ],
)
def test_tag_runs(tags: List[int], runs: List[Tuple[int, int, int]]) -> None:
    assert tag_runs(tags) == runs


def test_decode_strips_whitespace_and_uses_lowest_probability() -> None:
    text = "my order  LP-12 now"
    scheme = TagScheme([EntityLabel("order_number", "new", "g1")])
    pieces = [
        PiecePrediction(0, 2, 0, 0.9),
        PiecePrediction(3, 8, 0, 0.8),
        PiecePrediction(8, 10, 1, 0.7),  # a piece that (oddly) spans whitespace
        PiecePrediction(10, 12, 2, 0.6),
        PiecePrediction(12, 13, 2, 0.95),
        PiecePrediction(13, 15, 2, 0.99),
        PiecePrediction(16, 19, 0, 0.9),
    ]
    (entity,) = decode_entities(text, pieces, scheme)
    assert entity == {
        "entity": "order_number",
        "start": 10,
        "end": 15,
        "value": "LP-12",
        "confidence_entity": pytest.approx(0.6),
        "role": "new",
        "group": "g1",
    }


def test_decode_takes_in_combining_marks_the_tokenizer_dropped() -> None:
    text = "Jose\u0301 paid"
    pieces = [PiecePrediction(0, 4, 1, 1.0), PiecePrediction(6, 10, 0, 1.0)]
    (entity,) = decode_entities(text, pieces, TagScheme([EntityLabel("person")]))
    assert (entity["start"], entity["end"], entity["value"]) == (0, 5, "Jose\u0301")


# ------------------------------------------------------------------ round trips with real tokenizers


@pytest.mark.parametrize("tokenizer_name", ["tiny", "minilm"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[e["text"] for e in EXAMPLES])
def test_round_trip_reproduces_gold_spans_exactly(tokenizers, tokenizer_name: Text, example: Dict[Text, Any]) -> None:
    tokenizer = tokenizers[tokenizer_name]
    text = example["text"]
    spans = piece_spans(tokenizer, text)
    scheme = scheme_for([example])
    alignment = align_annotations(text, spans, example["entities"], scheme)
    assert alignment.misaligned == []
    decoded = decode_entities(text, perfect_predictions(spans, alignment.tags), scheme)
    assert without_confidence(decoded) == example["entities"]
    assert all(entity["value"] == text[entity["start"] : entity["end"]] for entity in decoded)


def test_fast_tokenizer_offsets_are_python_string_indices(tokenizers) -> None:
    text = "👍 Zoë 订单 123"
    for tokenizer in tokenizers.values():
        pieces = [text[start:end] for start, end in (span for span in piece_spans(tokenizer, text) if span)]
        assert "👍" in pieces and "订" in pieces
        assert "".join(pieces) == text.replace(" ", "")


def test_emoji_glued_to_an_entity_is_reported_not_mislearned(tokenizers) -> None:
    # BERT's pre-tokenizer keeps "123456🎉" as one word that it cannot split: one [UNK].
    example = annotate("order 123456🎉 thanks", ("123456", "order_number"))
    for tokenizer in tokenizers.values():
        spans = piece_spans(tokenizer, example["text"])
        alignment = align_annotations(example["text"], spans, example["entities"], scheme_for([example]))
        (problem,) = alignment.misaligned
        assert "ends inside the word piece '123456🎉'" in problem.reason
        unk = spans.index((6, 13))
        assert alignment.tags[unk] == IGNORE_INDEX


def test_minilm_splits_digits_into_sub_words(tokenizers) -> None:
    """Guards the premise of the sub-word cases: the entity really spans several pieces."""
    text = "order 123456"
    pieces = [text[s:e] for s, e in (span for span in piece_spans(tokenizers["minilm"], text) if span)]
    assert pieces == ["order", "123", "45", "6"]


# ------------------------------------------------------------------ windows


def test_overlapping_windows_merge_back_to_the_gold_spans(tokenizers) -> None:
    tokenizer = tokenizers["tiny"]
    example = annotate(
        "hello " * 6 + "where is order LP-123456 and refund 42 please",
        ("LP-123456", "order_number"), ("42", "amount"),
    )
    text = example["text"]
    encoding = tokenizer(
        text, truncation=True, max_length=10, stride=3,
        return_overflowing_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True,
    )
    windows = [
        [None if special else tuple(span) for span, special in zip(offsets, specials)]
        for offsets, specials in zip(encoding["offset_mapping"], encoding["special_tokens_mask"])
    ]
    assert len(windows) > 3
    pieces = unique_piece_spans(windows)
    scheme = scheme_for([example])
    alignment = align_annotations(text, pieces, example["entities"], scheme)
    tag_of = dict(zip(pieces, alignment.tags))
    predictions = [
        [PiecePrediction(span[0], span[1], tag_of[span], 1.0) for span in window if span is not None]
        for window in windows
    ]
    merged = merge_windows(predictions)
    assert [(p.start, p.end) for p in merged] == pieces
    assert without_confidence(decode_entities(text, merged, scheme)) == example["entities"]


def test_merge_prefers_the_window_with_more_context() -> None:
    first = [PiecePrediction(i, i + 1, 0, 0.5) for i in range(6)]
    # Piece 4 sits one from the end of the first window but in the middle of the second.
    second = [PiecePrediction(i, i + 1, 1 if i == 4 else 0, 0.9) for i in range(2, 8)]
    merged = merge_windows([first, second])
    assert [p.start for p in merged] == list(range(8))
    assert merged[4].tag_id == 1
    # Piece 0 exists only in the first window, where it starts the text: kept.
    assert merged[0].probability == 0.5
