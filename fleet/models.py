"""Tables of the kernel: org units, accounts, tokens, the registry and the audit log."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry, WKBElement
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from fleet.db import Base, Timestamped


class Role(StrEnum):
    ADMIN = "admin"
    REQUESTER = "requester"
    APPROVER = "approver"
    DISPATCHER = "dispatcher"
    DRIVER = "driver"
    SUPERVISOR = "supervisor"


class VehicleCategory(StrEnum):
    CONFIDENTIAL_COMMS = "confidential_comms"  # 机要通信
    EMERGENCY = "emergency"  # 应急保障
    ENFORCEMENT = "enforcement"  # 执法执勤
    SPECIAL = "special"  # 特种专业技术
    GENERAL = "general"  # 其他公务


class BodyClass(StrEnum):
    SEDAN = "sedan"
    SUV = "suv"
    MPV = "mpv"
    MINIBUS = "minibus"
    BUS = "bus"
    TRUCK = "truck"


class Energy(StrEnum):
    PETROL = "petrol"
    DIESEL = "diesel"
    HYBRID = "hybrid"
    PHEV = "phev"
    BEV = "bev"

    @property
    def new_energy(self) -> bool:
        return self in (Energy.PHEV, Energy.BEV)


class VehicleStatus(StrEnum):
    ACTIVE = "active"
    SEALED = "sealed"
    MAINTENANCE = "maintenance"
    DISPOSED = "disposed"


class DeviceProtocol(StrEnum):
    JT808 = "jt808"
    OSMAND = "osmand"
    API = "api"


def _enum(kind: type[StrEnum], name: str) -> sa.Enum:
    return sa.Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


ROLE_VALUES = ", ".join(f"'{r.value}'" for r in Role)


class OrgUnit(Timestamped, Base):
    """A government body. `path` is the ids from the root down, as `1/4/7/`, so the units a user
    may see are one prefix match."""

    __tablename__ = "org_unit"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    path: Mapped[str] = mapped_column(sa.String(400))

    __table_args__ = (
        sa.Index("ix_org_unit_path", "path", postgresql_ops={"path": "text_pattern_ops"}),
        sa.Index("ix_org_unit_parent_id", "parent_id"),
    )


class UserAccount(Timestamped, Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(100), server_default="")
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    roles: Mapped[list[str]] = mapped_column(ARRAY(sa.String(16)))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default="true")
    language: Mapped[str] = mapped_column(sa.String(8), server_default="zh")

    __table_args__ = (
        sa.CheckConstraint(
            f"cardinality(roles) >= 1 AND roles <@ ARRAY[{ROLE_VALUES}]::varchar[]", name="roles"
        ),
        sa.Index("ix_user_account_unit_id", "unit_id"),
    )


class AuthToken(Base):
    """A bearer token. Only its digest is stored, so a copy of the table cannot be replayed."""

    __tablename__ = "auth_token"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (sa.Index("ix_auth_token_user_id", "user_id"),)


class Vehicle(Timestamped, Base):
    __tablename__ = "vehicle"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    plate: Mapped[str] = mapped_column(sa.String(16), unique=True)
    category: Mapped[VehicleCategory] = mapped_column(_enum(VehicleCategory, "category"))
    body_class: Mapped[BodyClass] = mapped_column(_enum(BodyClass, "body_class"))
    seats: Mapped[int] = mapped_column(sa.Integer)
    energy: Mapped[Energy] = mapped_column(_enum(Energy, "energy"))
    tank_l: Mapped[float | None] = mapped_column(sa.Float)
    battery_kwh: Mapped[float | None] = mapped_column(sa.Float)
    fuel_norm_l_100km: Mapped[float | None] = mapped_column(sa.Float)
    # What a battery-electric or plug-in hybrid vehicle draws from the grid per 100 km, the norm
    # its charging records are checked against (costs.checks).
    energy_norm_kwh_100km: Mapped[float | None] = mapped_column(sa.Float)
    make_model: Mapped[str] = mapped_column(sa.String(100), server_default="")
    # The fuel card issued for the vehicle: how statements that name no plate are matched.
    fuel_card: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    depot_name: Mapped[str] = mapped_column(sa.String(200), server_default="")
    depot: Mapped[WKBElement | None] = mapped_column(
        Geometry(srid=4326, spatial_index=False), nullable=True
    )
    status: Mapped[VehicleStatus] = mapped_column(
        _enum(VehicleStatus, "status"), server_default=VehicleStatus.ACTIVE.value
    )
    # When the status last changed (the registry sets it; None: it has always been so, as far as
    # is known). The geofence engine judges a fix before it as one of an active vehicle.
    status_since: Mapped[datetime | None]
    # Equipping and renewal (配备更新): when the vehicle was bought (its age counts from this
    # day), the odometer as last read by hand, and the disposed vehicle whose quota place it took.
    acquired_on: Mapped[date | None] = mapped_column(sa.Date)
    odometer_km: Mapped[float | None] = mapped_column(sa.Float)
    replaces_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("vehicle.id", ondelete="RESTRICT"), unique=True
    )

    @property
    def new_energy(self) -> bool:
        return Energy(self.energy).new_energy

    __table_args__ = (
        sa.CheckConstraint("seats BETWEEN 1 AND 60", name="seats"),
        sa.CheckConstraint("tank_l IS NULL OR tank_l > 0", name="tank_l"),
        sa.CheckConstraint("battery_kwh IS NULL OR battery_kwh > 0", name="battery_kwh"),
        sa.CheckConstraint("odometer_km IS NULL OR odometer_km >= 0", name="odometer_km"),
        sa.Index("ix_vehicle_unit_id", "unit_id"),
    )


class UnitQuota(Timestamped, Base):
    """A unit's vehicle quota (编制) in one category: how many vehicles that are not disposed it
    may hold. A unit with no row for a category is not limited in it."""

    __tablename__ = "unit_quota"

    unit_id: Mapped[int] = mapped_column(
        sa.ForeignKey("org_unit.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[VehicleCategory] = mapped_column(
        _enum(VehicleCategory, "category"), primary_key=True
    )
    quota: Mapped[int] = mapped_column(sa.Integer)

    __table_args__ = (sa.CheckConstraint("quota BETWEEN 0 AND 10000", name="quota"),)


class Driver(Timestamped, Base):
    __tablename__ = "driver"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    phone: Mapped[str] = mapped_column(sa.String(32), server_default="")
    licence_class: Mapped[str] = mapped_column(sa.String(4))
    # The last day the licence is valid (驾驶证有效期止); none: not recorded yet.
    licence_expires_on: Mapped[date | None] = mapped_column(sa.Date)
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="SET NULL"), unique=True
    )
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default="true")

    __table_args__ = (sa.Index("ix_driver_unit_id", "unit_id"),)


class Device(Timestamped, Base):
    """A tracker: a JT/T 808 terminal, a phone running an OsmAnd client, or an integration."""

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    protocol: Mapped[DeviceProtocol] = mapped_column(_enum(DeviceProtocol, "protocol"))
    identifier: Mapped[str] = mapped_column(sa.String(64))
    vehicle_id: Mapped[int | None] = mapped_column(sa.ForeignKey("vehicle.id", ondelete="RESTRICT"))
    unit_id: Mapped[int] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="RESTRICT"))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, server_default="true")
    # Integrations (protocol `api`) authenticate with a token; only its SHA-256 is kept.
    token_digest: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    # OsmAnd phones may carry a secret, sent as `key=` in the server URL; only its SHA-256 is kept.
    secret_digest: Mapped[str | None] = mapped_column(sa.String(64))
    # JT/T 808: the terminal's identity, bound by its first registration (0x0100) and refused to
    # any other terminal that names the same number until an administrator re-binds the device.
    # An administrator may enter `terminal_id` beforehand; then only that terminal can bind.
    terminal_id: Mapped[str | None] = mapped_column(sa.String(30))
    terminal_maker: Mapped[str | None] = mapped_column(sa.String(11))
    terminal_model: Mapped[str | None] = mapped_column(sa.String(30))
    terminal_plate: Mapped[str | None] = mapped_column(sa.String(32))
    terminal_plate_colour: Mapped[int | None] = mapped_column(sa.SmallInteger)
    bound_at: Mapped[datetime | None]
    # The SHA-256 of the auth code of the terminal's latest registration (random each time);
    # none when revoked. In the database, so any gateway process can check it.
    auth_code_digest: Mapped[str | None] = mapped_column(sa.String(64))
    # What 2019 terminals report in 0x0102.
    imei: Mapped[str | None] = mapped_column(sa.String(15))
    software_version: Mapped[str | None] = mapped_column(sa.String(20))

    @property
    def has_secret(self) -> bool:
        return self.secret_digest is not None

    __table_args__ = (
        sa.UniqueConstraint("protocol", "identifier"),
        sa.Index("ix_device_vehicle_id", "vehicle_id"),
        sa.Index("ix_device_unit_id", "unit_id"),
    )


class AuditEntry(Base):
    """One change, hash-chained to the one before it. The database refuses UPDATE and DELETE."""

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(sa.Integer)
    actor: Mapped[str] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(32))
    entity: Mapped[str] = mapped_column(sa.String(32))
    entity_id: Mapped[str] = mapped_column(sa.String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)

    __table_args__ = (sa.Index("ix_audit_entry_entity", "entity", "entity_id"),)


class OutboxEvent(Base):
    """An event for other systems, written in the transaction of the change it tells of (so
    there is none for a change that rolled back, and none missing for one that committed).
    Writers take the audit chain's lock first, so ids are handed out in commit order and a
    sink's cursor never passes an event that is yet to commit."""

    __tablename__ = "outbox_event"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    unit_id: Mapped[int | None] = mapped_column(sa.Integer)
    unit_code: Mapped[str] = mapped_column(sa.String(32))
    object_type: Mapped[str] = mapped_column(sa.String(32))
    object_id: Mapped[str] = mapped_column(sa.String(64))
    occurred_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)


