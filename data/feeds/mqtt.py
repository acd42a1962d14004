"""Monitoring-point readings over MQTT (wire format: docs/mqtt.md).

A point publishes `{"t": <time>, "v": <number>}` on `<topic_prefix>/<point_id>`; a gateway
that polls many points publishes the columnar batch `{"p": [...], "t": [...] | <time>,
"v": [...]}` on `<topic_prefix>` itself. `MqttReadingFeed` subscribes to both, decodes every
message that arrived during a tick (0.2 s by default) in one go and hands the readings to
`on_readings` as one `ReadingBatch`. A bad message is counted by reason and dropped; it never
stops the feed. paho's network thread reconnects with exponential backoff when the broker goes
away and the subscription is renewed on every connect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Self
from urllib.parse import unquote, urlsplit

import numpy as np
import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion

from spatial.model import ReadingBatch

log = logging.getLogger(__name__)

DEFAULT_TOPIC_PREFIX = "hazmap/points"

# Why a message or a reading was refused. Message-level reasons count messages (nothing in
# them could be read); reading-level reasons count readings (the others of a batch still pass).
MESSAGE_REJECTIONS = (
    "topic",  # not <prefix> or <prefix>/<point_id> (an empty id, deeper levels)
    "oversize",  # payload above max_payload_bytes
    "not_json",  # not UTF-8 JSON
    "not_object",  # JSON, but not an object
    "bad_batch",  # batch form without p/v arrays of one length, or a t of another length
    "overflow",  # more than max_pending_messages waiting: the consumer cannot keep up
)
READING_REJECTIONS = (
    "unknown_point",  # point id not among the known monitoring points
    "missing_time",  # no "t" (or null)
    "bad_time",  # neither epoch seconds nor ISO-8601 with an offset, or outside 2000..2100
    "future_time",  # more than max_future_s ahead of the feed's clock
    "missing_value",  # no "v" (or null)
    "bad_value",  # "v" not a JSON number (strings and booleans included)
    "non_finite_value",  # NaN or ±Infinity (Python's json reads them)
)
REJECTION_REASONS = MESSAGE_REJECTIONS + READING_REJECTIONS

# Readings outside these bounds are refused as bad_time: they are unit mistakes (epoch
# milliseconds sent as seconds) or uninitialised device clocks, never real measurements.
EARLIEST_EPOCH_S = 946_684_800.0  # 2000-01-01T00:00:00Z
LATEST_EPOCH_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z

# Extended ISO-8601 date-time with a mandatory offset; pandas does the calendar checks.
_ISO_WITH_OFFSET = r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)"


class _Missing:
    """Marks a key absent from a message (JSON null is read the same way)."""


_MISSING = _Missing()


@dataclass(frozen=True)
class MqttFeedSettings:
    """Settings of the monitoring-point feed.

    Sized for Ningbo's 5,196 monitoring points (DOMAIN.md) reporting every few seconds, i.e.
    around 1,000-2,000 readings/s; the pending bound holds more than a minute of that.
    """

    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    qos: int = 1  # subscription QoS: 1 so the broker re-sends what a dropped TCP segment lost
    # Readings that arrived during one tick go to on_readings as one ReadingBatch.
    tick_s: float = 0.2
    keepalive_s: int = 30
    connect_timeout_s: float = 5.0
    # Reconnect backoff: the first retry after min, doubling to max (paho resets it on success).
    reconnect_min_delay_s: int = 1
    reconnect_max_delay_s: int = 30
    max_payload_bytes: int = 1 << 20  # a 10,000-reading batch message is ~0.4 MB
    # Messages waiting for the next tick; above it new ones are dropped and counted ("overflow").
    max_pending_messages: int = 200_000
    # A reading stamped further ahead of this clock is refused ("future_time"): a device clock
    # set wrong would otherwise pin a point's "newest" reading for hours. None turns it off (a
    # simulator publishing simulated time faster than real time needs that).
    max_future_s: float | None = 300.0
    client_id_prefix: str = "hazmap-feed"

    def __post_init__(self) -> None:
        check_topic_prefix(self.topic_prefix)
        if self.qos not in (0, 1, 2):
            raise ValueError(f"MqttFeedSettings.qos must be 0, 1 or 2, got {self.qos!r}")
        for name in ("tick_s", "keepalive_s", "connect_timeout_s", "reconnect_min_delay_s", "max_payload_bytes",
                     "max_pending_messages"):
            if not getattr(self, name) > 0:
                raise ValueError(f"MqttFeedSettings.{name} must be positive, got {getattr(self, name)!r}")
        if self.reconnect_max_delay_s < self.reconnect_min_delay_s:
            raise ValueError(
                f"MqttFeedSettings.reconnect_max_delay_s ({self.reconnect_max_delay_s}) is below "
                f"reconnect_min_delay_s ({self.reconnect_min_delay_s})"
            )
        if self.max_future_s is not None and self.max_future_s < 0:
            raise ValueError(f"MqttFeedSettings.max_future_s must not be negative, got {self.max_future_s!r}")


def check_topic_prefix(prefix: str) -> None:
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in "+#\0"):
        raise ValueError(
            f"MQTT topic prefix {prefix!r} is invalid: it must be non-empty, without wildcards (+ #) "
            "and without a leading or trailing '/'"
        )


# --- broker address ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://[user[:password]@]host[:port]` (default port 1883) or `mqtts://…` (TLS, 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT broker URL {url!r}: scheme must be mqtt:// or mqtts://, got {parts.scheme!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"MQTT broker URL {url!r}: bad port ({exc})") from None
    if not parts.hostname:
        raise ValueError(f"MQTT broker URL {url!r} names no host")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"MQTT broker URL {url!r}: a path or query means nothing here")
    return BrokerAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _new_client(address: BrokerAddress, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                         clean_session=True)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    return client


def _client_id(prefix: str) -> str:
    # Unique per instance: two feeds with one id would throw each other off the broker.
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- decoding ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedTick:
    """What one tick's messages decoded to: the accepted readings (in arrival order), the
    rejections by reason, and one example (topic and payload start) per reason seen."""

    batch: ReadingBatch
    rejected: Counter
    samples: dict[str, str]


def _sample(topic: str, payload: bytes) -> str:
    return f"{topic}: {payload[:160]!r}"


def _object_column(values: list) -> np.ndarray:
    # np.array(list, dtype=object) would turn nested lists into a 2-D array.
    return np.fromiter(values, dtype=object, count=len(values))


def _types(column: np.ndarray) -> np.ndarray:
    return np.fromiter(map(type, column), dtype=object, count=len(column))


def _to_float(column: np.ndarray) -> np.ndarray:
    try:
        return np.array(column.tolist(), dtype="float64")
    except OverflowError:  # a JSON integer beyond float range: infinite, refused as such
        return np.array([float(x) if abs(x) < 1e308 else np.inf for x in column.tolist()], dtype="float64")


def _times_to_epoch_ms(times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw "t" values -> (epoch_ms, missing, bad): epoch seconds (int or float) or ISO-8601
    strings with an offset, rounded to the millisecond."""
    kinds = _types(times)
    missing = (kinds == _Missing) | (kinds == type(None))
    numeric = (kinds == float) | (kinds == int)  # bool is its own type: refused
    text = kinds == str
    millis = np.full(len(times), np.nan)
    if numeric.any():
        millis[numeric] = _to_float(times[numeric]) * 1000.0
    if text.any():
        strings = pd.Series(times[text], dtype=object)
        shaped = strings.str.fullmatch(_ISO_WITH_OFFSET).to_numpy(dtype=bool)
        parsed = pd.DatetimeIndex(pd.to_datetime(strings.where(shaped), format="ISO8601", utc=True, errors="coerce"))
        millis[text] = np.where(parsed.notna(), parsed.round("ms").as_unit("ms").asi8, np.nan)
    in_range = (millis >= EARLIEST_EPOCH_S * 1000.0) & (millis < LATEST_EPOCH_S * 1000.0)  # False for NaN
    epoch_ms = np.zeros(len(times), dtype="int64")
    epoch_ms[in_range] = np.rint(millis[in_range]).astype("int64")
    return epoch_ms, missing, ~missing & ~in_range


