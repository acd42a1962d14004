"""The senders of `hazmap simulate`: simulated PingBatches to the JT/T 808 gateway over real
TCP, one terminal connection per truck, and simulated ReadingBatches to the MQTT broker.

Both have a synchronous API for the simulator's clock loop (plain Python in a thread);
`Jt808Sender` runs its connections on its own asyncio loop in a background thread, the MQTT
sender uses paho's network thread.

    with Jt808Sender("127.0.0.1", 7808, world.vehicles) as trucks, MqttReadingSender(url) as points:
        for pings, readings in slices:
            trucks.send(pings)          # returns once the gateway has acknowledged every report
            points.send(readings)       # returns once the broker has acknowledged (QoS 1)

Wire form of the location reports: a truck with one report in a batch sends a 0x0200; a
truck with several (a slice longer than its report interval, a backlog after a staged
silence) sends them as 0x0704 location batches (type 0, regular batch upload) of at most
34 reports, so each fits one unsplit frame. The gateway takes a 0x0704's reports in order
exactly like as many 0x0200s, and its per-connection flood limit (max_frames_per_s, 50 by
default) counts frames, so a backlog costs one frame per 34 reports instead of one each.
Frames are built for the whole batch at once in numpy (fixed fields, BCD time in UTC+8,
headers, XOR checksums, 0x7D/0x7E escaping) and written with one `transport.write` per
truck; the byte output equals the codec's (`encode_message`) for the same serials.

Encoding: time is truncated to the whole second (JT/T 808 BCD time), lon/lat rounded to
1e-6 degree, speed to 0.1 km/h, heading to a whole degree in 0..359; a NaN speed or heading
(not reported) goes out as 0, altitude as 0; alarm and status bits are sent as given, with
the status hemisphere bits (south, west) set from the signs of lat/lon.

What "acknowledged" guarantees (`send(batch, wait_acked=True)`):
The gateway (data/feeds/gateway/session.py `_take_reports`) answers a 0x0200 / 0x0704 with
0x8001 result 0 right after decoding it and appending its reports to the gateway's pending
tick buffer (`Jt808Gateway._add_reports`), in the same `data_received` call on its single
event loop. That buffer is one list shared by every connection; each tick `flush()` turns it
into one PingBatch in append order and queues it for the live sink (`on_pings`) and the
store, whose BatchPipes deliver batches one at a time, first in first out. So once send()
returns, every report of the batch has been decoded and queued by the gateway (each truck's
in batch order), and every report written afterwards is queued behind all of them: the sink
receives all of slice k (in earlier calls, or earlier rows of the same call) before any
report of slice k+1, across all connections. It does NOT mean that `on_pings` has already
run (that happens up to batch_interval_s plus the sink's own time later), that the store has
written it, or that the sink queue had room (a full queue drops the batch and counts it in
the gateway's `dropped_reports`). A caller that must know slice k was processed has to ask
the gateway (its stats: sinks.live.delivered_reports).

A truck whose connection drops (the gateway closed it: idle timeout, "replaced", flood; a
reset) is reconnected, registers and authenticates again (counted in `reconnects`): at once
when it has reports not yet acknowledged, which are then sent again on the new connection in
order (counted in `resent`), else at its next send(). A report the gateway took but whose
0x8001 was lost with the connection is therefore sent twice (at least once, never lost
silently). After `reconnect_attempts` failures its unanswered reports are counted `lost` and
send() raises ConnectionError naming the truck.

Pacing: each truck's writes are held under the gateway's per-connection flood limits (see
Jt808Sender), so a small fleet in fast lockstep waits instead of being disconnected.

Idle terminals send a 0x0002 heartbeat every `heartbeat_s` so a fleet parked
for hours is not dropped by the gateway's idle timeout. Platform messages to a terminal
(0x8300 text, 0x8203 alarm confirmation) are answered with 0x0001 result 0.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Literal, Self

import numpy as np
import pandas as pd
import paho.mqtt.client as mqtt

from data.feeds.jt808 import (
    STATUS_MASKS,
    Authenticate,
    FrameSplitter,
    Heartbeat,
    Jt808Error,
    Logout,
    Register,
    RegisterReply,
    TerminalGeneralReply,
    decode_frame,
    decode_message,
    encode_message,
    unescape,
)
from data.feeds.jt808.packet import PHONE_DIGITS_2013, PHONE_DIGITS_2019
from data.feeds.loadgen import raise_open_files_limit
from data.feeds.mqtt import (
    DEFAULT_TOPIC_PREFIX,
    _client_id,
    _new_client,
    check_topic_prefix,
    parse_broker_url,
    publish_readings,
)
from spatial.model import PingBatch, ReadingBatch

log = logging.getLogger(__name__)

MSG_REPORT = 0x0200
MSG_BATCH = 0x0704
MSG_PLATFORM_REPLY = 0x8001
MSG_REGISTER = 0x0100
MSG_AUTHENTICATE = 0x0102
MSG_HEARTBEAT = 0x0002
MSG_LOGOUT = 0x0003
_FLAG, _ESCAPE = 0x7E, 0x7D

REPORT_BYTES = 28  # the fixed part of a 0x0200 body (no additional items)
BATCH_ITEM_BYTES = 2 + REPORT_BYTES  # [length WORD][0x0200 body] in a 0x0704
BATCH_HEAD_BYTES = 3  # count WORD, type BYTE
# Reports per 0x0704 so its body (3 + 30 a report) fits one frame's 1023 bytes: no sub-packets.
MAX_BATCH_REPORTS = (0x3FF - BATCH_HEAD_BYTES) // BATCH_ITEM_BYTES  # 34
BATCH_TYPE_REGULAR = 0
_BEIJING_OFFSET_S = 8 * 3600  # JT/T 808 BCD times are Beijing time; China has no DST

_REPORT_DTYPE = np.dtype([
    ("alarm", ">u4"), ("status", ">u4"), ("lat", ">u4"), ("lon", ">u4"), ("altitude", ">u2"),
    ("speed", ">u2"), ("direction", ">u2"), ("time", "u1", (6,)),
])
assert _REPORT_DTYPE.itemsize == REPORT_BYTES
_SOUTH, _WEST = STATUS_MASKS["south"], STATUS_MASKS["west"]
_REPLY_TAIL = struct.Struct(">HHB")  # 0x8001 body: reply serial, reply message id, result


# --- frames for a whole batch at once ------------------------------------------------------------------


def _bcd(values: np.ndarray) -> np.ndarray:
    """Two-digit integers -> one BCD byte each."""
    return ((values // 10) << 4 | values % 10).astype("uint8")


def _is_gbk(text: str) -> bool:
    try:
        text.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


def _first_ids(vehicle_ids: np.ndarray, bad: np.ndarray, limit: int = 5) -> list:
    return pd.unique(vehicle_ids[bad])[:limit].tolist()


def encode_report_bodies(batch: PingBatch) -> np.ndarray:
    """A PingBatch -> the 28-byte fixed 0x0200 body of every ping, as an (n, 28) uint8 array.
    Raises ValueError naming the vehicles whose values JT/T 808 cannot carry."""
    n = len(batch)
    ids = np.asarray(batch.vehicle_id, dtype=object)
    lon, lat = np.asarray(batch.lon, "float64"), np.asarray(batch.lat, "float64")
    bad = ~np.isfinite(lon) | ~np.isfinite(lat) | (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if bad.any():
        raise ValueError(f"pings with no valid position (NaN or beyond ±90/±180 degrees) cannot be sent over "
                         f"JT/T 808: vehicles {_first_ids(ids, bad)}")
    speed = np.nan_to_num(np.asarray(batch.speed_kmh, "float64"), nan=0.0)
    speed_dkmh = np.rint(speed * 10)
    bad = (speed_dkmh < 0) | (speed_dkmh > 0xFFFF)
    if bad.any():
        raise ValueError(f"speed_kmh outside 0..6553.5 cannot be sent over JT/T 808: vehicles {_first_ids(ids, bad)}")
    heading = np.nan_to_num(np.asarray(batch.heading, "float64"), nan=0.0, posinf=0.0, neginf=0.0)
    direction = np.rint(heading).astype("int64") % 360
    epoch_s = np.asarray(batch.epoch_ms, "int64") // 1000  # whole seconds, truncated (floor)
    local = (epoch_s + _BEIJING_OFFSET_S).astype("datetime64[s]")
    years = local.astype("datetime64[Y]").astype("int64") + 1970
    bad = (years < 2000) | (years > 2099)
    if bad.any():
        raise ValueError(f"times outside 2000-2099 (Beijing time) do not fit a JT/T 808 BCD time: vehicles "
                         f"{_first_ids(ids, bad)}")
    months = local.astype("datetime64[M]")
    days = (local.astype("datetime64[D]") - months.astype("datetime64[D]")).astype("int64") + 1
    second_of_day = (local - local.astype("datetime64[D]")).astype("int64")
    status = np.asarray(batch.status, "uint32") & np.uint32(~(_SOUTH | _WEST) & 0xFFFFFFFF)
    status = status | np.where(lat < 0, _SOUTH, 0).astype("uint32") | np.where(lon < 0, _WEST, 0).astype("uint32")

    records = np.zeros(n, dtype=_REPORT_DTYPE)
    records["alarm"] = np.asarray(batch.alarm, "uint32")
    records["status"] = status
    records["lat"] = np.rint(np.abs(lat) * 1e6).astype("uint32")
    records["lon"] = np.rint(np.abs(lon) * 1e6).astype("uint32")
    records["speed"] = speed_dkmh.astype("uint16")
    records["direction"] = direction.astype("uint16")
    records["time"] = np.stack([
        _bcd(years % 100), _bcd(months.astype("int64") % 12 + 1), _bcd(days),
        _bcd(second_of_day // 3600), _bcd(second_of_day // 60 % 60), _bcd(second_of_day % 60),
    ], axis=1)
    return records.view(np.uint8).reshape(n, REPORT_BYTES)


def phone_bcd(phones: Iterable[str], protocol_version: int | None) -> np.ndarray:
    """Terminal phones -> their header BCD (6 bytes in 2013, 10 in 2019), one row each."""
    digits = PHONE_DIGITS_2013 if protocol_version is None else PHONE_DIGITS_2019
    rows = []
    for phone in phones:  # once per truck at setup
        if not (phone.isascii() and phone.isdigit()) or len(phone) > digits:
            raise ValueError(f"terminal phone {phone!r} is not at most {digits} decimal digits")
        rows.append(bytes.fromhex(phone.rjust(digits, "0")))
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(-1, digits // 2)


class EncodedSlice:
    """The frames of one batch: `blob` holds every frame, grouped by terminal (each truck's in
    batch order); terminal `terminals[i]` owns the bytes `bounds[i]:bounds[i + 1]` and the
    messages `message_bounds[i]:message_bounds[i + 1]`, whose frames start at
    `message_offsets` (one more entry: the end), carry `message_reports` reports each and
    have consecutive serials from `first_serials[i]`."""

    __slots__ = ("blob", "terminals", "bounds", "message_bounds", "message_offsets", "message_reports",
                 "first_serials", "report_counts")

    def __init__(self, **columns) -> None:
        for name, value in columns.items():
            setattr(self, name, value)


def encode_slice(bodies: np.ndarray, terminal: np.ndarray, phones: np.ndarray, next_serial: np.ndarray,
                 protocol_version: int | None, *, max_batch_reports: int = MAX_BATCH_REPORTS) -> EncodedSlice:
    """Frames for the reports `bodies` (rows of encode_report_bodies) of terminals `terminal`
    (row indices into `phones`, the phone_bcd rows). A terminal's single report becomes a
    0x0200, several become 0x0704s of at most `max_batch_reports` (1 sends every report as its
    own 0x0200). Serials come from `next_serial[terminal]`, which is advanced in place."""
    if not 1 <= max_batch_reports <= MAX_BATCH_REPORTS:
        raise ValueError(f"max_batch_reports {max_batch_reports} is not in 1..{MAX_BATCH_REPORTS}")
    n = len(bodies)
    order = np.argsort(terminal, kind="stable")
    ts = terminal[order]
    rows = bodies[order]
    group_start = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    group_size = np.diff(np.r_[group_start, n])
    group_of = np.repeat(np.arange(len(group_start)), group_size)
    rank = np.arange(n) - group_start[group_of]  # position of each report in its truck's run
    message_new = rank % max_batch_reports == 0
    message_of = np.cumsum(message_new) - 1
    first_report = np.flatnonzero(message_new)
    m = len(first_report)
    message_reports = np.diff(np.r_[first_report, n])
    message_terminal = ts[first_report]
    message_rank = rank[first_report] // max_batch_reports  # message's place among its truck's
    is_batch = message_reports > 1
    rank_in_message = rank % max_batch_reports

    serials = (next_serial[message_terminal] + message_rank) & 0xFFFF
    terminals = ts[group_start]
    messages_per_group = np.diff(np.r_[np.flatnonzero(message_rank == 0), m])
    first_serials = next_serial[terminals].copy()
    next_serial[terminals] = (next_serial[terminals] + messages_per_group) & 0xFFFF

    is_2019 = protocol_version is not None
    header_bytes = 17 if is_2019 else 12
    body_len = np.where(is_batch, BATCH_HEAD_BYTES + BATCH_ITEM_BYTES * message_reports, REPORT_BYTES)
    frame_len = 1 + header_bytes + body_len + 1 + 1  # 7E header body checksum 7E
    offsets = np.r_[0, np.cumsum(frame_len)]
    starts = offsets[:-1]
    flat = np.zeros(offsets[-1], dtype=np.uint8)

    header = np.zeros((m, header_bytes), dtype=np.uint8)
    message_id = np.where(is_batch, MSG_BATCH, MSG_REPORT)
    attributes = body_len | (0x4000 if is_2019 else 0)
    header[:, 0], header[:, 1] = message_id >> 8, message_id & 0xFF
    header[:, 2], header[:, 3] = attributes >> 8, attributes & 0xFF
    phone_at = 4
    if is_2019:
        header[:, 4] = protocol_version
        phone_at = 5
    header[:, phone_at:header_bytes - 2] = phones[message_terminal]
    header[:, -2], header[:, -1] = serials >> 8, serials & 0xFF
    flat[(starts + 1)[:, None] + np.arange(header_bytes)] = header

    batch_at = starts[is_batch] + 1 + header_bytes
    flat[batch_at] = message_reports[is_batch] >> 8
    flat[batch_at + 1] = message_reports[is_batch] & 0xFF
    flat[batch_at + 2] = BATCH_TYPE_REGULAR
    in_batch = is_batch[message_of]
    report_at = (starts[message_of] + 1 + header_bytes
                 + np.where(in_batch, BATCH_HEAD_BYTES + rank_in_message * BATCH_ITEM_BYTES + 2, 0))
    flat[report_at[:, None] + np.arange(REPORT_BYTES)] = rows
    flat[report_at[in_batch] - 2] = REPORT_BYTES >> 8
    flat[report_at[in_batch] - 1] = REPORT_BYTES & 0xFF
    # XOR of each frame's content; its delimiter and checksum slots are still 0.
    checksum_at = offsets[1:] - 2
    flat[checksum_at] = np.bitwise_xor.reduceat(flat, starts)

    special = (flat == _FLAG) | (flat == _ESCAPE)  # the delimiters are not in yet: never escaped
    width = 1 + special.astype(np.int64)
    out_at = np.r_[0, np.cumsum(width)]
    out = np.repeat(flat, width)
    escaped = np.flatnonzero(special)
    out[out_at[escaped]] = _ESCAPE
    out[out_at[escaped] + 1] = np.where(flat[escaped] == _ESCAPE, 0x01, 0x02)
    out[out_at[starts]] = _FLAG
    out[out_at[offsets[1:] - 1]] = _FLAG

    message_offsets = out_at[offsets]
    message_bounds = np.r_[np.flatnonzero(message_rank == 0), m]
    return EncodedSlice(
        blob=out.tobytes(), terminals=terminals, bounds=message_offsets[message_bounds],
        message_bounds=message_bounds, message_offsets=message_offsets, message_reports=message_reports,
        first_serials=first_serials, report_counts=group_size,
    )


class GatewayUnreachable(ConnectionError):
    """Nothing accepts a TCP connection at the gateway's address (within timeout_s)."""


