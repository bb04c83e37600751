"""Retraining against a real Redis stream: the gate, the checkpoint, trimming, and crash safety."""

import asyncio
import json

import pandas as pd
import pytest
import redis

from model.bundle import load_bundle
from pipeline import retrain as retrain_module
from pipeline.events import EVENTS_FILE, read_events
from pipeline.publish import BundleStore
from pipeline.retrain import RetrainConfig, retrain
from service.key_layout import Keys
from service.store import HistoryStore, connect

FAST = RetrainConfig(epochs=2, warmup_steps=5, test_beam=32, tolerance=0.05)
KEY = Keys("genrec").events


def post_events(socket: str, events: list[tuple[str, str, int | None]]) -> None:
    """Append events exactly as the service does (histories + stream, one transaction)."""

    async def go():
        client = connect(None, socket, timeout_s=2.0)
        try:
            await HistoryStore(client, "genrec", 50).append(events)
        finally:
            await client.aclose()

    asyncio.run(go())


def new_events(n_users: int = 30) -> list[tuple[str, str, int | None]]:
    """Known users watch a new item (one per genre-ish group) then a known one; two new users."""
    events: list[tuple[str, str, int | None]] = []
    for u in range(n_users):
        t = 2_000_000 + 10 * u
        events += [(f"u{u}", f"new{u % 3}", t), (f"u{u}", f"i{(u * 7) % 120}", t + 1)]
    events += [("stranger", "i1", 2_100_000), ("stranger", "i2", 2_100_001)]
    events += [("stranger", "new0", 2_100_002), ("stranger2", "new1", 2_100_003)]
    return events


@pytest.fixture
def store(tmp_path, tiny_bundle):
    store = BundleStore(tmp_path / "store")
    store.publish(tiny_bundle)
    return store


@pytest.fixture
def client(embedded_redis):
    c = redis.Redis(unix_socket_path=embedded_redis.socket, decode_responses=True)
    yield c
    c.close()


def run(store, client, tiny_bundle, cfg=FAST):
    return retrain(store, client, tiny_bundle.parent, cfg)


def test_no_new_events_is_a_no_op(store, client, tiny_bundle):
    before = store.current_version()
    result = run(store, client, tiny_bundle)
    assert result.status == "no_new_events" and store.current_version() == before


def test_retrain_publishes_new_items_and_advances_the_checkpoint(
    store, client, embedded_redis, tiny_bundle
):
    old = load_bundle(store.current)
    events = new_events()
    post_events(embedded_redis.socket, events)
    result = run(store, client, tiny_bundle)
    assert result.status == "published", result.summary
    new = load_bundle(store.current)
    assert new.version == result.summary["version"] != old.version
    # new items are in the catalog with unique IDs; every existing ID is unchanged
    n_old = len(old.catalog)
    assert new.catalog.item_ids[:n_old] == old.catalog.item_ids
    assert set(new.catalog.item_ids[n_old:]) == {"new0", "new1", "new2"}
    assert (new.semantic_ids.codes[:n_old] == old.semantic_ids.codes).all()
    assert len({tuple(c) for c in new.semantic_ids.codes}) == len(new.catalog)
    assert new.model.cfg.n_items == len(new.catalog)
    # the summary is printed and in the manifest: events, new items/users, metrics, gate
    summary = new.manifest["retrain"]
    assert summary["events_consumed"] == len(events) and summary["new_items"] == 3
    assert summary["new_users"] == 2 and summary["gate"]["passed"] is True
    assert {"current", "candidate"} <= set(summary["metrics"])
    assert new.manifest["parent"] == old.version
    # the consumed events are in the bundle, the checkpoint is the last ID, the stream trimmed
    kept = pd.read_parquet(new.path / EVENTS_FILE)
    assert len(kept) == len(events) and new.manifest["stream"]["last_id"]
    assert client.xlen(KEY) == 0 and result.summary["trimmed"] == len(events)
    assert new.histories["stranger"] == ["i1", "i2", "new0"]
    # a rerun with nothing new is safe and changes nothing
    assert run(store, client, tiny_bundle).status == "no_new_events"
    assert store.current_version() == new.version


def test_a_second_retrain_reads_only_newer_events_and_keeps_the_earlier_ones(
    store, client, embedded_redis, tiny_bundle
):
    post_events(embedded_redis.socket, new_events())
    first = run(store, client, tiny_bundle)
    post_events(embedded_redis.socket, [("u3", "newer", 3_000_000), ("u4", "newer", 3_000_001)])
    second = run(store, client, tiny_bundle)
    assert second.status == "published" and second.summary["events_consumed"] == 2
    bundle = load_bundle(store.current)
    assert bundle.manifest["events"]["count"] == first.summary["events_consumed"] + 2
    assert bundle.catalog.item_ids[-1] == "newer"


def test_a_rejected_candidate_is_not_served_and_consumes_no_events(
    store, client, embedded_redis, tiny_bundle
):
    before = store.current_version()
    post_events(embedded_redis.socket, new_events())
    impossible = RetrainConfig(epochs=1, warmup_steps=5, test_beam=32, tolerance=-1.0)
    result = run(store, client, tiny_bundle, impossible)
    assert result.status == "rejected" and result.summary["gate"]["passed"] is False
    assert store.current_version() == before
    assert client.xlen(KEY) == len(new_events())
    assert result.path is not None and result.path.parent == store.rejected_dir
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["retrain"]["published"] is False