class ReadingDecoder:
    """Decodes MQTT messages (topic, payload) into a ReadingBatch plus rejections by reason.

    The JSON of each message is parsed on its own (one message, one `json.loads`); every check
    on the readings (known point, time, value) runs on whole columns of the tick at once."""

    def __init__(self, known_point_ids: Iterable[str], topic_prefix: str = DEFAULT_TOPIC_PREFIX,
                 max_payload_bytes: int = 1 << 20, max_future_s: float | None = 300.0) -> None:
        check_topic_prefix(topic_prefix)
        self.known_point_ids = pd.Index(pd.unique(np.asarray(list(known_point_ids), dtype=object)))
        self.topic_prefix = topic_prefix
        self.max_payload_bytes = max_payload_bytes
        self.max_future_s = max_future_s
        self._single_prefix = topic_prefix + "/"

    def decode(self, messages: Sequence[tuple[str, bytes]], now_s: float | None = None) -> DecodedTick:
        rejected: Counter = Counter()
        samples: dict[str, str] = {}

        def refuse(reason: str, topic: str, payload: bytes, count: int = 1) -> None:
            rejected[reason] += count
            samples.setdefault(reason, _sample(topic, payload))

        point_ids: list = []
        times: list = []
        values: list = []
        origin: list[int] = []  # message index of each reading, for samples
        prefix_len = len(self._single_prefix)
        for index, (topic, payload) in enumerate(messages):
            if topic == self.topic_prefix:
                point_id = None
            elif topic.startswith(self._single_prefix) and len(topic) > prefix_len and "/" not in topic[prefix_len:]:
                point_id = topic[prefix_len:]
            else:
                refuse("topic", topic, payload)
                continue
            if len(payload) > self.max_payload_bytes:
                refuse("oversize", topic, payload)
                continue
            try:
                body = json.loads(payload)
            except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                refuse("not_json", topic, payload)
                continue
            if not isinstance(body, dict):
                refuse("not_object", topic, payload)
                continue
            if point_id is not None:
                point_ids.append(point_id)
                times.append(body.get("t", _MISSING))
                values.append(body.get("v", _MISSING))
                origin.append(index)
                continue
            ids, stamp, vals = body.get("p"), body.get("t", _MISSING), body.get("v")
            if not (isinstance(ids, list) and isinstance(vals, list) and len(ids) == len(vals)):
                refuse("bad_batch", topic, payload)
                continue
            if isinstance(stamp, list):
                if len(stamp) != len(ids):
                    refuse("bad_batch", topic, payload)
                    continue
                times.extend(stamp)
            else:  # one time for the whole batch (a gateway that polls every point at once)
                times.extend([stamp] * len(ids))
            point_ids.extend(ids)
            values.extend(vals)
            origin.extend([index] * len(ids))

        if not point_ids:
            return DecodedTick(ReadingBatch.from_arrays([], [], []), rejected, samples)
        ids_column = _object_column(point_ids)
        times_column = _object_column(times)
        values_column = _object_column(values)

        known = _types(ids_column) == str  # a number, list or null as id is simply not a known point
        if len(self.known_point_ids) and known.any():
            known[known] = self.known_point_ids.get_indexer(ids_column[known]) >= 0
        else:
            known[:] = False
        epoch_ms, time_missing, time_bad = _times_to_epoch_ms(times_column)
        if self.max_future_s is not None:
            horizon_ms = ((time.time() if now_s is None else now_s) + self.max_future_s) * 1000.0
            future = ~time_missing & ~time_bad & (epoch_ms > horizon_ms)
        else:
            future = np.zeros(len(epoch_ms), dtype=bool)
        value_kinds = _types(values_column)
        value_missing = (value_kinds == _Missing) | (value_kinds == type(None))
        value_numeric = (value_kinds == float) | (value_kinds == int)  # bool is its own type: refused
        value = np.full(len(values_column), np.nan)
        if value_numeric.any():
            value[value_numeric] = _to_float(values_column[value_numeric])
        value_bad = ~value_missing & ~value_numeric
        value_non_finite = value_numeric & ~np.isfinite(value)

        # One reason per reading: the first that applies, in READING_REJECTIONS order.
        conditions = [~known, time_missing, time_bad, future, value_missing, value_bad, value_non_finite]
        reason_index = np.select(conditions, list(range(len(conditions))), default=-1)
        accepted = reason_index < 0
        if not accepted.all():
            codes, counts = np.unique(reason_index[~accepted], return_counts=True)
            origin_column = np.asarray(origin)
            for code, count in zip(codes.tolist(), counts.tolist()):
                first = origin_column[np.argmax(reason_index == code)]
                topic, payload = messages[first]
                refuse(READING_REJECTIONS[code], topic, payload, count)
        batch = ReadingBatch.from_arrays(ids_column[accepted], epoch_ms[accepted], value[accepted])
        return DecodedTick(batch, rejected, samples)


