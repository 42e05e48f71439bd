"""`fleet simulate`: vehicles that drive, stop, park and switch ignition, talking to the gateways
exactly as terminals and phones do (JT/T 808: register, authenticate, report, heartbeat; OsmAnd:
one HTTP request per fix).

Each vehicle drives tours: from its depot to a random destination, a stop there, back to the
depot, and parked there with the ignition off for a while. Where to and along what comes from a
`RouteSource`: the imported road network when there is one (pgRouting, `roads.RoadRoutes`), or
straight legs to random points around the town when there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlencode

from sqlalchemy import Engine, text

from telematics.fix import Fix
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult
from telematics.trips import haversine_m

log = logging.getLogger("fleet.simulate")

LatLon = tuple[float, float]


class RouteSource(Protocol):
    """Where a vehicle's tours go. A tour is home -> destination -> home, points are (lat, lon)."""

    def home(self, depot: LatLon) -> LatLon:
        """Where a vehicle kept at `depot` sets off from and parks."""
        ...

    def destination(self, home: LatLon, rng: random.Random) -> LatLon:
        """Somewhere to drive to from `home`."""
        ...

    def path(self, a: LatLon, b: LatLon) -> list[LatLon] | None:
        """A drivable path from a to b, starting at a and ending at b; None when there is none."""
        ...


@dataclass
class StraightLegs:
    """Without a road network: straight there and back, to random points within `radius_m` of
    `centre` (the town the fleet serves)."""

    centre: LatLon
    radius_m: float = 6000.0

    def home(self, depot: LatLon) -> LatLon:
        return depot

    def destination(self, home: LatLon, rng: random.Random) -> LatLon:
        bearing = rng.uniform(0, 2 * math.pi)
        distance = rng.uniform(0.2, 1.0) * self.radius_m
        lat = self.centre[0] + distance * math.cos(bearing) / 111_320
        lon = self.centre[1] + distance * math.sin(bearing) / (
            111_320 * math.cos(math.radians(self.centre[0]))
        )
        return (lat, lon)

    def path(self, a: LatLon, b: LatLon) -> list[LatLon]:
        return [a, b]


class Phase(StrEnum):
    PARKED = "parked"  # at home, ignition off
    OUTBOUND = "outbound"
    CALLING = "calling"  # stopped at the destination, engine running or not
    INBOUND = "inbound"


# A tour only ever moves on round this cycle.
NEXT_PHASE = {
    Phase.PARKED: Phase.OUTBOUND,
    Phase.OUTBOUND: Phase.CALLING,
    Phase.CALLING: Phase.INBOUND,
    Phase.INBOUND: Phase.PARKED,
}
# Destinations tried before a tour gives up on the route source and drives straight: a network
# in pieces must cost a few queries per tour, not a loop.
ROUTE_TRIES = 5
CALL_S = (10.0, 180.0)
PARK_S = (120.0, 900.0)


