"""The one way to reach Redis: a single server, or a Redis Cluster (FLEET_REDIS_CLUSTER).

Every process makes its clients here, from `Settings.redis`, so the rest of the code holds a
`RedisClient` (or an `AsyncRedisClient`) and works on either. What a cluster asks of that code:
the keys of one multi-key command, transaction or script share a hash slot (a `{hash tag}` in
their names, see `telematics.stream` and `fleet.auth`), and a pipeline does not carry PUBLISH
(published apart, after it). Plain pub/sub reaches every node of a cluster, so a subscriber may
listen on any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.client import Pipeline
from redis.cluster import ClusterPipeline, RedisCluster

RedisClient: TypeAlias = Redis | RedisCluster
AsyncRedisClient: TypeAlias = AsyncRedis | AsyncRedisCluster
RedisPipeline: TypeAlias = Pipeline | ClusterPipeline


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where Redis is: a URL, and whether it names one node of a cluster (the client finds the
    others from it)."""

    url: str
    cluster: bool = False

    def connect(self, **options: Any) -> RedisClient:
        """A client; `options` as redis-py takes them (`socket_timeout`, in s...)."""
        if self.cluster:
            return RedisCluster.from_url(self.url, **options)
        return Redis.from_url(self.url, **options)

    def connect_async(self, **options: Any) -> AsyncRedisClient:
        if self.cluster:
            return AsyncRedisCluster.from_url(self.url, **options)
        return AsyncRedis.from_url(self.url, **options)


def slot_groups(redis: RedisClient, keys: list[str]) -> list[list[str]]:
    """`keys` in groups that one command may name together: all of them on a single server, one
    group per hash slot on a cluster (in the order they come)."""
    if not isinstance(redis, RedisCluster):
        return [keys]
    groups: dict[int, list[str]] = {}
    for key in keys:
        groups.setdefault(redis.keyslot(key), []).append(key)
    return list(groups.values())
