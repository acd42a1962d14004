"""The wall's live layer: trucks where `LiveState` says they are, monitoring points coloured
by their status, as compact payloads for the canvas layer in assets/hazmap_live.js.

Two payloads (DESIGN.md §7: typed arrays, not features):

- **static**, once per World: the bounding box the positions are quantised over, the
  vehicle ids and plates (world.vehicles order: a truck's *index* in every frame), the
  monitoring point ids and their quantised positions (world.monitoring_points order).
- **frame**, every poll: per truck its index, lon/lat as uint16 over the box, a state byte
  and a heading byte (8 bytes a truck); per point its index and a status byte. Each array
  is little-endian, base64. `frame(state, since)` with `since` = the version of the last
  frame the screen applied returns only the trucks and points whose picture changed since;
  since 0, a version this encoder never served, or one newer than the state's (the feed
  restarted) gives the full form (`full: true`: the screen forgets what it had).

A truck's state depends on the newest report of the whole fleet (it is stale 20 min
behind it), which moves without the truck's own row changing. So the encoder remembers
the newest report time of every version it served (a bounded memo): a delta from version
`since` also carries the trucks that went stale between that time and now, and a version
it does not remember gets the full form, never a wrong delta.

A third, **trail**, on demand for the one truck the duty officer selected (`trail_payload`):
its pings of the last `LiveState.trail_s` as the same kind of typed arrays (lon/lat uint16
over the same box, seconds after the first ping, speed bytes) plus its stops. Typed arrays
rather than a GeoJSON LineString: the canvas projects them with the projector it already has
for the trucks, a LineString has no per-vertex time or speed (the fading and the stops need
both), and at 9 bytes a ping a 2 h trail (240 pings at 30 s) is 3.1 kB of JSON (2.1 kB
gzipped) against 7.4 kB (3.0 kB) as a LineString with time and speed property arrays.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from layers.style import LIVE_POINT_STYLES, LIVE_TRUCK_STYLES, SEA, LegendEntry, LegendGroup, Text, text
from spatial.model import NO_ALERT_SEVERITY, LiveState, World

# Codes of the state byte; the screen draws the trucks in this order (alerts on top).
TRUCK_STATES: tuple[str, ...] = ("parked", "moving", "stale", "alert", "alert_high")
PARKED, MOVING, STALE, ALERT, ALERT_HIGH = range(len(TRUCK_STATES))
OFF_MAP = 255  # delta only: the truck left the box (or lost its position): stop drawing it

# Codes of the point status byte, in drawing order (alarms on top).
POINT_STATUSES: tuple[str, ...] = ("unknown", "normal", "silent", "fault", "alarm", "alarm_high")
P_UNKNOWN, P_NORMAL, P_SILENT, P_FAULT, P_ALARM, P_ALARM_HIGH = range(len(POINT_STATUSES))

# Which point rules make which status (spatial/rules/point_*.py). A rule not named here
# (a future point rule) counts as a fault: shown, never hidden.
LEVEL_RULES = frozenset({"point_level"})
SILENT_RULES = frozenset({"point_interruption"})

QUANT_MAX = 65535  # uint16 steps over the box: ~3 m at Ningbo's ~2 degrees
HEADING_STEP_DEG = 2  # heading byte = degrees / 2 (0..179)
HEADING_UNKNOWN = 255

LIVE_TRUCKS_TITLE: Text = ("实时车辆", "Live trucks")
LIVE_POINTS_TITLE: Text = ("监测点状态", "Monitoring point status")
FEED_TIME_LABEL: Text = ("数据时间", "Feed time")
LIVE_SECTION_TITLE: Text = ("实时", "Live")
POLL_INTERVAL_MS = 2000

# The trail's speed byte: km/h, clipped at 254; 255 when the terminal reported none.
TRAIL_SPEED_UNKNOWN = 255
TRAIL_SPEED_MAX_KMH = 254
# The selected truck's trail on the wall: one bright colour over the dark theme, apart from
# every state colour of layers/style.py (cyan is no state), with a dark casing under it.
TRAIL_COLOR = "#00e5ff"
TRAIL_CASING = SEA  # the line stays readable over light tiles

_MEMO_VERSIONS = 1024  # versions whose newest report time is remembered (~35 min of 2 s polls)
_MEMO_SCOPES = 64  # users' visible sets whose masks are kept


@dataclass(frozen=True)
class LiveEncodingSettings:
    # (engineering default) GNSS drift of a standing truck reads 1-3 km/h; JT/T 808 terminals
    # report 0-5 km/h while parked, so only faster counts as moving.
    moving_min_speed_kmh: float = 5.0
    # (engineering default) a truck reports every 30 s moving, every few minutes parked
    # (JT/T 808 §8.3 intervals); silent 20 min behind the fleet's newest report it is stale.
    stale_after_s: float = 1200.0
    # DOMAIN.md §6 severities 1 (highest) ... 4: 1-2 draw in the high alert colour.
    high_alert_max_severity: int = 2
    # Trucks leave the districts (to Shanghai, Hangzhou): the box is the world's, this much wider.
    bbox_margin_deg: float = 0.5
    # Episodes that are no alert on the screen: the stop rule reports every stop (severity 4)
    # for the rules built on stops; a stopped truck is drawn parked, not alerted.
    not_alert_rules: frozenset[str] = field(default_factory=lambda: frozenset({"stop"}))
    # (engineering default) a still run of a trail shorter than this is a traffic light, not a
    # stop worth a dot on the selected truck's trail.
    trail_stop_min_s: float = 120.0

    def __post_init__(self) -> None:
        for name in ("moving_min_speed_kmh", "stale_after_s", "bbox_margin_deg", "trail_stop_min_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"LiveEncodingSettings.{name} must be a finite number >= 0, got {value!r}")
        if len(self.not_alert_rules) > 4:  # _only_from lists every combination of them
            raise ValueError(f"not_alert_rules takes at most 4 rule names, got {sorted(self.not_alert_rules)}")
        if self.high_alert_max_severity not in (1, 2, 3, 4):
            raise ValueError(f"high_alert_max_severity must be 1..4, got {self.high_alert_max_severity!r}")


def live_bbox(world: World, margin_deg: float) -> tuple[float, float, float, float]:
    """(west, south, east, north) of every non-empty World layer, widened by `margin_deg`."""
    bounds = [t.total_bounds for t in (world.table(n) for n in ("districts", "roads", "waybills", "vehicles",
                                                                    "monitoring_points", "entities")) if len(t)]
    if not bounds:
        raise ValueError("the world has no districts, roads, vehicles or points: no box to place live trucks in")
    b = np.array(bounds)
    west, south = b[:, 0].min() - margin_deg, b[:, 1].min() - margin_deg
    east, north = b[:, 2].max() + margin_deg, b[:, 3].max() + margin_deg
    return float(west), float(south), float(east), float(north)


def quantise(lon: np.ndarray, lat: np.ndarray, bbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lon uint16, lat uint16, inside) over `bbox`; outside or NaN positions get 0 and inside False."""
    west, south, east, north = bbox
    lon = np.asarray(lon, "float64")
    lat = np.asarray(lat, "float64")
    inside = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)  # NaN compares False
    qx = np.where(inside, np.rint((lon - west) / (east - west) * QUANT_MAX), 0).astype("<u2")
    qy = np.where(inside, np.rint((lat - south) / (north - south) * QUANT_MAX), 0).astype("<u2")
    return qx, qy, inside


