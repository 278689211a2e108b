"""Personal data masked before it is stored, published or logged (docs/privacy.md).

* `checksums`, `pii_detectors`: find emails, phones, cards (Luhn), IBANs (mod 97) in text;
* `privacy_policy`: the `mask` / `hash` / `keep` settings per kind, slot and entity;
* `placeholders`, `text_masker`, `event_masker`: apply them to strings and Rasa event dicts
  (`span_claims` keeps choosing non-overlapping spans linear in the text);
* `masking_tracker_store`, `masking_event_broker`, `log_filter`: the Rasa and logging adapters.

Nothing heavy is imported here; enable the store by module path in endpoints.yml.
"""
