"""The incident lifecycle on both backends: episodes into incidents (the noise window, quick
closes, several updates of one episode), the recipient state machine, deadlines, reminders and
escalation, supervision orders, the outbox and the KPIs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import data.incidents as store_module
from data.incidents import IncidentError, IncidentSettings, IncidentStore, fan_out_routing, incident_outbox, \
    incident_transitions
from spatial.incidents.levels import LEVELS, level_keys, parse_level
from spatial.incidents.lifecycle import check_transition, escalation_due
from tests.incidents.helpers import at, episode, ev

SETTINGS = IncidentSettings(sign_deadline_s=(600.0, 1200.0, 3600.0, 7200.0), reopen_window_s=600.0,
                            quick_close_s=300.0)


@pytest.fixture
def incidents(store):
    return IncidentStore(store, None, SETTINGS)


@pytest.fixture
def three_tier_routing(monkeypatch):
    """Trucks' incidents go to their carrier ENT-C; above it the district office, then the city."""
    def recipients_for(frame, world):
        return pd.DataFrame({"incident_id": frame["incident_id"], "recipient_kind": "enterprise",
                             "recipient_id": "ENT-C", "role": "carrier", "district_adcode": "330203"})

    def escalation_target(rows, world):
        up = {"ENT-C": ("DEPT-D330203", "district_office"), "DEPT-D330203": ("DEPT-EM", "emergency_management")}
        rows = rows[rows["recipient_id"].isin(list(up))]
        return pd.DataFrame({"incident_id": rows["incident_id"].to_numpy(),
                             "from_recipient_id": rows["recipient_id"].to_numpy(), "recipient_kind": "department",
                             "recipient_id": [up[r][0] for r in rows["recipient_id"]],
                             "role": [up[r][1] for r in rows["recipient_id"]], "district_adcode": "330203"})

    monkeypatch.setattr(store_module, "recipients_for", recipients_for)
    monkeypatch.setattr(store_module, "escalation_target", escalation_target)


# --- events into incidents -------------------------------------------------------------------


def test_an_episode_reopening_within_the_window_joins_the_incident(incidents):
    incidents.apply_events([*episode(0, 10), *episode(15, 30), *episode(45, 50)])  # gaps 5 min, 15 min
    listed = incidents.list().sort_values("first_time")
    assert len(listed) == 2
    joined = listed.iloc[0]
    assert (joined["episodes"], joined["state"], joined["end_time"]) == (2, "ended", at(30))
    kpis = incidents.kpis(by="rule", now=at(60)).iloc[0]
    assert (kpis["incidents"], kpis["reopens"]) == (2, 1)


def test_an_incident_closed_by_hand_is_not_reopened(incidents):
    incidents.apply_events(episode(0, 10, severity=3))
    first = incidents.list().iloc[0]["id"]
    incidents.sign([first], None, "Li", at=at(11))
    incidents.close(first, None, "Li", at=at(12))  # yellow and ended: closed once signed
    incidents.apply_events(episode(15, 30, severity=3))
    assert len(incidents.list()) == 2


def test_a_quick_unsigned_close_is_noise_and_a_signed_one_is_not(incidents):
    incidents.apply_events([*episode(0, 3), *episode(0, 4, subject="VEH-0002"), ev("open", 0, subject="VEH-0003")])
    signed = incidents.list().set_index("subject_id").loc["VEH-0003", "id"]
    incidents.sign([signed], None, "Li", at=at(1))
    incidents.apply_events([ev("close", 0, 2, subject="VEH-0003")])
    quick = incidents.list().set_index("subject_id")["quick_close"]
    assert quick.to_dict() == {"VEH-0001": True, "VEH-0002": True, "VEH-0003": False}


def test_a_young_episode_a_restart_closed_is_not_a_quick_close(incidents):
    """A restart closes an episode the replays do not reach (spatial/rules/restart.py): that close
    is the monitor's, not the rule's, so however young the episode it is not counted as noise."""
    from spatial.rules.restart import RESTART_CLOSE_REASON

    incidents.apply_events([ev("open", 0), ev("close", 0, 2, evidence={"close_reason": RESTART_CLOSE_REASON}),
                            *episode(30, 32, subject="VEH-0002")])
    quick = incidents.list().set_index("subject_id")["quick_close"].to_dict()
    assert quick == {"VEH-0001": False, "VEH-0002": True}
    assert incidents.kpis(by="rule", now=at(60)).iloc[0]["quick_closes"] == 1


