"""Where genrec keeps what in Redis: key names, hash tags and the stream's partitions.

A single Redis with one partition keeps the original names (`genrec:hist:<user>`,
`genrec:events`). Partitioned (on a Redis Cluster, or with more than one partition) every
user belongs to the partition `crc32(user) mod P`, and that partition's hash tag is in the key
of its stream and of the history of each of its users, so the append script (cap check,
histories and stream in one call) touches one slot. A user's cached results and epoch carry
the user's own tag instead: they only change together with each other.

Tags are chosen so that partition p's slot lies in the p-th of P equal ranges of the 16,384
slots: every partition has its own slot, and a cluster whose primaries own equal slot ranges
(what `redis-cli --cluster create` makes) holds P / primaries partitions each.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import zlib
from dataclasses import dataclass
from functools import lru_cache

SLOTS = 16_384
MAX_PARTITIONS = 1024  # choosing the tags costs ~P² CRCs: 0.5 s at 1024, once per process


def slot(tag: str) -> int:
    """The cluster slot of a key whose hash tag is `tag` (CRC16/XMODEM, as Redis computes it)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


@lru_cache(maxsize=8)
def partition_tags(partitions: int) -> tuple[str, ...]:
    """Partition p's tag: the first `p.n` (n = 0, 1, …) whose slot is in the p-th of
    `partitions` equal slot ranges. Deterministic: every process and the retrain job agree."""
    tags = []
    for p in range(partitions):
        lo, hi = p * SLOTS // partitions, (p + 1) * SLOTS // partitions
        n = 0
        while not lo <= slot(f"{p}.{n}") < hi:
            n += 1
        tags.append(f"{p}.{n}")
    return tuple(tags)


def user_tagged(user_id: str) -> str:
    """`{user_id}`: keys ending in it share the user's slot. A brace inside the ID would end
    the tag early (or leave it empty, hashing the whole key), so such IDs are tagged by a
    digest and kept after it: `{digest}:user_id`."""
    if "{" not in user_id and "}" not in user_id:
        return f"{{{user_id}}}"
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).hexdigest()
    return f"{{{digest}}}:{user_id}"


@dataclass(frozen=True)
class Keys:
    """The key names of one genrec deployment (`prefix`) over `partitions` event streams."""

    prefix: str
    partitions: int = 1
    cluster: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be 1..{MAX_PARTITIONS}, not {self.partitions}")
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(
                f"a key prefix cannot hold a brace (it would be the hash tag): {self.prefix!r}"
            )

    @property
    def hash_tags(self) -> bool:
        """Partitioned names: on a cluster, or with several partitions (one code path)."""
        return self.cluster or self.partitions > 1

    def partition(self, user_id: str) -> int:
        """The partition of a user's events: stable across processes and restarts."""
        return zlib.crc32(user_id.encode()) % self.partitions

    def history(self, user_id: str) -> str:
        if not self.hash_tags:
            return f"{self.prefix}:hist:{user_id}"
        tag = partition_tags(self.partitions)[self.partition(user_id)]
        return f"{self.prefix}:hist:{{{tag}}}:{user_id}"

    def stream(self, partition: int) -> str:
        if not self.hash_tags:
            return f"{self.prefix}:events"
        return f"{self.prefix}:events:{{{partition_tags(self.partitions)[partition]}}}"

    @property
    def streams(self) -> list[str]:
        return [self.stream(p) for p in range(self.partitions)]

    @property
    def events(self) -> str:
        """The stream of a one-partition layout (a single Redis)."""
        if self.partitions != 1:
            raise ValueError(f"{self.partitions} partitions have {self.partitions} streams")
        return self.stream(0)

    def seeded(self, version: str) -> str:
        return f"{self.prefix}:seeded:{version}"

    @property
    def layout(self) -> str:
        """Where the service records the layout it writes, for the retrain job and for other
        processes of the service to check theirs against."""
        return f"{self.prefix}:layout"

    def describe(self) -> str:
        """What decides the key names: the value kept under `layout`."""
        return json.dumps({"partitions": self.partitions, "hash_tags": self.hash_tags})

    @classmethod
    def described(cls, prefix: str, text: str, cluster: bool) -> Keys:
        """The layout a `describe()` text records, as seen by a client of kind `cluster`;
        ValueError if that client would name keys differently."""
        recorded = json.loads(text)
        keys = cls(prefix, int(recorded["partitions"]), cluster)
        if keys.hash_tags != bool(recorded["hash_tags"]):
            where = "a Redis Cluster" if recorded["hash_tags"] else "a single Redis"
            raise ValueError(
                f"the service writes {prefix!r} keys laid out for {where} ({text}); "
                f"connect {'without' if cluster else 'with'} GENREC_REDIS_CLUSTER=true"
            )
        return keys
