"""The OsmAnd HTTP gateway (port 5055): what the Traccar Client apps and many devices send.

200 with an empty body when the fix is in Redis; 400 for what cannot be a fix; 403 for a device
that is not registered (recorded for the administrators); 503 when the stream cannot take it, so
the app keeps the fix and retries (the apps retry on anything but 200)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fleet.models import DeviceProtocol
from telematics.gateway import Intake
from telematics.protocols import osmand
from telematics.settings import TelematicsSettings
from telematics.stream import Backlogged

log = logging.getLogger("fleet.gateway.osmand")
MAX_BODY = 1_000_000


def osmand_app(intake: Intake, settings: TelematicsSettings) -> Starlette:
    async def receive(request: Request) -> Response:
        now = datetime.now(UTC)
        try:
            body = await request.body()
            if len(body) > MAX_BODY:
                raise osmand.OsmandError("request body too large")
            content_type = request.headers.get("content-type", "")
            if "json" in content_type:
                fixes = osmand.decode_json(body, now=now, speed_unit=settings.osmand_speed_unit)
            else:
                params = list(request.query_params.multi_items())
                if body and "form" in content_type:
                    form = await request.form()
                    params += [(k, str(v)) for k, v in form.multi_items()]
                fixes = osmand.decode_query(params, now=now, speed_unit=settings.osmand_speed_unit)
        except osmand.OsmandError as error:
            intake.counters.add("dropped_bad_request")
            return PlainTextResponse(str(error), status_code=400)
        if not fixes:
            intake.counters.add("dropped_no_fix")
            return PlainTextResponse("no position in this request", status_code=400)
        identifier = fixes[0].device_identifier
        known = await intake.directory.lookup(DeviceProtocol.OSMAND, identifier)
        target = known.target if known else None
        if target is None:
            intake.counters.add("refused_unknown_device")
            client = request.client.host if request.client else ""
            if known is None:
                await intake.directory.record_unknown(
                    DeviceProtocol.OSMAND, identifier, client, str(request.url)[:1000]
                )
            why = (
                "unknown device" if known is None else "device disabled or not fitted to a vehicle"
            )
            return PlainTextResponse(f"{why}: {identifier}", status_code=403)
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