def test_point_level_updates_with_one_start_all_move_the_incident(incidents):
    kw = {"rule": "point_level", "subject": "MP-000001"}
    events = [ev("open", 0, severity=2, evidence={"level": 1}, **kw),
              ev("update", 0, severity=1, evidence={"level": 2, "time": "01:02"}, **kw),
              ev("update", 0, severity=2, evidence={"level": 1, "time": "01:05"}, **kw),
              ev("update", 0, severity=1, evidence={"level": 2, "time": "01:07"}, **kw),
              ev("close", 0, 9, severity=1, evidence={"max_level": 2}, **kw)]
    first = incidents.apply_events(events[:3])
    rest = incidents.apply_events(events)  # the first three again, then the new two
    assert (first.applied, rest.applied, rest.duplicates, first.updated + rest.updated) == (3, 2, 3, 3)
    shown = incidents.show(incidents.list().iloc[0]["id"])
    assert sorted(shown["events"]["ordinal"][shown["events"]["phase"] == "update"]) == [0, 1, 2]
    row = shown["incident"]
    assert (row["peak_severity"], row["level"], row["subject_kind"]) == (1, "red", "monitoring_point")


@pytest.fixture
def red_adds_the_city(monkeypatch):
    """Every incident goes to the truck's carrier ENT-C; a red one to the city's emergency
    management DEPT-EM as well (routing rows `up to a severity`)."""
    def recipients_for(frame, world):
        rows = [(i, "enterprise", "ENT-C", "carrier") for i in frame["incident_id"]]
        rows += [(i, "department", "DEPT-EM", "emergency_management")
                 for i, level in zip(frame["incident_id"], frame["level"]) if int(level) == 1]
        return pd.DataFrame(rows, columns=["incident_id", "recipient_kind", "recipient_id", "role"]) \
            .assign(district_adcode="330203")

    monkeypatch.setattr(store_module, "recipients_for", recipients_for)


def _sent(store) -> list[dict]:
    """The outbox as the sender hands it to the channels (the routing fanned out per recipient)."""
    with store.engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(sa.select(incident_outbox).order_by(incident_outbox.c.seq))
                .mappings()]
        return fan_out_routing(connection, rows)


def test_an_upgrade_routes_the_incident_again_at_its_new_level_whatever_the_batch(incidents, store,
                                                                                 red_adds_the_city):
    """An open at blue and its upgrade to red, in one batch or in two: routed at blue when it opened
    (the carrier), at red when it rose (the city is pushed too, logged, with an outbox row of its
    own); the carrier, not yet signed, now owes red's deadline and is told; the KPI counts the
    incident at the level it opened with. A batch's bounds change nothing."""
    def events(subject):
        kw = {"rule": "point_level", "subject": subject}
        return [ev("open", 0, severity=4, evidence={"level": 1}, **kw),
                ev("update", 0, severity=1, evidence={"level": 2, "time": "01:02"}, **kw),
                ev("update", 0, severity=1, evidence={"level": 3, "time": "01:05"}, **kw)]  # no higher: no new routing
    incidents.apply_events(events("MP-000001"))  # one batch
    incidents.apply_events(events("MP-000002")[:1])  # two
    incidents.apply_events(events("MP-000002"))
    seen = {}
    for _, item in incidents.list().iterrows():
        shown = incidents.show(item["id"])
        assert shown["incident"]["level"] == "red"
        recipients = shown["recipients"]
        waits = (recipients["sign_deadline"] - recipients["pushed_at"]).dt.total_seconds()
        upgraded = recipients["upgraded_to"].astype("Int64").astype(object).where(recipients["upgraded_to"].notna(), None)
        history = shown["history"]
        seen[item["subject_id"]] = (sorted(zip(recipients["recipient_id"], waits, upgraded)),
                                    history["action"].tolist(), history["recipient_id"].tolist())
        upgrade = history[history["action"] == "upgraded"]
        assert len(upgrade) == 1 and upgrade["details"].item()["pushed"] == ["DEPT-EM"]
    assert seen["MP-000001"] == seen["MP-000002"]
    assert seen["MP-000001"][0] == [("DEPT-EM", 600.0, 1), ("ENT-C", 600.0, None)]
    assert seen["MP-000001"][1] == ["opened", "pushed", "updated", "updated", "upgraded", "pushed"]
    assert seen["MP-000001"][2][-1] == "DEPT-EM"  # the upgrade's push is logged: the routing push is ENT-C's row
    # per incident: the carrier's routing push, its notice of the upgrade, the city's own push
    sent = sorted((r["incident_id"], r["action"], r["recipient_id"]) for r in _sent(store))
    ids = sorted(incidents.list()["id"])
    assert sent == sorted((i, a, w) for i in ids for a, w in (("pushed", "ENT-C"), ("upgraded", "ENT-C"),
                                                                ("pushed", "DEPT-EM")))
    # the incidents at the level they opened with, each push at the level it was made at
    kpis = incidents.kpis(by="level", now=at(1)).set_index("level")
    assert kpis[["incidents", "pushed"]].astype(int).to_dict("index") == {"blue": {"incidents": 2, "pushed": 2},
                                                                           "red": {"incidents": 0, "pushed": 2}}
    by_department = incidents.kpis(by="department", now=at(1)).set_index("department")
    by_enterprise = incidents.kpis(by="enterprise", now=at(1)).set_index("enterprise")
    assert int(by_department.loc["DEPT-EM", "pushed"]) == 2 == int(by_enterprise.loc["ENT-C", "pushed"])
    for by in ("department", "enterprise", "district", "rule", "day"):
        fast, exact = incidents.kpis(by=by, now=at(30)), incidents.kpis_exact(by=by, now=at(30))
        assert fast[[by, "incidents", "pushed", "overdue"]].to_dict("records") \
            == exact[[by, "incidents", "pushed", "overdue"]].to_dict("records"), by


