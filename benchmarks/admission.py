"""The admission budget's trade-off: overload, flood and a short soak at several values of
GENREC_ADMISSION_BUDGET_SHARE, each a `benchmarks/reliability.py` run with its own result file.

    python benchmarks/admission.py [--shares 0.5,0.65,0.8] [--soak-minutes 3]   # ~5 min a share

A lower share sheds overload sooner and faster (shed p99 at 3x capacity); a higher one admits
more of an ordinary burst (shed share in the soak at 70% of saturation). Writes
benchmarks/results/admission.md and admission/share-<share>.{json,md} (0.65: share-0_65).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def row(share: str, r: dict) -> str:
    o, f, soak = r["overload"], r["flood"], r["soak"]
    answered = sum(m["answered_200"] for m in soak["minutes"])
    shed = soak["shed_503"]
    return (
        f"| {share} | {o['static']['shed_p99_ms']:.1f} / {o['dynamic']['shed_p99_ms']:.1f} "
        f"| {o['static']['goodput']:.1%} / {o['dynamic']['goodput']:.1%} "
        f"| {o['static']['ok_p99_ms']:.1f} / {o['dynamic']['ok_p99_ms']:.1f} "
        f"| {f['default']['ok_p99_ms']:.1f} | {soak['rate']:.0f} "
        f"| {shed / max(1, shed + answered):.1%} "
        f"| {max(m['ok_p99_ms'] for m in soak['minutes']):.1f} "
        f"| `{o['provenance']['commit'][:10]}` |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shares", default="0.5,0.65,0.8")
    ap.add_argument("--soak-minutes", type=int, default=3)
    ap.add_argument("--bundle", type=Path, default=ROOT / "artifacts/bundles/ml-100k")
    args = ap.parse_args()
    rows = []
    for share in args.shares.split(","):
        out = RESULTS / "admission" / f"share-{share.replace('.', '_')}"  # not a suffix
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(ROOT / "benchmarks/reliability.py"), "--bundle", str(args.bundle),
             "--only", "overload,flood,soak", "--soak-minutes", str(args.soak_minutes),
             "--out", str(out)],
            env={**os.environ, "GENREC_ADMISSION_BUDGET_SHARE": share},
            check=True,
        )  # fmt: skip
        rows.append(row(share, json.loads(out.with_suffix(".json").read_text())))
    text = "\n".join(
        [
            "# Admission budget: overload vs ordinary bursts",
            "",
            f"`python benchmarks/admission.py --shares {args.shares} --soak-minutes "
            f"{args.soak_minutes}`: one `benchmarks/reliability.py` run per share "
            "(admission/share-<share>.md, with its commit and the host's load). Overload: open loop "
            "at 3x the static beam's saturation; flood: beam-256 at 3x theirs beside default "
            "requests at 20%; soak: open loop at 70% of the default server's saturation (as "
            "measured at that share). Single runs on a shared 2-core host: each soak runs at "
            "70% of its own saturation measurement, which varies from run to run, so compare "
            "soak shed shares only at similar rates.",
            "",
            "| GENREC_ADMISSION_BUDGET_SHARE | 3x overload shed p99 ms, static / dynamic | "
            "goodput static / dynamic | answered p99 ms static / dynamic | flood: default "
            "requests p99 ms | soak req/s | soak shed | soak worst-minute p99 ms | commit |",
            "|---:|---|---|---|---:|---:|---:|---:|---|",
            *rows,
            "",
        ]
    )
    (RESULTS / "admission.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