class GatewayRefused(ConnectionError):
    """The gateway took the connection but refused, dropped or did not answer the session opening."""


# --- one terminal connection ---------------------------------------------------------------------------


class _Chunk:
    """Frames of one send() on one truck, kept until the platform has answered each."""

    __slots__ = ("blob", "offsets", "reports", "first_serial", "answered", "written")

    def __init__(self, blob: bytes, offsets: list[int], reports: list[int], first_serial: int) -> None:
        self.blob, self.offsets, self.reports, self.first_serial = blob, offsets, reports, first_serial
        self.answered = 0  # frames answered so far (the gateway answers each frame once, in order)
        self.written = False  # on some connection already (what is unanswered then is sent again)

    def unanswered(self) -> bytes:
        return self.blob[self.offsets[self.answered]:]

    def reports_left(self) -> int:
        return sum(self.reports[self.answered:])


class _Terminal:
    __slots__ = ("index", "vehicle_id", "phone", "plate", "connection", "reconnecting", "chunks")

    def __init__(self, index: int, vehicle_id: str, phone: str, plate: str) -> None:
        self.index, self.vehicle_id, self.phone, self.plate = index, vehicle_id, phone, plate
        self.connection: _Connection | None = None  # set once authenticated
        self.reconnecting = False
        self.chunks: deque[_Chunk] = deque()


