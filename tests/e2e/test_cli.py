"""The `genrec` command line, as a user runs it."""

import json
import subprocess
import sys


def genrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_evaluate_prints_genrec_and_popularity_metrics(tiny_bundle):
    run = genrec("evaluate", "--bundle", str(tiny_bundle), "--beam-width", "32")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    keys = {f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)}
    assert keys <= set(result) and keys == set(result["pop"])
    assert result["ndcg@10"] > result["pop"]["ndcg@10"]


def test_train_needs_exactly_one_data_source(tmp_path):
    run = genrec("train", "--out", str(tmp_path / "b"))
    assert run.returncode != 0 and "exactly one" in run.stderr


def test_data_fetch_takes_the_dataset_name_as_an_argument(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    for f in ("ml-100k.inter", "ml-100k.item"):
        (tmp_path / "ml-100k" / f).write_text("x")  # present: fetch is a no-op
    run = genrec("data", "fetch", "ml-100k", "--data-dir", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "ml-100k")
