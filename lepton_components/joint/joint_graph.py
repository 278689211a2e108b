"""JointNluComponent's serving graph: the whole JointModel pass, heads included, in ONNX.

Training exports it once (`export_joint_graph`), int8 by default, and stores it in the
model archive (`onnx_graph.save_graph`); a server reads it back and runs it with ONNX
Runtime and numpy (`JointGraph`), so serving imports neither torch nor `transformers`:
about half a gigabyte less memory and no export or quantization at every start-up.
This module itself is torch-free; `export_joint_graph` imports torch when it runs.
"""

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from lepton_components import onnx_graph
from lepton_components.batching import pad_ids, sorted_batches

INFERENCE_BATCH_SIZE = 64
# The graph's outputs, in order; the last exists only with a tag head.
OUTPUT_NAMES = ("intent_probabilities", "sentence_vectors", "tag_probabilities")
OUTPUT_AXES = {
    "intent_probabilities": {0: "batch"},
    "sentence_vectors": {0: "batch"},
    "tag_probabilities": {0: "batch", 1: "pieces"},
}


class JointPredictions(NamedTuple):
    """Per window, in input order."""

    intent_probabilities: np.ndarray  # (windows, intents)
    tag_probabilities: Optional[List[np.ndarray]]  # (pieces, tags) each; None without a tag head
    sentence_vectors: np.ndarray  # (windows, hidden), unit length, float32


BatchRunner = Callable[[np.ndarray, np.ndarray], List[np.ndarray]]


def predict_in_batches(run: BatchRunner, token_ids: Sequence[List[int]], pad_token_id: int) -> JointPredictions:
    """`run(input_ids, attention_mask)`'s outputs (OUTPUT_NAMES order) for every window.

    Batches hold up to 64 windows of similar length, so the windows of one message (at
    most `max_windows`) and of a few messages share one pass.
    """
    count = len(token_ids)
    intents: Optional[np.ndarray] = None
    vectors: Optional[np.ndarray] = None
    tags: Dict[int, np.ndarray] = {}
    for batch in sorted_batches([len(ids) for ids in token_ids], INFERENCE_BATCH_SIZE):
        outputs = run(*pad_ids([token_ids[i] for i in batch], pad_token_id))
        if intents is None:
            intents = np.zeros((count, outputs[0].shape[1]), dtype=np.float32)
            vectors = np.zeros((count, outputs[1].shape[1]), dtype=np.float32)
        intents[batch] = outputs[0]
        vectors[batch] = outputs[1]
        if len(outputs) > 2:
            for row, index in enumerate(batch):
                tags[index] = outputs[2][row, : len(token_ids[index])]
    return JointPredictions(intents, [tags[index] for index in range(count)] if tags else None, vectors)


def export_joint_graph(model: Any, int8: bool) -> bytes:
    """The ONNX graph of `model`'s `ServingOutputs` (LoRA merged first), int8 if asked."""
    from lepton_components.joint.joint_model import ServingOutputs

    names = OUTPUT_NAMES if model.has_tagger else OUTPUT_NAMES[:2]
    return onnx_graph.export_graph(ServingOutputs(model), {name: OUTPUT_AXES[name] for name in names}, int8)


class JointGraph:
    """The stored graph in an ONNX Runtime session: `predict` as `joint_model.predict` does."""

    def __init__(self, graph: bytes, pad_token_id: int, num_threads: Optional[int]) -> None:
        self.session = onnx_graph.open_session(graph, num_threads)
        self._pad_token_id = pad_token_id
        self._outputs = [output.name for output in self.session.get_outputs()]
        if tuple(self._outputs) not in (OUTPUT_NAMES, OUTPUT_NAMES[:2]):
            raise ValueError(f"the serving graph's outputs are {self._outputs}, expected {list(OUTPUT_NAMES)}")

    @property
    def has_tagger(self) -> bool:
        return len(self._outputs) == len(OUTPUT_NAMES)

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> List[np.ndarray]:
        return self.session.run(self._outputs, {"input_ids": input_ids, "attention_mask": attention_mask})

    def predict(self, token_ids: Sequence[List[int]]) -> JointPredictions:
        return predict_in_batches(self._run, token_ids, self._pad_token_id)
