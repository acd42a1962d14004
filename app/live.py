"""The live monitor: feeds -> LiveState -> rule engines -> events, inside the app process.

DESIGN.md §2/§3: for now one process (`hazmap serve` / `hazmap demo` / `hazmap simulate
--via direct`) hosts feeds, engines and screen. The pieces, each on its own thread:

    JT/T 808 gateway (asyncio loop thread) ─┐  PingBatch      (the gateway also writes every
    MQTT reading feed (paho thread)  ───────┼─ ReadingBatch    report to the store itself)
    in-process simulator (submit_*) ────────┘
                       │  one bounded queue, arrival order kept
                       ▼
    the rules worker: LiveState.apply_* -> Engine / PointEngine .step -> events
                      -> LiveState.apply_events, Store.write_events, readings to the store

Why a queue and one worker: the engines keep per-vehicle and per-point state that must see
batches in arrival order, one at a time; the gateway's callback runs on its event loop, where
rule work would slow the wire (measured in session 1: a thread fighting the loop for the GIL is
cheaper than rules on the loop). A full queue blocks the producer, which is back-pressure down
to TCP and the broker, never a silent loss. The worker coalesces what queued up meanwhile into
one engine step (the engines' per-step cost is fixed; a step per tiny gateway batch wastes it).

The clock. `clock="feed"` (default) lets the data drive time: the engines' clocks are the
newest valid ping / reading, so a simulated day (which runs on the demo world's 2026-11-02)
and a replay behave like live traffic. `clock="wall"` is for real terminals: pings and
readings later than the wall clock by more than the cleaning's `max_future_s` are dropped as
`future`, and both engines are told every `advance_every_s` that the wall clock moved, so
held pings are released and silence (offline trucks, interrupted sensors) is noticed even
when the whole feed is quiet. The gateway stamps each report's arrival on the wall clock; with
`clock="wall"` the offline rule judges silence by it (a lagging terminal or a blind-area upload
is talking), with `clock="feed"` the stamps are dropped: a simulated day's data time runs on
another axis than the wall clock.

`snapshot()` returns a copy of the LiveState that is safe to read from any thread (the
screen's callbacks); `wait_idle()` lets tests and `hazmap simulate` wait for the worker.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from data.feeds.gateway import GatewaySettings, Jt808Gateway, vehicle_ids_by_phone
from data.fleet_start import newest_readings, point_context, replay_points, warm_engine
from data.feeds.mqtt import MqttFeedSettings, MqttReadingFeed
from app.metrics import LiveTimings
from data.incidents import IncidentSettings, IncidentStore
from data.store import Store, events_from_frame
from spatial.model import Event, LiveState, PingBatch, ReadingBatch, World
from spatial.rules.base import sort_events
from spatial.rules.restart import carried_closes, carried_silences, open_after, restart_closes
from spatial.rules.engine import Engine, EngineSettings
from spatial.rules.points import PointEngine, PointEngineSettings

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
# The stop stage's own episodes are how the engine sees a truck stand still, not violations:
# they feed the stop-based rules but stay out of the alerts and the stored event stream,
# which the incident lifecycle reads.
NOT_ALERTS = frozenset({"stop"})


@dataclass(frozen=True)
class MonitorSettings:
    """How the monitor runs; the rules' own thresholds are in `engine` / `points`."""

    engine: EngineSettings = field(default_factory=EngineSettings)
    points: PointEngineSettings = field(default_factory=PointEngineSettings)
    gateway: GatewaySettings | None = None  # None: no JT/T 808 gateway (pings come by submit_pings)
    mqtt_url: str | None = None  # None: no MQTT feed (readings come by submit_readings)
    mqtt: MqttFeedSettings = field(default_factory=lambda: MqttFeedSettings(max_future_s=None))
    clock: Literal["feed", "wall"] = "feed"
    trail_s: float = 7200.0  # the trail LiveState keeps per truck (issue 7: 2 h)
    queue_batches: int = 10_000  # batches waiting for the worker before producers block
    readings_store_every_s: float = 2.0  # readings are written to the store in batches this often
    advance_every_s: float = 10.0  # wall clock: how often the engines are told time moved
    # the incident processor (data/incidents.py): stored events -> incidents after every write; None: off
    incidents: IncidentSettings | None = field(default_factory=IncidentSettings)
    escalate_every_s: float = 60.0  # overdue sign deadlines checked every N s of the monitor's clock

    def __post_init__(self) -> None:
        if self.clock not in ("feed", "wall"):
            raise ValueError(f"MonitorSettings.clock must be 'feed' or 'wall', got {self.clock!r}")
        if not self.trail_s > 0 or self.queue_batches < 1:
            raise ValueError("MonitorSettings: trail_s must be > 0 and queue_batches >= 1")


