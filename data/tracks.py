"""Track files in, event files out (for `hazmap rules run`).

`read_tracks(path)` reads a CSV or Parquet file with the columns
`vehicle_id, time, lon, lat[, speed_kmh, heading, alarm, arrival_time]` (time as UTC ISO-8601
text, an offset or `Z` allowed, or epoch seconds; a Parquet timestamp column also works) into a
`PingBatch` in file order, which the engine takes as arrival order. `arrival_time` (same
formats, blank where unknown) is when a gateway received the ping: the offline rule then judges
silence by it; a file without it keeps judging by the pings' own times. Anything it cannot read
raises one `TrackFileError` naming the row (1-based file row: a CSV's header is row 1, its
first ping row 2; a Parquet file's first ping is row 1) and the column. Coordinates are only
checked for being numbers: fixes that are out of range are the cleaning stage's to drop and
count.

`write_events(events, path)` writes the Event fields as columns, in the format the extension
names (.csv, .parquet, .jsonl), atomically: the file appears complete or not at all.
`write_tracks` writes a `PingBatch` in the format `read_tracks` reads.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spatial.model import Event, PingBatch

TRACK_COLUMNS = ("vehicle_id", "time", "lon", "lat")
OPTIONAL_TRACK_COLUMNS = ("speed_kmh", "heading", "alarm", "arrival_time")
# event_time: the instant the event speaks for (an open its start, an update its own time, a close
# its end), as the events table keeps it; a file without it (older) gets it from start and end
EVENT_COLUMNS = ("rule", "subject_id", "episode_id", "phase", "start", "end", "lon", "lat", "severity", "evidence",
                 "event_time")
TRACK_SUFFIXES = (".csv", ".parquet")
EVENT_SUFFIXES = (".csv", ".parquet", ".jsonl")
# epoch seconds beyond this are not a time pandas can hold (year 2262)
_MAX_EPOCH_S = 9.2e9
_ALARM_MAX = 2**32 - 1


class TrackFileError(ValueError):
    """A track file that cannot be read; names the file, row and column when they are known."""

    def __init__(self, path: Path | str, what: str, *, row: int | None = None, column: str | None = None):
        self.path = Path(path)
        self.row = row
        self.column = column
        where = "".join([f", row {row}" if row is not None else "", f", column {column!r}" if column else ""])
        super().__init__(f"{self.path.name}{where}: {what}")


# -- reading ----------------------------------------------------------------------------------


def read_tracks(path: Path | str) -> PingBatch:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TRACK_SUFFIXES:
        raise TrackFileError(path, f"unknown extension {path.suffix!r}: a track file is .csv or .parquet")
    if not path.is_file():
        raise TrackFileError(path, "no such file")
    if suffix == ".csv":
        frame, first_row = _read_csv(path), 2
    else:
        frame, first_row = _read_parquet(path), 1
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in TRACK_COLUMNS if c not in frame.columns]
    if missing:
        raise TrackFileError(path, f"missing column(s) {', '.join(missing)} (a track file has "
                                   f"{', '.join(TRACK_COLUMNS)}[, {', '.join(OPTIONAL_TRACK_COLUMNS)}])",
                             row=1 if suffix == ".csv" else None, column=missing[0])
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1} & set(TRACK_COLUMNS
                                                                                             + OPTIONAL_TRACK_COLUMNS))
    if duplicated:
        raise TrackFileError(path, "column appears more than once", row=1 if suffix == ".csv" else None,
                             column=duplicated[0])
    frame = frame.reset_index(drop=True)
    rows = np.arange(len(frame)) + first_row
    parse = _Parser(path, rows)
    n = len(frame)
    return PingBatch.from_arrays(
        vehicle_id=parse.vehicle_ids(frame["vehicle_id"]),
        epoch_ms=parse.times(frame["time"]),
        lon=parse.numbers(frame["lon"], "lon", required=True),
        lat=parse.numbers(frame["lat"], "lat", required=True),
        speed_kmh=parse.numbers(frame["speed_kmh"], "speed_kmh", low=0.0) if "speed_kmh" in frame
        else np.full(n, np.nan),
        heading=parse.numbers(frame["heading"], "heading", low=0.0, high=360.0) if "heading" in frame
        else np.full(n, np.nan),
        alarm=parse.alarms(frame["alarm"]) if "alarm" in frame else np.zeros(n, "uint32"),
        arrival_ms=parse.times(frame["arrival_time"], "arrival_time", optional=True) if "arrival_time" in frame
        else None,
    )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # every cell as text, nothing turned into NaN: the parser below says what is wrong
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
        if len(header) == len(frame.columns):  # pandas renames a repeated name to name.1: undo that
            frame.columns = header
        return frame
    except pd.errors.EmptyDataError:
        raise TrackFileError(path, "the file is empty (no header row)", row=1) from None
    except pd.errors.ParserError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise TrackFileError(path, f"not a well-formed CSV ({exc})".replace("\n", " "),
                             row=int(line.group(1)) if line else None) from None
    except UnicodeDecodeError as exc:
        raise TrackFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        raise TrackFileError(path, f"not a readable Parquet file ({type(exc).__name__}: {exc})") from None


class _Parser:
    """Column parsers that check whole columns at once and report the first bad row."""

    def __init__(self, path: Path, rows: np.ndarray):
        self.path = path
        self.rows = rows

    def fail(self, bad: np.ndarray, column: str, what, raw: pd.Series) -> None:
        if not bad.any():
            return
        first = int(np.flatnonzero(bad)[0])
        others = int(bad.sum()) - 1
        more = f" ({others} more row(s) like it)" if others else ""
        raise TrackFileError(self.path, what(raw.iloc[first]) + more, row=int(self.rows[first]), column=column)

    @staticmethod
    def blank(raw: pd.Series) -> np.ndarray:
        text = raw.astype("string").str.strip()
        return (raw.isna() | text.isna() | (text == "")).to_numpy(bool)

    def vehicle_ids(self, raw: pd.Series) -> np.ndarray:
        blank = self.blank(raw)
        self.fail(blank, "vehicle_id", lambda v: "empty vehicle id", raw)
        return raw.astype("string").str.strip().to_numpy(dtype=object)

    def numbers(self, raw: pd.Series, column: str, *, required: bool = False,
                low: float | None = None, high: float | None = None) -> np.ndarray:
        blank = self.blank(raw)
        if required:
            self.fail(blank, column, lambda v: "empty (a number is required)", raw)
        value = pd.to_numeric(raw, errors="coerce").to_numpy("float64") if not pd.api.types.is_bool_dtype(raw) \
            else np.full(len(raw), np.nan)
        self.fail(np.isnan(value) & ~blank, column, lambda v: f"{_show(v)} is not a number", raw)
        if low is not None or high is not None:
            lo = -np.inf if low is None else low
            hi = np.inf if high is None else high
            with np.errstate(invalid="ignore"):
                outside = ~np.isnan(value) & ~((value >= lo) & (value <= hi))
            bounds = f">= {lo:g}" if high is None else f"between {lo:g} and {hi:g}"
            self.fail(outside, column, lambda v: f"{_show(v)} is not {bounds}", raw)
        return value

    def alarms(self, raw: pd.Series) -> np.ndarray:
        value = self.numbers(raw, "alarm", low=0.0, high=float(_ALARM_MAX))
        fractional = ~np.isnan(value) & (value != np.floor(np.nan_to_num(value)))
        self.fail(fractional, "alarm", lambda v: f"{_show(v)} is not a whole number (JT/T 808 alarm bits)", raw)
        return np.nan_to_num(value, nan=0.0).astype("uint32")

    def times(self, raw: pd.Series, what: str = "time", optional: bool = False) -> np.ndarray:
        """Epoch ms; with `optional`, a blank cell is -1 (unknown) instead of an error."""
        if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw):
            stamps = pd.to_datetime(raw, utc=True)  # a naive Parquet timestamp is UTC
            if not optional:
                self.fail(stamps.isna().to_numpy(), what, lambda v: "empty time", raw)
            return np.where(stamps.isna().to_numpy(), PingBatch.NO_ARRIVAL,
                            stamps.dt.as_unit("ms").astype("int64").fillna(0).to_numpy("int64"))
        blank = self.blank(raw)
        if not optional:
            self.fail(blank, what, lambda v: "empty time", raw)
        seconds = pd.to_numeric(raw, errors="coerce").to_numpy("float64") \
            if not pd.api.types.is_bool_dtype(raw) else np.full(len(raw), np.nan)
        numeric = ~np.isnan(seconds)
        with np.errstate(invalid="ignore"):
            self.fail(numeric & ~(np.abs(seconds) < _MAX_EPOCH_S), what,
                      lambda v: f"{_show(v)} is out of range as epoch seconds", raw)
        ms = np.zeros(len(raw), "int64")
        ms[numeric] = np.floor(seconds[numeric] * 1000.0).astype("int64")
        ms[blank] = PingBatch.NO_ARRIVAL  # only reached with `optional`
        text = ~numeric & ~blank
        if text.any():
            stamps = pd.to_datetime(raw[text].astype("string").str.strip(), format="ISO8601", utc=True,
                                    errors="coerce")
            bad = np.zeros(len(raw), bool)
            bad[text] = stamps.isna().to_numpy()
            self.fail(bad, what, lambda v: f"{_show(v)} is neither a UTC ISO-8601 time nor epoch seconds", raw)
            ms[text] = stamps.dt.floor("ms").dt.as_unit("ms").astype("int64").to_numpy()
        return ms


def _show(value: Any) -> str:
    text = repr(value if not isinstance(value, str) else value.strip())
    return text if len(text) <= 40 else text[:37] + "..."


# -- writing ----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Evidence values as plain JSON: numpy scalars and arrays unwrapped, times as ISO-8601,
    NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Index, pd.Series)):
        return [_jsonable(v) for v in list(value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if value is None or isinstance(value, str):
        return value
    if value is pd.NaT or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    return str(value)


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else pd.Timestamp(ts).tz_convert("UTC").isoformat()


def events_frame(events: Iterable[Event]) -> pd.DataFrame:
    """Events as a frame with EVENT_COLUMNS; start/end as UTC timestamps (ms), evidence as dicts."""
    events = list(events)
    frame = pd.DataFrame({
        "rule": pd.Series([e.rule for e in events], dtype=object),
        "subject_id": pd.Series([e.subject_id for e in events], dtype=object),
        "episode_id": pd.Series([e.episode_id for e in events], dtype=object),
        "phase": pd.Series([e.phase for e in events], dtype=object),
        "start": pd.to_datetime(pd.Series([e.start for e in events], dtype=object), utc=True).dt.as_unit("ms"),
        "end": pd.to_datetime(pd.Series([e.end for e in events], dtype=object), utc=True).dt.as_unit("ms"),
        "lon": pd.Series([e.lon for e in events], dtype="float64"),
        "lat": pd.Series([e.lat for e in events], dtype="float64"),
        "severity": pd.Series([e.severity for e in events], dtype="int64"),
        "evidence": pd.Series([_jsonable(e.evidence) for e in events], dtype=object),
        "event_time": pd.to_datetime(pd.Series([e.end if e.phase == "close" else e.start if e.at is None else e.at
                                                for e in events], dtype=object), utc=True).dt.as_unit("ms"),
    })
    return frame[list(EVENT_COLUMNS)]


def write_events(events: Iterable[Event], path: Path | str) -> Path:
    """Write events to `path` (.csv, .parquet or .jsonl) atomically; returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EVENT_SUFFIXES:
        raise ValueError(f"{path.name}: unknown extension {path.suffix!r}; events are written as "
                         f"{', '.join(EVENT_SUFFIXES)}")
    frame = events_frame(events)
    evidence_text = [json.dumps(e, ensure_ascii=False, allow_nan=False, sort_keys=True) for e in frame["evidence"]]
    if suffix == ".parquet":
        out = frame.assign(evidence=pd.Series(evidence_text, dtype=object))

        def write(tmp: Path) -> None:
            out.to_parquet(tmp, index=False)
    elif suffix == ".csv":
        out = frame.assign(start=[_iso(t) for t in frame["start"]],
                           end=[None if pd.isna(t) else _iso(t) for t in frame["end"]],
                           event_time=[_iso(t) for t in frame["event_time"]],
                           evidence=pd.Series(evidence_text, dtype=object))

        def write(tmp: Path) -> None:
            out.to_csv(tmp, index=False, encoding="utf-8")
    else:
        lines = []
        for record in frame.to_dict("records"):
            record["start"] = _iso(record["start"])
            record["end"] = None if pd.isna(record["end"]) else _iso(record["end"])
            record["event_time"] = _iso(record["event_time"])
            lines.append(json.dumps(_jsonable(record), ensure_ascii=False, allow_nan=False))
        text = "".join(line + "\n" for line in lines)

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")
    _atomically(path, write)
    return path


