"""Operations routes on the app's Flask server: health, readiness, metrics, request ids.

A Flask blueprint, so the REST API's blueprint (issue 14) can take these routes over as they are:

- `GET /api/health`: the process answers (liveness). Always 200 while it can serve at all.
- `GET /api/ready`: 200 when every check passes, else 503; the body says which and why:
  `store` (the database answers), `schema` (at the revision this hazmap needs), `world` (a
  world is loaded), `rules` (the live monitor's rules worker runs and its queue is not full),
  `feed` (a batch reached the monitor within `ready_feed_max_silence_s`, counted from its
  start; passes as "idle" when the monitor has no feed or the check is off). Cached for a
  second: a load balancer polling it costs one store round trip a second at most.
- `GET /metrics`: Prometheus text format (app/metrics.py).

Every request gets an id: the proxy's `X-Request-ID` when it is a sane token (nginx sends
`$request_id`), else a new one; it is in every log line written while the request runs and in
the response's `X-Request-ID`. HTTP requests are counted by route, method and status.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid

import flask
import pandas as pd
import sqlalchemy as sa

from app.metrics import CONTENT_TYPE_LATEST, build_registry, generate_latest
from app.server import REQUEST_ID
from app.settings import Settings
from spatial.model import World

log = logging.getLogger(__name__)
access_log = logging.getLogger("hazmap.http")

_REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_READY_CACHE_S = 1.0
_STORE_CONNECT_TIMEOUT_S = 3


def add_ops_routes(web, settings: Settings, world: World, live=None) -> "Ops":
    """Register the ops blueprint (and the request-id and HTTP-metrics hooks) on a Dash app."""
    ops = Ops(settings, world, live)
    prefix = web.config.routes_pathname_prefix.rstrip("/")
    web.server.register_blueprint(ops.blueprint(), url_prefix=prefix or None)
    return ops


class Ops:
    def __init__(self, settings: Settings, world: World, live=None) -> None:
        self.settings = settings
        self.world = world
        self.live = live
        self.started = time.monotonic()
        self.incidents = IncidentFigures(settings.resolved_database_url, world) if _runs_incidents(live) else None
        self.registry, self.http = build_registry(live, self.incidents)
        self._ready_lock = threading.Lock()
        self._ready_cached: tuple[float, bool, dict] | None = None
        # each readiness check opens the store, and alembic says so at INFO: keep the log for news
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

    # -- routes ---------------------------------------------------------------------------------

    def blueprint(self) -> flask.Blueprint:
        bp = flask.Blueprint("hazmap_ops", __name__)
        bp.add_url_rule("/api/health", "health", self.health)
        bp.add_url_rule("/api/ready", "ready", self.ready)
        bp.add_url_rule("/metrics", "metrics", self.metrics)
        bp.before_app_request(self._begin)
        bp.after_app_request(self._finish)
        bp.teardown_app_request(self._forget)
        return bp

    def health(self):
        return flask.jsonify(status="alive", uptime_s=round(time.monotonic() - self.started, 3))

    def ready(self):
        ok, checks = self.readiness()
        response = flask.jsonify(ready=ok, checks=checks)
        response.status_code = 200 if ok else 503
        response.headers["Cache-Control"] = "no-store"
        return response

    def metrics(self):
        return flask.Response(generate_latest(self.registry), mimetype=CONTENT_TYPE_LATEST,
                              headers={"Cache-Control": "no-store"})

    # -- readiness ------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict]:
        with self._ready_lock:  # one check at a time; a burst of probes shares its answer
            now = time.monotonic()
            if self._ready_cached is None or now - self._ready_cached[0] >= _READY_CACHE_S:
                checks = {**self._store_checks(), "world": self._world_check(), **self._live_checks()}
                self._ready_cached = (now, all(c["ok"] for c in checks.values()), checks)
            return self._ready_cached[1], self._ready_cached[2]

    def _store_checks(self) -> dict:
        from data.store import SchemaBehindError, Store, StoreError

        url = sa.engine.make_url(self.settings.resolved_database_url)
        if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": str(_STORE_CONNECT_TIMEOUT_S)})
        try:
            store = Store.open(url.render_as_string(hide_password=False))
        except (SchemaBehindError, StoreError) as exc:  # it answered: its schema is the problem
            return {"store": {"ok": True, "detail": "the database answers"},
                    "schema": {"ok": False, "detail": str(exc)}}
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is the answer
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
            return {"store": {"ok": False, "detail": f"cannot reach the database: {reason}"},
                    "schema": {"ok": False, "detail": "not checked: the database does not answer"}}
        try:
            revision = store.current_revision()
        finally:
            store.close()
        return {"store": {"ok": True, "detail": "the database answers"},
                "schema": {"ok": True, "detail": f"at revision {revision}, the one this hazmap needs"}}

    def _world_check(self) -> dict:
        counts = self.world.counts()
        if not counts.get("districts"):
            return {"ok": False, "detail": "no world is loaded (run `hazmap world build` or `hazmap world import`)"}
        return {"ok": True, "detail": f"{counts.get('vehicles', 0)} vehicles, "
                                      f"{counts.get('monitoring_points', 0)} monitoring points"}

    def _live_checks(self) -> dict:
        stats_of = getattr(self.live, "stats", None)
        if not callable(stats_of):
            idle = {"ok": True, "detail": "idle: this screen runs without a live monitor"}
            return {"rules": idle, "feed": idle}
        stats = stats_of()
        queued = stats.get("queued_batches", 0)
        capacity = getattr(getattr(self.live, "settings", None), "queue_batches", None)
        if stats.get("worker_error"):
            rules = {"ok": False, "detail": f"the rules worker stopped: {stats['worker_error']}"}
        elif capacity is not None and queued >= capacity:
            rules = {"ok": False, "detail": f"the rules worker is behind: its queue is full ({queued} batches), "
                                            "so the feeds are held back"}
        else:
            rules = {"ok": True, "detail": f"{queued} batches queued"}
        return {"rules": rules, "feed": self._feed_check(stats)}

    def _feed_check(self, stats: dict) -> dict:
        limit = self.settings.ready_feed_max_silence_s
        has_feed = getattr(self.live, "gateway", None) is not None or getattr(self.live, "mqtt_feed", None) is not None
        if not has_feed:
            return {"ok": True, "detail": "idle: no JT/T 808 gateway and no MQTT feed are configured"}
        if limit == 0:
            return {"ok": True, "detail": "idle allowed: the silence check is off (ready_feed_max_silence_s = 0)"}
        ago = stats.get("last_input_s_ago")
        if ago is None:
            uptime = stats.get("uptime_s") or 0.0
            if uptime <= limit:
                return {"ok": True, "detail": f"waiting for the first report ({uptime:.0f} s since start, "
                                              f"allowed {limit:g} s)"}
            return {"ok": False, "detail": f"no report or reading has arrived in {uptime:.0f} s since start "
                                           f"(allowed {limit:g} s: ready_feed_max_silence_s)"}
        if ago > limit:
            return {"ok": False, "detail": f"the feed has been silent for {ago:.0f} s (allowed {limit:g} s: "
                                           "ready_feed_max_silence_s)"}
        return {"ok": True, "detail": f"last batch {ago:.1f} s ago"}

    # -- every request --------------------------------------------------------------------------

    def _begin(self) -> None:
        given = flask.request.headers.get("X-Request-ID", "")
        rid = given if _REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex
        REQUEST_ID.set(rid)
        flask.g.hazmap_request = (rid, time.perf_counter())

    def _finish(self, response: flask.Response) -> flask.Response:
        started = getattr(flask.g, "hazmap_request", None)
        if started is None:
            return response
        rid, t0 = started
        seconds = time.perf_counter() - t0
        rule = flask.request.url_rule
        route = rule.rule if rule is not None else "<unmatched>"  # the rule, not the path: bounded labels
        self.http.observe(route, flask.request.method, response.status_code, seconds)
        response.headers["X-Request-ID"] = rid
        if self.settings.log_requests:
            access_log.info("%s %s %d %.1f ms", flask.request.method, flask.request.full_path.rstrip("?"),
                            response.status_code, seconds * 1000,
                            extra={"method": flask.request.method, "path": flask.request.path,
                                   "status": response.status_code, "duration_ms": round(seconds * 1000, 2),
                                   "remote": flask.request.remote_addr})
        return response

    def _forget(self, _exc=None) -> None:
        if flask.g.pop("hazmap_request", None) is not None:
            REQUEST_ID.set("-")  # waitress reuses its threads: the next request must not inherit the id


def _runs_incidents(live) -> bool:
    """True when the live monitor runs the incident processor (its settings say so)."""
    return getattr(getattr(live, "settings", None), "incidents", None) is not None


class IncidentFigures:
    """The incident store's figures for /metrics: open incidents and pushes/disposals by level.

    Read on a store of its own (opened at the first scrape, in the scraping thread) and kept
    for `cache_s`, so a scraper every few seconds costs the database a few small reads a
    minute. A failure is logged once and yields no incident figures, never a failed scrape."""

    OPEN_STATES = ("pushed", "signed", "disposed")  # spatial/incidents/lifecycle.py STATES minus closed
    KPI_WINDOW = pd.Timedelta(days=30)

    def __init__(self, store_url: str, world: World, cache_s: float = 15.0) -> None:
        self.store_url = store_url
        self.world = world
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._incidents = None
        self._cached: tuple[float, dict] | None = None
        self._failed = False

    def __call__(self) -> dict:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                self._cached = (now, self._read())
            return self._cached[1]

    def _read(self) -> dict:
        from data.incidents import IncidentStore
        from data.store import Store

        try:
            if self._incidents is None:
                self._incidents = IncidentStore(Store.open(self.store_url), self.world)
            open_now = {key: 0 for key in ("red", "orange", "yellow", "blue")}
            for state in self.OPEN_STATES:
                levels = self._incidents.list(status=state)["level"]
                for key, n in levels.value_counts().items():
                    open_now[str(key)] += int(n)
            # handling over the incidents first seen in the last KPI_WINDOW by the feed's clock (the
            # newest stored event: a simulated day runs on its own date), not over the store's life
            newest = self._incidents.store.newest_event_time()
            since = None if newest is None else newest - self.KPI_WINDOW
            kpis = self._incidents.kpis(by="level", since=since).set_index("level")
        except Exception:  # noqa: BLE001 - the scrape goes on without these figures
            if not self._failed:
                log.exception("metrics: the incident figures cannot be read; /metrics goes on without them")
            self._failed = True
            return {}
        self._failed = False
        return {"open_by_level": open_now,
                "pushed_by_level": {str(k): int(v) for k, v in kpis["pushed"].fillna(0).items()},
                "disposed_by_level": {str(k): int(v) for k, v in kpis["disposed"].fillna(0).items()}}
