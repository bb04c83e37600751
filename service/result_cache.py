"""A short-TTL result cache in Redis that can never fail a request.

Two kinds of key, both under the model version (a reload never serves the old model's
results):

- A user's results (`user_id` requests) live in one hash per user, a field per model
  version and request shape (k, width, exclusion). Posting an event for that user deletes the hash and bumps the
  user's epoch; a result computed from a history read before that bump is not stored (the
  store is a compare-and-set on the epoch), so a slow request cannot re-insert stale items.
- Explicit-history results are keyed by a digest of the history itself: a different
  history is a different key, so there is nothing to invalidate.

Every Redis error is counted, logged and treated as a miss (or a skipped write).

On a Redis Cluster a user's two keys carry the user's hash tag (service.key_layout): the
compare-and-set script touches one slot, and a user's invalidation runs in order on one node.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import numpy as np

from service.key_layout import user_tagged
from service.metrics import Metrics
from service.store import REDIS_ERRORS, Client

log = logging.getLogger(__name__)

# KEYS: results hash, epoch; ARGV: field, value, ttl seconds, epoch the request started from.
_STORE_IF_CURRENT = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class Shape:
    """What besides the history determines a result."""

    k: int
    beam_width: int | None
    exclude_seen: bool

    def field(self) -> str:
        return f"{self.k}:{self.beam_width or 0}:{int(self.exclude_seen)}"


@dataclass(frozen=True)
class Lookup:
    """A cache read: the value if it hit, and the user's epoch to store a miss under."""

    value: str | None
    epoch: str = ""


class ResultCache:
    def __init__(
        self,
        client: Client,
        prefix: str,
        ttl_s: float,
        metrics: Metrics,
        hash_tags: bool = False,
    ) -> None:
        self.client, self.prefix, self.metrics = client, f"{prefix}:rc", metrics
        self.hash_tags = hash_tags  # a user's keys share a slot: needed on a Redis Cluster
        self.ttl = max(1, round(ttl_s))
        self.epoch_ttl = max(3600, 10 * self.ttl)  # outlives any request in flight
        self.enabled = ttl_s > 0
        self._store = client.register_script(_STORE_IF_CURRENT)

    def _user(self, user_id: str) -> tuple[str, str]:
        """The user's results hash and epoch counter."""
        user = user_tagged(user_id) if self.hash_tags else user_id
        return f"{self.prefix}:u:{user}", f"{self.prefix}:e:{user}"

    def _history(self, version: str, history: np.ndarray, shape: Shape) -> str:
        digest = hashlib.blake2b(np.ascontiguousarray(history, dtype=np.int64).tobytes())
        digest.update(shape.field().encode())
        return f"{self.prefix}:{version}:h:{digest.hexdigest()}"

    def _failed(self, op: str, e: Exception) -> None:
        self.metrics.redis_errors.labels(op).inc()
        log.warning("result_cache_unavailable op=%s error=%s", op, type(e).__name__)

    def _count(self, lookup: Lookup) -> Lookup:
        self.metrics.cache.labels("hit" if lookup.value is not None else "miss").inc()
        return lookup

    async def get_user(self, version: str, user_id: str, shape: Shape) -> Lookup | None:
        """None: caching is off or Redis failed (then do not store either)."""
        if not self.enabled:
            return None
        results, epoch = self._user(user_id)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(results, f"{version}|{shape.field()}")
            pipe.get(epoch)
            value, current = await pipe.execute()  # str | None each (decode_responses=True)
        except REDIS_ERRORS as e:
            self._failed("cache_get", e)
            return None
        return self._count(Lookup(value, current or ""))

    async def put_user(
        self, version: str, user_id: str, shape: Shape, value: str, lookup: Lookup
    ) -> None:
        results, epoch = self._user(user_id)
        field = f"{version}|{shape.field()}"
        try:
            await self._store(keys=[results, epoch], args=[field, value, self.ttl, lookup.epoch])
        except REDIS_ERRORS as e:
            self._failed("cache_put", e)

    async def get_history(self, version: str, history: np.ndarray, shape: Shape) -> Lookup | None:
        if not self.enabled:
            return None
        try:
            value = await self.client.get(self._history(version, history, shape))
        except REDIS_ERRORS as e:
            self._failed("cache_get", e)
            return None
        return self._count(Lookup(cast(str | None, value)))  # decode_responses=True

    async def put_history(
        self, version: str, history: np.ndarray, shape: Shape, value: str
    ) -> None:
        try:
            await self.client.set(self._history(version, history, shape), value, ex=self.ttl)
        except REDIS_ERRORS as e:
            self._failed("cache_put", e)

    async def invalidate(self, user_ids: Iterable[str]) -> None:
        """Forget the users' results (of every model version) and bump their epochs."""
        users = set(user_ids)
        if not self.enabled or not users:
            return
        # One transaction on a single Redis. A cluster transaction is one slot, and one per
        # user costs a round trip each (1,000 users: seconds), so there one pipeline sends each
        # node its users' commands in order. Staleness is kept out by the epoch compare-and-set
        # (the epoch moves first), not by the transaction: a read between the two commands is
        # the same as one between the events' append and this call.
        pipe = self.client.pipeline(transaction=not self.hash_tags)
        for u in sorted(users):
            results, epoch = self._user(u)
            pipe.incr(epoch)
            pipe.expire(epoch, self.epoch_ttl)
            pipe.delete(results)
        try:
            await pipe.execute()
        except REDIS_ERRORS as e:
            self._failed("cache_invalidate", e)
