"""A small stored world with pings, events and the incidents they opened (routed to
departments and enterprises, some signed and disposed): the input of every report test."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from spatial.model import Event, PingBatch

AT = pd.Timestamp("2026-11-02T10:00:00+08:00").tz_convert("UTC")
MIN = pd.Timedelta(minutes=1)
DISTRICT = "北仑区"


@pytest.fixture(scope="session")
def stored(tmp_path_factory):
    return fill(f"sqlite:///{(tmp_path_factory.mktemp('reports') / 'hazmap.sqlite').as_posix()}")


def fill(url: str) -> dict:
    """The world, pings, events and handled incidents written to the store at `url`."""
    from data.demo import build_world
    from data.incidents import IncidentStore
    from data.reference import load_chemicals
    from data.store import Store

    world = build_world(seed=3, scale=0.02, chemicals=load_chemicals())
    district = world.districts[world.districts["name"] == DISTRICT].geometry.iloc[0]
    v = world.vehicles
    ids = v["id"].to_numpy(object)
    x, y = v.geometry.x.to_numpy(), v.geometry.y.to_numpy()
    inside = district.contains(v.geometry).to_numpy()
    vin = ids[inside]
    points = world.monitoring_points
    pin = points[points.geometry.within(district).to_numpy()]
    mp, px, py = pin["id"].to_numpy(object), pin.geometry.x.to_numpy(), pin.geometry.y.to_numpy()

    def ms(ts):
        return int(ts.value // 1_000_000)

    # every truck pings 10 min before T; one truck also a day earlier (the store's oldest data)
    pings = PingBatch.from_arrays(
        [*ids, ids[0]], [ms(AT - 10 * MIN)] * len(ids) + [ms(AT - pd.Timedelta(days=1))],
        [*x, x[0]], [*y, y[0]])

    def event(rule, subject, episode, phase, start, end=None, severity=1, lon=float("nan"), lat=float("nan"),
              evidence=None):
        return Event(rule, subject, episode, phase, start, end, lon, lat, severity, evidence or {})

    vx, vy = x[inside], y[inside]
    events = [
        event("point_level", mp[0], "E1", "open", AT - 20 * MIN, severity=1, lon=px[0], lat=py[0]),
        event("point_level", mp[1], "E2", "open", AT - 30 * MIN, severity=2, lon=px[1], lat=py[1]),
        event("point_level", mp[1], "E2", "close", AT - 30 * MIN, AT - 5 * MIN, severity=2, lon=px[1], lat=py[1]),
        event("speeding", vin[0], "E3", "open", AT - 15 * MIN, severity=2, lon=vx[0], lat=vy[0]),
        event("stop_near_sensitive_site", vin[1], "E4", "open", AT - 40 * MIN, severity=1, lon=vx[1], lat=vy[1]),
        event("speeding", vin[2], "E5", "open", AT - pd.Timedelta(days=2), severity=3, lon=vx[2], lat=vy[2]),
        event("speeding", vin[2], "E5", "close", AT - pd.Timedelta(days=2), AT - pd.Timedelta(days=2) + 9 * MIN,
              severity=3, lon=vx[2], lat=vy[2], evidence={"peak_speed_kmh": 97.4, "limit_kmh": 80.0,
                                                           "limit_source": "road", "speed_derived": False}),
    ]
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
        store.write_pings(pings)
        store.write_events(events)
    with Store.open(url) as store:
        world = store.load_world(chemicals=load_chemicals())
        incidents = IncidentStore(store, world)
        incidents.apply_stored_events()
        listed = incidents.list()
        first = listed[listed["rule"] == "speeding"].sort_values("first_time")["id"].iloc[0]
        shown = incidents.show(first)
        for row in shown["recipients"].itertuples():
            incidents.sign(first, row.recipient_id, "duty officer", at=AT - pd.Timedelta(days=2) + 20 * MIN)
            incidents.dispose(first, row.recipient_id, "duty officer", "driver warned", "warned", "resolved",
                              at=AT - pd.Timedelta(days=2) + 30 * MIN)
            incidents.close(first, row.recipient_id, "duty officer", "done", at=AT - pd.Timedelta(days=2) + 40 * MIN)
    return {"url": url, "world": world, "closed_incident": first, "vin": vin, "mp": mp}


def run(stored, *args):
    from app.cli import cli

    return CliRunner().invoke(cli, list(args), env={"HAZMAP_DATABASE_URL": stored["url"]}, catch_exceptions=True)
