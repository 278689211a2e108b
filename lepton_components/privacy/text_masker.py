"""Replaces personal data inside one string, and maps old character offsets to new ones.

Three sources of spans, in order of precedence where they overlap:

1. spans given by the caller (the NER's `mask`/`hash` entities in the user's own
   message), and this policy's own tokens already in the text (kept), unless a detector
   finds personal data in one (`[CARD:4111111111111111]` is a card, whatever its shape);
2. known values: what `mask`/`hash` slots and entities hold in this conversation, found
   literally anywhere (so a bot reply that echoes "ada@example.com" or a name the NER
   found is masked too, with the slot's action);
3. the detectors (`pii_detectors`), with the action of their kind; values on the
   allow-list are kept.

A token of the masker's own is never masked again. Linear in the text: overlaps are
resolved by `SpanClaims`, offsets mapped by binary search. Pure code, no Rasa.
"""

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, List, Mapping, Sequence, Text, Tuple

from lepton_components.privacy.pii_detectors import PiiDetector
from lepton_components.privacy.placeholders import Placeholders, label_of
from lepton_components.privacy.privacy_policy import KEEP
from lepton_components.privacy.span_claims import SpanClaims

# Known values shorter than this are not searched for in other texts ("no", "1"):
# they would mask ordinary words. The slot or entity value itself is still replaced.
MIN_KNOWN_VALUE_LENGTH = 3


@dataclass(frozen=True)
class Span:
    """`text[start:end]` is to be replaced according to `action` (or kept)."""

    start: int
    end: int
    action: Text
    label: Text
    normalized: Text


@dataclass(frozen=True)
class KnownValue:
    """A value a configured slot or entity holds, to be found in any text."""

    value: Text
    action: Text
    label: Text
    normalized: Text


@dataclass(frozen=True)
class MaskedText:
    """The masked string and the (old_start, old_end, new_start, new_end) of each change."""

    text: Text
    replacements: Tuple[Tuple[int, int, int, int], ...] = field(default_factory=tuple)

    @cached_property
    def _index(self) -> Tuple[List[int], List[int]]:
        """The replacements' old ends, and the shift after the first 0, 1, ... of them."""
        ends, shifts = [], [0]
        for old_start, old_end, new_start, new_end in self.replacements:
            ends.append(old_end)
            shifts.append(shifts[-1] + (new_end - new_start) - (old_end - old_start))
        return ends, shifts

    def position(self, old: int, is_end: bool = False) -> int:
        """Where offset `old` of the original lies in the masked text (entity start/end).

        An offset inside a replaced span moves to the token's start (or end, for `is_end`).
        """
        ends, shifts = self._index
        before = bisect_right(ends, old)  # replacements that end at or before `old`
        if before < len(self.replacements):
            old_start, _, new_start, new_end = self.replacements[before]
            if old > old_start or (old == old_start and not is_end):
                return new_end if is_end else new_start
        return old + shifts[before]


def _literal_pattern(value: Text) -> "re.Pattern[Text]":
    # Word boundaries only where the value itself starts/ends with a word character.
    before = r"(?<!\w)" if re.match(r"\w", value) else ""
    after = r"(?!\w)" if re.search(r"\w$", value) else ""
    return re.compile(before + re.escape(value) + after, re.IGNORECASE)


class TextMasker:
    """Applies spans from the three sources to a string (see module docstring)."""

    def __init__(
        self, detector: PiiDetector, kinds: Mapping[Text, Text], placeholders: Placeholders, allow: Iterable[Text] = ()
    ) -> None:
        self.detector = detector
        self.kinds = dict(kinds)
        self.placeholders = placeholders
        self.allow = {value.strip().lower() for value in allow}

    def spans(self, text: Text, given: Sequence[Span] = (), known: Sequence[KnownValue] = ()) -> List[Span]:
        """The non-overlapping spans to apply, `keep` ones included, in text order."""
        detected = self.detector.find(text)
        personal = SpanClaims(len(text))
        for match in detected:
            personal.claim(match.start, match.end)
        # This policy's tokens are kept, unless a detector found something inside one.
        ranked: List[Tuple[int, Span]] = [
            (0, Span(start, end, KEEP, "", ""))
            for start, end in self.placeholders.own_tokens(text)
            if personal.is_free(start, end)
        ]
        ranked += [(0, span) for span in given]
        for value in known:
            if len(value.value) >= MIN_KNOWN_VALUE_LENGTH:
                for match in _literal_pattern(value.value).finditer(text):
                    ranked.append((1, Span(match.start(), match.end(), value.action, value.label, value.normalized)))
        for match in detected:
            allowed = (
                match.normalized.lower() in self.allow or text[match.start : match.end].strip().lower() in self.allow
            )
            action = KEEP if allowed else self.kinds.get(match.kind, KEEP)
            ranked.append((2, Span(match.start, match.end, action, label_of(match.kind), match.normalized)))
        accepted: List[Span] = []
        claims = SpanClaims(len(text))
        for _, span in sorted(ranked, key=lambda item: (item[0], item[1].start - item[1].end, item[1].start)):
            if claims.claim_if_free(span.start, span.end):
                accepted.append(span)
        return sorted(accepted, key=lambda span: span.start)

    def mask(self, text: Text, given: Sequence[Span] = (), known: Sequence[KnownValue] = ()) -> MaskedText:
        parts: List[Text] = []
        replacements = []
        cursor = new_length = 0
        for span in self.spans(text, given, known):
            if span.action == KEEP:
                continue
            parts.append(text[cursor : span.start])
            new_length += span.start - cursor
            token = self.placeholders.token(span.action, span.label, span.normalized)
            replacements.append((span.start, span.end, new_length, new_length + len(token)))
            parts.append(token)
            new_length += len(token)
            cursor = span.end
        parts.append(text[cursor:])
        return MaskedText("".join(parts), tuple(replacements))
