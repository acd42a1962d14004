"""The KPI tables' overdue figure over a year-shaped record, on both backends: the escalation
pass counts rows as their deadlines pass, signing takes them back, and `kpis(now)` corrects live
for what the passes have not seen at `now` (or have counted ahead of an earlier `now`), always
equal to the figures computed from every row (`kpis_exact`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from data.incidents import IncidentStore, incident_kpi_totals, incident_kpis, incident_recipients
from tests.incidents.helpers import at, episode
from tests.incidents.test_lifecycle import SETTINGS, three_tier_routing  # noqa: F401 (a fixture)

COUNTS = ["incidents", "pushed", "signed", "disposed", "overdue", "escalated", "false_alarms", "quick_closes",
          "reopens"]
DAY = 24 * 60  # minutes


@pytest.fixture
def incidents(store):
    return IncidentStore(store, None, SETTINGS)


def year_of_episodes(rng, n: int, first_day: float, last_day: float) -> list:
    starts = np.sort(rng.uniform(first_day * DAY, last_day * DAY, n))
    events = []
    for k, start in enumerate(starts):
        events += episode(float(start), float(start) + 30, subject=f"VEH-{k % 17:04d}",
                          severity=int(rng.integers(1, 5)), rule=("speeding", "offline", "fatigue")[k % 3])
    return events


def assert_kpis_exact(incidents, now) -> None:
    for by in ("department", "enterprise", "district", "rule", "level", "day"):
        fast, exact = incidents.kpis(by=by, now=now), incidents.kpis_exact(by=by, now=now)
        assert fast[[by, *COUNTS]].to_dict("records") == exact[[by, *COUNTS]].to_dict("records"), (by, now)


def pushed_to(incidents, recipient: str, deadline_before=None) -> pd.DataFrame:
    rows = incidents.inbox(recipient)
    rows = rows[rows["state"] == "pushed"]
    if deadline_before is not None:
        rows = rows[rows["sign_deadline"] < deadline_before]
    return rows


def test_overdue_counts_rows_whose_deadlines_pass_between_two_passes(incidents, three_tier_routing):
    rng = np.random.default_rng(12)
    incidents.apply_events(year_of_episodes(rng, 240, 0, 365))
    first_pass, second_pass = at(100 * DAY), at(250 * DAY)
    assert incidents.escalate_overdue(first_pass).escalated > 0
    # some of the counted rows are signed after the pass: late stays overdue, "on time" (a sign
    # recorded before the deadline) does not; some rows the pass had not seen are signed too
    counted = pushed_to(incidents, "ENT-C", first_pass)
    late, on_time = counted.iloc[::3], counted.iloc[1:12:3]
    incidents.sign(late["incident_id"].tolist(), "ENT-C", "Li", at=first_pass + pd.Timedelta(hours=1))
    for row in on_time.itertuples():
        incidents.sign([row.incident_id], "ENT-C", "Li", at=row.sign_deadline - pd.Timedelta(minutes=1))
    ahead = pushed_to(incidents, "ENT-C", at(180 * DAY)).iloc[::2]
    incidents.sign(ahead["incident_id"].tolist(), "ENT-C", "Li", at=at(181 * DAY))
    # deadlines pass between the passes; the second pass counts them, and the KPIs see them at
    # every instant: between the passes (live), after the second, before either
    assert_kpis_exact(incidents, at(200 * DAY))
    assert incidents.escalate_overdue(second_pass).reminded > 0
    # a row pushed after the pass with a deadline long past (an old events file imported late)
    incidents.apply_events(year_of_episodes(rng, 5, 20, 30))
    for now in (at(300 * DAY), at(200 * DAY), at(50 * DAY)):  # after the passes, between them, before both
        assert_kpis_exact(incidents, now)

    # the counter holds exactly the rows the passes counted that are still unsigned
    with incidents.engine.connect() as connection:
        r, k = incident_recipients, incident_kpis
        still = connection.execute(sa.select(sa.func.count()).select_from(r).where(
            r.c.state == "pushed", r.c.overdue_counted_severity.is_not(None))).scalar()
        counter = connection.execute(sa.select(sa.func.sum(k.c.n)).where(
            k.c.grouping == "rule", k.c.metric == "unsigned_overdue")).scalar()
        totals = connection.execute(sa.select(sa.func.sum(incident_kpi_totals.c.n)).where(
            incident_kpi_totals.c.grouping == "rule", incident_kpi_totals.c.metric == "unsigned_overdue")).scalar()
    assert still > 0 and counter == totals == still


def test_a_pass_is_set_based_and_counts_each_row_once(incidents, three_tier_routing, store):
    incidents.apply_events(year_of_episodes(np.random.default_rng(3), 60, 0, 30))
    statements = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        first = incidents.escalate_overdue(at(40 * DAY))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    opened = len(incidents.list())
    assert (first.escalated, first.reminded) == (opened, opened)  # every carrier's row, once
    # no statement per row: a fixed number, whatever the rows (the 60 carriers' rows and those escalated)
    assert len(statements) < 40, len(statements)
    again = incidents.escalate_overdue(at(40 * DAY))  # the same instant: nothing new to count or send
    assert (again.escalated, again.reminded) == (0, 0)
    assert_kpis_exact(incidents, at(40 * DAY))


def test_the_level_table_counts_a_raised_incidents_rows_where_they_were_pushed(incidents, three_tier_routing):
    """Incidents raised after they opened (an upgrade routes them again at the new level) and
    lowered again: each recipient row counts at the level it was pushed at, each incident at the
    level it opened at — in the rollup as in `kpis_exact`, through passes and signatures, and no
    level row says more overdue than pushed (before, a row's push and its overdue fell under two
    levels)."""
    from tests.incidents.helpers import ev

    rng = np.random.default_rng(5)
    events = []
    for k, start in enumerate(np.sort(rng.uniform(0, 60 * DAY, 90))):
        subject, rule, opened = f"VEH-{k % 11:04d}", ("speeding", "offline", "fatigue")[k % 3], int(rng.integers(2, 5))
        events.append(ev("open", float(start), subject=subject, rule=rule, severity=opened))
        if k % 2 == 0:  # raised a level, half of those lowered again later
            events.append(ev("update", float(start), subject=subject, rule=rule, severity=opened - 1,
                             evidence={"k": k}))
            if k % 4 == 0:
                events.append(ev("update", float(start), subject=subject, rule=rule, severity=opened,
                                 evidence={"k": k, "again": True}))
        events.append(ev("close", float(start), float(start) + 30, subject=subject, rule=rule, severity=opened))
    incidents.apply_events(events)
    assert_kpis_exact(incidents, at(10 * DAY))
    incidents.escalate_overdue(at(30 * DAY))
    signing = pushed_to(incidents, "ENT-C").iloc[::2]
    incidents.sign(signing["incident_id"].tolist(), "ENT-C", "Li", at=at(31 * DAY))
    for now in (at(90 * DAY), at(30 * DAY), at(5 * DAY)):
        assert_kpis_exact(incidents, now)
    table = incidents.kpis(by="level", now=at(90 * DAY))
    assert (table["overdue"] <= table["pushed"]).all(), table
    assert table["incidents"].sum() == len(incidents.list())


def _rollup(store) -> dict:
    """Both rollup tables' counters (without those that came back to zero), as sorted tuples."""
    with store.engine.connect() as connection:
        return {table.name: sorted(tuple(row) for row in connection.execute(sa.select(table)).all() if row[-1] != 0)
                for table in (incident_kpis, incident_kpi_totals)}