def test_a_crash_before_the_switch_leaves_bundle_and_events_intact(
    store, client, embedded_redis, tiny_bundle, monkeypatch
):
    before = store.current_version()
    post_events(embedded_redis.socket, new_events())

    def crash(self, version):
        raise RuntimeError("injected crash before switching current")

    monkeypatch.setattr(BundleStore, "switch", crash)
    with pytest.raises(RuntimeError, match="injected"):
        run(store, client, tiny_bundle)
    monkeypatch.undo()
    assert store.current_version() == before and client.xlen(KEY) == len(new_events())
    result = run(store, client, tiny_bundle)  # the rerun does the whole job
    assert result.status == "published" and result.summary["events_consumed"] == len(new_events())
    assert client.xlen(KEY) == 0


def test_a_crash_between_publish_and_trim_is_recovered_without_double_counting(
    store, client, embedded_redis, tiny_bundle, monkeypatch
):
    post_events(embedded_redis.socket, new_events())
    monkeypatch.setattr(
        retrain_module, "trim_through", lambda c, k, last: 0 if last is None else 1 / 0
    )
    with pytest.raises(ZeroDivisionError):
        run(store, client, tiny_bundle)
    monkeypatch.undo()
    published = store.current_version()
    assert client.xlen(KEY) == len(new_events())  # not trimmed, but already in `current`
    post_events(embedded_redis.socket, [("u5", "later", 4_000_000)])
    result = run(store, client, tiny_bundle)
    assert result.summary["trimmed_before"] == len(new_events())
    assert result.summary["events_consumed"] == 1 and result.summary["parent"] == published


def test_refit_tokenizer_fits_new_codebooks_for_every_item(
    store, client, embedded_redis, tiny_bundle
):
    post_events(embedded_redis.socket, new_events())
    cfg = RetrainConfig(epochs=2, warmup_steps=5, test_beam=32, tolerance=1.0, refit_tokenizer=True)
    result = run(store, client, tiny_bundle, cfg)
    assert result.status == "published"
    bundle = load_bundle(store.current)
    assert bundle.manifest["retrain"]["refit_tokenizer"] is True
    assert len({tuple(c) for c in bundle.semantic_ids.codes}) == len(bundle.catalog) == 123


def test_events_are_read_after_the_checkpoint_up_to_the_head_at_start(client, embedded_redis):
    post_events(embedded_redis.socket, [("a", "x", 1), ("b", "y", 2), ("c", "z", 3)])
    ids = [i for i, _ in client.xrange(KEY)]
    batch = read_events(client, KEY, after=ids[0], page=1)
    assert batch.frame["user_id"].tolist() == ["b", "c"] and batch.last_id == ids[-1]
    assert read_events(client, KEY, after=ids[-1]).frame.empty


def test_evaluate_scores_a_retrained_bundle_on_its_data_plus_events(
    store, client, embedded_redis, tiny_bundle
):
    from pipeline.evaluate import evaluate_bundle

    post_events(embedded_redis.socket, new_events())
    result = run(store, client, tiny_bundle)
    scores = evaluate_bundle(store.current, tiny_bundle.parent, beam_width=32)
    assert scores["bundle"] == result.summary["version"]
    assert scores["users"] == 150 + 1  # "stranger" has 3 items: evaluable; "stranger2" has 1
    # the published model trained through the test items after the gate: evaluate says so
    assert scores["held_out"] is False
    assert load_bundle(tiny_bundle).manifest["training"].get("final_pass") is None
    assert evaluate_bundle(tiny_bundle, tiny_bundle.parent, beam_width=32)["held_out"] is True


def test_the_reader_takes_at_most_max_events_and_the_next_run_the_rest(client, embedded_redis):
    ids = [client.xadd(KEY, {"user_id": "u", "item_id": f"i{n}", "timestamp": n}) for n in range(7)]
    first = read_events(client, KEY, after=None, page=2, max_events=5)
    assert list(first.frame["item_id"]) == [f"i{n}" for n in range(5)] and first.last_id == ids[4]
    rest = read_events(client, KEY, after=first.last_id, page=2, max_events=5)
    assert list(rest.frame["item_id"]) == ["i5", "i6"] and rest.last_id == ids[-1]


def test_the_reader_memory_does_not_grow_with_the_backlog(client, embedded_redis):
    """What the reader holds is bounded by max_events, whatever waits behind (traced Python
    allocations: the reader kept every event of the backlog before)."""
    import tracemalloc

    def fill(n: int) -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd(KEY, {"user_id": f"u{i % 50}", "item_id": f"item-{i}", "timestamp": i})
        pipe.execute()

    def peak(limit: int) -> int:
        tracemalloc.start()
        try:
            assert len(read_events(client, KEY, None, page=500, max_events=limit)) == limit
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    fill(2_000)
    small = peak(1_000)
    fill(18_000)  # ten times the backlog
    large = peak(1_000)
    assert large < 1.5 * small, (small, large)
