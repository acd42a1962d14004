"""The daily risk briefing written by the running server (`hazmap serve` / `demo`): a small
thread that, once the local hour reaches `briefing_hour` (Asia/Shanghai), writes the previous
day's briefing (PDF, XLSX) into var_dir/briefings — once: a day whose files exist is done, so a
restart neither skips nor repeats it. Its own store connection; stopped with the app."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)
LOCAL_TZ = "Asia/Shanghai"


class BriefingScheduler:
    def __init__(self, settings, world, out_dir: Path | None = None, poll_s: float = 60.0, clock=None):
        self.settings, self.world = settings, world
        self.hour = settings.briefing_hour
        self.out_dir = Path(out_dir) if out_dir is not None else Path(settings.var_dir) / "briefings"
        self.poll_s = poll_s
        self.clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written: list[Path] = []

    def due_day(self, now: pd.Timestamp) -> dt.date | None:
        """The day whose briefing is due at `now` (yesterday, once the hour is reached), or None."""
        if self.hour is None:
            return None
        local = now.tz_convert(LOCAL_TZ)
        if local.hour < self.hour:
            return None
        day = (local - pd.Timedelta(days=1)).date()
        done = all((self.out_dir / f"briefing_{day.isoformat()}.{f}").exists() for f in ("pdf", "xlsx"))
        return None if done else day

    def run_due(self, now: pd.Timestamp | None = None) -> dict[str, Path] | None:
        """Write the due briefing, if any; returns its files."""
        from app.cli import _open_store
        from app.cli_reports import build_briefing
        from reports.briefing import write_briefing

        now = self.clock() if now is None else now
        day = self.due_day(now)
        if day is None:
            return None
        store = _open_store(self.settings)
        try:
            brief = build_briefing(self.settings, self.world, store, day, now=now)
        finally:
            store.close()
        paths = write_briefing(brief, self.out_dir)
        self.written += list(paths.values())
        log.info("daily briefing %s written: %s", day, ", ".join(str(p) for p in paths.values()))
        return paths

    def _loop(self) -> None:
        # the first look one poll after start: the server's own start-up comes first
        while not self._stop.wait(self.poll_s):
            try:
                self.run_due()
            except Exception:  # a bad day must not stop the next mornings' briefings
                log.exception("daily briefing failed")

    def start(self) -> "BriefingScheduler":
        self._thread = threading.Thread(target=self._loop, name="briefing-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def start_briefings(settings, world) -> BriefingScheduler | None:
    """The scheduler inside serve/demo; None when `briefing_hour` is empty."""
    if settings.briefing_hour is None:
        return None
    return BriefingScheduler(settings, world).start()