def test_a_rebuilt_rollup_equals_the_one_kept_change_by_change(incidents, three_tier_routing, store):
    """`rebuild_kpis` recomputes the rollup from the records: equal, counter by counter, to the one
    the apply, the handling calls and the escalation passes kept — through quick closes, reopens,
    raised and lowered levels, late and on-time signatures, a false alarm, escalations — and a
    rollup lost or counted otherwise is put right."""
    from tests.incidents.helpers import ev

    rng = np.random.default_rng(11)
    events = []
    for k, start in enumerate(np.sort(rng.uniform(0, 20 * DAY, 120))):
        subject, rule, opened = f"VEH-{k % 9:04d}", ("speeding", "offline", "fatigue")[k % 3], int(rng.integers(2, 5))
        length = 2.0 if k % 5 == 0 else 30.0  # a fifth closed within the quick-close time
        events.append(ev("open", float(start), subject=subject, rule=rule, severity=opened))
        if k % 3 == 0:
            events.append(ev("update", float(start), subject=subject, rule=rule, severity=opened - 1,
                             evidence={"k": k}))
        events.append(ev("close", float(start), float(start) + length, subject=subject, rule=rule, severity=opened))
        if k % 7 == 0:  # the same again 5 min after: a reopen of the incident
            again = float(start) + length + 5
            events += episode(again, again + 20, subject=subject, rule=rule, severity=opened)
    incidents.apply_events(sorted(events, key=lambda e: (e.at or e.end or e.start, e.phase != "open")))
    incidents.escalate_overdue(at(5 * DAY))
    pending = pushed_to(incidents, "ENT-C")
    incidents.sign(pending["incident_id"].iloc[::2].tolist(), "ENT-C", "Li", at=at(6 * DAY))
    signed = pending["incident_id"].iloc[::2].tolist()
    incidents.dispose(signed[::3], "ENT-C", "Li", "checked", "note", "false_alarm", at=at(6 * DAY + 30))
    incidents.dispose(signed[1::3], "ENT-C", "Li", "checked", "note", "resolved", at=at(6 * DAY + 90))
    incidents.escalate_overdue(at(30 * DAY))
    district = pushed_to(incidents, "DEPT-D330203")
    incidents.sign(district["incident_id"].iloc[::3].tolist(), "DEPT-D330203", "Wang", at=at(31 * DAY))
    kept = _rollup(store)
    counted = {metric for _, _, _, metric, _, _ in kept["incident_kpis"]}
    assert {"incidents", "pushed", "signed", "disposed", "sign_s", "dispose_s", "signed_late", "unsigned_overdue",
            "escalated", "false_alarms", "quick_closes", "reopens"} <= counted  # every kind of counter made
    assert incidents.rebuild_kpis() == len(kept["incident_kpis"])
    assert _rollup(store) == kept
    with store.engine.begin() as connection:  # lost, or counted otherwise: put right
        connection.execute(incident_kpi_totals.delete())
        connection.execute(incident_kpis.update().where(incident_kpis.c.metric == "pushed").values(n=incident_kpis.c.n + 3))
    incidents.rebuild_kpis()
    assert _rollup(store) == kept
    assert_kpis_exact(incidents, at(40 * DAY))
