"""Simulated responders (data/sim/responders.py): their decisions, and a simulated day
of incidents on a store where handling rates land near the configured ones and incidents
escalate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.incidents import IncidentSettings, IncidentStore
from data.sim.responders import ResponderProfile, Responders, ResponderSettings
from data.store import Store
from tests.incidents.helpers import T0, at, ev
from tests.incidents.test_routing import small_world

SETTINGS = ResponderSettings()


def _rows(n: int, kind: str, deadline_s: float = 1800.0) -> pd.DataFrame:
    pushed = pd.Series(T0 + pd.to_timedelta(np.arange(n), unit="s"))
    return pd.DataFrame({
        "incident_id": [f"INC-{i}" for i in range(n)], "recipient_id": "DEPT-TP" if kind == "department" else "ENT-C",
        "recipient_kind": kind, "state": "pushed", "pushed_at": pushed,
        "sign_deadline": pushed + pd.Timedelta(seconds=deadline_s), "severity": 2,
    })


@pytest.mark.parametrize("kind", ["department", "enterprise"])
def test_decisions_follow_the_profile(kind):
    profile = getattr(SETTINGS, kind)
    fate = Responders(None, SETTINGS).decide(_rows(20_000, kind))
    assert fate["silent"].mean() == pytest.approx(profile.silent_share, abs=0.006)
    assert fate["late"].mean() == pytest.approx(profile.late_share, abs=0.008)
    assert not (fate["silent"] & fate["late"]).any()
    on_time = ~fate["silent"] & ~fate["late"]
    assert (fate.loc[on_time, "sign_s"] <= 0.9 * 1800).all()
    assert fate.loc[on_time, "sign_s"].median() == pytest.approx(min(profile.sign_median_s, 1620), rel=0.1)
    assert (fate.loc[fate["late"], "sign_s"] > 1800).all()
    assert (fate["outcome"] == "false_alarm").mean() == pytest.approx(profile.false_alarm_share, abs=0.008)
    assert fate["note"].notna().all() and fate["measures"].notna().all()


def test_decisions_are_a_function_of_seed_incident_and_recipient():
    rows = _rows(500, "department")
    first = Responders(None, SETTINGS).decide(rows)
    again = Responders(None, SETTINGS).decide(rows.iloc[::-1])  # other order, other batch
    pd.testing.assert_frame_equal(first, again.loc[first.index])
    other = Responders(None, ResponderSettings(seed=2)).decide(rows)
    assert not first["sign_s"].equals(other["sign_s"])


def test_profiles_refuse_impossible_shares():
    with pytest.raises(ValueError, match="silent_share"):
        ResponderProfile(silent_share=1.5, late_share=0, sign_median_s=1, dispose_median_s=1, close_median_s=1,
                         false_alarm_share=0)
    with pytest.raises(ValueError, match="exceed 1"):
        ResponderProfile(silent_share=0.6, late_share=0.6, sign_median_s=1, dispose_median_s=1, close_median_s=1,
                         false_alarm_share=0)


VEHICLE_RULES = ["speeding", "route_deviation", "fatigue", "offline", "illegal_parking", "restricted_zone"]
POINT_RULES = ["point_level", "point_rate", "point_stuck"]


def _events(n: int) -> list:
    """n incidents 3 min apart over the truck VEH-1 and the point MP-1, red, orange or yellow,
    each closed by its rule 10 min after it opened."""
    combos = [(r, "VEH-1") for r in VEHICLE_RULES] + [(r, "MP-1") for r in POINT_RULES]
    events = []
    for i in range(n):
        rule, subject = combos[i % len(combos)]
        kw = dict(rule=rule, subject=subject, severity=1 + i % 3, lon=121.55, lat=29.85)
        events += [ev("open", 3 * i, **kw), ev("close", 3 * i, 3 * i + 10, **kw)]
    return events


def test_a_simulated_day_handles_near_the_configured_rates_and_escalates(sqlite_url):
    with Store.open(sqlite_url, upgrade=True) as store:
        world = small_world()
        incidents = IncidentStore(store, world, IncidentSettings())
        n = 120  # 6 h of incidents
        assert incidents.apply_events(_events(n)).opened == n
        # actions of one recipient within 5 min go in one call: fewer transactions for the test
        responders = Responders(incidents, ResponderSettings(resolution_s=300.0))
        totals = {"signed": 0, "disposed": 0, "closed": 0}
        now = at(0)
        while now <= at(3 * n + 14 * 60):  # and 14 h more for the late and the slow
            step = responders.step(now)
            for k in totals:
                totals[k] += getattr(step, k)
            assert step.refused == 0
            incidents.escalate_overdue(now)
            now += pd.Timedelta(minutes=15)

        by_department = incidents.kpis(by="department", now=now)
        by_enterprise = incidents.kpis(by="enterprise", now=now)
        for table, profile in ((by_department, SETTINGS.department), (by_enterprise, SETTINGS.enterprise)):
            rate = table["disposed"].sum() / table["pushed"].sum()
            assert rate == pytest.approx(1 - profile.silent_share, abs=0.03), table
            assert table["escalated"].sum() > 0
            assert table["false_alarms"].sum() > 0
        assert totals["disposed"] == by_department["disposed"].sum() + by_enterprise["disposed"].sum()
        assert totals["closed"] == totals["disposed"]  # every disposal is closed in the end
        # the late and the silent made incidents climb: district offices and the city got them
        listed = incidents.list()
        assert (listed["escalations"] > 0).sum() > 0.05 * n
        tiers = pd.concat([incidents.show(i)["recipients"] for i in listed["id"][listed["escalations"] > 0][:20]])
        assert (tiers["tier"] >= 1).any() and set(tiers.loc[tiers["tier"] >= 1, "recipient_id"]) & {
            "DEPT-330203", "DEPT-EM"}
        # a silent recipient is still pushed, reminded; everything else got closed
        left = responders.pending(now)
        assert set(left["state"]) <= {"pushed"}


def test_the_demo_runs_the_responders_on_the_simulation_clock(sqlite_url):
    """`hazmap demo` (app/cli.py) starts them beside the simulator: they act on its clock, on
    their own store connection, and stop with the app."""
    import time
    from types import SimpleNamespace

    from app.cli import _start_responders
    from app.settings import Settings

    world = small_world()
    with Store.open(sqlite_url, upgrade=True) as store:
        IncidentStore(store, world, IncidentSettings()).apply_events(_events(20))
    clock_ms = int(at(0).value // 1_000_000)
    simulator = SimpleNamespace(progress=SimpleNamespace(sim_ms=clock_ms))
    monitor = SimpleNamespace(settings=SimpleNamespace(incidents=IncidentSettings()))
    run = _start_responders(Settings(database_url=sqlite_url), world, monitor, simulator)
    try:
        time.sleep(3)
        assert run.runner.totals.signed == 0  # the clock stands before any push
        simulator.progress.sim_ms = int(at(24 * 60).value // 1_000_000)  # a day later
        deadline = time.monotonic() + 60
        while run.runner.totals.closed == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        run.stop()
    assert run.runner.totals.signed > 0 and run.runner.totals.closed > 0
    assert _start_responders(Settings(database_url=sqlite_url), world,
                             SimpleNamespace(settings=SimpleNamespace(incidents=None)), simulator) is None
