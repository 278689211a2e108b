"""Runs the model's graph in an order worked out once, instead of through dask on every call.

Rasa serves every message through `DaskGraphRunner`: each `run` (one for NLU, one per
predicted action) rebuilds the minimal schema for its targets, turns it into a dask
graph, orders that graph (`dask.order`) and steps through it with dask's local scheduler,
all on the calling thread. The graph and the targets never change between messages, so
that is the same work each time: 11% of a busy replica's main thread
(docs/benchmarks.md, "Running the graph without dask").

`SequentialGraphRunner` keeps the nodes Rasa instantiated and, per target set, the order
dask's synchronous scheduler would run them in, computed on first use. A run calls the
nodes in that order and hands each one what dask would: the `(name, output)` pair of
every node it needs, or the bare name of a need nothing provides. Results and errors are
the ones `DaskGraphRunner` gives.
"""

import dataclasses
from typing import Any, Dict, FrozenSet, List, Optional, Text, Tuple

import dask.order
from rasa.engine.exceptions import GraphRunError
from rasa.engine.graph import ExecutionContext, GraphNode, GraphNodeHook, GraphSchema
from rasa.engine.runner.dask import DaskGraphRunner
from rasa.engine.runner.interface import GraphRunner
from rasa.engine.storage.storage import ModelStorage
from sanic import Sanic
from sanic.request import Request


def execution_order(schema: GraphSchema, inputs: List[Text]) -> List[Text]:
    """The schema's nodes in the order dask's synchronous scheduler runs them.

    `inputs` are the placeholder names callers fill (`__message__`, `__tracker__`); they
    are part of the graph dask orders, as in `DaskGraphRunner.run`. Like
    `dask.local.get_async`: priorities from `dask.order`, ready nodes on a stack, the
    lowest priority popped first, a node's newly ready dependents pushed after it ran.
    """
    dask_graph: Dict[Text, Any] = {name: (_noop, *node.needs.values()) for name, node in schema.nodes.items()}
    for name in inputs:
        dask_graph.setdefault(name, (name, None))
    priority = dask.order.order(dask_graph)
    waiting_on = {
        name: {need for need in node.needs.values() if need in schema.nodes} for name, node in schema.nodes.items()
    }
    needed_by: Dict[Text, List[Text]] = {name: [] for name in schema.nodes}
    for name, needs in waiting_on.items():
        for need in needs:
            needed_by[need].append(name)
    ready = sorted((name for name, needs in waiting_on.items() if not needs), key=priority.get, reverse=True)
    order = []
    while ready:
        name = ready.pop()
        order.append(name)
        for dependent in sorted(needed_by[name], key=priority.get, reverse=True):
            waiting_on[dependent].discard(name)
            if not waiting_on[dependent]:
                ready.append(dependent)
    if len(order) != len(schema.nodes):
        raise GraphRunError("The graph has a cycle: its nodes cannot be put in an order.")
    return order


def _noop(*_: Any) -> None:
    """Stands for a node in the graph handed to `dask.order`, which only reads its shape."""


class SequentialGraphRunner(GraphRunner):
    """`DaskGraphRunner`'s results from the same nodes, in a precomputed order."""

    def __init__(self, graph_schema: GraphSchema, nodes: Dict[Text, GraphNode]) -> None:
        self._graph_schema = graph_schema
        self._instantiated_nodes = nodes
        self._plans: Dict[Tuple[Tuple[Text, ...], Tuple[Text, ...]], _Plan] = {}

    @classmethod
    def create(
        cls,
        graph_schema: GraphSchema,
        model_storage: ModelStorage,
        execution_context: ExecutionContext,
        hooks: Optional[List[GraphNodeHook]] = None,
    ) -> "SequentialGraphRunner":
        """Instantiates every node, as `DaskGraphRunner.create` does."""
        nodes = DaskGraphRunner._instantiate_nodes(graph_schema, model_storage, execution_context, hooks)
        return cls(graph_schema, nodes)

    @classmethod
    def replacing(cls, runner: DaskGraphRunner) -> "SequentialGraphRunner":
        """A runner over the nodes `runner` already loaded: no component is loaded again."""
        return cls(runner._graph_schema, runner._instantiated_nodes)

    def run(
        self,
        inputs: Optional[Dict[Text, Any]] = None,
        targets: Optional[List[Text]] = None,
    ) -> Dict[Text, Any]:
        """Runs the nodes the targets need (see `GraphRunner.run`)."""
        inputs = inputs or {}
        run_targets = list(targets) if targets else self._graph_schema.target_names
        plan = self._plan(tuple(run_targets), tuple(inputs))
        for name, value in inputs.items():
            # DaskGraphRunner refuses an input whose value names a node: dask would read it as one.
            if isinstance(value, str) and (value in plan.names or value in inputs):
                raise GraphRunError(
                    f"Input value '{value}' clashes with a node name. Make sure "
                    f"that none of the input names passed to the `run` method are the "
                    f"same as node names in the graph schema."
                )
        outputs: Dict[Text, Any] = {name: (name, value) for name, value in inputs.items()}
        for name, needs in plan.steps:
            if name not in inputs:  # an input named like a node replaces it, as in dask
                outputs[name] = self._instantiated_nodes[name](*(outputs.get(need, need) for need in needs))
        try:
            return dict(outputs[target] for target in run_targets)
        except KeyError as error:
            raise GraphRunError(f"Target '{error.args[0]}' is neither a node nor an input of the graph.") from error

    def _plan(self, targets: Tuple[Text, ...], inputs: Tuple[Text, ...]) -> "_Plan":
        """The nodes to run for `targets`, in order, each with the names of its needs."""
        key = (targets, inputs)
        plan = self._plans.get(key)
        if plan is None:
            schema = self._graph_schema.minimal_graph_schema(list(targets))
            order = execution_order(schema, [name for name in inputs if name not in schema.nodes])
            plan = _Plan([(name, tuple(schema.nodes[name].needs.values())) for name in order], frozenset(order))
            self._plans[key] = plan
        return plan


@dataclasses.dataclass(frozen=True)
class _Plan:
    steps: List[Tuple[Text, Tuple[Text, ...]]]
    names: FrozenSet[Text]


def use_sequential_graph_runner(agent: Any) -> None:
    """Swaps the agent's `DaskGraphRunner` for a `SequentialGraphRunner` over the same nodes.

    Idempotent, and a no-op for an agent without a model or with another runner.
    """
    processor = getattr(agent, "processor", None)
    runner = getattr(processor, "graph_runner", None)
    if type(runner) is DaskGraphRunner:
        processor.graph_runner = SequentialGraphRunner.replacing(runner)


async def _sequential_runner_middleware(request: Request) -> None:
    use_sequential_graph_runner(getattr(request.app.ctx, "agent", None))


def install_sequential_graph_runner(app: Sanic) -> None:
    """Every agent the app serves runs its graph with `SequentialGraphRunner`.

    Rasa builds a new agent at start-up and on every `PUT /model`; checking on each
    request (a type check once swapped) swaps each before it handles anything.
    """
    app.register_middleware(_sequential_runner_middleware, "request")
