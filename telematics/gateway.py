"""`fleet gateway`: the device-facing servers (JT/T 808 over TCP, OsmAnd over HTTP) in one process.

Both decode, validate and hand fixes to the shared StreamWriter, and acknowledge a fix only once
it is in Redis. Drops are counted by reason in Redis (`fleet:counters`), flushed once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uvicorn
from sqlalchemy import Engine

from fleet.redis_client import AsyncRedisClient, RedisAddress
from telematics import stream
from telematics.devices import DeviceDirectory
from telematics.fix import Fix, check_fix
from telematics.settings import TelematicsSettings
from telematics.stream import StreamWriter, Target
from telematics.terminals import MismatchSink

log = logging.getLogger("fleet.gateway")


@dataclass
class Counters:
    """Per-reason counts, kept locally and added to Redis in one call a second."""

    redis: AsyncRedisClient
    pending: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        self.pending[reason] += n

    async def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, Counter()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for reason, n in pending.items():
                    pipe.hincrby(stream.COUNTERS, reason, n)
                await pipe.execute()
        except Exception:
            self.pending.update(pending)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.flush()


@dataclass
class Intake:
    """The part both gateways share: validate fixes, count drops, append to the stream."""

    settings: TelematicsSettings
    writer: StreamWriter
    directory: DeviceDirectory
    counters: Counters

    def admit(self, fixes: Iterable[Fix], target: Target, protocol: str) -> tuple[list[list], int]:
        """Stream rows for the fixes that pass validation, and how many were dropped."""
        now = datetime.now(UTC)
        received_ms = stream.now_ms()
        rows, dropped = [], 0
        for fix in fixes:
            reason = check_fix(
                fix,
                now=now,
                max_future_s=self.settings.max_future_s,
                max_past_s=self.settings.max_past_days * 86_400,
                max_speed_kmh=self.settings.max_speed_kmh,
            )
            if reason is not None:
                self.counters.add(f"dropped_{reason}")
                dropped += 1
                continue
            rows.append(stream.to_row(fix, target, received_ms))
        self.counters.add(f"received_{protocol}", len(rows))
        return rows, dropped


def _open_files_limit() -> int:
    """Raises this process's limit of open files to the most it may have (each terminal is a
    socket), and returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def serve(
    settings: TelematicsSettings,
    engine: Engine,
    redis_address: RedisAddress,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    *,
    mismatches: MismatchSink | None = None,
) -> None:
    """Run both gateways until SIGINT/SIGTERM (uvicorn owns the signals and returns on either).
    `mismatches` hears of terminals refused for naming another terminal's number."""
    from telematics.gateway_jt808 import JT808Server
    from telematics.gateway_osmand import osmand_server

    sockets = _open_files_limit()
    redis = redis_address.connect_async(socket_timeout=5, socket_connect_timeout=5)
    directory = DeviceDirectory(engine, refresh_s=settings.device_cache_s)
    await directory.refresh()
    writer = StreamWriter(
        redis, shards=settings.stream_shards, max_backlog=settings.stream_max_backlog
    )
    counters = Counters(redis)
    intake = Intake(settings, writer, directory, counters)
    jt808 = JT808Server(intake, settings, engine, mismatches)
    tcp = await jt808.start(settings.gateway_host, settings.jt808_port)
    http = osmand_server(intake, settings)
    flusher = asyncio.create_task(counters.run())
    following = asyncio.create_task(directory.listen())  # registry changes, as they commit
    log.info(
        "gateways up: JT/T 808 on %s:%s, OsmAnd on %s:%s (up to %d open sockets)",
        settings.gateway_host,
        settings.jt808_port,
        settings.gateway_host,
        settings.osmand_port,
        sockets,
    )
    watcher = asyncio.create_task(_watch(http, ready, stop))
    try:
        await http.serve()
    finally:
        tcp.close()
        await jt808.close_all()
        flusher.cancel()
        watcher.cancel()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        with contextlib.suppress(Exception):
            await writer.drain()
            await counters.flush()
        await redis.aclose()


async def _watch(
    http: uvicorn.Server, ready: asyncio.Event | None, stop: asyncio.Event | None
) -> None:
    """Tell an embedding caller (tests, benchmarks) when both servers listen, and stop on its
    word; standalone, uvicorn's signal handling stops the gateway."""
    while not http.started:
        await asyncio.sleep(0.02)
    if ready is not None:
        ready.set()
    if stop is not None:
        await stop.wait()
        http.should_exit = True
