"""Applies the privacy policy to Rasa events in their stored form (`Event.as_dict()`).

Works on the dictionaries the tracker store writes and the event broker publishes, so
what is checked is exactly what leaves the process. What is masked, per event:

* `user`: `text` and `parse_data.text`; entity values (configured entities by their
  action, the others by detection) with `start`/`end` moved to the masked text;
  `metadata` and everything else except ids, timestamps and the intent ranking;
* `slot`: slots configured `mask`/`hash` by that action (the whole value), all other
  slots (`keep` too) by detection;
* `bot`: `text`, buttons and custom payloads in `data`, `metadata`;
* any other event (also ones Rasa adds later): every field but names, ids and timestamps.

`keep` never keeps what a detector finds: the demo's NER once tagged an IBAN as an order
number, and a `keep` that trusted it would have stored the IBAN raw. To store a detected
kind raw, set that kind to `keep` (`pii: {email: keep}`).

Known values (what `mask`/`hash` slots and entities hold anywhere in the events given
together) are searched in every text, so an echo in a bot reply is masked even when
no detector would recognise it (a name). Masking its own output changes nothing, so
the whole tracker can be masked again on every save. Pure code over dictionaries.
"""

import copy
import json
from typing import Any, Dict, List, Optional, Sequence, Text

from lepton_components.privacy.pii_detectors import PiiDetector
from lepton_components.privacy.placeholders import Placeholders, label_of, token_forms
from lepton_components.privacy.privacy_policy import KEEP, PrivacyPolicy
from lepton_components.privacy.text_masker import KnownValue, MaskedText, Span, TextMasker

# Never personal data, and masking them would break Rasa: ids (hex can hold a digit
# run that passes Luhn), timestamps, scores.
SKIP_ANYWHERE = frozenset({"message_id", "model_id", "assistant_id", "timestamp", "confidence", "confidence_entity"})
# Top-level event fields that are names chosen by the bot's developers, not by users, and the
# conversation id, which the tracker store keys conversations by (docs/privacy.md, limits).
SKIP_TOP_LEVEL = frozenset({"event", "name", "policy", "input_channel", "action_name", "sender_id"})
# Classifier output: intent names and scores.
SKIP_PARSE_DATA = frozenset({"intent", "intent_ranking", "text", "entities"})
ENTITY_STRUCTURE = frozenset({"entity", "start", "end", "extractor", "role", "group", "processors", "value"})


