"""The fine-tuned encoder served by ONNX Runtime instead of PyTorch, optionally int8.

On a CPU, one short message through a 6-layer encoder is dominated by per-operator
overhead and by reading weights from memory. ONNX Runtime runs the whole graph with
fused kernels, and its int8 kernels quantize weights per output channel (PyTorch's
dynamic quantization uses one scale per tensor), so int8 costs less accuracy. The
graph is exported from the loaded, LoRA-merged encoder when the model loads; nothing
new goes into the model archive, and the exported bytes never leave memory, so there
is no file a user could swap.
"""

import logging
import os
import tempfile
import warnings
from types import SimpleNamespace
from typing import Any, Optional, Text

import numpy as np
import torch

logger = logging.getLogger(__name__)

INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAME = "last_hidden_state"
# Opset 17 has LayerNormalization, which keeps the exported BERT graph small.
OPSET = 17


class _HiddenStates(torch.nn.Module):
    """The encoder as a function of (input_ids, attention_mask) alone, for tracing."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class OnnxRuntimeEncoder(torch.nn.Module):
    """Stands in for the transformer encoder: same call, same `last_hidden_state`."""

    def __init__(self, session: Any, config: Any, precision: Text) -> None:
        super().__init__()
        self.session = session
        self.precision = precision
        # The head and the entity tagger read sizes from the encoder's config.
        self.config = config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> SimpleNamespace:
        feeds = {
            "input_ids": input_ids.detach().cpu().numpy().astype(np.int64),
            "attention_mask": attention_mask.detach().cpu().numpy().astype(np.int64),
        }
        (hidden,) = self.session.run([OUTPUT_NAME], feeds)
        return SimpleNamespace(last_hidden_state=torch.from_numpy(hidden))


def _export(encoder: torch.nn.Module, path: Text) -> None:
    example = torch.ones((1, 4), dtype=torch.long)
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter warns about its own deprecation and about index ops on
        # negative indices, which BERT does not use.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _HiddenStates(encoder).eval(),
            (example, torch.ones_like(example)),
            path,
            input_names=INPUT_NAMES,
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch", 1: "pieces"} for name in [*INPUT_NAMES, OUTPUT_NAME]},
            opset_version=OPSET,
            dynamo=False,
        )


def onnx_runtime_encoder(encoder: torch.nn.Module, int8: bool, num_threads: Optional[int]) -> OnnxRuntimeEncoder:
    """Exports `encoder` (LoRA already merged) and opens it in an ONNX Runtime session."""
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="lepton-onnx-") as folder:
        path = os.path.join(folder, "encoder.onnx")
        _export(encoder, path)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = os.path.join(folder, "encoder.int8.onnx")
            quantize_dynamic(path, quantized, weight_type=QuantType.QInt8, per_channel=True)
            path = quantized
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or 0  # 0: one per physical core
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # The session reads the graph into memory; the temporary file goes right after.
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    logger.debug(f"Encoder served by ONNX Runtime ({'int8' if int8 else 'fp32'}).")
    return OnnxRuntimeEncoder(session, getattr(encoder, "config", None), "int8" if int8 else "fp32")
