"""Where the stream lives on a Redis Cluster of three masters: each shard's stream whole on one
master, the shards spread over several."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis import Redis
from redis.exceptions import RedisClusterException

from fleet.redis_client import RedisAddress, RedisClient, slot_groups
from telematics import stream
from telematics.settings import TelematicsSettings
from tests.telematics.conftest import T0, Fleetlet, drive


@pytest.fixture
def on_cluster(redis_cluster: RedisAddress) -> Iterator[RedisClient]:
    client = redis_cluster.connect()
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_the_shard_streams_spread_over_the_masters_each_whole_on_one(
    fleetlet: Fleetlet, on_cluster: RedisClient
) -> None:
    shards = TelematicsSettings().stream_shards
    rows = [stream.to_row(f, fleetlet.targets[0], stream.now_ms()) for f in drive("p", T0, 3)]
    for shard in range(shards):
        for _ in range(shard + 1):
            on_cluster.xadd(stream.stream_key(shard), stream.entry(rows))
    held: list[tuple[str, str]] = []  # (key, master), as each master lists its own keys
    for node in on_cluster.get_primaries():
        with Redis(host=node.host, port=node.port) as master:
            for key in master.scan_iter(match=f"{stream.PREFIX}*"):
                name = key.decode()
                shard = int(name.removeprefix(stream.PREFIX).strip("{}"))
                # The slot is the hash tag's alone, and the stream holds every entry of its shard.
                assert master.cluster("KEYSLOT", name) == master.cluster("KEYSLOT", str(shard))
                assert master.xlen(name) == shard + 1
                held.append((name, node.name))
    assert sorted(key for key, _ in held) == sorted(stream.stream_key(s) for s in range(shards))
    assert len({master for _, master in held}) > 1


def test_a_worker_reads_its_shards_one_slot_at_a_time_on_a_cluster(
    on_cluster: RedisClient, redis: RedisClient
) -> None:
    """A cluster refuses one XREADGROUP across slots, which a single server takes whole: the
    worker groups its shards by slot (one group on a single server)."""
    keys = [stream.stream_key(s) for s in range(TelematicsSettings().stream_shards)]
    for client in (on_cluster, redis):
        for key in keys:
            client.xgroup_create(key, stream.GROUP, id="0", mkstream=True)
    with pytest.raises(RedisClusterException, match="same key slot"):
        on_cluster.xreadgroup(stream.GROUP, "w", dict.fromkeys(keys, ">"))
    groups = slot_groups(on_cluster, keys)
    assert sorted(k for group in groups for k in group) == sorted(keys)
    assert all(len({on_cluster.keyslot(k) for k in group}) == 1 for group in groups)
    assert slot_groups(redis, keys) == [keys]
    assert redis.xreadgroup(stream.GROUP, "w", dict.fromkeys(keys, ">")) == []
