"""The OsmAnd HTTP gateway (port 5055): what the Traccar Client apps and many devices send.

200 with an empty body when the fix is in Redis; 400 for what cannot be a fix; 403 for a device
that is not registered, or that has a secret and was not sent it as `key=` (both recorded for the
administrators, and answered alike so that the answer tells nobody which ids exist); 413 for a
body over `MAX_BODY`, from its declared length or while it streams in, before it is all read;
503 when the stream cannot take it, so the app keeps the fix and retries (the apps retry on
anything but 200)."""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fleet.models import DeviceProtocol
from fleet.registry import device_secret_digest
from telematics.devices import KnownDevice
from telematics.gateway import Intake
from telematics.protocols import osmand
from telematics.settings import TelematicsSettings
from telematics.stream import Backlogged

log = logging.getLogger("fleet.gateway.osmand")
MAX_BODY = 1_000_000  # bytes: a batch of locations is a few kilobytes
KEY = "key"  # the query (or form) parameter that carries a device's secret
REFUSED = "unknown device or wrong key"
_NO_SECRET = device_secret_digest("")  # compared against when there is nothing to compare


class BodyTooLarge(Exception):
    pass


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused (BodyTooLarge) as soon as it is known to pass `limit` bytes:
    from Content-Length before reading anything, else while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise osmand.OsmandError("Content-Length is not a number")
        if int(declared) > limit:
            raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request: Request, body: bytes) -> list[tuple[str, str]]:
    """A form body already read, parsed by Starlette from a replay of it."""

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form()
    return [(k, str(v)) for k, v in form.multi_items()]


def key_fits(known: KnownDevice | None, key: str | None) -> bool:
    """Whether the request may speak for the device: it exists and, if it has a secret, `key` is
    that secret (compared in constant time; an unknown id costs the same comparison)."""
    expected = known.secret_digest if known is not None else _NO_SECRET
    if expected is None:
        return True  # a device without a secret
    matches = hmac.compare_digest(expected, device_secret_digest(key or ""))
    return matches and known is not None and key is not None


def osmand_app(intake: Intake, settings: TelematicsSettings) -> Starlette:
    async def receive(request: Request) -> Response:
        now = datetime.now(UTC)
        try:
            body = await bounded_body(request, MAX_BODY)
            content_type = request.headers.get("content-type", "")
            params = list(request.query_params.multi_items())
            if body and "form" in content_type and "json" not in content_type:
                params += await _form(request, body)
            keys = [v for k, v in params if k == KEY]
            # The secret is a credential, never a fix's attribute.
            params = [(k, v) for k, v in params if k != KEY]
            if "json" in content_type:
                fixes = osmand.decode_json(body, now=now, speed_unit=settings.osmand_speed_unit)
            else:
                fixes = osmand.decode_query(params, now=now, speed_unit=settings.osmand_speed_unit)
        except BodyTooLarge:
            intake.counters.add("refused_body_too_large")
            return PlainTextResponse(
                f"request body over {MAX_BODY} bytes",
                status_code=413,
                headers={"Connection": "close"},
            )
        except osmand.OsmandError as error:
            intake.counters.add("dropped_bad_request")
            return PlainTextResponse(str(error), status_code=400)
        if not fixes:
            intake.counters.add("dropped_no_fix")
            return PlainTextResponse("no position in this request", status_code=400)
        identifier = fixes[0].device_identifier
        known = await intake.directory.lookup(DeviceProtocol.OSMAND, identifier)
        if not key_fits(known, keys[-1] if keys else None):
            intake.counters.add("refused_unknown_device" if known is None else "refused_bad_key")
            client = request.client.host if request.client else ""
            why = "unknown device" if known is None else "missing or wrong key"
            url = request.url.remove_query_params(KEY)
            await intake.directory.record_unknown(
                DeviceProtocol.OSMAND, identifier, client, f"{why}: {str(url)[:900]}"
            )
            return PlainTextResponse(REFUSED, status_code=403)
        target = known.target if known else None
        if target is None:
            intake.counters.add("refused_unknown_device")
            return PlainTextResponse(
                f"device disabled or not fitted to a vehicle: {identifier}", status_code=403
            )
        rows, dropped = intake.admit(fixes, target, "osmand")
        if not rows:
            return PlainTextResponse(
                f"{dropped} fix(es) refused: impossible position, speed or time", status_code=400
            )
        try:
            await intake.writer.append(rows)
        except Backlogged as error:
            intake.counters.add("deferred_backlog", len(rows))
            return PlainTextResponse(str(error), status_code=503, headers={"Retry-After": "5"})
        except Exception as error:
            log.warning("stream unavailable: %s", error)
            intake.counters.add("deferred_stream_error", len(rows))
            return PlainTextResponse("stream unavailable", status_code=503)
        return Response(status_code=200)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["GET", "POST"])])


def osmand_server(intake: Intake, settings: TelematicsSettings) -> uvicorn.Server:
    config = uvicorn.Config(
        osmand_app(intake, settings),
        host=settings.gateway_host,
        port=settings.osmand_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=75,  # phones report every few seconds; keep their connection
    )
    return uvicorn.Server(config)