@dataclass
class Motion:
    """Where one vehicle is, at any moment, on its tours: home -> a destination (a stop there)
    -> home, then parked at home with the ignition off until the next tour. `position` is given
    as the vehicle's depot; its home is where the route source puts that depot (the depot
    itself, unless it is off the road network's map)."""

    position: LatLon
    rng: random.Random
    routes: RouteSource
    odometer_km: float = 0.0
    speed_kmh: float = 0.0
    heading_deg: float = 0.0
    ignition: bool = False
    path: list[LatLon] = field(default_factory=list)
    leg: int = 0
    cruise_kmh: float = 40.0
    standing_until: float = 0.0
    phase: Phase = Phase.PARKED
    inbound: list[LatLon] = field(default_factory=list)
    tours: int = 0  # completed, back home
    home: LatLon = field(init=False)

    def __post_init__(self) -> None:
        self.home = self.routes.home(self.position)
        self.position = self.home

    def setting_off(self, now: float) -> bool:
        """Whether the next `advance` plans a tour (which may query the route source)."""
        return self.phase is Phase.PARKED and now >= self.standing_until

    def advance(self, now: float, dt: float) -> None:
        if self.phase in (Phase.PARKED, Phase.CALLING):
            if now < self.standing_until:
                self.speed_kmh = 0.0
                return
            if self.phase is Phase.PARKED:
                self.path, self.inbound = self._plan()
            else:
                self.path, self.inbound = self.inbound, []
            self.phase = NEXT_PHASE[self.phase]
            self.leg = 0
            self.cruise_kmh = self.rng.uniform(25, 60)
            self.ignition = True
        self._drive(self.cruise_kmh / 3.6 * dt)
        self.speed_kmh = max(0.0, self.cruise_kmh + self.rng.uniform(-5, 5))
        if self.leg >= len(self.path):
            self.path, self.speed_kmh = [], 0.0
            self.phase = NEXT_PHASE[self.phase]
            if self.phase is Phase.CALLING:
                # Dropping someone off with the engine running, or waiting for them with it off.
                self.ignition = self.rng.random() < 0.5
                self.standing_until = now + self.rng.uniform(*CALL_S)
            else:
                self.ignition = False
                self.standing_until = now + self.rng.uniform(*PARK_S)
                self.tours += 1

    def _drive(self, distance_m: float) -> None:
        """Along the path; what is left of `distance_m` at its end is not driven."""
        while distance_m > 0 and self.leg < len(self.path):
            target = self.path[self.leg]
            gap = haversine_m(*self.position, *target)
            if gap > 0:  # edges meet at a shared point: no bearing to take there
                self.heading_deg = _bearing(self.position, target)
            if gap <= distance_m:
                self.position, distance_m = target, distance_m - gap
                self.odometer_km += gap / 1000
                self.leg += 1
            else:
                f = distance_m / gap
                self.position = (
                    self.position[0] + (target[0] - self.position[0]) * f,
                    self.position[1] + (target[1] - self.position[1]) * f,
                )
                self.odometer_km += distance_m / 1000
                distance_m = 0

    def _plan(self) -> tuple[list[LatLon], list[LatLon]]:
        """The two paths of the next tour, both ways routable; straight ones when no destination
        tried is."""
        destination = self.home
        for _ in range(ROUTE_TRIES):
            destination = self.routes.destination(self.home, self.rng)
            outbound = self.routes.path(self.home, destination)
            if outbound is None or len(outbound) < 2:
                continue
            inbound = self.routes.path(destination, self.home)
            if inbound is None or len(inbound) < 2:
                continue
            # Whatever a source returns, a tour leaves from home and parks exactly there.
            return _ending(self.home, outbound, destination), _ending(
                destination, inbound, self.home
            )
        log.info("no route from %s after %d destinations: driving straight", self.home, ROUTE_TRIES)
        return [self.home, destination], [destination, self.home]

    def fix(self, identifier: str, moment: datetime) -> Fix:
        return Fix(
            device_identifier=identifier,
            fix_time=moment,
            lat=round(self.position[0], 6),
            lon=round(self.position[1], 6),
            speed_kmh=round(self.speed_kmh, 1),
            heading_deg=round(self.heading_deg),
            altitude_m=10.0,
            ignition=self.ignition,
            odometer_km=round(self.odometer_km, 1),
            attributes={"sat": 12},
            valid=True,
        )


def _ending(start: LatLon, path: list[LatLon], end: LatLon) -> list[LatLon]:
    """`path` from exactly `start` to exactly `end`."""
    return [*([start] if path[0] != start else []), *path, *([end] if path[-1] != end else [])]


def _bearing(a: LatLon, b: LatLon) -> float:
    y = math.sin(math.radians(b[1] - a[1])) * math.cos(math.radians(b[0]))
    x = math.cos(math.radians(a[0])) * math.sin(math.radians(b[0])) - math.sin(
        math.radians(a[0])
    ) * math.cos(math.radians(b[0])) * math.cos(math.radians(b[1] - a[1]))
    return (math.degrees(math.atan2(y, x)) + 360) % 360


@dataclass(frozen=True)
class SimVehicle:
    identifier: str
    start: LatLon


@dataclass
class Stats:
    sent: int = 0
    acked: int = 0
    refused: int = 0
    errors: int = 0
    connected: int = 0