class LiveMonitor:
    """Feeds -> LiveState -> engines -> events (stored); `snapshot()` is safe from any thread."""

    def __init__(self, world: World, store_url: str, settings: MonitorSettings = MonitorSettings()):
        self.world = world
        self.settings = settings
        self._store_url = store_url
        self._live = LiveState(trail_s=settings.trail_s)
        self._lock = threading.Lock()  # guards _live (the worker writes, the screen copies)
        self._queue: queue.Queue = queue.Queue(maxsize=settings.queue_batches)
        self._engine = Engine(world, settings.engine)
        self._point_engine = PointEngine(world, settings.points)
        self._events_by_rule: Counter = Counter()
        self._incidents: IncidentStore | None = None  # the worker's, on its store
        self._incident_counts: Counter = Counter()
        self._last_escalation_ms: int | None = None
        self._busy = threading.Event()  # the worker holds items it has taken off the queue
        self._caught_up = threading.Event()  # the worker's start (stored events applied, open episodes settled) is done
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_error: BaseException | None = None
        self._pending_readings: list[ReadingBatch] = []
        self._readings_written = 0
        # for /metrics and /api/ready (app/ops.py): latencies, when input last arrived
        self.timings = LiveTimings()
        self._started_at = time.monotonic()
        self._last_input_at: float | None = None
        # the gateway's own asyncio loop thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gateway_thread: threading.Thread | None = None
        self._gateway_started = threading.Event()
        self._gateway_error: BaseException | None = None
        self.gateway: Jt808Gateway | None = None
        self.mqtt_feed: MqttReadingFeed | None = None
        self.channels = None  # the delivery sender (app/cli_deliveries.Channels), set by `serve` / `demo`
        # a wall-clock start (start() and _settle_episodes_left_open): the events the engine's replay
        # of the stored pings caused, the trucks' silences the last run left open and still going, the
        # episode ids whose events are not published (the store's record of them stands)
        self._replayed: list[Event] = []
        self._carried = carried_silences(pd.DataFrame(), {})
        self._suppressed: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "LiveMonitor":
        """Start the worker, then the feeds; returns once the gateway listens, or raises why it
        could not (port taken …). The MQTT feed starts even when the broker is down and keeps
        trying (data/feeds/mqtt.py)."""
        store = Store.open(self._store_url)  # here, so a store that cannot be used fails the start
        if self.settings.clock == "wall":
            # started mid-day: the engine replays the store's recent pings, every rule running, so it
            # goes on where the stopped one was — each truck's waybill and cargo state (issue 11), its
            # last ping (the offline rule), the episodes open (settled against the store's once the
            # worker has caught up: _settle_episodes_left_open). A feed clock (simulation, replay) runs
            # on the data's own time, unknown here, so it starts empty. The same pings and the points'
            # newest readings restore the live picture: the wall after a restart shows every truck
            # where the store last saw it, not an empty map until each reports.
            now = pd.Timestamp.now(tz="UTC")
            self._engine, self._replayed = warm_engine(store, self.world, now, self.settings.engine,
                                                       seen=self._live.apply_pings)
            # (the point engine is resumed from them in the worker: _settle_episodes_left_open)
            self._live.apply_readings(newest_readings(store, now, point_ids=self.world.monitoring_points["id"]))
            restored = self._live.positions
            if len(restored):  # their cargo as the engine's start state has it (the grid weighs it)
                self._update_cargo(PingBatch.from_arrays(restored.index.to_numpy(object),
                                                         restored["epoch_ms"].to_numpy("int64"),
                                                         restored["lon"].to_numpy("float64"),
                                                         restored["lat"].to_numpy("float64")))
        self._worker = threading.Thread(target=self._work, args=(store,), name="hazmap-rules", daemon=True)
        self._worker.start()
        if self.settings.gateway is not None:
            self._start_gateway(self.settings.gateway)
        if self.settings.mqtt_url is not None:
            point_ids = self.world.monitoring_points["id"].astype(str)
            self.mqtt_feed = MqttReadingFeed(self.settings.mqtt_url, point_ids, self.submit_readings,
                                             settings=self.settings.mqtt).start()
        return self

    def stop(self) -> None:
        """Stop the feeds (the gateway hands its last reports to the store), let the worker
        finish what is queued, write the last readings and stop."""
        if self.mqtt_feed is not None:
            self.mqtt_feed.stop()
        self._stop_gateway()
        if self._worker is not None and self._worker.is_alive():
            self._stopping.set()
            self._worker.join(timeout=120)

    def __enter__(self) -> "LiveMonitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- input ---------------------------------------------------------------------------------

    def submit_pings(self, batch: PingBatch) -> None:
        """Hand a batch of pings to the worker (blocks while the queue is full)."""
        if len(batch):
            self._put(("pings", batch))

    def submit_readings(self, batch: ReadingBatch) -> None:
        if len(batch):
            self._put(("readings", batch))

    # -- output --------------------------------------------------------------------------------

    def snapshot(self) -> LiveState:
        """A copy of the live state (its `version` included), safe to read while feeds go on."""
        with self._lock:
            return self._live.copy()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """True once the start's catch-up is done and everything submitted so far has gone
        through the engines."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._raise_worker_error()
            if self._caught_up.is_set() and self._queue.unfinished_tasks == 0 and not self._busy.is_set():
                return True
            time.sleep(0.02)
        return False

    def stats(self) -> dict:
        with self._lock:
            version, positions, readings, open_episodes = (self._live.version, len(self._live.positions),
                                                           len(self._live.readings), self._live.open_episodes())
        return {
            "version": version,
            "uptime_s": round(time.monotonic() - self._started_at, 3),
            "last_input_s_ago": None if self._last_input_at is None
            else round(time.monotonic() - self._last_input_at, 3),
            "trucks": positions,
            "points": readings,
            "open_episodes": open_episodes,
            "queued_batches": self._queue.qsize(),
            "engine": {"clock_ms": self._engine.clock_ms, "held": self._engine.held_count,
                       "released": self._engine.released_count, "dropped": self._engine.drop_counts},
            "points_engine": {"clock_ms": self._point_engine.clock_ms,
                              "released": self._point_engine.released_count,
                              "dropped": self._point_engine.drop_counts},
            "events_by_rule": dict(self._events_by_rule),
            "incidents": dict(self._incident_counts),
            "readings_stored": self._readings_written,
            "gateway": self.gateway.stats() if self.gateway is not None else None,
            "mqtt": self.mqtt_feed.stats() if self.mqtt_feed is not None else None,
            "deliveries": self.channels.figures() if self.channels is not None else None,
            "worker_error": None if self._worker_error is None else repr(self._worker_error),
        }

    @property
    def gateway_loop(self) -> asyncio.AbstractEventLoop | None:
        """The gateway's event loop (platform messages to terminals are scheduled on it)."""
        return self._loop

    @property
    def drop_counts(self) -> dict[str, int]:
        return self._engine.drop_counts

    # -- the worker ----------------------------------------------------------------------------

    def _put(self, item) -> None:
        self._raise_worker_error()
        if self._stopping.is_set():
            raise RuntimeError("the live monitor is stopping: no more input is taken")
        self._queue.put(item)
        self._last_input_at = time.monotonic()

    def _raise_worker_error(self) -> None:
        if self._worker_error is not None:
            raise RuntimeError(f"the live monitor's rules worker failed: {self._worker_error!r}") \
                from self._worker_error

    def _work(self, store: Store) -> None:
        last_store = last_advance = time.monotonic()
        try:
            if self.settings.incidents is not None:  # resume after the last applied event
                self._incidents = IncidentStore(store, self.world, self.settings.incidents)
                self._apply_incidents()
            if self.settings.clock == "wall":
                self._settle_episodes_left_open(store)
            self._replayed = []
            self._caught_up.set()
            while True:
                items = self._take(timeout_s=0.2)
                if items:
                    self._busy.set()
                    try:
                        for kind, batch in _coalesce(items):
                            self._process(store, kind, batch)
                    finally:
                        for _ in items:
                            self._queue.task_done()
                        self._busy.clear()
                now = time.monotonic()
                if self.settings.clock == "wall" and now - last_advance >= self.settings.advance_every_s:
                    last_advance = now
                    now_ms = _wall_ms()
                    self._publish(store, self._engine.advance(now_ms) + self._point_engine.advance(now_ms))
                    self._escalate(now_ms)
                if self._pending_readings and (now - last_store >= self.settings.readings_store_every_s
                                               or self._stopping.is_set()):
                    last_store = now
                    self._store_readings(store)
                if self._stopping.is_set() and self._queue.empty():
                    break
        except BaseException as exc:  # surfaced by submit_*/wait_idle/stats, logged here
            self._worker_error = exc
            log.exception("the live monitor's rules worker stopped")
        finally:
            try:
                if self._pending_readings and self._worker_error is None:
                    self._store_readings(store)
            finally:
                store.close()

    def _take(self, timeout_s: float) -> list:
        try:
            items = [self._queue.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        while len(items) < 1000:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return items

    def _process(self, store: Store, kind: str, batch) -> None:
        now_ms = _wall_ms() if self.settings.clock == "wall" else None
        if kind == "pings":
            with self._lock:
                self._live.apply_pings(batch)
            if self.settings.clock == "feed" and batch.has_arrival:
                batch = batch.without_arrival()  # arrival is wall time; the rules' clock is the data's
            with self.timings.rule_step.labels("pings").time():
                events = self._engine.step(batch, now_ms)
            self._update_cargo(batch)
            if len(self._carried):
                closes, self._carried = carried_closes(self._carried, batch.vehicle_id, batch.epoch_ms)
                events = closes + events
        else:
            with self._lock:
                self._live.apply_readings(batch)
            self._pending_readings.append(batch)
            with self.timings.rule_step.labels("points").time():
                events = self._point_engine.step(batch, now_ms)
        self._publish(store, events)
        clocks = [c for c in (self._engine.clock_ms, self._point_engine.clock_ms) if c is not None]
        self._escalate(now_ms if now_ms is not None else max(clocks, default=None))

    def _update_cargo(self, batch: PingBatch) -> None:
        """The batch's trucks' cargo state at their newest ping, from the engine's waybill stage
        (the risk grid weighs it; the truck's panel shows it)."""
        newest = pd.Series(np.asarray(batch.epoch_ms, "int64")).groupby(np.asarray(batch.vehicle_id, object)).max()
        states, rows = self._engine.cargo_states(newest.index.to_numpy(object), newest.to_numpy("int64"))
        if getattr(self, "_waybill_ids", None) is None:  # once: converting the id column costs ~1 ms a batch
            self._waybill_ids = self.world.waybills["id"].astype(object).to_numpy()
        waybill_ids = self._waybill_ids
        ids = np.where(rows >= 0, waybill_ids[np.maximum(rows, 0)] if len(waybill_ids) else None, None)
        with self._lock:
            self._live.apply_cargo(newest.index.to_numpy(object), states, ids)

    def _publish(self, store: Store, events: list[Event]) -> None:
        events = [e for e in events if e.rule not in NOT_ALERTS]
        if self._suppressed or len(self._carried):
            events = self._not_suppressed(events)
        if not events:
            return
        with self._lock:
            self._live.apply_events(events)
        with self.timings.store_write.labels("events").time():
            store.write_events(events)
        self._events_by_rule.update(e.rule for e in events if e.phase == "open")
        self._apply_incidents()

    def _settle_episodes_left_open(self, store: Store) -> None:
        """The episodes the last run left open (their incidents active) against those the engine's
        replay of the stored pings left open (spatial/rules/restart.py). Open in both: they go on,
        the engine closes them; a point's alarms (level, rate, stuck, range) are compared with a replay
        of their points' stored readings (data/fleet_start.py `replay_points`) the same way, and the
        point engine goes on from it. Closed by a replay (the last run stopped before storing the
        close): its close is published. Open in the store only (the replays do not reach them:
        episodes older than the look-back, a point's without stored readings): closed at the
        subject's newest observation, but a
        truck's or a sensor's silence still going stays open until the subject is heard from. Open
        in the replay only: the store closed them (a restart before this one), or the last run stored
        the silence under its arrival-stamped start (a dark truck it carries), so they are not
        published; else the last run never stored them, and they are. On the wall clock only: a
        feed-clock run (a simulation, a replay) may send those episodes' own events again."""
        with self._lock:
            readings = self._live.readings["epoch_ms"].astype("int64")
            newest = {**readings.to_dict(), **self._live.positions["epoch_ms"].astype("int64").to_dict()}
        # without the incident processor nothing says which stored episodes are open: none is closed
        active = set() if self._incidents is None else set(self._incidents.active_episodes()["episode_id"])
        stored = store.read_events(episode_id=sorted(active)) if active else pd.DataFrame()
        # the points' alarms open at the stop (level, rate, stuck, range): their points' stored
        # readings replayed, so the rules go on from them as from the trucks' pings
        openings = stored[stored["phase"] == "open"] if len(stored) else \
            pd.DataFrame(columns=["rule", "subject_id", "start"])
        point_replay, point_events = replay_points(store, self.world, pd.Timestamp.now(tz="UTC"), openings,
                                                   self.settings.points)
        alerts = [e for e in self._replayed + point_events if e.rule not in NOT_ALERTS]
        replay_open = open_after(alerts)
        replay_closes = {e.episode_id: e for e in alerts if e.phase == "close"}
        unread = sorted(set(replay_open) - active)
        extra = store.read_events(episode_id=unread) if unread else pd.DataFrame()  # the replays' own: on record?
        if len(extra):
            stored = pd.concat([stored, extra], ignore_index=True) if len(stored) else extra
        # the last run stopped between storing an episode's open and its close, which the replay saw
        ended = {episode for episode in active - set(replay_open) if episode in replay_closes}
        left = stored[stored["episode_id"].isin(active - set(replay_open) - ended)] if len(stored) else stored
        going = stored[stored["episode_id"].isin(active & set(replay_open))] if len(stored) else stored
        closes = restart_closes(left, newest)
        # a sensor's silence: the interruption rule resumed from the store (every point judged from
        # its last reading); a truck's: carried here (the replay may not reach the truck)
        carried = carried_silences(left, newest)
        points = carried["rule"].to_numpy(dtype=object) == "point_interruption"
        self._point_engine.resume(readings, carried[points].set_index("subject_id")["start_ms"], replayed=point_replay)
        # every point's rate window before its newest stored reading, as context only: its first readings
        # after the start are judged on the window the stopped engine had, not one cut at the start (the
        # replayed points hold theirs: left out by the rule)
        self._point_engine.warm(point_context(store, readings, self._point_engine.context_ms))
        self._carried = carried[~points]
        dark = set(zip(self._carried["rule"], self._carried["subject_id"]))
        on_record = set(stored["episode_id"]) if len(stored) else set()
        new = []
        for episode, episode_events in replay_open.items():  # the replay's open episodes: few
            first = episode_events[0]
            if episode in active:
                continue
            if episode in on_record or (first.rule, first.subject_id) in dark:
                self._suppressed.add(episode)
            else:
                new.extend(episode_events)
        with self._lock:
            # the wall's alert layer: every episode left open, as the store has it
            kept = pd.concat([going, stored[stored["episode_id"].isin(set(carried["episode_id"]))]]) \
                if len(stored) else stored
            self._live.apply_events(events_from_frame(kept.sort_values("seq", kind="stable")) if len(kept) else [])
            # a truck dark for longer than the look-back: on the wall where it went dark
            unseen = self._carried[~self._carried["subject_id"].isin(self._live.positions.index)]
            self._live.apply_pings(PingBatch.from_arrays(unseen["subject_id"].to_numpy(object),
                                                         unseen["start_ms"].to_numpy("int64"),
                                                         unseen["lon"].to_numpy("float64"),
                                                         unseen["lat"].to_numpy("float64")))
        log.info("start: %d episode(s) go on, %d closed as the replay saw, %d closed at the restart, %d silence(s) "
                 "carried until heard from, %d raised by the replay only",
                 len(going["episode_id"].unique()) if len(going) else 0, len(ended), len(closes), len(carried),
                 len({e.episode_id for e in new}))
        self._publish(store, sort_events(closes + [replay_closes[episode] for episode in ended] + new))

    def _not_suppressed(self, events: list[Event]) -> list[Event]:
        """Without the events of episodes whose record the store holds otherwise (see
        _settle_episodes_left_open): a new episode of a carried silence's rule and truck is that
        silence again (the engine's replay judged it by ping time, the last run by arrival)."""
        dark = set(zip(self._carried["rule"], self._carried["subject_id"])) if len(self._carried) else set()
        kept = []
        for e in events:  # a batch's events: few
            if e.phase == "open" and (e.rule, e.subject_id) in dark:
                self._suppressed.add(e.episode_id)
            if e.episode_id not in self._suppressed:
                kept.append(e)
        return kept

    def _apply_incidents(self) -> None:
        """The stored events after the last applied seq -> incidents, one transaction per chunk
        (DESIGN.md §3 step 3): a crash between the events' write and this loses nothing, the next
        start resumes here."""
        if self._incidents is None:
            return
        try:
            result = self._incidents.apply_stored_events()
        except Exception as exc:  # the events are stored and the cursor did not move: the next write retries
            self._incident_failure(exc)
            return
        self._incident_counts.update({k: v for k, v in result.__dict__.items() if k != "last_seq"})

    def _incident_failure(self, exc: Exception) -> None:
        """An incident step that failed must not stop the rules: counted, logged once per kind."""
        self._incident_counts.update(failures=1)
        if repr(exc) != getattr(self, "_last_incident_error", None):
            self._last_incident_error = repr(exc)
            log.exception("the incident processor failed (the rules go on; retried after the next events)")

    def _escalate(self, now_ms: int | None) -> None:
        """Overdue sign deadlines, on the monitor's clock (the feed's in a simulation)."""
        if self._incidents is None or now_ms is None or now_ms < 0:
            return
        last = self._last_escalation_ms
        if last is not None and now_ms - last < self.settings.escalate_every_s * 1000:
            return
        self._last_escalation_ms = now_ms
        try:
            result = self._incidents.escalate_overdue(pd.Timestamp(int(now_ms), unit="ms", tz="UTC"))
        except Exception as exc:
            self._incident_failure(exc)
            return
        self._incident_counts.update(escalated=result.escalated, reminded=result.reminded)

    def _store_readings(self, store: Store) -> None:
        batches, self._pending_readings = self._pending_readings, []
        merged = ReadingBatch.from_arrays(*(np.concatenate([getattr(b, f) for b in batches])
                                            for f in ("point_id", "epoch_ms", "value")))
        with self.timings.store_write.labels("readings").time():
            self._readings_written += store.write_readings(merged)

    # -- the gateway thread --------------------------------------------------------------------

    def _start_gateway(self, gateway_settings: GatewaySettings) -> None:
        self._gateway_thread = threading.Thread(target=self._run_gateway, args=(gateway_settings,),
                                                name="hazmap-jt808", daemon=True)
        self._gateway_thread.start()
        if not self._gateway_started.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"the JT/T 808 gateway did not start within {_START_TIMEOUT_S:.0f} s")
        if self._gateway_error is not None:
            self.stop()
            raise RuntimeError(f"the JT/T 808 gateway could not start: {self._gateway_error}") \
                from self._gateway_error

    def _stop_gateway(self) -> None:
        if self._loop is None or self._gateway_thread is None:
            return
        loop, gateway = self._loop, self.gateway
        if gateway is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(gateway.stop(), loop).result(timeout=60)
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        self._gateway_thread.join(timeout=60)
        self._gateway_thread = None

    def _run_gateway(self, gateway_settings: GatewaySettings) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        store = None
        try:
            store = Store.open(self._store_url)
            self.gateway = Jt808Gateway(vehicle_ids_by_phone(self.world.vehicles), self.submit_pings, store,
                                        gateway_settings)
            self._loop.run_until_complete(self.gateway.start())
        except BaseException as exc:  # reported to start()'s caller
            self._gateway_error = exc
            self._gateway_started.set()
            if store is not None:
                store.close()
            self._loop.close()
            return
        self._gateway_started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()
            store.close()


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _coalesce(items: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Consecutive batches of the same kind merged into one, arrival order kept."""
    out: list[tuple[str, list]] = []
    for kind, batch in items:  # a loop over queued batches (a few per tick), not over pings
        if out and out[-1][0] == kind:
            out[-1][1].append(batch)
        else:
            out.append((kind, [batch]))
    merged = []
    for kind, batches in out:
        if len(batches) == 1:
            merged.append((kind, batches[0]))
        elif kind == "pings":
            merged.append((kind, PingBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in (
                "vehicle_id", "epoch_ms", "lon", "lat", "speed_kmh", "heading", "alarm", "status", "arrival_ms")))))
        else:
            merged.append((kind, ReadingBatch(*(np.concatenate([getattr(b, f) for b in batches])
                                                for f in ("point_id", "epoch_ms", "value")))))
    return merged
