"""Time every node of a loaded model's graph (NLU components, policies, Rasa's own).

Rasa 3.6 runs each node through `GraphNode.__call__`, which calls the hooks in the
node's `_hooks` list before and after the component (`rasa/engine/graph.py`,
`GraphNodeHook`): the same mechanism Rasa uses for its training hooks, so no Rasa
code is replaced. Rasa only passes hooks when it builds a runner, and `PUT /model`
builds a new one, so `time_graph_nodes` adds ours to the nodes of whatever runner the
current agent has; it is cheap and idempotent, hence safe to call per request.
"""

import logging
import time
from typing import Any, Dict, Optional, Text

from prometheus_client import Histogram
from rasa.engine.graph import ExecutionContext, GraphNode, GraphNodeHook

from lepton_components.monitoring.metrics import LeptonMetrics

logger = logging.getLogger(__name__)

_START = "lepton_started"


class ComponentTimingHook(GraphNodeHook):
    """Observes one node's run time in `lepton_component_duration_seconds`.

    Never raises: Rasa turns a failing hook into a failed message.
    """

    def __init__(self, node_name: Text, component: Text, metrics: LeptonMetrics) -> None:
        self.node_name = node_name
        self.component = component
        self.metrics = metrics
        self.histogram: Histogram = metrics.component_duration.labels(node_name, component)

    def use(self, metrics: LeptonMetrics) -> None:
        """Report to `metrics` from now on (another app took over this agent, as in tests)."""
        if metrics is not self.metrics:
            self.metrics = metrics
            self.histogram = metrics.component_duration.labels(self.node_name, self.component)

    def on_before_node(
        self, node_name: Text, execution_context: ExecutionContext, config: Dict[Text, Any],
        received_inputs: Dict[Text, Any],
    ) -> Dict:
        return {_START: time.perf_counter()}

    def on_after_node(
        self, node_name: Text, execution_context: ExecutionContext, config: Dict[Text, Any], output: Any,
        input_hook_data: Dict,
    ) -> None:
        try:
            self.histogram.observe(time.perf_counter() - input_hook_data[_START])
        except Exception:  # a metric must never fail a customer's message
            logger.exception(f"Could not record the run time of graph node {node_name!r}.")


def graph_nodes(graph_runner: Any) -> Dict[Text, GraphNode]:
    """The instantiated nodes of a `DaskGraphRunner` (empty for other runners)."""
    nodes = getattr(graph_runner, "_instantiated_nodes", None)
    return nodes if isinstance(nodes, dict) else {}


def _timing_hook(node: GraphNode) -> Optional[ComponentTimingHook]:
    return next((hook for hook in node._hooks if isinstance(hook, ComponentTimingHook)), None)


def time_graph_nodes(graph_runner: Any, metrics: LeptonMetrics) -> int:
    """Make every node of `graph_runner` report to `metrics`; returns how many nodes are timed."""
    nodes = graph_nodes(graph_runner)
    for name, node in nodes.items():
        hook = _timing_hook(node)
        if hook is None:
            node._hooks.append(ComponentTimingHook(name, node._component_class.__name__, metrics))
        else:
            hook.use(metrics)
    return len(nodes)
