"""The Prometheus metrics Lepton exports, in one registry per Sanic app.

A registry of our own (not prometheus_client's global one) keeps two apps in one
process (tests, or several bots) from mixing their figures; the process, platform and
garbage-collector collectors are added so one scrape also shows CPU and memory.
Label values are always drawn from bounded sets (route templates, graph node names,
domain intents, fixed outcome names) so no customer input can grow the series count.
"""

from typing import Any, Optional, Text

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from lepton_components.monitoring.turns import TurnSummary

# Webhook round trips include the whole NLU + dialogue turn (tens of ms to seconds).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# One graph node: from microseconds (converters) to a second (a cold BERT forward pass).
COMPONENT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Where `install.install_monitoring` keeps an app's metrics (`app.ctx.<name>`).
APP_KEY = "lepton_metrics"
FEEDBACK_RATINGS = ("up", "down")

class LeptonMetrics:
    """All of Lepton's metric families, registered in `self.registry`."""

    def __init__(self, registry: Optional[CollectorRegistry] = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.http_duration = Histogram(
            "lepton_http_request_duration_seconds",
            "Time from request received to response sent, by channel, route template and status class.",
            ["channel", "route", "status_class"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.component_duration = Histogram(
            "lepton_component_duration_seconds",
            "Time one node of the loaded model's graph (NLU component, policy, ...) took per run.",
            ["node", "component"],
            buckets=COMPONENT_BUCKETS,
            registry=self.registry,
        )
        self.messages = Counter(
            "lepton_messages", "User messages handed to the bot, by input channel.", ["channel"], registry=self.registry
        )
        self.intents = Counter(
            "lepton_intents", "Intents predicted for user messages (domain intents, else `other`).", ["intent"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "lepton_fallbacks", "Turns that fell back: `nlu_fallback` intent or `action_default_fallback` run.",
            ["kind"], registry=self.registry,
        )
        self.faq_retrievals = Counter(
            "lepton_faq_retrievals", "FaqAnswerPolicy turns: answered, suggested questions, or missed (no candidate "
            "above the suggestion threshold).", ["outcome"], registry=self.registry,
        )
        self.handoffs = Counter(
            "lepton_handoffs", "Turns that ran the handoff action, by whether the customer asked (intent) or the "
            "bot gave up (bot).", ["trigger"], registry=self.registry,
        )
        self.feedback = Counter(
            "lepton_feedback", "Customers' ratings of bot answers in the web chat (thumbs up or down).", ["rating"],
            registry=self.registry,
        )
        for rating in FEEDBACK_RATINGS:  # both series exist from the start, so a rate() sees the first vote
            self.feedback.labels(rating)

    def count_feedback(self, rating: Text) -> None:
        if rating not in FEEDBACK_RATINGS:
            raise ValueError(f"rating must be one of {FEEDBACK_RATINGS}, got {rating!r}")
        self.feedback.labels(rating).inc()

    def observe_turn(self, turn: TurnSummary) -> None:
        """Count what one processed message led to."""
        self.intents.labels(turn.intent).inc()
        for kind in turn.fallbacks:
            self.fallbacks.labels(kind).inc()
        if turn.faq_outcome is not None:
            self.faq_retrievals.labels(turn.faq_outcome).inc()
        if turn.handoff is not None:
            self.handoffs.labels(turn.handoff).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def metrics_of(app: Any) -> Optional[LeptonMetrics]:
    """The metrics installed on a Sanic app, or None when monitoring is not installed on it."""
    return getattr(getattr(app, "ctx", None), APP_KEY, None)
