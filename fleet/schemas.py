"""Request and response shapes of the kernel's API."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from annotated_types import Interval
from geoalchemy2 import WKBElement
from geoalchemy2.shape import to_shape
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)
from shapely.geometry import mapping, shape

from fleet.models import (
    BodyClass,
    DeviceProtocol,
    Energy,
    NotificationState,
    NotifyChannel,
    Role,
    SinkKind,
    VehicleCategory,
    VehicleStatus,
)

T = TypeVar("T")

# ---- bounded input, shared by every domain's routes and bodies ------------------------------

# Row ids are PostgreSQL integers: a larger id is refused as input rather than sent to the database.
INT4_MAX = 2**31 - 1
Id = Annotated[int, Interval(ge=1, le=INT4_MAX)]


def refuse_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL (U+0000): refuse it in any string, key or nested value."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL (\\u0000) characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    elif isinstance(value, list | tuple):
        for item in value:
            refuse_nul(item)
    return value


def _written_time(value: Any) -> Any:
    # pydantic reads a bare number as seconds since 1970 (`until=0.5`, `/calendar/0`): a time or
    # a date is written out, ISO-8601.
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("write the time as ISO-8601, e.g. 2026-11-24T09:00:00+08:00")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


Text = Annotated[str, AfterValidator(refuse_nul)]
Moment = Annotated[datetime, BeforeValidator(_written_time)]
Day = Annotated[date, BeforeValidator(_written_time)]
# In a PATCH body, a field whose column is NOT NULL: it may be left out, not set to null. The
# default is not validated, so a field left out stays None and `exclude_unset` drops it.
OMITTED = Field(default=None)

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Province, issuing-office letter, then 5 characters (fuel) or 6 (new energy); police plates end
# in 警. Letters I and O are never used.
_PLATE = re.compile(rf"^([{PROVINCES}])([A-HJ-NP-Z])([A-HJ-NP-Z0-9]{{4,6}}[警学挂]?)$")
_PLATE_SEPARATORS = re.compile(r"[·•.\s-]")


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
# A device's identifier as real clients send it (a Meshtastic bridge's `!a1b2c3d4`, an IMEI, a
# name): any printable text without whitespace or control characters, as the reference server.
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[^\s\x00-\x1f\x7f-\x9f]{1,64}$")
]


class Strict(BaseModel):
    """Base of every request body: unknown fields and NUL characters are refused."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)


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
    parent_id: Id | None = Field(
        None, description="The unit above; none for a new root unit (root administrators only)."
    )


class UnitUpdate(Strict):
    name: Annotated[Name, OMITTED]
    code: Annotated[Code, OMITTED]
    parent_id: Annotated[Id, OMITTED]


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
    unit_id: Id
    full_name: str = Field("", max_length=100)
    language: str = Field("zh", pattern="^(zh|en)$")


class UserUpdate(Strict):
    password: Annotated[Password, OMITTED]
    roles: Annotated[list[Role], Field(default=None, min_length=1)]
    unit_id: Annotated[Id, OMITTED]
    full_name: Annotated[str, Field(default=None, max_length=100)]
    language: Annotated[str, Field(default=None, pattern="^(zh|en)$")]
    is_active: Annotated[StrictBool, OMITTED]


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
    energy_norm_kwh_100km: float | None = Field(
        None,
        gt=0,
        le=500,
        description="Energy norm of a battery-electric or plug-in hybrid vehicle, kWh drawn"
        " from the grid per 100 km.",
    )
    make_model: Annotated[str, Field(default=None, max_length=100)]
    fuel_card: FuelCard | None = Field(None, description="Fuel card number (statements match it).")
    depot_name: Annotated[str, Field(default=None, max_length=200)]
    depot: DepotGeometry | None = Field(None, description="Home depot: GeoJSON Point or Polygon.")
    acquired_on: Day | None = Field(
        None, description="Day the vehicle was bought (购置日期); its age counts from it."
    )
    odometer_km: float | None = Field(
        None, ge=0, le=10_000_000, description="Odometer as last read by hand, km."
    )


class VehicleCreate(VehicleFields):
    plate: Plate
    category: VehicleCategory
    body_class: BodyClass
    seats: int = Field(ge=1, le=60, description="Passenger seats, driver not counted.")
    energy: Energy
    unit_id: Id
    status: VehicleStatus = VehicleStatus.ACTIVE
    replaces_id: Id | None = Field(
        None,
        description="The disposed vehicle of the same unit and category whose quota place this"
        " one takes (更新).",
    )


