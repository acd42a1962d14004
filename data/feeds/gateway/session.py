"""One terminal connection: framing, the JT/T 808 session (register, authenticate,
heartbeat, reports, logout), replies, and the per-connection limits."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import TYPE_CHECKING

from data.feeds.jt808 import (
    Authenticate,
    FrameSplitter,
    Header,
    Heartbeat,
    Jt808Error,
    LocationBatch,
    LocationReport,
    Logout,
    PlatformGeneralReply,
    Reassembler,
    Register,
    RegisterReply,
    TerminalGeneralReply,
    close_frame,
    decode_message,
    decode_payload,
    encode_message,
    phone_key,
    unescape,
)

if TYPE_CHECKING:
    from data.feeds.gateway.server import Jt808Gateway

log = logging.getLogger(__name__)

# 0x8001 results (JT/T 808 §8.2).
RESULT_OK = 0
RESULT_FAILED = 1
RESULT_MESSAGE_ERROR = 2
RESULT_UNSUPPORTED = 3
# 0x8100 result: terminal not in the database.
REGISTER_TERMINAL_UNKNOWN = 4

_UNSUPPORTED_REASONS = frozenset({"unknown_message", "encrypted"})
_REPLY_TAIL = struct.Struct(">HHHB")  # platform serial | reply serial, reply message id, result


def readable_header(frame: bytes) -> Header | None:
    """The header fields needed to answer a frame the decoder refused (wrong body length, bad
    sub-packet numbers ...): message id, phone, serial, version; None when even those are
    unreadable. The splitter has already checked escapes and checksum."""
    try:
        data = unescape(frame[1:-1])[:-1]
    except Jt808Error:
        return None
    if len(data) < 12:
        return None
    message_id = int.from_bytes(data[0:2], "big")
    is_2019 = bool(data[2] & 0x40)
    if is_2019:
        if len(data) < 17:
            return None
        version, raw_phone, serial_at = data[4], data[5:15], 15
    else:
        version, raw_phone, serial_at = None, data[4:10], 10
    phone = raw_phone.hex()
    if not phone.isdigit():
        return None
    return Header(message_id, phone, int.from_bytes(data[serial_at : serial_at + 2], "big"), version)


class _TokenBucket:
    """`rate` per second with a depth of `rate * burst_s`; take() is False once it runs dry."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, burst_s: float, now: float) -> None:
        self.rate = rate
        self.capacity = rate * burst_s
        self.tokens = self.capacity
        self.stamp = now

    def take(self, amount: float, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= amount
        return self.tokens >= 0


class TerminalSession(asyncio.Protocol):
    """The gateway's side of one TCP connection."""

    def __init__(self, gateway: "Jt808Gateway") -> None:
        self.gateway = gateway
        settings = gateway.settings
        self.transport: asyncio.Transport | None = None
        self.peer = None
        self.splitter = FrameSplitter(settings.max_frame_bytes)
        self.reassembler = Reassembler(
            timeout_s=settings.reassembly_timeout_s,
            max_pending=16,
            max_message_bytes=settings.reassembly_max_message_bytes,
            max_pending_bytes=2 * settings.reassembly_max_message_bytes,
        )
        now = time.monotonic()
        self.connected_at = now
        self.last_activity = now
        self._bytes = _TokenBucket(settings.max_bytes_per_s, settings.flood_burst_s, now)
        self._frames = _TokenBucket(settings.max_frames_per_s, settings.flood_burst_s, now)
        self._splitter_bad = 0  # splitter rejections already passed on to the gateway
        self._splitter_seen: dict[str, int] = {}  # ... and by reason
        self.bad_frames = 0
        self.phone: str | None = None  # digits as the terminal sends them (12 or 20)
        self.protocol_version: int | None = None
        self.registered = False
        self.authenticated = False
        self.closing = False
        self._serial = 0
        self._reply_key: tuple | None = None
        self._reply_prefix = b""
        self._waiting: dict[int, asyncio.Future] = {}  # platform serial -> the terminal's 0x0001 result

    # --- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        if not self.gateway._admit(self):
            self.closing = True
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        gateway = self.gateway
        if self.splitter.pending_bytes:  # a half frame, then the connection ended
            gateway._reject("truncated")
        lost_fragments = self.reassembler.expired + self.reassembler.evicted + len(self.reassembler)
        if lost_fragments:
            gateway._reject("subpackage_expired", lost_fragments)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"terminal {self.phone} disconnected"))
        self._waiting.clear()
        gateway._forget(self, "peer_closed" if not self.closing else None)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        now = time.monotonic()
        self.last_activity = now
        gateway = self.gateway
        gateway.bytes_received += len(data)
        if not self._bytes.take(len(data), now):
            self.close("flood", rejected=1)
            return
        frames = self.splitter.feed(data)
        splitter = self.splitter
        bad = splitter.oversize + sum(splitter.rejected.values())
        if bad != self._splitter_bad:
            self._pass_on_splitter_rejections()
            self.bad_frames += bad - self._splitter_bad
            self._splitter_bad = bad
        if not frames:
            self._check_bad_frames()
            return
        if not self._frames.take(len(frames), now):
            self.close("flood", rejected=len(frames))
            return
        gateway.frames_received += len(frames)
        for frame in frames:
            self._handle(frame, now)
            if self.closing:
                return
        self._check_bad_frames()
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > gateway.settings.max_write_buffer_bytes:
            self.close("slow_reader")

    # --- frames -----------------------------------------------------------------------------------

    def _handle(self, frame: bytes, received: float) -> None:
        try:
            # The splitter has checked delimiters, escapes and checksum: only the header is left to read.
            packet = decode_payload(unescape(frame[1:-1])[:-1])
        except Jt808Error as error:
            self._refuse(error.reason, readable_header(frame))
            return
        header = packet.header
        self.phone, self.protocol_version = header.phone, header.protocol_version
        try:
            whole = self.reassembler.feed(packet)
        except Jt808Error as error:
            self._refuse(error.reason, header)
            return
        if whole is None:  # a fragment: acknowledged as it comes, the message when it is whole
            self._reply(header, RESULT_OK)
            return
        try:
            message = decode_message(whole)
        except Jt808Error as error:
            self._refuse(error.reason, header)
            return
        handler = _HANDLERS.get(type(message))
        if handler is None:  # a platform-side message sent by a terminal
            self._refuse("unknown_message", header)
            return
        handler(self, header, message, received)

    def _on_register(self, header: Header, message: Register, received: float) -> None:
        gateway = self.gateway
        key = phone_key(header.phone)
        if key not in gateway.vehicle_by_phone and not gateway.settings.register_unknown_terminals:
            gateway.count("register_refused")
            self._send(RegisterReply(header.serial, REGISTER_TERMINAL_UNKNOWN), header)
            return
        self.registered = True
        gateway.count("registered")
        self._send(RegisterReply(header.serial, RESULT_OK, gateway.auth_code(key)), header)

    def _on_authenticate(self, header: Header, message: Authenticate, received: float) -> None:
        gateway = self.gateway
        key = phone_key(header.phone)
        if message.auth_code != gateway.auth_code(key):
            gateway._reject("bad_auth_code")
            self._reply(header, RESULT_FAILED)
            return
        self.authenticated = True
        gateway._bind(key, self)
        gateway.count("authenticated")
        self._reply(header, RESULT_OK)

    def _on_heartbeat(self, header: Header, message: Heartbeat, received: float) -> None:
        self._reply(header, RESULT_OK)

    def _on_logout(self, header: Header, message: Logout, received: float) -> None:
        self._reply(header, RESULT_OK)
        self.close("logout")

    def _on_report(self, header: Header, message: LocationReport, received: float) -> None:
        self._take_reports(header, (message,), received)

    def _on_batch(self, header: Header, message: LocationBatch, received: float) -> None:
        self._take_reports(header, message.reports, received)

    def _take_reports(self, header: Header, reports, received: float) -> None:
        gateway = self.gateway
        if not self.authenticated:
            if not gateway.settings.accept_unauthenticated_reports:
                gateway._reject("unauthenticated", len(reports))
                self._reply(header, RESULT_FAILED)
                return
            gateway.unauthenticated_reports += len(reports)
        gateway._add_reports(phone_key(header.phone), reports, received)
        self._reply(header, RESULT_OK)

    def _on_terminal_reply(self, header: Header, message: TerminalGeneralReply, received: float) -> None:
        future = self._waiting.pop(message.reply_serial, None)
        if future is not None and not future.done():
            future.set_result(message.result)

    # --- replies and platform messages ---------------------------------------------------------------

    def _refuse(self, reason: str, header: Header | None) -> None:
        self.gateway._reject(reason)
        self.bad_frames += 1
        if header is not None:
            self._reply(header, RESULT_UNSUPPORTED if reason in _UNSUPPORTED_REASONS else RESULT_MESSAGE_ERROR)

    def _reply(self, header: Header, result: int) -> None:
        """0x8001 to `header`'s message: the hot path, so the header bytes of this terminal's
        replies are built once (the same bytes encode_message would give)."""
        if self.transport is None or self.closing:
            return
        key = (header.phone, header.protocol_version)
        if key != self._reply_key:
            self._reply_key = key
            self._reply_prefix = encode_message(PlatformGeneralReply(0, 0, 0), header.phone, 0,
                                                header.protocol_version)
            self._reply_prefix = unescape(self._reply_prefix[1:-1])[:-8]  # id .. phone, without serial and body
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        self.transport.write(close_frame(self._reply_prefix + _REPLY_TAIL.pack(serial, header.serial,
                                                                                header.message_id, result)))
        self.gateway.replies_sent += 1

    def _send(self, message, header: Header | None = None) -> int:
        """Send a platform message in the terminal's header version; returns its serial."""
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        phone = header.phone if header is not None else self.phone
        version = header.protocol_version if header is not None else self.protocol_version
        if self.transport is not None and not self.closing:
            self.transport.write(encode_message(message, phone, serial, version))
            self.gateway.replies_sent += 1
        return serial

    def request(self, message) -> asyncio.Future:
        """Send a platform message (0x8300, 0x8203 ...) and get a future of the terminal's 0x0001 result."""
        if self.closing or self.phone is None:
            raise ConnectionError(f"terminal {self.phone} is not connected")
        future = asyncio.get_running_loop().create_future()
        serial = self._send(message)
        self._waiting[serial] = future
        future.add_done_callback(lambda _: self._waiting.pop(serial, None))  # answered, timed out or cancelled
        return future

    # --- closing --------------------------------------------------------------------------------------

    def close(self, reason: str, rejected: int = 0) -> None:
        """Close this connection for `reason` (counted); replies already written are still sent."""
        if self.closing:
            return
        self.closing = True
        if rejected:
            self.gateway._reject(reason, rejected)
        self.gateway._count_disconnect(reason)
        if self.transport is not None:
            if reason in ("flood", "slow_reader", "bad_frames"):
                self.transport.abort()
            else:
                self.transport.close()

    def _check_bad_frames(self) -> None:
        if self.bad_frames >= self.gateway.settings.max_bad_frames_per_connection:
            self.close("bad_frames")

    def _pass_on_splitter_rejections(self) -> None:
        gateway, seen = self.gateway, self._splitter_seen
        for reason, n in self.splitter.rejected.items():
            if n != seen.get(reason, 0):
                gateway._reject(reason, n - seen.get(reason, 0))
                seen[reason] = n
        if self.splitter.oversize != seen.get("oversize", 0):
            gateway._reject("oversize", self.splitter.oversize - seen.get("oversize", 0))
            seen["oversize"] = self.splitter.oversize


_HANDLERS = {
    Register: TerminalSession._on_register,
    Authenticate: TerminalSession._on_authenticate,
    Heartbeat: TerminalSession._on_heartbeat,
    Logout: TerminalSession._on_logout,
    LocationReport: TerminalSession._on_report,
    LocationBatch: TerminalSession._on_batch,
    TerminalGeneralReply: TerminalSession._on_terminal_reply,
}
