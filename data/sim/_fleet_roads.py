"""Roads for the fleet simulator: routing between places, and paths a truck drives at speeds the
speeding rule can never see as over the limit.

`RoadNet` is the world's road layer as a graph (nodes are the edges' shared end points, EPSG:32651)
with the quickest-path routing the demo generator uses for waybill routes: a place, its nearest
road node, the road nodes, the destination's nearest node, the destination.

`PathSet` turns polylines into *paths*: knots (position, time from the start, speed of the
stretch after the knot, heading) at every vertex and wherever the safe speed changes. The safe
speed of a stretch is a share (the truck's `factor`, below 1) of the *conservative limit*: the
lowest limit the speeding rule could give any ping near that stretch, i.e. the lowest of the
limits of every road within `road_match_m` + a GNSS margin of it, of every speed-limited zone
within a margin of it, and (off the road network) the rule's default limit. Work is done per
straight line: once per road edge (cached for the whole plan), and per off-road segment.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from spatial.crs import geometry_to_metric
from spatial.model import World
from spatial.rules.speeding import SpeedingSettings

# The speeding rule's matching distance and default limit (its defaults: the engine's).
ROAD_MATCH_M = SpeedingSettings().road_match_m
DEFAULT_LIMIT_KMH = SpeedingSettings().default_limit_kmh
# GNSS noise of a few metres (σ 2.5 m) must not carry a ping nearer to another road than the
# conservative limit looked: 3σ and a little.
NOISE_MARGIN_M = 10.0
ROAD_REACH_M = ROAD_MATCH_M + NOISE_MARGIN_M
ZONE_REACH_M = NOISE_MARGIN_M + 5.0
_MM = 1000.0  # node keys: coordinates rounded to the millimetre
_DIJKSTRA_CHUNK = 256  # origins per Dijkstra call (memory: chunk × nodes × 12 bytes)
_MIN_SEGMENT_M = 0.01


def _xy_key(xy: np.ndarray) -> np.ndarray:
    """One int64 per metric point (mm resolution; UTM 51N x < 2^30 mm, y < 2^33 mm)."""
    ix = np.round(xy[:, 0] * _MM).astype(np.int64)
    iy = np.round(xy[:, 1] * _MM).astype(np.int64)
    return ix * (1 << 33) + iy


@dataclass
class RoadNet:
    node_xy: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_len_m: np.ndarray
    edge_limit_kmh: np.ndarray
    edge_lines: np.ndarray  # metric LineStrings, u -> v
    zone_geoms: np.ndarray  # metric, speed-limited zones
    zone_limit_kmh: np.ndarray
    # edges inside zones closed to dangerous goods all day (a hazmat tunnel, drinking-water
    # zones): routes avoid them where another way exists (as the demo's waybill routes do)
    blocked: np.ndarray
    node_index: pd.Index = field(init=False)
    edge_index: pd.Index = field(init=False)
    tree: cKDTree = field(init=False)
    graph: sparse.csr_matrix = field(init=False)
    # conservative-limit pieces of each edge (metres from u), edge e at [piece_offsets[e], piece_offsets[e+1])
    piece_start: np.ndarray = field(init=False)
    piece_end: np.ndarray = field(init=False)
    piece_limit: np.ndarray = field(init=False)
    piece_offsets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.node_xy)
        self.node_index = pd.Index(_xy_key(self.node_xy))
        lo, hi = np.minimum(self.edge_u, self.edge_v), np.maximum(self.edge_u, self.edge_v)
        self.edge_index = pd.Index(lo * n + hi)
        self.tree = cKDTree(self.node_xy)
        seconds = self.edge_len_m / (self.edge_limit_kmh / 3.6)
        self.graph = sparse.csr_matrix(
            (np.r_[seconds, seconds], (np.r_[self.edge_u, self.edge_v], np.r_[self.edge_v, self.edge_u])),
            shape=(n, n))
        ok = ~self.blocked
        self.strict_graph = sparse.csr_matrix(
            (np.r_[seconds[ok], seconds[ok]],
             (np.r_[self.edge_u[ok], self.edge_v[ok]], np.r_[self.edge_v[ok], self.edge_u[ok]])), shape=(n, n))
        # each road (zone) widened by its reach: a line's stretch inside one is near it
        self._road_reach = shapely.buffer(self.edge_lines, ROAD_REACH_M)
        self._road_reach_tree = shapely.STRtree(self._road_reach)
        self._zone_reach = shapely.buffer(self.zone_geoms, ZONE_REACH_M) if len(self.zone_geoms) else self.zone_geoms
        self._zone_reach_tree = shapely.STRtree(self._zone_reach)
        line, start, end, limit = self.limit_pieces(self.edge_lines, self.edge_limit_kmh)
        self.piece_start, self.piece_end, self.piece_limit = start, end, limit
        self.piece_offsets = np.searchsorted(line, np.arange(len(self.edge_u) + 1)).astype(np.int64)

    @classmethod
    def from_world(cls, world: World) -> RoadNet:
        roads = world.roads
        if not len(roads):
            raise ValueError("the world has no roads: the fleet simulator drives on world.roads")
        lines = np.asarray(geometry_to_metric(np.asarray(roads.geometry.to_numpy(), dtype=object)), dtype=object)
        limit = pd.to_numeric(roads["speed_limit_kmh"], errors="coerce").to_numpy("float64")
        if not (np.isfinite(limit) & (limit > 0)).all():
            raise ValueError("roads need a positive speed_limit_kmh for the fleet simulator")
        coords, owner = shapely.get_coordinates(lines, return_index=True)
        counts = np.bincount(owner, minlength=len(lines))
        first = np.cumsum(counts) - counts
        a, b = coords[first], coords[first + counts - 1]  # a road edge is its two end points
        keys, node_of = np.unique(_xy_key(np.vstack([a, b])), return_inverse=True)
        node_xy = np.empty((len(keys), 2))
        node_xy[node_of] = np.vstack([a, b])
        m = len(lines)
        straight = shapely.linestrings(np.stack([a, b], axis=1))
        zones = world.restricted_zones
        zone_limit = pd.to_numeric(zones["speed_limit_kmh"], errors="coerce").to_numpy("float64") \
            if len(zones) else np.empty(0)
        limited = np.isfinite(zone_limit) & (zone_limit > 0)
        metric_zones = np.asarray(geometry_to_metric(np.asarray(zones.geometry.to_numpy(), dtype=object)),
                                  dtype=object) if len(zones) else np.empty(0, object)
        all_day = np.array([str(f) == "00:00" and str(t) == "24:00" and len(b) > 0 for f, t, b in
                            zip(zones["closed_from"], zones["closed_to"], zones["barred_classes"])], bool) \
            if len(zones) else np.zeros(0, bool)
        blocked = np.zeros(m, bool)
        if all_day.any():
            hit, _ = shapely.STRtree(metric_zones[all_day]).query(straight, predicate="intersects")
            blocked[hit] = True
        return cls(node_xy, node_of[:m], node_of[m:], np.hypot(*(b - a).T), limit, straight,
                   metric_zones[limited], zone_limit[limited], blocked)

    # -- routing -------------------------------------------------------------------------------

    def nearest_node(self, xy: np.ndarray) -> np.ndarray:
        return self.tree.query(np.asarray(xy, "float64").reshape(-1, 2))[1].astype(np.int64)

    def routes(self, start_xy: np.ndarray, end_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quickest road routes start[i] -> end[i] as polylines (start, its nearest node, …, the
        end's nearest node, end; consecutive repeats dropped): (coords, owner)."""
        start_xy = np.asarray(start_xy, "float64").reshape(-1, 2)
        end_xy = np.asarray(end_xy, "float64").reshape(-1, 2)
        k = len(start_xy)
        if not k:
            return np.empty((0, 2)), np.empty(0, np.int64)
        o, d = self.nearest_node(start_xy), self.nearest_node(end_xy)
        nodes, owner = self._node_paths(o, d)
        coords = np.vstack([start_xy, self.node_xy[nodes], end_xy])
        own = np.concatenate([np.arange(k), owner, np.arange(k)])
        rank = np.concatenate([np.zeros(k), np.ones(len(owner)), np.full(k, 2.0)])
        order = np.lexsort((np.arange(len(own)), rank, own))  # node order within a path is kept
        coords, own = coords[order], own[order]
        same = np.r_[False, (own[1:] == own[:-1]) & (np.abs(coords[1:] - coords[:-1]).max(axis=1) < _MIN_SEGMENT_M)]
        return coords[~same], own[~same]

    def _node_paths(self, origins: np.ndarray, dests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node sequences origin[i] -> dest[i] (one Dijkstra per unique origin, in chunks)."""
        uniq, row = np.unique(origins, return_inverse=True)
        walked_parts, owner_parts = [], []
        for c0 in range(0, len(uniq), _DIJKSTRA_CHUNK):  # a few calls: chunks of unique origins
            chunk = uniq[c0:c0 + _DIJKSTRA_CHUNK]
            dist, pred = csgraph.dijkstra(self.strict_graph, indices=chunk, return_predecessors=True)
            pairs = np.flatnonzero((row >= c0) & (row < c0 + len(chunk)))
            r = row[pairs] - c0
            o, d = origins[pairs], dests[pairs]
            cut_off = ~np.isfinite(dist[r, d])
            if cut_off.any():  # no way round the closed zones: through them
                full_dist, full_pred = csgraph.dijkstra(self.graph, indices=chunk, return_predecessors=True)
                if not np.isfinite(full_dist[r, d]).all():
                    raise ValueError("the road network does not connect some places the fleet must drive between")
                lost = np.isin(np.arange(len(chunk)), r[cut_off])
                pred[lost] = full_pred[lost]
            steps = [d.copy()]
            cur = d.copy()
            active = cur != o
            while active.any():  # walk every path back at once: as many rounds as the longest path
                cur = np.where(active, pred[r, cur], cur)
                steps.append(cur.copy())
                active &= cur != o
            walked = np.stack(steps, axis=1)[:, ::-1]  # origin repeated …, origin, …, dest
            hops = (walked != o[:, None]).sum(axis=1)  # nodes after the origin
            keep = np.arange(walked.shape[1])[None, :] >= (walked.shape[1] - hops - 1)[:, None]
            walked_parts.append(walked[keep])
            owner_parts.append(np.repeat(pairs, keep.sum(axis=1)))
        nodes, owner = np.concatenate(walked_parts), np.concatenate(owner_parts)
        order = np.argsort(owner, kind="stable")
        return nodes[order], owner[order]

    # -- conservative limits ---------------------------------------------------------------------

    def limit_pieces(self, lines: np.ndarray, base_kmh: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Split straight metric lines into pieces of constant conservative limit: (line, start_m,
        end_m, limit_kmh) sorted by line and start. `base_kmh` is each line's limit where nothing
        lower is near (a road edge's own limit; the default limit off the network)."""
        n = len(lines)
        length = shapely.length(lines)
        ranges = [self._ranges(lines, base_kmh, self._road_reach_tree, self._road_reach, self.edge_limit_kmh),
                  self._ranges(lines, base_kmh, self._zone_reach_tree, self._zone_reach, self.zone_limit_kmh)]
        r_line, r_a, r_b, r_lim = (np.concatenate(parts) for parts in zip(*ranges))
        # breakpoints per line: its ends and every range's ends
        bp_line = np.concatenate([np.arange(n), np.arange(n), r_line, r_line])
        bp_pos = np.concatenate([np.zeros(n), length, r_a, r_b])
        order = np.lexsort((bp_pos, bp_line))
        bp_line, bp_pos = bp_line[order], bp_pos[order]
        distinct = np.r_[True, (bp_line[1:] != bp_line[:-1]) | (bp_pos[1:] - bp_pos[:-1] > 1e-6)]
        bp_line, bp_pos = bp_line[distinct], bp_pos[distinct]
        is_start = np.r_[bp_line[1:] == bp_line[:-1], False]
        start_i = np.flatnonzero(is_start)
        p_line, p_start, p_end = bp_line[start_i], bp_pos[start_i], bp_pos[start_i + 1]
        p_limit = np.asarray(base_kmh, "float64")[p_line].copy()
        if len(r_line):
            scale = float(length.max()) + 10.0
            key = p_line * scale + p_start
            lo = np.searchsorted(key, r_line * scale + r_a - 1e-6, side="left")
            hi = np.searchsorted(key, r_line * scale + r_b - 1e-6, side="left")
            count = np.maximum(hi - lo, 0)
            which = np.repeat(lo, count) + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
            np.minimum.at(p_limit, which, np.repeat(r_lim, count))
        # merge neighbours with the same limit
        new = np.r_[True, (p_line[1:] != p_line[:-1]) | (p_limit[1:] != p_limit[:-1])]
        group = np.cumsum(new) - 1
        ends = np.zeros(group[-1] + 1 if len(group) else 0)
        np.maximum.at(ends, group, p_end)
        return p_line[new], p_start[new], ends, p_limit[new]

    @staticmethod
    def _ranges(lines, base_kmh, tree, reach_geoms, limits):
        """(line, a, b, limit) for each stretch of a line within reach of a geometry whose limit is
        lower than the line's base (exact shapely intersection with the buffered geometry)."""
        empty = (np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0))
        if not len(lines) or not len(limits):
            return empty
        i, j = tree.query(lines, predicate="intersects")
        lower = limits[j] < np.asarray(base_kmh)[i]
        i, j = i[lower], j[lower]
        if not len(i):
            return empty
        parts, which = shapely.get_parts(shapely.intersection(lines[i], reach_geoms[j]), return_index=True)
        linear = shapely.get_type_id(parts) == shapely.GeometryType.LINESTRING
        parts, which = parts[linear], which[linear]
        if not len(parts):
            return empty
        host = lines[i[which]]
        a = shapely.line_locate_point(host, shapely.get_point(parts, 0))
        b = shapely.line_locate_point(host, shapely.get_point(parts, -1))
        return i[which].astype(np.int64), np.minimum(a, b), np.maximum(a, b), limits[j[which]].astype("float64")


