"""The live monitor on the wall clock starts from the store's fleet state (issue 11): a truck the
store saw unload and wash before the monitor started is an empty, washed truck to its engine."""

from __future__ import annotations

import time

import pandas as pd

from app.live import LiveMonitor, MonitorSettings
from data.store import Store
from tests.rules.test_cargo_state import LOAD, SCHOOL, TRUCK, UNLOAD, WASH, _drive, _stay, engine_world
from tests.tracks import track


def test_a_wall_clock_monitor_starts_from_the_store(tmp_path):
    t0_ms = int(time.time() * 1000) - int(2.5 * 3_600_000)
    world = engine_world()
    world.waybills["planned_departure"] = [pd.Timestamp(t0_ms, unit="ms", tz="UTC")]
    world.waybills["planned_arrival"] = [pd.Timestamp(t0_ms + 3_600_000, unit="ms", tz="UTC")]
    before = track(TRUCK, _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH)
                   + _stay(WASH, 15), start_ms=t0_ms)
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(before)
    # after the start: to the school and a stop there, still inside WB-1's planned arrival + 2 h
    after = track(TRUCK, _drive(WASH, SCHOOL) + _stay(SCHOOL, 12), start_ms=int(before.epoch_ms[-1]) + 60_000)
    with LiveMonitor(world, url, MonitorSettings(clock="wall", advance_every_s=0.2)) as monitor:
        monitor.submit_pings(after)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not monitor.stats()["events_by_rule"].get("stop_near_sensitive_site"):
            time.sleep(0.1)
    with Store.open(url) as store:
        events = store.read_events(rule="stop_near_sensitive_site")
    assert len(events) >= 1
    first = events.iloc[0]
    # without the start state WB-1 would still be in force: a loaded stop, severity 2
    assert int(first["severity"]) == 3


