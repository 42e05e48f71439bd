"""The registry: org units, users, vehicles, drivers and devices, always within the actor's scope.

Every read is filtered to the actor's unit subtree in the query itself; an object outside it is
reported as not found, so its existence is not revealed. Every change writes one audit entry in
the same transaction. Services flush and never commit.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from geoalchemy2.shape import from_shape
from psycopg import errors as pg_errors
from shapely.geometry import shape
from sqlalchemy import Select, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet import audit, quota
from fleet import auth as auth_service
from fleet.auth import Actor, is_root_admin, require, units_in_scope
from fleet.errors import Conflict, Forbidden, Invalid, NotFound
from fleet.models import (
    AuditEntry,
    Device,
    DeviceProtocol,
    Driver,
    Energy,
    OrgUnit,
    Role,
    UserAccount,
    Vehicle,
    VehicleStatus,
)
from fleet.paging import Listing
from fleet.schemas import (
    DeviceCreate,
    DeviceRebind,
    DeviceUpdate,
    DriverCreate,
    DriverUpdate,
    UnitCreate,
    UnitUpdate,
    UserCreate,
    UserUpdate,
    VehicleCreate,
    VehicleUpdate,
)

M = TypeVar("M", UserAccount, Vehicle, Driver, Device)

# Unique constraints (named by the naming convention) and the field a client should fix.
_UNIQUE_FIELDS = {
    "uq_org_unit_code": ("code", "a unit with this code already exists"),
    "uq_user_account_username": ("username", "this username is taken"),
    "uq_vehicle_plate": ("plate", "a vehicle with this plate already exists"),
    "uq_device_protocol_identifier": (
        "identifier",
        "a device with this protocol and identifier already exists",
    ),
    "uq_vehicle_fuel_card": ("fuel_card", "another vehicle holds this fuel card"),
    "uq_driver_user_id": ("user_id", "this user is already linked to another driver"),
    "uq_vehicle_replaces_id": ("replaces_id", "another vehicle already took this one's place"),
}


@contextmanager
def _unique_fields() -> Iterator[None]:
    try:
        yield
    except IntegrityError as error:
        if isinstance(error.orig, pg_errors.UniqueViolation):
            name = error.orig.diag.constraint_name or ""
            if name in _UNIQUE_FIELDS:
                field, message = _UNIQUE_FIELDS[name]
                raise Conflict(message, field=field) from None
        raise


def _in_scope(model: type[M], actor: Actor) -> Select[M]:
    return select(model).where(model.unit_id.in_(units_in_scope(actor)))


def _get_scoped(session: Session, model: type[M], actor: Actor, obj_id: int, what: str) -> M:
    obj = session.scalar(_in_scope(model, actor).where(model.id == obj_id))
    if obj is None:
        raise NotFound(f"{what} {obj_id} not found")
    return obj


def _unit_for(session: Session, actor: Actor, unit_id: int, field: str = "unit_id") -> OrgUnit:
    unit = session.scalar(
        select(OrgUnit).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if unit is None:
        raise Invalid(f"unknown unit {unit_id}", field=field)
    return unit


def _apply(obj: object, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        setattr(obj, key, value)


# ---- org units ------------------------------------------------------------------------------


def list_units(
    *, session: Session, actor: Actor, listing: Listing, parent_id: int | None = None
) -> tuple[Sequence[OrgUnit], int]:
    require(actor, "unit", "read")
    stmt = select(OrgUnit).where(OrgUnit.id.in_(units_in_scope(actor))).order_by(OrgUnit.path)
    if parent_id is not None:
        stmt = stmt.where(OrgUnit.parent_id == parent_id)
    return listing.page(session, stmt)


def get_unit(*, session: Session, actor: Actor, unit_id: int) -> OrgUnit:
    require(actor, "unit", "read")
    unit = session.scalar(
        select(OrgUnit).where(OrgUnit.id == unit_id, OrgUnit.id.in_(units_in_scope(actor)))
    )
    if unit is None:
        raise NotFound(f"unit {unit_id} not found")
    return unit


def create_unit(*, session: Session, actor: Actor, data: UnitCreate) -> OrgUnit:
    require(actor, "unit", "write")
    if data.parent_id is None:
        if not is_root_admin(actor):
            raise Forbidden("only an administrator of a root unit may add a root unit")
        prefix = ""
    else:
        prefix = _unit_for(session, actor, data.parent_id, field="parent_id").path
    unit_id = int(session.scalar(select(func.nextval("org_unit_id_seq"))) or 0)
    unit = OrgUnit(
        id=unit_id,
        code=data.code,
        name=data.name,
        parent_id=data.parent_id,
        path=f"{prefix}{unit_id}/",
    )
    with _unique_fields():
        audit.created(session=session, actor=actor.ref, entity="org_unit", obj=unit)
    return unit


def create_root_unit(*, session: Session, code: str, name: str) -> OrgUnit:
    """The first unit of an empty installation, made by the CLI as the system."""
    unit_id = int(session.scalar(select(func.nextval("org_unit_id_seq"))) or 0)
    unit = OrgUnit(id=unit_id, code=code, name=name, parent_id=None, path=f"{unit_id}/")
    with _unique_fields():
        audit.created(session=session, actor=audit.SYSTEM, entity="org_unit", obj=unit)
    return unit


def update_unit(*, session: Session, actor: Actor, unit_id: int, data: UnitUpdate) -> OrgUnit:
    require(actor, "unit", "write")
    unit = get_unit(session=session, actor=actor, unit_id=unit_id)
    with (
        _unique_fields(),
        audit.changing(session=session, actor=actor.ref, entity="org_unit", obj=unit),
    ):
        changes = data.model_dump(exclude_unset=True)
        if "parent_id" in changes and changes["parent_id"] != unit.parent_id:
            if unit.id == actor.unit_id:
                raise Invalid("you cannot move your own unit", field="parent_id")
            parent = _unit_for(session, actor, changes["parent_id"], field="parent_id")
            if parent.path.startswith(unit.path):
                raise Invalid("a unit cannot move below itself", field="parent_id")
            old, new = unit.path, f"{parent.path}{unit.id}/"
            session.execute(
                update(OrgUnit)
                .where(OrgUnit.path.startswith(old, autoescape=True))
                .values(path=new + func.substr(OrgUnit.path, len(old) + 1))
                .execution_options(synchronize_session=False)
            )
            session.refresh(unit)
        _apply(unit, changes)
    return unit


def delete_unit(*, session: Session, actor: Actor, unit_id: int) -> None:
    require(actor, "unit", "write")
    unit = get_unit(session=session, actor=actor, unit_id=unit_id)
    if unit.id == actor.unit_id:
        raise Conflict("you cannot delete your own unit")
    for column, what in (
        (OrgUnit.parent_id, "sub-units"),
        (UserAccount.unit_id, "users"),
        (Vehicle.unit_id, "vehicles"),
        (Driver.unit_id, "drivers"),
        (Device.unit_id, "devices"),
    ):
        if session.scalar(select(exists().where(column == unit.id))):
            raise Conflict(f"unit {unit.code} still has {what}; move or remove them first")
    audit.deleted(session=session, actor=actor.ref, entity="org_unit", obj=unit)


# ---- users ----------------------------------------------------------------------------------


def list_users(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    unit_id: int | None = None,
    role: Role | None = None,
    active: bool | None = None,
) -> tuple[Sequence[UserAccount], int]:
    require(actor, "user", "read")
    stmt = _in_scope(UserAccount, actor).order_by(UserAccount.id)
    if unit_id is not None:
        stmt = stmt.where(UserAccount.unit_id == unit_id)
    if role is not None:
        stmt = stmt.where(UserAccount.roles.contains([role.value]))
    if active is not None:
        stmt = stmt.where(UserAccount.is_active.is_(active))
    return listing.page(session, stmt)


def get_user(*, session: Session, actor: Actor, user_id: int) -> UserAccount:
    if user_id != actor.user_id:
        require(actor, "user", "read")
    return _get_scoped(session, UserAccount, actor, user_id, "user")


def create_user(*, session: Session, actor: Actor | None, data: UserCreate) -> UserAccount:
    """Create an account; `actor` None is the system (CLI), which is not limited by scope."""
    if actor is not None:
        require(actor, "user", "write")
        _unit_for(session, actor, data.unit_id)
    elif session.get(OrgUnit, data.unit_id) is None:
        raise Invalid(f"unknown unit {data.unit_id}", field="unit_id")
    user = UserAccount(
        username=data.username,
        full_name=data.full_name,
        password_hash=auth_service.hash_password(data.password),
        roles=sorted({r.value for r in data.roles}),
        unit_id=data.unit_id,
        language=data.language,
    )
    with _unique_fields():
        audit.created(
            session=session, actor=actor.ref if actor else audit.SYSTEM, entity="user", obj=user
        )
    return user


def update_user(*, session: Session, actor: Actor, user_id: int, data: UserUpdate) -> UserAccount:
    require(actor, "user", "write")
    user = _get_scoped(session, UserAccount, actor, user_id, "user")
    changes = data.model_dump(exclude_unset=True)
    password = changes.pop("password", None)
    if "unit_id" in changes:
        _unit_for(session, actor, changes["unit_id"])
    if changes.get("roles") is not None:
        changes["roles"] = sorted({Role(r).value for r in changes["roles"]})
    if user.id == actor.user_id and (
        changes.get("is_active") is False
        or ("roles" in changes and Role.ADMIN.value not in changes["roles"])
    ):
        raise Invalid(
            "you cannot disable your own account or drop your own admin role", field="roles"
        )
    with audit.changing(session=session, actor=actor.ref, entity="user", obj=user) as change:
        _apply(user, changes)
        if password is not None:
            user.password_hash = auth_service.hash_password(password)
            auth_service.revoke_all(session=session, user_id=user.id)
            change.always = True  # the snapshot leaves the hash out, the entry still counts
            if not changes:
                change.action = "update_password"
        if changes.get("is_active") is False:
            auth_service.revoke_all(session=session, user_id=user.id)
    return user


def deactivate_user(*, session: Session, actor: Actor, user_id: int) -> None:
    """Accounts are disabled, not erased: the audit log and old orders still name them."""
    data = UserUpdate.model_validate({"is_active": False})
    update_user(session=session, actor=actor, user_id=user_id, data=data)


# ---- vehicles -------------------------------------------------------------------------------


def _check_energy(
    energy: Energy, tank_l: float | None, battery_kwh: float | None, energy_norm: float | None
) -> None:
    if energy is Energy.BEV and tank_l is not None:
        raise Invalid("a battery-electric vehicle has no fuel tank", field="tank_l")
    if energy in (Energy.PETROL, Energy.DIESEL) and battery_kwh is not None:
        raise Invalid(f"a {energy.value} vehicle has no traction battery", field="battery_kwh")
    if not energy.new_energy and energy_norm is not None:
        raise Invalid(
            f"a {energy.value} vehicle is not charged from the grid: no energy norm",
            field="energy_norm_kwh_100km",
        )


def _depot(value: dict[str, Any] | None) -> Any:
    return None if value is None else from_shape(shape(value), srid=4326)


def list_vehicles(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    filters: dict[str, Any],
) -> tuple[Sequence[Vehicle], int]:
    """Filters: unit_id, category, body_class, energy, status (exact); min_seats; plate (part)."""
    require(actor, "vehicle", "read")
    stmt = _in_scope(Vehicle, actor).order_by(Vehicle.id)
    for name in ("unit_id", "category", "body_class", "energy", "status"):
        if filters.get(name) is not None:
            stmt = stmt.where(getattr(Vehicle, name) == filters[name])
    if filters.get("min_seats") is not None:
        stmt = stmt.where(Vehicle.seats >= filters["min_seats"])
    if filters.get("plate"):
        stmt = stmt.where(Vehicle.plate.contains(filters["plate"].upper(), autoescape=True))
    return listing.page(session, stmt)


def get_vehicle(*, session: Session, actor: Actor, vehicle_id: int) -> Vehicle:
    require(actor, "vehicle", "read")
    return _get_scoped(session, Vehicle, actor, vehicle_id, "vehicle")


def _check_replaced(session: Session, actor: Actor, data: VehicleCreate) -> None:
    """A vehicle registered as the renewal of another takes the place of a disposed vehicle of
    the same unit and category that no other vehicle has taken."""
    if data.replaces_id is None:
        return
    old = session.scalar(_in_scope(Vehicle, actor).where(Vehicle.id == data.replaces_id))
    if old is None:
        raise Invalid(f"unknown vehicle {data.replaces_id}", field="replaces_id")
    if old.status != VehicleStatus.DISPOSED:
        raise Invalid(
            f"vehicle {old.plate} is not disposed of yet: its place is not free",
            field="replaces_id",
        )
    if old.unit_id != data.unit_id or old.category != data.category:
        raise Invalid(
            "a renewal takes the place of a vehicle of the same unit and category",
            field="replaces_id",
        )
    if session.scalar(select(exists().where(Vehicle.replaces_id == old.id))):
        raise Conflict(
            f"another vehicle already took the place of {old.plate}", field="replaces_id"
        )


def create_vehicle(*, session: Session, actor: Actor, data: VehicleCreate) -> Vehicle:
    require(actor, "vehicle", "write")
    _unit_for(session, actor, data.unit_id)
    _check_energy(data.energy, data.tank_l, data.battery_kwh, data.energy_norm_kwh_100km)
    _check_replaced(session, actor, data)
    if data.status != VehicleStatus.DISPOSED:
        quota.check_place(session, unit_id=data.unit_id, category=data.category)
    fields = data.model_dump(exclude={"depot"}, exclude_none=True)
    vehicle = Vehicle(**fields, depot=_depot(data.depot))
    with _unique_fields():
        audit.created(session=session, actor=actor.ref, entity="vehicle", obj=vehicle)
    return vehicle


def update_vehicle(
    *, session: Session, actor: Actor, vehicle_id: int, data: VehicleUpdate, now: datetime
) -> Vehicle:
    """A change of status also sets `status_since` to `now`: the geofence engine judges the
    vehicle's fixes before it as an active vehicle's (a replay of its days in use)."""
    require(actor, "vehicle", "write")
    vehicle = _get_scoped(session, Vehicle, actor, vehicle_id, "vehicle")
    with (
        _unique_fields(),
        audit.changing(session=session, actor=actor.ref, entity="vehicle", obj=vehicle) as change,
    ):
        changes = data.model_dump(exclude_unset=True)
        if "unit_id" in changes:
            _unit_for(session, actor, changes["unit_id"])
        if "depot" in changes:
            changes["depot"] = _depot(changes["depot"])
        _check_energy(
            Energy(changes.get("energy", vehicle.energy)),
            changes.get("tank_l", vehicle.tank_l),
            changes.get("battery_kwh", vehicle.battery_kwh),
            changes.get("energy_norm_kwh_100km", vehicle.energy_norm_kwh_100km),
        )
        # A vehicle entering a unit, a category or service again takes a quota place there.
        unit_id = changes.get("unit_id", vehicle.unit_id)
        category = changes.get("category", vehicle.category)
        status = changes.get("status", vehicle.status)
        if status != VehicleStatus.DISPOSED and (
            unit_id != vehicle.unit_id
            or category != vehicle.category
            or vehicle.status == VehicleStatus.DISPOSED
        ):
            quota.check_place(session, unit_id=unit_id, category=category, excluding=vehicle.id)
        if status != vehicle.status:
            vehicle.status_since = now
        _apply(vehicle, changes)
        if set(changes) == {"status"}:
            change.action = "status"
    return vehicle


def delete_vehicle(*, session: Session, actor: Actor, vehicle_id: int) -> None:
    require(actor, "vehicle", "write")
    vehicle = _get_scoped(session, Vehicle, actor, vehicle_id, "vehicle")
    if session.scalar(select(exists().where(Device.vehicle_id == vehicle.id))):
        raise Conflict(
            "a device is fitted to this vehicle; remove it first, or set status disposed"
        )
    audit.deleted(session=session, actor=actor.ref, entity="vehicle", obj=vehicle)


# ---- drivers --------------------------------------------------------------------------------


def _check_driver_user(session: Session, actor: Actor, user_id: int | None) -> None:
    if (
        user_id is not None
        and session.scalar(_in_scope(UserAccount, actor).where(UserAccount.id == user_id)) is None
    ):
        raise Invalid(f"unknown user {user_id}", field="user_id")


def list_drivers(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    unit_id: int | None = None,
    active: bool | None = None,
) -> tuple[Sequence[Driver], int]:
    require(actor, "driver", "read")
    stmt = _in_scope(Driver, actor).order_by(Driver.id)
    if unit_id is not None:
        stmt = stmt.where(Driver.unit_id == unit_id)
    if active is not None:
        stmt = stmt.where(Driver.active.is_(active))
    return listing.page(session, stmt)


def get_driver(*, session: Session, actor: Actor, driver_id: int) -> Driver:
    require(actor, "driver", "read")
    return _get_scoped(session, Driver, actor, driver_id, "driver")


def create_driver(*, session: Session, actor: Actor, data: DriverCreate) -> Driver:
    require(actor, "driver", "write")
    _unit_for(session, actor, data.unit_id)
    _check_driver_user(session, actor, data.user_id)
    driver = Driver(**data.model_dump())
    with _unique_fields():
        audit.created(session=session, actor=actor.ref, entity="driver", obj=driver)
    return driver


def update_driver(*, session: Session, actor: Actor, driver_id: int, data: DriverUpdate) -> Driver:
    require(actor, "driver", "write")
    driver = _get_scoped(session, Driver, actor, driver_id, "driver")
    with (
        _unique_fields(),
        audit.changing(session=session, actor=actor.ref, entity="driver", obj=driver),
    ):
        changes = data.model_dump(exclude_unset=True)
        if "unit_id" in changes:
            _unit_for(session, actor, changes["unit_id"])
        if "user_id" in changes:
            _check_driver_user(session, actor, changes["user_id"])
        _apply(driver, changes)
    return driver


def delete_driver(*, session: Session, actor: Actor, driver_id: int) -> None:
    require(actor, "driver", "write")
    driver = _get_scoped(session, Driver, actor, driver_id, "driver")
    audit.deleted(session=session, actor=actor.ref, entity="driver", obj=driver)


# ---- devices --------------------------------------------------------------------------------


def normalise_identifier(protocol: DeviceProtocol, identifier: str) -> str:
    """JT/T 808 terminals send their phone number as BCD with leading zeros (12 digits in 2013,
    20 in 2019); store it without them so both headers find the same device."""
    if protocol is DeviceProtocol.JT808:
        if not identifier.isdigit() or len(identifier) > 20:
            raise Invalid(
                "a JT/T 808 identifier is the terminal phone number: up to 20 digits",
                field="identifier",
            )
        return identifier.lstrip("0") or "0"
    return identifier


def _device_vehicle(session: Session, actor: Actor, vehicle_id: int | None) -> Vehicle | None:
    if vehicle_id is None:
        return None
    vehicle = session.scalar(_in_scope(Vehicle, actor).where(Vehicle.id == vehicle_id))
    if vehicle is None:
        raise Invalid(f"unknown vehicle {vehicle_id}", field="vehicle_id")
    return vehicle


def list_devices(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    protocol: DeviceProtocol | None = None,
    vehicle_id: int | None = None,
    enabled: bool | None = None,
) -> tuple[Sequence[Device], int]:
    require(actor, "device", "read")
    stmt = _in_scope(Device, actor).order_by(Device.id)
    if protocol is not None:
        stmt = stmt.where(Device.protocol == protocol)
    if vehicle_id is not None:
        stmt = stmt.where(Device.vehicle_id == vehicle_id)
    if enabled is not None:
        stmt = stmt.where(Device.enabled.is_(enabled))
    return listing.page(session, stmt)


def get_device(*, session: Session, actor: Actor, device_id: int) -> Device:
    require(actor, "device", "read")
    return _get_scoped(session, Device, actor, device_id, "device")


def _check_credentials(protocol: DeviceProtocol, changes: dict[str, Any]) -> None:
    """A terminal id is a JT/T 808 terminal's, a secret an OsmAnd phone's."""
    if changes.get("terminal_id") is not None and protocol != DeviceProtocol.JT808:
        raise Invalid("only JT/T 808 devices have a terminal id", field="terminal_id")
    if changes.get("secret") is not None and protocol != DeviceProtocol.OSMAND:
        raise Invalid("only OsmAnd devices have a secret", field="secret")


def device_secret_digest(secret: str) -> str:
    # Secrets are at least 16 characters, compared on every fix: a fast hash, as for tokens.
    return hashlib.sha256(secret.encode()).hexdigest()


def _credentials_snapshot(device: Device) -> dict[str, Any]:
    """The audit's view of a device: its columns, and whether it has a secret (never the digest)."""
    return {**audit.snapshot(device), "has_secret": device.has_secret}


