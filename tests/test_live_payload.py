"""The live layer's payloads (layers/live.py) and their routes: decoded here with numpy, as
the screen decodes them, and compared with the LiveState they were made from."""

from __future__ import annotations

import base64
import gzip
import json

import numpy as np
import pandas as pd
import pytest

from layers.live import (
    HEADING_UNKNOWN,
    OFF_MAP,
    POINT_STATUSES,
    QUANT_MAX,
    TRUCK_STATES,
    TRAIL_SPEED_UNKNOWN,
    LiveEncoder,
    LiveEncodingSettings,
    live_rows,
    trail_payload,
)
from spatial.model import Event, LiveState, PingBatch, ReadingBatch

T0_MS = int(pd.Timestamp("2026-11-02T08:00:00+08:00").value // 1_000_000)
MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def world():
    from data.demo import build_world

    return build_world(seed=3, scale=0.05)


@pytest.fixture
def encoder(world) -> LiveEncoder:
    return LiveEncoder(world)


def decode(array_b64: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(array_b64), dtype=dtype)


def trucks_of(frame: dict, encoder: LiveEncoder) -> pd.DataFrame:
    """The frame's trucks as a table indexed by vehicle id (lon/lat dequantised)."""
    t = frame["trucks"]
    west, south, east, north = encoder.bbox
    idx = decode(t["idx"], "<u2")
    table = pd.DataFrame({
        "lon": west + decode(t["lon"], "<u2") * (east - west) / QUANT_MAX,
        "lat": south + decode(t["lat"], "<u2") * (north - south) / QUANT_MAX,
        "state": decode(t["state"], "u1"),
        "heading": decode(t["heading"], "u1"),
    }, index=pd.Index(encoder.vehicle_ids[idx], name="vehicle_id"))
    assert len(table) == t["n"]
    return table


def points_of(frame: dict, encoder: LiveEncoder) -> pd.Series:
    p = frame["points"]
    idx = decode(p["idx"], "<u2")
    statuses = pd.Series(np.array(POINT_STATUSES)[decode(p["status"], "u1")], index=encoder.point_ids[idx])
    assert len(statuses) == p["n"]
    return statuses


def pings(ids, epoch_ms, lon, lat, speed_kmh=0.0, heading=0.0) -> PingBatch:
    n = len(ids)
    return PingBatch.from_arrays(np.asarray(ids, object), np.broadcast_to(epoch_ms, n), np.broadcast_to(lon, n),
                                 np.broadcast_to(lat, n), np.broadcast_to(speed_kmh, n), np.broadcast_to(heading, n))


def event(rule: str, subject: str, phase: str, severity: int, episode: str | None = None) -> Event:
    start = pd.Timestamp(T0_MS, unit="ms", tz="UTC")
    return Event(rule, subject, episode or f"{rule}:{subject}", phase, start, None, 121.5, 29.9, severity, {})


def inside_box(encoder: LiveEncoder, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    west, south, east, north = encoder.bbox
    rng = np.random.default_rng(seed)
    return rng.uniform(west, east, n), rng.uniform(south, north, n)


def test_full_frame_round_trips_to_quantisation_precision(world, encoder):
    ids = world.vehicles["id"].to_numpy(object)
    lon, lat = inside_box(encoder, len(ids))
    rng = np.random.default_rng(1)
    speed = rng.uniform(0, 90, len(ids))
    heading = rng.uniform(0, 360, len(ids))
    state = LiveState()
    state.apply_pings(PingBatch.from_arrays(ids, np.full(len(ids), T0_MS), lon, lat, speed, heading))

    frame = encoder.frame(state, since=0)
    assert frame["full"] and frame["version"] == state.version and frame["newest_ms"] == T0_MS
    trucks = trucks_of(frame, encoder)
    assert sorted(trucks.index) == sorted(ids)
    expected = state.positions.loc[trucks.index]
    west, south, east, north = encoder.bbox
    assert np.abs(trucks["lon"] - expected["lon"]).max() <= (east - west) / QUANT_MAX / 2 + 1e-12
    assert np.abs(trucks["lat"] - expected["lat"]).max() <= (north - south) / QUANT_MAX / 2 + 1e-12
    moving = expected["speed_kmh"].to_numpy() > 5
    expected_states = np.where(moving, TRUCK_STATES.index("moving"), TRUCK_STATES.index("parked"))
    assert (trucks["state"].to_numpy() == expected_states).all()
    # Heading in 2-degree steps for a moving truck; none for a standing one (its GNSS heading is noise).
    got = trucks["heading"].to_numpy()
    assert (got[~moving] == HEADING_UNKNOWN).all()
    error = np.abs((got[moving] * 2.0 - expected["heading"].to_numpy()[moving] + 180) % 360 - 180)
    assert error.max() <= 1.0 + 1e-9
    # About 8 bytes a truck (2 index + 2 + 2 position + state + heading), before base64.
    raw = sum(len(base64.b64decode(frame["trucks"][k])) for k in ("idx", "lon", "lat", "state", "heading"))
    assert raw == 8 * len(ids)

    statuses = points_of(frame, encoder)
    assert list(statuses.index) == list(encoder.point_ids)  # every point, unknown until it reads
    assert set(statuses) == {"unknown"}


def test_static_lists_vehicles_and_points_in_world_order(world, encoder):
    static = encoder.static()
    assert static["vehicles"]["ids"] == world.vehicles["id"].tolist()
    assert static["vehicles"]["plates"] == world.vehicles["plate"].tolist()
    assert static["points"]["ids"] == world.monitoring_points["id"].tolist()
    west, south, east, north = static["bbox"]
    lon = west + decode(static["points"]["lon"], "<u2") * (east - west) / QUANT_MAX
    lat = south + decode(static["points"]["lat"], "<u2") * (north - south) / QUANT_MAX
    geometry = world.monitoring_points.geometry
    assert np.abs(lon - geometry.x.to_numpy()).max() < (east - west) / QUANT_MAX
    assert np.abs(lat - geometry.y.to_numpy()).max() < (north - south) / QUANT_MAX
    json.dumps(static)  # what the route sends


def test_incremental_frame_carries_only_changed_rows(world, encoder):
    ids = world.vehicles["id"].to_numpy(object)
    point_ids = world.monitoring_points["id"].to_numpy(object)
    lon, lat = inside_box(encoder, len(ids))
    state = LiveState()
    state.apply_pings(PingBatch.from_arrays(ids, np.full(len(ids), T0_MS), lon, lat, np.zeros(len(ids)),
                                            np.zeros(len(ids))))
    state.apply_readings(ReadingBatch.from_arrays(point_ids, np.full(len(point_ids), T0_MS), np.ones(len(point_ids))))
    first = encoder.frame(state, since=0)

    assert not encoder.frame(state, since=first["version"])["full"]
    unchanged = encoder.frame(state, since=first["version"])
    assert unchanged["trucks"]["n"] == 0 and unchanged["points"]["n"] == 0

    movers = ids[[3, 7, 11]]
    state.apply_pings(pings(movers, T0_MS + 30_000, lon[3] + 0.01, lat[3], speed_kmh=40.0, heading=90.0))
    state.apply_readings(ReadingBatch.from_arrays(point_ids[:2], [T0_MS + 1000] * 2, [2.0, 3.0]))
    state.apply_events([event("speeding", str(ids[20]), "open", 3)])
    delta = encoder.frame(state, since=first["version"])
    assert not delta["full"] and delta["since"] == first["version"] and delta["version"] == state.version
    trucks = trucks_of(delta, encoder)
    assert sorted(trucks.index) == sorted([*movers, ids[20]])
    assert (trucks.loc[movers, "state"] == TRUCK_STATES.index("moving")).all()
    assert (trucks.loc[movers, "heading"] == 45).all()  # 90 degrees in 2-degree steps
    assert trucks.loc[ids[20], "state"] == TRUCK_STATES.index("alert")
    assert sorted(points_of(delta, encoder).index) == sorted(point_ids[:2])

    # A later delta starts from where this one ended.
    assert encoder.frame(state, since=delta["version"])["trucks"]["n"] == 0


def test_truck_states_from_speed_staleness_and_alerts(world, encoder):
    ids = [str(v) for v in world.vehicles["id"].iloc[:8]]
    lon, lat = inside_box(encoder, 1)
    state = LiveState()
    state.apply_pings(pings(ids[0:1], T0_MS, lon, lat, speed_kmh=3.0))  # GNSS drift: parked
    state.apply_pings(pings(ids[1:2], T0_MS, lon, lat, speed_kmh=30.0))
    state.apply_pings(pings(ids[2:3], T0_MS - 21 * MINUTE_MS, lon, lat, speed_kmh=30.0))  # 21 min behind
    state.apply_pings(pings(ids[3:4], T0_MS - 20 * MINUTE_MS, lon, lat, speed_kmh=30.0))  # exactly 20: not stale
    state.apply_pings(pings(ids[4:7], T0_MS, lon, lat, speed_kmh=30.0))
    state.apply_pings(PingBatch.from_arrays([ids[7]], [T0_MS], lon, lat))  # no speed reported: parked
    state.apply_events([event("stop", ids[0], "open", 4),  # a stop is the parked state, not an alert
                        event("speeding", ids[4], "open", 4), event("route_deviation", ids[5], "open", 2),
                        event("speeding", ids[6], "open", 3), event("fatigue", ids[6], "open", 1),
                        event("stop", ids[6], "open", 4),
                        event("offline", ids[2], "open", 3)])
    states = trucks_of(encoder.frame(state, since=0), encoder)["state"].map(lambda c: TRUCK_STATES[c])
    assert states[ids].tolist() == ["parked", "moving", "alert", "moving", "alert", "alert_high", "alert_high",
                                    "parked"]

    # Closing the alerts gives the trucks back their own state: a stale truck stays stale.
    before = state.version
    state.apply_events([event("offline", ids[2], "close", 3), event("fatigue", ids[6], "close", 1)])
    delta = trucks_of(encoder.frame(state, since=before), encoder)["state"].map(lambda c: TRUCK_STATES[c])
    assert delta.to_dict() == {ids[2]: "stale", ids[6]: "alert"}


def test_a_truck_that_goes_stale_without_reporting_is_in_the_delta(world, encoder):
    quiet, busy = [str(v) for v in world.vehicles["id"].iloc[:2]]
    lon, lat = inside_box(encoder, 1)
    state = LiveState()
    state.apply_pings(pings([quiet, busy], T0_MS, lon, lat))
    state.apply_pings(pings([busy], T0_MS + 19 * MINUTE_MS, lon, lat))
    seen = encoder.frame(state, since=0)
    assert trucks_of(seen, encoder)["state"][quiet] == TRUCK_STATES.index("parked")

    state.apply_pings(pings([busy], T0_MS + 21 * MINUTE_MS, lon, lat))  # only `busy` reports
    delta = encoder.frame(state, since=seen["version"])
    trucks = trucks_of(delta, encoder)
    assert sorted(trucks.index) == sorted([quiet, busy])
    assert trucks["state"][quiet] == TRUCK_STATES.index("stale")

    # And back: its next report makes it fresh again.
    state.apply_pings(pings([quiet], T0_MS + 21 * MINUTE_MS, lon, lat))
    again = trucks_of(encoder.frame(state, since=delta["version"]), encoder)
    assert again["state"].to_dict() == {quiet: TRUCK_STATES.index("parked")}


def test_point_statuses_from_readings_and_alerts(world, encoder):
    p = [str(v) for v in world.monitoring_points["id"].iloc[:8]]
    state = LiveState()
    state.apply_readings(ReadingBatch.from_arrays(p[1:7], [T0_MS] * 6, [1.0] * 6))  # p[0], p[7] never read
    state.apply_events([
        event("point_level", p[2], "open", 2),
        event("point_level", p[3], "open", 1),
        event("point_stuck", p[4], "open", 3),
        event("point_interruption", p[5], "open", 3),
        event("point_interruption", p[6], "open", 3), event("point_level", p[6], "open", 2),
        event("point_interruption", p[7], "open", 3),  # never heard from: silent, not unknown
    ])
    statuses = points_of(encoder.frame(state, since=0), encoder)
    assert statuses[p].tolist() == ["unknown", "normal", "alarm", "alarm_high", "fault", "silent", "alarm", "silent"]
    assert (statuses.drop(p) == "unknown").all()

    before = state.version
    state.apply_events([event("point_level", p[3], "close", 1)])
    assert points_of(encoder.frame(state, since=before), encoder).to_dict() == {p[3]: "normal"}


def test_full_form_when_the_version_is_unknown_or_from_another_run(world, encoder):
    ids = world.vehicles["id"].to_numpy(object)[:5]
    lon, lat = inside_box(encoder, 1)
    state = LiveState()
    state.apply_pings(pings(ids, T0_MS, lon, lat))
    state.apply_pings(pings(ids[:1], T0_MS + 1000, lon, lat))
    assert encoder.frame(state, since=1)["full"]  # never served by this encoder
    served = encoder.frame(state, since=0)["version"]
    assert not encoder.frame(state, since=served)["full"]
    restarted = LiveState()
    restarted.apply_pings(pings(ids[:2], T0_MS, lon, lat))
    frame = encoder.frame(restarted, since=served)  # the feed restarted: its version is behind the screen's
    assert frame["full"] and trucks_of(frame, encoder).index.tolist() == list(ids[:2])


def test_trucks_off_the_box_or_not_in_the_world_are_not_drawn(world, encoder):
    ids = [str(v) for v in world.vehicles["id"].iloc[:3]]
    west, south, east, north = encoder.bbox
    state = LiveState()
    state.apply_pings(pings(ids, T0_MS, (west + east) / 2, (south + north) / 2))
    state.apply_pings(pings(["VEH-NOT-IN-WORLD"], T0_MS, (west + east) / 2, (south + north) / 2))
    first = encoder.frame(state, since=0)
    assert first["trucks"]["unknown_vehicles"] == 1 and first["trucks"]["n"] == 3
    state.apply_pings(pings(ids[:1], T0_MS + 1000, east + 1.0, north))  # drove off the box (to Shanghai)
    delta = encoder.frame(state, since=first["version"])
    assert trucks_of(delta, encoder)["state"].to_dict() == {ids[0]: OFF_MAP}
    full = encoder.frame(state, since=0)
    assert sorted(trucks_of(full, encoder).index) == sorted(ids[1:]) and full["trucks"]["outside"] == 1


def test_empty_state_gives_an_empty_full_frame(encoder):
    frame = encoder.frame(LiveState(), since=0)
    assert frame["full"] and frame["trucks"]["n"] == 0 and frame["newest_ms"] is None
    assert frame["points"]["n"] == len(encoder.point_ids)


@pytest.mark.parametrize("since", [-1, 1.5, "3", True, None])
def test_bad_since_is_refused_by_name(encoder, since):
    with pytest.raises(ValueError, match="since must be a whole number >= 0"):
        encoder.frame(LiveState(), since=since)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="stale_after_s"):
        LiveEncodingSettings(stale_after_s=float("nan"))
    with pytest.raises(ValueError, match="high_alert_max_severity"):
        LiveEncodingSettings(high_alert_max_severity=0)


def test_live_rows_describe_a_truck_and_a_point(world):
    truck = str(world.vehicles["id"].iloc[0])
    point = str(world.monitoring_points["id"].iloc[0])
    state = LiveState()
    state.apply_pings(pings([truck], T0_MS, 121.5, 29.9, speed_kmh=42.0, heading=10.0))
    state.apply_readings(ReadingBatch.from_arrays([point], [T0_MS], [12.5]))
    state.apply_events([event("speeding", truck, "open", 2)])
    rows = dict(live_rows(state, "vehicles", truck, "en"))
    assert rows == {"Live state": "Alert, severity 1-2", "Last report": "2026-11-02 08:00:00", "Speed": "42 km/h",
                    "Position": "121.50000, 29.90000", "Open alerts": "1 · speeding · S2"}
    rows = dict(live_rows(state, "monitoring_points", point, "zh"))
    assert rows == {"实时状态": "正常", "最新读数": "12.5", "最后上报": "2026-11-02 08:00:00"}
    assert live_rows(state, "entities", "ENT-1", "zh") == []


# -- the selected truck's trail --------------------------------------------------------------


def trail_of(payload: dict, encoder: LiveEncoder) -> pd.DataFrame:
    """A trail payload as a table: epoch ms, lon/lat dequantised, speed byte."""
    west, south, east, north = encoder.bbox
    table = pd.DataFrame({
        "epoch_ms": payload["t0_ms"] + decode(payload["t_s"], "<u4").astype("int64") * 1000 if payload["n"] else [],
        "lon": west + decode(payload["lon"], "<u2") * (east - west) / QUANT_MAX,
        "lat": south + decode(payload["lat"], "<u2") * (north - south) / QUANT_MAX,
        "speed": decode(payload["speed"], "u1"),
    })
    assert len(table) == payload["n"]
    return table


def driven_trail(truck: str, encoder: LiveEncoder) -> tuple[PingBatch, dict]:
    """2 h 30 min of 30 s pings of one truck driving east at 40 km/h, with a 5 min stop (11
    pings at 0-2 km/h), a traffic light (one ping at 0), a ping without a speed inside another
    still run, one ping off the box and one without a position; newest at T0_MS."""
    n = 300
    epoch = T0_MS - (n - 1 - np.arange(n)) * 30_000
    west, south, east, north = encoder.bbox
    lon = 121.3 + np.arange(n) * 0.003
    lat = np.full(n, 29.9)
    speed = np.full(n, 40.0)
    speed[200:211] = [0, 1, 2, 0, 0, 0, 1, 0, 0, 2, 0]  # 5 min still: a stop
    speed[230] = 0.0  # a traffic light: still for one ping, 0 s
    speed[250:253] = [0.0, np.nan, 0.0]  # no speed: two runs of one ping each, not a 60 s run
    speed[260] = 300.0  # a broken terminal: clipped to the byte
    lon[270] = east + 1.0  # off the box
    lat[280] = np.nan  # no position
    batch = PingBatch.from_arrays(np.full(n, truck, object), epoch, lon, lat, speed, np.full(n, 90.0))
    return batch, {"still_start": 200, "still_s": 300, "clipped": 260, "dropped": [270, 280]}


def test_trail_payload_is_the_live_trail_of_the_truck_to_quantisation_precision(world, encoder):
    truck, other = [str(v) for v in world.vehicles["id"].iloc[:2]]
    batch, marks = driven_trail(truck, encoder)
    state = LiveState()
    state.apply_pings(batch)
    state.apply_pings(pings([other], T0_MS, 121.5, 29.9, speed_kmh=30.0))  # another truck's ping: not in it
    expected = state.trail(truck)
    assert len(expected) == 241  # the last 2 h behind the newest ping

    payload = encoder.trail(state, truck)
    assert payload["vehicle_id"] == truck and payload["version"] == state.version
    assert payload["newest_ms"] == T0_MS and payload["trail_s"] == state.trail_s
    got = trail_of(payload, encoder)
    kept = expected.drop(index=[i - 59 for i in marks["dropped"]]).reset_index(drop=True)  # trail row = ping - 59
    assert payload["n"] == len(kept) == 239 and payload["outside"] == 2
    assert (got["epoch_ms"].to_numpy() == kept["epoch_ms"].to_numpy()).all()
    west, south, east, north = encoder.bbox
    assert np.abs(got["lon"] - kept["lon"]).max() <= (east - west) / QUANT_MAX / 2 + 1e-12
    assert np.abs(got["lat"] - kept["lat"]).max() <= (north - south) / QUANT_MAX / 2 + 1e-12
    speed = kept["speed_kmh"].to_numpy()
    plain = np.isfinite(speed) & (speed < 254)
    assert (got["speed"].to_numpy()[plain] == np.rint(speed[plain])).all()
    assert got["speed"][np.flatnonzero(np.isnan(speed))].tolist() == [TRAIL_SPEED_UNKNOWN]
    assert got["speed"][np.flatnonzero(speed == 300.0)].tolist() == [254]
    # 9 bytes a ping before base64: 4 seconds, 2 + 2 position, 1 speed.
    raw = sum(len(base64.b64decode(payload[k])) for k in ("t_s", "lon", "lat", "speed"))
    assert raw == 9 * payload["n"]

    # One stop: the 5 min still run; the traffic light and the runs split by a missing speed are none.
    stops = payload["stops"]
    start = int(np.flatnonzero(kept["epoch_ms"].to_numpy() == batch.epoch_ms[marks["still_start"]])[0])
    assert stops["n"] == 1
    assert decode(stops["idx"], "<u4").tolist() == [start]
    assert decode(stops["duration_s"], "<u4").tolist() == [marks["still_s"]]
    json.dumps(payload)  # what the route sends


def test_trail_stop_threshold_is_the_settings(world):
    truck = str(world.vehicles["id"].iloc[0])
    short = LiveEncoder(world, LiveEncodingSettings(trail_stop_min_s=0.0))
    batch, _ = driven_trail(truck, short)
    state = LiveState()
    state.apply_pings(batch)
    # With no minimum, the traffic light and the two single still pings beside the missing speed count.
    assert short.trail(state, truck)["stops"]["n"] == 4


def test_trail_of_a_truck_not_heard_from_is_empty_and_of_no_truck_a_lookup_error(world, encoder):
    truck = str(world.vehicles["id"].iloc[3])
    state = LiveState()
    state.apply_pings(pings([str(world.vehicles["id"].iloc[0])], T0_MS, 121.5, 29.9))
    payload = encoder.trail(state, truck)
    assert payload["n"] == 0 and payload["t0_ms"] is None and payload["stops"]["n"] == 0
    assert trail_of(payload, encoder).empty
    assert encoder.trail(LiveState(), truck)["n"] == 0
    with pytest.raises(LookupError, match="no vehicle 'VEH-NOPE' in this world"):
        encoder.trail(state, "VEH-NOPE")


def test_trail_payload_takes_one_truck_only(world, encoder):
    ids = [str(v) for v in world.vehicles["id"].iloc[:2]]
    state = LiveState()
    state.apply_pings(pings(ids, T0_MS, 121.5, 29.9))
    with pytest.raises(ValueError, match="one truck's"):
        trail_payload(state.trail(), encoder.bbox, 5.0, 120.0)


def test_trail_payload_sorts_by_time(world, encoder):
    truck = str(world.vehicles["id"].iloc[0])
    frame = pd.DataFrame({"vehicle_id": [truck] * 3, "epoch_ms": [T0_MS + 60_000, T0_MS, T0_MS + 30_000],
                          "lon": [121.52, 121.50, 121.51], "lat": [29.9] * 3, "speed_kmh": [30.0, 10.0, 20.0]})
    payload = trail_payload(frame, encoder.bbox, 5.0, 120.0)
    got = trail_of(payload, encoder)
    assert payload["t0_ms"] == T0_MS and got["speed"].tolist() == [10, 20, 30]
    assert decode(payload["t_s"], "<u4").tolist() == [0, 30, 60]


# -- the routes --------------------------------------------------------------------------------


class StaticFeed:
    def __init__(self, state):
        self.state = state

    def snapshot(self):
        return self.state.copy()


@pytest.fixture(scope="module")
def served(world, tmp_path_factory):
    from app.settings import Settings
    from app.webapp import create_app

    ids = world.vehicles["id"].to_numpy(object)
    state = LiveState()
    state.apply_pings(pings(ids, T0_MS, 121.5, 29.9, speed_kmh=30.0, heading=45.0))
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"))
    version = world.fingerprint()
    client = create_app(settings, world, version, live=StaticFeed(state)).server.test_client()
    without = create_app(settings, world, version).server.test_client()
    return client, without, version, len(ids)


def test_state_route_sends_json_gzipped_never_cached(served):
    client, _, version, n = served
    response = client.get(f"/live/{version}/state?since=0", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Cache-Control"] == "no-store"
    frame = json.loads(gzip.decompress(response.data))
    assert frame["full"] and frame["trucks"]["n"] == n
    plain = client.get(f"/live/{version}/state?since={frame['version']}")
    assert "Content-Encoding" not in plain.headers
    assert plain.json["trucks"]["n"] == 0 and not plain.json["full"]


def test_static_route_is_cached_for_good(served):
    client, _, version, n = served
    response = client.get(f"/live/{version}/static.json")
    assert response.status_code == 200 and "immutable" in response.headers["Cache-Control"]
    assert response.json["vehicles"]["n"] == n


@pytest.mark.parametrize("query", ["since=abc", "since=-1", "since=1.5", "since="])
def test_bad_since_is_a_400_naming_it(served, query):
    client, _, version, _ = served
    response = client.get(f"/live/{version}/state?{query}")
    assert response.status_code == 400
    assert "since must be a whole number >= 0" in response.json["error"]


def test_wrong_world_version_or_no_live_feed_is_a_404(served):
    client, without, version, _ = served
    response = client.get("/live/old-world/state?since=0")
    assert response.status_code == 404 and "world version 'old-world' is not served" in response.json["error"]
    response = without.get(f"/live/{version}/state?since=0")
    assert response.status_code == 404 and "without a live feed" in response.json["error"]


def test_trail_route_sends_the_trail_gzipped_never_cached(served, world):
    client, _, version, _ = served
    truck = str(world.vehicles["id"].iloc[2])
    response = client.get(f"/live/{version}/trail/{truck}", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip" and response.headers["Cache-Control"] == "no-store"
    payload = json.loads(gzip.decompress(response.data))
    assert payload["vehicle_id"] == truck and payload["n"] == 1 and payload["t0_ms"] == T0_MS
    plain = client.get(f"/live/{version}/trail/{truck}")  # a client without gzip gets it plain
    assert "Content-Encoding" not in plain.headers and plain.json["n"] == 1


def test_trail_route_unknown_vehicle_wrong_world_or_no_feed_is_a_404(served, world):
    client, without, version, _ = served
    response = client.get(f"/live/{version}/trail/VEH-NOT-IN-WORLD")
    assert response.status_code == 404 and "no vehicle 'VEH-NOT-IN-WORLD' in this world" in response.json["error"]
    truck = str(world.vehicles["id"].iloc[0])
    response = client.get(f"/live/old-world/trail/{truck}")
    assert response.status_code == 404 and "world version 'old-world' is not served" in response.json["error"]
    response = without.get(f"/live/{version}/trail/{truck}")
    assert response.status_code == 404 and "without a live feed" in response.json["error"]


@pytest.mark.parametrize("bad_id", ["VEH%201", "VEH-1%3Cscript%3E", "V" * 129, "VEH%3B1"])
def test_trail_route_bad_vehicle_id_is_a_400_naming_it(served, bad_id):
    client, _, version, _ = served
    response = client.get(f"/live/{version}/trail/{bad_id}")
    assert response.status_code == 400
    assert response.json["error"].startswith("vehicle id must be 1-128 letters, digits")


def test_a_live_source_without_snapshot_is_refused(world, tmp_path):
    from app.settings import Settings
    from app.webapp import create_app

    with pytest.raises(TypeError, match="snapshot"):
        create_app(Settings(var_dir=tmp_path), world, "v1", live=object())
