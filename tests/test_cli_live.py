"""The live commands as an operator runs them: `hazmap events`, `hazmap simulate`, `hazmap demo`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request

import pandas as pd
import pytest

from data.store import Store
from spatial.model import Event
from tests.test_cli import HAZMAP, hazmap, wait_until_serving


def _event(rule, subject, phase, start, end=None, severity=2):
    return Event(rule, subject, f"{rule}:{subject}:{start}", phase, pd.Timestamp(start, tz="UTC"),
                 None if end is None else pd.Timestamp(end, tz="UTC"), 121.5, 29.8, severity, {"why": "测试"})


@pytest.fixture
def stored_events(tmp_path):
    hazmap(tmp_path, "db", "upgrade")
    with Store.open(f"sqlite:///{tmp_path / 'var' / 'hazmap.sqlite'}") as store:
        store.write_events([
            _event("speeding", "VEH-000001", "open", "2026-11-02 01:00"),
            _event("speeding", "VEH-000001", "close", "2026-11-02 01:00", "2026-11-02 01:10"),
            _event("offline", "VEH-000002", "open", "2026-11-02 02:00", severity=3),
            _event("point_level", "MP-000001", "open", "2026-11-02 03:00", severity=1),
        ])
    return tmp_path


def test_events_lists_everything_oldest_first_in_local_time(stored_events):
    out = hazmap(stored_events, "events").stdout.splitlines()
    assert len(out) == 4
    assert "2026-11-02 09:00:00" in out[0] and "speeding" in out[0] and "open" in out[0]
    assert "MP-000001" in out[-1] and "11:00:00" in out[-1]


def test_events_since_a_duration_counts_back_from_the_newest_event(stored_events):
    out = hazmap(stored_events, "events", "--since", "90m").stdout.splitlines()
    assert [line.split()[4] for line in out] == ["offline", "point_level"]  # 01:30 UTC onwards


def test_events_filters_and_json(stored_events):
    rows = [json.loads(line) for line in hazmap(stored_events, "events", "--rule", "speeding", "--json",
                                                 "--since", "2026-11-02T09:00+08:00").stdout.splitlines()]
    assert [r["phase"] for r in rows] == ["open", "close"] and rows[0]["evidence"] == {"why": "测试"}
    only = hazmap(stored_events, "events", "--subject", "VEH-000002").stdout.splitlines()
    assert len(only) == 1 and "offline" in only[0]


def test_events_refuses_a_bad_time(stored_events):
    proc = hazmap(stored_events, "events", "--since", "yesterday-ish", ok=False)
    assert proc.returncode == 2 and "--since" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _decode(array_b64: str, dtype: str):
    import base64

    import numpy as np

    return np.frombuffer(base64.b64decode(array_b64), dtype=dtype)


def test_demo_builds_the_world_and_brings_the_city_to_life(tmp_path):
    """The README's first command on a laptop without a broker: world built, simulator driving
    through the app's own JT/T 808 gateway, readings fed in-process (said once in the log),
    trucks moving on the live route, staged violations in `hazmap events`, SIGTERM stops it."""
    import signal

    from data.reference import load_chemicals

    port, dead_broker = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZMAP_")}
    env.update(HAZMAP_VAR_DIR=str(tmp_path / "var"), HAZMAP_PORT=str(port), HAZMAP_JT808_PORT="0",
               HAZMAP_JT808_STATS_PORT="0", HAZMAP_WORLD_SCALE="0.02", HAZMAP_SIM_TIME_FACTOR="300",
               HAZMAP_MQTT_URL=f"mqtt://127.0.0.1:{dead_broker}",
               HAZMAP_AUTH_REQUIRED="false")  # the wall open as a kiosk: this test reads its live routes
    proc = subprocess.Popen([HAZMAP, "demo"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_serving(proc, port, 180)
        deadline = time.monotonic() + 180
        with Store.open(f"sqlite:///{tmp_path / 'var' / 'hazmap.sqlite'}") as store:
            version = store.load_world(chemicals=load_chemicals()).fingerprint()
        base = f"http://127.0.0.1:{port}/live/{version}"
        static = _get_json(f"{base}/static.json")
        first = _get_json(f"{base}/state?since=0")
        while first["newest_ms"] is None:  # the simulator's first slice is on its way
            assert time.monotonic() < deadline, "no truck reported"
            time.sleep(0.5)
            first = _get_json(f"{base}/state?since=0")

        def positions(frame):
            idx_dtype = "<u2" if static["vehicles"]["index_bytes"] == 2 else "<u4"
            t = frame["trucks"]
            return dict(zip(_decode(t["idx"], idx_dtype), zip(_decode(t["lon"], "<u2"), _decode(t["lat"], "<u2"))))

        # The city comes to life: within a minute of wall time (hours of a 300x simulation; the
        # demo's first minutes also start its responders and sender) most trucks have reported and
        # some have moved.
        a, moved, second = positions(first), [], first
        settle = time.monotonic() + 60
        while time.monotonic() < settle:
            time.sleep(2)
            second = _get_json(f"{base}/state?since=0")
            b = positions(second)
            moved = [i for i in a.keys() & b.keys() if a[i] != b[i]]
            if moved and len(b) > 0.5 * static["vehicles"]["n"]:
                break
        assert second["version"] > first["version"] and second["newest_ms"] > first["newest_ms"]
        assert len(b) > 0.5 * static["vehicles"]["n"]
        assert moved, "no truck moved in a minute of a 300× simulation"
        statuses = _decode(second["points"]["status"], "u1")
        assert (statuses > 0).mean() > 0.5  # most points have reported (status known)

        events = []
        while time.monotonic() < deadline + 120 and not events:
            events = hazmap(tmp_path, "events", "--json").stdout.splitlines()
            time.sleep(2)
        assert events, "no event reached the store"
        signed = 0  # the simulated responders answer the incidents the events opened
        while time.monotonic() < deadline + 300 and not signed:
            with Store.open(f"sqlite:///{tmp_path / 'var' / 'hazmap.sqlite'}") as store:
                with store.engine.connect() as connection:
                    signed = connection.exec_driver_sql(
                        "SELECT count(*) FROM incident_recipients WHERE signed_at IS NOT NULL").scalar()
            time.sleep(2)
        assert signed, "no simulated responder signed for an incident"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert output.count("no MQTT broker at") == 1, output
    assert "live monitor stopped" in output
    assert "simulated responders: StepResult(signed=" in output


def test_simulate_direct_prints_staged_against_found(tmp_path):
    hazmap(tmp_path, "world", "build", "--seed", "7", "--scale", "0.05")
    proc = hazmap(tmp_path, "simulate", "--via", "direct", "--lockstep", "--hours", "3",
                  "--staged-out", str(tmp_path / "staged.csv"))
    lines = [line.split() for line in proc.stdout.splitlines() if " staged " in line]
    assert len(lines) >= 8, proc.stdout
    for fields in lines:  # kind rule staged N found|dropped M
        assert fields[-3] == fields[-1], f"{fields[0]}: staged {fields[-3]}, caught {fields[-1]}"
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["finished"] and summary["pings"] > 0 and summary["events"] > 0
    staged = pd.read_csv(tmp_path / "staged.csv")
    assert {"speeding", "teleport", "point_level_2"} <= set(staged["kind"])
    events = hazmap(tmp_path, "events", "--rule", "speeding").stdout
    assert all(vehicle in events for vehicle in staged.loc[staged["kind"] == "speeding", "subject_id"])


def test_simulate_over_jt808_reaches_a_running_serve(tmp_path):
    """`hazmap serve` in one process, `hazmap simulate` in another: trucks over TCP, readings
    through the broker, events stored by the serving process."""
    import signal

    from tests.services import mqtt_broker_url

    broker = mqtt_broker_url()
    hazmap(tmp_path, "world", "build", "--seed", "7", "--scale", "0.05")
    port, jt808 = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZMAP_")}
    env.update(HAZMAP_VAR_DIR=str(tmp_path / "var"), HAZMAP_PORT=str(port), HAZMAP_JT808_PORT=str(jt808),
               HAZMAP_JT808_STATS_PORT="0", HAZMAP_MQTT_URL=broker)
    serve = subprocess.Popen([HAZMAP, "serve"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_serving(serve, port, 120)
        deadline = time.monotonic() + 120
        sim = subprocess.run([HAZMAP, "simulate", "--lockstep", "--hours", "2", "--staged-out", "staged.csv"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert sim.returncode == 0, sim.stderr
        summary = json.loads(sim.stdout.splitlines()[-1])
        assert summary["finished"] and summary["jt808"]["acked"] == summary["pings"] > 0
        staged = pd.read_csv(tmp_path / "staged.csv")
        speeders = set(staged.loc[staged["kind"] == "speeding", "subject_id"])
        found: set[str] = set()
        while time.monotonic() < deadline + 120 and not speeders <= found:
            rows = hazmap(tmp_path, "events", "--rule", "speeding", "--json").stdout.splitlines()
            found = {json.loads(r)["subject_id"] for r in rows}
            time.sleep(1)
        assert speeders and speeders <= found
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=120)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 128 + signal.SIGTERM, output
