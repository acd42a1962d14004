"""Rule events in the store, on both backends (the `store` / `store_url` fixtures of conftest.py):
the events table of migration 0002, write_events / read_events / newest_event_time, and the
upgrade of a database made at 0001."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pandas.testing import assert_frame_equal

from data import schema
from data.store import (
    EVENT_FRAME_COLUMNS,
    SchemaBehindError,
    Store,
    StoreError,
    _alembic_config,
    _create_engine,
    events_from_frame,
)
from spatial.h3cells import cells_for_points
from spatial.model import Event, PingBatch
from tests.test_store import make_world

T0 = pd.Timestamp("2026-11-02T01:00:00Z")


def _event(rule="speeding", subject="VEH-0001", phase="open", start_min=0.0, end_min=None, *, lon=121.55,
           lat=29.87, severity=2, evidence=None, episode=None) -> Event:
    start = T0 + pd.Timedelta(minutes=start_min)
    end = None if end_min is None else T0 + pd.Timedelta(minutes=end_min)
    return Event(
        rule=rule,
        subject_id=subject,
        episode_id=episode or f"{rule}:{subject}:{int(start.value // 1_000_000)}",
        phase=phase,  # type: ignore[arg-type]
        start=start,
        end=end,
        lon=lon,
        lat=lat,
        severity=severity,
        evidence={} if evidence is None else evidence,
    )


def _all(store: Store) -> pd.DataFrame:
    return store.read_events()


# --- the table ---------------------------------------------------------------------------------


def _diff_table(diff) -> str | None:
    """The table an autogenerate diff is about (other tables that merely have an `events` column,
    such as the delivery subscriptions, are not this test's business)."""
    if isinstance(diff, list):  # column modifications come grouped
        return _diff_table(diff[0])
    op, *args = diff
    if op in ("add_table", "remove_table"):
        return args[0].name
    if op in ("add_index", "remove_index"):
        return args[0].table.name
    if op in ("add_column", "remove_column"):
        return args[1]
    if op.startswith("modify_"):
        return args[1]
    return None


def test_events_table_matches_the_declaration(store):
    inspector = sa.inspect(store.engine)
    columns = [c["name"] for c in inspector.get_columns("events")]
    assert columns == [c.name for c in schema.events.columns]
    assert columns[:13] == [
        "seq", "rule", "subject_id", "episode_id", "phase", "start_time", "end_time", "event_time",
        "lon", "lat", "severity", "evidence", "recorded_at",
    ]
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("events")}
    assert indexes["ix_events_event_time"] == ["event_time"]
    assert indexes["ix_events_subject_id_event_time"] == ["subject_id", "event_time"]
    assert indexes["ix_events_rule_event_time"] == ["rule", "event_time"]
    assert indexes["ix_events_episode_id"] == ["episode_id"]

    with store.engine.connect() as connection:
        # migration 0002 and data/schema.py agree about the events table (autogenerate sees no
        # difference; the GiST index is PostgreSQL-only by design)
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs = [
            d for d in compare_metadata(context, schema.metadata)
            if _diff_table(d) == "events" and not (store.dialect == "sqlite" and "ix_events_geometry" in repr(d))
        ]
        assert diffs == []
        if store.dialect == "sqlite":
            types = {r[1]: r[2] for r in connection.exec_driver_sql("PRAGMA table_info(events)")}
            assert (types["seq"], types["event_time"], types["evidence"], types["geometry"]) == (
                "INTEGER", "BIGINT", "TEXT", "BLOB"
            )
            sql = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'events'").scalar()
            assert "PRIMARY KEY AUTOINCREMENT" in sql  # seq is never reused, even after deletes
            return
        geometry = connection.exec_driver_sql(
            "SELECT type || ':' || srid FROM geometry_columns WHERE f_table_name = 'events'"
        ).scalar()
        assert geometry == "POINT:4326"
        types = dict(
            connection.exec_driver_sql(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
            ).all()
        )
        assert types["evidence"] == "jsonb"
        assert types["event_time"] == types["start_time"] == "timestamp with time zone"
        gist = connection.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'events' AND indexname = 'ix_events_geometry'"
        ).scalar()
        assert "USING gist (geometry)" in gist


