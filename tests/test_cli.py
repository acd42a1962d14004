"""The `hazmap` command as an operator runs it: a real process, a real SQLite store."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HAZMAP = str(Path(sys.executable).with_name("hazmap"))
WORKED_FRAME = (
    "7E 02 00 00 26 12 34 56 78 90 12 00 7D 02 00 00 00 01 00 00 00 02 00 BA 7F 0E 07 E4 F1 1C "
    "00 28 00 3C 00 00 18 10 15 10 10 10 01 04 00 00 00 64 02 02 00 7D 01 13 7E"
)


def hazmap(tmp: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZMAP_")}
    env["HAZMAP_VAR_DIR"] = str(tmp / "var")
    proc = subprocess.run([HAZMAP, *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def wait_until_serving(proc: subprocess.Popen, port: int, timeout_s: float = 180.0) -> None:
    """Until the app answers on `port`; fails with the process output if it died first."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as page:
                assert page.status == 200
                return
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, f"hazmap did not answer on port {port} within {timeout_s:.0f} s"
            time.sleep(0.5)


def test_fresh_database_is_reported_behind_with_the_fix(tmp_path):
    proc = hazmap(tmp_path, "db", "status", ok=False)
    assert proc.returncode == 2
    assert "hazmap db upgrade" in proc.stderr
    hazmap(tmp_path, "db", "upgrade")
    assert "needed" in hazmap(tmp_path, "db", "status").stdout


def test_build_export_import_export_is_identical(tmp_path):
    built = json.loads(hazmap(tmp_path, "world", "build", "--seed", "3", "--scale", "0.02").stdout)
    stats = json.loads(hazmap(tmp_path, "world", "stats", "--json").stdout)
    assert stats == built and stats["entities"] == round(7046 * 0.02)
    hazmap(tmp_path, "world", "export", "--out", "first")
    hazmap(tmp_path, "world", "import", "first")
    hazmap(tmp_path, "world", "export", "--out", "second")
    first, second = sorted((tmp_path / "first").iterdir()), sorted((tmp_path / "second").iterdir())
    assert [p.name for p in first] == [p.name for p in second] and len(first) == 14 + 2  # layers, plain tables
    assert all(filecmp.cmp(a, b, shallow=False) for a, b in zip(first, second))


