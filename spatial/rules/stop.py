"""Stops: exactly the stops of MovingPandas 0.23's TrajectoryStopDetector, found streaming.

MovingPandas (`TrajectoryStopDetector._process_traj`, planar CRS) walks a track keeping a
*segment*, always a run of the latest pings:

1. append the ping; if the previous ping was not stopped, drop leading pings while more than
   two remain and the segment spans at least `min_duration`;
2. the ping is *stopped* if the segment has two or more pings, its bounding-box diagonal is
   below 1.5 × `max_diameter` and the diagonal of its minimum rotated rectangle (shapely's
   `minimum_rotated_rectangle`; for exactly two pings their distance) is below `max_diameter`;
3. if the ping is not stopped, the previous one was, and the segment up to the previous ping
   spans at least `min_duration`, a stop (segment start, previous ping) is recorded and the
   segment restarts at this ping;
4. at the end of the track a stopped segment spanning at least `min_duration` is a stop.

Here the same walk runs per vehicle across batches: the segment is carried in the state and
continued when the vehicle's next pings arrive (they arrive once, strictly increasing in
time). A stop *opens* at the first ping that is stopped with a segment spanning at least
`min_duration`, i.e. when MovingPandas would record it if the track ended there (step 4).
That is final: while pings stay stopped nothing is dropped (step 1 only trims after a
not-stopped ping) and nothing restarts, so the segment start is fixed; the first not-stopped
ping then finds the previous ping stopped and the span up to it at least the confirming
span, so step 3 records the stop, with the same start; if the track ends first, step 4 does.
It *closes* at that first not-stopped ping (step 3), ending at the last stopped ping, which
is MovingPandas' end. A stop still open is the stop step 4 would record now.

The walk is sequential, so it is one numba kernel over the batch; each vehicle's segment
lives in a shared pool of flat arrays. The rectangle decision is taken in the kernel whenever
it is provably on one side of `max_diameter` whatever GEOS rounds to (bounds from the
bounding box first, then the exact rectangles on every convex-hull edge, among which the
minimum-area one lies, ties included). A diagonal within a couple of centimetres of the
threshold (GEOS' own rounding at UTM coordinates is ~1 mm) or tied rectangles straddling it
go to shapely, on exactly the points MovingPandas would pass it, so boundary cases agree bit
for bit. In practice that is a handful of calls per thousands of pings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import shapely
from numba import njit

from spatial.crs import from_metric
from spatial.model import Event
from spatial.rules.base import (
    SEVERITY_LOW,
    RuleBatch,
    RuleWorld,
    grow,
    make_event,
    run_starts,
    setting,
)

_SOURCE = "(engineering default); MovingPandas TrajectoryStopDetector semantics"


@dataclass(frozen=True)
class StopSettings:
    # A stop: the pings stay within a minimum rotated rectangle whose diagonal is below
    # `stop_max_diameter_m` for at least `stop_min_duration_s` (MovingPandas' max_diameter and
    # min_duration, evaluated in EPSG:32651).
    stop_max_diameter_m: float = setting(100.0, "m", _SOURCE)
    stop_min_duration_s: float = setting(300.0, "s", _SOURCE)

    def __post_init__(self):
        for name in ("stop_max_diameter_m", "stop_min_duration_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"StopSettings.{name} must be a positive finite number, got {value!r}")

    @property
    def min_duration_ms(self) -> int:
        """The smallest whole-millisecond span MovingPandas counts as `min_duration`: it compares
        nanosecond time differences with timedelta(seconds=stop_min_duration_s), so a span of
        k ms qualifies exactly when k ≥ ceil(that timedelta in ms)."""
        micros = timedelta(seconds=float(self.stop_min_duration_s)) // timedelta(microseconds=1)
        return -(-micros // 1000)


class _Pool:
    """Every vehicle's segment in three flat arrays; a segment owns [offset, offset + capacity)
    and moves to the end, doubled, when it fills. Steps append to it in place; `version` lets a
    state that is not the newest notice and work on a copy instead."""

    def __init__(self, capacity: int = 0):
        self.t = np.zeros(capacity, "int64")
        self.x = np.zeros(capacity)
        self.y = np.zeros(capacity)
        self.used = 0
        self.version = 0

    def reserve(self, used: int, capacity: int) -> None:
        """Grow to `capacity`, keeping the first `used` entries."""
        for name in ("t", "x", "y"):
            old = getattr(self, name)
            new = np.zeros(capacity, old.dtype)
            new[:used] = old[:used]
            setattr(self, name, new)


@dataclass
class StopState:
    """Per slot: whether its last ping was stopped, the confirming time of its open stop (-1
    none), where its segment lies in the pool, and the segment's bounding box."""

    stopped: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    confirmed_ms: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    length: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    capacity: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    box: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # min x, max x, min y, max y
    # a stopped segment's convex hull (relative to its first point) once the kernel had to work it
    # out; a ping strictly inside leaves the hull, hence the decision, unchanged (hull_n 0: none)
    hull: np.ndarray = field(default_factory=lambda: np.zeros((0, _HULL_MAX, 2)))
    hull_n: np.ndarray = field(default_factory=lambda: np.zeros(0, "int64"))
    pool: _Pool = field(default_factory=_Pool)
    pool_version: int = 0

    def sized(self, n_slots: int) -> StopState:
        """A copy with per-slot arrays for at least n_slots (the pool is handled by the step)."""
        box, hull = self.box, self.hull
        if len(box) < n_slots:
            box = np.vstack([box, np.zeros((max(n_slots, 2 * len(box)) - len(box), 4))])
        if len(hull) < n_slots:
            hull = np.concatenate([hull, np.zeros((max(n_slots, 2 * len(hull)) - len(hull), _HULL_MAX, 2))])
        return StopState(
            stopped=grow(self.stopped, n_slots, False).copy(),
            confirmed_ms=grow(self.confirmed_ms, n_slots, -1).copy(),
            offset=grow(self.offset, n_slots, 0).copy(), length=grow(self.length, n_slots, 0).copy(),
            capacity=grow(self.capacity, n_slots, 0).copy(), box=box.copy(),
            hull=hull.copy(), hull_n=grow(self.hull_n, n_slots, 0).copy(),
            pool=self.pool, pool_version=self.pool_version,
        )


