"""H3 helpers and the named resolutions hazmap uses."""

from __future__ import annotations

import h3
import numpy as np
from h3ronpy.vector import coordinates_to_cells

# ~0.1 km² hexagons (edge ≈ 174 m): fine enough to filter point layers by area.
H3_RES_AREA_FILTER = 9
# ~0.74 km² hexagons (edge ≈ 461 m): the wall screen's risk grid.
H3_RES_RISK_GRID = 8
# The risk grid's resolution follows the map's zoom: ~36 km² hexagons (edge ≈ 3.2 km) at city
# zoom, ~5.2 km² (edge ≈ 1.2 km) at district zoom, H3_RES_RISK_GRID, ~0.1 km² at street zoom.
H3_RES_GRID_CITY = 6
H3_RES_GRID_DISTRICT = 7
H3_RES_GRID_STREET = 9
RISK_GRID_RESOLUTIONS = (H3_RES_GRID_CITY, H3_RES_GRID_DISTRICT, H3_RES_RISK_GRID, H3_RES_GRID_STREET)
# Every risk contribution is placed in its cell at this resolution; a coarser cell is the H3
# parent of these cells (so a parent's score is exactly the sum of its children's).
H3_RES_GRID_FINEST = H3_RES_GRID_STREET

_RES_SHIFT = 52  # H3 index bits 52-55 hold the resolution; 3 bits per digit below them
_RES_MASK = np.uint64(0xF << _RES_SHIFT)


def cells_for_points(lon, lat, resolution: int = H3_RES_AREA_FILTER) -> np.ndarray:
    """H3 cell ids (hex strings) of lon/lat points; empty string for missing coordinates.

    h3-py v4 has no vectorised call; this runs at ~1 M points/s, fine for world layers
    (≈ 18 k features), not meant for the ping hot path.
    """
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    out = np.empty(len(lon), dtype=object)
    for i, (x, y) in enumerate(zip(lon.tolist(), lat.tolist())):
        out[i] = "" if (x != x or y != y) else h3.latlng_to_cell(y, x, resolution)
    return out


def cell_ints(lon, lat, resolution: int) -> np.ndarray:
    """H3 cells (uint64) of lon/lat points, vectorised (h3ronpy, ~10 M points/s); 0 where a
    coordinate is missing."""
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    if lon.shape != lat.shape:
        raise ValueError(f"lon and lat differ in length: {lon.shape} vs {lat.shape}")
    ok = np.isfinite(lon) & np.isfinite(lat)
    out = np.zeros(len(lon), dtype="uint64")
    if ok.any():
        out[ok] = np.asarray(coordinates_to_cells(lat[ok], lon[ok], int(resolution)), dtype="uint64")
    return out


def parent_cells(cells: np.ndarray, resolution: int) -> np.ndarray:
    """The H3 parents at `resolution` of uint64 cells at that resolution or finer, by bit
    arithmetic (what h3's cell_to_parent does, for a whole array): the resolution field set,
    the digits below it set to 7. 0 stays 0."""
    cells = np.asarray(cells, dtype="uint64")
    if not 0 <= resolution <= 15:
        raise ValueError(f"H3 resolution must be 0..15, got {resolution}")
    below = np.uint64((1 << ((15 - resolution) * 3)) - 1)
    parents = (cells & ~_RES_MASK) | np.uint64(resolution << _RES_SHIFT) | below
    return np.where(cells == 0, np.uint64(0), parents)


def cell_hex(cells) -> list[str]:
    """uint64 cells as h3's hex strings."""
    return [format(c, "x") for c in np.asarray(cells, dtype="uint64").tolist()]
