"""The gateways' copy of the registry follows the registry's announcements: a device registered,
disabled, moved or removed, and a vehicle moved to another unit, reach a directory whose copy
would otherwise be trusted for an hour, without a reload of the whole registry. A directory that
cannot listen still finds a new device by reloading on a miss."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from fleet.models import DeviceProtocol
from fleet.redis_client import RedisAddress
from telematics.devices import DeviceDirectory, KnownDevice
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult
from telematics.settings import TelematicsSettings
from tests.support import free_port
from tests.telematics.conftest import Fleetlet
from tests.telematics.test_gateway import running, terminal

HOUR = 3600.0


async def _eventually(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """Polls an async check until it gives something truthy (a liveness bound, no speed claim)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Following:
    """A directory listening to the registry, and how many whole reloads it has made."""

    def __init__(self, directory: DeviceDirectory) -> None:
        self.directory = directory
        self.reloads = 0
        load_all = directory._load_all

        def counted() -> dict[tuple[str, str], KnownDevice]:
            self.reloads += 1
            return load_all()

        directory._load_all = counted  # type: ignore[method-assign]

    async def lookup(self, identifier: str) -> KnownDevice | None:
        return await self.directory.lookup(DeviceProtocol.OSMAND, identifier)


def _following(fleetlet: Fleetlet, scenario: Callable[[Following], Any]) -> None:
    """Runs `scenario` with a directory listening to the registry, which trusts its copy for an
    hour; the devices the scenario made are removed after."""

    async def main() -> None:
        watched = Following(DeviceDirectory(fleetlet.engine, refresh_s=HOUR))
        task = asyncio.create_task(watched.directory.listen())
        try:
            await _eventually(lambda: _listening(watched.directory), "the directory to listen")
            await scenario(watched)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        asyncio.run(main())
    finally:
        with fleetlet.engine.begin() as conn:
            conn.execute(text("DELETE FROM device WHERE identifier LIKE 'follow-%'"))


async def _listening(directory: DeviceDirectory) -> bool:
    return directory._listening


def _sql(fleetlet: Fleetlet, sql: str, **params: Any) -> Any:
    with fleetlet.engine.begin() as conn:
        result = conn.execute(text(sql), params)
        return result.scalar() if result.returns_rows else None


def test_a_device_registered_is_known_at_once_without_a_whole_reload(fleetlet: Fleetlet) -> None:
    _following(fleetlet, lambda following: _registered(fleetlet, following))


async def _registered(fleetlet: Fleetlet, following: Following) -> None:
    reloads = following.reloads
    assert await following.lookup("follow-1") is None
    vehicle = fleetlet.targets[0].vehicle_id
    device = _sql(
        fleetlet,
        "INSERT INTO device (protocol, identifier, vehicle_id, unit_id)"
        " VALUES ('osmand', 'follow-1', :v, :u) RETURNING id",
        v=vehicle,
        u=fleetlet.unit_id,
    )
    known = await _eventually(lambda: following.lookup("follow-1"), "the new device")
    assert (known.device_id, known.vehicle_id, known.enabled) == (device, vehicle, True)
    assert following.reloads == reloads  # one row read, not the registry


def test_disabling_moving_and_removing_a_device_reach_the_copy(fleetlet: Fleetlet) -> None:
    _following(fleetlet, lambda following: _changed(fleetlet, following))


async def _changed(fleetlet: Fleetlet, following: Following) -> None:
    first, second = fleetlet.targets[0].vehicle_id, fleetlet.targets[1].vehicle_id
    device = _sql(
        fleetlet,
        "INSERT INTO device (protocol, identifier, vehicle_id, unit_id)"
        " VALUES ('osmand', 'follow-2', :v, :u) RETURNING id",
        v=first,
        u=fleetlet.unit_id,
    )
    await _eventually(lambda: following.lookup("follow-2"), "the new device")

    _sql(fleetlet, "UPDATE device SET enabled = false WHERE id = :d", d=device)

    async def disabled() -> bool:
        known = await following.lookup("follow-2")
        return known is not None and not known.enabled

    await _eventually(disabled, "the device disabled")

    _sql(
        fleetlet,
        "UPDATE device SET enabled = true, vehicle_id = :v WHERE id = :d",
        v=second,
        d=device,
    )

    async def moved() -> bool:
        known = await following.lookup("follow-2")
        return known is not None and known.vehicle_id == second and known.enabled

    await _eventually(moved, "the device moved to the second vehicle")

    _sql(fleetlet, "UPDATE device SET identifier = 'follow-2b' WHERE id = :d", d=device)
    await _eventually(lambda: following.lookup("follow-2b"), "the device under its new identifier")
    assert await following.lookup("follow-2") is None

    _sql(fleetlet, "DELETE FROM device WHERE id = :d", d=device)

    async def removed() -> bool:
        return await following.lookup("follow-2b") is None

    await _eventually(removed, "the device removed")


