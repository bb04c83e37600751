"""Scale-out training on ml-100k: one process vs `torchrun --nproc-per-node 2`, time and quality.

    python benchmarks/distributed.py [--epochs 3] [--data-dir data]

Runs the same `python -m pipeline.cli train` command twice — alone (torch's default threads) and
under torchrun with 2 processes (one OpenMP thread each, torchrun's default) — then writes
benchmarks/results/distributed.json and .md with wall and training seconds, test metrics of
both bundles and the largest weight difference. Both runs set OMP_WAIT_POLICY=PASSIVE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import provenance  # noqa: E402


def run(cmd: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    return round(time.monotonic() - started, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data")
    ap.add_argument("--render", action="store_true", help="Only rewrite the .md from the .json.")
    args = ap.parse_args()
    if args.render:
        result = json.loads((RESULTS / "distributed.json").read_text())
        (RESULTS / "distributed.md").write_text(markdown(result))
        return
    sys.path.insert(0, str(ROOT))
    from safetensors.torch import load_file

    from model.bundle import read_manifest

    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "GENREC_DATA_DIR": str(args.data_dir)}
    train = ["-m", "pipeline.cli", "train", "--dataset", "ml-100k", "--epochs", str(args.epochs)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    out: dict[str, dict] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "1 process": [sys.executable, *train, "--out", f"{tmp}/one"],
            "2 processes (torchrun)": [
                *torchrun,
                "--nproc-per-node",
                "2",
                *train,
                "--out",
                f"{tmp}/two",
            ],
        }
        for name, cmd in runs.items():
            wall = run(cmd, env)
            bundle = Path(cmd[-1])
            manifest = read_manifest(bundle)
            out[name] = {
                "command": " ".join(["python" if c == sys.executable else c for c in cmd[:-2]]),
                "wall_seconds": wall,
                "train_seconds": manifest["training"]["seconds"],
                "epochs": len(manifest["training"]["curve"]),
                "valid_ndcg@10": [p["valid_ndcg@10"] for p in manifest["training"]["curve"]],
                "test": manifest["metrics"]["genrec"],
            }
        a, b = load_file(f"{tmp}/one/model.safetensors"), load_file(f"{tmp}/two/model.safetensors")
        max_diff = max((a[k] - b[k]).abs().max().item() for k in a)
    one, two = out["1 process"], out["2 processes (torchrun)"]
    result = {
        "dataset": "ml-100k",
        "epochs": args.epochs,
        "runs": out,
        "speedup_train": round(one["train_seconds"] / two["train_seconds"], 2),
        "test_ndcg@10_difference": round(two["test"]["ndcg@10"] - one["test"]["ndcg@10"], 4),
        "max_weight_difference": max_diff,
        "provenance": provenance(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "distributed.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {name} | {r['wall_seconds']} | {r['train_seconds']} | {r['test']['recall@10']:.4f} "
        f"| {r['test']['ndcg@10']:.4f} | {r['valid_ndcg@10'][-1]:.4f} |"
        for name, r in result["runs"].items()
    )
    machine = result["machine"]
    return f"""# Scale-out training on ml-100k: 1 process vs torchrun with 2

{result["epochs"]} epochs of the default `small` generator, same seed, on a {machine["cpus"]}-core
machine shared with other jobs (load average {machine["load_average_before"][0]} before,
{machine["load_average_after"][0]} after), so times are indicative. The 2-process run shards
every step's batch across ranks and averages gradients (gloo), so it takes the same optimizer
steps, on the same gradient estimate, as one process.

| run | wall s | train s | test recall@10 | test ndcg@10 | last valid ndcg@10 |
|---|---|---|---|---|---|
{rows}

Training speed-up: {result["speedup_train"]}x. Test NDCG@10 difference (2 − 1):
{result["test_ndcg@10_difference"]:+.4f}. The weights are not bitwise equal (largest difference
{result["max_weight_difference"]:.2e}): the `small` preset uses dropout 0.1 and each rank draws
its own masks. Without dropout (the `tiny` preset) 2 processes reproduce the 1-process weights
to < 1e-4: `tests/pipeline/test_distributed.py`.

Regenerate: `python benchmarks/distributed.py --epochs {result["epochs"]}`
"""


if __name__ == "__main__":
    main()
