"""The simulator's clock: slices in time order, paced against the wall clock or in lockstep."""

from __future__ import annotations

import time

import numpy as np
import pytest

from data.sim.runner import Simulator
from spatial.model import PingBatch, ReadingBatch


class _EveryTenSeconds:
    """A plan with one report every 10 s of simulated time from 0 to 600 s."""

    start_ms, end_ms = 0, 600_000

    def pings_between(self, t0_ms, t1_ms):
        t = np.arange(0, self.end_ms, 10_000)
        t = t[(t >= t0_ms) & (t < t1_ms)]
        return PingBatch.from_arrays(["VEH-1"] * len(t), t, np.full(len(t), 121.5), np.full(len(t), 29.8))

    def readings_between(self, t0_ms, t1_ms):
        t = np.arange(5_000, self.end_ms, 60_000)
        t = t[(t >= t0_ms) & (t < t1_ms)]
        return ReadingBatch.from_arrays(["MP-1"] * len(t), t, np.ones(len(t)))


def test_lockstep_hands_every_report_over_once_in_time_order():
    plan = _EveryTenSeconds()
    pings, readings = [], []
    progress = Simulator(plan, plan, ping_sink=pings.append, reading_sink=readings.append, time_factor=None,
                         slice_s=7).run()
    times = np.concatenate([b.epoch_ms for b in pings])
    assert list(times) == list(range(0, 600_000, 10_000))
    assert len(np.concatenate([b.epoch_ms for b in readings])) == 10
    assert progress.finished and progress.pings == 60 and progress.readings == 10 and progress.sim_ms == 600_000
    assert all(b.epoch_ms.max() - b.epoch_ms.min() < 7_000 for b in pings)  # never more than a slice at once


def test_paced_run_follows_the_wall_clock_and_stops_when_asked():
    plan = _EveryTenSeconds()
    arrivals = []
    sim = Simulator(plan, None, ping_sink=lambda b: arrivals.append((time.monotonic(), int(b.epoch_ms.max()))),
                    time_factor=200.0, slice_s=10)
    began = time.monotonic()
    sim.start()
    assert sim.join(10)
    assert sim.progress.finished
    # the report at simulated t leaves no earlier than t / 200 of wall time after the start
    assert all(wall - began >= t / 1000 / 200 - 0.02 for wall, t in arrivals)
    assert time.monotonic() - began >= 600 / 200 - 0.1

    slow = Simulator(plan, None, ping_sink=lambda b: None, time_factor=1.0).start()
    time.sleep(0.3)
    slow.stop()
    assert not slow.progress.finished and slow.progress.sim_ms < 600_000


def test_a_failing_sink_surfaces_on_join():
    def boom(_batch):
        raise ConnectionError("gateway went away")

    sim = Simulator(_EveryTenSeconds(), None, ping_sink=boom, time_factor=None).start()
    with pytest.raises(RuntimeError, match="gateway went away"):
        sim.join(10)


@pytest.mark.parametrize("kwargs, message", [
    (dict(time_factor=0), "time_factor"),
    (dict(slice_s=60), "slice_s"),
    (dict(ping_sink=None), "ping_sink"),
])
def test_bad_settings_are_refused(kwargs, message):
    args = dict(ping_sink=lambda b: None, time_factor=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Simulator(_EveryTenSeconds(), None, **args)