class VehicleUpdate(VehicleFields):
    plate: Annotated[Plate, OMITTED]
    category: Annotated[VehicleCategory, OMITTED]
    body_class: Annotated[BodyClass, OMITTED]
    seats: Annotated[int, Field(default=None, ge=1, le=60)]
    energy: Annotated[Energy, OMITTED]
    unit_id: Annotated[Id, OMITTED]
    status: Annotated[VehicleStatus, OMITTED]


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
    energy_norm_kwh_100km: float | None
    make_model: str
    fuel_card: str | None
    unit_id: int
    depot_name: str
    depot: Annotated[dict[str, Any] | None, BeforeValidator(_geojson_out)]
    status: VehicleStatus
    acquired_on: date | None
    odometer_km: float | None
    replaces_id: int | None
    created_at: datetime
    updated_at: datetime


LicenceClass = Annotated[
    str, StringConstraints(to_upper=True, pattern=r"^(A[123]|B[12]|C[1-6]|D|E|F)$")
]


LicenceExpiry = Annotated[
    date,
    Field(
        ge=date(2000, 1, 1),
        le=date(2099, 12, 31),
        description="The last day the licence is valid (驾驶证有效期止), a local date.",
    ),
]


class DriverCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    licence_class: LicenceClass
    licence_expires_on: LicenceExpiry | None = None
    unit_id: Id
    phone: str = Field("", max_length=32)
    user_id: Id | None = None
    active: StrictBool = True


class DriverUpdate(Strict):
    name: Annotated[str, Field(default=None, min_length=1, max_length=100)]
    licence_class: Annotated[LicenceClass, OMITTED]
    licence_expires_on: LicenceExpiry | None = None
    unit_id: Annotated[Id, OMITTED]
    phone: Annotated[str, Field(default=None, max_length=32)]
    user_id: Id | None = None
    active: Annotated[StrictBool, OMITTED]


class DriverOut(Out):
    id: int
    name: str
    licence_class: str
    licence_expires_on: date | None
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
    vehicle_id: Id | None = None
    unit_id: Id | None = Field(None, description="Defaults to the vehicle's unit, else yours.")
    enabled: StrictBool = True
    terminal_id: TerminalId | None = Field(None, description=_TERMINAL_ID_HELP)
    secret: DeviceSecret | None = Field(None, description=_PHONE_KEY_HELP)


class DeviceUpdate(Strict):
    identifier: Annotated[Identifier, OMITTED]
    vehicle_id: Id | None = None
    unit_id: Annotated[Id, OMITTED]
    enabled: Annotated[StrictBool, OMITTED]
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


EventKind = Literal["orders", "alerts", "costs", "registry", "positions"]
SinkUrl = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
SinkName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
SinkSecret = Annotated[str, StringConstraints(min_length=1, max_length=200)]
OptionKey = Annotated[str, StringConstraints(max_length=32)]
OptionValue = Annotated[str, StringConstraints(max_length=200)]
SinkOptions = Annotated[dict[OptionKey, OptionValue], Field(max_length=8)]


class IntegrationCreate(Strict):
    name: SinkName
    kind: SinkKind = Field(description="mqtt, webhook, amqp or nats.")
    url: SinkUrl = Field(
        description="mqtt://host:port, http(s)://..., amqp://user:password@host:port/vhost or"
        " nats://host:port."
    )
    secret: SinkSecret | None = Field(
        None,
        description="Write-only: the webhook's HMAC-SHA256 key, or the AMQP password (replaces"
        " the URL's). Never returned.",
    )
    options: SinkOptions = Field(
        default_factory=dict,
        description="AMQP: `exchange` (default fleet). NATS: `stream`, created with subjects"
        " fleet.> if missing.",
    )
    unit_id: Id | None = Field(
        None, description="Only events of this unit and those under it; none: every unit."
    )
    kinds: list[EventKind] | None = Field(
        None,
        max_length=5,
        description="Only events of these kinds; none: every kind, positions included.",
    )
    enabled: bool = True


class IntegrationUpdate(Strict):
    name: Annotated[SinkName, OMITTED]
    kind: Annotated[SinkKind, OMITTED]
    url: Annotated[SinkUrl, OMITTED]
    secret: Annotated[SinkSecret | None, OMITTED]
    options: Annotated[SinkOptions, OMITTED]
    unit_id: Annotated[Id | None, OMITTED]
    kinds: list[EventKind] | None = Field(None, max_length=5)
    enabled: Annotated[bool, OMITTED]


class PositionStats(BaseModel):
    """How the sink's positions go (from the fix stream, not the outbox)."""

    sent: int
    failed: int
    trimmed: int = Field(description="Fixes lost to FLEET_FORWARD_POSITIONS_MAXLEN.")
    lag_ms: int | None = Field(
        description="The latest batch's lag, from the gateway's receipt of its oldest fix to the"
        " sink's acknowledgement (ms)."
    )
    last_error: str | None