class JT808Terminal:
    """A terminal on one TCP connection. Reports wait for their 0x8001 before the next one."""

    def __init__(
        self,
        host: str,
        port: int,
        phone: str,
        *,
        version2019: bool = False,
        reply_timeout_s: float = 30,
    ) -> None:
        self.host, self.port, self.phone, self.version2019 = host, port, phone, version2019
        self.reply_timeout_s = reply_timeout_s
        self.serial = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buffer = b""

    async def _request(self, msg_id: int, body: bytes = b"") -> jt808.Message:
        assert self.writer is not None
        assert self.reader is not None
        self.serial = (self.serial + 1) & 0xFFFF
        self.writer.write(
            jt808.encode_frame(msg_id, self.phone, self.serial, body, version2019=self.version2019)
        )
        await self.writer.drain()
        return await self._reply()

    async def _reply(self) -> jt808.Message:
        """The platform's next 0x8001 or 0x8100."""
        assert self.reader is not None
        while True:
            frames, self.buffer = jt808.split_frames(self.buffer)
            for frame in frames:
                message = jt808.decode(frame)
                if message.msg_id in (MsgId.PLATFORM_REPLY, MsgId.REGISTER_REPLY):
                    return message
            chunk = await asyncio.wait_for(self.reader.read(4096), self.reply_timeout_s)
            if not chunk:
                raise ConnectionError("gateway closed the connection")
            self.buffer += chunk

    async def connect(self) -> None:
        """Open the connection, register and authenticate, as a terminal does at power-on."""
        await self.open()
        await self.authenticate(await self.register())

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def register(self) -> str:
        """0x0100; the auth code of the platform's 0x8100."""
        registered = await self._request(
            MsgId.REGISTER, jt808.register_body(version2019=self.version2019)
        )
        if registered.body[2] != RegisterResult.OK:
            raise PermissionError(f"terminal {self.phone} refused: result {registered.body[2]}")
        return registered.body[3:].decode()

    async def authenticate(self, code: str) -> None:
        """0x0102 with the code; refused unless the platform answers result 0."""
        reply = await self._request(
            MsgId.AUTHENTICATE, jt808.authenticate_body(code, version2019=self.version2019)
        )
        if reply.body[4] != 0:
            raise PermissionError(f"terminal {self.phone} failed to authenticate")

    async def report(self, fixes: Sequence[Fix]) -> bool:
        if len(fixes) == 1:
            reply = await self._request(MsgId.LOCATION, jt808.location_body(fixes[0]))
        else:
            reply = await self._request(MsgId.BATCH, jt808.batch_body(list(fixes)))
        return reply.body[4] == 0

    async def heartbeat(self) -> None:
        await self._request(MsgId.HEARTBEAT)

    async def send_frame(self, frame: bytes) -> bool:
        """Send a frame made in advance (a capture, or a load test's pre-encoded reports) and
        wait for the platform's reply; True if it was result 0."""
        assert self.writer is not None
        assert self.reader is not None
        self.writer.write(frame)
        await self.writer.drain()
        return (await self._reply()).body[4] == 0

    async def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                await self._request(MsgId.LOGOUT)
            self.writer.close()


class OsmandPhone:
    """A phone app: one keep-alive HTTP connection, one GET per fix."""

    def __init__(self, host: str, port: int, identifier: str) -> None:
        self.host, self.port, self.identifier = host, port, identifier
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def report(self, fixes: Sequence[Fix]) -> bool:
        ok = True
        for fix in fixes:
            query = urlencode(
                {
                    "id": self.identifier,
                    "lat": fix.lat,
                    "lon": fix.lon,
                    "timestamp": int(fix.fix_time.timestamp()),
                    "speed": (fix.speed_kmh or 0) / 1.852,
                    "bearing": fix.heading_deg,
                    "altitude": fix.altitude_m,
                    "ignition": "true" if fix.ignition else "false",
                    "odometer": round((fix.odometer_km or 0) * 1000),
                }
            )
            ok = await self._get(f"/?{query}") and ok
        return ok

    async def _get(self, target: str) -> bool:
        assert self.writer is not None
        assert self.reader is not None
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        await self.writer.drain()
        status_line = await asyncio.wait_for(self.reader.readline(), 30)
        if not status_line:
            raise ConnectionError("gateway closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status_line.split()[1] == b"200"

    async def heartbeat(self) -> None:
        return None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def run_vehicle(
    vehicle: SimVehicle,
    make_client: Callable[[SimVehicle], JT808Terminal | OsmandPhone],
    routes: RouteSource,
    *,
    interval_s: float,
    until: float,
    stats: Stats,
    seed: int,
    batch: int = 1,
    on_sent: Callable[[int], None] | None = None,
    clock: Callable[[int], datetime] | None = None,
) -> None:
    """Drive one vehicle until `until`. `clock(n)` dates the n-th fix; by default it is the wall
    clock, and a load test passes a compressed one (JT/T 808 times have whole seconds, so a
    terminal reporting five times a second must report five different seconds)."""
    rng = random.Random(seed)  # noqa: S311 - simulated driving, not security
    motion = Motion(
        position=vehicle.start, rng=rng, routes=routes, odometer_km=rng.uniform(1e3, 9e4)
    )
    # Spread the first reports over one interval so thousands of terminals do not beat in step.
    await asyncio.sleep(rng.uniform(0, interval_s))
    client = make_client(vehicle)
    if not await _connect(client, until, stats):
        return
    pending: list[Fix] = []
    last = time.monotonic()
    sequence = 0
    try:
        while time.monotonic() < until:
            now = time.monotonic()
            if motion.setting_off(now):
                # Planning a tour may wait on pgRouting: the other vehicles keep reporting.
                await asyncio.to_thread(motion.advance, now, now - last)
            else:
                motion.advance(now, now - last)
            last = now
            moment = clock(sequence) if clock is not None else datetime.now(UTC)
            sequence += 1
            pending.append(motion.fix(vehicle.identifier, moment))
            if len(pending) >= batch:
                try:
                    acked = await client.report(pending)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                    # Like a real terminal: keep the fixes, reconnect, send them again.
                    log.info("%s reconnects: %s", vehicle.identifier, error)
                    stats.errors += 1
                    await client.close()
                    client = make_client(vehicle)
                    if not await _connect(client, until, stats):
                        return
                    continue
                stats.sent += len(pending)
                if on_sent is not None:
                    on_sent(len(pending))
                if acked:
                    stats.acked += len(pending)
                else:
                    stats.refused += len(pending)
                pending = []
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - now)))
    finally:
        await client.close()


