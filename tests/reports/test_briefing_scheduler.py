"""The server writes the previous day's briefing once the set local hour is reached, once."""

from __future__ import annotations

import pandas as pd


def test_writes_yesterdays_briefing_once_after_the_hour(stored, tmp_path):
    from app.briefing_scheduler import BriefingScheduler
    from app.settings import Settings

    settings = Settings(database_url=stored["url"], briefing_hour=7)
    scheduler = BriefingScheduler(settings, stored["world"], out_dir=tmp_path)
    before = pd.Timestamp("2026-11-03T06:59:00+08:00").tz_convert("UTC")
    after = pd.Timestamp("2026-11-03T07:00:00+08:00").tz_convert("UTC")
    assert scheduler.run_due(before) is None and not any(tmp_path.iterdir())
    paths = scheduler.run_due(after)
    assert sorted(p.name for p in paths.values()) == ["briefing_2026-11-02.pdf", "briefing_2026-11-02.xlsx"]
    assert scheduler.run_due(after + pd.Timedelta(hours=3)) is None  # done: not written again


def test_thread_runs_and_stops(stored, tmp_path):
    from app.briefing_scheduler import BriefingScheduler
    from app.settings import Settings

    now = pd.Timestamp("2026-11-03T09:00:00+08:00").tz_convert("UTC")
    scheduler = BriefingScheduler(Settings(database_url=stored["url"], briefing_hour=7), stored["world"],
                                  out_dir=tmp_path, poll_s=0.05, clock=lambda: now).start()
    try:
        import time

        deadline = time.monotonic() + 60
        while not (tmp_path / "briefing_2026-11-02.xlsx").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        scheduler.stop()
    assert (tmp_path / "briefing_2026-11-02.pdf").exists() and (tmp_path / "briefing_2026-11-02.xlsx").exists()
    assert not scheduler._thread.is_alive()