class IntegrationOut(BaseModel):
    """A sink with its delivery statistics; its secret is never shown, only whether it has one."""

    id: int
    name: str
    kind: SinkKind
    url: str = Field(description="With its password, if any, masked.")
    has_secret: bool
    options: dict[str, Any]
    unit_id: int | None
    kinds: list[str] | None
    enabled: bool
    from_settings: bool = Field(description="Set by FLEET_MQTT_URL; read-only here.")
    cursor: int = Field(description="The last event delivered (or passed over by the filters).")
    sent: int
    pending: int = Field(description="Events waiting for this sink.")
    failed: int = Field(description="Failed attempts so far.")
    dead: int = Field(description="Events dead-lettered (webhooks).")
    attempts: int = Field(description="Failed attempts at the event now due.")
    retry_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime
    positions: PositionStats | None = Field(
        None, description="For a sink that takes positions, once it has had some."
    )


class AccessEntryOut(BaseModel):
    """One read or export of a vehicle's data: who, what, which period, from where."""

    id: int
    at: datetime
    actor_id: int | None
    actor: str
    action: str = Field(description="`read`, or `export` for a file (CSV, XLSX, PDF, HTML).")
    what: str = Field(description="`positions`, `trips`, `vehicle_file`, `order_dossier`...")
    since: datetime | None = Field(description="Start of the period read; none for all of it.")
    until: datetime | None = Field(description="End of the period read (exclusive).")
    client: str = Field(description="The address the request came from.")
    detail: dict[str, Any] = Field(description="The rest: format, order id.")

    @classmethod
    def of(cls, entry: Any) -> AccessEntryOut:
        after = dict(entry.after or {})
        return cls(
            id=entry.id,
            at=entry.at,
            actor_id=entry.actor_id,
            actor=entry.actor,
            action=entry.action,
            what=after.pop("what", ""),
            since=after.pop("since", None),
            until=after.pop("until", None),
            client=after.pop("client", ""),
            detail=after,
        )


class HealthWarning(BaseModel):
    """Something to act on while the service still runs. `code` names it; the fields beside it
    are the code's (calendar_year_missing: year, starts_on, days_left, missing_days)."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class Health(BaseModel):
    status: str
    database: str
    redis: str
    details: dict[str, str] = {}
    warnings: list[HealthWarning] = Field(
        default=[], description="Still healthy (200), but something needs doing soon."
    )


# ---- notifications to people ----------------------------------------------------------------

EmailAddress = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=254, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$"
    ),
]
RobotUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500, pattern=r"^https?://[^\s]+$")
]
RobotSecret = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class NotificationSettingUpdate(Strict):
    """What is sent is changed; what is left out stays; null clears a field (then the unit's
    default applies)."""

    channels: list[NotifyChannel] | None = Field(
        None,
        max_length=3,
        description="email, wecom, dingtalk; [] for none; null: as the unit says.",
    )
    email: EmailAddress | None = None
    wecom_url: RobotUrl | None = Field(
        None,
        description="A 企业微信 group robot's webhook,"
        " https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY.",
    )
    dingtalk_url: RobotUrl | None = Field(
        None,
        description="A 钉钉 custom robot's webhook,"
        " https://oapi.dingtalk.com/robot/send?access_token=TOKEN.",
    )
    dingtalk_secret: RobotSecret | None = Field(
        None, description="Write-only: the robot's 加签 secret (SEC...). Never returned."
    )


class MyNotificationUpdate(NotificationSettingUpdate):
    language: Annotated[str, Field(default=None, pattern="^(zh|en)$")]


class NotificationSettingOut(BaseModel):
    """A setting as stored; the robots' key and token are masked, the secret never shown."""

    channels: list[NotifyChannel] | None
    email: str | None
    wecom_url: str | None = Field(description="With its key masked.")
    dingtalk_url: str | None = Field(description="With its access token masked.")
    has_dingtalk_secret: bool


class NotificationTarget(BaseModel):
    channel: NotifyChannel
    address: str = Field(description="The e-mail address, or the robot's URL (masked).")
    from_unit_id: int | None = Field(description="The unit whose default it is; null: your own.")


class MyNotificationsOut(BaseModel):
    language: str = Field(description="The language messages are written in (zh or en).")
    own: NotificationSettingOut
    effective: list[NotificationTarget] = Field(
        description="Where messages go now, your own settings over your units' defaults."
    )


class UnitNotificationsOut(NotificationSettingOut):
    unit_id: int


class NotificationUser(BaseModel):
    id: int
    username: str


class NotificationOut(BaseModel):
    """One message to one address, as the notifier holds it."""

    id: int
    user: NotificationUser = Field(description="Whom it is for.")
    kind: str = Field(description="What it is about (approval_pending, order_approved, ...).")
    channel: NotifyChannel
    address: str = Field(description="The e-mail address, or the robot's URL (masked).")
    subject: str
    state: NotificationState = Field(
        description="pending: not yet delivered (retried); sent; dead: given up on."
    )
    attempts: int = Field(description="Failed attempts so far.")
    last_error: str | None = Field(description="Why the last attempt failed.")
    created_at: datetime
    sent_at: datetime | None
    retry_at: datetime | None = Field(description="When a pending message is tried again.")