OPENED, CLOSED = 1, 2
_HULL_MAX = 48  # hull vertices kept per stopped segment (a parked truck's jitter: ~20)
_HULL_INSIDE_M2 = 1e-6  # strictly inside: every edge's cross product above this (rounding ~1e-12)
_POOL_FULL = -2
_CERTAIN_NO, _CERTAIN_YES, _ASK_SHAPELY = 0, 1, -1
# How far GEOS' minimum rotated rectangle can be from the exact one: it builds the sides as
# lines through points near the coordinate origin, so its vertices are off by about
# 0.4 × machine epsilon × (largest |coordinate|)² metres (measured: ~1 mm at UTM 51N's
# 3.3e6 m northings). Decisions within 20× that of max_diameter, or within _MARGIN relative
# (this kernel's own rounding and near-tied areas), go to shapely.
_GEOS_ROUNDING_PER_M = 20 * 0.4 * np.finfo(np.float64).eps
_MARGIN = 1e-9
_SQRT2 = math.sqrt(2.0)


@njit(cache=True, nogil=True)
def _cross(ox, oy, ax, ay, bx, by):  # pragma: no cover - numba
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@njit(cache=True, nogil=True)
def _relative_hull(x, y, a, b):  # pragma: no cover - numba
    """The convex hull of points a..b, relative to point a, by Andrew's monotone chain
    (counter-clockwise, collinear points dropped): vertex arrays and their count."""
    n = b - a + 1
    px = np.empty(n)
    py = np.empty(n)
    for k in range(n):
        px[k] = x[a + k] - x[a]
        py[k] = y[a + k] - y[a]
    order = np.argsort(py, kind="mergesort")
    order = order[np.argsort(px[order], kind="mergesort")]  # lexicographic (x, y)
    hx = np.empty(2 * n + 1)
    hy = np.empty(2 * n + 1)
    h = 0
    for k in range(n):
        qx = px[order[k]]
        qy = py[order[k]]
        while h >= 2 and _cross(hx[h - 2], hy[h - 2], hx[h - 1], hy[h - 1], qx, qy) <= 0.0:
            h -= 1
        hx[h] = qx
        hy[h] = qy
        h += 1
    lower = h + 1
    for k in range(n - 2, -1, -1):
        qx = px[order[k]]
        qy = py[order[k]]
        while h >= lower and _cross(hx[h - 2], hy[h - 2], hx[h - 1], hy[h - 1], qx, qy) <= 0.0:
            h -= 1
        hx[h] = qx
        hy[h] = qy
        h += 1
    return hx, hy, h - 1  # the last point repeats the first


