"""JT/T 808 messages as dataclasses, each with `encode_body(is_2019)` and
`decode_body(body, is_2019)`, and the functions that go from frames to messages and back.

Text is GBK. Fixed-width text fields are padded with 0x00 (the padding is stripped on
decode); variable-length STRING fields are kept byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Union

from data.feeds.jt808.errors import Jt808Error
from data.feeds.jt808.framing import MAX_BODY_BYTES
from data.feeds.jt808.location import LocationReport
from data.feeds.jt808.packet import Header, Packet, decode_frame, encode_frame, encode_frames

TEXT_ENCODING = "gbk"


class _Reader:
    """Reads a body front to back; running short raises Jt808Error('truncated')."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int, field: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise Jt808Error("truncated", f"{self.what}: {field} needs {n} bytes, {len(self.data) - self.pos} left")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def byte(self, field: str) -> int:
        return self.take(1, field)[0]

    def word(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "big")

    def dword(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "big")

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            left = len(self.data) - self.pos
            raise Jt808Error("bad_body", f"{self.what}: {left} bytes left over after the last field")


def _decode_text(raw: bytes, field: str) -> str:
    try:
        return raw.decode(TEXT_ENCODING)
    except UnicodeDecodeError as error:
        raise Jt808Error("bad_text", f"{field} is not GBK text: {error.reason} at byte {error.start}") from None


def _decode_fixed_text(raw: bytes, field: str) -> str:
    return _decode_text(raw.rstrip(b"\x00"), field)


def _encode_text(text: str, field: str) -> bytes:
    try:
        return text.encode(TEXT_ENCODING)
    except UnicodeEncodeError as error:
        raise Jt808Error("bad_text", f"{field} {text!r} has characters GBK lacks: {error.reason}") from None


def _encode_fixed_text(text: str, size: int, field: str) -> bytes:
    raw = _encode_text(text, field)
    if len(raw) > size:
        raise Jt808Error("bad_field", f"{field} {text!r} takes {len(raw)} bytes; the field has {size}")
    if raw.endswith(b"\x00"):
        raise Jt808Error("bad_field", f"{field} {text!r} ends in NUL, which the zero padding would swallow")
    return raw.ljust(size, b"\x00")


