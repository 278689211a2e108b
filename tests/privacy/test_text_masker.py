"""One string: tokens, precedence of given spans over known values over detectors, the
allow-list, `keep` protection, offset mapping and idempotence."""

import hashlib
import hmac
from typing import Callable

from lepton_components.privacy.event_masker import EventMasker
from lepton_components.privacy.placeholders import Placeholders
from lepton_components.privacy.privacy_policy import HASH, MASK
from lepton_components.privacy.text_masker import KnownValue, MaskedText, Span
from tests.privacy.conftest import SECRET

TEXT = "I'm Ada Lovelace, mail ada@example.com or call +44 20 7946 0958"


def test_detected_kinds_become_their_tokens(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker()
    assert masker.mask_text(TEXT) == "I'm Ada Lovelace, mail [EMAIL] or call [PHONE]"


def test_hash_tokens_are_keyed_and_stable(make_masker: Callable[..., EventMasker]) -> None:
    hashed = make_masker(pii={"email": "hash"})
    first = hashed.mask_text("ada@example.com")
    assert first.startswith("[EMAIL:") and len(first) == len("[EMAIL:]") + 16
    # Same value however typed gives the same token; another secret gives another one.
    assert hashed.mask_text("mail ADA@Example.COM now") == f"mail {first} now"
    assert make_masker(secret="another-secret-0123456789", pii={"email": "hash"}).mask_text("ada@example.com") != first
    assert hashed.mask_text("bob@example.com") != first


def test_keep_kind_and_allow_list_leave_values(make_masker: Callable[..., EventMasker]) -> None:
    assert make_masker(pii={"phone": "keep"}).mask_text(TEXT).endswith("+44 20 7946 0958")
    masker = make_masker(allow=["support@lepton.example"])
    assert (
        masker.mask_text("ask support@lepton.example, not ada@example.com") == "ask support@lepton.example, not [EMAIL]"
    )


def test_given_spans_beat_known_values_beat_detectors(make_masker: Callable[..., EventMasker]) -> None:
    text = make_masker(slots={"email": "hash"}).text
    known = [
        KnownValue("Ada Lovelace", MASK, "NAME", "Ada Lovelace"),
        KnownValue("ada@example.com", HASH, "EMAIL", "ada@example.com"),
    ]
    masked = text.mask(TEXT, known=known).text
    assert masked.startswith("I'm [NAME], mail [EMAIL:")
    # A span given for the entity "Ada" wins over the longer known value around it.
    given = text.mask(TEXT, given=[Span(4, 7, MASK, "FIRST_NAME", "Ada")], known=known).text
    assert given.startswith("I'm [FIRST_NAME] Lovelace, mail [EMAIL:")


def test_known_values_match_whole_words_only(make_masker: Callable[..., EventMasker]) -> None:
    text = make_masker().text
    known = [KnownValue("Ada", MASK, "NAME", "Ada"), KnownValue("no", MASK, "X", "no")]
    assert text.mask("Ada lives in Canada, no?", known=known).text == "[NAME] lives in Canada, no?"


def test_masking_its_own_output_changes_nothing(make_masker: Callable[..., EventMasker]) -> None:
    masker = make_masker(pii={"email": "hash", "phone": "hash"})
    once = masker.mask_text(TEXT)
    assert masker.mask_text(once) == once


def test_offsets_move_with_the_replacements() -> None:
    # "ab[X]cd" from "abXXXXXcd": X at 2..7 became [X] at 2..5.
    masked = MaskedText("ab[X]cd", ((2, 7, 2, 5),))
    assert [masked.position(i) for i in (0, 2, 4, 7, 8)] == [0, 2, 2, 5, 6]
    assert [masked.position(i, is_end=True) for i in (2, 3, 7, 9)] == [2, 5, 5, 7]


def test_placeholders_refuse_hash_without_secret() -> None:
    try:
        Placeholders(None).token(HASH, "EMAIL", "x")
    except RuntimeError as error:
        assert "secret" in str(error)
    else:
        raise AssertionError("hash without a secret must not produce a token")


def test_hash_tokens_never_hold_what_a_detector_finds(make_masker: Callable[..., EventMasker]) -> None:
    """About one digest in 2,500 starts with a Luhn-valid run of 13+ digits; such a token
    would be taken for a card when masked again (a reply echoing it), so the next 16 hex
    characters of the digest are used: still one token per value, and masking it again
    changes nothing."""
    masker = make_masker(pii={"email": "hash"})

    def digest_of(email: str) -> str:
        return hmac.new(SECRET.encode(), email.encode(), hashlib.sha256).hexdigest()

    email = next(
        f"customer{number}@example.com"
        for number in range(100_000)
        if masker.detector.find(f"[EMAIL:{digest_of(f'customer{number}@example.com')[:16]}]")
    )
    token = masker.mask_text(email)
    assert token == f"[EMAIL:{digest_of(email)[16:32]}]"
    assert masker.placeholders.is_own(token) and masker.mask_text(f"mail {token} now") == f"mail {token} now"
