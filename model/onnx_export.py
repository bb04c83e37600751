"""Export the generator to ONNX: one cached step graph (`LazyDecoder.extend`) per level.

genrec export-onnx --bundle artifacts/bundles/ml-100k

The graphs come from the same `LazyDecoder.extend` the eager path runs, so the two backends
cannot drift apart unnoticed: `tests/model/test_onnx.py` checks they return the same beams.
One graph per level because each level has its own output head (vocabulary size) and a
different cache length. The context needs no graph: the cached path gathers it from a
per-item table (`model.decoding.ItemContext`).

Exporting takes ~10-25 s on two busy cores, too slow to repeat at every start, so a bundle
may carry its graphs under `onnx/`: checksummed in the manifest like every other file, and
tied to the weights they came from (`onnx.model_sha256`); graphs of other weights are ignored.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.export import Dim

from model.bundle import MANIFEST, Bundle, load_bundle, read_manifest, sha256
from model.extras import require
from model.lazy_decoder import LazyDecoder

log = logging.getLogger(__name__)

OPSET = 18
ONNX_DIR = "onnx"
WEIGHTS = "model.safetensors"
STEP_INPUTS = ["ctx_k", "ctx_v", "ctx_bias", "cache", "last"]
STEP_OUTPUTS = ["log_probs", "cache_out", "hidden"]


def level_graph(level: int) -> str:
    return f"level{level}"


def graph_names(n_levels: int) -> list[str]:
    return [level_graph(level) for level in range(n_levels)]


class _FirstLevel(nn.Module):
    """Level 0 has no cache yet: its newest (only) token is BOS."""

    def __init__(self, model: LazyDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, last: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.extend(ctx_k, ctx_v, ctx_bias, None, last)


class _Level(nn.Module):
    def __init__(self, model: LazyDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, ctx_k: Tensor, ctx_v: Tensor, ctx_bias: Tensor, cache: Tensor, last: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        return self.model.extend(ctx_k, ctx_v, ctx_bias, cache, last)


def _export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    names: tuple[list[str], list[str]],
    dynamic: tuple[dict[int, Dim], ...],
) -> bytes:
    for name in ("onnx", "onnxscript"):  # torch.onnx's exporter imports them lazily
        require(name, "onnx", "ONNX export")
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)  # the optimizer logs every rewrite at INFO
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (renamed axes, deprecations)
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            input_names=names[0],
            output_names=names[1],
            dynamic_shapes=dynamic,
            opset_version=OPSET,
            verbose=False,
        )
    for q, level in zip(quiet, levels, strict=True):
        q.setLevel(level)
    assert program is not None
    return program.model_proto.SerializeToString()


@torch.inference_mode(False)
def export_onnx(model: LazyDecoder) -> dict[str, bytes]:
    """Graph name → serialized ONNX model, for `level0` … `level{L-1}`.

    Batch (B), history length (T) and beam (W) stay dynamic; the example shapes below only
    have to be distinct so the exporter does not tie them together.
    """
    start = time.perf_counter()
    model = model.eval()
    cfg = model.cfg
    Hkv, H, D, L = cfg.n_kv_heads, cfg.n_heads, cfg.head_dim, cfg.n_levels
    B, T, W = 2, 5, 3
    Bd, Td, Wd, BWd = Dim("B"), Dim("T"), Dim("W"), Dim("BW")
    graphs = {}
    ctx_k, ctx_v = torch.zeros(B, Hkv, T, D), torch.zeros(B, Hkv, T, D)
    ctx_bias = torch.zeros(B, Hkv, 1, T)
    ctx_dims = ({0: Bd, 2: Td}, {0: Bd, 2: Td}, {0: Bd, 3: Td})
    first = torch.zeros(B, 1, dtype=torch.long)
    graphs[level_graph(0)] = _export(
        _FirstLevel(model),
        (ctx_k, ctx_v, ctx_bias, first),
        ([n for n in STEP_INPUTS if n != "cache"], STEP_OUTPUTS),
        (*ctx_dims, {0: Bd}),
    )
    last = torch.zeros(B, W, dtype=torch.long)
    for level in range(1, L):
        cache = torch.zeros(cfg.n_layers, 2, B * W, H, level, D)
        graphs[level_graph(level)] = _export(
            _Level(model),
            (ctx_k, ctx_v, ctx_bias, cache, last),
            (STEP_INPUTS, STEP_OUTPUTS),
            (*ctx_dims, {2: BWd}, {0: Bd, 1: Wd}),
        )
    log.info("onnx_exported graphs=%d seconds=%.1f", len(graphs), time.perf_counter() - start)
    return graphs


def bundle_onnx(bundle: Bundle) -> dict[str, bytes] | None:
    """The graphs a bundle carries for exactly its weights, or None.

    Their checksums were verified with the rest of the bundle by `load_bundle`.
    """
    meta = bundle.manifest.get("onnx")
    if not meta or meta.get("model_sha256") != bundle.manifest["files"].get(WEIGHTS):
        return None
    names = graph_names(bundle.model.cfg.n_levels)
    if sorted(meta.get("graphs", {})) != sorted(names) or meta.get("outputs") != STEP_OUTPUTS:
        return None  # graphs of an older `extend` (before its hidden output) are exported anew
    return {name: (bundle.path / meta["graphs"][name]).read_bytes() for name in names}


def add_onnx_to_bundle(path: Path) -> Path:
    """Export the bundle's model and add the graphs to it, atomically: the bundle is copied
    next to itself, completed, and renamed into place."""
    path = Path(path).resolve()
    manifest = read_manifest(path)
    graphs = export_onnx(load_bundle(path).model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        shutil.copytree(path, tmp, dirs_exist_ok=True)
        shutil.rmtree(tmp / ONNX_DIR, ignore_errors=True)
        (tmp / ONNX_DIR).mkdir()
        files = {n: d for n, d in manifest["files"].items() if not n.startswith(f"{ONNX_DIR}/")}
        rel = {name: f"{ONNX_DIR}/{name}.onnx" for name in graphs}
        for name, data in graphs.items():
            (tmp / rel[name]).write_bytes(data)
            files[rel[name]] = sha256(tmp / rel[name])
        manifest["files"] = files
        manifest["onnx"] = {
            "opset": OPSET,
            "torch": torch.__version__,
            "model_sha256": files[WEIGHTS],
            "graphs": rel,
            "outputs": STEP_OUTPUTS,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        os.chmod(tmp, 0o755)
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("onnx_added bundle=%s graphs=%d", path, len(graphs))
    return path