class SinkKind(StrEnum):
    MQTT = "mqtt"
    WEBHOOK = "webhook"
    AMQP = "amqp"
    NATS = "nats"


class Integration(Timestamped, Base):
    """A sink the outbox's events go to, and how far its delivery has come: `cursor` is the
    last event it acknowledged (or that its filters passed over, or that was dead-lettered)."""

    __tablename__ = "integration"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    kind: Mapped[SinkKind] = mapped_column(_enum(SinkKind, "kind"))
    url: Mapped[str] = mapped_column(sa.String(500))
    # Write-only through the API: the webhook's signing key, or the broker's password.
    secret: Mapped[str | None] = mapped_column(sa.String(200))
    # Sink-specific: the AMQP exchange, the NATS stream.
    options: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    # Only events of this unit and the units under it; none: every unit.
    unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("org_unit.id", ondelete="CASCADE"))
    # Only events of these kinds; none: every kind.
    kinds: Mapped[list[str] | None] = mapped_column(ARRAY(sa.String(32)))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, server_default="true")
    # Set by FLEET_MQTT_URL, not by an administrator: `fleet forward` keeps its URL current.
    from_settings: Mapped[bool] = mapped_column(sa.Boolean, server_default="false")
    cursor: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    retry_at: Mapped[datetime | None]
    sent: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    dead: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_error_at: Mapped[datetime | None]


