"""Prometheus metrics of one hazmap process, through the maintained client library.

One `CollectorRegistry` per app (`build_registry`), never the library's global one, so two
apps in one test process do not collide. Three kinds of figures:

- counted where they happen, with the library's own types: the HTTP requests (app/ops.py) and
  the live monitor's timings (`LiveTimings`: rule step and store write latency; app/live.py
  observes them);
- read at scrape time from the figures the feeds already keep (`LiveCollector`): the JT/T 808
  gateway's feed health (`Jt808Gateway.stats()`), the MQTT feed's (`MqttReadingFeed.stats()`),
  the monitor's queue, drops and events (`LiveMonitor.stats()`). Reading them at scrape time
  keeps the hot paths free of a second set of counters; rates are Prometheus' `rate()` over
  the `_total` counters (the gateway's own sliding-window reports/s is exported as well);
- incidents, when the app hands a callable `incident_figures() -> {"open_by_level": {level: n},
  "pushed_by_level": {level: n}, "disposed_by_level": {level: n}}` (the incident store's
  figures, app/ops.py; level = red, orange, yellow, blue); left out otherwise. The handling
  rate (disposed / pushed, spatial/incidents/kpis.py) is exported per level, and overall it is
  `sum(disposed) / sum(pushed)`.

Deliveries (issue 13): the delivery log's figures, when the sender runs in the process
(`LiveMonitor.stats()["deliveries"]`): `hazmap_deliveries_failed` (dead letters),
`hazmap_deliveries_failed_attempts_total`, pending, sent, attempts.
"""

from __future__ import annotations

from importlib import metadata
from typing import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "LiveCollector", "LiveTimings", "build_registry", "generate_latest"]

# A rules step on a coalesced batch takes milliseconds to a few seconds (docs/performance.md).
STEP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LiveTimings:
    """Latencies the live monitor records as it works (no registry of their own: the app's
    `LiveCollector` yields them)."""

    def __init__(self) -> None:
        self.rule_step = Histogram("hazmap_rules_step_seconds", "Time of one rules step on a (coalesced) batch",
                                   ["engine"], buckets=STEP_BUCKETS_S, registry=None)
        self.store_write = Histogram("hazmap_store_write_seconds",
                                     "Time of one write of the live monitor to the store", ["table"],
                                     buckets=STEP_BUCKETS_S, registry=None)

    def collect(self) -> Iterable[Metric]:
        yield from self.rule_step.collect()
        yield from self.store_write.collect()


