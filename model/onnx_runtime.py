"""The cached step on ONNX Runtime: a `Runner` over the graphs of `onnx_export`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from model.decoding import Context
from model.extras import require
from model.onnx_export import level_graph


def _ort() -> Any:
    return require("onnxruntime", "onnx", "GENREC_BACKEND=onnx")


def session_options(threads: int) -> Any:
    """Sequential, `threads` intra-op threads that sleep when idle: on a small shared machine
    spinning workers steal the cores the HTTP loop and other processes need."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class OnnxRunner:
    """Runs `extend` as one ONNX Runtime session per level (CPU); tensors cross as zero-copy
    numpy views."""

    def __init__(self, graphs: dict[str, bytes], n_levels: int, threads: int = 1) -> None:
        ort, so = _ort(), session_options(threads)
        providers = ["CPUExecutionProvider"]
        self.levels = [
            ort.InferenceSession(graphs[level_graph(level)], so, providers=providers)
            for level in range(n_levels)
        ]

    def extend(
        self, ctx: Context, cache: Tensor | None, last: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        feeds: dict[str, np.ndarray] = {
            "ctx_k": ctx[0].numpy(),
            "ctx_v": ctx[1].numpy(),
            "ctx_bias": ctx[2].numpy(),
            "last": last.contiguous().numpy(),
        }
        level = 0
        if cache is not None:
            level = cache.shape[4]
            feeds["cache"] = cache.contiguous().numpy()
        log_probs, cache_out, hidden = self.levels[level].run(None, feeds)
        return torch.from_numpy(log_probs), torch.from_numpy(cache_out), torch.from_numpy(hidden)
