"""The bundle store: versions are immutable, `current` switches atomically, crashes leave it intact."""

import os

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


def test_a_crash_before_the_switch_leaves_current_unchanged(store, tiny_bundle, tmp_path):
    good = store.publish(tiny_bundle)
    new = store.add(copy_as_version(tiny_bundle, tmp_path / "b2", "29990101T000000000000Z"))
    # the process dies here, before switch(): the new version exists but is not served
    assert store.current_version() == good and new in store.versions()
    read_manifest(store.current)


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
