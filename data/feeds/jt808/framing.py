"""JT/T 808 framing: 0x7E delimiters, 0x7D escapes, the XOR checksum, and a streaming
splitter that cuts frames out of the bytes a TCP connection delivers.

On the wire a frame is `7E | escape(message id .. body | checksum) | 7E`, where escape
sends 0x7E as `7D 02` and 0x7D as `7D 01`.
"""

from __future__ import annotations

from collections import Counter

from data.feeds.jt808.errors import Jt808Error

FLAG = 0x7E
ESCAPE = 0x7D
_FLAG_BYTE = b"\x7e"
_ESCAPE_BYTE = b"\x7d"

# Body length is 10 bits of the attributes word.
MAX_BODY_BYTES = 0x3FF
# message id, attributes, phone BCD[6], serial: the shortest (2013, unsplit) header.
MIN_HEADER_BYTES = 12
# 2019 header with sub-packet fields: id, attributes, version, phone BCD[10], serial, count, index.
MAX_HEADER_BYTES = 21
# The largest legal frame on the wire: every byte escaped to two, plus both delimiters.
MAX_FRAME_BYTES = 2 + 2 * (MAX_HEADER_BYTES + MAX_BODY_BYTES + 1)


def checksum(data: bytes) -> int:
    """XOR of all bytes, by folding the bytes as one integer (faster than a byte loop)."""
    if not data:
        return 0
    bits = len(data) * 8
    value = int.from_bytes(data, "little")
    while bits > 8:
        bits = (bits + 15) // 16 * 8  # half the width, rounded up to whole bytes
        value = (value ^ (value >> bits)) & ((1 << bits) - 1)
    return value


def escape(data: bytes) -> bytes:
    # 7D first, so the 7D of a fresh `7D 02` is not escaped again.
    return data.replace(_ESCAPE_BYTE, b"\x7d\x01").replace(_FLAG_BYTE, b"\x7d\x02")


def unescape(content: bytes) -> bytes:
    """Undo the escapes of a frame's content (between the delimiters)."""
    if ESCAPE not in content:
        return content
    parts = content.split(_ESCAPE_BYTE)
    out = [parts[0]]
    for part in parts[1:]:
        code = part[0] if part else None
        if code == 0x02:
            out.append(_FLAG_BYTE)
        elif code == 0x01:
            out.append(_ESCAPE_BYTE)
        else:
            shown = "end of frame" if code is None else f"0x{code:02X}"
            raise Jt808Error("bad_escape", f"0x7D followed by {shown} (only 0x01 and 0x02 are escapes)")
        out.append(part[1:])
    return b"".join(out)


def open_frame(content: bytes) -> bytes:
    """Escaped frame content (without the 7E delimiters) -> message id .. body, with the
    escapes undone and the checksum verified and removed."""
    data = unescape(content)
    if len(data) < MIN_HEADER_BYTES + 1:
        raise Jt808Error("truncated", f"{len(data)} bytes after unescaping; a frame has {MIN_HEADER_BYTES + 1} or more")
    expected = checksum(data[:-1])
    if expected != data[-1]:
        raise Jt808Error("bad_checksum", f"checksum byte 0x{data[-1]:02X}, computed 0x{expected:02X}")
    return data[:-1]


def close_frame(data: bytes) -> bytes:
    """Message id .. body -> the frame as sent: checksum appended, escaped, delimited."""
    return _FLAG_BYTE + escape(data + bytes((checksum(data),))) + _FLAG_BYTE


class FrameSplitter:
    """Cuts frames out of a byte stream fed in pieces of any size.

    Every 0x7E both ends the segment before it and starts the next one, so back-to-back
    `7E 7E` (end of one frame, start of the next) leaves an empty segment that is ignored,
    and a frame survives whatever garbage precedes it. Each segment is checked for
    escapes, minimum length and checksum: those that pass come out as frames (bytes with
    both delimiters, exactly as on the wire); the others are garbage, counted by reason
    in `rejected` and in `garbage_bytes` together with any bytes before the first 0x7E.
    A segment longer than `max_frame_bytes` (delimiters included) is dropped as soon as
    that is known, and counted in `oversize`; an unfinished frame is kept for the next
    feed. The output and the counters do not depend on how the stream is cut into pieces.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 2 + MIN_HEADER_BYTES + 1:
            raise ValueError(f"max_frame_bytes {max_frame_bytes} is below the smallest frame ({MIN_HEADER_BYTES + 3})")
        self.max_frame_bytes = max_frame_bytes
        self._max_content = max_frame_bytes - 2
        self._pending = b""  # content after the last 0x7E seen
        self._opened = False  # a 0x7E has been seen, so _pending is a frame's start
        self._skipping = False  # the pending segment grew oversize: drop bytes up to the next 0x7E
        self.frames = 0
        self.garbage_bytes = 0
        self.oversize = 0
        self.rejected: Counter[str] = Counter()

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes as they arrive -> the complete, well-framed frames they finish."""
        if not data:
            return []
        pieces = data.split(_FLAG_BYTE)
        if len(pieces) == 1:  # no delimiter in this piece: the pending segment grows
            self._grow(data)
            return []
        out: list[bytes] = []
        first, *middle, last = pieces
        if self._opened:
            self._finish(self._pending + first if not self._skipping else None, out)
        else:
            self.garbage_bytes += len(first)  # before the first 0x7E of the stream
        for segment in middle:
            self._finish(segment, out)
        self._opened = True
        self._pending = b""
        self._skipping = False
        self._grow(last)
        return out

    def _grow(self, data: bytes) -> None:
        if not self._opened:
            self.garbage_bytes += len(data)
        elif not self._skipping:
            self._pending += data
            if len(self._pending) > self._max_content:
                self.oversize += 1
                self._pending = b""
                self._skipping = True

    def _finish(self, segment: bytes | None, out: list[bytes]) -> None:
        if not segment:  # empty (7E 7E) or the tail of an oversize segment already counted
            return
        if len(segment) > self._max_content:
            self.oversize += 1
            return
        try:
            open_frame(segment)
        except Jt808Error as error:
            self.rejected[error.reason] += 1
            self.garbage_bytes += len(segment)
            return
        self.frames += 1
        out.append(_FLAG_BYTE + segment + _FLAG_BYTE)
