"""Hot reload in process: version switches, no-ops, refusals, the API key, polling."""

import json
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model.bundle import load_bundle, sha256
from pipeline.publish import BundleStore
from service.app import create_app
from service.settings import Settings
from tests.bundles import copy_as_version

AUTH = {"X-API-Key": "k"}
V2 = "29990101T000000000000Z"


@pytest.fixture
def store(tmp_path, tiny_bundle):
    store = BundleStore(tmp_path / "store")
    store.publish(tiny_bundle)
    store.add(copy_as_version(tiny_bundle, tmp_path / "v2", V2))
    return store


def serve(store, tmp_path, **settings):
    app = create_app(
        Settings(bundle=store.current, redis_dir=tmp_path / "redis", api_key="k", **settings)
    )
    return TestClient(app)


def served_version(client):
    body = client.post("/v1/recommend", json={"history": ["i1", "i2"], "k": 3}).json()
    return body["model_version"]


def test_reload_serves_the_newly_published_version(store, tmp_path, tiny_bundle):
    old = load_bundle(tiny_bundle).version
    with serve(store, tmp_path) as client:
        assert served_version(client) == old
        store.switch(V2)
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json() == {"reloaded": True, "model_version": V2, "previous_version": old}
        assert served_version(client) == V2
        assert client.get("/readyz").json()["model_version"] == V2
        again = client.post("/admin/reload", headers=AUTH).json()
        assert again == {"reloaded": False, "model_version": V2, "previous_version": V2}


def bad_checksum(bundle: Path) -> None:
    with (bundle / "catalog.json").open("a") as f:
        f.write(" ")


def manifest_omits_the_model(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["files"]["model.safetensors"]  # the file is there, unchecked
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def truncated_safetensors(bundle: Path) -> None:
    """Cut in half, with a checksum that matches the cut file (a writer that died midway)."""
    model = bundle / "model.safetensors"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["model.safetensors"] = sha256(model)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("corrupt", "why"),
    [
        (bad_checksum, "checksum"),
        (manifest_omits_the_model, "model.safetensors"),
        (truncated_safetensors, "refused"),
    ],
)
def test_a_corrupt_bundle_is_refused_and_the_old_one_keeps_serving(
    store, tmp_path, tiny_bundle, corrupt, why
):
    old = load_bundle(tiny_bundle).version
    with serve(store, tmp_path, model_process=False) as client:  # refused before any child
        corrupt(store.path(V2))  # on disk; point `current` at it by hand (switch would refuse)
        os.unlink(store.current)
        os.symlink(f"versions/{V2}", store.current)
        r = client.post("/admin/reload", headers=AUTH)
        assert r.status_code == 409 and why in r.json()["detail"], r.text
        assert served_version(client) == old
        assert client.get("/readyz").json()["model_version"] == old


def test_reload_needs_the_api_key(store, tmp_path):
    with serve(store, tmp_path) as client:
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"X-API-Key": "no"}).status_code == 401


def test_polling_picks_up_a_publish(store, tmp_path):
    with serve(store, tmp_path, reload_poll_s=0.05) as client:
        store.switch(V2)
        deadline = time.monotonic() + 10
        while served_version(client) != V2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served_version(client) == V2