def _check(value: int, top: int, field: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= top:
        raise Jt808Error("bad_field", f"{field} {value!r} is outside 0..{top}")
    return value


def _version_fields_absent(values: dict, is_2019: bool, message: str) -> None:
    """Fields that exist only in the 2019 layout must be given for it and left None for 2013."""
    for name, value in values.items():
        if is_2019 and value is None:
            raise Jt808Error("bad_field", f"{message}: the 2019 layout needs {name}")
        if not is_2019 and value is not None:
            raise Jt808Error("bad_field", f"{message}: the 2013 layout has no {name}")


_REPLY = struct.Struct(">HHB")


def _encode_reply(reply) -> bytes:
    return _REPLY.pack(_check(reply.reply_serial, 0xFFFF, "reply_serial"),
                       _check(reply.reply_message_id, 0xFFFF, "reply_message_id"), _check(reply.result, 0xFF, "result"))


def _decode_reply(cls, body: bytes):
    if len(body) != _REPLY.size:
        raise Jt808Error("truncated" if len(body) < _REPLY.size else "bad_body",
                         f"{cls.NAME}: {len(body)} bytes, expected {_REPLY.size}")
    return cls(*_REPLY.unpack(body))


def _decode_empty(cls, body: bytes):
    if body:
        raise Jt808Error("bad_body", f"{cls.NAME} has an empty body, got {len(body)} bytes")
    return cls()


@dataclass(frozen=True, slots=True)
class TerminalGeneralReply:
    """0x0001: the terminal answers a platform message (result 0 ok, 1 failed, 2 wrong, 3 unsupported)."""

    MESSAGE_ID: ClassVar[int] = 0x0001
    NAME: ClassVar[str] = "terminal_general_reply"

    reply_serial: int
    reply_message_id: int
    result: int

    def encode_body(self, is_2019: bool = False) -> bytes:
        return _encode_reply(self)

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        return _decode_reply(cls, body)


@dataclass(frozen=True, slots=True)
class PlatformGeneralReply:
    """0x8001: the platform answers a terminal message (result 0 ok, 1 failed, 2 wrong,
    3 unsupported, 4 alarm confirmed)."""

    MESSAGE_ID: ClassVar[int] = 0x8001
    NAME: ClassVar[str] = "platform_general_reply"

    reply_serial: int
    reply_message_id: int
    result: int

    def encode_body(self, is_2019: bool = False) -> bytes:
        return _encode_reply(self)

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        return _decode_reply(cls, body)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """0x0002, empty body."""

    MESSAGE_ID: ClassVar[int] = 0x0002
    NAME: ClassVar[str] = "heartbeat"

    def encode_body(self, is_2019: bool = False) -> bytes:
        return b""

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        return _decode_empty(cls, body)


@dataclass(frozen=True, slots=True)
class Logout:
    """0x0003, empty body."""

    MESSAGE_ID: ClassVar[int] = 0x0003
    NAME: ClassVar[str] = "logout"

    def encode_body(self, is_2019: bool = False) -> bytes:
        return b""

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        return _decode_empty(cls, body)


# Fixed widths of the register fields: (maker id, model, terminal id).
_REGISTER_WIDTHS = {False: (5, 20, 7), True: (11, 30, 30)}


@dataclass(frozen=True, slots=True)
class Register:
    """0x0100. `plate_color` per JT/T 415 (0 when the vehicle has no plate; `plate` then
    holds the VIN)."""

    MESSAGE_ID: ClassVar[int] = 0x0100
    NAME: ClassVar[str] = "register"

    province: int
    city: int
    maker_id: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str

    def encode_body(self, is_2019: bool = False) -> bytes:
        maker, model, terminal = _REGISTER_WIDTHS[is_2019]
        return b"".join((
            struct.pack(">HH", _check(self.province, 0xFFFF, "province"), _check(self.city, 0xFFFF, "city")),
            _encode_fixed_text(self.maker_id, maker, "maker_id"),
            _encode_fixed_text(self.model, model, "model"),
            _encode_fixed_text(self.terminal_id, terminal, "terminal_id"),
            bytes((_check(self.plate_color, 0xFF, "plate_color"),)),
            _encode_text(self.plate, "plate"),
        ))

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        maker, model, terminal = _REGISTER_WIDTHS[is_2019]
        r = _Reader(body, cls.NAME)
        return cls(
            r.word("province"), r.word("city"),
            _decode_fixed_text(r.take(maker, "maker_id"), "maker_id"),
            _decode_fixed_text(r.take(model, "model"), "model"),
            _decode_fixed_text(r.take(terminal, "terminal_id"), "terminal_id"),
            r.byte("plate_color"),
            _decode_text(r.rest(), "plate"),
        )


@dataclass(frozen=True, slots=True)
class RegisterReply:
    """0x8100. result 0 ok (then `auth_code` is set), 1 vehicle already registered,
    2 vehicle unknown, 3 terminal already registered, 4 terminal unknown."""

    MESSAGE_ID: ClassVar[int] = 0x8100
    NAME: ClassVar[str] = "register_reply"

    reply_serial: int
    result: int
    auth_code: str | None = None

    def encode_body(self, is_2019: bool = False) -> bytes:
        if (self.result == 0) != (self.auth_code is not None):
            raise Jt808Error("bad_field", f"{self.NAME}: an auth code goes with result 0 and only with it")
        head = struct.pack(">HB", _check(self.reply_serial, 0xFFFF, "reply_serial"),
                           _check(self.result, 0xFF, "result"))
        return head + (_encode_text(self.auth_code, "auth_code") if self.auth_code is not None else b"")

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        r = _Reader(body, cls.NAME)
        serial, result = r.word("reply_serial"), r.byte("result")
        if result == 0:
            return cls(serial, result, _decode_text(r.rest(), "auth_code"))
        r.done()
        return cls(serial, result, None)


@dataclass(frozen=True, slots=True)
class Authenticate:
    """0x0102. 2013: the auth code alone; 2019: its length, the code, IMEI BYTE[15] and
    software version BYTE[20] (both None in 2013)."""

    MESSAGE_ID: ClassVar[int] = 0x0102
    NAME: ClassVar[str] = "authenticate"

    auth_code: str
    imei: str | None = None
    software_version: str | None = None

    def encode_body(self, is_2019: bool = False) -> bytes:
        _version_fields_absent({"imei": self.imei, "software_version": self.software_version}, is_2019, self.NAME)
        code = _encode_text(self.auth_code, "auth_code")
        if not is_2019:
            return code
        if len(code) > 0xFF:
            raise Jt808Error("bad_field", f"auth_code of {len(code)} bytes; its length is a BYTE")
        return (bytes((len(code),)) + code + _encode_fixed_text(self.imei, 15, "imei")
                + _encode_fixed_text(self.software_version, 20, "software_version"))

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        if not is_2019:
            return cls(_decode_text(body, "auth_code"))
        r = _Reader(body, cls.NAME)
        code = _decode_text(r.take(r.byte("auth_code length"), "auth_code"), "auth_code")
        imei = _decode_fixed_text(r.take(15, "imei"), "imei")
        version = _decode_fixed_text(r.take(20, "software_version"), "software_version")
        r.done()
        return cls(code, imei, version)


@dataclass(frozen=True, slots=True)
class TextMessage:
    """0x8300. `flags`: bit 0 emergency (2013) / bits 0-1 service-urgent-notice (2019),
    2 show on display, 3 read by TTS, ...; `text_type` (2019 only): 1 notice, 2 service."""

    MESSAGE_ID: ClassVar[int] = 0x8300
    NAME: ClassVar[str] = "text_message"

    flags: int
    text: str
    text_type: int | None = None

    def encode_body(self, is_2019: bool = False) -> bytes:
        _version_fields_absent({"text_type": self.text_type}, is_2019, self.NAME)
        head = bytes((_check(self.flags, 0xFF, "flags"),))
        if is_2019:
            head += bytes((_check(self.text_type, 0xFF, "text_type"),))
        return head + _encode_text(self.text, "text")

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        r = _Reader(body, cls.NAME)
        flags = r.byte("flags")
        text_type = r.byte("text_type") if is_2019 else None
        return cls(flags, _decode_text(r.rest(), "text"), text_type)


@dataclass(frozen=True, slots=True)
class ManualAlarmConfirm:
    """0x8203. `reply_serial` of the alarm's location report (0 confirms all of the types);
    `alarm_type` uses the 0x0200 alarm bits (0 sos, 3, 20, 21, 22, 27, 28)."""

    MESSAGE_ID: ClassVar[int] = 0x8203
    NAME: ClassVar[str] = "manual_alarm_confirm"

    reply_serial: int
    alarm_type: int

    def encode_body(self, is_2019: bool = False) -> bytes:
        return struct.pack(">HI", _check(self.reply_serial, 0xFFFF, "reply_serial"),
                           _check(self.alarm_type, 0xFFFFFFFF, "alarm_type"))

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        r = _Reader(body, cls.NAME)
        out = cls(r.word("reply_serial"), r.dword("alarm_type"))
        r.done()
        return out


@dataclass(frozen=True, slots=True)
class LocationBatch:
    """0x0704: count WORD, type BYTE (0 regular batch, 1 blind-area backfill), then
    `[length WORD][0x0200 body]` per report."""

    MESSAGE_ID: ClassVar[int] = 0x0704
    NAME: ClassVar[str] = "location_batch"

    batch_type: int
    reports: tuple[LocationReport, ...]

    def encode_body(self, is_2019: bool = False) -> bytes:
        _check(len(self.reports), 0xFFFF, "report count")
        parts = [struct.pack(">HB", len(self.reports), _check(self.batch_type, 0xFF, "batch_type"))]
        for report in self.reports:
            body = report.encode_body(is_2019)
            parts.append(struct.pack(">H", _check(len(body), 0xFFFF, "report length")) + body)
        return b"".join(parts)

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False):
        r = _Reader(body, cls.NAME)
        count, batch_type = r.word("count"), r.byte("type")
        reports = tuple(LocationReport.decode_body(r.take(r.word("report length"), "report"), is_2019)
                        for _ in range(count))
        r.done()
        return cls(batch_type, reports)


