"""The live WebSocket: a snapshot of the caller's vehicles, then deltas (positions, and alerts
for those who may read them), then keepalives.
The socket's token is checked again every `token_recheck_s` (FLEET_LIVE_TOKEN_RECHECK_S): once
it no longer authenticates (logout, expiry, a deactivated user) the socket is closed, 4401.

One Redis subscription per process fans out to every connected client. Each client holds only
the latest position per vehicle that it has not been sent yet, so a slow client costs at most one
entry per vehicle in its scope, never an unbounded queue; alerts likewise keep the latest state
of each episode, at most `MAX_PENDING_ALERTS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from fleet import auth as auth_service
from fleet import channels
from fleet.errors import FleetError, NotAuthenticated
from fleet.models import Role
from fleet.redis_client import RedisAddress
from telematics import service as telematics_service

log = logging.getLogger("fleet.live")
router = APIRouter()


MAX_PENDING_ALERTS = 1000


def _keep_newest(buffer: dict[Any, dict[str, Any]], key: Any, item: dict[str, Any]) -> None:
    """Keeps `item` as the newest of its key, in a buffer bounded to MAX_PENDING_ALERTS (the
    oldest goes first)."""
    buffer.pop(key, None)
    buffer[key] = item
    if len(buffer) > MAX_PENDING_ALERTS:
        del buffer[next(iter(buffer))]


class LiveClient:
    def __init__(
        self,
        unit_ids: frozenset[int],
        *,
        alerts: bool = False,
        positions: bool = True,
        user_id: int | None = None,
        staff: bool = False,
    ) -> None:
        self.unit_ids = unit_ids
        self.wants_alerts = alerts
        self.wants_positions = positions
        self.user_id = user_id
        self.staff = staff  # sees the orders of its units, not only its own
        self.latest: dict[int, dict[str, Any]] = {}
        self.alerts: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.ready = asyncio.Event()
        self.recheck = asyncio.Event()  # a token of this user was revoked: check ours now

    def offer_orders(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            mine = self.user_id is not None and self.user_id in (
                item.get("requester_id"),
                item.get("driver_user_id"),
            )
            if mine or (self.staff and item.get("unit_id") in self.unit_ids):
                _keep_newest(self.orders, item["id"], item)
        if self.orders:
            self.ready.set()

    def take_orders(self) -> list[dict[str, Any]]:
        items, self.orders = list(self.orders.values()), {}
        return items

    def offer(self, items: list[dict[str, Any]]) -> None:
        if not self.wants_positions:
            return
        for item in items:
            if item.get("unit_id") in self.unit_ids:
                self.latest[item["vehicle_id"]] = item
        if self.latest:
            self.ready.set()

    def offer_alerts(self, items: list[dict[str, Any]]) -> None:
        if not self.wants_alerts:
            return
        for item in items:
            if item.get("unit_id") in self.unit_ids:
                key = (item["vehicle_id"], item["kind"], item["key"], item["started_t"])
                _keep_newest(self.alerts, key, item)
        if self.alerts:
            self.ready.set()

    def take(self) -> list[dict[str, Any]]:
        items, self.latest = list(self.latest.values()), {}
        self.ready.clear()
        return items

    def take_alerts(self) -> list[dict[str, Any]]:
        items, self.alerts = list(self.alerts.values()), {}
        return items


class LiveHub:
    def __init__(
        self, redis_address: RedisAddress, keepalive_s: float = 15.0, token_recheck_s: float = 30.0
    ) -> None:
        self.redis_address = redis_address
        self.keepalive_s = keepalive_s
        self.token_recheck_s = token_recheck_s
        self.clients: set[LiveClient] = set()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        while True:
            # On a cluster the subscription is on the node the channels hash to: PUBLISH on any
            # node reaches every node's subscribers.
            redis = self.redis_address.connect_async()
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(
                        channels.LIVE, channels.ALERTS, channels.ORDERS, channels.REVOKED
                    )
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.dispatch(json.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis away: keep trying, clients keep their sockets
                log.warning("live feed interrupted: %s", error)
                await asyncio.sleep(1.0)
            finally:
                await redis.aclose()

    def dispatch(self, message: dict[str, Any]) -> None:
        items = message.get("items") or []
        kind = message.get("type")
        if kind == "revoked":
            for client in self.clients:
                if client.user_id is not None and client.user_id == message.get("user_id"):
                    client.recheck.set()
            return
        for client in self.clients:
            if kind == "alerts":
                client.offer_alerts(items)
            elif kind == "orders":
                client.offer_orders(items)
            else:
                client.offer(items)


async def _sender(websocket: WebSocket, client: LiveClient, keepalive_s: float) -> None:
    while True:
        try:
            await asyncio.wait_for(client.ready.wait(), timeout=keepalive_s)
        except TimeoutError:
            await websocket.send_json({"type": "keepalive"})
            continue
        alerts = client.take_alerts()
        orders = client.take_orders()
        positions = client.take()
        if positions:
            await websocket.send_json({"type": "positions", "items": positions})
        if alerts:
            await websocket.send_json({"type": "alerts", "items": alerts})
        if orders:
            await websocket.send_json({"type": "orders", "items": orders})


async def _receiver(websocket: WebSocket) -> None:
    """Returns when the client leaves; it may send pings, which need no answer."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