@njit(cache=True, nogil=True)
def _diagonal_range(x, y, a, b):  # pragma: no cover - numba
    """The lowest and highest diagonal among the rectangles GEOS may return as the minimum
    rotated rectangle of points a..b (three or more).

    The minimum-area enclosing rectangle has a side on a convex-hull edge, so GEOS' rectangle
    is one of the hull-edge rectangles whose area is, to rounding, the minimum (exact ties
    happen: a right isosceles triangle has two, with different diagonals). A collinear set
    gives the segment between its extremes."""
    hx, hy, h = _relative_hull(x, y, a, b)
    if h < 3:
        d = math.hypot(hx[h - 1] - hx[0], hy[h - 1] - hy[0]) if h >= 2 else 0.0
        return d, d
    areas = np.empty(h)
    diags = np.empty(h)
    scale = 0.0
    for e in range(h):
        ex = hx[(e + 1) % h] - hx[e]
        ey = hy[(e + 1) % h] - hy[e]
        length = math.hypot(ex, ey)
        ux = ex / length
        uy = ey / length
        min_u = np.inf
        max_u = -np.inf
        min_v = np.inf
        max_v = -np.inf
        for k in range(h):
            u = hx[k] * ux + hy[k] * uy
            v = hy[k] * ux - hx[k] * uy
            min_u = min(min_u, u)
            max_u = max(max_u, u)
            min_v = min(min_v, v)
            max_v = max(max_v, v)
        areas[e] = (max_u - min_u) * (max_v - min_v)
        diags[e] = math.hypot(max_u - min_u, max_v - min_v)
        scale = max(scale, diags[e])
    tolerance = areas.min() + 10 * _MARGIN * scale * scale
    lo = np.inf
    hi = 0.0
    for e in range(h):
        if areas[e] <= tolerance:
            lo = min(lo, diags[e])
            hi = max(hi, diags[e])
    return lo, hi


@njit(cache=True, nogil=True)
def _decide(x, y, a, b, max_d, min_x, max_x, min_y, max_y):  # pragma: no cover - numba
    """Is the segment a..b stopped (MovingPandas step 2)? Or too close to call here."""
    if b - a + 1 < 2:
        return _CERTAIN_NO
    w = max_x - min_x
    h = max_y - min_y
    bbox_diag = math.hypot(w, h)
    if not bbox_diag < max_d * 1.5:  # MovingPandas' prefilter
        return _CERTAIN_NO
    reach = max(abs(min_x), abs(max_x), abs(min_y), abs(max_y))
    slack = _MARGIN * max_d + _GEOS_ROUNDING_PER_M * reach * reach
    below = max_d - slack
    above = max_d + slack
    if b - a + 1 == 2:
        lo = hi = math.hypot(x[b] - x[a], y[b] - y[a])
    # Any enclosing rectangle's diagonal is at least the set's diameter, which is at least
    # either bounding-box side; the minimum-area rectangle's sides are widths of the set, so
    # its diagonal is at most √2 × diameter, at most √2 × the bounding-box diagonal.
    elif max(w, h) > above:
        return _CERTAIN_NO
    elif bbox_diag * _SQRT2 < below:
        return _CERTAIN_YES
    else:
        lo, hi = _diagonal_range(x, y, a, b)
    if hi < below:
        return _CERTAIN_YES
    if lo > above:
        return _CERTAIN_NO
    return _ASK_SHAPELY


@njit(cache=True, nogil=True)
def _diameter(x, y, a, b):  # pragma: no cover - numba
    """The diagonal of the minimum rotated rectangle of points a..b (MovingPandas' diameter),
    computed exactly, for the evidence; NaN where rectangles tie and only GEOS can tell which
    it returns."""
    if b - a + 1 == 2:
        return math.hypot(x[b] - x[a], y[b] - y[a])
    lo, hi = _diagonal_range(x, y, a, b)
    return lo if hi - lo <= 10 * _MARGIN * hi else np.nan


@njit(cache=True, nogil=True)
def _hull_into(x, y, a, b, out):  # pragma: no cover - numba
    """The convex hull of points a..b relative to point a (counter-clockwise, collinear points
    dropped: the chain `_diagonal_range` builds) into `out`; its size, or 0 when it has fewer
    than three vertices or more than `out` holds."""
    hx, hy, h = _relative_hull(x, y, a, b)
    if h < 3 or h > out.shape[0]:
        return 0
    for k in range(h):
        out[k, 0] = hx[k]
        out[k, 1] = hy[k]
    return h


