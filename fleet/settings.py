"""Every setting of Fleet, read once at start-up from `FLEET_*` environment variables.

Nothing else in the project reads the environment: the composition root builds a `Settings` and
passes it in.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url
from sqlalchemy.engine import URL, make_url

from fleet.redis_client import RedisAddress

DEVELOPMENT_SECRET = "development-only-secret-change-me"  # noqa: S105 - refused outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", frozen=True, extra="ignore")

    environment: Literal["development", "test", "production"] = Field(
        "development",
        description="Deployment kind; production refuses placeholder secrets.",
    )
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/fleet",
        description="SQLAlchemy URL of the PostGIS database (driver psycopg 3), as the role the"
        " processes connect as.",
    )
    read_database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of a streaming replica of the database, as the processes'"
        " role: the statistics, order dossiers and vehicle files read from it (their reads are"
        " still recorded on the primary). Unset: they read the primary.",
    )
    database_owner: str = Field(
        "",
        description="The role that owns the schema and runs the migrations (`fleet db upgrade`)"
        " and the road import, as `name` or `name:password`, on FLEET_DATABASE_URL's server and"
        " database. FLEET_DATABASE_URL's role is then granted what the processes need and no"
        " more: INSERT and SELECT on the audit log, INSERT and SELECT on positions. Empty: one"
        " role for both, and the audit log's append-only rule rests on its trigger alone.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL for streams, live positions and login throttling; with"
        " FLEET_REDIS_CLUSTER, any one node of the cluster (database 0, the only one a cluster"
        " has).",
    )
    redis_cluster: bool = Field(
        False,
        description="FLEET_REDIS_URL names a node of a Redis Cluster: the stream's shards spread"
        " over its masters by their hash tags (`fleet:fixes:{N}`).",
    )
    export_settle_s: int = Field(
        120,
        ge=0,
        le=86_400,
        description="Seconds a row's change time must lie in the past before a bulk export"
        " (`/api/v1/export/...`) hands it out and moves its cursor past it: room for the"
        " transactions and the ingest batches still in flight when the export starts.",
    )
    http_host: str = Field("127.0.0.1", description="Address the API server binds to.")
    http_port: int = Field(8000, ge=1, le=65535, description="TCP port of the API server.")
    secret_key: str = Field(
        DEVELOPMENT_SECRET,
        description="Secret mixed into stored token digests; must be set outside development.",
    )
    display_timezone: str = Field(
        "Asia/Shanghai", description="IANA time zone for display; storage is always UTC."
    )
    token_ttl_minutes: int = Field(
        720, ge=1, le=60 * 24 * 30, description="Lifetime of a bearer token, in minutes."
    )
    login_max_failures: int = Field(
        10,
        ge=1,
        description="Failed logins for one username from one source address within the window"
        " before that pair is throttled (count).",
    )
    login_max_failures_per_address: int = Field(
        50,
        ge=1,
        description="Failed logins from one source address, whatever the usernames, within the"
        " window before that address is throttled (count): a password spray.",
    )
    login_max_failures_per_username: int = Field(
        200,
        ge=1,
        description="Failed logins for one username from every address within the window before"
        " that username is throttled (count): a guess spread over many addresses. Keep it above"
        " the per-address limit, so that one address cannot lock a user out.",
    )
    login_failure_window_s: int = Field(
        60, ge=1, description="Window for counting failed logins, in seconds."
    )
    live_token_recheck_s: float = Field(
        30,
        gt=0,
        le=60,
        description="How often an open live WebSocket checks its token again, in seconds; it is"
        " closed (4401) once the token is revoked (logout), expired or its user deactivated.",
    )
    db_pool_size: int = Field(10, ge=1, description="Connections kept in the API's pool (count).")
    max_body_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Largest request body the API reads, in bytes; a larger one is refused (413)"
        " from its Content-Length, or as it streams in, before it is read whole.",
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="Largest statement upload (POST /api/v1/costs/statements) and GeoJSON fence"
        " import (POST /api/v1/fences/import), in bytes; larger is refused (413) the same way.",
    )
    local_login: bool = Field(
        True,
        description="Whether passwords sign in (POST /api/v1/auth/token and the login form);"
        " false leaves sign-on through FLEET_OIDC_ISSUER, and passwords only to the root"
        " administrators named in FLEET_BREAK_GLASS_USERS.",
    )
    break_glass_users: Annotated[list[str], NoDecode] = Field(
        [],
        description="Usernames that may still sign in with a password when FLEET_LOCAL_LOGIN is"
        " false, for when the identity provider is down: a comma list or a JSON list; each must"
        " be an administrator of a root unit, or the password is refused all the same.",
    )
    oidc_issuer: str = Field(
        "",
        description="OpenID Connect issuer URL of the unified identity service (统一身份认证);"
        " its `/.well-known/openid-configuration` is read on the first sign-on; https in"
        " production. Empty: no sign-on, passwords only.",
    )
    oidc_client_id: str = Field("", description="Fleet's client id at the identity provider.")
    oidc_client_secret: str = Field(
        "",
        description="Fleet's client secret at the identity provider (sent with HTTP Basic to its"
        " token endpoint).",
    )
    oidc_username_claim: str = Field(
        "preferred_username",
        description="ID token claim holding the Fleet username an identity signs in as.",
    )
    oidc_auto_create: bool = Field(
        False,
        description="Whether an identity with no Fleet account gets one at its first sign-on, as"
        " a requester in the unit named by FLEET_OIDC_UNIT_CLAIM; false: it is refused.",
    )
    oidc_unit_claim: str = Field(
        "unit",
        description="ID token claim holding the code of the unit a new account is made in"
        " (with FLEET_OIDC_AUTO_CREATE).",
    )
    oidc_scopes: str = Field(
        "openid profile",
        description="Scopes asked for at sign-on, space-separated; must include openid.",
    )
    oidc_redirect_uri: str = Field(
        "",
        description="The callback address registered at the provider, when the address"
        " browsers reach Fleet by differs from the one it sees (a reverse proxy); empty: the"
        " request's own scheme and host, then /auth/oidc/callback.",
    )
    oidc_timeout_s: float = Field(
        10, gt=0, le=60, description="Timeout of each request to the identity provider (s)."
    )
    audit_signing_key_file: str = Field(
        "",
        description="Ed25519 private key (PKCS#8 PEM, `fleet audit keygen`) that signs the audit"
        " chain's checkpoints; keep it off the database host. Empty: no checkpoints.",
    )
    audit_verify_key_file: str = Field(
        "",
        description="Ed25519 public (or private) key that `fleet audit verify --checkpoints`"
        " checks signatures with; empty: the public half of FLEET_AUDIT_SIGNING_KEY_FILE.",
    )
    audit_checkpoint_file: str = Field(
        "var/audit-checkpoints.jsonl",
        description="File outside the database the signed checkpoints are appended to (JSON"
        " lines); put it where the database's administrators cannot write.",
    )
    audit_checkpoint_interval_min: float = Field(
        60,
        gt=0,
        description="How often worker 0 appends a checkpoint when a signing key is set (min).",
    )
    mqtt_url: str = Field(
        "",
        description="An MQTT broker as mqtt://host:port: `fleet forward` then sends every event"
        " of every unit to it, on topics fleet/{unit_code}/{kind}, with no integration to set up."
        " Empty: only the integrations administrators add.",
    )
    forward_poll_s: float = Field(
        1.0, gt=0, description="How often `fleet forward` looks for new events when idle (s)."
    )
    forward_batch: int = Field(
        200,
        ge=1,
        le=10000,
        description="Events sent to one sink before their delivery is marked (count); a crash"
        " in between sends them again.",
    )
    forward_retry_min_s: float = Field(
        1.0, ge=0, description="Wait before the first retry of a failed delivery (s); doubles."
    )
    forward_retry_max_s: float = Field(
        300.0, ge=0, description="Longest wait between retries of a failed delivery (s)."
    )
    forward_timeout_s: float = Field(
        10.0, gt=0, description="How long a sink has to acknowledge one event (s)."
    )
    outbox_keep_days: float = Field(
        7,
        gt=0,
        description="Events are kept this long after they occurred (days), then deleted by"
        " `fleet forward` once every enabled sink has them; a disabled sink misses what is"
        " deleted meanwhile.",
    )
    webhook_max_attempts: int = Field(
        10,
        ge=1,
        description="Failed attempts after which a webhook's event is dead-lettered and delivery"
        " goes on past it (count).",
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="The address people open Fleet's pages at (scheme, host and any path"
        " prefix): the links in notifications start with it.",
    )
    smtp_host: str = Field(
        "",
        description="The mail server notifications by e-mail go through (host name); empty:"
        " no e-mail is sent (the robots still are).",
    )
    smtp_port: int = Field(25, ge=1, le=65535, description="The mail server's port (TCP port).")
    smtp_starttls: bool = Field(
        False, description="Upgrade the connection to the mail server with STARTTLS (yes/no)."
    )
    smtp_user: str = Field("", description="Login at the mail server; empty: none.")
    smtp_password: str = Field("", description="Password of FLEET_SMTP_USER.")
    smtp_from: str = Field(
        "fleet@localhost", description="The sender of notification e-mails (an address)."
    )
    notify_robot_hosts: Annotated[list[str], NoDecode] = Field(
        ["qyapi.weixin.qq.com", "oapi.dingtalk.com"],
        description="The hosts a person's or unit's robot URL may point at (names, as a comma"
        " list): the vendors' own, so that nobody has the notifier post to a host of the"
        " internal network.",
    )
    notify_max_attempts: int = Field(
        8,
        ge=1,
        description="Failed attempts after which a notification is dead-lettered (count); the"
        " waits between them follow FLEET_FORWARD_RETRY_MIN_S and _MAX_S.",
    )

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("break_glass_users", "notify_robot_hosts", mode="before")
    @classmethod
    def _name_list(cls, value: object) -> object:
        """A comma list (`root,ops`) or a JSON list (`["root", "ops"]`)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [name.strip() for name in text.split(",") if name.strip()]
        return value

    @field_validator("oidc_scopes")
    @classmethod
    def _openid_scope(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("FLEET_OIDC_SCOPES must include openid")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("FLEET_OIDC_ISSUER is set: FLEET_OIDC_CLIENT_ID must be too")
        # Over plain HTTP the code, the client secret and the provider's keys could be read or
        # replaced on the way.
        if self.environment == "production" and self.oidc_issuer.startswith("http://"):
            raise ValueError("FLEET_OIDC_ISSUER must be an https:// URL in production")
        return self

    @field_validator("database_url", "read_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = make_url(value)
        if url.get_backend_name() != "postgresql":
            raise ValueError("FLEET_DATABASE_URL must point at PostgreSQL with PostGIS")
        if url.drivername == "postgresql":
            value = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return value

    @model_validator(mode="after")
    def _real_secret_outside_development(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEVELOPMENT_SECRET:
            raise ValueError("FLEET_SECRET_KEY must be set to a real secret in production")
        return self

    @model_validator(mode="after")
    def _cluster_has_database_0(self) -> Settings:
        database = parse_url(self.redis_url).get("db") or 0
        if self.redis_cluster and database != 0:
            raise ValueError(
                f"FLEET_REDIS_URL names database {database}: a Redis Cluster has only database 0"
            )
        return self

    @model_validator(mode="after")
    def _one_address_cannot_lock_a_user_out(self) -> Settings:
        if self.login_max_failures_per_username <= self.login_max_failures_per_address:
            raise ValueError(
                "FLEET_LOGIN_MAX_FAILURES_PER_USERNAME must be above"
                " FLEET_LOGIN_MAX_FAILURES_PER_ADDRESS, or one address could lock a user out"
            )
        return self

    @property
    def database(self) -> URL:
        return make_url(self.database_url)

    @property
    def app_role(self) -> str | None:
        """The role the processes connect as, when another role owns the schema."""
        owner = self.owner_database
        app = self.database.username
        return app if owner.username != app else None

    @property
    def owner_database(self) -> URL:
        if not self.database_owner:
            return self.database
        name, _, password = self.database_owner.partition(":")
        return self.database.set(username=name, password=password or None)

    def as_owner(self) -> Settings:
        """These settings with the schema owner's connection, for migrations and bulk imports."""
        url = self.owner_database.render_as_string(hide_password=False)
        return self.model_copy(update={"database_url": url, "database_owner": ""})

    @property
    def redis(self) -> RedisAddress:
        return RedisAddress(self.redis_url, cluster=self.redis_cluster)

    def with_redis(self, address: RedisAddress) -> Settings:
        return self.model_copy(update={"redis_url": address.url, "redis_cluster": address.cluster})

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)

    def with_database_name(self, name: str) -> Settings:
        url = self.database.set(database=name).render_as_string(hide_password=False)
        return self.model_copy(update={"database_url": url})


def describe() -> list[tuple[str, object, str]]:
    """(environment variable, default, description) for every setting, for the README and CLI."""
    rows = []
    for name, field in Settings.model_fields.items():
        rows.append((f"FLEET_{name.upper()}", field.default, field.description or ""))
    return rows
