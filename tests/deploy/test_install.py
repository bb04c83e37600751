"""genrec installed the way users and the image install it (non-editable), then run from there.

CI installs `.[dev]` in editable mode, which proves nothing about a wheel: a subpackage left
out of pyproject.toml or a dependency that only a dev tool brings in is invisible to it. These
tests build fresh virtual environments outside the checkout:

- the image's install: the Dockerfile's own `make install …` line, run on a copy of exactly
  what the Dockerfile copies into its build stage; then train → evaluate → serve (the demo
  page, its static files and the offline API docs included) → recommend over HTTP → events →
  retrain → hot reload, all with that venv's `genrec`;
- the base install (`pip install .`, no extras): every module of the distribution imports.

Every command runs outside the checkout (so its folders cannot shadow the installed packages)
and with no GENREC_* from the developer's environment. They take a few minutes (two venvs).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from service.store import EmbeddedRedis
from tests.deploy.manifests import ROOT
from tests.deploy.test_docker import instructions, stages
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.stack import AUTH, post_new_events

IMPORT_EVERY_MODULE = """
import importlib, importlib.metadata as md, json
files = [str(f) for f in md.files("genrec")]
modules = sorted(f[:-3].replace("/", ".").removesuffix(".__init__") for f in files
                 if f.endswith(".py") and not f.startswith("../"))
failed = {}
for m in modules:
    try:
        importlib.import_module(m)
    except Exception as e:
        failed[m] = f"{type(e).__name__}: {e}"
top = md.distribution("genrec").read_text("top_level.txt").split()
print(json.dumps({"modules": modules, "failed": failed, "top_level": sorted(top)}))
"""


def run(cmd: list[str], cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    assert done.returncode == 0, f"{shlex.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def image_install_line() -> list[str]:
    """The Dockerfile's `make install …` words (the RUN line's first command)."""
    (line,) = [r for r in instructions(stages()[0], "RUN") if r.startswith("make install ")]
    return shlex.split(line.split("&&")[0])


def build_context(dest: Path) -> Path:
    """What the Dockerfile's build stage COPYs into /src, copied into `dest`."""
    dest.mkdir(parents=True)
    for copy in instructions(stages()[0], "COPY"):
        *sources, _target = copy.split()
        for src in sources:
            path = ROOT / src
            if path.is_dir():
                shutil.copytree(path, dest / src, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, dest / src)
    return dest


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory) -> Path:
    """A venv made by the image's own install line. `TORCH_INDEX` is left out: it names
    download.pytorch.org, which this network cannot reach; without it pip takes the same
    pinned CPU build, torch==2.13.0, from the local wheel."""
    tmp = tmp_path_factory.mktemp("image")
    src = build_context(tmp / "src")
    words = [w for w in image_install_line() if not w.startswith(("VENV=", "TORCH_INDEX="))]
    assert "EDITABLE=" in words and any(w.startswith("EXTRAS=") for w in words)
    run([*words, f"VENV={tmp / 'venv'}", f"PYTHON={sys.executable}"], cwd=src)
    return tmp / "venv"


def assert_serves_page_and_docs(c: httpx.Client) -> None:
    """The demo page's files are package data, and /docs' assets come from fastapi-offline: a
    non-editable install that left either out would serve a 404 or a page that loads nothing."""
    page = c.get("/")
    assert page.status_code == 200 and "<title>genrec demo</title>" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert f'"{asset}"' in page.text and c.get(asset).status_code == 200, asset
    docs = c.get("/docs")
    assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert c.get(f"/static-offline-docs/{asset}").status_code == 200, asset


def test_base_install_without_extras_imports_every_module(tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run([*pip, "torch==2.13.0"], cwd=tmp_path)
    run([*pip, str(build_context(tmp_path / "src"))], cwd=tmp_path)
    done = run([str(venv / "bin" / "python"), "-c", IMPORT_EVERY_MODULE], cwd=tmp_path)
    report = json.loads(done.stdout)
    assert report["failed"] == {}
    assert report["top_level"] == ["model", "pipeline", "service", "tokenizer"]
    assert {"service.app", "service.routes.recommend", "model.onnx_runtime"} <= set(
        report["modules"]
    )
    # an optional feature names the extra that brings it instead of a bare ModuleNotFoundError
    probe = "from model.onnx_runtime import OnnxRunner; OnnxRunner({}, 1)"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0 and "pip install 'genrec[onnx]'" in done.stderr


def test_image_install_trains_evaluates_serves_and_retrains(image_venv, synthetic_files, tmp_path):
    genrec = [str(image_venv / "bin" / "genrec")]
    inter, items = synthetic_files
    store = tmp_path / "store"
    run(
        [
            *genrec,
            *("train", "--store", str(store), "--interactions", str(inter), "--items", str(items)),
            *("--preset", "tiny", "--codebook-size", "8", "--epochs", "3"),
        ],
        cwd=tmp_path,
    )
    done = run(
        [*genrec, "evaluate", "--bundle", str(store / "current"), "--beam-width", "16"],
        cwd=tmp_path,
    )
    metrics = json.loads(done.stdout)
    assert metrics["ndcg@10"] > metrics["pop"]["ndcg@10"]

    with ExitStack() as cleanup:  # the Redis is closed even if the server fails to start
        redis_server = EmbeddedRedis(tmp_path / "redis")
        cleanup.callback(redis_server.close)
        redis_url = f"unix://{redis_server.socket}"
        proc, url = start_server(store / "current", tmp_path, genrec, GENREC_REDIS_URL=redis_url)
        cleanup.callback(stop_server, proc)
        with httpx.Client(base_url=url, timeout=30) as c:
            assert_serves_page_and_docs(c)
            first = c.post("/v1/recommend", json={"user_id": "u1", "k": 5})
            assert first.status_code == 200 and len(first.json()["items"]) == 5
            old = first.json()["model_version"]
            post_new_events(url)
            done = run(
                [
                    *genrec,
                    *("retrain", "--store", str(store), "--redis-url", redis_url),
                    *("--epochs", "1", "--beam-width", "16", "--tolerance", "1"),
                ],
                cwd=tmp_path,
            )
            summary = json.loads(done.stdout)
            assert summary["status"] == "published"
            reload = c.post("/admin/reload", headers=AUTH)
            assert reload.status_code == 200, reload.text
            assert reload.json()["model_version"] == summary["version"] != old
            after = c.post("/v1/recommend", json={"history": ["i1", "new0"], "k": 5})
            assert after.status_code == 200 and after.json()["model_version"] == summary["version"]