class EventMasker:
    """Masks lists of event dictionaries according to a `PrivacyPolicy`."""

    def __init__(self, policy: PrivacyPolicy, detector: Optional[PiiDetector] = None) -> None:
        self.policy = policy
        self.detector = detector or PiiDetector(policy.kinds, policy.phone_regions)
        self.placeholders = Placeholders(
            policy.hash_secret, token_forms(policy), lambda text: bool(self.detector.find(text))
        )
        self.text = TextMasker(self.detector, policy.kinds, self.placeholders, policy.allow)

    def allow(self, values: Sequence[Text]) -> None:
        """Never mask these values (e.g. the bot's own support address in its responses)."""
        self.text.allow.update(value.strip().lower() for value in values)

    # -- values --------------------------------------------------------------

    def apply(self, action: Text, label: Text, value: Any) -> Any:
        """The whole `value` of a `mask`/`hash` slot or entity, replaced by its token."""
        if value is None:
            return value
        if isinstance(value, list):
            return [self.apply(action, label, item) for item in value]
        if isinstance(value, str):
            if self.placeholders.is_own(value):
                return value
            return self.placeholders.token(action, label_of(label), self.detector.normalize(value))
        return self.placeholders.token(action, label_of(label), json.dumps(value, sort_keys=True, default=str))

    def mask_text(self, text: Text, known: Sequence[KnownValue] = ()) -> Text:
        """`text` with detected (and known) personal data replaced."""
        return self.text.mask(text, known=known).text

    def mask_any(self, value: Any, known: Sequence[KnownValue] = ()) -> Any:
        """Every string inside `value` (JSON-like) masked; ids and timestamps left alone."""
        if isinstance(value, str):
            return self.mask_text(value, known)
        if isinstance(value, list):
            return [self.mask_any(item, known) for item in value]
        if isinstance(value, dict):
            return {
                self.mask_text(key, known) if isinstance(key, str) else key: (
                    item if key in SKIP_ANYWHERE else self.mask_any(item, known)
                )
                for key, item in value.items()
            }
        if isinstance(value, int) and not isinstance(value, bool):
            # A card number sent as a JSON number.
            masked = self.mask_text(str(value), known)
            return value if masked == str(value) else masked
        return value

    # -- events --------------------------------------------------------------

    def known_values(self, events: Sequence[Dict[Text, Any]]) -> List[KnownValue]:
        """What `mask`/`hash` slots and entities hold in `events`, longest first."""
        found: Dict[Text, KnownValue] = {}

        def add(action: Text, name: Text, value: Any) -> None:
            if action == KEEP:
                return
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item.strip() and not self.placeholders.is_own(item.strip()):
                    text = item.strip()
                    found.setdefault(
                        text.lower(), KnownValue(text, action, label_of(name), self.detector.normalize(text))
                    )

        for event in events:
            if event.get("event") == "slot" and event.get("name") in self.policy.slots:
                add(self.policy.slots[event["name"]], event["name"], event.get("value"))
            for entity in _entities_of(event):
                if isinstance(entity, dict) and entity.get("entity") in self.policy.entities:
                    add(self.policy.entities[entity["entity"]], entity["entity"], entity.get("value"))
        return sorted(found.values(), key=lambda known: -len(known.value))

    def mask_events(self, events: Sequence[Dict[Text, Any]]) -> List[Dict[Text, Any]]:
        """Masked copies of `events`, in order; the input is not changed."""
        known = self.known_values(events)
        return [self.mask_event(event, known) for event in events]

    def mask_event(self, event: Dict[Text, Any], known: Sequence[KnownValue] = ()) -> Dict[Text, Any]:
        """A masked copy of one event; `known` as from `known_values` of its conversation."""
        kind = event.get("event")
        special = (
            {"text", "parse_data"}
            if kind == "user"
            else {"entities"} if isinstance(event.get("entities"), list) else set()
        )
        slot_action = self.policy.slots.get(event.get("name"), KEEP) if kind == "slot" else KEEP
        masked = {
            key: (
                value
                if key in SKIP_TOP_LEVEL or key in SKIP_ANYWHERE or key in special
                else self.mask_any(value, known)
            )
            for key, value in event.items()
        }
        if kind == "user":
            self._mask_user(event, masked, known)
        elif "entities" in special:
            masked["entities"] = self._mask_entities(event["entities"], known, None)
        if slot_action != KEEP:
            masked["value"] = self.apply(slot_action, event["name"], event.get("value"))
        return masked

    def _mask_user(self, event: Dict[Text, Any], masked: Dict[Text, Any], known: Sequence[KnownValue]) -> None:
        text = event.get("text")
        parse_data = event.get("parse_data") if isinstance(event.get("parse_data"), dict) else {}
        entities = parse_data.get("entities") if isinstance(parse_data.get("entities"), list) else []
        masked_text: Optional[MaskedText] = None
        if isinstance(text, str):
            masked_text = self.text.mask(text, self._entity_spans(text, entities), known)
            masked["text"] = masked_text.text
        if not parse_data:
            return
        new_parse = {
            key: copy.deepcopy(value) if key in SKIP_PARSE_DATA else self.mask_any(value, known)
            for key, value in parse_data.items()
        }
        parse_text = parse_data.get("text")
        same_text = masked_text is not None and parse_text == text
        if same_text:
            new_parse["text"] = masked_text.text
        elif isinstance(parse_text, str):
            new_parse["text"] = self.text.mask(parse_text, self._entity_spans(parse_text, entities), known).text
        if "entities" in parse_data:
            new_parse["entities"] = self._mask_entities(entities, known, masked_text if same_text else None)
        masked["parse_data"] = new_parse

    def _entity_spans(self, text: Text, entities: Sequence[Any]) -> List[Span]:
        """Spans of `mask`/`hash` entities in the text they were extracted from."""
        spans = []
        for entity in entities:
            if not isinstance(entity, dict) or self.policy.entities.get(entity.get("entity"), KEEP) == KEEP:
                continue
            start, end = entity.get("start"), entity.get("end")
            if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
                name = entity["entity"]
                value = text[start:end]
                spans.append(
                    Span(start, end, self.policy.entities[name], label_of(name), self.detector.normalize(value))
                )
        return spans

    def _mask_entities(
        self, entities: Sequence[Any], known: Sequence[KnownValue], text: Optional[MaskedText]
    ) -> List[Any]:
        result = []
        for entity in entities:
            if not isinstance(entity, dict):
                result.append(self.mask_any(entity, known))
                continue
            new = {
                key: value if key in ENTITY_STRUCTURE or key in SKIP_ANYWHERE else self.mask_any(value, known)
                for key, value in entity.items()
            }
            name = entity.get("entity")
            if self.policy.entities.get(name, KEEP) != KEEP:
                new["value"] = self.apply(self.policy.entities[name], name, entity.get("value"))
            elif "value" in entity:
                new["value"] = self.mask_any(entity["value"], known)
            if text is not None and isinstance(entity.get("start"), int) and isinstance(entity.get("end"), int):
                new["start"] = text.position(entity["start"])
                new["end"] = text.position(entity["end"], is_end=True)
            result.append(new)
        return result


def _entities_of(event: Dict[Text, Any]) -> List[Any]:
    if event.get("event") == "user" and isinstance(event.get("parse_data"), dict):
        entities = event["parse_data"].get("entities")
    else:
        entities = event.get("entities")
    return entities if isinstance(entities, list) else []
