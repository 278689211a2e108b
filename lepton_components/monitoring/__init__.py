"""Prometheus metrics and JSON logs for `rasa run` (docs/monitoring.md).

`install.install_monitoring(app)` is called by `lepton_components.server.extensions`
whenever a Lepton channel is listed in `credentials.yml`. Nothing heavy is imported here.
"""