class DeadLetter(Base):
    """An event a webhook refused as many times as it may, or a notification to a person that
    could not be delivered: delivery went on past it. One of `integration_id` and
    `notification_id` is set."""

    __tablename__ = "dead_letter"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    integration_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("integration.id", ondelete="CASCADE")
    )
    notification_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("notification.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(sa.BigInteger)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    last_error: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime] = mapped_column(server_default=sa.func.now())

    __table_args__ = (
        sa.CheckConstraint("num_nonnulls(integration_id, notification_id) = 1", name="target"),
        sa.Index("ix_dead_letter_integration_id", "integration_id"),
        sa.Index("ix_dead_letter_notification_id", "notification_id"),
    )


class NotifyChannel(StrEnum):
    EMAIL = "email"
    WECOM = "wecom"  # 企业微信 group robot
    DINGTALK = "dingtalk"  # 钉钉 custom robot


CHANNEL_VALUES = ", ".join(f"'{c.value}'" for c in NotifyChannel)


class NotificationSetting(Timestamped, Base):
    """How a person (`user_id`) or, by default for everyone in it and under it, a unit
    (`unit_id`) is reached. A field left empty on a person's row comes from the nearest unit
    that sets it. The robots' URLs carry their key or token and the DingTalk secret signs: none
    of them is shown in full by the API."""

    __tablename__ = "notification_setting"

    id: Mapped[int] = mapped_column(sa.Integer, sa.Identity(), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), unique=True
    )
    unit_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("org_unit.id", ondelete="CASCADE"), unique=True
    )
    # None: as the unit says; []: none at all.
    channels: Mapped[list[str] | None] = mapped_column(ARRAY(sa.String(16)))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    wecom_url: Mapped[str | None] = mapped_column(sa.String(500))
    dingtalk_url: Mapped[str | None] = mapped_column(sa.String(500))
    dingtalk_secret: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.CheckConstraint("num_nonnulls(user_id, unit_id) = 1", name="owner"),
        sa.CheckConstraint(f"channels <@ ARRAY[{CHANNEL_VALUES}]::varchar[]", name="channels"),
    )


class NotificationState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class Notification(Base):
    """One message to one address, derived by `fleet forward` from an outbox event. Each is
    retried on its own (one broken robot holds up nobody else's messages); an address two
    recipients share (a unit's group robot) gets the event's message once."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.BigInteger)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    channel: Mapped[NotifyChannel] = mapped_column(_enum(NotifyChannel, "channel"))
    address: Mapped[str] = mapped_column(sa.String(500))
    # Where the address came from: a DingTalk robot's signing secret is read from it when sent.
    setting_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("notification_setting.id", ondelete="SET NULL")
    )
    language: Mapped[str] = mapped_column(sa.String(8))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    link: Mapped[str] = mapped_column(sa.String(500))
    state: Mapped[NotificationState] = mapped_column(
        _enum(NotificationState, "state"), server_default=NotificationState.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    retry_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(server_default=sa.func.now())

    __table_args__ = (
        sa.UniqueConstraint("event_id", "channel", "address"),
        sa.Index("ix_notification_user_id", "user_id"),
        sa.Index("ix_notification_setting_id", "setting_id"),
        sa.Index(
            "ix_notification_pending",
            "retry_at",
            postgresql_where=sa.text("state = 'pending'"),
        ),
    )


class NotifierCursor(Base):
    """The last outbox event `fleet forward` has turned into notifications (one row)."""

    __tablename__ = "notifier_cursor"

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    cursor: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")

    __table_args__ = (sa.CheckConstraint("id = 1", name="single"),)
