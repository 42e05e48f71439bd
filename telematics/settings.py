"""Settings of the telematics domain (gateways, stream, ingest, trips), `FLEET_` prefixed."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleet.api import from_state


class TelematicsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", frozen=True, extra="ignore")

    gateway_host: str = Field(
        "0.0.0.0",  # noqa: S104 - trackers reach the gateways from outside by design
        description="Address the device gateways bind to.",
    )
    jt808_port: int = Field(5015, ge=1, le=65535, description="TCP port of the JT/T 808 gateway.")
    jt808_shared_port: bool = Field(
        False,
        description="Let several gateway processes listen on the JT/T 808 port together"
        " (SO_REUSEPORT; the kernel spreads the connections): for more terminals than one"
        " process may hold sockets for, and for more cores. Off, a second gateway on the port"
        " fails to start.",
    )
    osmand_port: int = Field(
        5055, ge=1, le=65535, description="HTTP port of the OsmAnd (Traccar Client) gateway."
    )
    forward_positions: bool = Field(
        False,
        description="The ingest worker hands every stored fix to `fleet forward` for the sinks"
        " that take positions (on by itself when FLEET_MQTT_URL is set).",
    )
    forward_positions_maxlen: int = Field(
        100_000,
        ge=100,
        description="Stored batches of fixes kept for `fleet forward` (stream entries, about);"
        " a sink further behind loses the oldest, counted as trimmed.",
    )
    jt808_allow_unauthenticated: bool = Field(
        False,
        description="Accept reports from a registered terminal that skipped 0x0102 authentication.",
    )
    jt808_lenient_checksum: bool = Field(
        False, description="Accept JT/T 808 frames whose check byte is wrong (cheap terminals)."
    )
    jt808_idle_timeout_s: float = Field(
        360, gt=0, description="Close a terminal connection silent for this long, in seconds."
    )
    osmand_speed_unit: Literal["kn", "kmh", "mps", "mph"] = Field(
        "kn", description="Unit of the OsmAnd `speed` parameter (the apps send knots)."
    )
    stream_shards: int = Field(
        8, ge=1, le=256, description="Redis streams the fixes are sharded over, by vehicle (count)."
    )
    stream_max_backlog: int = Field(
        200_000,
        ge=100,
        description="Stream entries waiting in Redis beyond which gateways stop acknowledging.",
    )
    ingest_batch_entries: int = Field(
        2000,
        ge=1,
        description="Stream entries an ingest worker takes per batch at most, all shards (count).",
    )
    ingest_batch_fixes: int = Field(
        50_000,
        ge=1,
        description="A worker stops filling a batch once it holds this many fixes (count).",
    )
    ingest_linger_ms: float = Field(
        200, ge=0, le=1000, description="How long a worker waits to fill a small batch, in ms."
    )
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="CPU niceness of an ingest worker: the gateways and the API (the live path)"
        " are served first on a shared machine; 0 turns it off.",
    )
    ingest_claim_idle_s: float = Field(
        30, gt=0, description="A pending entry idle this long is claimed from a dead worker (s)."
    )
    max_future_s: float = Field(
        300, ge=0, description="Fixes dated further ahead than this are dropped, in seconds."
    )
    max_past_days: float = Field(
        30,
        gt=0,
        description="Fixes dated further back than this are dropped and counted as too_old, in"
        " days (blind-area re-sends span days). Partitions are only made for months in this"
        " window.",
    )
    position_retention_years: int | None = Field(
        None,
        ge=1,
        description="Positions older than this many years are deleted by the worker's daily"
        " maintenance (whole monthly partitions dropped), the deletion audited; unset keeps"
        " them all (years).",
    )
    hot_months: int = Field(
        3,
        ge=0,
        description="Months of positions kept in PostGIS before the current one; older monthly"
        " partitions are archived to GeoParquet by `fleet archive` and the worker's daily"
        " maintenance (0: every month before the current one).",
    )
    archive_url: str = Field(
        "var/archive",
        description="Where archived months of positions go: a local folder, or an fsspec URL"
        " such as s3://bucket/prefix for S3-compatible storage (with `pip install fleet[s3]`"
        " and the usual AWS_* variables, or FLEET_ARCHIVE_OPTIONS).",
    )
    archive_options: dict[str, str] = Field(
        default_factory=dict,
        description="Options of the archive's storage, as JSON (for S3:"
        ' {"endpoint_url": "http://minio:9000", "key": "...", "secret": "..."}).',
    )
    max_speed_kmh: float = Field(
        300, gt=0, description="Speeds above this are impossible for a road vehicle, in km/h."
    )
    device_cache_s: float = Field(
        30,
        gt=0,
        description="How long gateways trust their copy of the device registry while they cannot"
        " follow its changes (s).",
    )
    trip_min_distance_m: float = Field(200, ge=0, description="Shortest trip, in metres.")
    stop_min_duration_s: float = Field(180, ge=0, description="Shortest stop, in seconds.")
    trip_split_gap_s: float = Field(
        3600, gt=0, description="A reporting gap this long splits a trip, in seconds."
    )


# The routes' dependency: the settings the app factory made, by type.
TelematicsSettingsDep = Annotated[TelematicsSettings, Depends(from_state("telematics_settings"))]
