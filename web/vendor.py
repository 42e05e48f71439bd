"""The front-end packages the pages load (MapLibre GL JS, ECharts, from npm: package.json), and the
files of each that the pages ask for.

A checkout serves them from node_modules, where `npm ci` put them. The wheel carries just these
files and the packages' licences, copied from there when it is built (scripts/packaging.py) into
web/node_modules/, laid out as npm lays them out.

Standard library only: the wheel's build reads this file before Fleet is installed.
"""

from __future__ import annotations

from typing import NamedTuple


class Package(NamedTuple):
    served: str  # the package's folder that /vendor/<name>/ serves
    files: tuple[str, ...]  # in that folder, what the pages load
    licence: tuple[str, ...]  # at the package's top: its licence and notices


PACKAGES = {
    "maplibre-gl": Package(
        "dist", ("maplibre-gl.mjs", "maplibre-gl-worker.mjs", "maplibre-gl.css"), ("LICENSE.txt",)
    ),
    "echarts": Package(
        "dist", ("echarts.esm.min.js",), ("LICENSE", "NOTICE", "licenses/LICENSE-d3")
    ),
}
