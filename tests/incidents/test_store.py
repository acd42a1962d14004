"""The incident tables of migration 0005 and the IncidentStore's exactly-once application, on
both backends (the `store` fixture)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from data import incidents as incident_tables
from data import schema
from data.incidents import IncidentError, IncidentStore
from data.store import _alembic_config
from tests.incidents.helpers import at, episode, ev


def test_migration_0005_matches_the_declared_tables(store):
    names = {t.name for t in incident_tables.TABLES}
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(context, schema.metadata) if any(n in repr(d) for n in names)]
        assert diffs == []
        cursor = connection.execute(sa.select(incident_tables.incident_cursor)).all()
    assert [tuple(r) for r in cursor] == [("events", 0, 0)]


def test_the_store_refuses_a_second_application_of_an_event_key(store):
    """The exactly-once key is the table's primary key, not only the code's bookkeeping."""
    incidents = IncidentStore(store)
    incidents.apply_events(episode(0, 10))
    row = {"rule": "speeding", "episode_start": at(0), "episode_id": ev("open", 0).episode_id, "phase": "open",
           "ordinal": 0,
           "incident_id": "INC-x", "source": "file", "applied_at": at(0), "version": 99, "position": 0}
    with pytest.raises(sa.exc.IntegrityError):
        with store.engine.begin() as connection:
            connection.execute(sa.insert(incident_tables.incident_applied).values(**row))


def test_applying_the_same_events_again_doubles_nothing(store):
    incidents = IncidentStore(store)
    events = [*episode(0, 10), ev("open", 30, severity=1, subject="VEH-0002"),
              ev("update", 30, severity=1, subject="VEH-0002", evidence={"level": 2}),
              ev("update", 30, severity=2, subject="VEH-0002", evidence={"level": 1})]
    first = incidents.apply_events(events)
    assert (first.applied, first.duplicates, first.opened, first.updated, first.closed) == (5, 0, 2, 2, 1)
    before = _counts(store)
    again = incidents.apply_events(events)
    assert (again.applied, again.duplicates) == (0, 5)
    assert _counts(store) == before
    # a later file holding only the updates (as `hazmap events --since` would) changes nothing either
    assert incidents.apply_events(events[3:]).duplicates == 2
    assert _counts(store) == before


def test_stored_events_apply_in_seq_order_once_and_move_the_cursor(store):
    incidents = IncidentStore(store)
    store.write_events(episode(0, 10))
    store.write_events([ev("open", 5, subject="VEH-0002")])
    result = incidents.apply_stored_events()
    assert (result.applied, result.opened, result.last_seq) == (3, 2, 3)
    assert incidents.last_applied_seq() == 3
    assert incidents.apply_stored_events().applied == 0
    # a second simulated day on the same store writes the same events again: seen, not doubled
    store.write_events(episode(0, 10))
    replay = incidents.apply_stored_events()
    assert (replay.applied, replay.duplicates, replay.last_seq) == (0, 2, 5)
    assert len(incidents.list()) == 2


def test_a_malformed_event_refuses_the_whole_batch(store):
    incidents = IncidentStore(store)
    bad = ev("close", 0)  # a close without its end
    with pytest.raises(IncidentError, match="event 1: a close needs its end time"):
        incidents.apply_events([ev("open", 0), bad])
    assert _counts(store)["incidents"] == 0
    # an episode's events carry its start: one that disagrees with its open's is refused, by position
    moved = dataclasses.replace(ev("close", 0, 5), start=at(1))
    with pytest.raises(IncidentError, match="event 2: start differs from the start of the episode's earlier event"):
        incidents.apply_events([ev("open", 3, subject="VEH-0002"), ev("open", 0), moved])
    assert _counts(store)["incidents"] == 0


def test_a_file_applied_in_chunks_checks_every_event_first_and_a_later_failure_keeps_what_was_applied(
        store, monkeypatch):
    """`chunk` (a file's import): a malformed event anywhere refuses them all before any write; a
    failure in a later chunk leaves the chunks before it applied, says which events were not, and
    applying the same events again applies the rest, ending where one transaction would."""
    incidents = IncidentStore(store)
    events = [*episode(0, 10), *episode(20, 30, subject="VEH-0002"), ev("open", 40, subject="VEH-0003"),
              ev("update", 40, severity=1, subject="VEH-0003", evidence={"level": 1}), ev("open", 50)]
    labels = [f"events.jsonl, line {i + 1}" for i in range(len(events))]
    with pytest.raises(IncidentError, match="line 8: a close needs its end time"):
        incidents.apply_events([*events, ev("close", 60)], labels=[*labels, "events.jsonl, line 8"], chunk=2)
    assert _counts(store)["incident_applied"] == 0

    real_apply, calls = IncidentStore._apply, []

    def failing_third(self, connection, frame, source, version):
        calls.append(len(frame))
        if len(calls) == 3:
            raise sa.exc.OperationalError("INSERT …", {}, Exception("disk I/O error"))
        return real_apply(self, connection, frame, source, version)

    monkeypatch.setattr(IncidentStore, "_apply", failing_third)
    with pytest.raises(IncidentError, match=r"events.jsonl, line 5 to events.jsonl, line 6 were not applied "
                                            r"\(OperationalError.*disk I/O error.*\); the 4 event\(s\) before them are"):
        incidents.apply_events(events, labels=labels, chunk=2)
    assert calls == [2, 2, 2] and _counts(store)["incident_applied"] == 4
    monkeypatch.setattr(IncidentStore, "_apply", real_apply)
    again = incidents.apply_events(events, labels=labels, chunk=2)
    assert (again.applied, again.duplicates) == (3, 4)
    chunked = incidents.list().drop(columns=["id", "version"]).sort_values(["subject_id", "first_time"])

    whole = IncidentStore(store)
    with store.engine.begin() as connection:  # the same events in one transaction on empty tables
        for table in reversed(incident_tables.TABLES):
            if table is not incident_tables.incident_cursor:
                connection.execute(sa.delete(table))
    assert whole.apply_events(events).applied == len(events)
    pd.testing.assert_frame_equal(
        whole.list().drop(columns=["id", "version"]).sort_values(["subject_id", "first_time"]).reset_index(drop=True),
        chunked.reset_index(drop=True))


def test_an_episode_is_known_by_its_start_across_batches(store):
    """The applied keys are found by (episode start, episode id): a later batch's close of the same
    episode is known (no second incident); a close carrying another start is another episode's."""
    incidents = IncidentStore(store)
    incidents.apply_events([ev("open", 0)])
    assert (incidents.apply_events([ev("close", 0, 5)]).closed, len(incidents.list())) == (1, 1)
    assert incidents.apply_events(episode(0, 5)).duplicates == 2
    other = dataclasses.replace(ev("close", 0, 9), start=at(2))
    result = incidents.apply_events([other])
    assert (result.applied, result.opened, result.closed, len(incidents.list())) == (1, 1, 1, 2)


def _counts(store) -> dict[str, int]:
    with store.engine.connect() as connection:
        return {t.name: connection.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                for t in incident_tables.TABLES}


def test_migration_0009_keeps_every_applied_key_and_exactly_once_across_it(store, monkeypatch):
    """0009 rebuilds incident_applied on a new key (SQLite: a new table): the keys applied before it
    are all there after it, and after a downgrade and an upgrade again, and still refuse a replay.
    Its downgrade turns each routing row of the outbox back into a row per recipient."""
    def two_recipients(frame, world):
        n = len(frame)
        return pd.DataFrame({"incident_id": [*frame["incident_id"]] * 2, "recipient_kind": ["enterprise"] * 2 * n,
                             "recipient_id": ["ENT-C"] * n + ["ENT-D"] * n, "role": ["carrier"] * 2 * n,
                             "district_adcode": ["330203"] * 2 * n})

    monkeypatch.setattr(incident_tables, "recipients_for", two_recipients)
    incidents = IncidentStore(store)
    events = [*episode(0, 10), ev("open", 30, subject="VEH-0002"),
              ev("update", 30, severity=3, subject="VEH-0002", evidence={"level": 2})]  # lower: no rerouting
    assert incidents.apply_events(events).applied == 4
    keys = sorted(tuple(r) for r in _applied_keys(store))
    assert len(keys) == 4
    assert _outbox(store) == [("routed", None)] * 2  # two incidents, two recipients each: one routing row each
    for target in ("0008", "head"):
        with store.engine.begin() as connection:
            (command.downgrade if target == "0008" else command.upgrade)(_alembic_config(connection), target)
        assert sorted(tuple(r) for r in _applied_keys(store)) == keys, target
        primary = sa.inspect(store.engine).get_pk_constraint("incident_applied")["constrained_columns"]
        assert primary == (["rule", "episode_id", "phase", "ordinal"] if target == "0008"
                           else ["episode_start", "episode_id", "rule", "phase", "ordinal"])
        # a row per recipient since the downgrade (the upgrade leaves them so: the sender reads both)
        assert _outbox(store) == [("pushed", "ENT-C")] * 2 + [("pushed", "ENT-D")] * 2, target
    again = incidents.apply_events(events)
    assert (again.applied, again.duplicates) == (0, 4)
    assert sorted(tuple(r) for r in _applied_keys(store)) == keys
    # the order they were applied in survives the rebuilds ("close" sorts before "open" by key)
    first = next(k[-1] for k in keys if k[2] == "close")
    assert incidents.show(first)["events"]["phase"].tolist() == ["open", "close"]


def _applied_keys(store):
    t = incident_tables.incident_applied
    with store.engine.connect() as connection:
        return connection.execute(sa.select(t.c.rule, t.c.episode_id, t.c.phase, t.c.ordinal, t.c.digest,
                                            t.c.incident_id)).all()


def _outbox(store):
    with store.engine.connect() as connection:
        return sorted(map(tuple, connection.exec_driver_sql("SELECT action, recipient_id FROM incident_outbox").all()),
                      key=repr)


def test_migration_0011_gives_every_applied_key_its_episode_start_and_keeps_exactly_once(store):
    """0011 leads the applied keys with the episode's start, filled for the keys applied before it:
    from the stored event (seq), else the episode's opened / reopened transition; a downgrade keys
    the table as 0009 did. Replays double nothing on either side, and the applied order survives."""
    incidents = IncidentStore(store)
    from_file = [*episode(0, 5), *episode(8, 12)]  # the second joins the first (reopened)
    assert incidents.apply_events(from_file).reopened == 1
    store.write_events([*episode(30, 40, subject="VEH-0002")])
    assert incidents.apply_stored_events().applied == 2
    starts = {(e.episode_id, e.phase): e.start for e in [*from_file, *episode(30, 40, subject="VEH-0002")]}
    keys = sorted(tuple(r) for r in _applied_keys(store))
    for target in ("0010", "head"):
        with store.engine.begin() as connection:
            (command.downgrade if target == "0010" else command.upgrade)(_alembic_config(connection), target)
        primary = sa.inspect(store.engine).get_pk_constraint("incident_applied")["constrained_columns"]
        assert primary == (["episode_id", "rule", "phase", "ordinal"] if target == "0010"
                           else ["episode_start", "episode_id", "rule", "phase", "ordinal"])
        assert sorted(tuple(r) for r in _applied_keys(store)) == keys, target
    t = incident_tables.incident_applied
    with store.engine.connect() as connection:
        filled = {(e, p): s for e, p, s in connection.execute(sa.select(t.c.episode_id, t.c.phase, t.c.episode_start))}
    assert filled == starts
    again = incidents.apply_events(from_file)
    assert (again.applied, again.duplicates) == (0, 4)
    store.write_events([*episode(30, 40, subject="VEH-0002")])
    assert incidents.apply_stored_events().duplicates == 2
    assert sorted(tuple(r) for r in _applied_keys(store)) == keys
    first = incidents.list(limit=5)["id"].tolist()
    assert len(first) == 2
    assert all(incidents.show(i)["events"]["phase"].tolist()[0] == "open" for i in first)


def test_migration_0012_gives_incidents_and_rows_the_level_they_count_at(store, monkeypatch):
    """0012 fills each incident's opened_severity from its `opened` transition and each recipient
    row's pushed_severity (an upgrade's rows their upgraded_to, rows routed at opening the opening
    level); after it the level table equals the one from every row."""
    from data import incidents as store_module
    from tests.incidents.test_lifecycle import SETTINGS

    def recipients_for(frame, routing):  # the carrier always; emergency management from red on
        red = frame[frame["level"] <= 1]
        return pd.concat([
            pd.DataFrame({"incident_id": frame["incident_id"], "recipient_kind": "enterprise", "recipient_id": "ENT-C",
                          "role": "carrier", "district_adcode": "330203"}),
            pd.DataFrame({"incident_id": red["incident_id"], "recipient_kind": "department", "recipient_id": "DEPT-EM",
                          "role": "emergency_management", "district_adcode": "330203"})], ignore_index=True)

    monkeypatch.setattr(store_module, "recipients_for", recipients_for)
    incidents = IncidentStore(store, None, SETTINGS)
    raised = [ev("open", 0, severity=3), ev("update", 0, severity=1, evidence={"raised": True}), ev("close", 0, 9)]
    plain = episode(30, 40, subject="VEH-0002", severity=2)
    incidents.apply_events(raised[:1])
    incidents.apply_events([*raised[1:], *plain])
    r, t = incident_tables.incident_recipients, incident_tables.incidents

    def levels():
        with store.engine.connect() as connection:
            return (dict(connection.execute(sa.select(t.c.subject_id, t.c.opened_severity)).all()),
                    sorted(connection.execute(sa.select(r.c.incident_id, r.c.recipient_id, r.c.pushed_severity,
                                                        r.c.upgraded_to)).all()))
    written = levels()
    assert written[0] == {"VEH-0001": 3, "VEH-0002": 2}
    assert {p for _, _, p, u in written[1] if u is not None} == {1}  # the upgrade's rows at the raised level
    for target in ("0011", "head"):
        with store.engine.begin() as connection:
            (command.downgrade if target == "0011" else command.upgrade)(_alembic_config(connection), target)
    assert levels() == written  # the backfill gives what the apply wrote
    counts = ["level", "incidents", "pushed", "signed", "overdue", "quick_closes"]
    fast, exact = incidents.kpis(by="level", now=at(100)), incidents.kpis_exact(by="level", now=at(100))
    assert fast[counts].to_dict("records") == exact[counts].to_dict("records")
    assert fast.set_index("level").at["red", "pushed"] == 1  # the upgrade's push, at red; the carrier's at yellow
