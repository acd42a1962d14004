"""Convert the GCJ-02 district outlines of shared/reference to the WGS-84 file shipped here.

Run once when the source changes: python -m data.reference.convert_districts SRC.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd

from spatial.crs import geometry_gcj02_to_wgs84

OUT = Path(__file__).with_name("ningbo_districts.geojson")


def convert(src: Path, out: Path = OUT) -> None:
    gdf = gpd.read_file(src)
    gdf = gdf[gdf["level"] == "district"].sort_values("adcode")
    gdf = gpd.GeoDataFrame(
        gdf[["adcode", "name", "name_en"]].reset_index(drop=True),
        geometry=geometry_gcj02_to_wgs84(gdf.geometry.to_numpy()),
        crs="EPSG:4326",
    )
    out.unlink(missing_ok=True)
    gdf.to_file(out, driver="GeoJSON", COORDINATE_PRECISION=7)


if __name__ == "__main__":
    convert(Path(sys.argv[1]))
