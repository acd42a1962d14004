"""Track files in and event files out: round trips, and bad files rejected naming row and column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from data.tracks import (
    TrackFileError,
    events_frame,
    read_events,
    read_tracks,
    write_events,
    write_tracks,
)
from spatial.model import Event, PingBatch
from spatial.rules.base import make_event
from tests.tracks import T0_MS, concat, track

HEADER = "vehicle_id,time,lon,lat,speed_kmh,heading,alarm\n"


def sample_pings() -> PingBatch:
    a = track("VEH-000001", [(0, 0), (100, 0), (200, 10)], speed_kmh=[12.5, np.nan, 40.0])
    b = track("VEH-000002", [(5, 5), (6, 6)], start_ms=T0_MS + 1234)
    pings = concat([a, b])
    return PingBatch.from_arrays(pings.vehicle_id, pings.epoch_ms, pings.lon, pings.lat, pings.speed_kmh,
                                 heading=[0, 90.5, np.nan, 359, 1], alarm=[0, 1, 2**31, 0, 7])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tracks_round_trip(tmp_path, suffix):
    pings = sample_pings()
    path = write_tracks(pings, tmp_path / f"tracks{suffix}")
    back = read_tracks(path)
    for column in ("vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status"):
        np.testing.assert_array_equal(getattr(back, column), getattr(pings, column), err_msg=column)
    assert not list(tmp_path.glob(".*.tmp"))


def test_times_as_iso_with_offsets_or_epoch_seconds(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "vehicle_id,time,lon,lat\n"
        "V1,2026-11-02T00:00:00Z,121.5,29.8\n"
        "V1,2026-11-02T08:00:01+08:00,121.5,29.8\n"
        "V1, 2026-11-02 00:00:02 ,121.5,29.8\n"  # naive: UTC
        "V1,1793577603,121.5,29.8\n"
        "V1,1793577603.5,121.5,29.8\n"
        "V1,2026-11-02T00:00:04.250Z,121.5,29.8\n", encoding="utf-8")
    base = int(pd.Timestamp("2026-11-02T00:00:00Z").value // 1_000_000)
    pings = read_tracks(path)
    assert list(pings.epoch_ms - base) == [0, 1000, 2000, 3000, 3500, 4250]
    assert np.isnan(pings.speed_kmh).all() and (pings.alarm == 0).all()
    assert (pings.status == PingBatch.STATUS_FIX_VALID).all()


def test_parquet_with_native_types(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"vehicle_id": [101, 102], "time": pd.to_datetime(["2026-11-02 00:00", "2026-11-02 00:01"]),
                  "lon": [121.5, 121.6], "lat": [29.8, 29.9], "extra": ["x", "y"]}).to_parquet(path)
    pings = read_tracks(path)
    assert list(pings.vehicle_id) == ["101", "102"]
    assert pings.epoch_ms[1] - pings.epoch_ms[0] == 60_000


def test_empty_track_file_with_header(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER, encoding="utf-8")
    assert len(read_tracks(path)) == 0


def test_out_of_range_coordinates_are_left_to_cleaning(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("vehicle_id,time,lon,lat\nV1,0,0,0\nV1,1,500,-95\n", encoding="utf-8")
    pings = read_tracks(path)
    assert list(pings.lon) == [0, 500] and list(pings.lat) == [0, -95]


BAD_CSV = [
    ("missing column", "vehicle_id,time,lon\nV1,0,121\n", 1, "lat", "missing column"),
    ("empty vehicle id", "vehicle_id,time,lon,lat\nV1,0,121,29\n  ,1,121,29\n", 3, "vehicle_id", "empty vehicle id"),
    ("unparsable time", "vehicle_id,time,lon,lat\nV1,0,121,29\nV1,1,121,29\nV1,2026-13-01T00:00:00Z,121,29\n", 4,
     "time", "neither a UTC ISO-8601 time nor epoch seconds"),
    ("empty time", "vehicle_id,time,lon,lat\nV1,,121,29\n", 2, "time", "empty time"),
    ("epoch out of range", "vehicle_id,time,lon,lat\nV1,1e15,121,29\n", 2, "time", "out of range"),
    ("non-numeric lon", "vehicle_id,time,lon,lat\nV1,0,121,29\nV1,1,east,29\nV1,2,x,29\n", 3, "lon",
     "'east' is not a number (1 more row(s) like it)"),
    ("empty lat", "vehicle_id,time,lon,lat\nV1,0,121,\n", 2, "lat", "empty"),
    ("negative speed", HEADER + "V1,0,121,29,-3,,\n", 2, "speed_kmh", "is not >= 0"),
    ("heading above 360", HEADER + "V1,0,121,29,10,361,\n", 2, "heading", "between 0 and 360"),
    ("fractional alarm", HEADER + "V1,0,121,29,10,1,1.5\n", 2, "alarm", "not a whole number"),
    ("alarm beyond 32 bits", HEADER + "V1,0,121,29,10,1,4294967296\n", 2, "alarm", "between 0 and"),
    ("ragged row", "vehicle_id,time,lon,lat\nV1,0,121,29\nV1,1,121,29,5,6\n", 3, None, "not a well-formed CSV"),
    ("duplicated column", "vehicle_id,time,lon,lat,lat\nV1,0,121,29,29\n", 1, "lat", "more than once"),
    ("empty file", "", 1, None, "empty"),
]


@pytest.mark.parametrize("name, text, row, column, message", BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_bad_csv_names_row_and_column(tmp_path, name, text, row, column, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TrackFileError) as info:
        read_tracks(path)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.row == row and error.column == column, str(error)
    assert message in str(error) and str(error).startswith("bad.csv")
    if row is not None:
        assert f"row {row}" in str(error)


def test_bad_parquet_row_is_one_based(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"vehicle_id": ["V1", "V1"], "time": [0, 1], "lon": [121.0, None], "lat": [29.0, 29.0]}) \
        .to_parquet(path)
    with pytest.raises(TrackFileError, match=r"row 2, column 'lon': empty"):
        read_tracks(path)


@pytest.mark.parametrize("name, content, message", [
    ("tracks.txt", b"x", "unknown extension"),
    ("tracks.parquet", b"not parquet at all", "not a readable Parquet file"),
    ("latin.csv", "vehicle_id,time,lon,lat\nV\xe9,0,1,2\n".encode("latin-1"), "not UTF-8"),
])
def test_unreadable_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TrackFileError, match=message):
        read_tracks(path)


def test_missing_file(tmp_path):
    with pytest.raises(TrackFileError, match="no such file"):
        read_tracks(tmp_path / "nope.csv")


# -- events -----------------------------------------------------------------------------------


def sample_events() -> list[Event]:
    return [
        make_event("speeding", "VEH-000001", "open", T0_MS, None, 121.5, 29.8, 2,
                   {"peak_kmh": np.float64(97.5), "limit_kmh": 80, "pings": np.int64(3), "nan": float("nan"),
                    "times": ["2026-11-02T00:00:00+00:00"], "nested": {"site": "学校"}}),
        make_event("speeding", "VEH-000001", "close", T0_MS, T0_MS + 90_000, 121.51, 29.81, 2, {"peak_kmh": 99.0}),
        make_event("point_level", "MP-000001", "update", T0_MS, None, 121.5, 29.8, 1, {"level": 2},
                   at_ms=T0_MS + 60_000),  # its own time
    ]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_events_round_trip(tmp_path, suffix):
    events = sample_events()
    path = write_events(events, tmp_path / f"events{suffix}")
    back = read_events(path)
    expected = events_frame(events)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    assert back["evidence"][0]["nan"] is None and back["evidence"][0]["nested"] == {"site": "学校"}
    assert pd.isna(back["end"][0]) and back["end"][1] == pd.Timestamp(T0_MS + 90_000, unit="ms", tz="UTC")
    assert not list(tmp_path.glob(".*.tmp"))


def test_event_file_columns_and_evidence_forms(tmp_path):
    events = sample_events()
    csv = pd.read_csv(write_events(events, tmp_path / "e.csv"))
    assert list(csv.columns) == ["rule", "subject_id", "episode_id", "phase", "start", "end", "lon", "lat",
                                 "severity", "evidence", "event_time"]
    # the instant each speaks for: the open its start, the close its end, the update its own time
    assert csv["event_time"].tolist() == ["2026-11-02T00:00:00+00:00", "2026-11-02T00:01:30+00:00",
                                          "2026-11-02T00:01:00+00:00"]
    # a file from before event_time reads with the start (the close: its end)
    old = tmp_path / "old.csv"
    csv.drop(columns="event_time").to_csv(old, index=False)
    assert read_events(old)["event_time"].tolist() == [pd.Timestamp(T0_MS + ms, unit="ms", tz="UTC")
                                                       for ms in (0, 90_000, 0)]
    assert json.loads(csv["evidence"][0])["pings"] == 3  # a JSON string in csv / parquet
    line = json.loads(write_events(events, tmp_path / "e.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert line["evidence"]["peak_kmh"] == 97.5 and line["end"] is None  # an object in jsonl
    assert line["start"] == "2026-11-02T00:00:00+00:00"


def test_no_events_still_writes_a_file(tmp_path):
    for suffix in (".csv", ".parquet", ".jsonl"):
        path = write_events([], tmp_path / f"none{suffix}")
        assert path.exists() and len(read_events(path)) == 0


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = write_events(sample_events(), tmp_path / "e.csv")
    before = path.read_bytes()

    def half_written(self, target, **kwargs):
        with open(target, "w") as fh:
            fh.write("rule,subj")  # the disk fills up mid-write
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    with pytest.raises(OSError, match="No space"):
        write_events(sample_events()[:1], path)
    assert path.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def test_unknown_event_extension(tmp_path):
    with pytest.raises(ValueError, match="unknown extension"):
        write_events(sample_events(), tmp_path / "e.xlsx")
