"""HTTP routes of the kernel: health, login, and the registry under /api/v1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet import access, integrations, notifications, registry
from fleet import auth as auth_service
from fleet.api import (
    ActorDep,
    ListingDep,
    NowDep,
    RedisDep,
    SessionDep,
    SettingsDep,
    current_token,
)
from fleet.models import (
    BodyClass,
    DeviceProtocol,
    Energy,
    NotificationState,
    OrgUnit,
    Role,
    VehicleCategory,
    VehicleStatus,
)
from fleet.paging import Listing
from fleet.schemas import (
    AccessEntryOut,
    AuditEntryOut,
    DeviceCreate,
    DeviceOut,
    DeviceRebind,
    DeviceUpdate,
    DriverCreate,
    DriverOut,
    DriverUpdate,
    Health,
    HealthWarning,
    Id,
    IntegrationCreate,
    IntegrationOut,
    IntegrationUpdate,
    Me,
    MyNotificationsOut,
    MyNotificationUpdate,
    NotificationOut,
    NotificationSettingUpdate,
    Page,
    Text,
    Token,
    UnitCreate,
    UnitNotificationsOut,
    UnitOut,
    UnitUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
    VehicleCreate,
    VehicleOut,
    VehicleUpdate,
)

health_router = APIRouter(tags=["health"])
router = APIRouter(prefix="/api/v1")


def _page(model: Any, result: tuple[Any, int], listing: Listing) -> dict[str, Any]:
    items, total = result
    return listing.answer((model.model_validate(i) for i in items), total)


# What a domain adds to /healthz: warnings (dicts with `code` and `message`) from a session
# and the moment; the app factory lists them on `app.state.health_checks`.
HealthCheck = Callable[[Session, datetime], list[dict[str, Any]]]


@health_router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(
    session: SessionDep, redis: RedisDep, response: Response, request: Request, now: NowDep
) -> Health:
    details: dict[str, str] = {}
    try:
        details["postgis"] = str(session.execute(text("SELECT postgis_lib_version()")).scalar())
        database = "up"
    except Exception as error:
        database = "down"
        details["database_error"] = str(error).splitlines()[0]
    try:
        redis.ping()
        redis_state = "up"
    except Exception as error:
        redis_state = "down"
        details["redis_error"] = str(error)
    down = [
        name for name, state in (("database", database), ("redis", redis_state)) if state != "up"
    ]
    if down:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    warnings: list[dict[str, Any]] = []
    if database == "up":
        checks: list[HealthCheck] = getattr(request.app.state, "health_checks", [])
        try:
            # A check that fails is reported; the savepoint keeps the request's transaction usable.
            with session.begin_nested():
                for check in checks:
                    warnings += check(session, now)
        except Exception as error:
            warnings = []
            details["warnings_error"] = str(error).splitlines()[0]
    return Health(
        status="ok" if not down else f"down: {', '.join(down)}",
        database=database,
        redis=redis_state,
        details=details,
        warnings=[HealthWarning.model_validate(w) for w in warnings],
    )


# ---- auth -----------------------------------------------------------------------------------


@router.post("/auth/token", response_model=Token, tags=["auth"])
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    request: Request,
) -> Token:
    """Failed logins are counted per username and source address, per address and per username;
    a count at its limit answers 429 (see the FLEET_LOGIN_* settings). With FLEET_LOCAL_LOGIN
    false, a password is refused (403) but from a break-glass root administrator."""
    token, ttl = auth_service.login(
        session=session,
        redis=redis,
        settings=settings,
        username=form.username,
        password=form.password,
        address=request.client.host if request.client else "unknown",
    )
    return Token(access_token=token, expires_in=ttl)


@router.post("/auth/logout", status_code=204, tags=["auth"])
def logout(
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    token: Annotated[str, Depends(current_token)],
) -> None:
    auth_service.logout(session=session, settings=settings, token=token)


@router.get("/me", response_model=Me, tags=["auth"])
def me(session: SessionDep, actor: ActorDep) -> Me:
    assert actor.user_id is not None  # a token always belongs to a user
    user = registry.get_user(session=session, actor=actor, user_id=actor.user_id)
    return Me.model_validate(
        {**UserOut.model_validate(user).model_dump(), "unit_path": actor.unit_path}
    )


@router.get("/me/notifications", response_model=MyNotificationsOut, tags=["notifications"])
def my_notifications(session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Your channels and addresses, and where messages go now (your own over your units')."""
    return notifications.mine(session=session, actor=actor)


