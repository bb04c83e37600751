"""The bundle store: versions are immutable, `current` switches atomically, crashes leave it intact."""

import os
import signal
import subprocess
import sys

import pytest

from model.bundle import BundleError, load_bundle, read_manifest
from pipeline.publish import BundleStore, StoreBusy
from tests.bundles import copy_as_version


@pytest.fixture
def store(tmp_path):
    return BundleStore(tmp_path / "store")


def test_publish_adds_a_version_and_points_current_at_it(store, tiny_bundle):
    version = store.publish(tiny_bundle)
    assert store.versions() == [version] and store.current_version() == version
    assert os.readlink(store.current) == f"versions/{version}"  # relative: mountable anywhere
    assert load_bundle(store.current).version == version
    assert load_bundle(store.current).path == store.path(version).resolve()


def test_publishing_again_switches_current_and_keeps_the_old_version(store, tiny_bundle, tmp_path):
    first = store.publish(tiny_bundle)
    second = store.publish(copy_as_version(tiny_bundle, tmp_path / "b2", "29990101T000000000000Z"))
    assert store.versions() == [first, second] and store.current_version() == second
    store.switch(first)  # a rollback is a switch
    assert store.current_version() == first


def test_republishing_the_same_version_is_a_no_op(store, tiny_bundle):
    assert store.publish(tiny_bundle) == store.publish(tiny_bundle)
    assert len(store.versions()) == 1


def test_a_bundle_with_bad_checksums_is_never_published(store, tiny_bundle, tmp_path):
    good = store.publish(tiny_bundle)
    bad = copy_as_version(tiny_bundle, tmp_path / "bad", "29990101T000000000000Z")
    with (bad / "catalog.json").open("a") as f:
        f.write(" ")
    with pytest.raises(BundleError, match="checksum"):
        store.publish(bad)
    assert store.current_version() == good and store.versions() == [good]


CRASH = """
import os, shutil, signal, sys
from pathlib import Path
from pipeline.publish import BundleStore

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: like an OOM kill

store = BundleStore(Path(sys.argv[1]))
if sys.argv[3] == "switch":
    store.switch = die  # dies right after the new version was added, before the switch
else:  # dies in the middle of copying the bundle into the store
    copytree = shutil.copytree

    def copy(src, dst, **kw):
        return die() if str(src).endswith("model.safetensors") else shutil.copy2(src, dst, **kw)

    shutil.copytree = lambda src, dst, **kw: copytree(src, dst, copy_function=copy, **kw)
store.publish(Path(sys.argv[2]))
"""


@pytest.mark.parametrize("point", ["switch", "copy"])
def test_a_publish_killed_midway_leaves_current_serving_and_a_rerun_works(
    store, tiny_bundle, tmp_path, point
):
    """A real process, SIGKILLed at the point: before the switch or during the copy."""
    good = store.publish(tiny_bundle)
    new = copy_as_version(tiny_bundle, tmp_path / "b2", "29990101T000000000000Z")
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(store.root), str(new), point],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert store.current_version() == good
    load_bundle(store.current)  # still whole and verified
    if point == "switch":
        assert store.versions() == [good, "29990101T000000000000Z"]
        read_manifest(store.path("29990101T000000000000Z"))  # added whole, just not served
    else:
        assert store.versions() == [good]  # the partial copy is hidden in a temp dir
    store.prune(keep=5)  # what the next retrain does first
    assert not [p for p in store.versions_dir.iterdir() if p.name.startswith(".")]
    assert store.publish(new) == "29990101T000000000000Z" == store.current_version()


def test_prune_keeps_the_newest_and_never_removes_current(store, tiny_bundle, tmp_path):
    names = [f"2999010{i}T000000000000Z" for i in range(1, 5)]
    for i, name in enumerate(names):
        store.add(copy_as_version(tiny_bundle, tmp_path / f"b{i}", name))
    store.switch(names[0])
    (store.staging_dir / "crashed").mkdir(parents=True)
    removed = store.prune(keep=2)
    assert sorted(removed) == names[1:2]
    assert store.versions() == [names[0], *names[2:]] and store.current_version() == names[0]
    assert not store.staging_dir.exists()


def test_only_one_writer_holds_the_lock(store):
    with store.lock(), pytest.raises(StoreBusy), store.lock():
        pass
    with store.lock():  # released again
        pass
