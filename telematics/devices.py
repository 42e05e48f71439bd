"""What the gateways know of the registry: which devices exist, are enabled, and feed which
vehicle. Kept in memory and kept current by the registry's announcements (LISTEN on
`fleet_registry`: each device or vehicle changed is reloaded alone, at once); while no one is
listening, reloaded whole when older than `device_cache_s` and asked of the database on a miss.
Unknown devices are recorded (rate-limited) so an administrator can register them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fleet.models import Device, DeviceProtocol, Vehicle
from fleet.registry import normalise_identifier
from telematics.models import UnknownDevice
from telematics.stream import Target

_NEGATIVE_TTL_S = 10.0
_RETRY_S = 2.0
log = logging.getLogger("fleet.gateway.devices")
_RECORD_EVERY_S = 30.0


@dataclass(frozen=True, slots=True)
class KnownDevice:
    device_id: int
    vehicle_id: int | None
    unit_id: int
    enabled: bool
    secret_digest: str | None = None  # OsmAnd: the SHA-256 of the `key=` the phone must send

    @property
    def target(self) -> Target | None:
        if not self.enabled or self.vehicle_id is None:
            return None
        return Target(device_id=self.device_id, vehicle_id=self.vehicle_id, unit_id=self.unit_id)


def normalise(protocol: DeviceProtocol, identifier: str) -> str | None:
    try:
        return normalise_identifier(protocol, identifier.strip())
    except Exception:
        return None


class DeviceDirectory:
    def __init__(self, engine: Engine, *, refresh_s: float) -> None:
        self._engine = engine
        self._refresh_s = refresh_s
        self._known: dict[tuple[str, str], KnownDevice] = {}
        self._missing: dict[tuple[str, str], float] = {}
        self._recorded: dict[tuple[str, str], float] = {}
        self._loaded_at = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._listening = False  # announcements arrive: the copy is current whatever its age

    def _load_all(self) -> dict[tuple[str, str], KnownDevice]:
        return self._load()

    def _load(self, where: Any = None) -> dict[tuple[str, str], KnownDevice]:
        """The devices (all, or those `where` picks) as the gateways know them."""
        stmt = select(
            Device.protocol,
            Device.identifier,
            Device.id,
            Device.vehicle_id,
            Device.unit_id,
            Device.enabled,
            Vehicle.unit_id,
            Device.secret_digest,
        ).outerjoin(Vehicle, Vehicle.id == Device.vehicle_id)
        if where is not None:
            stmt = stmt.where(where)
        with Session(self._engine) as session:
            rows = session.execute(stmt).all()
        return {
            (str(p), ident): KnownDevice(
                device_id=dev_id,
                vehicle_id=vehicle_id,
                # Live updates are scoped by the vehicle's unit, which is what dispatchers see.
                unit_id=vehicle_unit if vehicle_unit is not None else unit_id,
                enabled=enabled,
                secret_digest=secret_digest,
            )
            for p, ident, dev_id, vehicle_id, unit_id, enabled, vehicle_unit, secret_digest in rows
        }

    async def refresh(self) -> None:
        """Reload the registry. While the database is away the copy in memory stays in use, so
        registered devices keep reporting into Redis; the next lookup tries again. Lookups that
        find the copy stale while it reloads wait for that one reload: a reconnection storm
        would otherwise start one each."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._reload())
            # retrieved here too, so a reload whose callers all went away logs no warning
            self._refreshing.add_done_callback(lambda task: task.cancelled() or task.exception())
        await asyncio.shield(self._refreshing)

    async def _reload(self) -> None:
        try:
            known = await asyncio.to_thread(self._load_all)
        except (OperationalError, OSError) as error:
            if not self._known:
                raise
            log.warning("device registry unavailable, using the cached copy: %s", error)
            self._loaded_at = time.monotonic() - self._refresh_s + _RETRY_S
            return
        self._known = known
        self._missing.clear()
        self._loaded_at = time.monotonic()

    def _apply(self, devices: set[int], vehicles: set[int]) -> None:
        """Reload the devices announced changed (and those of the vehicles announced), in one
        query; a device gone from the registry is dropped from the copy."""
        fresh = self._load(Device.id.in_(devices) | Device.vehicle_id.in_(vehicles))
        gone = [
            key
            for key, known in self._known.items()
            if (known.device_id in devices or known.vehicle_id in vehicles) and key not in fresh
        ]
        for key in gone:
            del self._known[key]
        self._known.update(fresh)
        for key in fresh:
            self._missing.pop(key, None)

    async def listen(self) -> None:
        """Follow the registry's announcements until cancelled: each batch of them reloads only
        what changed. While the connection is down lookups fall back to reloading the copy when
        it is old; once it is back the copy is reloaded whole (announcements were missed)."""
        loop = asyncio.get_running_loop()
        while True:
            queue: asyncio.Queue[str | None] = asyncio.Queue()
            halt = threading.Event()
            listener = loop.run_in_executor(None, self._listen_thread, queue, loop, halt)
            try:
                await self._follow(queue)
            finally:
                self._listening = False
                halt.set()
                await asyncio.gather(listener, return_exceptions=True)
            await asyncio.sleep(_RETRY_S)

    async def _follow(self, queue: asyncio.Queue[str | None]) -> None:
        first = await queue.get()  # "" once the LISTEN is in place; None when the thread ends
        if first is None:
            return
        try:
            await self.refresh()  # what changed before the LISTEN took
        except (OperationalError, OSError) as error:
            log.warning("could not reload the device registry: %s", error)
            return
        self._listening = True
        while True:
            payloads = [await queue.get()]
            while not queue.empty():
                payloads.append(queue.get_nowait())
            if None in payloads:
                return
            devices = {int(p[1:]) for p in payloads if p and p[0] == "d" and p[1:].isdigit()}
            vehicles = {int(p[1:]) for p in payloads if p and p[0] == "v" and p[1:].isdigit()}
            if devices or vehicles:
                try:
                    await asyncio.to_thread(self._apply, devices, vehicles)
                except (OperationalError, OSError) as error:
                    log.warning("could not follow a registry change, reloading: %s", error)
                    self._loaded_at = 0.0  # the next lookup reloads it whole
                    return

    def _listen_thread(
        self,
        queue: asyncio.Queue[str | None],
        loop: asyncio.AbstractEventLoop,
        halt: threading.Event,
    ) -> None:
        def put(item: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(queue.put_nowait, item)

        url = self._engine.url.set(drivername="postgresql")
        try:
            with psycopg.connect(
                url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
            ) as conn:
                conn.execute("LISTEN fleet_registry")
                put("")
                while not halt.is_set():
                    for notify in conn.notifies(timeout=0.5, stop_after=1000):
                        put(notify.payload)
        except psycopg.Error as error:
            log.warning("not following registry changes: %s", error)
        finally:
            put(None)

    async def lookup(self, protocol: DeviceProtocol, identifier: str) -> KnownDevice | None:
        key_id = normalise(protocol, identifier)
        if key_id is None:
            return None
        key = (protocol.value, key_id)
        now = time.monotonic()
        if not self._listening and now - self._loaded_at > self._refresh_s:
            await self.refresh()
        found = self._known.get(key)
        if found is not None or self._listening:
            return found  # while listening, a device not in the copy is not in the registry
        if now - self._missing.get(key, -_NEGATIVE_TTL_S) < _NEGATIVE_TTL_S:
            return None
        # Registered since the last refresh? Reload (at most once a second, so a flood of made-up
        # identifiers cannot hammer the database), then remember the answer for a while.
        if now - self._loaded_at > 1.0:
            await self.refresh()
            found = self._known.get(key)
        if found is None:
            self._missing[key] = now
        return found

    async def record_unknown(
        self, protocol: DeviceProtocol, identifier: str, remote_addr: str, message: str
    ) -> None:
        key = (protocol.value, identifier[:64])
        now = time.monotonic()
        if now - self._recorded.get(key, -_RECORD_EVERY_S) < _RECORD_EVERY_S:
            return
        self._recorded[key] = now
        if len(self._recorded) > 100_000:  # a scan of random identifiers must not grow this forever
            self._recorded.clear()
        try:
            await asyncio.to_thread(
                self._upsert_unknown, protocol, identifier, remote_addr, message
            )
        except (OperationalError, OSError) as error:
            log.warning("could not record unknown device %s: %s", identifier, error)

    def _upsert_unknown(
        self, protocol: DeviceProtocol, identifier: str, remote_addr: str, message: str
    ) -> None:
        statement = insert(UnknownDevice).values(
            protocol=protocol.value,
            identifier=identifier[:64],
            remote_addr=remote_addr[:64],
            last_message=message[:1100],
        )
        statement = statement.on_conflict_do_update(
            constraint="uq_unknown_device_protocol_identifier",
            set_={
                "last_seen_at": statement.excluded.last_seen_at,
                "attempts": UnknownDevice.attempts + 1,
                "remote_addr": statement.excluded.remote_addr,
                "last_message": statement.excluded.last_message,
            },
        )
        with Session(self._engine) as session, session.begin():
            session.execute(statement)