def read_events(path: Path | str) -> pd.DataFrame:
    """An event file written by `write_events` back as `events_frame` gives it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        frame = pd.read_json(path, lines=True, dtype=False)
        if not len(frame):
            return events_frame([])
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype={"rule": str, "subject_id": str, "episode_id": str, "phase": str,
                                         "start": str, "end": str, "event_time": str, "evidence": str},
                            keep_default_na=False)
        frame["end"] = frame["end"].replace("", None)
    else:
        raise ValueError(f"{path.name}: unknown extension {path.suffix!r}")
    if suffix != ".jsonl":
        frame["evidence"] = [json.loads(text) for text in frame["evidence"]]
    frame["start"] = pd.to_datetime(frame["start"], utc=True).dt.as_unit("ms")
    frame["end"] = pd.to_datetime(frame["end"], utc=True).dt.as_unit("ms")
    if "event_time" in frame.columns:
        frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True).dt.as_unit("ms")
    else:  # a file from before event_time: an update speaks for its start
        frame["event_time"] = frame["end"].where(frame["phase"] == "close", frame["start"])
    frame["lon"] = frame["lon"].astype("float64")
    frame["lat"] = frame["lat"].astype("float64")
    frame["severity"] = frame["severity"].astype("int64")
    for c in ("rule", "subject_id", "episode_id", "phase"):
        frame[c] = frame[c].astype(object)
    return frame[list(EVENT_COLUMNS)]


def write_tracks(pings: PingBatch, path: Path | str) -> Path:
    """Write pings as a track file (.csv or .parquet) that `read_tracks` reads back, atomically.
    Times as UTC ISO-8601 with milliseconds; the status bits are not part of the format; the
    arrival times are written (blank where unknown) when any is known."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TRACK_SUFFIXES:
        raise ValueError(f"{path.name}: unknown extension {path.suffix!r}; tracks are .csv or .parquet")
    frame = pd.DataFrame({
        "vehicle_id": pings.vehicle_id,
        "time": pd.to_datetime(pings.epoch_ms, unit="ms", utc=True),
        "lon": pings.lon, "lat": pings.lat, "speed_kmh": pings.speed_kmh, "heading": pings.heading,
        "alarm": pings.alarm.astype("int64"),
    })
    times = ["time"]
    if pings.has_arrival:
        frame["arrival_time"] = pd.to_datetime(np.where(pings.arrival_ms >= 0, pings.arrival_ms, np.nan), unit="ms",
                                               utc=True)
        times.append("arrival_time")
    if suffix == ".csv":
        for column in times:
            text = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").str.slice(0, 23) + "Z"
            frame[column] = text.where(frame[column].notna(), "")
        _atomically(path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8", float_format="%.17g"))
    else:
        _atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return path


def _atomically(path: Path, write) -> None:
    """Write through a temporary sibling file, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
