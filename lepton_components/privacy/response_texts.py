"""Personal-data-shaped values that the bot's own responses contain.

The demo's replies give out support@lepton.example; a shop's may give a hotline
number. They belong to the business, not to the customer, and masking them would make
stored bot turns unreadable for no gain. The masking store reads them from the
domain's responses when Rasa sets the domain and adds them to the allow-list, so no
one has to remember listing them (`allow:` is still there for values coming from
elsewhere, such as FAQ answers filled into slots).
"""

from typing import Any, Iterator, List, Text

from rasa.shared.core.domain import Domain

from lepton_components.privacy.pii_detectors import PiiDetector


def _strings(value: Any) -> Iterator[Text]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def pii_in_responses(domain: Domain, detector: PiiDetector) -> List[Text]:
    """Normalised values of every detected match in the texts of `domain.responses`."""
    found = set()
    for text in _strings(domain.responses):
        found.update(match.normalized for match in detector.find(text))
    return sorted(found)