# --- round trip ----------------------------------------------------------------------------------


RICH_EVIDENCE = {
    "speed_kmh": np.float64(87.5),
    "limit_kmh": np.int64(60),
    "over": np.bool_(True),
    "ratio": np.float32(0.5),
    "missing": np.nan,
    "infinite": np.inf,
    "place": {"name": "镇海炼化 储罐区", "distance_m": np.float64(12.25), "kinds": ("school", "hospital")},
    "speeds": np.array([61.0, np.nan, 63.5]),
    "grid": np.arange(4, dtype="int32").reshape(2, 2),
    "series": pd.Series([1.5, np.nan]),
    "since": pd.Timestamp("2026-11-02T09:00:00+08:00"),
    "at": np.datetime64("2026-11-02T01:02:03.456"),
    "not_yet": pd.NaT,
    "na": pd.NA,
    "day": dt.date(2026, 11, 2),
    "nested": [{"a": [1, [2, {"b": None}]]}, "文本"],
    7: "an int key",
    "numpy_text": np.str_("浙B·12345"),
    "zero_d": np.array(3.25),
    "big": 2**63 + 1,
}
RICH_EVIDENCE_AS_JSON = {
    "speed_kmh": 87.5,
    "limit_kmh": 60,
    "over": True,
    "ratio": 0.5,
    "missing": None,
    "infinite": None,
    "place": {"name": "镇海炼化 储罐区", "distance_m": 12.25, "kinds": ["school", "hospital"]},
    "speeds": [61.0, None, 63.5],
    "grid": [[0, 1], [2, 3]],
    "series": [1.5, None],
    "since": "2026-11-02T09:00:00+08:00",
    "at": "2026-11-02T01:02:03.456000+00:00",
    "not_yet": None,
    "na": None,
    "day": "2026-11-02",
    "nested": [{"a": [1, [2, {"b": None}]]}, "文本"],
    "7": "an int key",
    "numpy_text": "浙B·12345",
    "zero_d": 3.25,
    "big": 2**63 + 1,
}