class HttpMetrics:
    """Requests by route (the URL rule, so the label set stays bounded), method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("hazmap_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=registry)
        self.latency = Histogram("hazmap_http_request_seconds", "Time to answer an HTTP request", ["route"],
                                 buckets=HTTP_BUCKETS_S, registry=registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)


# (stats key, kind, metric name without the prefix, help). Counters get `_total` from the library.
_GATEWAY = [
    ("connections", "gauge", "connections", "Terminal connections open now"),
    ("connections_total", "counter", "connections", "Terminal connections accepted"),
    ("authenticated_terminals", "gauge", "authenticated_terminals", "Terminals authenticated now"),
    ("bytes_received", "counter", "received_bytes", "Bytes received from terminals"),
    ("frames_received", "counter", "frames", "JT/T 808 frames received"),
    ("replies_sent", "counter", "replies", "Replies sent to terminals"),
    ("reports_received", "counter", "reports", "Location reports received"),
    ("reports_per_s", "gauge", "reports_per_second", "Location reports per second over the gateway's sliding window"),
    ("reports_pending_batch", "gauge", "reports_pending_batch", "Reports waiting for the next batch tick"),
    ("unregistered_reports", "counter", "unregistered_reports", "Reports from phones not in the vehicles table"),
    ("unregistered_terminals", "gauge", "unregistered_terminals", "Phones not in the vehicles table seen"),
    ("unauthenticated_reports", "counter", "unauthenticated_reports", "Reports before a successful authentication"),
    ("queue_reports", "gauge", "queue_reports", "Reports queued towards the live monitor and the store"),
    ("dropped_reports", "counter", "dropped_reports", "Reports dropped because a sink queue was full"),
    ("latency_samples", "counter", "latency_samples", "Reports timed from arrival to delivery"),
    ("newest_report_age_s", "gauge", "newest_report_age_seconds", "Wall clock minus the newest report's own time"),
    ("last_report_s_ago", "gauge", "last_report_age_seconds", "Seconds since a report last arrived"),
    ("uptime_s", "gauge", "uptime_seconds", "Seconds since the gateway started"),
]
_GATEWAY_BY_REASON = [
    ("rejected", "counter", "rejected_frames", "Frames or reports refused, by reason", "reason"),
    ("disconnects", "counter", "disconnects", "Connections closed, by reason", "reason"),
    ("events", "counter", "session_events", "Session events (register, authenticate, ...)", "event"),
]
_SINK = [
    ("queue_reports", "gauge", "sink_queue_reports", "Reports queued for this sink"),
    ("queue_max_reports", "gauge", "sink_queue_capacity_reports", "Capacity of this sink's queue"),
    ("delivered_reports", "counter", "sink_delivered_reports", "Reports this sink took"),
    ("dropped_reports", "counter", "sink_dropped_reports", "Reports dropped: this sink's queue was full"),
    ("failed_reports", "counter", "sink_failed_reports", "Reports this sink failed on"),
    ("errors", "counter", "sink_errors", "Errors this sink raised"),
    ("busy_s", "counter", "sink_busy_seconds", "Seconds this sink spent working (the store sink: writing pings)"),
]
_MQTT = [
    ("connected", "gauge", "connected", "1 when connected and subscribed to the broker"),
    ("connects", "counter", "connects", "Connections made to the broker"),
    ("disconnects", "counter", "disconnects", "Connections to the broker lost"),
    ("connect_failures", "counter", "connect_failures", "Failed attempts to connect to the broker"),
    ("messages", "counter", "messages", "MQTT messages received"),
    ("readings", "counter", "readings", "Monitoring-point readings accepted"),
    ("batches", "counter", "batches", "Reading batches handed to the monitor"),
    ("pending_messages", "gauge", "pending_messages", "Messages waiting for the next decode tick"),
    ("sink_errors", "counter", "sink_errors", "Errors handing readings to the monitor"),
    ("sink_failed_readings", "counter", "sink_failed_readings", "Readings lost to those errors"),
    ("busy_s", "counter", "busy_seconds", "Seconds spent decoding and delivering"),
    ("newest_reading_age_s", "gauge", "newest_reading_age_seconds", "Wall clock minus the newest reading's own time"),
    ("last_message_age_s", "gauge", "last_message_age_seconds", "Seconds since a message last arrived"),
]


def _family(kind: str, name: str, help_text: str, labels: Iterable[str] = ()):
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, help_text, labels=list(labels))


def _from_table(stats: dict, prefix: str, table: list, labels: dict[str, str] | None = None) -> list[Metric]:
    out = []
    for key, kind, name, help_text in table:
        value = stats.get(key)
        if value is None or isinstance(value, (dict, str)):
            continue  # a figure not known yet (no report so far) is absent, not zero
        family = _family(kind, f"{prefix}_{name}", help_text, (labels or {}).keys())
        family.add_metric(list((labels or {}).values()), float(value))
        out.append(family)
    return out


def _by_label(counts: dict, kind: str, name: str, help_text: str, label: str) -> Metric:
    family = _family(kind, name, help_text, [label])
    for key, n in sorted((counts or {}).items(), key=lambda kv: str(kv[0])):
        family.add_metric([str(key)], float(n))
    return family


# the delivery log's figures (data/channels/store.py DeliveryStore.figures), read at scrape time
_DELIVERIES = [
    ("failed_attempts", "counter", "failed_attempts", "Delivery attempts that failed (webhook, SMS, JT/T 808), "
                                                      "retried or not"),
    ("dead", "gauge", "failed", "Deliveries failed after their last retry (dead letters not resent)"),
    ("pending", "gauge", "pending", "Deliveries waiting to be sent or retried"),
    ("sent", "gauge", "sent", "Deliveries sent"),
    ("attempts", "counter", "attempts", "Delivery attempts"),
]


class LiveCollector(Collector):
    """Reads the live monitor's figures (and through it the gateway's and the MQTT feed's) at
    scrape time. `live` needs `stats()`; anything without it (a screen with a static live
    source) yields nothing here."""

    def __init__(self, live, incident_figures: Callable[[], dict] | None = None) -> None:
        self.live = live
        self.incident_figures = incident_figures

    def collect(self) -> Iterable[Metric]:
        stats_of = getattr(self.live, "stats", None)
        if callable(stats_of):
            yield from self._monitor(stats_of())
        timings = getattr(self.live, "timings", None)
        if timings is not None:
            yield from timings.collect()
        if self.incident_figures is not None:
            yield from self._incidents(self.incident_figures())

    def _monitor(self, s: dict) -> Iterable[Metric]:
        settings = getattr(self.live, "settings", None)
        up = GaugeMetricFamily("hazmap_live_worker_up", "1 while the live monitor's rules worker runs")
        up.add_metric([], 0.0 if s.get("worker_error") else 1.0)
        yield up
        yield from _from_table(s, "hazmap_live", [
            ("queued_batches", "gauge", "queue_batches", "Batches waiting for the rules worker"),
            ("trucks", "gauge", "trucks", "Trucks with a known position"),
            ("points", "gauge", "points", "Monitoring points with a known reading"),
            ("open_episodes", "gauge", "open_alerts", "Alert episodes open now"),
            ("readings_stored", "counter", "readings_stored", "Readings the monitor wrote to the store"),
            ("last_input_s_ago", "gauge", "last_input_age_seconds", "Seconds since a batch last reached the monitor"),
        ])
        if settings is not None:
            capacity = GaugeMetricFamily("hazmap_live_queue_capacity_batches",
                                         "Batches the queue holds before producers block (back-pressure)")
            capacity.add_metric([], float(settings.queue_batches))
            yield capacity
        engine, points = s.get("engine") or {}, s.get("points_engine") or {}
        yield from _from_table(engine, "hazmap_rules", [
            ("held", "gauge", "pings_held", "Pings held in the cleaning's reorder window"),
            ("released", "counter", "pings_released", "Pings released to the rules"),
        ])
        yield from _from_table(points, "hazmap_rules", [
            ("released", "counter", "readings_released", "Readings released to the point rules"),
        ])
        yield _by_label(engine.get("dropped"), "counter", "hazmap_rules_pings_dropped",
                        "Pings the cleaning dropped, by reason", "reason")
        yield _by_label(points.get("dropped"), "counter", "hazmap_rules_readings_dropped",
                        "Readings the point cleaning dropped, by reason", "reason")
        yield _by_label(s.get("events_by_rule"), "counter", "hazmap_events_opened",
                        "Alert episodes opened (events in phase open), by rule", "rule")
        if s.get("gateway"):
            yield from self._gateway(s["gateway"])
        if s.get("mqtt"):
            yield from self._mqtt(s["mqtt"])
        if s.get("deliveries"):  # the sender's delivery log (data/channels/), when it runs in this process
            yield from _from_table(s["deliveries"], "hazmap_deliveries", _DELIVERIES)

    def _gateway(self, g: dict) -> Iterable[Metric]:
        yield from _from_table(g, "hazmap_jt808", _GATEWAY)
        for key, kind, name, help_text, label in _GATEWAY_BY_REASON:
            yield _by_label(g.get(key), kind, f"hazmap_jt808_{name}", help_text, label)
        latency = GaugeMetricFamily("hazmap_jt808_latency_seconds",
                                    "Arrival to delivery of the newest reports, quantiles", labels=["quantile"])
        for quantile, key in (("0.5", "latency_p50_ms"), ("0.99", "latency_p99_ms")):
            if g.get(key) is not None:
                latency.add_metric([quantile], g[key] / 1000.0)
        yield latency
        families: dict[str, Metric] = {}
        for sink, sink_stats in sorted((g.get("sinks") or {}).items()):
            for metric in _from_table(sink_stats, "hazmap_jt808", _SINK, {"sink": sink}):
                if metric.name in families:
                    families[metric.name].samples.extend(metric.samples)
                else:
                    families[metric.name] = metric
        yield from families.values()

    def _mqtt(self, m: dict) -> Iterable[Metric]:
        yield from _from_table({**m, "connected": 1.0 if m.get("connected") else 0.0}, "hazmap_mqtt", _MQTT)
        yield _by_label(m.get("rejected"), "counter", "hazmap_mqtt_bad_messages",
                        "Messages or readings refused, by reason", "reason")

    def _incidents(self, figures: dict) -> Iterable[Metric]:
        if not figures:
            return
        yield _by_label(figures.get("open_by_level"), "gauge", "hazmap_incidents_open",
                        "Incidents not closed yet, by level (red highest)", "level")
        pushed, disposed = figures.get("pushed_by_level") or {}, figures.get("disposed_by_level") or {}
        yield _by_label(pushed, "gauge", "hazmap_incidents_pushed",
                        "Pushes to recipients (departments, enterprises) of the incidents first seen in the "
                        "last 30 days, by level", "level")
        yield _by_label(disposed, "gauge", "hazmap_incidents_disposed", "Of those pushes, the ones disposed, by level",
                        "level")
        yield _by_label({k: disposed.get(k, 0) / n for k, n in pushed.items() if n}, "gauge",
                        "hazmap_incidents_handling_rate", "Handling rate: disposed / pushed, by level (0..1)", "level")


def _version() -> str:
    try:
        return metadata.version("hazmap")
    except metadata.PackageNotFoundError:  # run from a bare checkout
        return "unknown"


class _BuildInfo(Collector):
    def collect(self) -> Iterable[Metric]:
        info = InfoMetricFamily("hazmap_build", "The running hazmap")
        info.add_metric([], {"version": _version()})
        yield info


def build_registry(live=None, incident_figures: Callable[[], dict] | None = None
                   ) -> tuple[CollectorRegistry, HttpMetrics]:
    """A fresh registry with the process, the live monitor's figures and the HTTP counters."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(_BuildInfo())
    if live is not None or incident_figures is not None:
        registry.register(LiveCollector(live, incident_figures))
    return registry, HttpMetrics(registry)
