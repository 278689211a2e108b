"""Every text scan of the privacy code is linear in the text, for hostile texts too.

Each case times one scan at 50,000 and 100,000 characters of an adversarial pattern
(long runs of digits, spaces, brackets, '@', dots, and dense personal data, which is
where a quadratic overlap check or a backtracking pattern shows) and requires that
doubling the text less than triples the time. Relative to the same scan's own small
input, so no wall-clock limit depends on the machine (`seconds_per_call`).

Each detector sees every text; the maskers around them see the texts that exercise their
own work (tokens, overlaps, entity offsets, echoed values, URL decoding). One phone
region each: phone detection is the slow part, and once per region is the same scan.
"""

import gc
import logging
import time
from typing import Callable, Dict, Text, Tuple

import pytest

from lepton_components.privacy.event_masker import EventMasker
from lepton_components.privacy.log_filter import PiiLogFilter
from lepton_components.privacy.pii_detectors import CARD, EMAIL, IBAN, PHONE, PiiDetector
from lepton_components.privacy.privacy_policy import PrivacyPolicy

SMALL = 50_000
# Shortest sample: well above the timer's resolution and the scheduler's time slice.
SAMPLE_SECONDS = 0.02


def repeated(unit: Text, prefix: Text = "") -> Callable[[int], Text]:
    """`length` characters: `prefix`, then `unit` over and over."""
    return lambda length: (prefix + unit * (length // len(unit) + 1))[:length]


# Adversarial texts: runs the patterns could backtrack on, and texts dense with matches.
TEXTS: Dict[Text, Callable[[int], Text]] = {
    "digits": repeated("1"),
    "digits and spaces": repeated("1 "),
    "digits and dashes": repeated("1-"),
    "digits and slashes": repeated("1/2 "),
    "spaces": repeated(" "),
    "brackets": repeated("["),
    "bracketed labels": repeated("[A"),
    "at signs": repeated("@"),
    "dots": repeated("."),
    "local parts and at signs": repeated("a@"),
    "one address, endless domain labels": repeated("a.", prefix="x@"),
    "one address, endless hyphens": repeated("a-", prefix="x@"),
    "address without a domain": repeated("a"),
    "emails": repeated("ada@example.com "),
    "cards": repeated("4111 1111 1111 1111 "),
    "ibans": repeated("GB82 WEST 1234 5698 7654 32 "),
    "phones": repeated("+44 20 7946 0958 "),
    "tokens": repeated("[EMAIL]"),
    "hash tokens": repeated("[EMAIL:0123456789abcdef]"),
    "lookalike tokens": repeated("[4111111111111111]"),
    "url-encoded emails": repeated("ada%40example.com "),
}


def masker() -> EventMasker:
    settings = {"pii": {"email": "hash"}, "slots": {"email": "hash"}, "phone_regions": ["US"]}
    return EventMasker(PrivacyPolicy.from_settings(settings, environ={"LEPTON_PII_HASH_SECRET": "s" * 32}))


def user_event(text: Text) -> Dict:
    """A message with an entity on every email in it (entity offsets are moved per replacement)."""
    entities, start = [], text.find("ada@")
    while start >= 0:
        end = start + len("ada@example.com")
        entities.append({"entity": "email", "start": start, "end": end, "value": text[start:end]})
        start = text.find("ada@", end)
    return {"event": "user", "text": text, "parse_data": {"text": text, "entities": entities}}


MASKER_TEXTS = ("brackets", "tokens", "hash tokens", "lookalike tokens", "emails", "at signs", "dots")
DETECTORS = {f"detect {kind}": kind for kind in (EMAIL, IBAN, CARD, PHONE)}
# Each scan and the texts it is timed on.
SCAN_TEXTS: Dict[Text, Tuple[Text, ...]] = {
    **{name: tuple(TEXTS) for name in DETECTORS},
    "mask text": MASKER_TEXTS,
    "mask a message with an entity on each email": ("emails",),
    "mask a slot value echoed in the text": ("emails",),
    "mask a log record": ("url-encoded emails", "emails"),
}
CASES = [(scan, text) for scan, texts in SCAN_TEXTS.items() for text in texts]


def log_record(text: Text) -> logging.LogRecord:
    return logging.LogRecord("rasa.core.processor", logging.DEBUG, __file__, 1, text, None, None)


@pytest.fixture(scope="module")
def scans() -> Dict[Text, Callable[[Text], object]]:
    """The entry points that scan text, each called with what it is given in production."""
    full = masker()
    echoed = {"event": "slot", "name": "email", "value": "ada@example.com"}
    log_filter = PiiLogFilter(full)
    return {
        **{name: PiiDetector([kind], ("US",)).find for name, kind in DETECTORS.items()},
        "mask text": full.mask_text,
        "mask a message with an entity on each email": lambda text: full.mask_events([user_event(text)]),
        "mask a slot value echoed in the text": lambda text: full.mask_events([echoed, {"event": "bot", "text": text}]),
        "mask a log record": lambda text: log_filter.filter(log_record(text)),
    }


def _batch_seconds(scan: Callable[[Text], object], text: Text, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        scan(text)
    return time.perf_counter() - start


def seconds_per_call(scan: Callable[[Text], object], small: Text, large: Text) -> Tuple[float, float]:
    """Best time per call for each text, like `timeit`: garbage collection off, enough calls
    per sample for the timer's resolution, small and large samples taken in turns so that
    a busy moment of the machine weighs on both."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        scan(small[:1000])  # compiles patterns, fills caches
        number, one_call = 1, _batch_seconds(scan, small, 1)
        while one_call * number < SAMPLE_SECONDS and _batch_seconds(scan, small, number) < SAMPLE_SECONDS:
            number *= 2
        # Long calls vary little; short ones get more samples against a busy machine.
        samples = 2 if one_call > 0.2 else 5
        best_small = best_large = float("inf")
        for _ in range(samples):
            best_small = min(best_small, _batch_seconds(scan, small, number) / number)
            best_large = min(best_large, _batch_seconds(scan, large, number) / number)
        return best_small, best_large
    finally:
        if gc_was_enabled:
            gc.enable()


@pytest.mark.parametrize("scan_name, text_name", CASES, ids=[f"{scan}: {text}" for scan, text in CASES])
def test_doubling_the_text_less_than_triples_the_time(
    scans: Dict[Text, Callable[[Text], object]], scan_name: Text, text_name: Text
) -> None:
    make = TEXTS[text_name]
    small, large = make(SMALL), make(2 * SMALL)
    small_seconds, large_seconds = seconds_per_call(scans[scan_name], small, large)
    if large_seconds >= 3 * small_seconds:
        # Sub-millisecond calls can catch one busy moment of a shared machine; a quadratic
        # scan stays about 4x however often it is measured, so a second look decides.
        again_small, again_large = seconds_per_call(scans[scan_name], small, large)
        small_seconds, large_seconds = min(small_seconds, again_small), min(large_seconds, again_large)
    assert large_seconds < 3 * small_seconds, (
        f"{scan_name} on {text_name}: {small_seconds:.4f} s for {len(small):,} characters, "
        f"{large_seconds:.4f} s for {len(large):,}"
    )
