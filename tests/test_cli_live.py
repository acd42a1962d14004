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
from tests.test_cli import HAZMAP, hazmap


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