def dequantise(qx: np.ndarray, qy: np.ndarray, bbox) -> tuple[np.ndarray, np.ndarray]:
    west, south, east, north = bbox
    return (west + qx.astype("float64") * (east - west) / QUANT_MAX,
            south + qy.astype("float64") * (north - south) / QUANT_MAX)


def heading_bytes(heading_deg: np.ndarray) -> np.ndarray:
    h = np.asarray(heading_deg, "float64")
    known = np.isfinite(h)
    return np.where(known, np.rint(np.mod(np.where(known, h, 0), 360) / HEADING_STEP_DEG) % (360 // HEADING_STEP_DEG),
                    HEADING_UNKNOWN).astype("u1")


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _index_dtype(n: int) -> str:
    return "<u2" if n <= 65536 else "<u4"


def _only_from(rules: frozenset[str]) -> list[str]:
    """Every `alerts.rules` value (sorted names, comma-joined) made of these rules alone."""
    return [",".join(sorted(c)) for k in range(1, len(rules) + 1) for c in combinations(rules, k)]


def _alert_columns(alerts: pd.DataFrame, ids: pd.Index, not_alert_rules: frozenset[str] = frozenset()
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(open_count, worst severity, rules) of `ids`; subjects without a row, or whose open
    episodes are all of `not_alert_rules`, have no alert (count 0)."""
    if not len(alerts) or not len(ids):
        return np.zeros(len(ids), "int64"), np.full(len(ids), NO_ALERT_SEVERITY, "int64"), np.full(len(ids), "", object)
    rows = alerts.reindex(ids)
    open_count = pd.to_numeric(rows["open_count"], errors="coerce").fillna(0).to_numpy("int64")
    severity = pd.to_numeric(rows["severity"], errors="coerce").fillna(NO_ALERT_SEVERITY).to_numpy("int64")
    rules = rows["rules"].fillna("").astype(str).to_numpy(object)
    if not_alert_rules:
        open_count = np.where(np.isin(rules, _only_from(not_alert_rules)), 0, open_count)
    return open_count, np.where(open_count > 0, severity, NO_ALERT_SEVERITY), rules


def truck_states(positions: pd.DataFrame, alerts: pd.DataFrame, newest_ms: int,
                 settings: LiveEncodingSettings) -> np.ndarray:
    """State byte of every row of `positions` (indexed by vehicle id): an open alert wins
    (its worst severity picks the colour), then stale, then moving or parked."""
    speed = pd.to_numeric(positions["speed_kmh"], errors="coerce").to_numpy("float64")
    epoch_ms = positions["epoch_ms"].to_numpy("int64")
    open_count, severity, _ = _alert_columns(alerts, positions.index, settings.not_alert_rules)
    state = np.where(speed > settings.moving_min_speed_kmh, MOVING, PARKED)  # NaN speed: parked
    state = np.where(newest_ms - epoch_ms > settings.stale_after_s * 1000, STALE, state)
    state = np.where(open_count > 0, np.where(severity <= settings.high_alert_max_severity, ALERT_HIGH, ALERT), state)
    return state.astype("u1")


def point_statuses(point_ids: pd.Index, readings: pd.DataFrame, alerts: pd.DataFrame) -> np.ndarray:
    """Status byte of every point in `point_ids`: a level alarm (severity 1 apart) over an
    instrument fault over silence; no open alert is normal once the point has read, else unknown."""
    open_count, severity, rules = _alert_columns(alerts, point_ids)
    # get_indexer, not isin: pandas' isin on Arrow strings is a Python loop (20 ms for 5,196 points).
    has_reading = readings.index.get_indexer(point_ids) >= 0 if len(readings) else np.zeros(len(point_ids), bool)
    alerted = np.flatnonzero(open_count > 0)
    status = np.where(has_reading, P_NORMAL, P_UNKNOWN).astype("u1")
    # A loop over the alerted points only: a handful usually, all 5,196 (~4 ms) when the
    # whole point feed is silent.
    for slot in alerted:
        found = set(rules[slot].split(",")) - {""}
        if found & LEVEL_RULES:
            status[slot] = P_ALARM_HIGH if severity[slot] <= 1 else P_ALARM
        elif found - SILENT_RULES or not found:
            status[slot] = P_FAULT
        else:
            status[slot] = P_SILENT
    return status


def newest_report_ms(state: LiveState) -> int | None:
    if not len(state.positions):
        return None
    return int(state.positions["epoch_ms"].to_numpy("int64").max())


def trail_payload(trail: pd.DataFrame, bbox, moving_min_speed_kmh: float, stop_min_s: float) -> dict:
    """One truck's trail (`LiveState.trail(vehicle_id)`: its pings, any order) as typed arrays:
    `t0_ms` (its first ping) and per ping in time order `t_s` (whole seconds after `t0_ms`,
    uint32), `lon`/`lat` (uint16 over `bbox`, as the trucks), `speed` (km/h byte, 255
    unknown); pings off the box or without a position are left out (`outside` counts them).
    `stops`: the runs of consecutive pings with a reported speed <= `moving_min_speed_kmh`
    spanning >= `stop_min_s` (first to last still ping), each as the index of its first ping
    (uint32) and its span (`duration_s`, uint32). A ping without a speed ends a run: a stop
    is seen, not assumed."""
    if trail["vehicle_id"].nunique() > 1:
        raise ValueError(f"a trail payload is one truck's: got vehicles {sorted(trail['vehicle_id'].unique())[:5]}")
    epoch_ms = trail["epoch_ms"].to_numpy("int64")
    order = np.argsort(epoch_ms, kind="stable")
    epoch_ms = epoch_ms[order]
    qx, qy, inside = quantise(trail["lon"].to_numpy("float64")[order], trail["lat"].to_numpy("float64")[order], bbox)
    speed = pd.to_numeric(trail["speed_kmh"], errors="coerce").to_numpy("float64")[order][inside]
    epoch_ms, qx, qy = epoch_ms[inside], qx[inside], qy[inside]
    t0_ms = int(epoch_ms[0]) if len(epoch_ms) else None
    t_s = (epoch_ms - epoch_ms[:1].sum()) // 1000
    speed_byte = np.where(np.isfinite(speed), np.clip(np.rint(np.nan_to_num(speed)), 0, TRAIL_SPEED_MAX_KMH),
                          TRAIL_SPEED_UNKNOWN).astype("u1")
    still = speed <= moving_min_speed_kmh  # NaN compares False
    starts = np.flatnonzero(still & ~np.r_[False, still[:-1]])
    ends = np.flatnonzero(still & ~np.r_[still[1:], False])
    duration_s = (epoch_ms[ends] - epoch_ms[starts]) // 1000
    long_enough = duration_s >= stop_min_s
    return {
        "n": int(len(epoch_ms)),
        "t0_ms": t0_ms,
        "t_s": b64(t_s.astype("<u4")),
        "lon": b64(qx),
        "lat": b64(qy),
        "speed": b64(speed_byte),
        "outside": int((~inside).sum()),
        "stops": {"n": int(long_enough.sum()), "idx": b64(starts[long_enough].astype("<u4")),
                  "duration_s": b64(duration_s[long_enough].astype("<u4"))},
    }


class LiveScope:
    """The trucks and points one user may see (app/permissions.Scopes): boolean masks over the
    encoder's vehicle and point lists. Its static lists hold only those, a truck's or point's
    index counted among them, and every frame is narrowed to them. `key` names the set: the
    screen sends it back with each poll and reloads the lists when a frame carries another."""

    def __init__(self, key: str, vehicles: np.ndarray, points: np.ndarray):
        self.key, self.vehicles, self.points = key, np.asarray(vehicles, bool), np.asarray(points, bool)
        # world index -> index among the visible (-1: not visible)
        self.vehicle_slot = np.where(self.vehicles, np.cumsum(self.vehicles) - 1, -1)
        self.point_slot = np.where(self.points, np.cumsum(self.points) - 1, -1)


class LiveEncoder:
    """Payloads of one World's live layer. Thread-safe: the web server calls `frame` from
    many request threads."""

    def __init__(self, world: World, settings: LiveEncodingSettings | None = None):
        self.settings = settings or LiveEncodingSettings()
        self.vehicle_ids = pd.Index(world.vehicles["id"].astype(str).to_numpy(object))
        self.point_ids = pd.Index(world.monitoring_points["id"].astype(str).to_numpy(object))
        for name, ids in (("vehicles", self.vehicle_ids), ("monitoring_points", self.point_ids)):
            if not ids.is_unique:
                raise ValueError(f"world.{name} has duplicate ids: {sorted(set(ids[ids.duplicated()]))[:10]}")
        self.bbox = live_bbox(world, self.settings.bbox_margin_deg)
        self._plates = world.vehicles["plate"].astype(str).tolist()
        points = world.monitoring_points.geometry
        self._point_q = quantise(points.x.to_numpy(), points.y.to_numpy(), self.bbox)
        self._vehicle_dtype = _index_dtype(len(self.vehicle_ids))
        self._point_dtype = _index_dtype(len(self.point_ids))
        self._newest_at: OrderedDict[int, int | None] = OrderedDict()
        self._scopes: OrderedDict[str, LiveScope] = OrderedDict()
        self._lock = threading.Lock()

    # -- once per world ------------------------------------------------------------------

    def scope(self, key: str, features: frozenset[str]) -> LiveScope:
        """The LiveScope of the feature ids `features` (one user's visible set, named `key`),
        built once per key."""
        with self._lock:
            found = self._scopes.get(key)
        if found is None:
            wanted = list(features)
            found = LiveScope(key, self.vehicle_ids.isin(wanted), self.point_ids.isin(wanted))
            with self._lock:
                self._scopes[key] = found
                while len(self._scopes) > _MEMO_SCOPES:
                    self._scopes.popitem(last=False)
        return found

    def static(self, scope: LiveScope | None = None) -> dict:
        """The lists (see the module docstring); with `scope`, only what it lets see."""
        if scope is not None:
            qx, qy, _ = self._point_q
            trucks, points = scope.vehicles, scope.points
            return {**self.static(), "scope": scope.key,
                    "vehicles": {"n": int(trucks.sum()), "index_bytes": np.dtype(self._vehicle_dtype).itemsize,
                                 "ids": self.vehicle_ids[trucks].tolist(),
                                 "plates": np.asarray(self._plates, object)[trucks].tolist()},
                    "points": {"n": int(points.sum()), "index_bytes": np.dtype(self._point_dtype).itemsize,
                               "ids": self.point_ids[points].tolist(), "lon": b64(qx[points]), "lat": b64(qy[points])}}
        qx, qy, _ = self._point_q
        return {
            "bbox": list(self.bbox),
            "quant_max": QUANT_MAX,
            "heading_step_deg": HEADING_STEP_DEG,
            "heading_unknown": HEADING_UNKNOWN,
            "off_map": OFF_MAP,
            "truck_states": list(TRUCK_STATES),
            "point_statuses": list(POINT_STATUSES),
            "vehicles": {"n": len(self.vehicle_ids), "index_bytes": np.dtype(self._vehicle_dtype).itemsize,
                         "ids": self.vehicle_ids.tolist(), "plates": self._plates},
            "points": {"n": len(self.point_ids), "index_bytes": np.dtype(self._point_dtype).itemsize,
                       "ids": self.point_ids.tolist(), "lon": b64(qx), "lat": b64(qy)},
        }

    # -- every poll ------------------------------------------------------------------------

    def frame(self, state: LiveState, since: int = 0, scope: LiveScope | None = None) -> dict:
        """What changed after version `since` (see the module docstring), or everything; with
        `scope`, only its trucks and points (indices among them)."""
        if isinstance(since, bool) or not isinstance(since, (int, np.integer)) or since < 0:
            raise ValueError(f"since must be a whole number >= 0 (a version this screen received), got {since!r}")
        newest_ms = newest_report_ms(state)
        with self._lock:
            self._newest_at[state.version] = newest_ms
            self._newest_at.move_to_end(state.version)
            while len(self._newest_at) > _MEMO_VERSIONS:
                self._newest_at.popitem(last=False)
            then_known = since in self._newest_at
            newest_then = self._newest_at.get(since)
        full = since == 0 or since > state.version or not then_known
        out = {"version": int(state.version), "since": int(since), "full": bool(full), "newest_ms": newest_ms,
               "stale_after_s": self.settings.stale_after_s}
        if scope is not None:
            out["scope"] = scope.key
        if full:
            out["trucks"] = self._trucks(state, state.positions, newest_ms, full=True, scope=scope)
            out["points"] = self._points(state, self.point_ids if scope is None else self.point_ids[scope.points],
                                         scope)
            return out
        changes = state.changes_since(since)
        changed_trucks = changes.positions.index.union(self.vehicle_ids.intersection(changes.alerts.index))
        changed_trucks = changed_trucks.union(self._went_stale(state, since, newest_then, newest_ms))
        positions = state.positions.loc[state.positions.index.intersection(changed_trucks)]
        out["trucks"] = self._trucks(state, positions, newest_ms, full=False, scope=scope)
        changed_points = self.point_ids.intersection(changes.readings.index.union(changes.alerts.index))
        if scope is not None:
            changed_points = changed_points[scope.points[self.point_ids.get_indexer(changed_points)]]
        out["points"] = self._points(state, changed_points, scope)
        return out

    # -- the selected truck -----------------------------------------------------------------

    def trail(self, state: LiveState, vehicle_id: str) -> dict:
        """The trail of one truck of this World (`trail_payload`), with the state's version,
        its newest report time (what the trail's age is measured from) and `trail_s`. A
        vehicle not in the World is a LookupError; one the feed has not heard from has n 0."""
        if vehicle_id not in self.vehicle_ids:
            raise LookupError(f"no vehicle {vehicle_id!r} in this world")
        return {"vehicle_id": vehicle_id, "version": int(state.version), "newest_ms": newest_report_ms(state),
                "trail_s": float(state.trail_s),
                **trail_payload(state.trail(vehicle_id), self.bbox, self.settings.moving_min_speed_kmh,
                                self.settings.trail_stop_min_s)}

    def _went_stale(self, state: LiveState, since: int, newest_then: int | None, newest_now: int | None) -> pd.Index:
        """Trucks unchanged since `since` whose staleness flipped as the fleet's newest report moved on."""
        if newest_now is None or newest_then is None or newest_now == newest_then:
            return pd.Index([])
        positions = state.positions
        epoch_ms = positions["epoch_ms"].to_numpy("int64")
        stale_ms = self.settings.stale_after_s * 1000
        flipped = (newest_then - epoch_ms > stale_ms) != (newest_now - epoch_ms > stale_ms)
        return positions.index[flipped & (positions["version"].to_numpy("int64") <= since)]

    def _trucks(self, state: LiveState, positions: pd.DataFrame, newest_ms: int | None, full: bool,
                scope: LiveScope | None = None) -> dict:
        slots = self.vehicle_ids.get_indexer(positions.index) if len(positions) else np.zeros(0, "int64")
        known = slots >= 0  # positions of vehicles not in this World are not drawn
        unknown = int((~known).sum())
        positions = positions[known]
        slots = slots[known]
        if scope is not None:  # only the visible trucks, numbered among them
            mine = scope.vehicles[slots]
            positions, slots = positions[mine], scope.vehicle_slot[slots[mine]]
        if len(positions):
            qx, qy, inside = quantise(positions["lon"].to_numpy("float64"), positions["lat"].to_numpy("float64"),
                                      self.bbox)
            states = truck_states(positions, state.alerts, newest_ms, self.settings)
            # A standing truck's GNSS heading is noise: only a moving one gets an arrow.
            speed = pd.to_numeric(positions["speed_kmh"], errors="coerce").to_numpy("float64")
            heading = pd.to_numeric(positions["heading"], errors="coerce").to_numpy("float64")
            headings = heading_bytes(np.where(speed > self.settings.moving_min_speed_kmh, heading, np.nan))
        else:
            qx = qy = np.zeros(0, "<u2")
            inside = np.zeros(0, bool)
            states = headings = np.zeros(0, "u1")
        if full:  # the full form lists only what is drawn
            slots, qx, qy, states, headings = slots[inside], qx[inside], qy[inside], states[inside], headings[inside]
        else:
            states = np.where(inside, states, OFF_MAP).astype("u1")
        order = np.argsort(slots, kind="stable")
        return {
            "n": int(len(slots)),
            "idx": b64(slots[order].astype(self._vehicle_dtype)),
            "lon": b64(qx[order]),
            "lat": b64(qy[order]),
            "state": b64(states[order]),
            "heading": b64(headings[order]),
            "unknown_vehicles": unknown,
            "outside": int((~inside).sum()),
        }

    def _points(self, state: LiveState, ids: pd.Index, scope: LiveScope | None = None) -> dict:
        slots = self.point_ids.get_indexer(ids)
        order = np.argsort(slots, kind="stable")
        slots, ids = slots[order], ids[order]
        if scope is not None:
            slots = scope.point_slot[slots]
        return {
            "n": int(len(slots)),
            "idx": b64(slots.astype(self._point_dtype)),
            "status": b64(point_statuses(ids, state.readings, state.alerts)),
        }


# -- the screen's texts and colours of the live layer --------------------------------------

if set(LIVE_TRUCK_STYLES) != set(TRUCK_STATES) or set(LIVE_POINT_STYLES) != set(POINT_STATUSES):
    raise RuntimeError("layers.style LIVE_*_STYLES must style exactly layers.live TRUCK_STATES / POINT_STATUSES")


_KEEP_SIZE = frozenset({"alert", "alert_high", "silent", "fault", "alarm", "alarm_high"})


def screen_config(language: str, static_url: str, state_url: str, trail_url: str) -> dict:
    """What assets/hazmap_live.js needs: where to poll, how often, where a selected truck's
    trail comes from (`trail_url` + the url-encoded vehicle id), the overlay titles and the
    colour of every state (from layers/style.py) and of the trail."""
    return {
        "staticUrl": static_url,
        "stateUrl": state_url,
        "trailUrl": trail_url,
        "pollMs": POLL_INTERVAL_MS,
        "trail": {"color": TRAIL_COLOR, "casing": TRAIL_CASING, "speedUnknown": TRAIL_SPEED_UNKNOWN},
        "trucksTitle": text(LIVE_TRUCKS_TITLE, language),
        "pointsTitle": text(LIVE_POINTS_TITLE, language),
        # Alerts keep their size at city-wide zooms; the ordinary many shrink there.
        "truckStyles": [{**LIVE_TRUCK_STYLES[name].as_hideout(), "keepSize": name in _KEEP_SIZE}
                        for name in TRUCK_STATES],
        "pointStyles": [{**LIVE_POINT_STYLES[name].as_hideout(), "keepSize": name in _KEEP_SIZE}
                        for name in POINT_STATUSES],
    }


def live_legend(language: str, trucks_shown: bool, points_shown: bool) -> list[LegendGroup]:
    groups = []
    if trucks_shown:
        groups.append(LegendGroup("live_trucks", text(LIVE_TRUCKS_TITLE, language), tuple(
            LegendEntry(text(LIVE_TRUCK_STYLES[name].label, language), LIVE_TRUCK_STYLES[name].color, "point")
            for name in TRUCK_STATES)))
    if points_shown:
        groups.append(LegendGroup("live_points", text(LIVE_POINTS_TITLE, language), tuple(
            LegendEntry(text(LIVE_POINT_STYLES[name].label, language), LIVE_POINT_STYLES[name].color, "point")
            for name in reversed(POINT_STATUSES))))  # the most severe first
    return groups


_LIVE_ROW_LABELS: dict[str, Text] = {
    "state": ("实时状态", "Live state"),
    "reported": ("最后上报", "Last report"),
    "speed": ("速度", "Speed"),
    "position": ("位置", "Position"),
    "reading": ("最新读数", "Latest reading"),
    "alerts": ("未关闭告警", "Open alerts"),
}
SCREEN_TIMEZONE = "Asia/Shanghai"


def _local_time(epoch_ms) -> str:
    return pd.Timestamp(int(epoch_ms), unit="ms", tz="UTC").tz_convert(SCREEN_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")


def live_rows(state: LiveState, layer: str, subject_id: str, language: str,
              settings: LiveEncodingSettings | None = None) -> list[tuple[str, str]]:
    """(label, value) rows of what the live feed says about one truck or point (empty when
    it says nothing): for the details panel."""
    settings = settings or LiveEncodingSettings()
    label = {k: text(v, language) for k, v in _LIVE_ROW_LABELS.items()}
    ids = pd.Index([subject_id])
    rows: list[tuple[str, str]] = []
    if layer == "vehicles" and subject_id in state.positions.index:
        p = state.positions.loc[[subject_id]]
        code = truck_states(p, state.alerts, newest_report_ms(state), settings)[0]
        speed = pd.to_numeric(p["speed_kmh"], errors="coerce").iloc[0]
        rows += [(label["state"], text(LIVE_TRUCK_STYLES[TRUCK_STATES[code]].label, language)),
                 (label["reported"], _local_time(p["epoch_ms"].iloc[0])),
                 (label["speed"], "—" if pd.isna(speed) else f"{float(speed):.0f} km/h"),
                 (label["position"], f"{float(p['lon'].iloc[0]):.5f}, {float(p['lat'].iloc[0]):.5f}")]
    elif layer == "monitoring_points":
        code = point_statuses(ids, state.readings, state.alerts)[0]
        rows.append((label["state"], text(LIVE_POINT_STYLES[POINT_STATUSES[code]].label, language)))
        if subject_id in state.readings.index:
            r = state.readings.loc[subject_id]
            rows += [(label["reading"], f"{float(r['value']):g}"), (label["reported"], _local_time(r["epoch_ms"]))]
    else:
        return rows
    open_count, severity, rules = _alert_columns(state.alerts, ids, settings.not_alert_rules)
    if open_count[0] > 0:
        rows.append((label["alerts"], f"{int(open_count[0])} · {rules[0]} · S{int(severity[0])}"))
    return rows
