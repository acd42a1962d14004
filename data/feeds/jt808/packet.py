"""JT/T 808 packets: the header (2013 and 2019 layouts), frames <-> packets, splitting a
long body into sub-packets and reassembling them.

Header 2013: message id WORD, attributes WORD, phone BCD[6], serial WORD,
[packet count WORD, packet index WORD]. 2019 (attributes bit 14 set): message id,
attributes, protocol version BYTE, phone BCD[10], serial, [count, index].
Attributes: bits 0-9 body length, 10-12 encryption, 13 sub-packet, 14 version flag,
15 reserved.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

from data.feeds.jt808.errors import Jt808Error
from data.feeds.jt808.framing import FLAG, MAX_BODY_BYTES, close_frame, open_frame

PHONE_DIGITS_2013 = 12
PHONE_DIGITS_2019 = 20
ENCRYPTION_NONE = 0
ENCRYPTION_RSA = 1  # attributes bit 10; the other codes of bits 10-12 are reserved

_WORDS2 = struct.Struct(">HH")
_SERIAL = struct.Struct(">H")


def decode_bcd(raw: bytes, what: str) -> str:
    """BCD bytes -> their decimal digits (two a byte, leading zeros kept)."""
    digits = raw.hex()
    if not digits.isdigit():
        raise Jt808Error("bad_bcd", f"{what} {digits.upper()} has a nibble above 9")
    return digits


def encode_bcd(digits: str, size: int, what: str) -> bytes:
    """Decimal digits -> BCD[size], left-padded with zeros."""
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 2 * size:
        raise Jt808Error("bad_field", f"{what} {digits!r} is not at most {2 * size} decimal digits")
    return bytes.fromhex(digits.rjust(2 * size, "0"))


def phone_key(phone: str) -> str:
    """The terminal phone without its zero padding, so the same terminal matches whether it
    speaks the 2013 (12 digits) or the 2019 (20 digits) header."""
    return phone.lstrip("0") or "0"


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded header. `phone` holds every digit sent (12 in 2013, 20 in 2019);
    `protocol_version` is None for the 2013 header; `packet_count`/`packet_index` are set
    only on a fragment of a sub-packeted message."""

    message_id: int
    phone: str
    serial: int
    protocol_version: int | None = None
    encryption: int = ENCRYPTION_NONE
    packet_count: int | None = None
    packet_index: int | None = None
    reserved_bit: int = 0  # attributes bit 15, kept so a frame re-encodes unchanged

    @property
    def is_2019(self) -> bool:
        return self.protocol_version is not None

    @property
    def is_subpackage(self) -> bool:
        return self.packet_count is not None


@dataclass(frozen=True, slots=True)
class Packet:
    header: Header
    body: bytes


def decode_frame(frame: bytes) -> Packet:
    """One frame as on the wire (with both 0x7E delimiters) -> header and raw body, with
    escapes, checksum and body length verified."""
    if len(frame) < 2 or frame[0] != FLAG or frame[-1] != FLAG:
        raise Jt808Error("bad_delimiter", "a frame starts and ends with 0x7E")
    content = frame[1:-1]
    if FLAG in content:
        raise Jt808Error("bad_delimiter", f"0x7E inside the frame at offset {content.index(FLAG) + 1}")
    return decode_payload(open_frame(content))


def decode_payload(data: bytes) -> Packet:
    """Unescaped message id .. body (checksum already verified and removed) -> Packet."""
    if len(data) < 4:
        raise Jt808Error("truncated", f"{len(data)} bytes cannot hold message id and attributes")
    message_id, attributes = _WORDS2.unpack_from(data)
    body_length = attributes & 0x3FF
    encryption = (attributes >> 10) & 0x7
    is_subpackage = bool(attributes & 0x2000)
    is_2019 = bool(attributes & 0x4000)
    if is_2019:
        header_length = 17
        if len(data) < header_length:
            raise Jt808Error("truncated", f"{len(data)} bytes; the 2019 header needs {header_length}")
        protocol_version = data[4]
        phone = decode_bcd(data[5:15], "phone")
    else:
        header_length = 12
        if len(data) < header_length:
            raise Jt808Error("truncated", f"{len(data)} bytes; the 2013 header needs {header_length}")
        protocol_version = None
        phone = decode_bcd(data[4:10], "phone")
    (serial,) = _SERIAL.unpack_from(data, header_length - 2)
    packet_count = packet_index = None
    if is_subpackage:
        if len(data) < header_length + 4:
            raise Jt808Error("truncated", "sub-packet flag set but no packet count and index")
        packet_count, packet_index = _WORDS2.unpack_from(data, header_length)
        header_length += 4
        if packet_count == 0 or not 1 <= packet_index <= packet_count:
            raise Jt808Error("bad_subpackage", f"packet index {packet_index} of {packet_count}")
    body = data[header_length:]
    if len(body) != body_length:
        raise Jt808Error("bad_length", f"attributes give a {body_length}-byte body, the frame holds {len(body)}")
    header = Header(message_id, phone, serial, protocol_version, encryption, packet_count, packet_index,
                    reserved_bit=attributes >> 15)
    return Packet(header, body)