# --- the feed ---------------------------------------------------------------------------------------


class MqttReadingFeed:
    """Subscribes to `<topic_prefix>/#` on the broker and hands every tick's accepted readings
    to `on_readings(batch)` (one call at a time, in arrival order, on the feed's own thread).

        feed = MqttReadingFeed("mqtt://127.0.0.1:1883", world.monitoring_points["id"], state.apply_readings)
        feed.start(); ...; feed.stop()

    `on_readings` raising is logged and counted (`sink_errors`); the feed carries on. The feed
    starts even when the broker is down and keeps trying to connect (backoff from
    reconnect_min_delay_s doubling to reconnect_max_delay_s).
    """

    def __init__(self, broker_url: str, known_point_ids: Iterable[str],
                 on_readings: Callable[[ReadingBatch], object], *, settings: MqttFeedSettings | None = None) -> None:
        self.settings = settings or MqttFeedSettings()
        self.address = parse_broker_url(broker_url)
        self._decoder = ReadingDecoder(known_point_ids, self.settings.topic_prefix, self.settings.max_payload_bytes,
                                       self.settings.max_future_s)
        self._on_readings = on_readings
        self._lock = threading.Lock()
        self._delivering = threading.Lock()  # on_readings is never called twice at once
        self._pending: list[tuple[str, bytes]] = []
        self._ready = threading.Event()  # connected and subscribed
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._subscribe_mid: int | None = None
        # counters (written by the network thread or the ticker; read by stats())
        self._messages = 0
        self._readings = 0
        self._batches = 0
        self._rejected: Counter = Counter()
        self._samples: dict[str, str] = {}
        self._connects = 0
        self._disconnects = 0
        self._connect_failures = 0
        self._last_error: str | None = None
        self._sink_errors = 0
        self._sink_failed_readings = 0
        self._last_sink_error: str | None = None
        self._newest_epoch_ms: int | None = None
        self._last_message_monotonic: float | None = None
        self._busy_s = 0.0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> MqttReadingFeed:
        if self._client is not None:
            raise RuntimeError("MqttReadingFeed.start(): the feed is already running")
        s = self.settings
        client = _new_client(self.address, _client_id(s.client_id_prefix))
        client.connect_timeout = s.connect_timeout_s
        client.reconnect_delay_set(s.reconnect_min_delay_s, s.reconnect_max_delay_s)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_subscribe = self._handle_subscribe
        client.on_message = self._handle_message
        self._client = client
        self._stopping.clear()
        # connect_async + loop_start: paho's thread retries the first connection too, so a feed
        # started before its broker comes up joins it when it does.
        client.connect_async(self.address.host, self.address.port, keepalive=s.keepalive_s)
        client.loop_start()
        self._ticker = threading.Thread(target=self._run_ticks, name="mqtt-reading-feed", daemon=True)
        self._ticker.start()
        log.info("MQTT reading feed: %s, topics %s/#", self.address, s.topic_prefix)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Disconnect, deliver what already arrived, stop the threads."""
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        client.loop_stop()
        self._ready.clear()
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout_s)
            if self._ticker.is_alive():
                log.warning("MQTT reading feed: on_readings still busy after %.1f s at stop", timeout_s)
            self._ticker = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until connected and subscribed (messages published before that are not seen)."""
        return self._ready.wait(timeout_s)

    def set_known_point_ids(self, known_point_ids: Iterable[str]) -> None:
        """Replace the known points (after a World reload); applies from the next tick."""
        s = self.settings
        self._decoder = ReadingDecoder(known_point_ids, s.topic_prefix, s.max_payload_bytes, s.max_future_s)

    # -- paho callbacks (network thread) ----------------------------------------------------------

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_failures += 1
            self._last_error = f"broker refused the connection: {reason_code}"
            log.warning("MQTT reading feed: %s", self._last_error)
            return
        self._connects += 1
        result, mid = client.subscribe(f"{self.settings.topic_prefix}/#", qos=self.settings.qos)
        self._subscribe_mid = mid
        if result != mqtt.MQTT_ERR_SUCCESS:
            self._last_error = f"subscribe failed: {mqtt.error_string(result)}"
        log.info("MQTT reading feed: connected to %s (connection %d)", self.address, self._connects)

    def _handle_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._subscribe_mid:
            return
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            self._last_error = f"broker refused the subscription to {self.settings.topic_prefix}/#: {failed[0]}"
            log.error("MQTT reading feed: %s", self._last_error)
            return
        self._ready.set()

    def _handle_connect_fail(self, client, userdata) -> None:
        self._connect_failures += 1
        self._last_error = f"cannot connect to {self.address}"

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was_ready = self._ready.is_set()
        self._ready.clear()
        if self._stopping.is_set() or self._client is None:
            return
        self._disconnects += 1
        self._last_error = f"disconnected: {reason_code}"
        if was_ready:
            log.warning("MQTT reading feed: lost %s (%s); reconnecting", self.address, reason_code)

    def _handle_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", "replace")
        with self._lock:
            self._messages += 1
            self._last_message_monotonic = time.monotonic()
            if len(self._pending) >= self.settings.max_pending_messages:
                self._rejected["overflow"] += 1
                if "overflow" not in self._samples:
                    self._samples["overflow"] = _sample(topic, message.payload)
                    log.warning("MQTT reading feed: %d messages waiting, dropping new ones (on_readings too slow?)",
                                len(self._pending))
                return
            self._pending.append((topic, message.payload))

    # -- ticks (feed thread) ----------------------------------------------------------------------

    def _run_ticks(self) -> None:
        while not self._stopping.wait(self.settings.tick_s):
            self.flush()
        self.flush()

    def flush(self) -> int:
        """Decode and deliver what arrived since the last tick now; the number of readings."""
        with self._delivering:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            messages, self._pending = self._pending, []
        if not messages:
            return 0
        started = time.monotonic()
        decoded = self._decoder.decode(messages)
        with self._lock:
            self._rejected.update(decoded.rejected)
            for reason, sample in decoded.samples.items():
                if reason not in self._samples:
                    log.warning("MQTT reading feed: first message refused as %s: %s", reason, sample)
                    self._samples[reason] = sample
        batch = decoded.batch
        if len(batch):
            try:
                self._on_readings(batch)
            except Exception as exc:  # a failing consumer must not stop the feed
                self._sink_errors += 1
                self._sink_failed_readings += len(batch)
                self._last_sink_error = f"{type(exc).__name__}: {exc}"
                log.exception("MQTT reading feed: on_readings failed for %d readings", len(batch))
            else:
                self._readings += len(batch)
                self._batches += 1
                newest = int(batch.epoch_ms.max())
                if self._newest_epoch_ms is None or newest > self._newest_epoch_ms:
                    self._newest_epoch_ms = newest
        self._busy_s += time.monotonic() - started
        return len(batch)

    def stats(self) -> dict:
        """Feed health: message, reading and batch counts, rejections by reason (with one
        example each), connection state and the age of the newest reading."""
        now = time.time()
        with self._lock:
            rejected = {reason: self._rejected.get(reason, 0) for reason in REJECTION_REASONS}
            samples = dict(self._samples)
            pending = len(self._pending)
            last_message = self._last_message_monotonic
        return {
            "broker": str(self.address),
            "topic_prefix": self.settings.topic_prefix,
            "connected": self._ready.is_set(),
            "connects": self._connects,
            "disconnects": self._disconnects,
            "connect_failures": self._connect_failures,
            "last_error": self._last_error,
            "messages": self._messages,
            "readings": self._readings,
            "batches": self._batches,
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "rejection_samples": samples,
            "pending_messages": pending,
            "sink_errors": self._sink_errors,
            "sink_failed_readings": self._sink_failed_readings,
            "last_sink_error": self._last_sink_error,
            "busy_s": round(self._busy_s, 3),
            "newest_reading_age_s": None if self._newest_epoch_ms is None
            else round(now - self._newest_epoch_ms / 1000.0, 3),
            "last_message_age_s": None if last_message is None else round(time.monotonic() - last_message, 3),
        }