async def _connect(client: JT808Terminal | OsmandPhone, until: float, stats: Stats) -> bool:
    while time.monotonic() < until:
        try:
            await client.connect()
        except PermissionError as error:
            log.warning("%s", error)
            stats.refused += 1
            return False
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            stats.errors += 1
            await asyncio.sleep(1.0)
        else:
            stats.connected += 1
            return True
    return False


async def simulate(
    vehicles: Sequence[SimVehicle],
    *,
    protocol: str,
    host: str,
    port: int,
    routes: RouteSource,
    interval_s: float,
    duration_s: float,
    batch: int = 1,
    report_every_s: float = 10.0,
    fix_step_s: float | None = None,
) -> Stats:
    """With `fix_step_s`, fixes are dated that far apart whatever `interval_s` is, starting far
    enough in the past that the last one is not in the future (a load test's compressed time)."""
    stats = Stats()

    def make_client(vehicle: SimVehicle) -> JT808Terminal | OsmandPhone:
        if protocol == "jt808":
            return JT808Terminal(host, port, vehicle.identifier)
        return OsmandPhone(host, port, vehicle.identifier)

    until = time.monotonic() + duration_s
    clock: Callable[[int], datetime] | None = None
    if fix_step_s is not None:
        step = fix_step_s
        origin = datetime.now(UTC) - timedelta(seconds=duration_s / interval_s * step + 60)

        def clock(n: int) -> datetime:
            return origin + timedelta(seconds=n * step)

    tasks = [
        asyncio.create_task(
            run_vehicle(
                v,
                make_client,
                routes,
                interval_s=interval_s,
                until=until,
                stats=stats,
                seed=n,
                batch=batch,
                clock=clock,
            )
        )
        for n, v in enumerate(vehicles)
    ]

    async def progress() -> None:
        while True:
            await asyncio.sleep(report_every_s)
            log.info(
                "simulator: %d connected, %d fixes sent, %d acknowledged, %d refused",
                stats.connected,
                stats.sent,
                stats.acked,
                stats.refused,
            )

    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*tasks)
    finally:
        reporter.cancel()
    return stats


def registered(engine: Engine, protocol: str, limit: int) -> list[SimVehicle]:
    """Enabled devices of `protocol` fitted to vehicles, each starting at its vehicle's depot."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.identifier, ST_Y(ST_Centroid(v.depot)), ST_X(ST_Centroid(v.depot))"
                " FROM device d JOIN vehicle v ON v.id = d.vehicle_id"
                " WHERE d.protocol = :p AND d.enabled AND v.status = 'active'"
                " ORDER BY d.id LIMIT :n"
            ),
            {"p": protocol, "n": limit},
        ).all()
    default = DEFAULT_CENTRE
    return [
        SimVehicle(ident, (lat, lon) if lat is not None else default) for ident, lat, lon in rows
    ]


DEFAULT_CENTRE: LatLon = (30.2741, 120.1551)  # Hangzhou


def route_source(engine: Engine) -> RouteSource:
    from telematics import roads

    network = roads.RoadRoutes.load(engine)
    return network if network is not None else StraightLegs(DEFAULT_CENTRE)