def test_a_vehicle_moved_to_another_unit_moves_its_devices_live_scope(fleetlet: Fleetlet) -> None:
    _following(fleetlet, lambda following: _vehicle_moved(fleetlet, following))


async def _vehicle_moved(fleetlet: Fleetlet, following: Following) -> None:
    vehicle = fleetlet.targets[2].vehicle_id
    before = await following.lookup("phone-2")
    assert before is not None
    assert before.unit_id == fleetlet.unit_id
    other = _sql(
        fleetlet,
        "INSERT INTO org_unit (code, name, parent_id, path)"
        " SELECT 'TEL-SUB', '分队', id, path FROM org_unit WHERE id = :u RETURNING id",
        u=fleetlet.unit_id,
    )
    _sql(fleetlet, "UPDATE org_unit SET path = path || id || '/' WHERE id = :o", o=other)
    try:
        _sql(fleetlet, "UPDATE vehicle SET unit_id = :o WHERE id = :v", o=other, v=vehicle)

        async def moved() -> bool:
            known = await following.lookup("phone-2")
            return known is not None and known.unit_id == other

        await _eventually(moved, "the device's live scope to follow its vehicle")
    finally:
        _sql(
            fleetlet, "UPDATE vehicle SET unit_id = :u WHERE id = :v", u=fleetlet.unit_id, v=vehicle
        )
        _sql(fleetlet, "DELETE FROM org_unit WHERE id = :o", o=other)


def test_a_directory_that_does_not_listen_reloads_on_a_miss(fleetlet: Fleetlet) -> None:
    directory = DeviceDirectory(fleetlet.engine, refresh_s=HOUR)
    asyncio.run(directory.refresh())
    _sql(
        fleetlet,
        "INSERT INTO device (protocol, identifier, vehicle_id, unit_id)"
        " VALUES ('osmand', 'follow-3', :v, :u)",
        v=fleetlet.targets[0].vehicle_id,
        u=fleetlet.unit_id,
    )
    try:
        time.sleep(1.1)  # a miss reloads at most once a second
        known = asyncio.run(directory.lookup(DeviceProtocol.OSMAND, "follow-3"))
        assert known is not None
    finally:
        _sql(fleetlet, "DELETE FROM device WHERE identifier = 'follow-3'")


def test_a_running_gateway_refuses_at_once_a_terminal_disabled_after_it_started(
    fleetlet: Fleetlet, redis_address: RedisAddress
) -> None:
    """The gateway trusts its copy for an hour here: only the registry's announcement can tell
    it that the device it loaded enabled has been disabled."""
    settings = TelematicsSettings(
        gateway_host="127.0.0.1",
        jt808_port=free_port(),
        osmand_port=free_port(),
        stream_shards=4,
        device_cache_s=HOUR,
    )
    phone = "13955550001"
    _sql(
        fleetlet,
        "INSERT INTO device (protocol, identifier, vehicle_id, unit_id)"
        " VALUES ('jt808', :p, :v, :u)",
        p=phone,
        v=fleetlet.targets[0].vehicle_id,
        u=fleetlet.unit_id,
    )

    async def register() -> int:
        client = await terminal(settings.jt808_port)
        try:
            reply = await client.send(MsgId.REGISTER, jt808.register_body(), phone=phone)
        finally:
            client.writer.close()
        return int(reply.body[2])

    async def scenario() -> tuple[int, int]:
        async with running(fleetlet, settings, redis_address):
            before = await register()
            _sql(fleetlet, "UPDATE device SET enabled = false WHERE identifier = :p", p=phone)
            after = before
            for _ in range(100):  # a liveness bound: the announcement arrives within moments
                after = await register()
                if after != before:
                    break
                await asyncio.sleep(0.2)
            return before, after

    try:
        assert asyncio.run(scenario()) == (RegisterResult.OK, RegisterResult.NO_SUCH_TERMINAL)
    finally:
        _sql(fleetlet, "DELETE FROM device WHERE identifier = :p", p=phone)


def test_a_burst_of_lookups_on_a_stale_copy_makes_one_reload(fleetlet: Fleetlet) -> None:
    """A reconnection storm on a gateway that cannot listen: thousands of lookups find the copy
    old at once, and all of them wait for the one reload the first one started."""
    watched = Following(DeviceDirectory(fleetlet.engine, refresh_s=1.0))

    async def burst() -> list[KnownDevice | None]:
        await watched.directory.refresh()
        await asyncio.sleep(1.1)  # the copy is old now
        return await asyncio.gather(*(watched.lookup("phone-0") for _ in range(2000)))

    found = asyncio.run(burst())
    assert all(known is not None for known in found)
    assert watched.reloads == 2  # the first load, then one reload for the whole burst
