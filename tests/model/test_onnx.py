"""ONNX Runtime runs the exported graphs to the same beams as PyTorch eager; a bundle carries
its graphs checksummed and tied to its weights."""

import json
import shutil

import numpy as np
import pytest
import torch

from model.bundle import BundleError, load_bundle
from model.decoding import Decoding
from model.onnx_export import bundle_onnx, graph_names
from model.onnx_runtime import OnnxRunner
from model.recommender import Recommender


@pytest.fixture(scope="module")
def bundle(tiny_onnx_bundle):
    return load_bundle(tiny_onnx_bundle)


@pytest.fixture(scope="module")
def runner(bundle):
    graphs = bundle_onnx(bundle)
    assert graphs is not None and sorted(graphs) == sorted(graph_names(bundle.model.cfg.n_levels))
    return OnnxRunner(graphs, bundle.model.cfg.n_levels)


def test_onnx_returns_the_eager_beams(bundle, runner):
    eager = Recommender(bundle.model, bundle.semantic_ids.codes)
    onnx = Recommender(bundle.model, bundle.semantic_ids.codes, runner=runner)
    naive = Recommender(bundle.model, bundle.semantic_ids.codes, decoding=Decoding.naive)
    rng = np.random.default_rng(0)
    histories = [rng.choice(len(bundle.catalog), size=n, replace=False) for n in (1, 7, 30, 80)]
    for width in (8, 32):
        widths = eager.widths(width, k=5)
        a = eager.search(histories, widths, histories)
        b = onnx.search(histories, widths, histories)
        c = naive.search(histories, widths, histories)
        for other in (b, c):
            assert a.nodes.tolist() == other.nodes.tolist()
            live = a.scores > float("-inf")
            assert torch.allclose(a.scores[live], other.scores[live], atol=1e-4)


def test_bundle_graphs_are_checksummed(tiny_onnx_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_onnx_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert set(manifest["onnx"]["graphs"].values()) <= set(manifest["files"])
    graph = copy / manifest["onnx"]["graphs"]["level0"]
    graph.write_bytes(graph.read_bytes()[:-1] + b"\0")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(copy)


def test_graphs_of_other_weights_are_ignored(tiny_onnx_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(tiny_onnx_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["onnx"]["model_sha256"] = "0" * 64  # exported from different weights
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert bundle_onnx(load_bundle(copy)) is None
