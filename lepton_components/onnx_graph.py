"""Trained torch modules as ONNX Runtime graphs: export, int8 quantization, storage, sessions.

On a CPU, one short message through a 6-layer encoder is dominated by per-operator
overhead and by reading weights from memory. ONNX Runtime runs the whole graph with fused
kernels, and its int8 kernels quantize weights per output channel (PyTorch's dynamic
quantization uses one scale per tensor), so int8 costs less accuracy.

A graph stored in a model archive is split the way the archive's rule wants it: the graph
itself as JSON (protobuf's JSON form of the ONNX model, weights left out) and every weight
as a safetensors tensor, so a swapped archive can make the server compute garbage but never
run code. Reading it back needs `onnx` and `onnxruntime` only, not torch.
"""

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Text

logger = logging.getLogger(__name__)

INPUT_NAMES = ["input_ids", "attention_mask"]
# Opset 17 has LayerNormalization, which keeps the exported BERT graph small.
OPSET = 17
GRAPH_FILE = "serving_graph.json"
WEIGHTS_FILE = "serving_graph.safetensors"
# Axes of the inputs that change from call to call.
INPUT_AXES = {0: "batch", 1: "pieces"}


def export_graph(module: Any, output_axes: Dict[Text, Dict[int, Text]], int8: bool) -> bytes:
    """The ONNX model of `module(input_ids, attention_mask)` (outputs named as `output_axes`
    says, in its order, with their variable axes), int8 weights if asked, as bytes."""
    import torch

    # Traced where the module lives (a model trained on a GPU exports from there).
    device = next(module.parameters()).device
    example = torch.ones((1, 4), dtype=torch.long, device=device)
    with tempfile.TemporaryDirectory(prefix="lepton-onnx-") as folder:
        path = os.path.join(folder, "graph.onnx")
        with warnings.catch_warnings(), torch.no_grad():
            # The legacy exporter warns about its own deprecation and about index ops on
            # negative indices, which BERT does not use.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (example, torch.ones_like(example)),
                path,
                input_names=INPUT_NAMES,
                output_names=list(output_axes),
                dynamic_axes={**{name: INPUT_AXES for name in INPUT_NAMES}, **output_axes},
                opset_version=OPSET,
                dynamo=False,
            )
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = os.path.join(folder, "graph.int8.onnx")
            quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, per_channel=True)
            path = quantized
        return Path(path).read_bytes()


def open_session(graph: bytes, num_threads: Optional[int]) -> Any:
    """An ONNX Runtime CPU session over `graph`; `num_threads` 0 or None: one per physical core."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads or 0
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def save_graph(graph: bytes, directory: Path) -> None:
    """Writes `graph` as GRAPH_FILE (JSON, no weights) plus WEIGHTS_FILE (safetensors)."""
    import onnx
    from google.protobuf import json_format
    from onnx import numpy_helper
    from safetensors.numpy import save_file

    model = onnx.load_from_string(graph)
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    del model.graph.initializer[:]
    save_file(weights, str(directory / WEIGHTS_FILE))
    (directory / GRAPH_FILE).write_text(json_format.MessageToJson(model), encoding="utf-8")


def load_graph(directory: Path) -> bytes:
    """The graph `save_graph` wrote, as ONNX bytes for `open_session`.

    Raises FileNotFoundError for an archive without one and a parse error for a damaged
    one; ONNX Runtime refuses weights that do not fit the graph when the session opens."""
    import onnx
    from google.protobuf import json_format
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    model = json_format.Parse((directory / GRAPH_FILE).read_text(encoding="utf-8"), onnx.ModelProto())
    weights = load_file(str(directory / WEIGHTS_FILE))
    model.graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in weights.items())
    return model.SerializeToString()
