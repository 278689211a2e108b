"""The backbone's word-piece tokenizer, run by the `tokenizers` library alone.

`transformers` imports torch as soon as its tokenizer classes load, about half a gigabyte
of a server's memory and seconds of its start-up. A fast (Rust) tokenizer is one JSON file
that `tokenizers` runs on its own, so training saves the backbone's into the model
archive and a server serving the ONNX graph reads it back without `transformers` or torch.
The same object splits texts at training time, so the pieces a model was trained on and
the pieces it serves are made by one piece of code.
"""

import json
from typing import Any, List, NamedTuple, Optional, Sequence, Text, Tuple

from tokenizers import Encoding, Tokenizer

# The file in the model archive: the backbone's tokenizer.json as training read it, and its padding id.
TOKENIZER_FILE = "word_pieces.json"


class Pieces(NamedTuple):
    """One window of a text: its word pieces, their character spans, which are special."""

    text_index: int
    input_ids: List[int]
    offsets: List[Tuple[int, int]]
    special: List[bool]


class PieceTokenizer:
    """Word pieces of texts, at most ``max_length`` per window, windows overlapping by ``stride``.

    Truncation is set once, here, and never changed: a tokenizer shared by concurrent
    calls must not have its settings switched under another call.
    """

    def __init__(self, tokenizer: Tokenizer, pad_token_id: int, max_length: int, stride: int) -> None:
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length, stride=stride)
        self._tokenizer = tokenizer
        self.pad_token_id = pad_token_id

    @classmethod
    def from_transformers(cls, tokenizer: Any, max_length: int, stride: int) -> "PieceTokenizer":
        """A private copy of a `transformers` fast tokenizer's Rust tokenizer (training)."""
        return cls(Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()), tokenizer.pad_token_id, max_length, stride)

    @classmethod
    def from_json(cls, text: Text, max_length: int, stride: int) -> "PieceTokenizer":
        """The tokenizer `to_json` wrote (serving)."""
        saved = json.loads(text)
        return cls(Tokenizer.from_str(json.dumps(saved["tokenizer"])), int(saved["pad_token_id"]), max_length, stride)

    def to_json(self) -> Text:
        return json.dumps({"pad_token_id": self.pad_token_id, "tokenizer": json.loads(self._tokenizer.to_str())})

    def _encode(self, texts: Sequence[Text]) -> List[Encoding]:
        return self._tokenizer.encode_batch(list(texts), add_special_tokens=True)

    def windows(self, texts: Sequence[Text], max_windows: Optional[int] = None) -> List[Pieces]:
        """Every text's windows in text order (at most ``max_windows`` each), the first being
        the text's truncated encoding, as `transformers` returns overflowing tokens."""
        found: List[Pieces] = []
        for index, encoding in enumerate(self._encode(texts)):
            for window in ([encoding] + encoding.overflowing)[:max_windows]:
                found.append(
                    Pieces(index, window.ids, window.offsets, [bool(flag) for flag in window.special_tokens_mask])
                )
        return found

    def first_window_ids(self, texts: Sequence[Text]) -> List[List[int]]:
        """Each text's truncated word-piece ids (its first window)."""
        return [encoding.ids for encoding in self._encode(texts)]