@njit(cache=True, nogil=True)
def _strictly_inside(px, py, hull, n):  # pragma: no cover - numba
    for k in range(n):
        k1 = k + 1 if k + 1 < n else 0
        if not _cross(hull[k, 0], hull[k, 1], hull[k1, 0], hull[k1, 1], px, py) > _HULL_INSIDE_M2:
            return False
    return True


@njit(cache=True, nogil=True)
def _scan(slot, t, x, y, run_end, cursor, pending, answer, pool_t, pool_x, pool_y, used,
          stopped, confirmed_ms, offset, length, capacity, box, hull, hull_n, min_ms, max_d,
          out_kind, out_row, out_first, out_last, out_confirmed, out_median_x, out_median_y, out_diameter,
          n_out, ask_run):  # pragma: no cover - numba
    """Advance every run (one vehicle's pings in the batch) from its cursor to its end, or to a
    ping whose decision needs shapely: that run then waits with `pending` set (the ping already
    appended, the segment trimmed, the box updated) for `answer` (1 stopped, 0 not) in the next
    call. Returns (events so far, runs asking, pool used, status): status is the row of a ping
    not later than its vehicle's previous one, _POOL_FULL when a segment has no room to move
    (the ping is redone after the pool grows), or -1 when every run is done or asking."""
    n_ask = 0
    for r in range(run_end.shape[0]):
        i = cursor[r]
        if i >= run_end[r]:
            continue
        s = slot[i]
        while i < run_end[r]:
            if pending[r]:
                is_stop = answer[r] == 1
                pending[r] = False
            else:
                n = length[s]
                if n > 0 and t[i] <= pool_t[offset[s] + n - 1]:
                    return n_out, n_ask, used, i
                if n == capacity[s]:  # move the segment to the end of the pool, doubled
                    if used + max(16, 2 * n) > pool_t.shape[0]:
                        cursor[r] = i
                        return n_out, n_ask, used, _POOL_FULL
                    for k in range(n):
                        pool_t[used + k] = pool_t[offset[s] + k]
                        pool_x[used + k] = pool_x[offset[s] + k]
                        pool_y[used + k] = pool_y[offset[s] + k]
                    offset[s] = used
                    capacity[s] = max(16, 2 * n)
                    used += capacity[s]
                a = offset[s]
                j = a + n
                pool_t[j] = t[i]
                pool_x[j] = x[i]
                pool_y[j] = y[i]
                if stopped[s]:  # a stopped segment only grows
                    box[s, 0] = min(box[s, 0], x[i])
                    box[s, 1] = max(box[s, 1], x[i])
                    box[s, 2] = min(box[s, 2], y[i])
                    box[s, 3] = max(box[s, 3], y[i])
                else:  # step 1: keep under min_duration, but at least two pings
                    while j - a + 1 > 2 and t[i] - pool_t[a] >= min_ms:
                        a += 1
                    box[s, 0] = np.inf
                    box[s, 1] = -np.inf
                    box[s, 2] = np.inf
                    box[s, 3] = -np.inf
                    for k in range(a, j + 1):
                        box[s, 0] = min(box[s, 0], pool_x[k])
                        box[s, 1] = max(box[s, 1], pool_x[k])
                        box[s, 2] = min(box[s, 2], pool_y[k])
                        box[s, 3] = max(box[s, 3], pool_y[k])
                capacity[s] -= a - offset[s]
                offset[s] = a
                length[s] = j - a + 1
                if stopped[s] and hull_n[s] > 0 and _strictly_inside(
                        pool_x[j] - pool_x[a], pool_y[j] - pool_y[a], hull[s], hull_n[s]):
                    decision = _CERTAIN_YES  # same hull, same rectangles, same decision as before
                else:
                    decision = _decide(pool_x, pool_y, a, j, max_d, box[s, 0], box[s, 1], box[s, 2], box[s, 3])
                    hull_n[s] = 0
                    # worth keeping when deciding took the hull (not the bounding box alone)
                    if decision == _CERTAIN_YES and j - a + 1 >= 8 and math.hypot(
                            box[s, 1] - box[s, 0], box[s, 3] - box[s, 2]) * _SQRT2 >= max_d * (1 - 1e-6):
                        hull_n[s] = _hull_into(pool_x, pool_y, a, j, hull[s])
                if decision == _ASK_SHAPELY:
                    pending[r] = True
                    ask_run[n_ask] = r
                    n_ask += 1
                    break
                is_stop = decision == _CERTAIN_YES
            a = offset[s]
            j = a + length[s] - 1
            # step 3 (its span test is equivalent to "a stop is open": see the module doc)
            if not is_stop and stopped[s] and j > a and pool_t[j - 1] - pool_t[a] >= min_ms:
                out_kind[n_out] = CLOSED
                out_row[n_out] = i
                out_first[n_out] = a
                out_last[n_out] = j - 1
                out_confirmed[n_out] = confirmed_ms[s]
                out_median_x[n_out] = np.median(pool_x[a:j])
                out_median_y[n_out] = np.median(pool_y[a:j])
                out_diameter[n_out] = np.nan
                n_out += 1
                confirmed_ms[s] = -1
                capacity[s] -= j - a
                offset[s] = j
                length[s] = 1
                a = j
                box[s, 0] = box[s, 1] = pool_x[j]
                box[s, 2] = box[s, 3] = pool_y[j]
            stopped[s] = is_stop
            if is_stop and confirmed_ms[s] < 0 and pool_t[j] - pool_t[a] >= min_ms:
                confirmed_ms[s] = pool_t[j]
                out_kind[n_out] = OPENED
                out_row[n_out] = i
                out_first[n_out] = a
                out_last[n_out] = j
                out_confirmed[n_out] = pool_t[j]
                out_median_x[n_out] = np.median(pool_x[a:j + 1])
                out_median_y[n_out] = np.median(pool_y[a:j + 1])
                out_diameter[n_out] = _diameter(pool_x, pool_y, a, j)
                n_out += 1
            i += 1
        cursor[r] = i
    return n_out, n_ask, used, -1


