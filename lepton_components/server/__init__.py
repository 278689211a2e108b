"""Wiring for `rasa run` that Rasa 3.6 lacks.

`outages` turns "the database or Redis is down" into HTTP 503 with a JSON body and one
log line; `failures` gives every chat channel the same JSON error replies;
`strict_mode` installs the 503 handling on the Sanic app and stops Rasa's
`FailSafeTrackerStore` from swallowing tracker store errors; `extensions` installs all
of it when a Lepton channel (`LeptonRestInput`, `WebChatInput`) starts.
"""
