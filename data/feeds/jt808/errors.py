"""The one error the JT/T 808 codec raises, with a reason code to count rejections by."""

from __future__ import annotations

# Every reason a frame, a message or a value can be refused for. The gateway counts
# rejections per reason, so the set is closed: a new reason is added here first.
REASONS = frozenset(
    {
        "bad_hex",  # decode_hex: the text is not hexadecimal
        "bad_delimiter",  # a frame does not start and end with 0x7E, or has 0x7E inside
        "bad_escape",  # 0x7D followed by anything but 0x01 / 0x02
        "truncated",  # fewer bytes than the header or a body field needs
        "bad_checksum",  # XOR of message id .. body differs from the checksum byte
        "bad_length",  # body length in the attributes differs from the actual body
        "bad_bcd",  # a BCD field holds a nibble above 9
        "bad_time",  # BCD time digits that are no calendar date/time
        "bad_position",  # latitude above 90 or longitude above 180 degrees
        "bad_text",  # a GBK field that does not decode (or encode)
        "bad_body",  # body bytes left over, or counts that disagree with the content
        "bad_subpackage",  # packet count 0, or index outside 1..count
        "subpackage",  # a single fragment of a sub-packeted message: reassemble it first
        "encrypted",  # RSA-encrypted body (attributes bits 10-12): no key here
        "unknown_message",  # a message id this codec has no decoder for
        "oversize",  # more bytes than a frame or a reassembled message may have
        "bad_field",  # encoder: a value that does not fit its field
    }
)


class Jt808Error(ValueError):
    """Malformed JT/T 808 input (or a value that cannot be encoded), with a `reason` code
    from REASONS and a message naming what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise AssertionError(f"unknown Jt808Error reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
