"""Speeding: faster than the limit under the truck by more than a tolerance, for a while.

The limit at a ping (EPSG:32651, exact shapely geometry):
  1. the nearest road within `road_match_m` (distance <= road_match_m) gives its own
     `speed_limit_kmh` (DOMAIN.md §4: expressway 80, other roads 60, lower where the road says
     so); several roads at exactly the nearest distance (a junction, overlapping edges): the
     lowest of their limits applies, then the lowest road row names the road;
  2. no road that close: `default_limit_kmh`;
  3. a restricted zone with a `speed_limit_kmh` that the ping lies in (boundary included)
     lowers the limit when its own is lower (lowest zone first, then the lowest zone row).
     A zone's closing hours (`closed_from`/`closed_to`) govern access, not speed: its limit
     applies at all hours.

The speed is the batch's `speed_kmh` (the terminal's when reported, else derived from the
previous ping; `speed_derived` says which). An episode opens once speed > limit + tolerance
has held for at least `speeding_min_duration_s` and `speeding_min_pings` consecutive pings
(start = first such ping) and closes at the first ping with speed <= limit + tolerance -
hysteresis (or no known speed), via `spatial.rules.episodes.scan_episodes`. Events are
`open` (when confirmed) and `close`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import shapely
from numba import njit
from shapely import STRtree

from spatial.crs import geometry_to_metric
from spatial.model import Event, World
from spatial.rules.base import (
    SEVERITY_HIGH,
    SEVERITY_MEDIUM,
    RuleBatch,
    RuleWorld,
    finite_or_none,
    iso_times,
    make_event,
    setting,
)
from spatial.rules.episodes import MARK_OPEN, EpisodeState, scan_episodes

LIMIT_DEFAULT, LIMIT_ROAD, LIMIT_ZONE = 0, 1, 2
LIMIT_SOURCES = ("default", "road", "zone")


@dataclass(frozen=True)
class SpeedingSettings:
    speed_tolerance_kmh: float = setting(5.0, "km/h", "issue 4 (engineering default): speedometer and GNSS error")
    speeding_min_duration_s: float = setting(30.0, "s", "issue 4 (engineering default)")
    speeding_min_pings: int = setting(2, "pings", "issue 4 (engineering default)")
    speeding_hysteresis_kmh: float = setting(
        3.0, "km/h", "(engineering default): open until speed <= limit + tolerance - hysteresis")
    road_match_m: float = setting(30.0, "m", "issue 4 (engineering default): farthest road a ping is matched to")
    # ≤ 60 km/h on roads other than expressways (危险货物道路运输安全管理办法 2019 art. 46).
    default_limit_kmh: float = setting(60.0, "km/h", "危险货物道路运输安全管理办法 (2019) art. 46")
    severe_excess_kmh: float = setting(20.0, "km/h", "(engineering default): peak excess above it is SEVERITY_HIGH")

    def __post_init__(self):
        for name in ("speed_tolerance_kmh", "speeding_min_duration_s", "speeding_hysteresis_kmh", "road_match_m",
                     "severe_excess_kmh"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"speeding setting {name} must be a finite number >= 0, got {value!r}")
        if not (np.isfinite(self.default_limit_kmh) and self.default_limit_kmh > 0):
            raise ValueError(f"speeding setting default_limit_kmh must be > 0, got {self.default_limit_kmh!r}")
        if int(self.speeding_min_pings) != self.speeding_min_pings or self.speeding_min_pings < 1:
            raise ValueError(f"speeding_min_pings must be a whole number >= 1, got {self.speeding_min_pings!r}")


@dataclass(frozen=True)
class LimitIndex:
    """Metric roads and speed-limited zones in STRtrees, with their limits and ids."""

    roads: STRtree
    road_limit: np.ndarray
    road_id: np.ndarray
    zones: STRtree
    zone_limit: np.ndarray
    zone_id: np.ndarray

    @classmethod
    def build(cls, world: World) -> LimitIndex:
        roads = world.roads
        road_limit = pd.to_numeric(roads["speed_limit_kmh"], errors="coerce").to_numpy("float64", na_value=np.nan)
        bad = ~(np.isfinite(road_limit) & (road_limit > 0))
        road_geoms = np.asarray(roads.geometry.to_numpy(), dtype=object) if len(roads) else np.empty(0, object)
        bad |= shapely.is_missing(road_geoms) | shapely.is_empty(road_geoms)
        if bad.any():
            ids = roads["id"].to_numpy(dtype=object)[bad]
            raise ValueError("roads without a geometry or a positive speed_limit_kmh: "
                             + ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else ""))
        zones = world.restricted_zones
        given = zones["speed_limit_kmh"].notna().to_numpy(bool)  # None / NaN: the zone sets no limit
        zone_limit = pd.to_numeric(zones["speed_limit_kmh"], errors="coerce").to_numpy("float64", na_value=np.nan)
        limited = given & np.isfinite(zone_limit) & (zone_limit > 0)
        bad = given & ~limited
        if bad.any():
            ids = zones["id"].to_numpy(dtype=object)[bad]
            raise ValueError(f"restricted zones with a speed_limit_kmh that is not a positive number: "
                             f"{', '.join(map(str, ids[:10]))}")
        zone_geoms = np.asarray(zones.geometry.to_numpy(), dtype=object)[limited] if len(zones) else np.empty(0, object)
        if (shapely.is_missing(zone_geoms) | shapely.is_empty(zone_geoms)).any():
            raise ValueError("restricted zones with a speed_limit_kmh but no geometry")
        return cls(
            STRtree(geometry_to_metric(road_geoms)), road_limit, roads["id"].to_numpy(dtype=object),
            STRtree(geometry_to_metric(zone_geoms)), zone_limit[limited],
            zones["id"].to_numpy(dtype=object)[limited] if len(zones) else np.empty(0, object),
        )

    def lowest_limit_kmh(self, default_limit_kmh: float) -> float:
        """The lowest limit any ping can get."""
        return float(min(default_limit_kmh, self.road_limit.min(initial=np.inf), self.zone_limit.min(initial=np.inf)))

    def limits(self, x: np.ndarray, y: np.ndarray, road_match_m: float, default_limit_kmh: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per point: limit_kmh, source (LIMIT_*), road row (-1 none), zone row (-1 none).
        The road row is the matched road even where a zone's lower limit won."""
        n = len(x)
        points = shapely.points(x, y)
        limit = np.full(n, float(default_limit_kmh))
        source = np.full(n, LIMIT_DEFAULT, "int8")
        road = np.full(n, -1, "int64")
        zone = np.full(n, -1, "int64")
        if len(self.road_limit) and n:
            (ping, row), _ = self.roads.query_nearest(
                points, max_distance=road_match_m, return_distance=True, all_matches=True)
            first = _lowest_per_ping(ping, self.road_limit[row], row)
            road[ping[first]] = row[first]
            limit[ping[first]] = self.road_limit[row[first]]
            source[ping[first]] = LIMIT_ROAD
        if len(self.zone_limit) and n:
            ping, row = self.zones.query(points, predicate="intersects")
            first = _lowest_per_ping(ping, self.zone_limit[row], row)
            ping, row = ping[first], row[first]
            zone[ping] = row
            lower = self.zone_limit[row] < limit[ping]
            limit[ping[lower]] = self.zone_limit[row[lower]]
            source[ping[lower]] = LIMIT_ZONE
        return limit, source, road, zone