def create_device(*, session: Session, actor: Actor, data: DeviceCreate) -> Device:
    require(actor, "device", "write")
    _check_credentials(data.protocol, data.model_dump())
    vehicle = _device_vehicle(session, actor, data.vehicle_id)
    if data.unit_id is not None:
        unit_id = _unit_for(session, actor, data.unit_id).id
    else:
        unit_id = vehicle.unit_id if vehicle else actor.unit_id
    device = Device(
        protocol=data.protocol,
        identifier=normalise_identifier(data.protocol, data.identifier),
        vehicle_id=data.vehicle_id,
        unit_id=unit_id,
        enabled=data.enabled,
        terminal_id=data.terminal_id,
        secret_digest=device_secret_digest(data.secret) if data.secret else None,
    )
    token = _new_device_token(device) if device.protocol == DeviceProtocol.API else None
    session.add(device)
    with _unique_fields():
        session.flush()
    audit.record(
        session=session,
        actor=actor.ref,
        action="create",
        entity="device",
        entity_id=device.id,
        after=_credentials_snapshot(device),
    )
    device.token = token  # type: ignore[attr-defined]  # shown once, never stored
    return device


def device_token_digest(token: str) -> str:
    # The token is 256 random bits, so a plain hash is as good as a slow one here.
    return hashlib.sha256(token.encode()).hexdigest()