def test_events_round_trip_with_rich_evidence(store):
    opening = _event("stop_near_sensitive_site", "VEH-浙B·0001", "open", 0, evidence=RICH_EVIDENCE)
    opening = dataclasses.replace(opening, start=opening.start + pd.Timedelta(microseconds=123_456))
    update = dataclasses.replace(opening, phase="update", severity=1, evidence={"level": "高高"})
    closing = dataclasses.replace(
        opening, phase="close", end=T0 + pd.Timedelta(minutes=42), lon=np.float64(121.6), lat=29.9,
        evidence={"duration_s": np.float64(2520.0)},
    )
    nowhere = _event("feed_outage", "FEED", "open", 5, lon=np.nan, lat=np.nan, severity=np.int64(2))
    events = [opening, update, closing, nowhere]

    before = pd.Timestamp.now(tz="UTC")
    assert store.write_events(events) == 4
    after = pd.Timestamp.now(tz="UTC")
    got = _all(store)

    assert list(got.columns) == EVENT_FRAME_COLUMNS
    assert got["seq"].dtype == np.int64 and got["severity"].dtype == np.int64
    for column in ("start", "end", "event_time", "recorded_at"):
        assert isinstance(got[column].dtype, pd.DatetimeTZDtype) and str(got[column].dt.tz) == "UTC", column
    # ordered by event_time then seq: the close (at its end, 01:42) comes after the outage (01:05)
    assert got["episode_id"].tolist() == [opening.episode_id] * 2 + [nowhere.episode_id, opening.episode_id]
    assert got["phase"].tolist() == ["open", "update", "open", "close"]
    assert got["seq"].tolist() == [1, 2, 4, 3]
    assert got["event_time"].tolist() == [opening.start, opening.start, nowhere.start, closing.end]
    assert got["start"].iloc[0] == T0 + pd.Timedelta(microseconds=123_456)  # microseconds kept
    assert got["end"].isna().tolist() == [True, True, True, False]
    assert (got["recorded_at"] >= before.floor("us")).all() and (got["recorded_at"] <= after).all()
    assert got["recorded_at"].nunique() == 1  # one write, one instant
    assert got["evidence"].iloc[0] == RICH_EVIDENCE_AS_JSON
    assert got["evidence"].iloc[1] == {"level": "高高"}
    assert got["subject_id"].iloc[0] == "VEH-浙B·0001"

    back = events_from_frame(got)
    expected = [
        dataclasses.replace(opening, evidence=RICH_EVIDENCE_AS_JSON),
        update,
        dataclasses.replace(closing, lon=121.6, evidence={"duration_s": 2520.0}),
    ]
    assert back[:2] + back[3:] == expected
    assert np.isnan(back[2].lon) and np.isnan(back[2].lat) and back[2].end is None
    assert dataclasses.replace(back[2], lon=0.0, lat=0.0) == dataclasses.replace(nowhere, lon=0.0, lat=0.0)

    # the point columns follow lon/lat; an unknown position leaves them NULL
    with store.engine.connect() as connection:
        if store.dialect == "postgresql":
            rows = connection.exec_driver_sql(
                "SELECT seq, ST_AsBinary(geometry), ST_SRID(geometry), h3_cell FROM events ORDER BY seq"
            ).all()
            assert {r[2] for r in rows if r[1] is not None} == {4326}
        else:
            rows = connection.exec_driver_sql("SELECT seq, geometry, 4326, h3_cell FROM events ORDER BY seq").all()
    by_seq = got.set_index("seq")
    for seq, wkb, _, cell in rows:
        lon, lat = by_seq.loc[seq, "lon"], by_seq.loc[seq, "lat"]
        if np.isnan(lon):
            assert wkb is None and cell is None
        else:
            point = shapely.from_wkb(bytes(wkb))
            assert (point.x, point.y) == (lon, lat)
            assert cell == cells_for_points([lon], [lat])[0]


def test_write_events_of_nothing(store):
    assert store.write_events([]) == 0
    assert store.write_events(iter([])) == 0
    assert store.newest_event_time() is None
    empty = _all(store)
    assert empty.empty and list(empty.columns) == EVENT_FRAME_COLUMNS
    assert isinstance(empty["event_time"].dtype, pd.DatetimeTZDtype)
    assert events_from_frame(empty) == []


# --- filters and order ---------------------------------------------------------------------------


