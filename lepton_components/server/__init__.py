"""Wiring for `rasa run` that Rasa 3.6 lacks.

`outages` turns "the database or Redis is down" into HTTP 503 with a JSON body and one
log line; `failures` gives every chat channel the same JSON error replies;
`strict_mode` installs the 503 handling on the Sanic app and stops Rasa's
`FailSafeTrackerStore` from swallowing tracker store errors; `hardening` guards the
whole server (API gate, body limits and checks, JSON errors, model sources);
`extensions` installs all of it, once, when any Lepton channel or the explicit
`channel.LeptonServerInput` switch is listed in `credentials.yml`. `rasa_internals`
holds every private Rasa or Sanic detail the rest relies on.
"""