class _Connection(asyncio.Protocol):
    """The terminal's side of one TCP connection: 0x8001 answers to reports go straight to the
    sender's accounting; register/authenticate answers to the handshake's futures."""

    def __init__(self, sender: "Jt808Sender", terminal: _Terminal) -> None:
        self.sender, self.terminal = sender, terminal
        self.splitter = FrameSplitter()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.waiters: dict[tuple[int, int], asyncio.Future] = {}  # (message id, serial) -> its answer

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for frame in self.splitter.feed(data):  # checksum already verified by the splitter
            content = unescape(frame[1:-1])
            message_id = content[0] << 8 | content[1]
            body_len = (content[2] << 8 | content[3]) & 0x3FF
            if message_id == MSG_PLATFORM_REPLY and body_len == _REPLY_TAIL.size:
                serial, answered_id, result = _REPLY_TAIL.unpack_from(content, len(content) - 1 - _REPLY_TAIL.size)
                if answered_id in (MSG_REPORT, MSG_BATCH):
                    self.sender._on_answer(self.terminal, serial, result)
                else:
                    self._resolve((answered_id, serial), result)
            else:
                self._other(frame)

    def _other(self, frame: bytes) -> None:
        try:
            packet = decode_frame(frame)
            message = decode_message(packet)
        except Jt808Error as error:
            self.sender._count_error(f"{self.terminal.vehicle_id}: undecodable platform frame: {error}")
            return
        if isinstance(message, RegisterReply):
            self._resolve((MSG_REGISTER, message.reply_serial), message)
        else:  # 0x8300 text, 0x8203 alarm confirmation ...: a terminal answers 0x0001 ok
            self.sender.platform_messages += 1
            reply = TerminalGeneralReply(packet.header.serial, packet.header.message_id, 0)
            self.write(self.sender._frame(self.terminal, reply))

    def _resolve(self, key: tuple[int, int], value) -> None:
        future = self.waiters.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)

    async def request(self, key: tuple[int, int], frame: bytes, timeout_s: float):
        future = asyncio.get_running_loop().create_future()
        self.waiters[key] = future
        self.write(frame)
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self.waiters.pop(key, None)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc) -> None:
        for future in self.waiters.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the gateway closed the connection of "
                                                     f"{self.terminal.vehicle_id}"))
        self.waiters.clear()
        if not self.closed.done():
            self.closed.set_result(exc)
        self.sender._on_lost(self.terminal, self)