def _expand_pieces(groups, seg_len):
    """Per segment, the cached pieces of the line it runs on (metres from the line's start),
    turned to the segment's direction: (segment, s0, s1, limit) sorted by segment and s0.
    `groups`: (segments, line per segment, forward per segment, offsets, start, end, limit)."""
    parts = []
    for segs, line, forward, offsets, start, end, limit in groups:  # two groups: edges, free lines
        cnt = offsets[line + 1] - offsets[line]
        idx = np.repeat(offsets[line], cnt) + np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        r_seg = np.repeat(segs, cnt)
        fwd = np.repeat(forward, cnt)
        length = seg_len[r_seg]
        parts.append((r_seg, np.where(fwd, start[idx], length - end[idx]),
                      np.where(fwd, end[idx], length - start[idx]), limit[idx]))
    p_seg, p_s0, p_s1, p_lim = (np.concatenate(x) for x in zip(*parts))
    order = np.lexsort((p_s0, p_seg))
    p_seg, p_s0, p_s1, p_lim = p_seg[order], np.maximum(p_s0[order], 0.0), p_s1[order], p_lim[order]
    p_s1 = np.minimum(p_s1, seg_len[p_seg])
    keep = p_s1 - p_s0 > 1e-6
    return p_seg[keep], p_s0[keep], p_s1[keep], p_lim[keep]


