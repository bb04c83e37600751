"""`torchrun --nproc-per-node 2 -m pipeline.cli train …` trains the same model as one process."""

import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from model.bundle import read_manifest


def train_args(synthetic_files, out):
    inter, items = synthetic_files
    return [
        *("-m", "pipeline.cli", "train", "--interactions", str(inter), "--items", str(items)),
        *("--out", str(out), "--preset", "tiny", "--codebook-size", "8", "--epochs", "2"),
    ]


def run(cmd, **env):
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_under_torchrun_match_one_process(tmp_path, synthetic_files):
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    two = run([*torchrun, *train_args(synthetic_files, tmp_path / "two")])
    assert "world_size=2 backend=gloo" in two.stderr
    # torchrun gives each worker one OpenMP thread; so does the reference (same k-means path)
    run([sys.executable, *train_args(synthetic_files, tmp_path / "one")], OMP_NUM_THREADS="1")
    one_m, two_m = read_manifest(tmp_path / "one"), read_manifest(tmp_path / "two")
    a, b = (
        load_file(tmp_path / "one" / "model.safetensors"),
        load_file(tmp_path / "two" / "model.safetensors"),
    )
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    for p, q in zip(one_m["training"]["curve"], two_m["training"]["curve"], strict=True):
        assert p["valid_ndcg@10"] == pytest.approx(q["valid_ndcg@10"], abs=1e-6)
        assert p["train_loss"] == pytest.approx(q["train_loss"], rel=0.05)
    assert one_m["metrics"]["genrec"]["ndcg@10"] == pytest.approx(
        two_m["metrics"]["genrec"]["ndcg@10"], abs=1e-6
    )