# --- the JT/T 808 sender -------------------------------------------------------------------------------


class Jt808Sender:
    """Carries PingBatches to a JT/T 808 gateway, one terminal (TCP connection) per truck.

    `vehicles` is world.vehicles (id, terminal_phone, optional plate). `protocol_version` None
    speaks the 2013 header, an int the 2019 one with that version byte. `timeout_s` bounds
    connecting, each handshake answer and the wait for a send()'s acknowledgements.

    Pacing: the gateway closes a connection that sends more than GatewaySettings
    max_frames_per_s (50) or max_bytes_per_s (64 KiB) beyond a 5 s burst ("flood"). Each
    truck's writes are therefore held to `max_frames_per_s` / `max_bytes_per_s` with a
    `burst_s` allowance: a send() that would exceed them waits first (counted in paced_s).
    With one report per truck per slice that caps lockstep at 40 slices/s; a simulator running
    faster sends longer slices, whose several reports per truck go as 0x0704 (34 a frame).
    None turns pacing off (for a gateway configured with higher limits).
    """

    def __init__(self, host: str, port: int, vehicles: pd.DataFrame, *, protocol_version: int | None = None,
                 connect_concurrency: int = 200, timeout_s: float = 30.0, heartbeat_s: float = 60.0,
                 reconnect_attempts: int = 5, max_batch_reports: int = MAX_BATCH_REPORTS,
                 max_frames_per_s: float | None = 40.0, max_bytes_per_s: float | None = 48 * 1024,
                 burst_s: float = 2.0) -> None:
        missing = {"id", "terminal_phone"} - set(vehicles.columns)
        if missing:
            raise ValueError(f"vehicles needs columns id and terminal_phone; missing {sorted(missing)}")
        if protocol_version is not None and not 0 <= protocol_version <= 0xFF:
            raise ValueError(f"protocol_version {protocol_version!r} is not None (2013) or a byte (2019)")
        for name, value in (("connect_concurrency", connect_concurrency), ("timeout_s", timeout_s),
                            ("heartbeat_s", heartbeat_s), ("reconnect_attempts", reconnect_attempts)):
            if not value > 0:
                raise ValueError(f"Jt808Sender {name} must be positive, got {value!r}")
        if not 1 <= max_batch_reports <= MAX_BATCH_REPORTS:
            raise ValueError(f"max_batch_reports {max_batch_reports} is not in 1..{MAX_BATCH_REPORTS}")
        for name, value in (("max_frames_per_s", max_frames_per_s), ("max_bytes_per_s", max_bytes_per_s),
                            ("burst_s", burst_s)):
            if value is not None and not value > 0:
                raise ValueError(f"Jt808Sender {name} must be positive (or None for no pacing), got {value!r}")
        ids = vehicles["id"].astype(str).to_numpy(dtype=object)
        phones = vehicles["terminal_phone"].astype(str).str.strip().to_numpy(dtype=object)
        for what, column in (("vehicle ids", ids), ("terminal phones", phones)):
            repeated = pd.Series(column)[pd.Series(column).duplicated()].unique()[:5].tolist()
            if repeated:
                raise ValueError(f"vehicles: {what} appear more than once: {repeated}")
        plates = (vehicles["plate"].fillna("").astype(str).to_numpy(dtype=object) if "plate" in vehicles
                  else np.full(len(ids), "", dtype=object))
        not_gbk = [v for v, plate in zip(ids, plates) if not _is_gbk(plate)]  # once per truck at setup
        if not_gbk:
            raise ValueError(f"vehicles: plates that GBK (the JT/T 808 text encoding) cannot carry: {not_gbk[:5]}")
        self.host, self.port = host, port
        self.protocol_version = protocol_version
        self.connect_concurrency = connect_concurrency
        self.timeout_s = timeout_s
        self.heartbeat_s = heartbeat_s
        self.reconnect_attempts = reconnect_attempts
        self.max_batch_reports = max_batch_reports
        self.max_frames_per_s, self.max_bytes_per_s, self.burst_s = max_frames_per_s, max_bytes_per_s, burst_s
        self._vehicle_ids, self._phones, self._plates = ids, phones, plates
        self._table_phone_rows = phone_bcd(phones, protocol_version)
        self._phone_rows = self._table_phone_rows
        self._table_index = pd.Index(ids)
        self._terminals: list[_Terminal] = []
        self._index = pd.Index([], dtype=object)  # vehicle id -> position in _terminals
        self._next_serial = np.zeros(0, dtype=np.int64)
        self._last_write = np.zeros(0, dtype="float64")
        self._frame_tokens = np.zeros(0, dtype="float64")  # pacing buckets, one per truck
        self._byte_tokens = np.zeros(0, dtype="float64")
        self._tokens_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._gate: asyncio.Semaphore | None = None
        self._idle: asyncio.Event | None = None
        self._heartbeat_task: asyncio.Task | None = None
        self._closing = False
        self._outstanding = 0  # frames written or queued and not yet answered
        self._failures: list[str] = []  # reconnects given up since the last send() wait
        self._refused: list[str] = []  # a few vehicles whose reports were answered with a non-zero result
        self._refused_frames = 0  # ... and how many frames, since the last send() wait
        # counters (stats)
        self.sent = 0
        self.acked = 0
        self.refused = 0
        self.resent = 0
        self.lost = 0
        self.frames = 0
        self.reconnects = 0
        self.drops = 0
        self.errors = 0
        self.heartbeats = 0
        self.platform_messages = 0
        self.stray_answers = 0
        self.paced_s = 0.0
        self.last_error: str | None = None

    # --- life cycle (caller's thread) ------------------------------------------------------------------

    def start(self, vehicle_ids: Iterable[str] | None = None) -> Self:
        """Connect, register and authenticate one terminal per truck (all, or `vehicle_ids`).
        Raises ConnectionError when the gateway is unreachable or refuses a terminal."""
        if self._loop is not None:
            raise RuntimeError("Jt808Sender.start(): already started")
        if self._closing:
            raise RuntimeError("Jt808Sender.start(): this sender was closed (or failed to start); make a new one")
        if vehicle_ids is None:
            rows = np.arange(len(self._vehicle_ids))
        else:
            wanted = pd.unique(np.asarray(list(vehicle_ids), dtype=object))
            rows = self._table_index.get_indexer(wanted)
            if (rows < 0).any():
                raise ValueError(f"vehicle ids not in the vehicles table: {wanted[rows < 0][:5].tolist()}")
        # One socket a truck (and, on one machine, the gateway's end too).
        raise_open_files_limit()
        self._terminals = [_Terminal(i, self._vehicle_ids[r], self._phones[r], self._plates[r])
                           for i, r in enumerate(rows.tolist())]  # once per truck at start
        self._phone_rows = self._table_phone_rows[rows]
        self._index = pd.Index(self._vehicle_ids[rows])
        self._next_serial = np.zeros(len(rows), dtype=np.int64)
        self._last_write = np.zeros(len(rows), dtype="float64")
        self._frame_tokens = np.full(len(rows), (self.max_frames_per_s or 0) * self.burst_s)
        self._byte_tokens = np.full(len(rows), (self.max_bytes_per_s or 0) * self.burst_s)
        self._tokens_at = time.monotonic()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jt808-sender", daemon=True)
        self._thread.start()
        try:
            self._run(self._start(), None)
        except BaseException:
            self._shutdown(logout=False)
            raise
        return self

    def send(self, batch: PingBatch, *, wait_acked: bool = True) -> None:
        """Write every report of `batch` on its truck's connection (in batch order per truck);
        with `wait_acked`, return once the gateway has answered all of them (see the module
        docstring for what that guarantees). ValueError for a vehicle without a terminal or a
        value JT/T 808 cannot carry (nothing is sent then); TimeoutError when answers do not
        come within timeout_s; ConnectionError when a truck cannot be reconnected; RuntimeError
        when the gateway refused reports."""
        if not isinstance(batch, PingBatch):
            raise TypeError(f"Jt808Sender.send needs a PingBatch, got {type(batch).__name__}")
        if self._loop is None or self._closing:
            raise RuntimeError("Jt808Sender.send(): start() the sender first")
        if not len(batch):
            return
        ids = np.asarray(batch.vehicle_id, dtype=object)
        terminal = self._index.get_indexer(ids)
        if (terminal < 0).any():
            unknown = pd.unique(ids[terminal < 0])
            raise ValueError(f"no terminal for vehicle ids {unknown[:5].tolist()}"
                             f"{f' (+{len(unknown) - 5} more)' if len(unknown) > 5 else ''}: not in the vehicles "
                             f"table, or not among the trucks start() connected")
        bodies = encode_report_bodies(batch)  # validation and the per-ping work, before anything is written
        self._run(self._send(bodies, terminal.astype(np.int64), wait_acked), None)

    def close(self) -> None:
        """Log every terminal out, close the connections and stop the loop thread."""
        if self._loop is None:
            return
        self._shutdown(logout=True)

    def stats(self) -> dict:
        return {
            "terminals": len(self._terminals),
            "connected": sum(t.connection is not None for t in self._terminals),
            "sent": self.sent, "acked": self.acked, "refused": self.refused, "resent": self.resent,
            "lost": self.lost, "frames": self.frames, "outstanding_frames": self._outstanding,
            "reconnects": self.reconnects, "drops": self.drops, "errors": self.errors,
            "heartbeats": self.heartbeats, "platform_messages": self.platform_messages,
            "stray_answers": self.stray_answers, "paced_s": round(self.paced_s, 3), "last_error": self.last_error,
        }

    def __enter__(self) -> Self:
        return self.start() if self._loop is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self, coroutine, timeout_s: float | None):
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def _shutdown(self, logout: bool) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        try:
            if loop.is_running():
                self._run(self._stop(logout), None)
        finally:
            if loop.is_running():
                loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(10)
            loop.close()
            self._loop = self._thread = None

    # --- on the loop ---------------------------------------------------------------------------------------

    async def _start(self) -> None:
        self._gate = asyncio.Semaphore(self.connect_concurrency)
        self._idle = asyncio.Event()
        self._idle.set()
        where = f"JT/T 808 gateway at {self.host}:{self.port}"
        if not self._terminals:
            return
        # One terminal first: an unreachable or refusing gateway is told at once, not 3,419 times.
        first, rest = self._terminals[0], self._terminals[1:]
        try:
            await self._open(first)
        except GatewayUnreachable:
            raise
        except (OSError, asyncio.TimeoutError, RuntimeError) as exc:
            raise GatewayRefused(f"{where} did not accept terminal {first.phone} (vehicle {first.vehicle_id}): "
                                 f"{type(exc).__name__}: {exc}") from exc
        results = await asyncio.gather(*(self._open(t) for t in rest), return_exceptions=True)
        failed = [(t, r) for t, r in zip(rest, results) if isinstance(r, BaseException)]
        if failed:
            terminal, exc = failed[0]
            raise GatewayRefused(f"{where}: {len(failed)} of {len(self._terminals)} terminals could not connect "
                                  f"and authenticate; first: vehicle {terminal.vehicle_id} ({terminal.phone}): "
                                  f"{type(exc).__name__}: {exc}")
        self._heartbeat_task = asyncio.get_running_loop().create_task(self._heartbeats())

    def _frame(self, terminal: _Terminal, message) -> bytes:
        serial = int(self._next_serial[terminal.index])
        self._next_serial[terminal.index] = (serial + 1) & 0xFFFF
        return encode_message(message, terminal.phone, serial, self.protocol_version)

    def _serial_frame(self, terminal: _Terminal, message) -> tuple[int, bytes]:
        serial = int(self._next_serial[terminal.index])
        return serial, self._frame(terminal, message)

    async def _open(self, terminal: _Terminal) -> None:
        """Connect, register, authenticate; the connection becomes the terminal's."""
        assert self._gate is not None
        loop = asyncio.get_running_loop()
        async with self._gate:
            try:
                _, connection = await asyncio.wait_for(
                    loop.create_connection(lambda: _Connection(self, terminal), self.host, self.port), self.timeout_s)
            except (OSError, asyncio.TimeoutError) as exc:
                raise GatewayUnreachable(f"JT/T 808 gateway at {self.host}:{self.port} unreachable: "
                                         f"{type(exc).__name__}: {exc}") from exc
            try:
                serial, frame = self._serial_frame(
                    terminal, Register(33, 200, "HZMAP", "SIM-808", terminal.phone[-7:], 2 if terminal.plate else 0,
                                       terminal.plate or terminal.vehicle_id))
                reply = await connection.request((MSG_REGISTER, serial), frame, self.timeout_s)
                if reply.result != 0:
                    why = " (terminal not in the gateway's vehicles table)" if reply.result == 4 else ""
                    raise GatewayRefused(f"register refused with result {reply.result}{why}")
                if self.protocol_version is None:
                    authenticate = Authenticate(reply.auth_code)
                else:
                    authenticate = Authenticate(reply.auth_code, terminal.phone[-15:].rjust(15, "0"), "HZMAP-SIM")
                serial, frame = self._serial_frame(terminal, authenticate)
                result = await connection.request((MSG_AUTHENTICATE, serial), frame, self.timeout_s)
                if result != 0:
                    raise GatewayRefused(f"authentication refused with result {result}")
            except BaseException:
                if connection.transport is not None:
                    connection.transport.abort()
                raise
        terminal.connection = connection
        self._last_write[terminal.index] = time.monotonic()

    async def _send(self, bodies: np.ndarray, terminal: np.ndarray, wait_acked: bool) -> None:
        assert self._idle is not None
        encoded = encode_slice(bodies, terminal, self._phone_rows, self._next_serial, self.protocol_version,
                               max_batch_reports=self.max_batch_reports)
        await self._pace(encoded)
        blob = encoded.blob
        bounds = encoded.bounds.tolist()
        message_bounds = encoded.message_bounds.tolist()
        offsets = encoded.message_offsets.tolist()
        reports = encoded.message_reports.tolist()
        first_serials = encoded.first_serials.tolist()
        terminals = self._terminals
        frames = message_bounds[-1]
        self._outstanding += frames
        self._idle.clear()
        # One write per truck: the loop is over the trucks of this batch (sockets), not pings.
        for i, index in enumerate(encoded.terminals.tolist()):
            t = terminals[index]
            start, end = bounds[i], bounds[i + 1]
            first, last = message_bounds[i], message_bounds[i + 1]
            chunk = _Chunk(blob[start:end], [o - start for o in offsets[first:last + 1]], reports[first:last],
                           first_serials[i])
            t.chunks.append(chunk)
            if t.connection is not None:
                t.connection.write(chunk.blob)
                chunk.written = True
            elif not t.reconnecting:
                self._reconnect_soon(t)
        self._last_write[encoded.terminals] = time.monotonic()
        self.sent += len(bodies)
        self.frames += frames
        if wait_acked:
            await self._wait_answered()

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed, self._tokens_at = now - self._tokens_at, now
        for tokens, rate in ((self._frame_tokens, self.max_frames_per_s), (self._byte_tokens, self.max_bytes_per_s)):
            if rate is not None:
                np.minimum(tokens + elapsed * rate, rate * self.burst_s, out=tokens)

    async def _pace(self, encoded: EncodedSlice) -> None:
        """Wait until every truck of the slice has the frame and byte budget for its writes."""
        if self.max_frames_per_s is None and self.max_bytes_per_s is None:
            return
        trucks = encoded.terminals
        needs = ((self._frame_tokens, self.max_frames_per_s, np.diff(encoded.message_bounds)),
                 (self._byte_tokens, self.max_bytes_per_s, np.diff(encoded.bounds)))
        self._refill()
        wait_s = max(float(((need - tokens[trucks]) / rate).max()) for tokens, rate, need in needs if rate is not None)
        if wait_s > 0:
            self.paced_s += wait_s
            await asyncio.sleep(wait_s)
            self._refill()
        for tokens, rate, need in needs:
            if rate is not None:
                tokens[trucks] -= need

    async def _wait_answered(self) -> None:
        assert self._idle is not None
        deadline = time.monotonic() + self.timeout_s
        while self._outstanding and not self._failures:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                waiting = [t for t in self._terminals if t.chunks]
                left = sum(c.reports_left() for t in waiting for c in t.chunks)
                raise TimeoutError(f"{left} reports of {len(waiting)} trucks not acknowledged by the JT/T 808 gateway "
                                   f"at {self.host}:{self.port} within {self.timeout_s} s (e.g. "
                                   f"{[t.vehicle_id for t in waiting[:5]]})") from None
        failures, self._failures = self._failures, []
        refused, refused_frames, self._refused, self._refused_frames = self._refused, self._refused_frames, [], 0
        if failures:
            raise ConnectionError(f"{len(failures)} trucks lost their connection and could not reconnect; "
                                  f"first: {failures[0]}")
        if refused_frames:
            raise RuntimeError(f"the JT/T 808 gateway refused {refused_frames} report frames (vehicles "
                               f"{pd.unique(np.array(refused, dtype=object)).tolist()}...); see its stats for why")

    def _on_answer(self, terminal: _Terminal, serial: int, result: int) -> None:
        """A 0x8001 to one of the terminal's report frames (in order on the connection)."""
        chunk = terminal.chunks[0] if terminal.chunks else None
        if chunk is None or serial != (chunk.first_serial + chunk.answered) & 0xFFFF:
            self.stray_answers += 1
            return
        reports = chunk.reports[chunk.answered]
        chunk.answered += 1
        if result == 0:
            self.acked += reports
        else:
            self.refused += reports
            self._refused_frames += 1
            if len(self._refused) < 5:
                self._refused.append(terminal.vehicle_id)
        if chunk.answered == len(chunk.reports):
            terminal.chunks.popleft()
        self._answered(1)

    def _answered(self, frames: int) -> None:
        assert self._idle is not None
        self._outstanding -= frames
        if not self._outstanding:
            self._idle.set()

    def _on_lost(self, terminal: _Terminal, connection: _Connection) -> None:
        if terminal.connection is not connection:  # a handshake that failed, or an old connection
            return
        terminal.connection = None
        if self._closing:
            return
        self.drops += 1
        if terminal.chunks and not terminal.reconnecting:
            self._reconnect_soon(terminal)

    def _reconnect_soon(self, terminal: _Terminal) -> None:
        terminal.reconnecting = True
        asyncio.get_running_loop().create_task(self._reconnect(terminal))

    async def _reconnect(self, terminal: _Terminal) -> None:
        """Open a new connection for the truck and send what it has not had answered, in order."""
        last: BaseException | None = None
        try:
            for attempt in range(self.reconnect_attempts):
                if self._closing:
                    return
                try:
                    await self._open(terminal)
                except (OSError, asyncio.TimeoutError, RuntimeError) as exc:
                    last = exc
                    self._count_error(f"{terminal.vehicle_id}: reconnect attempt {attempt + 1}: "
                                      f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
                    continue
                self.reconnects += 1
                for chunk in terminal.chunks:
                    if chunk.written:
                        self.resent += chunk.reports_left()
                    chunk.written = True
                    terminal.connection.write(chunk.unanswered())
                return
            # Given up: its unanswered reports are lost (counted) so the fleet's sends go on.
            lost_frames = sum(len(c.reports) - c.answered for c in terminal.chunks)
            self.lost += sum(c.reports_left() for c in terminal.chunks)
            terminal.chunks.clear()
            self._failures.append(f"vehicle {terminal.vehicle_id} ({terminal.phone}): {type(last).__name__}: {last}")
            self._answered(lost_frames)
            if self._idle is not None:
                self._idle.set()
        finally:
            terminal.reconnecting = False

    def _count_error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
        log.warning("JT/T 808 sender: %s", text)

    async def _heartbeats(self) -> None:
        """0x0002 from every connected terminal idle for heartbeat_s (the gateway drops silent ones)."""
        while True:
            await asyncio.sleep(min(5.0, self.heartbeat_s / 4))
            now = time.monotonic()
            idle = np.flatnonzero(self._last_write < now - self.heartbeat_s)
            for index in idle.tolist():  # trucks, at most once per heartbeat_s each
                terminal = self._terminals[index]
                if terminal.connection is not None:
                    terminal.connection.write(self._frame(terminal, Heartbeat()))
                    self.heartbeats += 1
            self._last_write[idle] = now

    async def _stop(self, logout: bool) -> None:
        self._closing = True
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        connections = [t.connection for t in self._terminals if t.connection is not None]
        if logout:
            for terminal in self._terminals:  # once per truck at close
                if terminal.connection is not None:
                    terminal.connection.write(self._frame(terminal, Logout()))
            # The gateway answers a logout and closes the connection.
            waits = [asyncio.wait_for(asyncio.shield(c.closed), self.timeout_s) for c in connections]
            await asyncio.gather(*waits, return_exceptions=True)
        for connection in connections:
            if connection.transport is not None and not connection.closed.done():
                connection.transport.abort()
        for terminal in self._terminals:
            terminal.connection = None
        await asyncio.sleep(0)


# --- the MQTT sender ----------------------------------------------------------------------------------


class MqttReadingSender:
    """Publishes ReadingBatches to the broker in the wire format of docs/mqtt.md (batch form
    by default: one message per `max_batch_readings` readings), QoS 1, over one connection
    kept open; send() returns once the broker has acknowledged every message. paho's thread
    reconnects after a broker restart; a send() meanwhile waits up to `timeout_s` for it."""

    def __init__(self, broker_url: str, *, topic_prefix: str = DEFAULT_TOPIC_PREFIX, batch_form: bool = True,
                 qos: int = 1, time_format: Literal["epoch", "iso"] = "epoch", max_batch_readings: int = 5_000,
                 timeout_s: float = 10.0) -> None:
        check_topic_prefix(topic_prefix)
        if qos not in (0, 1, 2):
            raise ValueError(f"MqttReadingSender qos must be 0, 1 or 2, got {qos!r}")
        if time_format not in ("epoch", "iso"):
            raise ValueError(f"MqttReadingSender time_format must be 'epoch' or 'iso', got {time_format!r}")
        if not timeout_s > 0 or not max_batch_readings > 0:
            raise ValueError("MqttReadingSender timeout_s and max_batch_readings must be positive")
        self.address = parse_broker_url(broker_url)
        self.topic_prefix, self.batch_form, self.qos = topic_prefix, batch_form, qos
        self.time_format, self.max_batch_readings, self.timeout_s = time_format, max_batch_readings, timeout_s
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._refusal: str | None = None
        self.readings = 0
        self.messages = 0
        self.batches = 0
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None

    def start(self) -> Self:
        """Connect; ConnectionError when the broker is unreachable or refuses the connection."""
        if self._client is not None:
            raise RuntimeError("MqttReadingSender.start(): already started")
        client = _new_client(self.address, _client_id("hazmap-sim"))
        client.connect_timeout = self.timeout_s
        client.reconnect_delay_set(1, 10)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        try:
            client.connect(self.address.host, self.address.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise ConnectionError(f"MQTT broker {self.address} unreachable: {type(exc).__name__}: {exc}") from exc
        client.loop_start()
        if not self._connected.wait(self.timeout_s):
            client.disconnect()
            client.loop_stop()
            raise ConnectionError(f"MQTT broker {self.address} did not accept the connection within {self.timeout_s} s"
                                  f"{f': {self._refusal}' if self._refusal else ''}")
        self._client = client
        return self

    def send(self, batch: ReadingBatch) -> None:
        """Publish the readings; return once the broker has acknowledged them (QoS 1/2)."""
        if not isinstance(batch, ReadingBatch):
            raise TypeError(f"MqttReadingSender.send needs a ReadingBatch, got {type(batch).__name__}")
        if self._client is None:
            raise RuntimeError("MqttReadingSender.send(): start() the sender first")
        if not len(batch):
            return
        if not self._connected.wait(self.timeout_s):
            raise ConnectionError(f"MQTT broker {self.address} has been unreachable for {self.timeout_s} s "
                                  f"({self.last_error})")
        self.messages += publish_readings(self._client, batch, self.batch_form, topic_prefix=self.topic_prefix,
                                          time_format=self.time_format, qos=self.qos,
                                          max_batch_readings=self.max_batch_readings, timeout_s=self.timeout_s)
        self.readings += len(batch)
        self.batches += 1

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
            self._connected.clear()

    def stats(self) -> dict:
        return {"broker": str(self.address), "topic_prefix": self.topic_prefix, "connected": self._connected.is_set(),
                "readings": self.readings, "messages": self.messages, "batches": self.batches,
                "connects": self.connects, "disconnects": self.disconnects, "last_error": self.last_error}

    def __enter__(self) -> Self:
        return self.start() if self._client is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusal = self.last_error = f"broker refused the connection: {reason_code}"
            return
        self.connects += 1
        self._connected.set()

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if self._client is not None:
            self.disconnects += 1
            self.last_error = f"disconnected: {reason_code}"