def _many_events() -> list[Event]:
    """Three rules, three subjects, times on a 10-minute grid with ties; written in two calls
    out of time order so seq order and event_time order differ."""
    rng = np.random.default_rng(7)
    rules = ["speeding", "route_deviation", "point_level"]
    subjects = ["VEH-0001", "VEH-0002", "MP-0001"]
    events = []
    for k in range(60):  # a handful of staged events, not a hot path
        rule, subject = rules[k % 3], subjects[(k // 3) % 3]
        start = float(rng.integers(0, 12)) * 10
        if k % 4 == 3:
            events.append(_event(rule, subject, "close", start, start + float(rng.integers(0, 5)) * 10,
                                 episode=f"{rule}:{subject}:{k}", evidence={"k": k}))
        else:
            events.append(_event(rule, subject, "open" if k % 4 else "update", start, severity=1 + k % 4,
                                 episode=f"{rule}:{subject}:{k}", evidence={"k": k}))
    return events


def test_read_events_filters_and_order(store):
    events = _many_events()
    assert store.write_events(events[30:]) == 30
    assert store.write_events(events[:30]) == 30
    everything = _all(store)
    assert len(everything) == 60
    assert sorted(everything["seq"]) == list(range(1, 61))
    expected_order = everything.sort_values(["event_time", "seq"], ignore_index=True)
    assert_frame_equal(everything, expected_order)
    assert not everything["seq"].is_monotonic_increasing  # the order is by time, not by seq
    assert everything["event_time"].duplicated().any()  # ties exist, broken by seq
    # event_time: the end for a close, the start otherwise
    closes = everything["phase"] == "close"
    assert (everything.loc[closes, "event_time"] == everything.loc[closes, "end"]).all()
    assert (everything.loc[~closes, "event_time"] == everything.loc[~closes, "start"]).all()
    k = everything["evidence"].map(lambda e: e["k"])
    assert sorted(k) == list(range(60))
    assert (everything["seq"] == np.where(k >= 30, k - 29, k + 31)).all()  # seq = order of recording

    def check(got: pd.DataFrame, mask) -> int:
        want = everything[np.asarray(mask, dtype=bool)].reset_index(drop=True)
        assert_frame_equal(got, want)
        return len(want)

    since, until = T0 + pd.Timedelta(minutes=30), T0 + pd.Timedelta(minutes=70)
    assert (everything["event_time"] == since).any() and (everything["event_time"] == until).any()
    t = everything["event_time"]
    assert 0 < check(store.read_events(since=since), t >= since) < 60  # inclusive
    assert 0 < check(store.read_events(until=until), t < until) < 60  # exclusive
    assert 0 < check(store.read_events(since=since, until=until), (t >= since) & (t < until)) < 60
    check(store.read_events(since=since.tz_convert("Asia/Shanghai").to_pydatetime()), t >= since)
    check(store.read_events(since=since, until=since), np.zeros(60))
    check(store.read_events(after_seq=45), everything["seq"] > 45)
    check(store.read_events(after_seq=0), np.ones(60))
    check(store.read_events(rule="speeding"), everything["rule"] == "speeding")
    check(store.read_events(rule=["speeding", "point_level"]), everything["rule"] != "route_deviation")
    check(store.read_events(rule=[]), np.zeros(60))
    check(store.read_events(subject_id="VEH-0002"), everything["subject_id"] == "VEH-0002")
    assert 0 < check(
        store.read_events(since=since, rule=["route_deviation"], subject_id={"VEH-0001", "MP-0001"}, after_seq=10),
        (t >= since) & (everything["rule"] == "route_deviation")
        & everything["subject_id"].isin(["VEH-0001", "MP-0001"]) & (everything["seq"] > 10),
    ) < 60
    # limit: the LAST rows of the order, i.e. the newest, still in ascending order
    assert_frame_equal(store.read_events(limit=7), everything.iloc[-7:].reset_index(drop=True))
    assert_frame_equal(
        store.read_events(until=until, rule="speeding", limit=3),
        everything[(t < until) & (everything["rule"] == "speeding")].iloc[-3:].reset_index(drop=True),
    )
    assert store.read_events(limit=0).empty
    assert_frame_equal(store.read_events(limit=1000), everything)

    assert store.newest_event_time() == t.max()
    assert store.newest_event_time().tzinfo is not None


def test_newest_event_time_counts_a_close_at_its_end(store):
    store.write_events([_event("speeding", "VEH-0001", "open", 50)])
    assert store.newest_event_time() == T0 + pd.Timedelta(minutes=50)
    store.write_events([_event("offline", "VEH-0002", "close", 10, 90)])  # opened earlier, closed later
    assert store.newest_event_time() == T0 + pd.Timedelta(minutes=90)
    store.write_events([_event("fatigue", "VEH-0003", "open", 60)])  # recorded later, but not newer
    assert store.newest_event_time() == T0 + pd.Timedelta(minutes=90)
    assert str(store.newest_event_time().tz) == "UTC"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": dt.datetime(2026, 11, 2)}, "since: .* not a timezone-aware time"),
        ({"until": "yesterday"}, "until: not a time"),
        ({"since": T0, "until": T0 - pd.Timedelta(seconds=1)}, "until .* is before since"),
        ({"after_seq": -1}, "after_seq must be a non-negative integer"),
        ({"after_seq": 1.5}, "after_seq must be a non-negative integer"),
        ({"limit": -3}, "limit must be a non-negative integer"),
        ({"limit": True}, "limit must be a non-negative integer"),
        ({"rule": 5}, "rule must be a string or a collection of strings"),
    ],
)
def test_read_events_refuses_bad_arguments(store, kwargs, message):
    with pytest.raises(StoreError, match=message):
        store.read_events(**kwargs)


