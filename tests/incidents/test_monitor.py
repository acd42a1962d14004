"""The incident processor inside the live monitor: a failing step neither stops the rules nor
loses events; the next write catches up from the cursor."""

from __future__ import annotations

import time

from app.live import LiveMonitor
from data.demo import build_world
from data.incidents import IncidentStore
from data.reference import load_chemicals
from data.store import Store
from tests.incidents.helpers import ev


def test_a_failing_incident_step_does_not_stop_the_monitor(tmp_path, monkeypatch):
    world = build_world(seed=7, scale=0.02, chemicals=load_chemicals())
    url = f"sqlite:///{tmp_path / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    calls = []
    real = IncidentStore.apply_stored_events

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("routing broke")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(IncidentStore, "apply_stored_events", flaky)
    with LiveMonitor(world, url) as monitor:
        deadline = time.monotonic() + 60
        while not calls:  # the catch-up at start
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with Store.open(url) as store:
            monitor._publish(store, [ev("open", 0)])  # stored; the incident step fails
            assert monitor.stats()["incidents"]["failures"] == 1
            monitor._publish(store, [ev("open", 5, subject="VEH-0002")])  # catches up both
        stats = monitor.stats()
    assert stats["worker_error"] is None
    assert (stats["incidents"]["opened"], stats["incidents"]["failures"]) == (2, 1)
    with Store.open(url) as store:
        assert len(IncidentStore(store).list()) == 2 and len(store.read_events()) == 2
