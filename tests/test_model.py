import numpy as np
import pandas as pd
import pytest

from spatial.model import CHILD_SPECS, LAYER_SPECS, Event, LiveState, PingBatch, ReadingBatch, World


def test_every_layer_has_an_id_with_a_prefix_and_a_geometry_type():
    for spec in LAYER_SPECS.values():
        assert spec.fields[0].name == "id" and spec.id_prefix and spec.id_prefix.endswith("-")
        assert spec.geometry in {"Point", "LineString", "MultiPolygon", "Geometry"}
    prefixes = [s.id_prefix for s in LAYER_SPECS.values()]
    assert len(set(prefixes)) == len(prefixes)
    for child in CHILD_SPECS.values():
        assert child.parent in LAYER_SPECS and child.parent_key in child.columns


def test_empty_world_has_every_table_with_spec_columns():
    world = World.empty()
    for name, spec in {**LAYER_SPECS, **CHILD_SPECS}.items():
        table = world.table(name)
        assert [c for c in table.columns if c != "geometry"] == spec.columns
    assert world.counts()["active_waybills"] == 0


def test_ping_batch_rejects_ragged_columns():
    with pytest.raises(ValueError, match="lon"):
        PingBatch.from_arrays(["VEH-1", "VEH-2"], [1, 2], [121.5], [29.8, 29.9])


def test_ping_batch_defaults_mark_fix_valid_and_unknown_speed():
    batch = PingBatch.from_arrays(["VEH-1"], [1_000], [121.5], [29.8])
    assert batch.status[0] & PingBatch.STATUS_FIX_VALID
    assert np.isnan(batch.speed_kmh[0])
    assert batch.to_frame()["time"].iloc[0] == pd.Timestamp(1, unit="s", tz="UTC")


def test_live_state_keeps_the_newest_position_and_ignores_late_pings():
    live = LiveState()
    live.apply_pings(PingBatch.from_arrays(["VEH-1", "VEH-2", "VEH-1"], [2_000, 1_000, 3_000], [1, 2, 3], [4, 5, 6]))
    assert live.positions.loc["VEH-1", "lon"] == 3 and live.positions.loc["VEH-2", "lon"] == 2
    v = live.version
    live.apply_pings(PingBatch.from_arrays(["VEH-1"], [2_500], [9], [9]))  # late ping
    assert live.positions.loc["VEH-1", "lon"] == 3
    assert live.version == v + 1
    live.apply_readings(ReadingBatch.from_arrays(["MP-1", "MP-1"], [5, 4], [1.5, 0.5]))
    assert live.readings.loc["MP-1", "value"] == 1.5


def test_world_fingerprint_follows_content():
    a, b = World.empty(), World.empty()
    assert a.fingerprint() == b.fingerprint()


def _event(subject, episode, phase, severity=2, rule="speeding"):
    t = pd.Timestamp("2026-11-02 01:00", tz="UTC")
    return Event(rule, subject, episode, phase, t, t if phase == "close" else None, 121.5, 29.8, severity, {})


def test_live_state_trail_keeps_only_the_last_trail_s_behind_the_newest_ping():
    live = LiveState(trail_s=600)
    sent = []
    for minute in range(200):  # one batch a minute, two trucks, VEH-3 only now and then
        ids = ["VEH-1", "VEH-2"] + (["VEH-3"] if minute % 50 == 0 else [])
        batch = PingBatch.from_arrays(ids, [minute * 60_000] * len(ids), [1.0 + minute] * len(ids), [4] * len(ids))
        live.apply_pings(batch)
        sent.append(batch.to_frame())
        if minute in (10, 63, 64, 65, 150, 199):  # before, at and after a compaction
            everything = pd.concat(sent)
            recent = everything[everything["epoch_ms"] >= minute * 60_000 - 600_000]
            for vehicle in ("VEH-1", "VEH-3", "VEH-9"):
                trail = live.trail(vehicle)
                assert list(trail["epoch_ms"]) == sorted(recent.loc[recent["vehicle_id"] == vehicle, "epoch_ms"])
            assert len(live.trail()) == len(recent)
    assert len(live.trail("VEH-1")) == 11
    assert live.trail_rows() <= 3 * (11 + 64)  # bounded: old rows are cut at each compaction


def test_live_state_changes_since_a_version_carry_only_what_changed():
    live = LiveState()
    live.apply_pings(PingBatch.from_arrays(["VEH-1", "VEH-2"], [1_000, 1_000], [1, 2], [4, 5]))
    seen = live.version
    live.apply_pings(PingBatch.from_arrays(["VEH-2"], [2_000], [3], [6]))
    live.apply_readings(ReadingBatch.from_arrays(["MP-1"], [2_000], [0.5]))
    changes = live.changes_since(seen)
    assert list(changes.positions.index) == ["VEH-2"] and list(changes.readings.index) == ["MP-1"]
    assert changes.version == live.version
    assert len(live.changes_since(0).positions) == 2
    assert live.changes_since(live.version).positions.empty


def test_live_state_alerts_follow_open_update_and_close():
    live = LiveState()
    live.apply_events([_event("VEH-1", "a", "open", 3), _event("VEH-1", "b", "open", 2, "fatigue")])
    row = live.alerts.loc["VEH-1"]
    assert (row["open_count"], row["severity"], row["rules"]) == (2, 2, "fatigue,speeding")
    seen = live.version
    live.apply_events([_event("VEH-1", "b", "close", 2, "fatigue")])
    assert live.alerts.loc["VEH-1", "open_count"] == 1 and live.alerts.loc["VEH-1", "severity"] == 3
    live.apply_events([_event("VEH-1", "a", "update", 1)])
    assert live.alerts.loc["VEH-1", "severity"] == 1
    live.apply_events([_event("VEH-1", "a", "close")])
    changes = live.changes_since(seen)
    assert changes.alerts.loc["VEH-1", "open_count"] == 0  # a closed subject is reported, not dropped
    before = live.version
    live.apply_events([_event("VEH-9", "never-opened", "close")])  # unknown close: nothing changes
    assert live.version == before and live.open_episodes() == 0


def test_live_state_copy_is_independent():
    live = LiveState()
    live.apply_pings(PingBatch.from_arrays(["VEH-1"], [1_000], [1], [4]))
    copy = live.copy()
    live.apply_pings(PingBatch.from_arrays(["VEH-2"], [2_000], [2], [5]))
    assert list(copy.positions.index) == ["VEH-1"] and copy.version == 1 and len(copy.trail()) == 1


def test_plain_tables_have_a_prefixed_id_and_neither_geometry_nor_parent():
    from spatial.model import PLAIN_SPECS, WORLD_SPECS

    for spec in PLAIN_SPECS.values():
        assert spec.is_plain and not spec.is_layer and not spec.is_child
        assert spec.fields[0].name == "id" and spec.id_prefix and spec.id_prefix.endswith("-")
    prefixes = [s.id_prefix for s in WORLD_SPECS.values() if s.id_prefix]
    assert len(set(prefixes)) == len(prefixes)
    assert list(WORLD_SPECS) == [*LAYER_SPECS, *CHILD_SPECS, *PLAIN_SPECS]
    world = World.empty()
    assert list(world.tables()) == list(WORLD_SPECS)
    assert list(world.departments.columns) == PLAIN_SPECS["departments"].columns
    assert world.counts()["routing"] == 0
    before = world.fingerprint()
    world.routing = pd.DataFrame([{"id": "RT-1", "rule": "*", "subject_kind": "vehicle", "role": "carrier",
                                   "max_severity": None}])
    assert world.fingerprint() != before  # a routing change is a World change
