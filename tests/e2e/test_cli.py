"""The `genrec` command line, as a user runs it."""

import json
import subprocess
import sys

from click.testing import Result
from typer.testing import CliRunner

from pipeline.cli import app


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


def cli(*args: str) -> Result:
    """The same command in this process (no interpreter start-up): for the many small cases."""
    return CliRunner().invoke(app, list(args))


def test_info_shows_a_bundle_and_its_json_has_the_request_cost(tiny_bundle):
    text = genrec("info", "--bundle", str(tiny_bundle))
    assert text.returncode == 0, text.stderr
    for fact in ("version", "120 items", "150 users", "NDCG@10", "GFLOPs per request"):
        assert fact in text.stdout
    assert any(c in text.stdout for c in "▁▂▃▄▅▆▇█")  # the training curve
    run = cli("info", "--bundle", str(tiny_bundle), "--json")
    info = json.loads(run.stdout)
    assert info["sizes"]["items"] == 120 and info["training"]["epochs"] == 4
    assert info["gflops_per_request"] > 0
    assert info["flops_shape"] == {
        "beam_width": 64,
        "history": 50,
        "k": 10,
        "widths": [8, 32, 64, 64],
    }


def one_line_failure(run: subprocess.CompletedProcess | Result, says: str) -> None:
    code = run.returncode if isinstance(run, subprocess.CompletedProcess) else run.exit_code
    if isinstance(run, Result):  # an exception escaping the command would be a traceback
        assert run.exception is None or isinstance(run.exception, SystemExit), run.exception
    lines = run.stderr.strip().splitlines()
    assert code != 0 and len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr and says in lines[0], run.stderr


def test_recommend_and_info_fail_in_one_line(tiny_bundle, tmp_path):
    b = str(tiny_bundle)
    one_line_failure(cli("recommend", "--bundle", b, "--user", "nobody"), "no history")
    one_line_failure(cli("recommend", "--bundle", b, "--history", "i1,zzz"), "unknown item")
    one_line_failure(cli("info", "--bundle", str(tmp_path)), "manifest.json")


def test_data_import_writes_the_tables_train_reads(tmp_path):
    from tests.pipeline.test_importers import RATINGS, dat_zip

    zipped = dat_zip(tmp_path / "ml-1m.zip", "ml-1m", "latin-1")
    run = genrec("data", "import", str(zipped), "--data-dir", str(tmp_path / "data"))
    assert run.returncode == 0, run.stderr
    out = tmp_path / "data" / "ml-1m"
    assert f"{len(RATINGS)} interactions" in run.stdout
    assert (
        f"--interactions {out / 'interactions.parquet'} --items {out / 'items.parquet'}"
        in run.stdout
    )
    one_line_failure(genrec("data", "import", str(tmp_path / "nope.zip")), "no such file")


def test_data_import_and_train_fail_in_one_line_on_bad_files(tmp_path):
    from tests.pipeline.test_importers import bad_inputs

    for path, says in bad_inputs(tmp_path).values():
        one_line_failure(cli("data", "import", str(path)), says)
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item\n1,2\n")
    one_line_failure(
        cli("train", "--interactions", str(bad), "--out", str(tmp_path / "b")),
        "missing column(s) user_id, item_id, timestamp",
    )