# --- publishing and probing -------------------------------------------------------------------------


def encode_readings(batch: ReadingBatch, batch_form: bool = False, *, topic_prefix: str = DEFAULT_TOPIC_PREFIX,
                    time_format: Literal["epoch", "iso"] = "epoch",
                    max_batch_readings: int = 5_000) -> list[tuple[str, bytes]]:
    """A ReadingBatch -> MQTT messages (topic, payload) in the wire format of docs/mqtt.md:
    one message per reading, or batch messages of at most `max_batch_readings` readings."""
    check_topic_prefix(topic_prefix)
    if time_format not in ("epoch", "iso"):
        raise ValueError(f"time_format must be 'epoch' or 'iso', got {time_format!r}")
    if not max_batch_readings > 0:
        raise ValueError(f"max_batch_readings must be positive, got {max_batch_readings!r}")
    n = len(batch)
    if not n:
        return []
    ids = pd.Series(batch.point_id, dtype=object)
    bad_ids = ~ids.map(type).eq(str) | ids.astype(str).str.contains(r"[/+#\x00]|^$", regex=True)
    if bad_ids.any():
        raise ValueError(f"point ids unusable in an MQTT topic (empty, not text, or holding / + #): "
                         f"{ids[bad_ids].head(5).tolist()}")
    finite = np.isfinite(batch.value)
    if not finite.all():
        raise ValueError(f"non-finite values cannot be published (JSON has no NaN): points "
                         f"{ids[~finite].head(5).tolist()}")
    if time_format == "epoch":
        times = (batch.epoch_ms / 1000.0).tolist()
    else:
        times = np.char.add(np.datetime_as_string(batch.epoch_ms.astype("datetime64[ms]"), unit="ms"), "Z").tolist()
    values = batch.value.tolist()
    if batch_form:
        point_ids = ids.tolist()
        return [
            (topic_prefix, json.dumps({"p": point_ids[i:i + max_batch_readings], "t": times[i:i + max_batch_readings],
                                       "v": values[i:i + max_batch_readings]}, separators=(",", ":")).encode())
            for i in range(0, n, max_batch_readings)
        ]
    dumps = json.dumps
    return [(f"{topic_prefix}/{p}", dumps({"t": t, "v": v}, separators=(",", ":")).encode())
            for p, t, v in zip(ids.tolist(), times, values)]


