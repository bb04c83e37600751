"""Retraining input: the service's Redis event stream, read from a checkpoint and merged with base data.

The checkpoint is the last stream ID that a published bundle consumed, one per stream
partition. It is stored in that bundle's manifest (`stream.last_ids`; a one-stream manifest
also says `stream.key` and `stream.last_id`, all that older manifests say), so it advances
exactly when `current` switches: there is no second place to keep in step. Events up to the checkpoint are trimmed only once a
bundle holding them is current, and every bundle carries all the events it was trained on
(`events.parquet`), so trimmed events are never lost to the next retrain.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
import redis
from redis.cluster import RedisCluster

from model.bundle import Bundle
from pipeline.datasets import Dataset
from service.key_layout import Keys

SyncClient = redis.Redis | RedisCluster

log = logging.getLogger(__name__)

EVENTS_FILE = "events.parquet"
COLUMNS = ["user_id", "item_id", "timestamp"]


@dataclass(frozen=True)
class EventBatch:
    """Events read from the stream: `frame` (user_id, item_id, timestamp) in stream order,
    read after the exclusive checkpoint `after` up to and including `last_id`."""

    frame: pd.DataFrame
    after: str | None
    last_id: str | None
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.frame)


def empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": pd.Series(dtype=str), "item_id": pd.Series(dtype=str), "timestamp": []}
    ).astype({"timestamp": "int64"})


def read_events(
    client: SyncClient,
    key: str,
    after: str | None,
    page: int = 10_000,
    max_events: int | None = None,
) -> EventBatch:
    """Events after `after` (exclusive; None = from the start), oldest first, up to the
        stream's newest entry when the call starts (events that arrive meanwhile are left for the
        next run) and at most `max_events` of them (the rest too: the checkpoint `last_id` says
        where this batch ends). Read `page` entries per XRANGE, each page turned into compact
        frame at once (no list of every event's tuple), so memory follows `max_events`, never
    the backlog's length.

        Needs a client with decode_responses=True.
    """
    head = cast(list[tuple[str, dict[str, str]]], client.xrevrange(key, count=1))
    if not head:
        return EventBatch(empty_events(), after, after)
    head_id = head[0][0]
    low = f"({after}" if after else "-"
    frames: list[pd.DataFrame] = []
    last, skipped, read = after, 0, 0
    while max_events is None or read < max_events:
        count = page if max_events is None else min(page, max_events - read)
        entries = cast(
            list[tuple[str, dict[str, str]]], client.xrange(key, min=low, max=head_id, count=count)
        )
        if not entries:
            break
        rows: list[tuple[str, str, int]] = []
        for _, fields in entries:
            try:
                rows.append((fields["user_id"], fields["item_id"], int(fields["timestamp"])))
            except (KeyError, ValueError):
                skipped += 1  # not written by the service; never fatal
        if rows:
            frames.append(pd.DataFrame(rows, columns=COLUMNS))
        read += len(entries)
        last = entries[-1][0]
        if last == head_id:
            break
        low = f"({last}"
    frame = pd.concat(frames, ignore_index=True) if frames else empty_events()
    if skipped:
        log.warning("events_skipped malformed=%d", skipped)
    return EventBatch(frame.astype({"timestamp": "int64"}), after, last, skipped)


def next_id(stream_id: str) -> str:
    """The smallest stream ID after `stream_id` (`ms-seq` → `ms-(seq+1)`)."""
    ms, seq = stream_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def trim_through(client: SyncClient, key: str, last_id: str | None) -> int:
    """Delete every entry with an ID ≤ last_id (exact XTRIM MINID); returns how many."""
    if not last_id:
        return 0
    return int(client.xtrim(key, minid=next_id(last_id), approximate=False))  # type: ignore[arg-type]


def stored_keys(client: SyncClient, prefix: str) -> Keys:
    """The key layout the service recorded (its partitions); one partition if it recorded
    none (a service from before partitions, or none has started yet)."""
    cluster = isinstance(client, RedisCluster)
    text = cast(str | None, client.get(Keys(prefix, 1, cluster).layout))
    return Keys.described(prefix, text, cluster) if text else Keys(prefix, 1, cluster)


def checkpoints(stream: dict[str, Any], keys: Keys) -> dict[str, str | None]:
    """Each stream's checkpoint from a manifest's `stream` (either form); None: from the start."""
    recorded = dict(stream.get("last_ids") or {})
    if stream.get("key"):
        recorded.setdefault(stream["key"], stream.get("last_id"))
    return {key: recorded.get(key) for key in keys.streams}


@dataclass(frozen=True)
class StreamsBatch:
    """Events read from every partition's stream, each after its checkpoint (`after`) up to
    and including `last_ids`. A user's events are in one stream, so `frame` keeps each
    user's order; across users it is stream by stream."""

    frame: pd.DataFrame
    after: dict[str, str | None]
    last_ids: dict[str, str | None]

    def __len__(self) -> int:
        return len(self.frame)

    def manifest(self) -> dict[str, Any]:
        """The checkpoints as a manifest records them."""
        out: dict[str, Any] = {"last_ids": self.last_ids}
        if len(self.last_ids) == 1:  # what a one-stream manifest has always said
            [(key, last_id)] = self.last_ids.items()
            out |= {"key": key, "last_id": last_id}
        return out


def read_streams(
    client: SyncClient,
    after: dict[str, str | None],
    page: int = 10_000,
    max_events: int | None = None,
) -> StreamsBatch:
    """`read_events` of every stream in `after` from its checkpoint, at most `max_events` in
    all: each stream first gets an equal share (no partition waits behind a busy one), then
    what the others left goes to streams that had more, in order."""
    last_ids = dict(after)
    frames: list[pd.DataFrame] = []
    read = 0  # entries, malformed ones too

    def take(key: str, budget: int | None) -> bool:
        """Read `key` within `budget`; True if the budget ran out first (it may have more)."""
        nonlocal read
        batch = read_events(client, key, last_ids[key], page, budget)
        frames.append(batch.frame)
        last_ids[key] = batch.last_id
        read += len(batch) + batch.skipped
        return budget is not None and len(batch) + batch.skipped == budget

    more = [
        key
        for key, share in zip(after, _shares(max_events, len(after)), strict=True)
        if take(key, share)
    ]
    for key in more:
        if max_events is not None and read >= max_events:
            break
        take(key, None if max_events is None else max_events - read)
    frames = [f for f in frames if len(f)]
    frame = pd.concat(frames, ignore_index=True) if frames else empty_events()
    return StreamsBatch(frame.astype({"timestamp": "int64"}), dict(after), last_ids)


def _shares(total: int | None, n: int) -> list[int | None]:
    if total is None:
        return [None] * n
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def bundle_events(bundle: Bundle) -> pd.DataFrame:
    """The events a bundle was trained on beyond its base data (empty for a fresh train)."""
    path = Path(bundle.path) / EVENTS_FILE
    if EVENTS_FILE not in bundle.manifest.get("files", {}) or not path.is_file():
        return empty_events()
    return pd.read_parquet(path).astype({"user_id": str, "item_id": str, "timestamp": "int64"})


def events_bytes(events: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    events[COLUMNS].reset_index(drop=True).to_parquet(buf, index=False)
    return buf.getvalue()


def with_events(base: Dataset, events: pd.DataFrame) -> Dataset:
    """Base interactions plus events; items only the events name join the item table, titled
    by their ID. User IDs are external strings, so unknown users are simply new users."""
    if events.empty:
        return base
    interactions = pd.concat([base.interactions, events[COLUMNS]], ignore_index=True)
    known = set(base.items["item_id"])
    new = [i for i in dict.fromkeys(events["item_id"]) if i not in known]
    items = base.items
    if new:
        items = pd.concat([items, pd.DataFrame({"item_id": new, "title": new})], ignore_index=True)
    return Dataset(interactions, items, base.spec)


def bundle_dataset(base: Dataset, bundle: Bundle) -> Dataset:
    """The data a bundle was trained on: its base dataset plus the events it consumed."""
    return with_events(base, bundle_events(bundle))