# --- all or nothing ------------------------------------------------------------------------------


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


def _bad_events() -> dict[str, tuple[Event | object, str]]:
    good = _event("speeding", "VEH-0009", "open", 1, episode="speeding:VEH-0009:bad")
    label = r"event 2 \(rule 'speeding', episode 'speeding:VEH-0009:bad'\)"
    cyclic: dict = {}
    cyclic["self"] = cyclic
    return {
        "object in evidence": (
            dataclasses.replace(good, evidence={"place": {"nearby": [1, _Opaque()]}}),
            label + r": evidence\['place'\]\['nearby'\]\[1\] is a _Opaque \(<opaque>\), which JSON cannot hold",
        ),
        "set in evidence": (
            dataclasses.replace(good, evidence={"rules": {"a"}}), label + r": evidence\['rules'\] is a set"
        ),
        "bytes in evidence": (dataclasses.replace(good, evidence={"raw": b"\x01"}), r"evidence\['raw'\] is a bytes"),
        "decimal in evidence": (
            dataclasses.replace(good, evidence={"q": decimal.Decimal("1.5")}), r"evidence\['q'\] is a Decimal"
        ),
        "naive time in evidence": (
            dataclasses.replace(good, evidence={"at": dt.datetime(2026, 11, 2, 9)}), r"evidence\['at'\] is a naive"
        ),
        "tuple key": (dataclasses.replace(good, evidence={(1, 2): "x"}), r"has the key \(1, 2\); keys must be strings"),
        "NUL in evidence": (dataclasses.replace(good, evidence={"s": "a\x00b"}), r"evidence\['s'\] holds a NUL"),
        "evidence that contains itself": (dataclasses.replace(good, evidence=cyclic), "nests too deep"),
        "evidence not a dict": (dataclasses.replace(good, evidence=[1, 2]), label + ": evidence must be a dict"),
        "unknown phase": (dataclasses.replace(good, phase="reopen"), label + ": phase 'reopen' is not one of"),
        "naive start": (
            dataclasses.replace(good, start=pd.Timestamp("2026-11-02T01:00")),
            label + ": start: .* not a timezone-aware",
        ),
        "close without end": (dataclasses.replace(good, phase="close"), label + ": a close needs its end time"),
        "end before start": (
            dataclasses.replace(good, phase="close", end=good.start - pd.Timedelta(seconds=1)), "is before start"
        ),
        "severity 0": (dataclasses.replace(good, severity=0), label + ": severity must be an integer 1"),
        "severity as float": (dataclasses.replace(good, severity=2.0), "severity must be an integer"),
        "severity as bool": (dataclasses.replace(good, severity=True), "severity must be an integer"),
        "longitude out of range": (dataclasses.replace(good, lon=200.0), label + r": lon/lat \(200.0, 29.87\)"),
        "half a position": (dataclasses.replace(good, lat=np.nan), "are not a WGS-84 position"),
        "infinite latitude": (dataclasses.replace(good, lat=np.inf), "are not a WGS-84 position"),
        "empty subject": (dataclasses.replace(good, subject_id=""), label + ": subject_id must be a non-empty string"),
        "numeric rule": (dataclasses.replace(good, rule=7), "rule must be a non-empty string"),
        "not an event": ({"rule": "speeding"}, r"event 2 .*expected a spatial.model.Event, got dict"),
    }