def mrr_diagonals(x: np.ndarray, y: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """MovingPandas' `mrr_diagonal` (planar) of the points x[a:b], y[a:b] for each (a, b),
    computed the way it does: the distance of the two points when there are two, else the
    distance between vertices 0 and 2 of shapely's minimum rotated rectangle of the MultiPoint
    (between the ends when that degenerates to a line or a point)."""
    starts = np.asarray(starts, "int64")
    stops = np.asarray(stops, "int64")
    counts = stops - starts
    if (counts < 2).any():
        raise ValueError("mrr_diagonals needs at least two points per group")
    out = np.empty(len(starts))
    two = counts == 2
    if two.any():
        out[two] = shapely.distance(shapely.points(x[starts[two]], y[starts[two]]),
                                    shapely.points(x[starts[two] + 1], y[starts[two] + 1]))
    many = np.flatnonzero(~two)
    if len(many):
        sizes = counts[many]
        groups = np.repeat(np.arange(len(many)), sizes)
        take = starts[many][groups] + np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        rectangles = shapely.oriented_envelope(
            shapely.multipoints(np.column_stack([x[take], y[take]]), indices=groups))
        kinds = shapely.get_type_id(rectangles)
        polygon = kinds == shapely.GeometryType.POLYGON
        ring = np.where(polygon, shapely.get_exterior_ring(rectangles), rectangles)
        first = shapely.get_point(ring, 0)
        other = np.where(polygon, shapely.get_point(ring, 2), shapely.get_point(ring, -1))
        point = kinds == shapely.GeometryType.POINT
        first[point] = rectangles[point]
        other[point] = rectangles[point]
        out[many] = shapely.distance(first, other)
    return out


class StopRule:
    """Opens a stop when MovingPandas would record it and closes it when the truck leaves."""

    name = "stop"

    def __init__(self, settings: StopSettings = StopSettings()):
        self.settings = settings

    def initial_state(self) -> StopState:
        return StopState()

    def step(self, state: StopState, batch: RuleBatch, world: RuleWorld) -> tuple[StopState, list[Event]]:
        if not len(batch):
            return state, []
        slot = np.ascontiguousarray(batch.slot, "int64")
        if (np.diff(slot) < 0).any():
            raise ValueError("stop: the batch is not sorted by slot")
        begin = run_starts(slot)
        end = np.append(begin[1:], len(slot))
        new = state.sized(int(slot.max()) + 1)
        pool = state.pool
        live = int(new.length.sum())
        # A state that is not the newest works on a copy; garbage left by moved and trimmed
        # segments is dropped once it outweighs the live points.
        if state.pool_version != pool.version or pool.used > 8 * live + 65536:
            pool = _repacked(new, 2 * live + 4 * len(slot) + 4096)

        n = len(slot)
        out = (np.empty(n, "int8"), np.empty(n, "int64"), np.empty(n, "int64"), np.empty(n, "int64"),
               np.empty(n, "int64"), np.empty(n), np.empty(n), np.empty(n))
        cursor = begin.copy()
        pending = np.zeros(len(begin), bool)
        answer = np.zeros(len(begin), "int8")
        ask_run = np.empty(len(begin), "int64")
        max_d = float(self.settings.stop_max_diameter_m)
        n_out, used = 0, pool.used
        while True:
            n_out, n_ask, used, status = _scan(
                slot, np.ascontiguousarray(batch.epoch_ms, "int64"), np.ascontiguousarray(batch.x, "float64"),
                np.ascontiguousarray(batch.y, "float64"), end, cursor, pending, answer, pool.t, pool.x, pool.y,
                used, new.stopped, new.confirmed_ms, new.offset, new.length, new.capacity, new.box,
                new.hull, new.hull_n,
                self.settings.min_duration_ms, max_d, *out, n_out, ask_run)
            if status >= 0:
                raise ValueError(f"stop: pings of vehicle {batch.vehicle_id[status]!r} are not strictly increasing "
                                 f"in time (epoch_ms {int(batch.epoch_ms[status])} after a later or equal one)")
            if n_ask:
                asked = slot[begin[ask_run[:n_ask]]]
                start = new.offset[asked]
                answer[ask_run[:n_ask]] = mrr_diagonals(pool.x, pool.y, start, start + new.length[asked]) < max_d
            if status == _POOL_FULL:
                pool.reserve(used, 2 * len(pool.t) + len(slot) + 1024)
            elif not n_ask:
                break

        pool.used = used
        pool.version += 1
        new.pool, new.pool_version = pool, pool.version
        return new, self._events(batch, pool, *(a[:n_out] for a in out))

    def _events(self, batch, pool, kind, row, first, last, confirmed, median_x, median_y, diameter):
        if not len(kind):
            return []
        median_lon, median_lat = from_metric(median_x, median_y)
        opened = kind == OPENED
        ties = np.flatnonzero(opened & np.isnan(diameter))
        if len(ties):
            diameter[ties] = mrr_diagonals(pool.x, pool.y, first[ties], last[ties] + 1)
        start_ms, last_ms = pool.t[first], pool.t[last]
        vehicle = batch.vehicle_id[row]
        max_d = self.settings.stop_max_diameter_m
        min_s = self.settings.stop_min_duration_s
        events = []
        for k in range(len(kind)):  # one per stop opened or closed, not per ping
            evidence = {
                "confirmed_ms": int(confirmed[k]),
                "median_lon": float(median_lon[k]), "median_lat": float(median_lat[k]),
                "median_x": float(median_x[k]), "median_y": float(median_y[k]),
                "pings": int(last[k] - first[k] + 1),
                "max_diameter_m": max_d, "min_duration_s": min_s,
            }
            if opened[k]:
                evidence["diameter_m"] = float(diameter[k])
                phase, end_ms = "open", None
            else:
                evidence["duration_s"] = (int(last_ms[k]) - int(start_ms[k])) / 1000.0
                phase, end_ms = "close", last_ms[k]
            events.append(make_event(self.name, vehicle[k], phase, start_ms[k], end_ms,
                                     median_lon[k], median_lat[k], SEVERITY_LOW, evidence))
        return events


def _repacked(state: StopState, room: int) -> _Pool:
    """A fresh pool holding just the live segments, each with as much room again to grow
    (at least 16) and `room` to spare; the state's offsets and capacities are rewritten to
    point into it."""
    live = np.flatnonzero(state.length > 0)
    sizes = state.length[live]
    capacities = np.maximum(16, 2 * sizes)
    starts = np.cumsum(capacities) - capacities
    total = int(capacities.sum())
    source = np.repeat(state.offset[live], sizes) + np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    target = np.repeat(starts, sizes) + np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pool = _Pool(total + room)
    pool.t[target] = state.pool.t[source]
    pool.x[target] = state.pool.x[source]
    pool.y[target] = state.pool.y[source]
    pool.used = total
    state.offset[:] = 0
    state.capacity[:] = 0
    state.offset[live] = starts
    state.capacity[live] = capacities
    return pool