# The limit lookup grid (narrowing only): a cell whose every point provably gets the same answer
# from the exact rule answers for its pings; any other ping takes the exact STRtree path.
LIMIT_GRID_CELL_M = 20.0
_GRID_MARGIN_M = 1e-3  # far above GEOS' and this grid's rounding (~1e-9 m), far below any road gap
_GRID_DEFAULT, _GRID_EXACT = 0, 255  # codes; 1 + k: the limit of road class k


@dataclass(frozen=True)
class LimitGrid:
    """Square cells over the roads and speed-limited zones, each coded: 0 no road within
    `road_match_m` of any of its points (default limit), 1 + k every point is within
    `road_match_m` of a road and every road that near any of its points has limit
    `class_limit[k]` (that limit, whichever road is nearest), 255 anything else (a zone, a
    road edge, roads of different limits): ask the exact lookup. Points outside the grid are
    farther than `road_match_m` from every road and outside every zone: default limit."""

    x0: float
    y0: float
    nx: int
    ny: int
    cell_m: float
    code: np.ndarray  # uint8, row-major (ny, nx)
    class_limit: np.ndarray

    @classmethod
    def build(cls, index: LimitIndex, road_match_m: float, cell_m: float = LIMIT_GRID_CELL_M) -> LimitGrid:
        roads = np.asarray(index.roads.geometries, dtype=object)
        zones = np.asarray(index.zones.geometries, dtype=object)
        class_limit, road_class = np.unique(index.road_limit, return_inverse=True)
        if len(class_limit) > 250:  # more distinct limits than codes: the grid only answers "default"
            road_class = np.full(len(roads), 250)
        parts, part_road = shapely.get_parts(roads, return_index=True)
        coords, owner = shapely.get_coordinates(parts, return_index=True)
        is_seg = owner[1:] == owner[:-1]
        a, b = coords[:-1][is_seg], coords[1:][is_seg]
        seg_class = road_class[part_road[owner[1:][is_seg]]].astype("int64")
        half_diagonal = cell_m * np.sqrt(0.5)
        reach = road_match_m + half_diagonal + _GRID_MARGIN_M
        boxes = [shapely.total_bounds(g) for g in (roads, zones) if len(g)]
        if not boxes:
            return cls(0.0, 0.0, 0, 0, cell_m, np.zeros(0, "uint8"), class_limit)
        box = np.array(boxes)
        x0 = np.floor((np.nanmin(box[:, 0]) - reach - cell_m) / cell_m) * cell_m
        y0 = np.floor((np.nanmin(box[:, 1]) - reach - cell_m) / cell_m) * cell_m
        nx = int(np.ceil((np.nanmax(box[:, 2]) + reach + cell_m - x0) / cell_m)) + 1
        ny = int(np.ceil((np.nanmax(box[:, 3]) + reach + cell_m - y0) / cell_m)) + 1
        code = np.zeros(ny * nx, "uint8")
        covered = np.zeros(ny * nx, bool)
        _raster_roads(a[:, 0].copy(), a[:, 1].copy(), b[:, 0].copy(), b[:, 1].copy(), seg_class, x0, y0, nx, ny,
                      cell_m, reach, road_match_m - half_diagonal - _GRID_MARGIN_M, code, covered)
        code[(code != _GRID_DEFAULT) & ~covered] = _GRID_EXACT
        del covered
        for zx0, zy0, zx1, zy1 in shapely.bounds(zones):  # a handful of zones: every cell they may touch
            i0, i1 = int((zx0 - x0) // cell_m) - 1, int((zx1 - x0) // cell_m) + 2
            j0, j1 = int((zy0 - y0) // cell_m) - 1, int((zy1 - y0) // cell_m) + 2
            code.reshape(ny, nx)[max(j0, 0):min(j1, ny), max(i0, 0):min(i1, nx)] = _GRID_EXACT
        return cls(float(x0), float(y0), nx, ny, float(cell_m), code, class_limit.astype("float64"))

    def lookup(self, x: np.ndarray, y: np.ndarray, default_limit_kmh: float) -> np.ndarray:
        """Each point's limit where the grid is sure of it, NaN where the exact lookup must decide."""
        limit = np.full(len(x), float(default_limit_kmh))
        if not self.nx:
            return limit
        i = np.floor((x - self.x0) / self.cell_m)
        j = np.floor((y - self.y0) / self.cell_m)
        inside = (i >= 0) & (i < self.nx) & (j >= 0) & (j < self.ny)
        code = np.zeros(len(x), "uint8")
        code[inside] = self.code[j[inside].astype("int64") * self.nx + i[inside].astype("int64")]
        road = (code != _GRID_DEFAULT) & (code != _GRID_EXACT)
        limit[road] = self.class_limit[code[road].astype("int64") - 1]
        limit[code == _GRID_EXACT] = np.nan
        # anything not finite (NaN coordinates) goes to the exact path as well
        limit[~(np.isfinite(x) & np.isfinite(y))] = np.nan
        return limit


@njit(cache=True, nogil=True)
def _raster_roads(ax, ay, bx, by, seg_class, x0, y0, nx, ny, cell, reach, cover,
                  code, covered):  # pragma: no cover - numba
    """Mark every cell whose centre lies within `reach` of a road segment with the segment's
    class (255 once two classes meet), and `covered` where a segment is within `cover`."""
    for s in range(ax.shape[0]):
        dx = bx[s] - ax[s]
        dy = by[s] - ay[s]
        length2 = dx * dx + dy * dy
        pieces = int(np.ceil(np.sqrt(length2) / cell)) + 1
        mark = np.uint8(seg_class[s] + 1)
        for p in range(pieces + 1):  # walk the segment a cell at a time, visiting the cells around
            f = min(p / pieces, 1.0)
            px = ax[s] + f * dx
            py = ay[s] + f * dy
            i0 = max(int(np.floor((px - reach - x0) / cell)), 0)
            i1 = min(int(np.floor((px + reach - x0) / cell)), nx - 1)
            j0 = max(int(np.floor((py - reach - y0) / cell)), 0)
            j1 = min(int(np.floor((py + reach - y0) / cell)), ny - 1)
            for j in range(j0, j1 + 1):
                cy = y0 + (j + 0.5) * cell
                for i in range(i0, i1 + 1):
                    cx = x0 + (i + 0.5) * cell
                    if length2 > 0.0:
                        t = ((cx - ax[s]) * dx + (cy - ay[s]) * dy) / length2
                        t = min(max(t, 0.0), 1.0)
                    else:
                        t = 0.0
                    d = np.hypot(cx - (ax[s] + t * dx), cy - (ay[s] + t * dy))
                    if d > reach:
                        continue
                    k = j * nx + i
                    if code[k] == 0:
                        code[k] = mark
                    elif code[k] != mark:
                        code[k] = 255
                    if d <= cover:
                        covered[k] = True


def _lowest_per_ping(ping: np.ndarray, limit: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Positions (into the pair arrays) of each ping's lowest limit, ties to the lowest row."""
    order = np.lexsort((row, limit, ping))
    keep = np.r_[True, ping[order][1:] != ping[order][:-1]] if len(order) else np.zeros(0, bool)
    return order[keep]


@dataclass(frozen=True)
class SpeedingState:
    # one scan per tracked quantity, all on the same enter/stay tests (identical marks):
    # excess over the limit (peak → severity), speed (peak), derived flag (any)
    excess: EpisodeState = field(default_factory=EpisodeState)
    speed: EpisodeState = field(default_factory=EpisodeState)
    derived: EpisodeState = field(default_factory=EpisodeState)




@dataclass(frozen=True)
class SpeedingRule:
    settings: SpeedingSettings = field(default_factory=SpeedingSettings)
    name: ClassVar[str] = "speeding"

    def initial_state(self) -> SpeedingState:
        return SpeedingState()

    def limit_index(self, world: RuleWorld) -> LimitIndex:
        return world.cached(f"{self.name}:limits", lambda: LimitIndex.build(world.world))

    def severity(self, peak_excess_kmh: float) -> int:
        return SEVERITY_HIGH if peak_excess_kmh > self.settings.severe_excess_kmh else SEVERITY_MEDIUM

    def step(self, state: SpeedingState, batch: RuleBatch, world: RuleWorld) -> tuple[SpeedingState, list[Event]]:
        if not len(batch):
            return state, []
        s = self.settings
        index = self.limit_index(world)
        speed = np.asarray(batch.speed_kmh, "float64")
        stay_over_kmh = s.speed_tolerance_kmh - s.speeding_hysteresis_kmh
        # Only a ping that would stay even under the lowest limit anywhere can enter or stay, so
        # only those need the limit under them (exact: speed - limit <= speed - lowest, rounding
        # being monotone).
        fast = np.flatnonzero(speed - index.lowest_limit_kmh(s.default_limit_kmh) > stay_over_kmh)
        limit, source, road, zone = (np.full(len(batch), np.nan), np.full(len(batch), LIMIT_DEFAULT, "int8"),
                                     np.full(len(batch), -1, "int64"), np.full(len(batch), -1, "int64"))
        # the grid answers most pings; the rest (and, below, the evidence of opening pings) get
        # the exact STRtree lookup
        grid = world.cached(f"{self.name}:limit_grid:{s.road_match_m}",
                            lambda: LimitGrid.build(index, s.road_match_m))
        limit[fast] = grid.lookup(batch.x[fast], batch.y[fast], s.default_limit_kmh)
        ask = fast[np.isnan(limit[fast])]
        limit[ask], source[ask], road[ask], zone[ask] = index.limits(
            batch.x[ask], batch.y[ask], s.road_match_m, s.default_limit_kmh)
        excess = speed - limit  # NaN where the speed is unknown or slow: neither enters nor stays
        enter = excess > s.speed_tolerance_kmh
        stay = excess > stay_over_kmh
        min_duration_ms, min_pings = round(s.speeding_min_duration_s * 1000), int(s.speeding_min_pings)

        def scan(episodes: EpisodeState, value: np.ndarray):
            return scan_episodes(episodes, batch.slot, batch.epoch_ms, enter, stay, value, batch.lon, batch.lat,
                                 min_duration_ms, min_pings)

        excess_state, marks = scan(state.excess, excess)
        speed_state, speed_marks = scan(state.speed, speed)
        derived_state, derived_marks = scan(state.derived, np.asarray(batch.speed_derived, "float64"))

        opening = marks.index[marks.kind == MARK_OPEN]  # the exact match for their evidence
        if len(opening):
            exact = index.limits(batch.x[opening], batch.y[opening], s.road_match_m, s.default_limit_kmh)
            if not np.array_equal(exact[0], limit[opening]):
                raise AssertionError("speeding: the limit grid disagrees with the exact lookup")
            limit[opening], source[opening], road[opening], zone[opening] = exact
        closing = marks.index[np.isnan(limit[marks.index])]  # slow closing pings: their limit for the evidence
        if len(closing):
            limit[closing] = index.limits(batch.x[closing], batch.y[closing], s.road_match_m, s.default_limit_kmh)[0]
        # evidence times formatted for all events at once (one call per event costs more than the step)
        start_text, ping_text, end_text = (iso_times(ms) for ms in (
            marks.start_ms, batch.epoch_ms[marks.index], marks.end_ms))
        events = []
        for k in range(len(marks)):  # one iteration per event, not per ping
            i = int(marks.index[k])
            peak_excess = float(marks.peak[k])
            common = {
                "peak_speed_kmh": float(speed_marks.peak[k]),
                "peak_excess_kmh": peak_excess,
                "any_speed_derived": bool(derived_marks.peak[k] > 0),
                "tolerance_kmh": float(s.speed_tolerance_kmh),
                "hysteresis_kmh": float(s.speeding_hysteresis_kmh),
                "first_ping": start_text[k],
                "pings": int(marks.pings[k]),
            }
            if marks.kind[k] == MARK_OPEN:
                evidence = {
                    **common,
                    "speed_kmh": float(speed[i]),
                    "limit_kmh": float(limit[i]),
                    "excess_kmh": float(excess[i]),
                    "limit_source": LIMIT_SOURCES[source[i]],
                    "road_id": None if road[i] < 0 else str(index.road_id[road[i]]),
                    "zone_id": None if zone[i] < 0 else str(index.zone_id[zone[i]]),
                    "speed_derived": bool(batch.speed_derived[i]),
                    "confirmed": ping_text[k],
                    "duration_s": (int(batch.epoch_ms[i]) - int(marks.start_ms[k])) / 1000.0,
                    "min_duration_s": float(s.speeding_min_duration_s),
                    "min_pings": int(s.speeding_min_pings),
                }
                events.append(make_event(self.name, batch.vehicle_id[i], "open", marks.start_ms[k], None,
                                         batch.lon[i], batch.lat[i], self.severity(peak_excess), evidence))
            else:
                evidence = {
                    **common,
                    "last_ping": end_text[k],
                    "duration_s": (int(marks.end_ms[k]) - int(marks.start_ms[k])) / 1000.0,
                    "closed": ping_text[k],
                    "closing_speed_kmh": finite_or_none(speed[i]),
                    "closing_limit_kmh": float(limit[i]),
                }
                events.append(make_event(self.name, batch.vehicle_id[i], "close", marks.start_ms[k], marks.end_ms[k],
                                         marks.last_lon[k], marks.last_lat[k], self.severity(peak_excess), evidence))
        return SpeedingState(excess_state, speed_state, derived_state), events