@pytest.mark.parametrize("case", list(_bad_events()))
def test_write_events_is_all_or_nothing(store, case):
    kept = [_event("speeding", "VEH-0001", "open", 0)]
    assert store.write_events(kept) == 1
    bad, message = _bad_events()[case]
    batch = [_event("speeding", "VEH-0002", "open", 2), _event("offline", "VEH-0003", "close", 0, 3), bad,
             _event("fatigue", "VEH-0004", "open", 4)]
    with pytest.raises(StoreError, match=message):
        store.write_events(batch)
    got = _all(store)
    assert got["episode_id"].tolist() == [kept[0].episode_id]  # nothing of the refused batch
    assert store.write_events(batch[:2]) == 2  # the store still takes good events afterwards
    assert len(_all(store)) == 3


def test_write_events_wants_a_list_of_events(store):
    with pytest.raises(StoreError, match="write_events needs a list of Events, got Event"):
        store.write_events(_event())  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="write_events needs a list of Events, got int"):
        store.write_events(3)  # type: ignore[arg-type]


# --- migration 0002 over a database made at 0001 --------------------------------------------------


def test_upgrade_from_0001_adds_events_and_keeps_the_data(store_url):
    # The world and pings are written at head (the store writes today's columns), then the schema
    # is taken back to 0001: its data must survive every migration up again.
    world = make_world()
    day0 = int(pd.Timestamp("2024-05-01T00:00Z").value // 1_000_000)
    pings = PingBatch.from_arrays(
        ["VEH-0001", "VEH-浙B·0006", "VEH-0001"], [day0 + 5, day0 + 60_000, day0 + 86_400_000 + 7],
        [121.5, 121.6, 121.7], [29.8, 29.9, 30.0], speed_kmh=[10.0, np.nan, 30.0],
    )
    window = (pd.Timestamp("2024-05-01T00:00Z"), pd.Timestamp("2024-05-03T00:00Z"))
    with Store.open(store_url, upgrade=True) as store:
        store.replace_world(world)
        assert store.write_pings(pings) == 3
        pings_before = store.read_pings(*window)
        assert len(pings_before) == 3
        with store.engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0001")
        assert store.current_revision() == "0001"
        assert "events" not in sa.inspect(store.engine).get_table_names()

    head = Store.head_revision()
    behind = rf"database at revision 0001, hazmap needs {head}: run `hazmap db upgrade`"
    with pytest.raises(SchemaBehindError, match=behind):
        Store.open(store_url)

    with Store.open(store_url, upgrade=True) as store:
        assert store.current_revision() == head
        assert_frame_equal(store.read_pings(*window), pings_before)
        # the tables 0004 adds (departments, routing) went with the downgrade and come back empty
        assert store.counts() == {**world.counts(), "departments": 0, "routing": 0}
        assert store.write_events([_event(), _event("offline", "VEH-0002", "close", 0, 5)]) == 2
        assert store.read_events()["seq"].tolist() == [1, 2]
    with Store.open(store_url) as store:  # at head now: opens without upgrading
        assert len(store.read_events(rule="offline")) == 1

        # and back: 0002's downgrade drops the events, nothing else
        with store.engine.begin() as connection:
            command.downgrade(_alembic_config(connection), "0001")
        assert "events" not in sa.inspect(store.engine).get_table_names()
        assert_frame_equal(store.read_pings(*window), pings_before)


def test_an_update_s_own_time_is_its_event_time_and_comes_back(store):
    """An update may speak for its own instant (point_level: the level-2 band crossed hours into
    the episode): stored as event_time, read back as `at`; one outside its episode is refused."""
    opening = _event("point_level", "MP-000001", "open", 0, severity=2)
    update = dataclasses.replace(opening, phase="update", severity=1, at=opening.start + pd.Timedelta(hours=3))
    assert store.write_events([opening, update]) == 2
    got = _all(store)
    assert got["event_time"].tolist() == [opening.start, opening.start + pd.Timedelta(hours=3)]
    assert events_from_frame(got) == [opening, update]
    early = dataclasses.replace(update, at=opening.start - pd.Timedelta(minutes=1))
    with pytest.raises(StoreError, match="an update's time .* is outside its episode"):
        store.write_events([early])
    assert len(_all(store)) == 2
