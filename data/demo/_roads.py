"""A synthetic road network over Ningbo's land, and quickest-path routing on it.

Nodes: a jittered grid over the land plus denser clouds in the towns. Edges: the Delaunay
triangulation of the nodes, without long edges and without any edge that leaves the land
(so no road crosses the sea between islands, a bay or a reservoir), reduced to its largest
connected component. Expressways are the shortest paths between their waypoints, with
their class upgraded. Everything is metric (UTM 51N).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import Delaunay, cKDTree

from data.demo import _names
from data.demo._places import EXPRESSWAYS, TOWNS
from spatial.crs import to_metric

GRID_SPACING_M = 2800.0  # rural node spacing
TOWN_NODES_PER_WEIGHT = 16  # town nodes per unit of town weight
MIN_NODE_GAP_M = 380.0  # nodes closer than this are merged (one per cell of this size)
MAX_EDGE_M = 4800.0
EDGE_TO_NEIGHBOUR_RATIO = 2.6  # an edge may be this many times its endpoints' spacing

# Hazmat speed limits by road class (危险货物道路运输安全管理办法 2019 art. 46: ≤ 80 km/h on
# expressways, ≤ 60 km/h elsewhere; town streets lower).
SPEED_KMH = {"expressway": 80.0, "arterial": 60.0, "urban": 50.0, "town_core": 40.0}
EXPRESSWAY_SPEED_KMH = SPEED_KMH["expressway"]


@dataclass
class RoadNetwork:
    node_xy: np.ndarray  # (n, 2) metric
    edge_nodes: np.ndarray  # (m, 2) node indices
    length_m: np.ndarray
    road_class: np.ndarray
    speed_kmh: np.ndarray
    name: np.ndarray
    expressway_paths: list[tuple[str, np.ndarray]]  # name, node sequence

    def __post_init__(self) -> None:
        self.tree = cKDTree(self.node_xy)
        n = len(self.node_xy)
        a, b = self.edge_nodes[:, 0], self.edge_nodes[:, 1]
        self._edge_lookup = sparse.csr_matrix(
            (np.concatenate([np.arange(len(a)) + 1] * 2), (np.concatenate([a, b]), np.concatenate([b, a]))),
            shape=(n, n),
        )

    @property
    def lines(self) -> np.ndarray:
        return shapely.linestrings(self.node_xy[self.edge_nodes])

    def edge_index(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Index of the edge joining nodes u[i] and v[i] (-1 where none)."""
        return np.asarray(self._edge_lookup[u, v]).reshape(-1).astype(int) - 1

    def nearest_node(self, xy: np.ndarray) -> np.ndarray:
        return self.tree.query(xy)[1]

    def travel_graph(self, blocked: np.ndarray | None = None) -> sparse.csr_matrix:
        """Undirected graph weighted by travel time (s) at the hazmat speed limit."""
        keep = np.ones(len(self.length_m), bool) if blocked is None else ~blocked
        a, b = self.edge_nodes[keep, 0], self.edge_nodes[keep, 1]
        t = self.length_m[keep] / (self.speed_kmh[keep] / 3.6)
        n = len(self.node_xy)
        return sparse.csr_matrix((np.concatenate([t, t]), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n))