def publish_readings(client_or_url: mqtt.Client | str, batch: ReadingBatch, batch_form: bool = False, *,
                     topic_prefix: str = DEFAULT_TOPIC_PREFIX, time_format: Literal["epoch", "iso"] = "epoch",
                     qos: int = 1, max_batch_readings: int = 5_000, timeout_s: float = 10.0) -> int:
    """Publish a ReadingBatch (the simulator's and the tests' side of the feed); the number of
    messages sent. Returns once the broker has them (QoS 1/2) or they are written (QoS 0).

    With a broker URL a short-lived connection is made; a paho Client must be connected with
    its network loop running (`loop_start()`)."""
    messages = encode_readings(batch, batch_form, topic_prefix=topic_prefix, time_format=time_format,
                               max_batch_readings=max_batch_readings)
    publish_raw(client_or_url, messages, qos=qos, timeout_s=timeout_s)
    return len(messages)


def publish_raw(client_or_url: mqtt.Client | str, messages: Sequence[tuple[str, bytes | str]], *, qos: int = 1,
                timeout_s: float = 10.0) -> None:
    """Publish (topic, payload) pairs as they are: what publish_readings sends, and the
    simulator's and the tests' broken sensors."""
    encoded = [(topic, payload.encode() if isinstance(payload, str) else payload) for topic, payload in messages]
    if not isinstance(client_or_url, str):
        _publish_all(client_or_url, encoded, qos, timeout_s)
        return
    address = parse_broker_url(client_or_url)
    client = _new_client(address, _client_id("hazmap-publisher"))
    client.connect_timeout = timeout_s
    try:
        client.connect(address.host, address.port)
    except OSError as exc:
        raise ConnectionError(f"cannot publish readings: MQTT broker {address} unreachable ({exc})") from exc
    client.loop_start()
    try:
        _publish_all(client, encoded, qos, timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


def _publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]], qos: int, timeout_s: float) -> None:
    infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
    failed = [info for info in infos if info.rc != mqtt.MQTT_ERR_SUCCESS]
    if failed:
        raise ConnectionError(f"{len(failed)} of {len(infos)} MQTT messages not sent: "
                              f"{mqtt.error_string(failed[0].rc)}")
    deadline = time.monotonic() + timeout_s
    for info in infos:
        info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        if not info.is_published():
            raise TimeoutError(f"{len(infos)} MQTT messages not all acknowledged within {timeout_s} s")


def broker_available(url: str, timeout_s: float = 1.0) -> bool:
    """True when an MQTT broker at `url` accepts a connection (CONNACK success) within
    `timeout_s`; False when nothing listens, the handshake does not finish, or it is refused.
    `hazmap demo` uses it to fall back to in-process readings."""
    address = parse_broker_url(url)
    client = _new_client(address, _client_id("hazmap-probe"))
    client.connect_timeout = timeout_s
    accepted = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            accepted.set()

    client.on_connect = on_connect
    deadline = time.monotonic() + timeout_s
    try:
        client.connect(address.host, address.port, keepalive=max(5, int(timeout_s) + 1))
        while not accepted.is_set() and time.monotonic() < deadline:
            if client.loop(timeout=min(0.05, max(0.0, deadline - time.monotonic()))) != mqtt.MQTT_ERR_SUCCESS:
                break
    except (OSError, ValueError):
        return False
    finally:
        client.disconnect()  # returns an error code, never raises, when not connected
    return accepted.is_set()
