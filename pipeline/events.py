"""Retraining input: the service's Redis event stream, read from a checkpoint and merged with base data.

The checkpoint is the last stream ID that a published bundle consumed. It is stored in that
bundle's manifest (`stream.last_id`), so it advances exactly when `current` switches: there
is no second place to keep in step. Events up to the checkpoint are trimmed only once a
bundle holding them is current, and every bundle carries all the events it was trained on
(`events.parquet`), so trimmed events are never lost to the next retrain.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pandas as pd
import redis

from model.bundle import Bundle
from pipeline.datasets import Dataset

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
    client: redis.Redis,
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


def trim_through(client: redis.Redis, key: str, last_id: str | None) -> int:
    """Delete every entry with an ID ≤ last_id (exact XTRIM MINID); returns how many."""
    if not last_id:
        return 0
    return int(client.xtrim(key, minid=next_id(last_id), approximate=False))  # type: ignore[arg-type]


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
