"""Request and response shapes of the kernel's API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from geoalchemy2 import WKBElement
from geoalchemy2.shape import to_shape
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from shapely.geometry import mapping, shape

from fleet.models import BodyClass, DeviceProtocol, Energy, Role, VehicleCategory, VehicleStatus

T = TypeVar("T")

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Province, issuing-office letter, then 5 characters (fuel) or 6 (new energy); police plates end
# in 警. Letters I and O are never used.
_PLATE = re.compile(rf"^([{PROVINCES}])([A-HJ-NP-Z])([A-HJ-NP-Z0-9]{{4,6}}[警学挂]?)$")
_PLATE_SEPARATORS = re.compile(r"[·•.\s-]")
LICENCE_CLASSES = ("A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "C4", "C5", "C6", "D", "E", "F")


def normalise_plate(value: str) -> str:
    match = _PLATE.match(_PLATE_SEPARATORS.sub("", value).upper())
    if not match:
        raise ValueError(
            "not a Chinese plate: province character, letter, then 5 (fuel) or 6 (new energy) "
            "characters, e.g. 浙A·12345 or 浙A·D12345"
        )
    province, office, rest = match.groups()
    if len(rest) < 5:
        raise ValueError("a plate has 5 (fuel) or 6 (new energy) characters after the letter")
    return f"{province}{office}·{rest}"


def _geojson_geometry(kinds: tuple[str, ...]) -> Any:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") not in kinds:
            raise ValueError(f"expected a GeoJSON {' or '.join(kinds)}")
        try:
            geom = shape(value)
        except Exception as error:
            raise ValueError(f"not valid GeoJSON geometry: {error}") from None
        if geom.is_empty:
            raise ValueError("the geometry is empty")
        minx, miny, maxx, maxy = geom.bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ValueError("coordinates must be WGS-84 [longitude, latitude] within range")
        if not geom.is_valid:
            raise ValueError("the polygon is not valid (self-intersecting or unclosed ring)")
        return dict(mapping(geom))

    return AfterValidator(check)


DepotGeometry = Annotated[dict[str, Any], _geojson_geometry(("Point", "Polygon", "MultiPolygon"))]
Plate = Annotated[str, AfterValidator(normalise_plate)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Username = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.\-]{2,64}$")
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class UnitCreate(Strict):
    name: Name
    code: Code
    parent_id: int | None = None


class UnitUpdate(Strict):
    name: Name | None = None
    code: Code | None = None
    parent_id: int | None = None


class UnitOut(Out):
    id: int
    name: str
    code: str
    parent_id: int | None
    path: str


class UserCreate(Strict):
    username: Username
    password: Password
    roles: list[Role] = Field(min_length=1)
    unit_id: int
    full_name: str = Field("", max_length=100)
    language: str = Field("zh", pattern="^(zh|en)$")


class UserUpdate(Strict):
    password: Password | None = None
    roles: list[Role] | None = Field(None, min_length=1)
    unit_id: int | None = None
    full_name: str | None = Field(None, max_length=100)
    language: str | None = Field(None, pattern="^(zh|en)$")
    is_active: bool | None = None


class UserOut(Out):
    id: int
    username: str
    full_name: str
    roles: list[Role]
    unit_id: int
    is_active: bool
    language: str


class Me(UserOut):
    unit_path: str


FuelCard = Annotated[
    str,
    BeforeValidator(lambda v: "".join(v.split()) if isinstance(v, str) else v),
    StringConstraints(pattern=r"^[0-9A-Za-z]{4,32}$"),
]


class VehicleFields(Strict):
    tank_l: float | None = Field(None, gt=0, le=2000, description="Fuel tank, litres.")
    battery_kwh: float | None = Field(None, gt=0, le=1000, description="Traction battery, kWh.")
    fuel_norm_l_100km: float | None = Field(
        None, gt=0, le=100, description="Consumption norm, litres per 100 km."
    )
    make_model: str | None = Field(None, max_length=100)
    fuel_card: FuelCard | None = Field(None, description="Fuel card number (statements match it).")
    depot_name: str | None = Field(None, max_length=200)
    depot: DepotGeometry | None = Field(None, description="Home depot: GeoJSON Point or Polygon.")


class VehicleCreate(VehicleFields):
    plate: Plate
    category: VehicleCategory
    body_class: BodyClass
    seats: int = Field(ge=1, le=60, description="Passenger seats, driver not counted.")
    energy: Energy
    unit_id: int
    status: VehicleStatus = VehicleStatus.ACTIVE


class VehicleUpdate(VehicleFields):
    plate: Plate | None = None
    category: VehicleCategory | None = None
    body_class: BodyClass | None = None
    seats: int | None = Field(None, ge=1, le=60)
    energy: Energy | None = None
    unit_id: int | None = None
    status: VehicleStatus | None = None


def _geojson_out(value: Any) -> Any:
    if isinstance(value, WKBElement):
        return dict(mapping(to_shape(value)))
    return value


class VehicleOut(Out):
    id: int
    plate: str
    category: VehicleCategory
    body_class: BodyClass
    seats: int
    energy: Energy
    new_energy: bool
    tank_l: float | None
    battery_kwh: float | None
    fuel_norm_l_100km: float | None
    make_model: str
    fuel_card: str | None
    unit_id: int
    depot_name: str
    depot: Annotated[dict[str, Any] | None, BeforeValidator(_geojson_out)]
    status: VehicleStatus
    created_at: datetime
    updated_at: datetime


LicenceClass = Annotated[
    str, StringConstraints(to_upper=True, pattern=r"^(A[123]|B[12]|C[1-6]|D|E|F)$")
]


class DriverCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    licence_class: LicenceClass
    unit_id: int
    phone: str = Field("", max_length=32)
    user_id: int | None = None
    active: bool = True


class DriverUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=100)
    licence_class: LicenceClass | None = None
    unit_id: int | None = None
    phone: str | None = Field(None, max_length=32)
    user_id: int | None = None
    active: bool | None = None


class DriverOut(Out):
    id: int
    name: str
    licence_class: str
    unit_id: int
    phone: str
    user_id: int | None
    active: bool


# A JT/T 808 terminal id: 7 bytes in 2011/2013, up to 30 in 2019.
TerminalId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.\-]{1,30}$")
]
# An OsmAnd phone's secret, typed into the app's server URL as `key=...`: URL-safe characters only.
DeviceSecret = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.~\-]{16,128}$")]
_TERMINAL_ID_HELP = (
    "JT/T 808 only: the terminal id expected in its registration (0x0100); only that terminal can"
    " bind the device."
)
_PHONE_KEY_HELP = (
    "OsmAnd only: 16-128 URL-safe characters the phone must send as `key=`; only a digest is"
    " stored. In an update, null removes it."
)


class DeviceCreate(Strict):
    protocol: DeviceProtocol
    identifier: Identifier
    vehicle_id: int | None = None
    unit_id: int | None = Field(None, description="Defaults to the vehicle's unit, else yours.")
    enabled: bool = True
    terminal_id: TerminalId | None = Field(None, description=_TERMINAL_ID_HELP)
    secret: DeviceSecret | None = Field(None, description=_PHONE_KEY_HELP)


class DeviceUpdate(Strict):
    identifier: Identifier | None = None
    vehicle_id: int | None = None
    unit_id: int | None = None
    enabled: bool | None = None
    terminal_id: TerminalId | None = Field(
        None, description=_TERMINAL_ID_HELP + " Only while the device is not bound."
    )
    secret: DeviceSecret | None = Field(None, description=_PHONE_KEY_HELP)


class DeviceRebind(Strict):
    terminal_id: TerminalId | None = Field(
        None, description="The replacement terminal's id, if known; none lets any terminal bind."
    )


class DeviceOut(Out):
    id: int
    protocol: DeviceProtocol
    identifier: str
    vehicle_id: int | None
    unit_id: int
    enabled: bool
    has_secret: bool = Field(description="OsmAnd: the phone must send `key=`.")
    terminal_id: str | None = Field(description="JT/T 808: bound, or entered beforehand.")
    terminal_maker: str | None
    terminal_model: str | None
    terminal_plate: str | None
    terminal_plate_colour: int | None
    bound_at: datetime | None = Field(
        description="JT/T 808: when the terminal's first registration bound its identity."
    )
    imei: str | None
    software_version: str | None
    token: str | None = Field(
        None,
        description="For `api` devices, once, when created or rotated: send it as "
        "`Authorization: Bearer <token>` to POST /api/v1/telemetry. Only a digest is stored.",
    )


class AuditEntryOut(Out):
    id: int
    at: datetime
    actor_id: int | None
    actor: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str


class Health(BaseModel):
    status: str
    database: str
    redis: str
    details: dict[str, str] = {}