@router.patch(
    "/me/notifications",
    response_model=MyNotificationsOut,
    tags=["notifications"],
    responses={
        422: {"description": "An address or URL that is not one, or a robot on another host."}
    },
)
def set_my_notifications(
    session: SessionDep, settings: SettingsDep, actor: ActorDep, data: MyNotificationUpdate
) -> dict[str, Any]:
    """A robot's URL must name one of FLEET_NOTIFY_ROBOT_HOSTS (422 otherwise)."""
    return notifications.update_mine(session=session, settings=settings, actor=actor, data=data)


@router.get("/me/notifications/sent", response_model=Page[NotificationOut], tags=["notifications"])
def my_sent_notifications(
    session: SessionDep, actor: ActorDep, listing: ListingDep
) -> dict[str, Any]:
    """The messages to you (pending, sent and given up on), newest first."""
    items, total = notifications.list_mine(session=session, actor=actor, listing=listing)
    return listing.answer(items, total)


@router.get(
    "/notifications",
    response_model=Page[NotificationOut],
    tags=["notifications"],
    responses={403: {"description": "Not an administrator."}},
)
def list_notifications(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    state: NotificationState | None = None,
    user_id: Id | None = None,
    kind: Annotated[Text | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """The messages to the people in your units, newest first (administrators): a dead one
    could not be delivered, a pending one waits for its next attempt."""
    items, total = notifications.list_(
        session=session, actor=actor, listing=listing, state=state, user_id=user_id, kind=kind
    )
    return listing.answer(items, total)


@router.post(
    "/notifications/{notification_id}/retry",
    response_model=NotificationOut,
    tags=["notifications"],
    responses={
        403: {"description": "Not an administrator."},
        404: {"description": "No such notification to a person in your units."},
        409: {"description": "The notification is not dead (pending or sent)."},
    },
)
def retry_notification(session: SessionDep, actor: ActorDep, notification_id: Id) -> dict[str, Any]:
    """A dead notification is tried again: pending, its attempts reset, its dead letter
    removed. Audited."""
    return notifications.retry(session=session, actor=actor, notification_id=notification_id)


@router.get(
    "/units/{unit_id}/notifications",
    response_model=UnitNotificationsOut,
    tags=["notifications"],
    responses={403: {"description": "Not an administrator."}, 404: {"description": "No unit."}},
)
def unit_notifications(session: SessionDep, actor: ActorDep, unit_id: Id) -> dict[str, Any]:
    """The unit's defaults, for everyone in it and under it who sets no channel of their own."""
    return notifications.of_unit(session=session, actor=actor, unit_id=unit_id)


@router.patch(
    "/units/{unit_id}/notifications",
    response_model=UnitNotificationsOut,
    tags=["notifications"],
    responses={403: {"description": "Not an administrator."}, 404: {"description": "No unit."}},
)
def set_unit_notifications(
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    unit_id: Id,
    data: NotificationSettingUpdate,
) -> dict[str, Any]:
    return notifications.update_unit(
        session=session, settings=settings, actor=actor, unit_id=unit_id, data=data
    )


# ---- units ----------------------------------------------------------------------------------


@router.get("/units", response_model=Page[UnitOut], tags=["units"])
def list_units(
    session: SessionDep, actor: ActorDep, listing: ListingDep, parent_id: Id | None = None
) -> dict[str, Any]:
    result = registry.list_units(session=session, actor=actor, listing=listing, parent_id=parent_id)
    return _page(UnitOut, result, listing)


@router.post("/units", response_model=UnitOut, status_code=201, tags=["units"])
def create_unit(session: SessionDep, actor: ActorDep, data: UnitCreate) -> OrgUnit:
    return registry.create_unit(session=session, actor=actor, data=data)


@router.get("/units/{unit_id}", response_model=UnitOut, tags=["units"])
def get_unit(session: SessionDep, actor: ActorDep, unit_id: Id) -> OrgUnit:
    return registry.get_unit(session=session, actor=actor, unit_id=unit_id)


@router.patch("/units/{unit_id}", response_model=UnitOut, tags=["units"])
def update_unit(session: SessionDep, actor: ActorDep, unit_id: Id, data: UnitUpdate) -> OrgUnit:
    return registry.update_unit(session=session, actor=actor, unit_id=unit_id, data=data)


@router.delete("/units/{unit_id}", status_code=204, tags=["units"])
def delete_unit(session: SessionDep, actor: ActorDep, unit_id: Id) -> None:
    registry.delete_unit(session=session, actor=actor, unit_id=unit_id)


# ---- users ----------------------------------------------------------------------------------


@router.get("/users", response_model=Page[UserOut], tags=["users"])
def list_users(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    unit_id: Id | None = None,
    role: Role | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    result = registry.list_users(
        session=session, actor=actor, listing=listing, unit_id=unit_id, role=role, active=active
    )
    return _page(UserOut, result, listing)


@router.post("/users", response_model=UserOut, status_code=201, tags=["users"])
def create_user(session: SessionDep, actor: ActorDep, data: UserCreate) -> Any:
    return registry.create_user(session=session, actor=actor, data=data)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(session: SessionDep, actor: ActorDep, user_id: Id) -> Any:
    return registry.get_user(session=session, actor=actor, user_id=user_id)


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
def update_user(session: SessionDep, actor: ActorDep, user_id: Id, data: UserUpdate) -> Any:
    return registry.update_user(session=session, actor=actor, user_id=user_id, data=data)


@router.delete(
    "/users/{user_id}",
    status_code=204,
    tags=["users"],
    summary="Deactivate a user (accounts are kept for the audit trail) and revoke their tokens",
)
def delete_user(session: SessionDep, actor: ActorDep, user_id: Id) -> None:
    registry.deactivate_user(session=session, actor=actor, user_id=user_id)


# ---- vehicles -------------------------------------------------------------------------------


@router.get("/vehicles", response_model=Page[VehicleOut], tags=["vehicles"])
def list_vehicles(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    unit_id: Id | None = None,
    category: VehicleCategory | None = None,
    body_class: BodyClass | None = None,
    energy: Energy | None = None,
    status: VehicleStatus | None = None,
    min_seats: Annotated[int | None, Query(ge=1, le=60)] = None,
    plate: Annotated[Text | None, Query(max_length=16, description="Part of the plate.")] = None,
) -> dict[str, Any]:
    filters = {
        "unit_id": unit_id,
        "category": category,
        "body_class": body_class,
        "energy": energy,
        "status": status,
        "min_seats": min_seats,
        "plate": plate,
    }
    result = registry.list_vehicles(session=session, actor=actor, listing=listing, filters=filters)
    return _page(VehicleOut, result, listing)


@router.post("/vehicles", response_model=VehicleOut, status_code=201, tags=["vehicles"])
def create_vehicle(session: SessionDep, actor: ActorDep, data: VehicleCreate) -> Any:
    return registry.create_vehicle(session=session, actor=actor, data=data)


@router.get("/vehicles/{vehicle_id}", response_model=VehicleOut, tags=["vehicles"])
def get_vehicle(session: SessionDep, actor: ActorDep, vehicle_id: Id) -> Any:
    return registry.get_vehicle(session=session, actor=actor, vehicle_id=vehicle_id)


@router.patch("/vehicles/{vehicle_id}", response_model=VehicleOut, tags=["vehicles"])
def update_vehicle(
    session: SessionDep, actor: ActorDep, vehicle_id: Id, data: VehicleUpdate, now: NowDep
) -> Any:
    return registry.update_vehicle(
        session=session, actor=actor, vehicle_id=vehicle_id, data=data, now=now
    )


@router.delete("/vehicles/{vehicle_id}", status_code=204, tags=["vehicles"])
def delete_vehicle(session: SessionDep, actor: ActorDep, vehicle_id: Id) -> None:
    registry.delete_vehicle(session=session, actor=actor, vehicle_id=vehicle_id)


# ---- drivers --------------------------------------------------------------------------------


@router.get("/drivers", response_model=Page[DriverOut], tags=["drivers"])
def list_drivers(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    unit_id: Id | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    result = registry.list_drivers(
        session=session, actor=actor, listing=listing, unit_id=unit_id, active=active
    )
    return _page(DriverOut, result, listing)


@router.post("/drivers", response_model=DriverOut, status_code=201, tags=["drivers"])
def create_driver(session: SessionDep, actor: ActorDep, data: DriverCreate) -> Any:
    return registry.create_driver(session=session, actor=actor, data=data)


@router.get("/drivers/{driver_id}", response_model=DriverOut, tags=["drivers"])
def get_driver(session: SessionDep, actor: ActorDep, driver_id: Id) -> Any:
    return registry.get_driver(session=session, actor=actor, driver_id=driver_id)


@router.patch("/drivers/{driver_id}", response_model=DriverOut, tags=["drivers"])
def update_driver(session: SessionDep, actor: ActorDep, driver_id: Id, data: DriverUpdate) -> Any:
    return registry.update_driver(session=session, actor=actor, driver_id=driver_id, data=data)


@router.delete("/drivers/{driver_id}", status_code=204, tags=["drivers"])
def delete_driver(session: SessionDep, actor: ActorDep, driver_id: Id) -> None:
    registry.delete_driver(session=session, actor=actor, driver_id=driver_id)


# ---- devices --------------------------------------------------------------------------------


@router.get("/devices", response_model=Page[DeviceOut], tags=["devices"])
def list_devices(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    protocol: DeviceProtocol | None = None,
    vehicle_id: Id | None = None,
    enabled: bool | None = None,
) -> dict[str, Any]:
    result = registry.list_devices(
        session=session,
        actor=actor,
        listing=listing,
        protocol=protocol,
        vehicle_id=vehicle_id,
        enabled=enabled,
    )
    return _page(DeviceOut, result, listing)


@router.post("/devices", response_model=DeviceOut, status_code=201, tags=["devices"])
def create_device(session: SessionDep, actor: ActorDep, data: DeviceCreate) -> Any:
    return registry.create_device(session=session, actor=actor, data=data)


@router.post("/devices/{device_id}/token", response_model=DeviceOut, tags=["devices"])
def rotate_device_token(session: SessionDep, actor: ActorDep, device_id: Id) -> Any:
    return registry.rotate_device_token(session=session, actor=actor, device_id=device_id)


@router.post(
    "/devices/{device_id}/rebind",
    response_model=DeviceOut,
    tags=["devices"],
    responses={403: {"description": "Not an administrator."}, 404: {}, 422: {}},
)
def rebind_device(
    session: SessionDep, actor: ActorDep, device_id: Id, data: DeviceRebind | None = None
) -> Any:
    """JT/T 808: forget the bound terminal and revoke its auth code, so that a replacement
    terminal can register (only the one with `terminal_id`, if given). Audited."""
    return registry.rebind_device(
        session=session, actor=actor, device_id=device_id, data=data or DeviceRebind()
    )


@router.delete(
    "/devices/{device_id}/auth-code",
    response_model=DeviceOut,
    tags=["devices"],
    responses={403: {}, 404: {}, 422: {}},
)
def revoke_auth_code(session: SessionDep, actor: ActorDep, device_id: Id) -> Any:
    """JT/T 808: revoke the terminal's auth code; it must register again. Audited."""
    return registry.revoke_auth_code(session=session, actor=actor, device_id=device_id)


@router.get("/devices/{device_id}", response_model=DeviceOut, tags=["devices"])
def get_device(session: SessionDep, actor: ActorDep, device_id: Id) -> Any:
    return registry.get_device(session=session, actor=actor, device_id=device_id)


@router.patch("/devices/{device_id}", response_model=DeviceOut, tags=["devices"])
def update_device(session: SessionDep, actor: ActorDep, device_id: Id, data: DeviceUpdate) -> Any:
    return registry.update_device(session=session, actor=actor, device_id=device_id, data=data)


@router.delete("/devices/{device_id}", status_code=204, tags=["devices"])
def delete_device(session: SessionDep, actor: ActorDep, device_id: Id) -> None:
    registry.delete_device(session=session, actor=actor, device_id=device_id)


# ---- audit ----------------------------------------------------------------------------------


@router.get("/audit", response_model=Page[AuditEntryOut], tags=["audit"])
def list_audit(
    session: SessionDep,
    actor: ActorDep,
    listing: ListingDep,
    entity: Text | None = None,
    entity_id: Text | None = None,
) -> dict[str, Any]:
    result = registry.list_audit_entries(
        session=session, actor=actor, listing=listing, entity=entity, entity_id=entity_id
    )
    return _page(AuditEntryOut, result, listing)


@router.get("/vehicles/{vehicle_id}/reads", response_model=Page[AccessEntryOut], tags=["audit"])
def list_vehicle_reads(
    session: SessionDep, actor: ActorDep, listing: ListingDep, vehicle_id: Id
) -> dict[str, Any]:
    """Who read this vehicle's positions, trips, file or an order dossier showing it, or exported
    them, newest first (supervisors and administrators of the vehicle's units)."""
    items, total = access.list_for_vehicle(
        session=session, actor=actor, vehicle_id=vehicle_id, listing=listing
    )
    return listing.answer((AccessEntryOut.of(e) for e in items), total)


# ---- integrations ---------------------------------------------------------------------------

_SINK_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an administrator (of a root unit, for a sink of every unit)."},
    404: {"description": "No such integration in the caller's units."},
    409: {"description": "The name is taken, or the sink is set by FLEET_MQTT_URL."},
    422: {"description": "A field is invalid (the URL's scheme for the kind, the unit)."},
}


@router.get(
    "/integrations",
    response_model=Page[IntegrationOut],
    tags=["integrations"],
    responses={403: _SINK_ERRORS[403]},
)
def list_integrations(
    session: SessionDep, redis: RedisDep, actor: ActorDep, listing: ListingDep
) -> dict[str, Any]:
    """The sinks of the caller's units, with their delivery statistics (administrators)."""
    items, total = integrations.list_(session=session, actor=actor, listing=listing)
    positions = integrations.position_stats(redis, (i.id for i in items))
    return listing.answer((integrations.out(session, i, positions.get(i.id)) for i in items), total)


@router.post(
    "/integrations",
    response_model=IntegrationOut,
    status_code=201,
    tags=["integrations"],
    responses={k: v for k, v in _SINK_ERRORS.items() if k != 404},
)
def create_integration(
    session: SessionDep, actor: ActorDep, data: IntegrationCreate
) -> dict[str, Any]:
    """A sink for the events from now on; audited (its secret is not in the entry)."""
    integration = integrations.create(session=session, actor=actor, data=data)
    return integrations.out(session, integration)


@router.get(
    "/integrations/{integration_id}",
    response_model=IntegrationOut,
    tags=["integrations"],
    responses={403: _SINK_ERRORS[403], 404: _SINK_ERRORS[404]},
)
def get_integration(
    session: SessionDep, redis: RedisDep, actor: ActorDep, integration_id: Id
) -> dict[str, Any]:
    integration = integrations.get(session=session, actor=actor, integration_id=integration_id)
    positions = integrations.position_stats(redis, [integration.id])
    return integrations.out(session, integration, positions.get(integration.id))


@router.patch(
    "/integrations/{integration_id}",
    response_model=IntegrationOut,
    tags=["integrations"],
    responses=_SINK_ERRORS,
)
def update_integration(
    session: SessionDep, actor: ActorDep, integration_id: Id, data: IntegrationUpdate
) -> dict[str, Any]:
    integration = integrations.update(
        session=session, actor=actor, integration_id=integration_id, data=data
    )
    return integrations.out(session, integration)


@router.delete(
    "/integrations/{integration_id}",
    status_code=204,
    tags=["integrations"],
    responses={k: v for k, v in _SINK_ERRORS.items() if k != 422},
)
def delete_integration(session: SessionDep, actor: ActorDep, integration_id: Id) -> None:
    integrations.delete(session=session, actor=actor, integration_id=integration_id)