def build_network(rng: np.random.Generator, land, water) -> RoadNetwork:
    """`land`: the main land mass (metric polygon); `water`: areas no road may cross."""
    road_land = shapely.difference(land, water)
    shapely.prepare(road_land)
    xy = _nodes(rng, road_land)
    tri = Delaunay(xy)
    e = np.concatenate([tri.simplices[:, [0, 1]], tri.simplices[:, [1, 2]], tri.simplices[:, [0, 2]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    length = np.hypot(*(xy[e[:, 0]] - xy[e[:, 1]]).T)
    spacing = cKDTree(xy).query(xy, k=2)[0][:, 1]
    short = (length <= EDGE_TO_NEIGHBOUR_RATIO * np.maximum(spacing[e[:, 0]], spacing[e[:, 1]])) & (length <= MAX_EDGE_M)
    e, length = e[short], length[short]
    on_land = shapely.covered_by(shapely.linestrings(xy[e]), road_land)
    e, length = e[on_land], length[on_land]

    # the largest connected component, nodes renumbered
    n = len(xy)
    graph = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    _, label = csgraph.connected_components(graph, directed=False)
    main = np.argmax(np.bincount(label))
    keep_node = label == main
    new_index = np.cumsum(keep_node) - 1
    keep_edge = keep_node[e[:, 0]]
    xy, e, length = xy[keep_node], new_index[e[keep_edge]], length[keep_edge]

    road_class, speed, name = _classify(xy, e)
    net = RoadNetwork(xy, e, length, road_class, speed, name, [])
    _add_expressways(net)
    return net


def _nodes(rng: np.random.Generator, road_land) -> np.ndarray:
    xmin, ymin, xmax, ymax = road_land.bounds
    gx, gy = np.meshgrid(np.arange(xmin, xmax, GRID_SPACING_M), np.arange(ymin, ymax, GRID_SPACING_M))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    grid += rng.uniform(-0.35, 0.35, grid.shape) * GRID_SPACING_M
    town_xy = np.column_stack(to_metric([t.lon for t in TOWNS], [t.lat for t in TOWNS]))
    counts = np.round(np.array([t.weight for t in TOWNS]) * TOWN_NODES_PER_WEIGHT).astype(int)
    spread = np.repeat([t.spread_m * 1.4 for t in TOWNS], counts)
    town = np.repeat(town_xy, counts, axis=0) + rng.normal(size=(counts.sum(), 2)) * spread[:, None]
    xy = np.concatenate([town, grid])  # towns first: they win the merge below
    xy = xy[shapely.contains_xy(road_land, xy[:, 0], xy[:, 1])]
    cell = np.floor(xy / MIN_NODE_GAP_M).astype(np.int64)
    _, first = np.unique(cell[:, 0] * 1_000_003 + cell[:, 1], return_index=True)
    return xy[np.sort(first)]


def _classify(xy: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mid = (xy[e[:, 0]] + xy[e[:, 1]]) / 2
    town_xy = np.column_stack(to_metric([t.lon for t in TOWNS], [t.lat for t in TOWNS]))
    spread = np.array([t.spread_m for t in TOWNS])
    # distance to each town in units of its spread (27 towns: a small dense matrix)
    d = np.hypot(*(mid[:, None, :] - town_xy[None, :, :]).transpose(2, 0, 1)) / spread[None, :]
    nearest = d.min(axis=1)
    road_class = np.where(nearest <= 0.8, "town_core", np.where(nearest <= 2.0, "urban", "arterial")).astype(object)
    speed = np.array([SPEED_KMH[c] for c in ("town_core", "urban", "arterial")])[
        np.select([road_class == "town_core", road_class == "urban"], [0, 1], 2)
    ]
    road_class = np.where(road_class == "town_core", "urban", road_class).astype(object)
    dx, dy = (xy[e[:, 1]] - xy[e[:, 0]]).T
    east_west = np.abs(dx) >= np.abs(dy)
    urban = road_class == "urban"
    band_size = np.where(urban, 700.0, 5000.0)
    band = np.floor(np.where(east_west, mid[:, 1], mid[:, 0]) / band_size).astype(np.int64)
    return road_class, speed.astype("float64"), _names.road_names(urban, east_west, band)


def _add_expressways(net: RoadNetwork) -> None:
    """Upgrade the shortest paths between each expressway's waypoints (by length)."""
    n = len(net.node_xy)
    a, b = net.edge_nodes[:, 0], net.edge_nodes[:, 1]
    by_length = sparse.csr_matrix(
        (np.concatenate([net.length_m] * 2), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n)
    )
    upgraded = np.zeros(len(a), bool)
    for name, waypoints in EXPRESSWAYS:  # a handful of named roads
        lon, lat = zip(*waypoints)
        stops = net.nearest_node(np.column_stack(to_metric(lon, lat)))
        _, pred = csgraph.dijkstra(by_length, indices=stops[:-1], return_predecessors=True)
        nodes = [stops[:1]]
        for i in range(len(stops) - 1):
            leg = _backtrack(pred[i], stops[i], stops[i + 1])
            nodes.append(leg[1:])
        path = np.concatenate(nodes)
        edges = net.edge_index(path[:-1], path[1:])
        if (edges < 0).any():
            raise RuntimeError(f"expressway {name} is not a path of the network")
        fresh = edges[~upgraded[edges]]  # an edge shared by two expressways keeps the first name
        net.road_class[fresh] = "expressway"
        net.speed_kmh[fresh] = EXPRESSWAY_SPEED_KMH
        net.name[fresh] = name
        upgraded[edges] = True
        net.expressway_paths.append((name, path))


def _backtrack(pred_row: np.ndarray, origin: int, dest: int) -> np.ndarray:
    path = [dest]
    while path[-1] != origin:
        step = pred_row[path[-1]]
        if step < 0:
            raise RuntimeError("no path between expressway waypoints")
        path.append(step)
    return np.array(path[::-1])


def shortest_paths(graph: sparse.csr_matrix, origins: np.ndarray, dests: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quickest paths origin[i] -> dest[i] (node indices), one Dijkstra per unique origin.

    Returns (nodes, owner, reachable): the concatenated node sequences, the path each node
    belongs to (ascending), and which pairs were connected at all."""
    uniq, row = np.unique(origins, return_inverse=True)
    dist, pred = csgraph.dijkstra(graph, indices=uniq, return_predecessors=True)
    reachable = np.isfinite(dist[row, dests])
    # walk every path back from its destination at once
    steps = [dests.copy()]
    cur = dests.copy()
    active = reachable & (cur != origins)
    while active.any():
        cur = np.where(active, pred[row, cur], cur)
        steps.append(cur.copy())
        active &= cur != origins
    walked = np.stack(steps, axis=1)  # (pairs, steps): dest ... origin, then origin repeated
    hops = np.where(reachable, (walked != origins[:, None]).sum(axis=1), 0)  # nodes before the origin
    keep = np.arange(walked.shape[1])[None, :] <= hops[:, None]
    forward = np.take_along_axis(walked, np.clip(hops[:, None] - np.arange(walked.shape[1])[None, :], 0, None), axis=1)
    owner = np.repeat(np.arange(len(origins)), keep.sum(axis=1))
    return forward[keep], owner, reachable
