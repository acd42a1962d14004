"""Builders for channel tests: incidents in a store, a sender with fast retries."""

from __future__ import annotations

from data.channels.sender import Sender
from data.channels.settings import ChannelSettings
from data.incidents import IncidentStore
from tests.incidents.helpers import episode, ev

# retries in tens of milliseconds, so a test sees a delivery die within a second
FAST = ChannelSettings(max_attempts=3, backoff_s=0.05, backoff_max_s=0.2, jitter=0.5, webhook_timeout_s=1.0,
                       tick_s=0.02, lease_s=2.0)


def open_incidents(store, n: int = 2, severity: int = 1) -> IncidentStore:
    """n speeding incidents (VEH-0001 …) pushed to DEPT-EM (no world: the city's emergency office)."""
    incidents = IncidentStore(store)
    incidents.apply_events([ev("open", i, subject=f"VEH-{i + 1:04d}", severity=severity) for i in range(n)])
    return incidents


def sender(store, settings: ChannelSettings = FAST, **kw) -> Sender:
    return Sender(store, settings, seed=7, **kw)


__all__ = ["FAST", "episode", "ev", "open_incidents", "sender"]
