"""Per-node timings through Rasa's own graph hooks, on a real DaskGraphRunner."""

from pathlib import Path

from lepton_components.monitoring.graph_timing import ComponentTimingHook, time_graph_nodes
from lepton_components.monitoring.metrics import LeptonMetrics
from tests.monitoring.graph_bot import CLASSIFIER_NODE, PAUSE_NODE, keyword_graph_runner, parse
from tests.monitoring.scrape import sample

COUNT = "lepton_component_duration_seconds_count"
SUM = "lepton_component_duration_seconds_sum"


def test_each_node_run_is_timed_with_node_and_component_labels(tmp_path: Path) -> None:
    runner = keyword_graph_runner(tmp_path, {"hello": "greet"}, pause_s=0.05)
    metrics = LeptonMetrics()
    assert time_graph_nodes(runner, metrics) == 4
    assert parse(runner, "hello") == "greet"
    parse(runner, "what?")
    text = metrics.render().decode()
    assert sample(text, COUNT, node=PAUSE_NODE, component="Pause") == 2
    assert sample(text, SUM, node=PAUSE_NODE, component="Pause") >= 0.1
    assert sample(text, COUNT, node=CLASSIFIER_NODE, component="KeywordClassifier") == 2
    assert sample(text, SUM, node=CLASSIFIER_NODE, component="KeywordClassifier") < 0.05


def test_instrumenting_again_adds_no_second_hook_and_can_switch_registry(tmp_path: Path) -> None:
    runner = keyword_graph_runner(tmp_path, {"hello": "greet"}, pause_s=0.0)
    first, second = LeptonMetrics(), LeptonMetrics()
    time_graph_nodes(runner, first)
    time_graph_nodes(runner, first)
    time_graph_nodes(runner, second)
    hooks = [h for node in runner._instantiated_nodes.values() for h in node._hooks if isinstance(h, ComponentTimingHook)]
    assert len(hooks) == len(runner._instantiated_nodes)
    parse(runner, "hello")
    assert sample(first.render().decode(), COUNT, node=PAUSE_NODE) == 0
    assert sample(second.render().decode(), COUNT, node=PAUSE_NODE) == 1


def test_a_runner_without_graph_nodes_is_left_alone() -> None:
    assert time_graph_nodes(object(), LeptonMetrics()) == 0
