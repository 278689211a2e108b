"""The analytics part: the turn log behind review and analytics, and the analytics pages.

Its turn hooks write one `lepton_turns` row per customer message (`turn_log`). Admins
see daily figures as charts (`/analytics`) or JSON (`/api/analytics`), and the
questions the bot could not answer grouped by meaning, each group one click away from a
new knowledge-base answer.
"""

import asyncio
from typing import Any, Dict, List, Optional, Text, Tuple

from sanic import Blueprint

from lepton_components.operators.analytics.clusters import CachingEncoder, Cluster, cluster_texts
from lepton_components.operators.analytics.routes import register_analytics_routes
from lepton_components.operators.analytics.turn_log import TurnLog
from lepton_components.operators.hooks import TurnHooks
from lepton_components.operators.part import ConsolePart

# Clusterings remembered (by their exact input), so reloading the page costs no encoding.
CACHED_CLUSTERINGS = 8


class AnalyticsPart(ConsolePart):
    def __init__(self, console: Any) -> None:
        super().__init__(console)
        self.settings = console.review.settings
        self._turn_log = TurnLog(self.settings.low_confidence)
        self._clusterings: Dict[Tuple[Any, ...], List[Cluster]] = {}
        self._encoder: Optional[CachingEncoder] = None

    @property
    def turn_hooks(self) -> Optional[TurnHooks]:
        return self._turn_log

    def register_routes(self, blueprint: Blueprint) -> None:
        register_analytics_routes(blueprint, self)

    def _caching(self, encoder: Any) -> CachingEncoder:
        # One per encoder: a new model (`PUT /model`) brings a new encoder and a fresh cache.
        if self._encoder is None or self._encoder.encoder is not encoder:
            self._encoder = CachingEncoder(encoder)
        return self._encoder

    async def clusters(self, texts: List[Text], encoder: Any) -> List[Cluster]:
        """The groups of `texts`, computed in a thread unless these very texts were grouped before."""
        key = (id(encoder), self.settings.cluster_distance, tuple(texts))
        known = self._clusterings.get(key)
        if known is None:
            known = await asyncio.to_thread(cluster_texts, texts, self._caching(encoder), self.settings.cluster_distance)
            while len(self._clusterings) >= CACHED_CLUSTERINGS:
                self._clusterings.pop(next(iter(self._clusterings)))
            self._clusterings[key] = known
        return known