@dataclass
class Path:
    """One path's knots: position, time from its start (s), arc length (m), speed of the stretch
    after the knot (km/h, 0 at the end) and heading (degrees clockwise from north)."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    arc: np.ndarray
    speed: np.ndarray
    heading: np.ndarray

    @property
    def duration_s(self) -> int:
        return int(round(self.t[-1]))

    @property
    def length_m(self) -> float:
        return float(self.arc[-1])

    def time_at_arc(self, s) -> np.ndarray:
        return np.interp(s, self.arc, self.t)

    def arc_at_time(self, t) -> np.ndarray:
        return np.interp(t, self.t, self.arc)

    def point_at_arc(self, s) -> np.ndarray:
        return np.column_stack([np.interp(s, self.arc, self.x), np.interp(s, self.arc, self.y)]).reshape(-1, 2)

    def coords(self, s0: float = 0.0, s1: float | None = None) -> np.ndarray:
        """The polyline between arcs s0 and s1 (its knots inside, the cut points at the ends)."""
        s1 = self.length_m if s1 is None else s1
        inside = (self.arc > s0 + 1e-6) & (self.arc < s1 - 1e-6)
        ends = self.point_at_arc(np.array([s0, s1]))
        return np.vstack([ends[:1], np.column_stack([self.x[inside], self.y[inside]]), ends[1:]])

    def line(self):
        return shapely.linestrings(np.column_stack([self.x, self.y]))


class PathSet:
    """Every path the plan drives, stored in chunks (one per `add`); path p's knots are at
    [start[p], end[p]) of the concatenation of the chunks (`flat`)."""

    def __init__(self, net: RoadNet):
        self.net = net
        self._chunks: list[dict[str, np.ndarray]] = []
        self._chunk_of: list[np.ndarray] = []
        self._local_start: list[np.ndarray] = []
        self._start: list[np.ndarray] = []
        self._count = 0
        self._chunk_first: list[int] = []  # the first path id of each chunk
        self._flat_size = 0
        self._flat: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._count

    def add(self, coords: np.ndarray, owner: np.ndarray, factor: np.ndarray,
            speed_override_kmh: np.ndarray | None = None) -> np.ndarray:
        """Paths from polylines (coords with ascending `owner` 0..k-1, each at least two distinct
        points), driven at `factor[path]` × the conservative limit, or at `speed_override_kmh`
        on the segment starting at a vertex (NaN: no override). Returns the new path ids."""
        coords = np.asarray(coords, "float64").reshape(-1, 2)
        owner = np.asarray(owner, np.int64)
        k = int(owner.max()) + 1 if len(owner) else 0
        if not k:
            return np.empty(0, np.int64)
        override = np.full(len(owner), np.nan) if speed_override_kmh is None else \
            np.asarray(speed_override_kmh, "float64")
        net = self.net
        seg = np.flatnonzero(owner[1:] == owner[:-1])
        a, b = coords[seg], coords[seg + 1]
        seg_len = np.hypot(*(b - a).T)
        real = seg_len >= _MIN_SEGMENT_M
        seg, a, b, seg_len = seg[real], a[real], b[real], seg_len[real]
        seg_owner = owner[seg]
        if len(np.unique(seg_owner)) != k:
            raise ValueError("every path needs at least two distinct points")
        # road edges: both ends are nodes joined by an edge
        n_nodes = len(net.node_xy)
        na, nb = net.node_index.get_indexer(_xy_key(a)), net.node_index.get_indexer(_xy_key(b))
        both = (na >= 0) & (nb >= 0)
        edge = np.full(len(seg), -1, np.int64)
        edge[both] = net.edge_index.get_indexer(np.minimum(na, nb)[both] * n_nodes + np.maximum(na, nb)[both])
        on_edge = edge >= 0
        forward = on_edge & (na == net.edge_u[np.maximum(edge, 0)])
        # off-network segments (site connectors, staged detours): each distinct line once
        free = np.flatnonzero(~on_edge)
        ka, kb = _xy_key(a[free]), _xy_key(b[free])
        canon = np.stack([np.minimum(ka, kb), np.maximum(ka, kb)], axis=1)
        uniq, first_at, line_of = np.unique(canon, axis=0, return_index=True, return_inverse=True)
        line_of = line_of.reshape(-1)
        flip = ka[first_at] != uniq[:, 0]  # draw each distinct line from its smaller key
        la = np.where(flip[:, None], b[free][first_at], a[free][first_at])
        lb = np.where(flip[:, None], a[free][first_at], b[free][first_at])
        f_line, f_start, f_end, f_lim = net.limit_pieces(shapely.linestrings(np.stack([la, lb], axis=1)),
                                                         np.full(len(uniq), DEFAULT_LIMIT_KMH))
        f_offsets = np.searchsorted(f_line, np.arange(len(uniq) + 1)).astype(np.int64)
        # every segment's pieces in travel order: a road edge's from the cache, the others' from above
        p_seg, p_s0, p_s1, p_lim = _expand_pieces(
            [(np.flatnonzero(on_edge), edge[on_edge], forward[on_edge], net.piece_offsets, net.piece_start,
              net.piece_end, net.piece_limit),
             (free, line_of, ka == canon[:, 0], f_offsets, f_start, f_end, f_lim)], seg_len)
        p_owner = seg_owner[p_seg]
        p_override = override[seg[p_seg]]
        speed = np.where(np.isfinite(p_override), p_override, np.asarray(factor, "float64")[p_owner] * p_lim)
        if not (speed > 0).all():
            raise ValueError("path speeds must be positive")
        frac = p_s0 / seg_len[p_seg]
        kx = a[p_seg, 0] + (b[p_seg, 0] - a[p_seg, 0]) * frac
        ky = a[p_seg, 1] + (b[p_seg, 1] - a[p_seg, 1]) * frac
        heading = np.degrees(np.arctan2(b[p_seg, 0] - a[p_seg, 0], b[p_seg, 1] - a[p_seg, 1])) % 360.0
        piece_len = p_s1 - p_s0
        piece_s = piece_len / (speed / 3.6)
        # per path: exclusive cumulative time and arc, and the end knot
        first = np.r_[True, p_owner[1:] != p_owner[:-1]]
        start_of = np.flatnonzero(first)
        cum_t = np.cumsum(piece_s)
        cum_a = np.cumsum(piece_len)
        base_t = np.repeat(cum_t[start_of] - piece_s[start_of], np.diff(np.r_[start_of, len(p_owner)]))
        base_a = np.repeat(cum_a[start_of] - piece_len[start_of], np.diff(np.r_[start_of, len(p_owner)]))
        t_knot = cum_t - piece_s - base_t
        a_knot = cum_a - piece_len - base_a
        last_of = np.r_[start_of[1:], len(p_owner)] - 1
        total = cum_t[last_of] - base_t[last_of]
        total_arc = cum_a[last_of] - base_a[last_of]
        # whole-second durations: arrivals (phase changes) fall on whole seconds
        whole = np.maximum(np.ceil(total - 1e-9), 1.0)
        stretch = whole / total
        t_knot *= stretch[p_owner]
        speed = speed / stretch[p_owner]
        end_x = b[p_seg[last_of], 0]
        end_y = b[p_seg[last_of], 1]
        # interleave the end knot after each path's pieces
        n_p = len(p_owner)
        pos = np.arange(n_p) + p_owner  # each earlier path adds one end knot
        end_pos = last_of + np.arange(k) + 1
        size = n_p + k
        out = {name: np.empty(size) for name in ("x", "y", "t", "arc", "speed", "heading")}
        out["x"][pos], out["y"][pos], out["t"][pos], out["arc"][pos] = kx, ky, t_knot, a_knot
        out["speed"][pos], out["heading"][pos] = speed, heading
        out["x"][end_pos], out["y"][end_pos], out["t"][end_pos], out["arc"][end_pos] = end_x, end_y, whole, total_arc
        out["speed"][end_pos], out["heading"][end_pos] = 0.0, heading[last_of]
        starts = np.r_[0, end_pos[:-1] + 1]
        chunk = len(self._chunks)
        self._chunk_first.append(self._count)
        self._chunks.append(out)
        self._chunk_of.append(np.full(k, chunk))
        self._local_start.append(np.r_[starts, size])
        self._start.append(self._flat_size + starts)
        self._flat_size += size
        self._flat = None
        ids = np.arange(self._count, self._count + k)
        self._count += k
        return ids

    def add_one(self, coords: np.ndarray, factor: float, speed_override_kmh: np.ndarray | None = None) -> int:
        coords = np.asarray(coords, "float64").reshape(-1, 2)
        return int(self.add(coords, np.zeros(len(coords), np.int64), np.array([factor]), speed_override_kmh)[0])

    def path(self, p: int) -> Path:
        chunk, i0, i1 = self._locate(p)
        d = self._chunks[chunk]
        return Path(*(d[name][i0:i1] for name in ("x", "y", "t", "arc", "speed", "heading")))

    def _locate(self, p: int) -> tuple[int, int, int]:
        if not 0 <= p < self._count:
            raise IndexError(f"no path {p}")
        chunk = bisect.bisect_right(self._chunk_first, p) - 1
        local = p - self._chunk_first[chunk]
        starts = self._local_start[chunk]
        return chunk, int(starts[local]), int(starts[local + 1])

    def durations(self, ids: np.ndarray) -> np.ndarray:
        flat = self.flat()
        return np.round(flat["t"][flat["end"][ids] - 1]).astype(np.int64)

    def flat(self) -> dict[str, np.ndarray]:
        """All paths' knots concatenated, with per-path `start` / `end` (exclusive) positions."""
        if self._flat is None:
            flat = {name: np.concatenate([c[name] for c in self._chunks]) for name in
                    ("x", "y", "t", "arc", "speed", "heading")}
            flat["start"] = np.concatenate(self._start)
            lengths = np.concatenate([np.diff(s) for s in self._local_start])
            flat["end"] = flat["start"] + lengths
            self._flat = flat
        return self._flat