def test_a_later_upgrade_brings_forward_only_unsigned_deadlines(incidents, red_adds_the_city):
    """A blue episode, then within the noise window a red one joining it: the red routing is
    pushed at the red episode's start, the carrier's deadline (unsigned) becomes red's from then;
    once signed, a deadline is not moved, but the recipient is still told."""
    incidents.apply_events(episode(0, 1, subject="VEH-0001", severity=4) + episode(0, 1, subject="VEH-0002",
                                                                                   severity=4))
    first, second = incidents.list()["id"].tolist()
    incidents.sign([second], "ENT-C", "Li", at=at(2))
    incidents.apply_events(episode(5, None, subject="VEH-0001", severity=1) + episode(5, None, subject="VEH-0002",
                                                                                      severity=1))
    assert sorted(incidents.list()["id"].tolist()) == sorted([first, second])  # the red episodes joined
    for iid, carrier_deadline in ((first, at(15)), (second, at(120))):
        recipients = incidents.show(iid)["recipients"].set_index("recipient_id")
        assert recipients.loc["ENT-C", "sign_deadline"] == carrier_deadline
        assert recipients.loc["DEPT-EM", "pushed_at"] == at(5) and recipients.loc["DEPT-EM", "sign_deadline"] == at(15)
        assert incidents.show(iid)["incident"]["status"] == "pushed"  # a recipient has not signed
    notices = [r for r in _sent(incidents.store) if r["action"] == "upgraded"]
    assert sorted((r["incident_id"], r["recipient_id"], r["payload"]["level"]) for r in notices) \
        == sorted([(first, "ENT-C", "red"), (second, "ENT-C", "red")])
    # applying the same events again routes nobody again
    before = len(_sent(incidents.store))
    incidents.apply_events(episode(5, None, subject="VEH-0001", severity=1))
    assert len(_sent(incidents.store)) == before


def test_an_upgrade_counts_the_new_wait_from_a_later_push(incidents, red_adds_the_city):
    """A recipient an escalation reached after the upgrade's event time (the events applied late)
    owes the new level's wait from its push, not a deadline before it was asked."""
    incidents.apply_events(episode(0, 1, subject="VEH-0001", severity=4))
    assert incidents.escalate_overdue(at(150)).escalated == 1  # the carrier, past blue's 2 h: up to the city
    incidents.apply_events(episode(5, None, subject="VEH-0001", severity=1))  # red, joining, applied late
    recipients = incidents.show(incidents.list()["id"].item())["recipients"].set_index("recipient_id")
    assert recipients.loc["DEPT-EM", "pushed_at"] == at(150)  # reached by the escalation, not pushed again
    assert recipients.loc["DEPT-EM", "sign_deadline"] == at(160)  # red's 10 min from its push
    assert recipients.loc["ENT-C", "sign_deadline"] == at(15)  # red's 10 min from the red episode


