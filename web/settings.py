"""Settings of the pages, `FLEET_` prefixed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", frozen=True, extra="ignore")

    basemap_url: str = Field(
        "",
        description="XYZ raster tile template of an intranet base map (天地图 and similar), e.g."
        " http://tiles.intranet/{z}/{x}/{y}.png; empty: only the app's own vector tiles.",
    )
    basemap_crs: Literal["wgs84", "gcj02"] = Field(
        "wgs84",
        description="Datum of the base map: gcj02 shifts what is drawn on it (the data stays"
        " WGS-84; fences drawn on such a map are converted back before they are stored).",
    )
    basemap_attribution: str = Field("", description="Credit shown for the base map.")
    map_center: tuple[float, float] = Field(
        (120.16, 30.27), description="Where the map opens, [longitude, latitude] (JSON)."
    )
    map_zoom: float = Field(11, ge=0, le=22, description="The zoom the map opens at.")
    node_modules: str = Field(
        "",
        description="Where the front-end packages are installed; empty: node_modules beside the"
        " checkout (make bootstrap runs npm ci there).",
    )