def _authenticate(websocket: WebSocket, token: str) -> None:
    app = websocket.app
    with app.state.session_factory() as session:
        auth_service.authenticate(session=session, settings=app.state.settings, token=token)


async def _token_watch(
    websocket: WebSocket, client: LiveClient, token: str, every_s: float
) -> None:
    """Returns once the token no longer authenticates, checked every `every_s` and at once when
    one of the user's tokens is revoked (logout, deactivation). A database that cannot be asked
    is no verdict: the socket stays, as it does while Redis is away, and the next check asks
    again."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.recheck.wait(), timeout=every_s)
        client.recheck.clear()
        try:
            await asyncio.to_thread(_authenticate, websocket, token)
        except NotAuthenticated:
            return
        except Exception as error:
            log.warning("live socket token check failed: %s", error)


def _authorise(websocket: WebSocket, token: str) -> LiveClient:
    """A client for the caller: positions and alerts as their roles allow, within their units;
    every caller hears of their own orders (a requester's phone gets nothing else)."""
    app = websocket.app
    with app.state.session_factory() as session:
        actor = auth_service.authenticate(session=session, settings=app.state.settings, token=token)
        return LiveClient(
            telematics_service.scope_unit_ids(session=session, actor=actor),
            alerts=actor.has(*auth_service.PERMISSIONS[("alert", "read")]),
            positions=actor.has(*auth_service.PERMISSIONS[("vehicle", "read")]),
            user_id=actor.user_id,
            staff=actor.has(Role.ADMIN, Role.APPROVER, Role.DISPATCHER, Role.SUPERVISOR),
        )


@router.websocket("/ws/live")
async def live_socket(websocket: WebSocket, token: str = "") -> None:
    """Browsers cannot set headers on a WebSocket, so the bearer token comes as `?token=`."""
    try:
        client = await asyncio.to_thread(_authorise, websocket, token)
    except FleetError as error:
        await websocket.close(code=4401 if error.code == "not_authenticated" else 4403)
        return
    await websocket.accept()
    hub: LiveHub = websocket.app.state.live_hub
    hub.clients.add(client)
    try:
        snapshot = (
            await asyncio.to_thread(
                telematics_service.snapshot_for_units, websocket.app.state.redis, client.unit_ids
            )
            if client.wants_positions
            else []
        )
        await websocket.send_json({"type": "snapshot", "items": snapshot})
        sender = asyncio.create_task(_sender(websocket, client, hub.keepalive_s))
        receiver = asyncio.create_task(_receiver(websocket))
        watch = asyncio.create_task(_token_watch(websocket, client, token, hub.token_recheck_s))
        tasks = {sender, receiver, watch}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if watch.done() and not watch.cancelled() and watch.exception() is None:
            hub.clients.discard(client)  # nothing more for it, even before the close completes
            if websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close(code=4401, reason="the token is no longer valid")
    finally:
        hub.clients.discard(client)
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()