def _new_device_token(device: Device) -> str:
    token = secrets.token_urlsafe(32)
    device.token_digest = device_token_digest(token)
    return token


def rotate_device_token(*, session: Session, actor: Actor, device_id: int) -> Device:
    """A new token for an integration; the old one stops working at once."""
    require(actor, "device", "write")
    device = _get_scoped(session, Device, actor, device_id, "device")
    if device.protocol != DeviceProtocol.API:
        raise Invalid("only devices of protocol api have tokens", field="protocol")
    token = _new_device_token(device)
    session.flush()
    audit.record(
        session=session,
        actor=actor.ref,
        action="rotate_token",
        entity="device",
        entity_id=device.id,
    )
    device.token = token  # type: ignore[attr-defined]
    return device


def update_device(*, session: Session, actor: Actor, device_id: int, data: DeviceUpdate) -> Device:
    require(actor, "device", "write")
    device = _get_scoped(session, Device, actor, device_id, "device")
    before = _credentials_snapshot(device)
    changes = data.model_dump(exclude_unset=True)
    _check_credentials(DeviceProtocol(device.protocol), changes)
    if "secret" in changes:
        secret = changes.pop("secret")
        device.secret_digest = device_secret_digest(secret) if secret else None
    if "terminal_id" in changes and device.bound_at is not None:
        raise Conflict(
            "the device is bound to a terminal; re-bind it to expect another one",
            field="terminal_id",
        )
    if "vehicle_id" in changes:
        _device_vehicle(session, actor, changes["vehicle_id"])
    if "unit_id" in changes:
        _unit_for(session, actor, changes["unit_id"])
    if "identifier" in changes:
        changes["identifier"] = normalise_identifier(
            DeviceProtocol(device.protocol), changes["identifier"]
        )
    _apply(device, changes)
    with _unique_fields():
        session.flush()
    after = _credentials_snapshot(device)
    if audit.changed(before, after) or "secret" in data.model_fields_set:
        audit.record(
            session=session,
            actor=actor.ref,
            action="update",
            entity="device",
            entity_id=device.id,
            before=before,
            after=after,
        )
    return device