def test_an_upgrade_waits_from_the_update_s_own_time_not_its_episode_s_start(incidents, store, red_adds_the_city):
    """A point's level rising three hours into its episode (point_level's update carries its own
    time): the city is pushed then, owes red's 10 min from then — not from the episode's start,
    which would make it overdue (and escalated) the moment it is asked. The same through the
    events table (event_time) as from a list of events, in one batch or two."""
    def events(subject):
        kw = {"rule": "point_level", "subject": subject}
        return [ev("open", 0, severity=4, evidence={"level": 1}, **kw),
                dataclasses.replace(ev("update", 0, severity=1, evidence={"level": 2}, **kw), at=at(180))]
    incidents.apply_events(events("MP-000001"))
    store.write_events(events("MP-000002")[:1])
    incidents.apply_stored_events()
    store.write_events(events("MP-000002")[1:])
    incidents.apply_stored_events()
    assert len(incidents.list()) == 2
    for iid in incidents.list()["id"]:
        shown = incidents.show(iid)
        recipients = shown["recipients"].set_index("recipient_id")
        assert (recipients.loc["DEPT-EM", "pushed_at"], recipients.loc["DEPT-EM", "sign_deadline"]) == (at(180), at(190))
        assert recipients.loc["ENT-C", "sign_deadline"] == at(120)  # blue's 2 h from the open: earlier, kept
        history = shown["history"].set_index("action")
        assert history.loc["updated", "at"] == at(180) and history.loc["upgraded", "at"] == at(180)
    assert incidents.escalate_overdue(at(185)).escalated == 2  # the carriers, past blue's 2 h; the city is not due
    recipients = pd.concat([incidents.show(i)["recipients"] for i in incidents.list()["id"]])
    assert recipients.loc[recipients["recipient_id"] == "DEPT-EM", "escalated_at"].isna().all()
    # an update's time outside its episode is refused, naming the event
    late = dataclasses.replace(ev("update", 0, 30, severity=1, rule="point_level", subject="MP-000003"), at=at(40))
    with pytest.raises(IncidentError, match="event 1: an update's event_time is outside its episode"):
        incidents.apply_events([ev("open", 0, rule="point_level", subject="MP-000003"), late])


# --- recipients ----------------------------------------------------------------------------------


def test_sign_dispose_close_in_order_with_who_and_when(incidents):
    incidents.apply_events(episode(0, 10, severity=1))
    iid = incidents.list().iloc[0]["id"]
    with pytest.raises(IncidentError, match="sign for it first"):
        incidents.dispose(iid, None, "Li", "stopped the truck", "called", "resolved", at=at(2))
    incidents.sign([iid], "DEPT-EM", "Li", at=at(2))
    with pytest.raises(IncidentError, match="needs a disposal note"):
        incidents.dispose(iid, None, "Li", "stopped the truck", None, "resolved", at=at(3))
    with pytest.raises(IncidentError, match="dispose of it first"):  # red: closed after its disposal
        incidents.close(iid, None, "Li", at=at(3))
    incidents.dispose(iid, None, "Li", "stopped the truck", "driver warned", "false_alarm", at=at(4))
    incidents.close(iid, None, "Zhang", note="done", at=at(5))
    shown = incidents.show(iid)
    assert shown["incident"]["status"] == "closed" and shown["incident"]["false_alarm"]
    mine = shown["history"][shown["history"]["recipient_id"] == "DEPT-EM"]
    assert mine[["action", "from_state", "to_state", "actor"]].values.tolist() == [
        ["pushed", None, "pushed", "system"], ["signed", "pushed", "signed", "Li"],
        ["disposed", "signed", "disposed", "Li"], ["closed", "disposed", "closed", "Zhang"]]
    assert mine["at"].tolist()[1:] == [at(2), at(4), at(5)]
    before = len(shown["history"])
    with pytest.raises(IncidentError, match="cannot dispose an incident that is closed"):
        incidents.dispose(iid, None, "Li", "again", "again", "resolved", at=at(6))
    assert len(incidents.show(iid)["history"]) == before


def test_signing_several_is_all_or_nothing(incidents):
    incidents.apply_events([ev("open", 0), ev("open", 1, subject="VEH-0002")])
    ids = incidents.list()["id"].tolist()
    with pytest.raises(IncidentError, match="no incident INC-nope"):
        incidents.sign([*ids, "INC-nope"], None, "Li", at=at(2))
    assert set(incidents.list()["status"]) == {"pushed"}
    done = incidents.sign(ids, None, "Li", at=at(2))
    assert len(done) == 2 and set(incidents.list()["status"]) == {"signed"}
    assert incidents.inbox("DEPT-EM")["state"].tolist() == ["signed", "signed"]


