"""Input channels (Sanic blueprints mounted by `rasa run`); no heavy imports here."""