def test_bad_import_names_the_problem_and_writes_nothing(tmp_path):
    hazmap(tmp_path, "world", "build", "--seed", "4", "--scale", "0.01")
    before = hazmap(tmp_path, "world", "stats", "--json").stdout
    hazmap(tmp_path, "world", "export", "--out", "good")
    lines = (tmp_path / "good" / "hazard_sources.geojson").read_text(encoding="utf-8").splitlines()
    # Break the grade of the first hazard source and drop every entity file: two problems.
    idx = next(i for i, line in enumerate(lines) if '"grade":' in line)
    feature = json.loads(lines[idx].rstrip(","))
    feature["properties"]["grade"] = "high"
    lines[idx] = json.dumps(feature, ensure_ascii=False) + ("," if lines[idx].endswith(",") else "")
    (tmp_path / "good" / "hazard_sources.geojson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "good" / "parking_lots.geojson").unlink()
    proc = hazmap(tmp_path, "world", "import", "good", ok=False)
    assert proc.returncode == 2
    assert "hazard_sources.geojson" in proc.stderr and feature["id"] in proc.stderr and "grade" in proc.stderr
    assert "parking_lots" in proc.stderr
    assert hazmap(tmp_path, "world", "stats", "--json").stdout == before


def test_bad_arguments_are_refused_clearly(tmp_path):
    proc = hazmap(tmp_path, "world", "build", "--scale", "0", ok=False)
    assert proc.returncode == 2 and "--scale" in proc.stderr
    proc = hazmap(tmp_path, "world", "import", "nowhere", "--crs", "bd09", ok=False)
    assert proc.returncode == 2 and "--crs" in proc.stderr


def test_jt808_decode_prints_the_worked_frame(tmp_path):
    decoded = json.loads(hazmap(tmp_path, "jt808", "decode", WORKED_FRAME).stdout)
    assert decoded["phone"] == "123456789012" and decoded["serial"] == 126
    assert decoded["lat"] == pytest.approx(12.222222) and decoded["lon"] == pytest.approx(132.444444)
    assert decoded["speed_kmh"] == pytest.approx(6.0) and decoded["time_utc"] == "2018-10-15T02:10:10Z"
    proc = hazmap(tmp_path, "jt808", "decode", "7E 02 00 7E", ok=False)
    assert proc.returncode == 2 and "JT/T 808" in proc.stderr


def test_full_scale_world_has_ningbos_counts(tmp_path):
    """The issue's 'done when': the real city's counts, through the real command."""
    hazmap(tmp_path, "world", "build", "--seed", "20211")
    stats = json.loads(hazmap(tmp_path, "world", "stats", "--json").stdout)
    assert stats["entities"] == 7046
    assert stats["hazard_sources"] == 371
    assert stats["monitoring_points"] == 5196
    assert stats["vehicles"] == 3419
    assert stats["active_waybills"] == 3419


def test_rules_run_over_a_track_file(tmp_path):
    """A truck parks 10 minutes on its route, then a bad file is refused with its row and column."""
    import geopandas as gpd
    import pandas as pd

    hazmap(tmp_path, "world", "build", "--seed", "5", "--scale", "0.01")
    hazmap(tmp_path, "world", "export", "--out", "world")
    waybills = gpd.read_file(tmp_path / "world" / "waybills.geojson")
    active = waybills[waybills["status"] == "active"].iloc[0]
    start = pd.Timestamp(active["planned_departure"])
    lon, lat = active.geometry.coords[0]
    times = [start + pd.Timedelta(seconds=30 * i) for i in range(25)]  # 12 minutes standing still
    pd.DataFrame({"vehicle_id": active["vehicle_id"], "time": [t.isoformat() for t in times],
                  "lon": lon, "lat": lat, "speed_kmh": 0.0}).to_csv(tmp_path / "tracks.csv", index=False)
    summary = json.loads(hazmap(tmp_path, "rules", "run", "--tracks", "tracks.csv", "--out", "events.jsonl").stdout)
    assert summary["pings"] == 25 and summary["released"] == 25
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    stops = [e for e in events if e["rule"] == "stop"]
    assert [e["phase"] for e in stops] == ["open"] and stops[0]["subject_id"] == active["vehicle_id"]

    (tmp_path / "bad.csv").write_text("vehicle_id,time,lon,lat\nVEH-1,2026-11-02T00:00:00Z,121.5,29.8\n"
                                      "VEH-1,yesterday,121.5,29.8\n")
    proc = hazmap(tmp_path, "rules", "run", "--tracks", "bad.csv", "--out", "events.csv", ok=False)
    assert proc.returncode == 2 and "row 3" in proc.stderr and "time" in proc.stderr


def test_rules_settings_list_every_threshold_with_unit_and_source(tmp_path):
    rows = json.loads(hazmap(tmp_path, "rules", "settings", "--json").stdout)
    names = {f"{r['rule']}.{r['name']}" for r in rows}
    assert {"route_deviation.corridor_m", "speeding.speed_tolerance_kmh", "stop.stop_max_diameter_m",
            "cleaning.max_plausible_kmh", "stop_near_sensitive_site.school_radius_m"} <= names
    assert all(r["source"] for r in rows)


def test_serve_stops_cleanly_on_sigterm(tmp_path):
    """A service manager's stop: the app and its gateway shut down, the process exits 143."""
    import signal
    import socket

    hazmap(tmp_path, "world", "build", "--seed", "6", "--scale", "0.005")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZMAP_")}
    env.update(HAZMAP_VAR_DIR=str(tmp_path / "var"), HAZMAP_PORT=str(port), HAZMAP_JT808_PORT="0",
               HAZMAP_JT808_STATS_PORT="0")
    proc = subprocess.Popen([HAZMAP, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_serving(proc, port, 120)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "live monitor stopped" in output
