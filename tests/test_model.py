import numpy as np
import pandas as pd
import pytest

from spatial.model import CHILD_SPECS, LAYER_SPECS, LiveState, PingBatch, ReadingBatch, World


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