def test_after_a_restart_the_wall_shows_every_truck_and_reading_the_store_last_saw(tmp_path):
    """A wall-clock monitor starts with the live picture the store holds: each truck's newest
    position and its trail within trail_s, each point's newest reading within the look-back; nothing
    older than the look-back (a truck or point silent for 6 h is not brought back)."""
    import numpy as np

    from data.demo import build_world
    from data.fleet_start import LOOKBACK_S
    from spatial.model import PingBatch, ReadingBatch

    world = build_world(seed=3, scale=0.01)
    now_ms = int(time.time() * 1000)
    rng = np.random.default_rng(1)
    trucks = world.vehicles["id"].astype(str).to_numpy()[:4]
    # trucks 0-2 report every 30 s over the last 3 h (truck 2 stopped 40 min ago); truck 3 last
    # reported 7 h ago, before the look-back
    rows = []
    for k, truck in enumerate(trucks):
        end = now_ms - (40 * 60_000 if k == 2 else 5_000) if k < 3 else now_ms - 7 * 3_600_000
        times = np.arange(end - 3 * 3_600_000, end + 1, 30_000)
        rows.append(pd.DataFrame({"vehicle_id": truck, "epoch_ms": times, "lon": 121.5 + rng.random(len(times)) * 0.01,
                                  "lat": 29.8 + rng.random(len(times)) * 0.01, "speed_kmh": 40.0}))
    pings = pd.concat(rows, ignore_index=True).sort_values(["epoch_ms", "vehicle_id"], ignore_index=True)
    points = world.monitoring_points["id"].astype(str).to_numpy()[:4]
    readings = pd.DataFrame({
        "point_id": [points[0], points[0], points[1], points[1], points[2], points[3]],
        "epoch_ms": [now_ms - 120_000, now_ms - 60_000, now_ms - 3 * 3_600_000 - 5_000, now_ms - 2 * 3_600_000,
                     now_ms - 5 * 3_600_000, now_ms - 8 * 3_600_000],
        "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}).sort_values("epoch_ms", ignore_index=True)
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(PingBatch.from_arrays(pings["vehicle_id"].to_numpy(object), pings["epoch_ms"].to_numpy(),
                                                pings["lon"].to_numpy(), pings["lat"].to_numpy(),
                                                speed_kmh=pings["speed_kmh"].to_numpy()))
        store.write_readings(ReadingBatch.from_arrays(readings["point_id"].to_numpy(object),
                                                      readings["epoch_ms"].to_numpy(), readings["value"].to_numpy()))
    settings = MonitorSettings(clock="wall", trail_s=3600.0, incidents=None)
    with LiveMonitor(world, url, settings) as monitor:
        live = monitor.snapshot()
    # positions: the newest ping of each truck seen within the look-back, as stored
    recent = pings[pings["epoch_ms"] >= now_ms - LOOKBACK_S * 1000]
    newest = recent.sort_values("epoch_ms").groupby("vehicle_id").tail(1).set_index("vehicle_id")
    assert sorted(live.positions.index) == sorted(trucks[:3])
    for truck in trucks[:3]:
        assert live.positions.at[truck, "epoch_ms"] == newest.at[truck, "epoch_ms"]
        assert live.positions.at[truck, "lon"] == newest.at[truck, "lon"]
    # trails: trail_s behind the fleet's newest ping, each truck's pings in it
    trail = live.trail()
    cut = recent["epoch_ms"].max() - 3_600_000
    assert trail["epoch_ms"].min() >= cut
    expected = recent[recent["epoch_ms"] >= cut].groupby("vehicle_id").size()
    assert trail.groupby("vehicle_id").size().sort_index().to_dict() == expected.sort_index().to_dict()
    # readings: each point's newest within the look-back (points 0 and 1; 2 at 5 h too; 3 at 8 h is not)
    assert live.readings.sort_index()["value"].to_dict() == {points[0]: 2.0, points[1]: 4.0, points[2]: 5.0}
    assert live.readings.at[points[1], "epoch_ms"] == now_ms - 2 * 3_600_000
    # and each restored truck's cargo state, as the engine's start state has it
    assert sorted(live.cargo.index) == sorted(trucks[:3])
    assert live.cargo["cargo_state"].notna().all()


def test_episodes_the_last_run_left_open_are_closed_at_the_next_start(store_url):
    """A restart loses the engines' state: no rule would close the episodes open at the stop,
    their incidents would stay active for ever. The wall-clock monitor closes them when it starts,
    at the subject's newest stored observation, once (a second start adds nothing)."""
    import numpy as np

    from data.demo import build_world
    from data.incidents import IncidentStore
    from spatial.model import Event, PingBatch

    world = build_world(seed=3, scale=0.01)
    now_ms = int(time.time() * 1000)
    at = lambda ms: pd.Timestamp(int(ms), unit="ms", tz="UTC")  # noqa: E731
    a, b = world.vehicles["id"].astype(str).iloc[:2]
    point = str(world.monitoring_points["id"].iloc[0])

    def event(rule, subject, start_ms, phase, severity=2, end_ms=None, at_ms=None, evidence=None):
        return Event(rule, subject, f"{rule}:{subject}:{start_ms}", phase, at(start_ms),
                     None if end_ms is None else at(end_ms), 121.5, 29.8, severity, evidence or {"k": phase},
                     at=None if at_ms is None else at(at_ms))

    open_a = now_ms - 20 * 60_000
    closed_b = now_ms - 30 * 60_000
    open_p = now_ms - 50 * 60_000
    events = [
        event("point_level", point, open_p, "open", severity=3),
        event("speeding", b, closed_b, "open"), event("speeding", b, closed_b, "close", end_ms=closed_b + 60_000),
        event("point_level", point, open_p, "update", severity=2, at_ms=open_p + 10 * 60_000,
              evidence={"level": 2, "change": "escalated"}),
        event("speeding", a, open_a, "open", evidence={"speed_kmh": 95.0}),
    ]
    last_ping = now_ms - 2 * 60_000
    url = store_url
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(PingBatch.from_arrays(np.array([a, a], object), np.array([open_a, last_ping]),
                                                np.array([121.5, 121.51]), np.array([29.8, 29.81])))
        store.write_events(events)
        IncidentStore(store, world).apply_stored_events()
        before = IncidentStore(store, world).list().set_index("subject_id")
    assert before.loc[[a, point], "state"].tolist() == ["active", "active"] and before.at[b, "state"] == "ended"

    settings = MonitorSettings(clock="wall")
    for _ in range(2):  # the second start finds nothing open
        with LiveMonitor(world, url, settings) as monitor:
            assert monitor.wait_idle(30)
    with Store.open(url) as store:
        incidents = IncidentStore(store, world)
        after = incidents.list().set_index("subject_id")
        closes = store.read_events(rule=["speeding", "point_level"]).query("phase == 'close'").set_index("subject_id")
        assert len(store.read_events()) == len(events) + 2  # one close each, once
        # the truck's episode ends at its last stored ping; the point's (no reading stored) at its update
        assert after.at[a, "state"] == "ended" and after.at[a, "end_time"] == at(last_ping)
        assert after.at[point, "state"] == "ended" and after.at[point, "end_time"] == at(open_p + 10 * 60_000)
        assert int(closes.at[point, "severity"]) == 2  # at the level the episode was last at
        assert closes.at[a, "evidence"]["close_reason"] == "monitor_restarted"
        assert closes.at[a, "evidence"]["speed_kmh"] == 95.0  # what the rule last said, kept
        assert after.at[b, "version"] == before.at[b, "version"]  # a closed episode is not touched
        history = incidents.show(after.at[a, "id"])["history"]
        assert "rule_closed" in history["action"].tolist()


def test_a_silence_still_going_at_a_restart_stays_open_until_the_subject_is_heard_from(store_url):
    """An offline truck and a silent sensor are still silent after a restart: their episodes are
    not closed with the restart (the new engines never saw the subject and would not raise it
    again), but carried and closed at the subject's next observation, as the rule closes them. A
    silence whose subject was heard from since is closed at the restart like any other episode."""
    import numpy as np

    from data.demo import build_world
    from data.incidents import IncidentStore
    from spatial.model import Event, PingBatch, ReadingBatch

    world = build_world(seed=3, scale=0.01)
    now_ms = int(time.time() * 1000)
    at = lambda ms: pd.Timestamp(int(ms), unit="ms", tz="UTC")  # noqa: E731
    dark, heard = world.vehicles["id"].astype(str).iloc[:2]
    sensor = str(world.monitoring_points["id"].iloc[0])

    def opened(rule, subject, start_ms, evidence):
        return Event(rule, subject, f"{rule}:{subject}:{start_ms}", "open", at(start_ms), None, 121.5, 29.8, 3,
                     evidence)

    dark_since = now_ms - 9 * 3600_000  # before the fleet start's 6 h look-back: no stored ping of it in there
    heard_since = now_ms - 40 * 60_000
    sensor_since = now_ms - 30 * 60_000
    events = [
        opened("offline", dark, dark_since, {"waybill_id": None, "last_ping": "x", "offline_after_s": 1200.0}),
        opened("offline", heard, heard_since, {"waybill_id": None, "last_ping": "x", "offline_after_s": 1200.0}),
        opened("point_interruption", sensor, sensor_since, {"silent_since": "x", "threshold_s": 600.0}),
    ]
    heard_again = now_ms - 5 * 60_000  # the old run stopped before its offline rule closed the episode
    url = store_url
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(PingBatch.from_arrays(np.array([dark, heard, heard], object),
                                                np.array([dark_since, heard_since, heard_again]),
                                                np.array([121.5, 121.6, 121.61]), np.array([29.8, 29.9, 29.91])))
        store.write_readings(ReadingBatch.from_arrays([sensor], [sensor_since], [0.5]))
        store.write_events(events)
        IncidentStore(store, world).apply_stored_events()

    def state_of(store):
        return IncidentStore(store, world).list().set_index("subject_id")

    settings = MonitorSettings(clock="wall")
    with LiveMonitor(world, url, settings) as monitor:
        assert monitor.wait_idle(30)  # the start's catch-up and closes included
        positions = monitor.snapshot().positions
        # dark for longer than the fleet start's look-back: on the wall where it went dark
        assert positions.at[dark, "epoch_ms"] == dark_since and positions.at[dark, "lon"] == 121.5
        with Store.open(url) as store:
            assert state_of(store).at[heard, "state"] == "ended"
    with Store.open(url) as store:
        after_start = state_of(store)
        assert after_start.at[heard, "state"] == "ended" and after_start.at[heard, "end_time"] == at(heard_again)
        assert after_start.loc[[dark, sensor], "state"].tolist() == ["active", "active"]
    with LiveMonitor(world, url, settings) as monitor:  # carried again; the queue waits for the start's closes
        back_ms = int(time.time() * 1000)
        monitor.submit_pings(PingBatch.from_arrays(np.array([dark, dark], object), np.array([back_ms, back_ms + 1000]),
                                                   np.array([121.52, 121.52]), np.array([29.82, 29.82])))
        monitor.submit_readings(ReadingBatch.from_arrays([sensor], [back_ms], [0.7]))
        assert monitor.wait_idle(30)
    with LiveMonitor(world, url, settings) as monitor:  # a second start finds nothing left to carry or close
        assert monitor.wait_idle(30)
    with Store.open(url) as store:
        after = state_of(store)
        closes = store.read_events(rule=["offline", "point_interruption"]).query("phase == 'close'") \
            .set_index("subject_id")
        assert sorted(closes.index) == sorted([dark, heard, sensor])  # one close each
        assert after.at[dark, "state"] == "ended" and after.at[dark, "end_time"] == at(back_ms)
        assert after.at[sensor, "state"] == "ended" and after.at[sensor, "end_time"] == at(back_ms)
        carried = closes.loc[dark, "evidence"]
        assert carried["carried_over_restart"] is True and carried["silent_s"] == (back_ms - dark_since) / 1000
        assert "close_reason" not in carried and closes.loc[dark, "episode_id"] == f"offline:{dark}:{dark_since}"
        assert closes.loc[sensor, "evidence"]["value"] == 0.7 and "resumed" in closes.loc[sensor, "evidence"]
        assert closes.loc[heard, "evidence"]["close_reason"] == "monitor_restarted"


def _old_run(world, url, pings):
    """What a monitor that ran over `pings` and stopped left in the store: the pings, the alerts
    its engine raised, the incidents."""
    from app.live import NOT_ALERTS
    from data.incidents import IncidentStore
    from spatial.rules.engine import Engine

    events = [e for e in Engine(world).run(pings) if e.rule not in NOT_ALERTS]
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(pings)
        store.write_events(events)
        IncidentStore(store, world).apply_stored_events()
    return events


def _waybill_from(world, t0_ms):
    world.waybills["planned_departure"] = [pd.Timestamp(t0_ms, unit="ms", tz="UTC")]
    world.waybills["planned_arrival"] = [pd.Timestamp(t0_ms + 3_600_000, unit="ms", tz="UTC")]


def test_an_episode_going_on_across_a_restart_goes_on(store_url):
    """The engine replays the stored pings at the start, so a truck still stopped at a school
    keeps its episode: not closed as monitor_restarted and raised again (a second incident beyond
    the reopen window, a reopen within it), but closed by the rule when the truck drives off."""
    from data.incidents import IncidentStore

    world = engine_world()
    route = _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH) + _stay(WASH, 15) \
        + _drive(WASH, SCHOOL) + _stay(SCHOOL, 12)
    t0_ms = int(time.time() * 1000) - 8 * 60_000 - len(route) * 30_000
    _waybill_from(world, t0_ms)
    url = store_url
    before = track(TRUCK, route, start_ms=t0_ms)
    raised = [e for e in _old_run(world, url, before) if e.rule == "stop_near_sensitive_site"]
    assert [e.phase for e in raised] == ["open"]
    off = track(TRUCK, _drive(SCHOOL, WASH)[:6], start_ms=int(before.epoch_ms[-1]) + 60_000)
    with LiveMonitor(world, url, MonitorSettings(clock="wall", advance_every_s=0.2)) as monitor:
        assert monitor.wait_idle(30)
        with Store.open(url) as store:
            assert len(store.read_events(rule="stop_near_sensitive_site")) == 1  # not closed at the start
            assert IncidentStore(store, world).list().iloc[0]["state"] == "active"
        assert monitor.snapshot().alerts.at[TRUCK, "rules"] == "stop_near_sensitive_site"  # on the wall
        monitor.submit_pings(off)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (monitor.snapshot().alerts["open_count"] > 0).any():
            time.sleep(0.1)
    with Store.open(url) as store:
        events = store.read_events(rule="stop_near_sensitive_site")
        incident = IncidentStore(store, world).list().iloc[0]
    assert events["phase"].tolist() == ["open", "close"] and set(events["episode_id"]) == {raised[0].episode_id}
    assert "close_reason" not in events.iloc[1]["evidence"]  # the rule's own close
    assert incident["state"] == "ended" and incident["episodes"] == 1


def _gone_dark(url):
    """A truck that went dark on its waybill 40 min ago, and what the last run stored of it at `url`."""
    world = engine_world()
    route = _stay(LOAD, 3) + _drive(LOAD, UNLOAD)[:10]
    t0_ms = int(time.time() * 1000) - 40 * 60_000 - len(route) * 30_000
    _waybill_from(world, t0_ms)
    before = track(TRUCK, route, start_ms=t0_ms)
    return world, url, before, _old_run(world, url, before)


def test_a_truck_gone_dark_just_before_the_stop_is_raised_offline_after_the_start(store_url):
    """The last run stopped before its offline rule raised a truck that had gone dark on a
    waybill; the new engine, which replays the stored pings, still watches it and raises it,
    the episode starting at its last ping."""
    world, url, before, events = _gone_dark(store_url)
    assert not [e for e in events if e.rule == "offline"]  # not raised before the stop
    with LiveMonitor(world, url, MonitorSettings(clock="wall", advance_every_s=0.2)) as monitor:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not monitor.stats()["events_by_rule"].get("offline"):
            time.sleep(0.1)
    with Store.open(url) as store:
        offline = store.read_events(rule=["offline", "feed_outage"])
    assert offline["rule"].tolist() == ["offline"] and offline.iloc[0]["subject_id"] == TRUCK
    assert offline.iloc[0]["start"] == pd.Timestamp(int(before.epoch_ms[-1]), unit="ms", tz="UTC")


def test_a_dark_truck_the_last_run_raised_is_not_raised_twice(store_url):
    """The last run raised the truck offline under its arrival-stamped last ping; the new engine,
    which replays the stored pings by their own times, sees the same silence under another start.
    One incident: the stored episode is carried and closed when the truck reports, the engine's
    twin is never published."""
    from data.incidents import IncidentStore
    from spatial.model import Event

    world, url, before, _ = _gone_dark(store_url)
    arrived_ms = int(before.epoch_ms[-1]) + 2_000  # the gateway received the last ping 2 s after its time
    stored = Event("offline", TRUCK, f"offline:{TRUCK}:{arrived_ms}", "open",
                   pd.Timestamp(arrived_ms, unit="ms", tz="UTC"), None, 121.5, 29.8, 3,
                   {"waybill_id": "WB-1", "offline_after_s": 1200.0})
    with Store.open(url) as store:
        store.write_events([stored])
        IncidentStore(store, world).apply_stored_events()
    settings = MonitorSettings(clock="wall", advance_every_s=0.2)
    with LiveMonitor(world, url, settings) as monitor:
        assert monitor.wait_idle(30)
        time.sleep(1.0)  # advances: the engine judges the silence up to now and finds it offline
        back_ms = int(time.time() * 1000)
        monitor.submit_pings(track(TRUCK, [UNLOAD], start_ms=back_ms))
        assert monitor.wait_idle(30)
    with Store.open(url) as store:
        offline = store.read_events(rule=["offline", "feed_outage"])
        incidents = IncidentStore(store, world).list()
    assert offline["phase"].tolist() == ["open", "close"] and set(offline["episode_id"]) == {stored.episode_id}
    assert offline.iloc[1]["evidence"]["carried_over_restart"] is True
    assert len(incidents) == 1 and incidents.iloc[0]["state"] == "ended"


def test_a_close_the_last_run_did_not_store_is_published_as_the_replay_saw_it(store_url):
    """The last run stored a school stop's open and stopped before storing its close, though the
    pings of the truck driving off are stored: the start publishes the rule's own close (its end,
    its evidence) from the replay, not a monitor_restarted close at the truck's newest ping."""
    from app.live import NOT_ALERTS
    from data.incidents import IncidentStore
    from spatial.rules.engine import Engine

    world = engine_world()
    route = _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH) + _stay(WASH, 15) \
        + _drive(WASH, SCHOOL) + _stay(SCHOOL, 12) + _drive(SCHOOL, WASH)[:6] + _stay(WASH, 10)
    t0_ms = int(time.time() * 1000) - 5 * 60_000 - len(route) * 30_000
    _waybill_from(world, t0_ms)
    url = store_url
    pings = track(TRUCK, route, start_ms=t0_ms)
    events = [e for e in Engine(world).run(pings) if e.rule not in NOT_ALERTS]
    school = [e for e in events if e.rule == "stop_near_sensitive_site"]
    assert [e.phase for e in school] == ["open", "close"]
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(pings)
        store.write_events([e for e in events if e is not school[1]])  # the close never stored
        IncidentStore(store, world).apply_stored_events()
    with LiveMonitor(world, url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
    with Store.open(url) as store:
        stored = store.read_events(rule="stop_near_sensitive_site")
        incident = IncidentStore(store, world).list().set_index("rule").loc["stop_near_sensitive_site"]
    assert stored["phase"].tolist() == ["open", "close"]
    close = stored.iloc[1]
    assert close["end"] == school[1].end and close["evidence"] == school[1].evidence  # the rule's, as it saw it
    assert incident["state"] == "ended" and incident["end_time"] == school[1].end


def test_a_point_alarm_going_on_across_a_restart_goes_on(store_url):
    """A pressure above its alarm threshold at the stop is still above it after the start: its
    point's stored readings are replayed, so the level alarm goes on — not closed as
    monitor_restarted and raised again at the next reading (a reopen in the noise figures) — and the
    rule closes it, under its own episode, at the reading that falls back."""
    import numpy as np

    from data.demo import build_world
    from data.incidents import IncidentStore
    from spatial.model import ReadingBatch
    from spatial.rules.points import PointEngine

    world = build_world(seed=3, scale=0.01)
    points = world.monitoring_points
    point = points[points["kind"] == "pressure"].dropna(subset=["high"]).iloc[0]
    high, span = float(point["high"]), float(point["range_max"]) - float(point["range_min"])
    above, below = high + 0.01 * span, high - 0.05 * span  # the deadband is 1 % of the span
    assert above < float(point["high_high"]) and high - 0.3 * span > float(point["range_min"])
    now_ms = int(time.time() * 1000)
    # a reading a minute for 25 min: rising gently (no rate alarm) to the threshold, then just above it
    values = np.r_[np.linspace(high - 0.3 * span, high, 11), np.full(14, above)]
    times = now_ms - 3 * 60_000 - 60_000 * np.arange(len(values))[::-1]
    readings = ReadingBatch.from_arrays(np.full(len(values), point["id"], object), times.astype("int64"), values)
    raised = [e for e in PointEngine(world).run(readings) if e.subject_id == point["id"]]
    assert [(e.rule, e.phase) for e in raised] == [("point_level", "open")]
    url = store_url
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_readings(readings)
        store.write_events(raised)
        IncidentStore(store, world).apply_stored_events()

    def point_events():
        with Store.open(url) as store:
            return store.read_events(subject_id=point["id"])

    settings = MonitorSettings(clock="wall")
    with LiveMonitor(world, url, settings) as monitor:
        assert monitor.wait_idle(30)
        assert len(point_events()) == 1  # not closed at the start
        assert monitor.snapshot().alerts.at[point["id"], "rules"] == "point_level"  # on the wall
        # the last stored reading sent again (a broker's redelivery), here below the threshold: a
        # duplicate, as it was for the stopped engine, not a reading that closes the alarm
        monitor.submit_readings(ReadingBatch.from_arrays([point["id"]], [int(times[-1])], [below]))
        assert monitor.wait_idle(30)
        assert len(point_events()) == 1 and monitor.stats()["points_engine"]["dropped"]["duplicate"] == 1
        still = int(time.time() * 1000)
        monitor.submit_readings(ReadingBatch.from_arrays([point["id"]], [still], [above]))
        assert monitor.wait_idle(30)
        assert len(point_events()) == 1  # still above: the same alarm, no new one
        monitor.submit_readings(ReadingBatch.from_arrays([point["id"]], [still + 60_000], [below]))
        assert monitor.wait_idle(30)
    events = point_events()
    assert events["phase"].tolist() == ["open", "close"] and set(events["episode_id"]) == {raised[0].episode_id}
    close = events.iloc[1]["evidence"]
    assert "close_reason" not in close  # the rule's own close
    assert close["readings"] == len(values) - 10 + 1 and close["last_alarming_reading"].startswith(
        pd.Timestamp(still, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M"))
    with Store.open(url) as store:
        incident = IncidentStore(store, world).list().iloc[0]
    assert incident["state"] == "ended" and incident["episodes"] == 1 and incident["end_time"] == pd.Timestamp(
        still, unit="ms", tz="UTC")


def test_the_newest_readings_stop_once_every_point_of_the_world_is_found(tmp_path):
    """Each point's newest reading is looked for an hour at a time backwards; given the world's
    points, the search ends at the hour where the last of them is found, not at the look-back's
    start (six reads of the whole city's readings at every start)."""
    from data.fleet_start import newest_readings
    from spatial.model import ReadingBatch

    now_ms = int(time.time() * 1000)
    ids = ["P1", "P2", "P3"]
    # P3 last reported 90 min ago: found in the second hour back
    readings = ReadingBatch.from_arrays(["P1", "P2", "P3", "P1"], [now_ms - 5 * 3_600_000, now_ms - 60_000,
                                                                   now_ms - 90 * 60_000, now_ms - 30_000],
                                        [1.0, 2.0, 3.0, 4.0])
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.write_readings(readings)
        reads = []
        read = store.read_readings
        store.read_readings = lambda *a, **k: reads.append(a) or read(*a, **k)
        at = pd.Timestamp(now_ms, unit="ms", tz="UTC")
        found = newest_readings(store, at, point_ids=ids)
        assert len(reads) == 2
        assert dict(zip(found.point_id, found.value)) == {"P1": 4.0, "P2": 2.0, "P3": 3.0}
        reads.clear()
        everything = newest_readings(store, at)
        assert dict(zip(everything.point_id, everything.value)) == {"P1": 4.0, "P2": 2.0, "P3": 3.0}
        assert len(reads) == 6  # without the world's points: the whole look-back


def test_a_point_alarm_an_earlier_restart_reopened_goes_on_under_the_episode_the_store_holds(store_url):
    """The store holds an alarm closed by an earlier restart (monitor_restarted) and reopened by
    the next reading as a new episode, the pressure above its threshold all along. The replay
    starts at the open episode's start, not before: it finds that episode again (from further back
    it would find the first, closed one, and close the open one at this start), which goes on."""
    import dataclasses

    import numpy as np

    from data.demo import build_world
    from data.incidents import IncidentStore
    from spatial.model import ReadingBatch
    from spatial.rules.points import PointEngine
    from spatial.rules.restart import RESTART_CLOSE_REASON

    world = build_world(seed=3, scale=0.01)
    points = world.monitoring_points
    point = points[points["kind"] == "pressure"].dropna(subset=["high"]).iloc[0]
    high, span = float(point["high"]), float(point["range_max"]) - float(point["range_min"])
    now_ms = int(time.time() * 1000)
    times = now_ms - 2 * 60_000 - 60_000 * np.arange(30)[::-1]  # a reading a minute, above it throughout
    before, after = times[:15], times[15:]

    def readings(at):
        return ReadingBatch.from_arrays(np.full(len(at), point["id"], object), at.astype("int64"),
                                        np.full(len(at), high + 0.01 * span))

    first = [e for e in PointEngine(world).run(readings(before)) if e.subject_id == point["id"]]
    reopened = [e for e in PointEngine(world).run(readings(after)) if e.subject_id == point["id"]]
    assert [e.phase for e in first] == [e.phase for e in reopened] == ["open"]
    closed = dataclasses.replace(first[0], phase="close", end=pd.Timestamp(int(before[-1]), unit="ms", tz="UTC"),
                                 evidence={**first[0].evidence, "close_reason": RESTART_CLOSE_REASON})
    url = store_url
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_readings(readings(times))
        store.write_events([first[0], closed, reopened[0]])
        IncidentStore(store, world).apply_stored_events()

    def point_events():
        with Store.open(url) as store:
            return store.read_events(subject_id=point["id"])

    with LiveMonitor(world, url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
        assert len(point_events()) == 3  # the open episode not closed, the first not raised again
        monitor.submit_readings(ReadingBatch.from_arrays([point["id"]], [int(time.time() * 1000)],
                                                         [high - 0.05 * span]))
        assert monitor.wait_idle(30)
    events = point_events()
    assert events["phase"].tolist() == ["open", "close", "open", "close"]
    assert events.iloc[3]["episode_id"] == reopened[0].episode_id and "close_reason" not in events.iloc[3]["evidence"]


def test_an_episode_the_last_run_never_stored_is_raised_at_the_start_with_nothing_on_record(store_url):
    """The last run stored a truck's pings up to its stop at a school and stopped before storing
    the episode (and no incident is active): the start raises it from the replay — whatever the
    store holds, or does not, of the replay's episodes."""
    world = engine_world()
    route = _stay(LOAD, 3) + _drive(LOAD, UNLOAD) + _stay(UNLOAD, 12) + _drive(UNLOAD, WASH) + _stay(WASH, 15) \
        + _drive(WASH, SCHOOL) + _stay(SCHOOL, 12)
    t0_ms = int(time.time() * 1000) - 8 * 60_000 - len(route) * 30_000
    _waybill_from(world, t0_ms)
    with Store.open(store_url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(track(TRUCK, route, start_ms=t0_ms))
    for incidents in (None, MonitorSettings().incidents):  # without the incident processor, and with it
        with LiveMonitor(world, store_url, MonitorSettings(clock="wall", incidents=incidents)) as monitor:
            assert monitor.wait_idle(30)
        with Store.open(store_url) as store:
            raised = store.read_events(rule="stop_near_sensitive_site")
        assert raised["phase"].tolist() == ["open"] and raised.iloc[0]["subject_id"] == TRUCK  # once


def _small_world():
    from data.demo import build_world

    return build_world(seed=3, scale=0.01)


def _rate_point(world, k=0):
    """A level gauge (the k-th) whose alarm thresholds leave room for a swing of 0.6 of its span,
    and that swing's bounds: a reading a minute that steps by it is a rate alarm over the 5 min
    window (0.6 / 5 = 0.12 of the span a minute, the limit 0.10), never a level one."""
    points = world.monitoring_points
    span = points["range_max"] - points["range_min"]
    point = points[(points["high"] - points["low"]) > 0.7 * span].iloc[k]
    span = float(point["range_max"]) - float(point["range_min"])
    base = float(point["low"]) + 0.05 * span
    return point, base, base + 0.6 * span


def _store_point_run(world, url, point_id, times, values, stored=lambda events: events):
    """What a monitor whose point engine judged these readings from the first and stopped after
    the last left in the store: the readings, the point's events (`stored`: those it got to
    store), the incidents. Returns its events."""
    import numpy as np

    from data.incidents import IncidentStore
    from spatial.model import ReadingBatch
    from spatial.rules.points import PointEngine

    readings = ReadingBatch.from_arrays(np.full(len(values), point_id, object), np.asarray(times, "int64"),
                                        np.asarray(values, "float64"))
    raised = [e for e in PointEngine(world).run(readings) if e.subject_id == point_id]
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_readings(readings)
        store.write_events(stored(raised))
        IncidentStore(store, world).apply_stored_events()
    return raised


def _minutes(n, last_ms):
    """n times a minute apart, the last at last_ms."""
    import numpy as np

    return (last_ms - 60_000 * np.arange(n)[::-1]).astype("int64")


def test_a_rate_alarm_going_on_across_a_restart_goes_on(store_url):
    """A gauge swinging faster than its process can at the stop is still swinging after the start:
    the replay of its stored readings begins at the rate alarm's start, and the rate rule is given
    the readings of its window before that as context, so the alarm opens again at the same reading
    and goes on — not closed as monitor_restarted and raised again at a later reading (a false close
    and reopen) — and the rule closes it, under its own episode, at the reading that is slow again."""
    import numpy as np

    from data.incidents import IncidentStore
    from spatial.model import ReadingBatch

    world = _small_world()
    point, base, top = _rate_point(world)
    # 10 min flat, then 5 min at the top, 5 at the base, 3 at the top: every reading from the first
    # step 0.6 of the span away from the one 5 min before it
    values = np.r_[np.full(10, base), np.full(5, top), np.full(5, base), np.full(3, top)]
    times = _minutes(len(values), int(time.time() * 1000) - 90_000)
    raised = _store_point_run(world, store_url, point["id"], times, values)
    assert [(e.rule, e.phase, e.start) for e in raised] == [
        ("point_rate", "open", pd.Timestamp(int(times[10]), unit="ms", tz="UTC"))]

    def point_events():
        with Store.open(store_url) as store:
            return store.read_events(subject_id=point["id"])

    with LiveMonitor(world, store_url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
        assert len(point_events()) == 1  # not closed at the start, nothing raised again
        assert monitor.snapshot().alerts.at[point["id"], "rules"] == "point_rate"  # on the wall
        # the next minute at the top: still 0.6 of the span above the reading 5 min before
        monitor.submit_readings(ReadingBatch.from_arrays([point["id"]], [int(times[-1]) + 60_000], [top]))
        assert monitor.wait_idle(30)
        assert len(point_events()) == 1  # the same alarm going on
        # then as 5 min before: slow again
        monitor.submit_readings(ReadingBatch.from_arrays([point["id"]], [int(times[-1]) + 120_000], [base]))
        assert monitor.wait_idle(30)
    events = point_events()
    assert events["phase"].tolist() == ["open", "close"] and set(events["episode_id"]) == {raised[0].episode_id}
    close = events.iloc[1]["evidence"]
    assert "close_reason" not in close  # the rule's own close
    assert close["readings"] == len(values) - 10 + 1
    assert events.iloc[1]["end"] == pd.Timestamp(int(times[-1]) + 60_000, unit="ms", tz="UTC")
    with Store.open(store_url) as store:
        incident = IncidentStore(store, world).list().iloc[0]
    assert incident["state"] == "ended" and incident["episodes"] == 1


def test_a_rate_alarm_closed_after_the_stored_open_is_closed_as_the_replay_saw_it(store_url):
    """The last run stored a rate alarm's open and stopped before storing its close, though the
    readings that end it are stored: the replay, its rate rule given the window before the alarm's
    start, opens it again at the same reading and closes it where the rule did, and the start
    publishes that close (its end, its evidence), not a monitor_restarted close at the newest
    reading."""
    import numpy as np

    from data.incidents import IncidentStore

    world = _small_world()
    point, base, top = _rate_point(world)
    # one step up, then flat at the top: fast for 5 readings, slow from the sixth
    values = np.r_[np.full(10, base), np.full(8, top)]
    times = _minutes(len(values), int(time.time() * 1000) - 90_000)
    raised = _store_point_run(world, store_url, point["id"], times, values, stored=lambda events: events[:1])
    assert [(e.rule, e.phase) for e in raised] == [("point_rate", "open"), ("point_rate", "close")]
    with LiveMonitor(world, store_url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
    with Store.open(store_url) as store:
        events = store.read_events(subject_id=point["id"])
        incident = IncidentStore(store, world).list().iloc[0]
    assert events["phase"].tolist() == ["open", "close"]
    close = events.iloc[1]
    assert close["end"] == raised[1].end == pd.Timestamp(int(times[14]), unit="ms", tz="UTC")
    assert close["evidence"] == raised[1].evidence  # the rule's, as it saw it
    assert incident["state"] == "ended" and incident["episodes"] == 1


def test_a_rate_alarm_its_window_before_the_start_does_not_hold_is_closed_at_the_restart(store_url):
    """The last run began judging the gauge a minute before its rate alarm (its window held one
    reading): the stored readings before that show the rate over the whole window under the limit.
    The replay's rate rule, given them as context, does not open the alarm again: it is closed at
    the newest reading as monitor_restarted (as documented), and nothing new is raised."""
    import numpy as np

    from spatial.model import ReadingBatch
    from spatial.rules.restart import RESTART_CLOSE_REASON

    world = _small_world()
    point, base, top = _rate_point(world)
    step = base + 0.3 * (float(point["range_max"]) - float(point["range_min"]))
    # a step of 0.3 of the span: 0.3 a minute against the reading just before, 0.06 over 5 min
    values = np.r_[np.full(10, base), np.full(2, step)]
    times = _minutes(len(values), int(time.time() * 1000) - 90_000)
    # the last run's engine saw the readings from the 10th only
    raised = _store_point_run(world, store_url, point["id"], times[9:], values[9:])
    assert [(e.rule, e.phase, e.start) for e in raised] == [
        ("point_rate", "open", pd.Timestamp(int(times[10]), unit="ms", tz="UTC"))]
    with Store.open(store_url) as store:  # the readings the last run did not judge, stored before it
        store.write_readings(ReadingBatch.from_arrays(np.full(9, point["id"], object), times[:9], values[:9]))
    with LiveMonitor(world, store_url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
        assert point["id"] not in monitor.snapshot().alerts.index
    with Store.open(store_url) as store:
        events = store.read_events(subject_id=point["id"])
    assert events["phase"].tolist() == ["open", "close"] and set(events["episode_id"]) == {raised[0].episode_id}
    assert events.iloc[1]["evidence"]["close_reason"] == RESTART_CLOSE_REASON
    assert events.iloc[1]["end"] == pd.Timestamp(int(times[-1]), unit="ms", tz="UTC")


def test_a_level_alarm_replayed_at_a_start_raises_no_rate_alarm_the_stopped_engine_did_not(store_url):
    """A pressure jumps above its high alarm and then its high-high one, and the monitor stops a
    minute later. Replayed from the level alarm's start without the readings before it, the rate
    rule would judge the second jump against the first reading alone (a minute: fast) rather than
    against the one 5 min before (slow), and the start would raise a rate alarm the stopped engine
    never did. The rate rule is given its window before the replay's start: nothing is raised."""
    import numpy as np

    world = _small_world()
    points = world.monitoring_points
    point = points[(points["kind"] == "pressure") & (points["range_min"] == 0.0) & (points["range_max"] == 10.0)] \
        .dropna(subset=["high", "high_high"]).iloc[0]
    assert (float(point["high"]), float(point["high_high"])) == (7.5, 8.5)
    # 6.5, then 7.8 (above high), then 9.0 (above high-high): 1.2 a minute against the reading just
    # before (0.12 of the span, over the 0.10 limit), 0.5 a minute against the one 5 min before
    values = np.r_[np.full(10, 6.5), 7.8, 9.0]
    times = _minutes(len(values), int(time.time() * 1000) - 90_000)
    raised = _store_point_run(world, store_url, point["id"], times, values)
    assert [(e.rule, e.phase) for e in raised] == [("point_level", "open"), ("point_level", "update")]
    with LiveMonitor(world, store_url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
        assert monitor.snapshot().alerts.at[point["id"], "rules"] == "point_level"
    with Store.open(store_url) as store:
        events = store.read_events(subject_id=point["id"])
    assert events["rule"].tolist() == ["point_level", "point_level"]  # the level alarm goes on, alone


def _event_keys(events) -> list[tuple]:
    """Events (a stored frame's rows or Event objects) as comparable tuples."""
    import json

    rows = events.to_dict("records") if isinstance(events, pd.DataFrame) else [e.__dict__ for e in events]
    return [(r["rule"], r["subject_id"], r["episode_id"], r["phase"], pd.Timestamp(r["start"]),
             None if r["end"] is None or pd.isna(r["end"]) else pd.Timestamp(r["end"]), int(r["severity"]),
             json.dumps(r["evidence"], sort_keys=True)) for r in rows]


def test_a_point_with_no_alarm_at_the_stop_raises_no_rate_alarm_on_a_window_the_restart_cut_short(store_url):
    """A gauge flat for 10 min, no alarm of it open at the stop, so not replayed. After the start it
    steps by 0.3 of its span in a minute: 0.06 of the span a minute over the 5 min window (the limit
    0.10), as the stopped engine would judge it, but 0.3 over a window cut at the start (one reading).
    The resumed engine is given every point's window before its newest stored reading as context:
    no rate alarm (before: one raised at every restart that came on such a step)."""
    import numpy as np

    from spatial.model import ReadingBatch
    from spatial.rules.points import PointEngine

    world = _small_world()
    point, base, _ = _rate_point(world)
    step = base + 0.3 * (float(point["range_max"]) - float(point["range_min"]))
    times = _minutes(10, int(time.time() * 1000) - 90_000)
    assert _store_point_run(world, store_url, point["id"], times, np.full(10, base)) == []
    after = ReadingBatch.from_arrays(np.full(2, point["id"], object), times[-1] + np.array([60_000, 120_000]),
                                     np.array([base, step]))
    # the step over the whole window is slow (the running engine raises nothing), over the cut one fast
    whole = ReadingBatch.from_arrays(np.full(12, point["id"], object), np.r_[times, after.epoch_ms],
                                     np.r_[np.full(10, base), after.value])
    assert [e for e in PointEngine(world).run(whole) if e.subject_id == point["id"]] == []
    assert [(e.rule, e.phase) for e in PointEngine(world).run(after)] == [("point_rate", "open")]
    with LiveMonitor(world, store_url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
        monitor.submit_readings(after)
        assert monitor.wait_idle(30)
        assert monitor.stats()["points_engine"]["released"] == 2  # both judged (none dropped)
        assert point["id"] not in monitor.snapshot().alerts.index
    with Store.open(store_url) as store:
        assert store.read_events(subject_id=point["id"]).empty


def test_a_rate_alarm_right_after_a_restart_is_raised_as_the_running_engine_raises_it(store_url):
    """Two gauges: A with a rate alarm open at the stop (replayed from its start), B flat with none
    (not replayed). Right after the start B steps by 0.6 of its span (0.12 a minute over the 5 min
    window: over the limit at once) and A falls back. The events after the start are those of an
    engine that ran throughout: B's rate alarm opens at its first reading after the start (before:
    its rate was unknown there, the window holding nothing before the start), A's closes under its
    own episode, and neither point's window is given twice (A's from the replay, B's as context)."""
    import numpy as np

    from data.incidents import IncidentStore
    from spatial.model import ReadingBatch
    from spatial.rules.points import PointEngine

    world = _small_world()
    a, base_a, top_a = _rate_point(world, 0)
    b, base_b, top_b = _rate_point(world, 1)
    last_ms = int(time.time() * 1000) - 90_000
    values_a = np.r_[np.full(10, base_a), np.full(5, top_a), np.full(5, base_a), np.full(3, top_a)]
    times_a = _minutes(len(values_a), last_ms)
    times_b = _minutes(len(values_a), last_ms - 20_000)  # as long, another phase
    frame = pd.DataFrame({"point_id": np.r_[np.full(len(times_a), a["id"], object), np.full(len(times_b), b["id"], object)],
                          "epoch_ms": np.r_[times_a, times_b], "value": np.r_[values_a, np.full(len(times_b), base_b)]}
                         ).sort_values(["epoch_ms", "point_id"], kind="stable")
    stored = ReadingBatch.from_arrays(frame["point_id"].to_numpy(object), frame["epoch_ms"].to_numpy("int64"),
                                      frame["value"].to_numpy("float64"))
    after = ReadingBatch.from_arrays(np.array([b["id"], a["id"], b["id"], a["id"]], object),
                                     np.array([times_b[-1] + 60_000, last_ms + 60_000, times_b[-1] + 120_000,
                                               last_ms + 120_000], "int64"),
                                     np.array([top_b, top_a, top_b, base_a]))
    running = PointEngine(world)
    ours = lambda events: [e for e in events if e.subject_id in (a["id"], b["id"])]  # noqa: E731
    raised = ours(running.step(stored))
    assert [(e.rule, e.subject_id, e.phase) for e in raised] == [("point_rate", a["id"], "open")]
    expected = ours(running.step(after))
    assert sorted((e.subject_id, e.phase) for e in expected) == [(a["id"], "close"), (b["id"], "open")]
    with Store.open(store_url, upgrade=True) as store:
        store.replace_world(world)
        store.write_readings(stored)
        store.write_events(raised)
        IncidentStore(store, world).apply_stored_events()
    with LiveMonitor(world, store_url, MonitorSettings(clock="wall")) as monitor:
        assert monitor.wait_idle(30)
        monitor.submit_readings(after)
        assert monitor.wait_idle(30)
    with Store.open(store_url) as store:
        events = store.read_events(subject_id=[a["id"], b["id"]])
    assert sorted(_event_keys(events)) == sorted(_event_keys(raised + expected))