Message = Union[
    TerminalGeneralReply, PlatformGeneralReply, Heartbeat, Logout, Register, RegisterReply, Authenticate,
    TextMessage, ManualAlarmConfirm, LocationReport, LocationBatch,
]
MESSAGE_TYPES: dict[int, type] = {
    cls.MESSAGE_ID: cls
    for cls in (TerminalGeneralReply, PlatformGeneralReply, Heartbeat, Logout, Register, RegisterReply,
                Authenticate, TextMessage, ManualAlarmConfirm, LocationReport, LocationBatch)
}


def decode_message(packet: Packet) -> Message:
    """A whole (unsplit or reassembled) packet -> its message dataclass."""
    header = packet.header
    if header.is_subpackage:
        raise Jt808Error("subpackage", f"fragment {header.packet_index} of {header.packet_count}: "
                         "feed it to a Reassembler first")
    if header.encryption:
        raise Jt808Error("encrypted", f"body encrypted (method {header.encryption})")
    cls = MESSAGE_TYPES.get(header.message_id)
    if cls is None:
        raise Jt808Error("unknown_message", f"no decoder for message id 0x{header.message_id:04X}")
    return cls.decode_body(packet.body, header.is_2019)


def decode(frame: bytes) -> tuple[Header, Message]:
    """One unsplit frame -> (header, message)."""
    packet = decode_frame(frame)
    return packet.header, decode_message(packet)


def encode_message(message: Message, phone: str, serial: int, protocol_version: int | None = None) -> bytes:
    """A message -> one frame (2013 header when protocol_version is None, else 2019)."""
    header = Header(message.MESSAGE_ID, phone, serial, protocol_version)
    return encode_frame(header, message.encode_body(protocol_version is not None))


def encode_message_frames(
    message: Message, phone: str, serial: int, protocol_version: int | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> list[bytes]:
    """A message of any size -> its frames, sub-packeted when the body exceeds max_body_bytes."""
    header = Header(message.MESSAGE_ID, phone, serial, protocol_version)
    return encode_frames(header, message.encode_body(protocol_version is not None), max_body_bytes)