# What a JT/T 808 terminal's registration binds, and what its authentication records.
_BINDING = (
    "terminal_id",
    "terminal_maker",
    "terminal_model",
    "terminal_plate",
    "terminal_plate_colour",
    "bound_at",
    "auth_code_digest",
    "imei",
    "software_version",
)


def rebind_device(*, session: Session, actor: Actor, device_id: int, data: DeviceRebind) -> Device:
    """Forget the terminal bound to a JT/T 808 device and revoke its auth code, so that a
    replacement terminal (the one with `data.terminal_id`, if given) can register. The terminal
    replaced can no longer authenticate. For administrators only: the binding is evidence."""
    if not actor.has(Role.ADMIN):
        raise Forbidden("only administrators re-bind devices")
    device = _get_scoped(session, Device, actor, device_id, "device")
    if device.protocol != DeviceProtocol.JT808:
        raise Invalid("only JT/T 808 devices are bound to a terminal", field="protocol")
    with audit.changing(
        session=session, actor=actor.ref, entity="device", obj=device, action="rebind"
    ) as change:
        change.always = True  # a re-bind is evidence even where nothing was bound yet
        for column in _BINDING:
            setattr(device, column, None)
        device.terminal_id = data.terminal_id
    return device


def revoke_auth_code(*, session: Session, actor: Actor, device_id: int) -> Device:
    """Revoke a JT/T 808 terminal's auth code: it must register again (same identity) to get a
    new one, and until then cannot authenticate."""
    require(actor, "device", "write")
    device = _get_scoped(session, Device, actor, device_id, "device")
    if device.protocol != DeviceProtocol.JT808:
        raise Invalid("only JT/T 808 devices have auth codes", field="protocol")
    device.auth_code_digest = None
    session.flush()
    audit.record(
        session=session,
        actor=actor.ref,
        action="revoke_auth_code",
        entity="device",
        entity_id=device.id,
    )
    return device


def delete_device(*, session: Session, actor: Actor, device_id: int) -> None:
    require(actor, "device", "write")
    device = _get_scoped(session, Device, actor, device_id, "device")
    audit.deleted(session=session, actor=actor.ref, entity="device", obj=device)


# ---- audit log ------------------------------------------------------------------------------


def list_audit_entries(
    *,
    session: Session,
    actor: Actor,
    listing: Listing,
    entity: str | None = None,
    entity_id: str | None = None,
) -> tuple[Sequence[AuditEntry], int]:
    """The log spans every unit, so only administrators and supervisors of a root unit read it."""
    if not actor.has(Role.ADMIN, Role.SUPERVISOR) or actor.unit_path.count("/") != 1:
        raise Forbidden("only administrators and supervisors of a root unit read the audit log")
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc())
    if entity is not None:
        stmt = stmt.where(AuditEntry.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AuditEntry.entity_id == entity_id)
    return listing.page(session, stmt)