def encode_frame(header: Header, body: bytes) -> bytes:
    """Header and body (at most 1023 bytes) -> one frame as sent."""
    if len(body) > MAX_BODY_BYTES:
        raise Jt808Error("oversize", f"{len(body)}-byte body; one frame carries at most {MAX_BODY_BYTES}")
    for name in ("message_id", "serial"):
        if not 0 <= getattr(header, name) <= 0xFFFF:
            raise Jt808Error("bad_field", f"{name} {getattr(header, name)} is not a WORD")
    if not 0 <= header.encryption <= 7 or header.reserved_bit not in (0, 1):
        raise Jt808Error("bad_field", f"encryption {header.encryption} / reserved bit {header.reserved_bit}")
    attributes = len(body) | header.encryption << 10 | header.reserved_bit << 15
    parts = [b"", b""]
    if header.is_2019:
        if not 0 <= header.protocol_version <= 0xFF:
            raise Jt808Error("bad_field", f"protocol version {header.protocol_version} is not a BYTE")
        attributes |= 0x4000
        parts.append(bytes((header.protocol_version,)))
        parts.append(encode_bcd(header.phone, PHONE_DIGITS_2019 // 2, "phone"))
    else:
        parts.append(encode_bcd(header.phone, PHONE_DIGITS_2013 // 2, "phone"))
    parts.append(_SERIAL.pack(header.serial))
    if header.is_subpackage:
        count, index = header.packet_count, header.packet_index
        if index is None or not 1 <= count <= 0xFFFF or not 1 <= index <= count:
            raise Jt808Error("bad_subpackage", f"packet index {index} of {count}")
        attributes |= 0x2000
        parts.append(_WORDS2.pack(count, index))
    parts[0] = _WORDS2.pack(header.message_id, attributes)
    parts.append(body)
    return close_frame(b"".join(parts))


def encode_frames(header: Header, body: bytes, max_body_bytes: int = MAX_BODY_BYTES) -> list[bytes]:
    """Header and a body of any size -> one frame, or sub-packets of at most
    `max_body_bytes` each with consecutive serials from `header.serial` (wrapping at 0xFFFF)."""
    if header.is_subpackage:
        raise Jt808Error("bad_field", "give the whole message's header; sub-packet fields are set here")
    if not 1 <= max_body_bytes <= MAX_BODY_BYTES:
        raise Jt808Error("bad_field", f"max_body_bytes {max_body_bytes} is not in 1..{MAX_BODY_BYTES}")
    if len(body) <= max_body_bytes:
        return [encode_frame(header, body)]
    count = -(-len(body) // max_body_bytes)
    if count > 0xFFFF:
        raise Jt808Error("oversize", f"{len(body)}-byte body needs {count} sub-packets; at most 65535")
    return [
        encode_frame(
            replace(header, serial=(header.serial + i) & 0xFFFF, packet_count=count, packet_index=i + 1),
            body[i * max_body_bytes : (i + 1) * max_body_bytes],
        )
        for i in range(count)
    ]


@dataclass
class _Pending:
    header: Header
    parts: dict[int, bytes]
    size: int
    last_seen: float


class Reassembler:
    """Joins the sub-packets of a message, whatever their order of arrival.

    Fragments belong together by phone, message id, packet count and the serial of the
    first fragment (serial - index + 1: fragments carry consecutive serials). Memory is
    bounded: a message idle for `timeout_s` is dropped (`expired`), at most `max_pending`
    messages and `max_pending_bytes` bytes are held (the longest idle dropped first,
    `evicted`), and a message above `max_message_bytes` is refused with
    Jt808Error("oversize"). A repeated fragment replaces the earlier one (`duplicates`).
    """

    def __init__(
        self,
        timeout_s: float = 60.0,
        max_pending: int = 1024,
        max_message_bytes: int = 4 << 20,
        max_pending_bytes: int = 32 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self.max_message_bytes = max_message_bytes
        self.max_pending_bytes = max_pending_bytes
        self._clock = clock
        self._pending: OrderedDict[tuple, _Pending] = OrderedDict()  # least recently fed first
        self._pending_bytes = 0
        self.completed = 0
        self.expired = 0
        self.evicted = 0
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def feed(self, packet: Packet) -> Packet | None:
        """A packet -> the whole message once its last fragment is in, else None. An
        unsplit packet comes straight back."""
        header = packet.header
        if not header.is_subpackage:
            return packet
        now = self._clock()
        self._expire(now)
        count, index = header.packet_count, header.packet_index
        first_serial = (header.serial - index + 1) & 0xFFFF
        key = (header.phone, header.message_id, count, first_serial)
        entry = self._pending.pop(key, None)
        if entry is None:
            entry = _Pending(header, {}, 0, now)
        old = entry.parts.get(index)
        if old is not None:
            self.duplicates += 1
            entry.size -= len(old)
            self._pending_bytes -= len(old)
        entry.parts[index] = packet.body
        entry.size += len(packet.body)
        self._pending_bytes += len(packet.body)
        entry.last_seen = now
        if index == 1:
            entry.header = header
        if entry.size > self.max_message_bytes:
            self._pending_bytes -= entry.size
            raise Jt808Error("oversize", f"message 0x{header.message_id:04X} from {header.phone} "
                             f"passed {self.max_message_bytes} bytes; dropped")
        if len(entry.parts) == count:
            self._pending_bytes -= entry.size
            self.completed += 1
            body = b"".join(entry.parts[i] for i in range(1, count + 1))
            whole = replace(entry.header, serial=first_serial, packet_count=None, packet_index=None)
            return Packet(whole, body)
        self._pending[key] = entry
        while len(self._pending) > self.max_pending or self._pending_bytes > self.max_pending_bytes:
            _, dropped = self._pending.popitem(last=False)
            self._pending_bytes -= dropped.size
            self.evicted += 1
        return None

    def expire(self) -> int:
        """Drop the messages idle longer than timeout_s (also done on every feed); returns how many."""
        return self._expire(self._clock())

    def _expire(self, now: float) -> int:
        dropped = 0
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if now - entry.last_seen <= self.timeout_s:
                break
            del self._pending[key]
            self._pending_bytes -= entry.size
            dropped += 1
        self.expired += dropped
        return dropped
