"""PieceTokenizer: the word pieces `transformers` would give, from the `tokenizers` library alone."""

import json
from pathlib import Path
from typing import Any, List, Text

import pytest

from lepton_components.word_pieces import PieceTokenizer

TEXTS = [
    "where is my order LP-123456?",
    "My e-mail is Jose\u0301.Garci\u0301a@example.com and I want a REFUND",
    "",
    "hello " * 40 + "order 778899 please",
    "emoji \U0001F4E6 and 東京 and tabs\tnew\nlines",
]


def transformers_windows(tokenizer: Any, texts: List[Text], max_length: int, stride: int) -> List[tuple]:
    """What `transformers` gives for the same call (the reference PieceTokenizer must match)."""
    encoding = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    return [
        (index, ids, [tuple(span) for span in offsets], [bool(flag) for flag in special])
        for index, ids, offsets, special in zip(
            encoding["overflow_to_sample_mapping"],
            encoding["input_ids"],
            encoding["offset_mapping"],
            encoding["special_tokens_mask"],
        )
    ]


@pytest.fixture(params=["tiny", "minilm"])
def backbone(request: pytest.FixtureRequest, tiny_bert_path: Path) -> Path:
    if request.param == "tiny":
        return tiny_bert_path
    return request.getfixturevalue("packaged_minilm_path")


@pytest.mark.parametrize("max_length,stride", [(16, 4), (64, 16)])
def test_windows_match_transformers(backbone: Path, max_length: int, stride: int) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(backbone), local_files_only=True)
    pieces = PieceTokenizer.from_transformers(reference, max_length, stride)
    mine = [(p.text_index, p.input_ids, [tuple(s) for s in p.offsets], p.special) for p in pieces.windows(TEXTS)]
    assert mine == transformers_windows(reference, TEXTS, max_length, stride)
    assert pieces.first_window_ids(TEXTS) == reference(TEXTS, truncation=True, max_length=max_length)["input_ids"]
    assert pieces.pad_token_id == reference.pad_token_id


def test_the_saved_tokenizer_gives_the_same_pieces_and_limits_windows(tiny_bert_path: Path) -> None:
    from transformers import AutoTokenizer

    trained = PieceTokenizer.from_transformers(
        AutoTokenizer.from_pretrained(str(tiny_bert_path), local_files_only=True), 16, 4
    )
    saved = trained.to_json()
    assert json.loads(saved)["pad_token_id"] == trained.pad_token_id
    served = PieceTokenizer.from_json(saved, 16, 4)
    assert served.windows(TEXTS) == trained.windows(TEXTS)
    long_text = TEXTS[3]
    assert len(served.windows([long_text])) > 2
    assert [window.text_index for window in served.windows([long_text, "hi"], max_windows=2)] == [0, 0, 1]
