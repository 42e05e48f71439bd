"""Settings of the pages, `FLEET_` prefixed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where a map opens when FLEET_MAP_CENTER is unset and the caller has no vehicle and no depot to
# fit (a new installation, a unit without cars): the demo's city, Hangzhou.
DEFAULT_MAP_CENTER = (120.16, 30.27)


class WebSettings(BaseSettings):
    # An empty value is no value: `FLEET_MAP_CENTER=` in an env file leaves the centre unset.
    model_config = SettingsConfigDict(
        env_prefix="FLEET_", frozen=True, extra="ignore", env_ignore_empty=True
    )

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
    basemap_attribution: str = Field(
        "",
        description="Credit shown for the base map, beside the one for OpenStreetMap (the"
        " app's own roads).",
    )
    map_center: tuple[float, float] | None = Field(
        None,
        description="Where every map opens, [longitude, latitude] in WGS-84 degrees (JSON), at"
        " map_zoom. Unset: the desk's and the review's maps fit the caller's vehicles (their last"
        " positions, else their depots), the phone's map the caller's unit's depots; with"
        f" nothing to fit, {list(DEFAULT_MAP_CENTER)} at map_zoom.",
    )
    map_zoom: float = Field(
        11,
        ge=0,
        le=22,
        description="The zoom level a map opens at: at map_center, or at the default centre when"
        " there is nothing to fit.",
    )
    map_fit_max_zoom: float = Field(
        15,
        ge=0,
        le=22,
        description="The closest zoom level a map fitted to vehicles or depots opens at (one car"
        " alone would otherwise fill the screen).",
    )
    node_modules: str = Field(
        "",
        description="Where the front-end packages are installed; empty: the copy an installed"
        " wheel carries, else node_modules beside the checkout (make bootstrap runs npm ci there).",
    )
