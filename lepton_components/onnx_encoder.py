"""A fine-tuned encoder served by ONNX Runtime instead of PyTorch, optionally int8.

For BertIntentClassifier and BertEntityExtractor, whose heads stay in PyTorch: the graph is
exported from the loaded, LoRA-merged encoder when the model loads (`onnx_graph`), and the
exported bytes never leave memory. JointNluComponent instead stores its whole graph, heads
included, at training time and serves it without torch (`joint.joint_graph`).
"""

import logging
from types import SimpleNamespace
from typing import Any, Optional, Text

import numpy as np
import torch

from lepton_components import onnx_graph

logger = logging.getLogger(__name__)

OUTPUT_NAME = "last_hidden_state"


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


def onnx_runtime_encoder(encoder: torch.nn.Module, int8: bool, num_threads: Optional[int]) -> OnnxRuntimeEncoder:
    """Exports `encoder` (LoRA already merged) and opens it in an ONNX Runtime session."""
    graph = onnx_graph.export_graph(_HiddenStates(encoder), {OUTPUT_NAME: dict(onnx_graph.INPUT_AXES)}, int8)
    session = onnx_graph.open_session(graph, num_threads)
    logger.debug(f"Encoder served by ONNX Runtime ({'int8' if int8 else 'fp32'}).")
    return OnnxRuntimeEncoder(session, getattr(encoder, "config", None), "int8" if int8 else "fp32")
