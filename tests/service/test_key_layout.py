"""Key names on a Redis Cluster: what one script or transaction touches shares a slot."""

import re

import pytest

from service.key_layout import SLOTS, Keys, partition_tags, slot, user_tagged


def key_slot(key: str) -> int:
    """The slot Redis gives a key: that of its first non-empty `{…}`, else of the whole key."""
    m = re.search(r"\{([^}]+)\}", key)
    tag = m.group(1) if m and key.index("{") == m.start() else key
    return slot(tag)


@pytest.mark.parametrize("partitions", [1, 3, 12, 64])
def test_each_partition_has_its_own_slot_in_its_own_range(partitions):
    slots = [slot(tag) for tag in partition_tags(partitions)]
    assert len(set(slots)) == partitions
    for p, s in enumerate(slots):
        assert p * SLOTS // partitions <= s < (p + 1) * SLOTS // partitions


@pytest.mark.parametrize("cluster,partitions", [(True, 1), (True, 12), (False, 4)])
def test_a_users_history_shares_its_partitions_stream_slot(cluster, partitions):
    keys = Keys("genrec", partitions, cluster)
    users = [f"user{n}" for n in range(200)] + ["a{b}c", "{}", "}{", "{x"]
    for user in users:
        stream = keys.stream(keys.partition(user))
        assert key_slot(keys.history(user)) == key_slot(stream)
    assert len({keys.partition(u) for u in users}) == partitions


def test_a_single_redis_keeps_the_original_names():
    keys = Keys("genrec")
    assert keys.history("u1") == "genrec:hist:u1" and keys.streams == ["genrec:events"]


@pytest.mark.parametrize("user", ["u1", "a{b}c", "{", "}", "{}"])
def test_a_users_own_keys_share_a_slot_whatever_braces_the_id_holds(user):
    tagged = user_tagged(user)
    assert user in tagged
    assert key_slot(f"genrec:rc:u:{tagged}") == key_slot(f"genrec:rc:e:{tagged}")
    assert key_slot(f"genrec:rc:u:{tagged}") != key_slot(f"genrec:rc:u:{user_tagged(user + 'x')}")


def test_the_recorded_layout_names_the_same_keys_or_says_which_setting_differs():
    keys = Keys("genrec", 12, cluster=True)
    assert Keys.described("genrec", keys.describe(), cluster=True) == keys
    assert Keys.described("genrec", keys.describe(), cluster=False).streams == keys.streams
    one = Keys("genrec", 1, cluster=True)  # tagged names, which a single Redis does not use
    with pytest.raises(ValueError, match="GENREC_REDIS_CLUSTER"):
        Keys.described("genrec", one.describe(), cluster=False)


def test_slot_agrees_with_redis(redis_cluster):
    """CRC16 as the cluster computes it (CLUSTER KEYSLOT), for the keys the service writes."""
    keys = Keys("genrec", 12, cluster=True)
    names = [*keys.streams, keys.history("u1"), keys.history("a{b}c"), keys.layout]
    replies = [redis_cluster.cli(redis_cluster.ports[0], "CLUSTER", "KEYSLOT", k) for k in names]
    assert [int(r) for r in replies] == [key_slot(k) for k in names]


def test_cluster_settings_partition_the_stream_and_need_a_node_url():
    from pydantic import ValidationError

    from service.settings import CLUSTER_PARTITIONS, Settings

    assert Settings().partitions == 1
    on_cluster = Settings(redis_cluster=True, redis_url="redis://node1:6379")
    assert on_cluster.partitions == CLUSTER_PARTITIONS > 1
    assert Settings(redis_cluster=True, redis_url="redis://n:1", redis_partitions=3).partitions == 3
    with pytest.raises(ValidationError, match="GENREC_REDIS_URL"):
        Settings(redis_cluster=True)
