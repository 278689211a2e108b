"""SequentialGraphRunner answers exactly as Rasa's DaskGraphRunner does, from the same nodes."""

import random
from pathlib import Path
from typing import Any, Dict, List, Text

import dask
import pytest
from rasa.core.agent import Agent
from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import GraphSchema, SchemaNode
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from sanic import Sanic

from lepton_components.server.graph_runner import SequentialGraphRunner, execution_order, use_sequential_graph_runner
from tests.integration.numbered_bot import numbered_bot_model  # noqa: F401 (fixture)
from tests.server.lepton_app import API_TOKEN, rasa_app
from tests.server.threaded_server import app_in_thread

INPUTS = ["__message__", "__tracker__"]


def random_schema(seed: int, size: int) -> GraphSchema:
    """A random DAG: each node needs a few earlier nodes or inputs."""
    rng = random.Random(seed)
    nodes: Dict[Text, SchemaNode] = {}
    for index in range(size):
        earlier = list(nodes) + INPUTS
        needs = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 3)))
        nodes[f"node_{index}"] = SchemaNode(
            needs={f"in_{position}": need for position, need in enumerate(needs)},
            uses=WhitespaceTokenizer,
            constructor_name="create",
            fn="process",
            config={},
            is_target=index >= size - 2,
        )
    return GraphSchema(nodes)


def order_dask_runs(schema: GraphSchema) -> List[Text]:
    """The order dask's synchronous scheduler calls the nodes in, as DaskGraphRunner builds the graph."""
    ran: List[Text] = []

    def recorder(name: Text) -> Any:
        def run(*_: Any) -> Any:
            ran.append(name)
            return name, None

        return run

    graph: Dict[Text, Any] = {name: (recorder(name), *node.needs.values()) for name, node in schema.nodes.items()}
    for name in INPUTS:
        graph[name] = (name, object())
    dask.get(graph, schema.target_names)
    return ran


@pytest.mark.parametrize("seed", range(40))
def test_nodes_run_in_the_order_dask_runs_them(seed: int) -> None:
    schema = random_schema(seed, size=4 + seed % 20)
    assert execution_order(schema, INPUTS) == order_dask_runs(schema)


async def conversation(agent: Agent, sender: Text) -> List[Any]:
    """What the customer and the tracker see over a short conversation."""
    seen = []
    for text in ["hello there", "message 7", "what was my number", "message 12", "/recall"]:
        seen.append(await agent.parse_message(text))
        seen.append(await agent.handle_text(text, sender_id=sender))
    tracker = await agent.tracker_store.retrieve(sender)
    seen.append([(event.type_name, getattr(event, "action_name", None), getattr(event, "text", None)) for event in tracker.events])
    seen.append(tracker.current_slot_values())
    return seen


@pytest.mark.asyncio
async def test_a_trained_bot_parses_and_answers_as_with_dask(numbered_bot_model: Path) -> None:  # noqa: F811
    with_dask = Agent.load(str(numbered_bot_model))
    sequential = Agent.load(str(numbered_bot_model))
    nodes = sequential.processor.graph_runner._instantiated_nodes
    use_sequential_graph_runner(sequential)
    runner = sequential.processor.graph_runner
    assert isinstance(runner, SequentialGraphRunner) and runner._instantiated_nodes is nodes  # nothing loaded again
    use_sequential_graph_runner(sequential)
    assert sequential.processor.graph_runner is runner  # a second call changes nothing

    expected, got = await conversation(with_dask, "customer"), await conversation(sequential, "customer")
    assert got == expected


def test_an_input_value_naming_a_node_is_refused_as_dask_refuses_it(numbered_bot_model: Path) -> None:  # noqa: F811
    agent = Agent.load(str(numbered_bot_model))
    dask_runner = agent.processor.graph_runner
    node = next(iter(dask_runner._graph_schema.nodes))
    for runner in (dask_runner, SequentialGraphRunner.replacing(dask_runner)):
        with pytest.raises(GraphRunError, match="clashes with a node name"):
            runner.run(inputs={"__message__": node}, targets=[agent.processor.model_metadata.nlu_target])


def test_a_need_nothing_provides_reaches_the_node_by_name_as_in_dask() -> None:
    received: Dict[Text, Any] = {}

    class Node:
        def __call__(self, *inputs: Any) -> Any:
            received["inputs"] = inputs
            return "target", "done"

    schema = GraphSchema(
        {
            "target": SchemaNode(
                needs={"messages": "__message__"}, uses=WhitespaceTokenizer, constructor_name="create",
                fn="process", config={}, is_target=True,
            )
        }
    )
    runner = SequentialGraphRunner(schema, {"target": Node()})
    assert runner.run(targets=["target"]) == {"target": "done"}
    assert received["inputs"] == ("__message__",)
    assert runner.run(inputs={"__message__": [1]}, targets=["target"]) == {"target": "done"}
    assert received["inputs"] == (("__message__", [1]),)


def test_rasa_run_serves_with_the_sequential_runner(numbered_bot_model: Path, monkeypatch) -> None:  # noqa: F811
    import requests

    from lepton_components.server.api_auth import API_TOKEN_ENV
    from lepton_components.server.channel import LeptonServerInput

    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)
    app: Sanic = rasa_app([LeptonServerInput()], auth_token=None, model_path=str(numbered_bot_model))
    with app_in_thread(app) as url:
        reply = requests.post(
            url + "/model/parse", json={"text": "message 5"}, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30
        )
        runner = app.ctx.agent.processor.graph_runner
    assert reply.status_code == 200 and reply.json()["intent"]["name"] == "inform"
    assert isinstance(runner, SequentialGraphRunner)


def test_dask_runner_is_what_rasa_loads(numbered_bot_model: Path) -> None:  # noqa: F811
    """The swap relies on Rasa loading a plain DaskGraphRunner; a Rasa upgrade that changes it fails here."""
    assert type(Agent.load(str(numbered_bot_model)).processor.graph_runner) is DaskGraphRunner