def test_overdue_recipients_are_reminded_and_escalated_up_the_chain(incidents, three_tier_routing):
    incidents.apply_events([ev("open", 0, severity=2)])  # orange: 20 min to sign
    iid = incidents.list().iloc[0]["id"]
    assert incidents.escalate_overdue(at(19)).escalated == 0
    first = incidents.escalate_overdue(at(21))
    assert (first.escalated, first.reminded) == (1, 1)
    again = incidents.escalate_overdue(at(25))  # the carrier is not escalated twice, nor reminded yet
    assert (again.escalated, again.reminded) == (0, 0)
    later = incidents.escalate_overdue(at(42))  # a period after the reminder: the carrier again; district overdue
    assert (later.escalated, later.reminded) == (1, 2)
    recipients = incidents.show(iid)["recipients"].set_index("recipient_id")
    assert recipients["tier"].to_dict() == {"DEPT-D330203": 1, "DEPT-EM": 2, "ENT-C": 0}
    assert recipients.loc["ENT-C", "reminders"] == 2
    incidents.sign([iid], "ENT-C", "carrier duty officer", at=at(43))
    quiet = incidents.escalate_overdue(at(70))  # the city is not escalated further (max tier) but reminded
    assert (quiet.escalated, quiet.reminded) == (0, 2)
    assert incidents.list().iloc[0]["escalations"] == 2
    by_enterprise = incidents.kpis(by="enterprise", now=at(70)).set_index("enterprise")
    assert by_enterprise.loc["ENT-C", ["pushed", "signed", "overdue", "escalated"]].tolist() == [1, 1, 1, 1]


def test_a_department_supervises_the_enterprise_and_the_order_goes_out(incidents, three_tier_routing, store):
    incidents.apply_events([ev("open", 0)])
    iid = incidents.list().iloc[0]["id"]
    with pytest.raises(IncidentError, match="from a department"):
        incidents.supervise(iid, "ENT-C", "Wang", at(60), "hurry", at=at(1))
    assert incidents.supervise(iid, "DEPT-EM", "Wang", at(60), "report by noon", at=at(1)) == 1
    row = incidents.show(iid)["recipients"].iloc[0]
    assert (row["supervised_by"], row["supervision_deadline"]) == ("DEPT-EM", at(60))
    with store.engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(sa.select(incident_outbox).order_by(incident_outbox.c.seq))
                .mappings()]
        sent = fan_out_routing(connection, rows)
        logged = set(connection.execute(sa.select(incident_transitions.c.id)).scalars())
    history = incidents.show(iid)["history"]
    # the routing is one row naming the opened transition; the sender fans it out per recipient
    assert [(r["action"], r["recipient_id"]) for r in rows] == [("routed", None), ("supervised", "ENT-C")]
    assert rows[0]["transition_id"] == history.loc[history["action"] == "opened", "id"].item()
    assert [(r["action"], r["recipient_id"]) for r in sent] == [("pushed", "ENT-C"), ("supervised", "ENT-C")]
    assert pd.Timestamp(sent[0]["payload"]["sign_deadline"]).tz_localize("UTC") == row["sign_deadline"]
    # every delivery names a transition of the history: the push at routing is the recipient row's
    # (listed by show, not logged), the supervision order is logged
    assert [r["transition_id"] in set(history["id"]) for r in sent] == [True, True]
    assert [r["transition_id"] in logged for r in sent] == [False, True]
    assert history["action"].tolist() == ["opened", "pushed", "supervised"]
    assert len({r["delivery_id"] for r in sent}) == 2


def test_kpis_per_department_rule_level_and_day(incidents):
    incidents.apply_events([ev("open", 0, severity=1), ev("open", 0, subject="VEH-0002", severity=3),
                            ev("open", 0, subject="VEH-0003", severity=3)])
    ids = incidents.list().set_index("subject_id")["id"]
    incidents.sign([ids["VEH-0001"]], None, "Li", at=at(5))
    incidents.sign([ids["VEH-0002"]], None, "Li", at=at(15))
    incidents.dispose(ids["VEH-0002"], None, "Li", "checked", None, "false_alarm", at=at(30))
    dept = incidents.kpis(by="department", now=at(120)).iloc[0]
    assert dept["department"] == "DEPT-EM"
    assert dept[["pushed", "signed", "disposed", "false_alarms"]].tolist() == [3, 2, 1, 1]
    assert dept["sign_median_s"] == pytest.approx(300.0, rel=0.03)  # nearest rank of 5 and 15 min, binned
    assert dept["sign_p90_s"] == pytest.approx(900.0, rel=0.03) and dept["handling_rate"] == pytest.approx(1 / 3)
    assert dept["overdue"] == 1  # the red one: signed at 5 min, inside its 10; VEH-0003 never signed (60 min)
    levels = incidents.kpis(by="level", now=at(120)).set_index("level")["incidents"].to_dict()
    assert levels == {"red": 1, "yellow": 2}
    assert incidents.kpis(by="day", now=at(120))["day"].tolist() == ["2026-11-02"]
    with pytest.raises(IncidentError, match="--by"):
        incidents.kpis(by="weekday")


