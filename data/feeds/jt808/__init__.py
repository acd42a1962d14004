"""JT/T 808 (2013 and 2019) codec: framing, headers, sub-packets and the messages a
hazmat-truck terminal and the platform exchange. The TCP gateway builds on this.

Typical use on a connection::

    splitter, reassembler = FrameSplitter(), Reassembler()
    for frame in splitter.feed(chunk):
        try:
            packet = reassembler.feed(decode_frame(frame))
            if packet is not None:
                message = decode_message(packet)
        except Jt808Error as error:
            rejected[error.reason] += 1
"""

from data.feeds.jt808.errors import REASONS, Jt808Error
from data.feeds.jt808.framing import (
    MAX_BODY_BYTES,
    MAX_FRAME_BYTES,
    FrameSplitter,
    checksum,
    close_frame,
    escape,
    open_frame,
    unescape,
)
from data.feeds.jt808.hexview import decode_hex
from data.feeds.jt808.location import (
    ALARM_BITS,
    ALARM_MASKS,
    ITEM_KINDS,
    STATUS_BITS,
    STATUS_MASKS,
    AdditionalItem,
    LocationReport,
    decode_time,
    encode_time,
    reports_to_batch,
)
from data.feeds.jt808.messages import (
    MESSAGE_TYPES,
    Authenticate,
    Heartbeat,
    LocationBatch,
    Logout,
    ManualAlarmConfirm,
    Message,
    PlatformGeneralReply,
    Register,
    RegisterReply,
    TerminalGeneralReply,
    TextMessage,
    decode,
    decode_message,
    encode_message,
    encode_message_frames,
)
from data.feeds.jt808.packet import (
    Header,
    Packet,
    Reassembler,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_frames,
    phone_key,
)

__all__ = [
    "ALARM_BITS", "ALARM_MASKS", "ITEM_KINDS", "MAX_BODY_BYTES", "MAX_FRAME_BYTES", "MESSAGE_TYPES", "REASONS",
    "STATUS_BITS", "STATUS_MASKS", "AdditionalItem", "Authenticate", "FrameSplitter", "Header", "Heartbeat",
    "Jt808Error", "LocationBatch", "LocationReport", "Logout", "ManualAlarmConfirm", "Message", "Packet",
    "PlatformGeneralReply", "Reassembler", "Register", "RegisterReply", "TerminalGeneralReply", "TextMessage",
    "checksum", "close_frame", "decode", "decode_frame", "decode_hex", "decode_message", "decode_payload",
    "decode_time", "encode_frame", "encode_frames", "encode_message", "encode_message_frames", "encode_time",
    "escape", "open_frame", "phone_key", "reports_to_batch", "unescape",
]
