"""A JSON-able view of one frame, for `hazmap jt808 decode HEX` and for logs."""

from __future__ import annotations

import dataclasses

from data.feeds.jt808.errors import Jt808Error
from data.feeds.jt808.framing import FLAG, checksum, unescape
from data.feeds.jt808.location import LocationReport
from data.feeds.jt808.messages import MESSAGE_TYPES, LocationBatch, decode_message
from data.feeds.jt808.packet import decode_frame


def decode_hex(text: str) -> dict:
    """Hex of one frame (spaces and line breaks allowed; the 0x7E delimiters may be left
    out) -> header fields plus the message's fields. A fragment, an encrypted body or an
    unknown message id shows its body as hex with a note; malformed input raises Jt808Error."""
    cleaned = "".join(text.split())
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError as error:
        raise Jt808Error("bad_hex", f"not hexadecimal: {error}") from None
    if raw and raw[0] != FLAG and raw[-1] != FLAG:
        raw = bytes((FLAG,)) + raw + bytes((FLAG,))
    packet = decode_frame(raw)
    header = packet.header
    cls = MESSAGE_TYPES.get(header.message_id)
    view: dict = {
        "message_id": f"0x{header.message_id:04X}",
        "message_name": cls.NAME if cls else None,
        "phone": header.phone,
        "serial": header.serial,
        "version": "2019" if header.is_2019 else "2013",
        "protocol_version": header.protocol_version,
        "body_length": len(packet.body),
        "encrypted": header.encryption != 0,
        "encryption": header.encryption,
        "subpackage": {"count": header.packet_count, "index": header.packet_index} if header.is_subpackage else None,
        "checksum": f"0x{checksum(unescape(raw[1:-1])[:-1]):02X}",
    }
    try:
        message = decode_message(packet)
    except Jt808Error as error:
        if error.reason not in ("subpackage", "encrypted", "unknown_message"):
            raise
        view["body_hex"] = packet.body.hex().upper()
        view["note"] = str(error)
        return view
    view.update(message_view(message))
    return view


def message_view(message) -> dict:
    if isinstance(message, LocationReport):
        return location_view(message)
    if isinstance(message, LocationBatch):
        return {"batch_type": message.batch_type, "reports": [location_view(r) for r in message.reports]}
    return {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}


def location_view(report: LocationReport) -> dict:
    return {
        "lat": report.lat,
        "lon": report.lon,
        "altitude_m": report.altitude_m,
        "speed_kmh": report.speed_kmh,
        "direction": report.direction,
        "time_utc": report.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "alarm": report.alarm_names,
        "alarm_value": report.alarm,
        "status": report.status_names,
        "status_value": report.status,
        "load": report.load_state,
        "items": [
            {"id": f"0x{item.item_id:02X}", "name": item.name, "raw": item.raw_value,
             "value": item.scaled_value, "hex": item.value.hex().upper()}
            for item in report.items
        ],
    }
