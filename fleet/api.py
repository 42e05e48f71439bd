"""FastAPI dependencies every router uses: the request's session, settings, Redis, the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import Depends, Query, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from fleet import auth as auth_service
from fleet.auth import Actor
from fleet.db import unit_of_work, utcnow
from fleet.errors import NotAuthenticated
from fleet.paging import Listing
from fleet.redis_client import RedisClient
from fleet.schemas import INT4_MAX
from fleet.settings import Settings

bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


class FastJSON(Response):
    """A large answer (a track, the live fleet, a year's statistics) as JSON made by orjson, the
    same text FastAPI would make: FastAPI's own encoding first walks every value in Python (about
    1 s for 30,000 live vehicles, against 10 ms). Routes returning it declare their schema in
    `responses` for the OpenAPI document."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=_plain)


def _plain(value: Any) -> Any:
    """What orjson does not know, as FastAPI encodes it (a Decimal: int when whole, else float)."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)  # type: ignore[operator]
    raise TypeError(f"{type(value).__name__} is not JSON")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency reading what the app factory put on `app.state` under `name` (each
    domain's settings): wrap it in `Annotated[TheType, Depends(from_state(...))]` once, beside
    the settings class, so every route names its settings by type."""

    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"state_{name}"
    return get


def get_zone(request: Request) -> ZoneInfo:
    return get_settings(request).zone


def get_redis(request: Request) -> RedisClient:
    redis: RedisClient = request.app.state.redis
    return redis


def get_session(request: Request) -> Iterator[Session]:
    """The request is the transaction: commit when the handler returns, roll back on error."""
    with unit_of_work(request.app.state.session_factory) as session:
        yield session


# scope="function": the commit runs when the handler returns, before the answer is sent. With the
# default (request) scope FastAPI commits after sending, so a client acting at once on a write
# (a new token, a new order) could still read the state before it, and a failed commit would
# follow a success already sent.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_read_session(request: Request, session: SessionDep) -> Iterator[Session]:
    """A session on the replica (FLEET_READ_DATABASE_URL) for the heavy reads, never committed;
    without a replica, the request's own session."""
    factory = request.app.state.read_session_factory
    if factory is None:
        yield session
        return
    with factory() as reading:
        yield reading


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


def get_stream_session(request: Request) -> Iterator[Session]:
    """A session for an answer streamed after the handler returns (a bulk export): the
    request's own is closed by then. On the replica if any, never committed; closed once the
    answer is sent (the default, request scope)."""
    factory = request.app.state.read_session_factory or request.app.state.session_factory
    with factory() as reading:
        yield reading


StreamSessionDep = Annotated[Session, Depends(get_stream_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[RedisClient, Depends(get_redis)]
ZoneDep = Annotated[ZoneInfo, Depends(get_zone)]  # the display zone (FLEET_DISPLAY_TIMEZONE)


def get_now() -> datetime:
    """The request's clock: what a route takes as now (a test pins it by overriding this)."""
    return utcnow()


NowDep = Annotated[datetime, Depends(get_now)]


def current_token(token: Annotated[str | None, Depends(bearer)]) -> str:
    if not token:
        raise NotAuthenticated("send Authorization: Bearer <token> (POST /api/v1/auth/token)")
    return token


def current_actor(
    session: SessionDep, settings: SettingsDep, token: Annotated[str, Depends(current_token)]
) -> Actor:
    return auth_service.authenticate(session=session, settings=settings, token=token)


ActorDep = Annotated[Actor, Depends(current_actor)]


def listing(
    limit: Annotated[int, Query(ge=1, le=500, description="Rows per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=INT4_MAX, description="Rows to skip.")] = 0,
) -> Listing:
    return Listing(limit=limit, offset=offset)


ListingDep = Annotated[Listing, Depends(listing)]


def client_address(request: Request) -> str:
    """Where the request came from, as the server saw it (the reverse proxy's forwarded address
    when the proxy is trusted), for the record of who read what."""
    return request.client.host if request.client else "unknown"


ClientDep = Annotated[str, Depends(client_address)]