# --- pure ---------------------------------------------------------------------------------------


def test_levels_come_from_one_table():
    assert [l.key for l in LEVELS] == ["red", "orange", "yellow", "blue"]
    assert [l.name_zh for l in LEVELS] == ["重大", "较大", "一般", "低"]
    assert level_keys([4, 1]).tolist() == ["blue", "red"]
    assert parse_level("重大") == parse_level("red") == parse_level("1") == 1
    with pytest.raises(ValueError, match="unknown level"):
        parse_level("purple")


@pytest.mark.parametrize("action, state, severity, rule_state, note, ok", [
    ("sign", "pushed", 3, "active", None, "signed"),
    ("sign", "signed", 3, "active", None, None),
    ("dispose", "signed", 2, "ended", None, None),  # orange needs a note, even when the rule closed it
    ("dispose", "signed", 3, "ended", None, "disposed"),
    ("close", "signed", 3, "ended", None, "closed"),  # yellow, rule ended: no disposal needed
    ("close", "signed", 3, "active", None, None),
    ("close", "signed", 2, "ended", None, None),
    ("close", "closed", 3, "ended", None, None),
])
def test_the_recipient_state_machine(action, state, severity, rule_state, note, ok):
    kwargs = {"severity": severity, "rule_state": rule_state, "note": note, "outcome": "resolved"}
    if ok is None:
        with pytest.raises(IncidentError):
            check_transition(action, state, **kwargs)
    else:
        assert check_transition(action, state, **kwargs) == ok


def test_escalation_due_is_per_row_and_once():
    rows = pd.DataFrame({"state": ["pushed", "pushed", "signed", "pushed"], "tier": [0, 2, 0, 0],
                         "severity": [2, 2, 2, 2], "sign_deadline": [at(20)] * 4,
                         "escalated_at": [None, None, None, at(21)], "last_reminded_at": [None, None, None, at(21)]})
    escalate, remind = escalation_due(rows, at(22), SETTINGS)
    assert escalate.tolist() == [True, False, False, False]
    assert remind.tolist() == [True, True, False, False]
    assert escalation_due(rows, at(41), SETTINGS)[1].tolist() == [True, True, False, True]
    assert np.all(~escalation_due(rows, at(19), SETTINGS)[0])


def test_the_rollup_gives_what_every_row_gives(incidents, three_tier_routing):
    """The KPI rollup kept in each transaction against the figures computed from every row."""
    rng = np.random.default_rng(4)
    events = []
    for k in range(40):
        subject = f"VEH-{k % 13:04d}"
        start = float(k * 7)
        events += episode(start, start + float(rng.integers(1, 30)), subject=subject, severity=int(rng.integers(1, 5)),
                          rule=("speeding", "offline")[k % 2])
    incidents.apply_events(events)
    ids = incidents.list()["id"].tolist()
    incidents.sign(ids[::2], "ENT-C", "Li", at=at(500))
    incidents.dispose(ids[::4], "ENT-C", "Li", "checked", "note", "false_alarm", at=at(700))
    incidents.escalate_overdue(at(600))
    incidents.sign(ids[1::4], "ENT-C", "Li", at=at(900))
    for by in ("department", "enterprise", "district", "rule", "level", "day"):
        fast, exact = incidents.kpis(by=by, now=at(1000)), incidents.kpis_exact(by=by, now=at(1000))
        counts = ["incidents", "pushed", "signed", "disposed", "overdue", "escalated", "false_alarms",
                  "quick_closes", "reopens"]
        assert fast[[by, *counts]].to_dict("records") == exact[[by, *counts]].to_dict("records"), by
        for column in ("sign_median_s", "sign_p90_s", "dispose_median_s", "dispose_p90_s"):
            assert np.allclose(fast[column], exact[column], rtol=0.03, equal_nan=True), (by, column)
