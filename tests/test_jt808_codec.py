"""JT/T 808 codec: the worked frame of DOMAIN.md §8, round trips of every message in both
header versions (with sub-packets), the streaming splitter, reassembly, and a fuzz loop
that holds the decoder to raising nothing but Jt808Error."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.feeds.jt808 import (
    ALARM_MASKS,
    MAX_FRAME_BYTES,
    MESSAGE_TYPES,
    REASONS,
    STATUS_MASKS,
    AdditionalItem,
    Authenticate,
    FrameSplitter,
    Header,
    Heartbeat,
    Jt808Error,
    LocationBatch,
    LocationReport,
    Logout,
    ManualAlarmConfirm,
    PlatformGeneralReply,
    Reassembler,
    Register,
    RegisterReply,
    TerminalGeneralReply,
    TextMessage,
    checksum,
    close_frame,
    decode,
    decode_frame,
    decode_hex,
    decode_message,
    encode_frame,
    encode_message,
    encode_message_frames,
    escape,
    phone_key,
    reports_to_batch,
    unescape,
)

WORKED_HEX = (
    "7E 02 00 00 26 12 34 56 78 90 12 00 7D 02 00 00 00 01 00 00 00 02 00 BA 7F 0E 07 E4 F1 1C "
    "00 28 00 3C 00 00 18 10 15 10 10 10 01 04 00 00 00 64 02 02 00 7D 01 13 7E"
)
WORKED = bytes.fromhex(WORKED_HEX)


def payload_of(frame: bytes) -> bytes:
    """Message id .. body of a valid frame (escapes undone, checksum dropped)."""
    return unescape(frame[1:-1])[:-1]


# --- the worked frame ----------------------------------------------------------------------


def test_worked_frame_decodes_to_every_figure_in_domain_md():
    header, report = decode(WORKED)
    assert header == Header(0x0200, "123456789012", 126)
    assert len(decode_frame(WORKED).body) == 38
    assert WORKED[-2] == 0x13 == checksum(payload_of(WORKED))
    assert isinstance(report, LocationReport)
    assert report.alarm == 1 and report.alarm_names == ["sos"]
    assert report.status == 2 and report.status_names == ["fix_valid"] and report.fix_valid
    assert report.lat == 12.222222 and report.lon == 132.444444
    assert report.altitude_m == 40 and report.speed_kmh == 6.0 and report.direction == 0
    assert report.time == datetime(2018, 10, 15, 2, 10, 10, tzinfo=timezone.utc)
    assert report.items == (AdditionalItem(0x01, bytes.fromhex("00000064")),
                            AdditionalItem(0x02, bytes.fromhex("007D")))
    assert [i.raw_value for i in report.items] == [100, 125]
    assert report.odometer_km == 10.0 and report.fuel_l == 12.5


def test_worked_frame_reencodes_to_the_same_bytes():
    header, report = decode(WORKED)
    assert encode_message(report, header.phone, header.serial) == WORKED
    # Built from scratch, not from the decoded object.
    built = LocationReport(
        alarm=ALARM_MASKS["sos"], status=STATUS_MASKS["fix_valid"], lat=12.222222, lon=132.444444, altitude_m=40,
        speed_kmh=6.0, direction=0, time=datetime(2018, 10, 15, 2, 10, 10, tzinfo=timezone.utc),
        items=(AdditionalItem.of("odometer_km", 100), AdditionalItem.of("fuel_l", 125)),
    )
    assert encode_message(built, "123456789012", 126) == WORKED


@pytest.mark.parametrize("text", [WORKED_HEX, WORKED_HEX.replace(" ", ""), WORKED_HEX[3:-3], WORKED_HEX.lower()])
def test_decode_hex_view_of_the_worked_frame(text):
    view = decode_hex(text)
    assert view["message_id"] == "0x0200" and view["message_name"] == "location_report"
    assert (view["phone"], view["serial"], view["version"], view["body_length"]) == ("123456789012", 126, "2013", 38)
    assert view["encrypted"] is False and view["subpackage"] is None and view["checksum"] == "0x13"
    assert (view["lat"], view["lon"], view["altitude_m"], view["speed_kmh"], view["direction"]) == (
        12.222222, 132.444444, 40, 6.0, 0)
    assert view["time_utc"] == "2018-10-15T02:10:10Z"
    assert view["alarm"] == ["sos"] and view["status"] == ["fix_valid"]
    assert [(i["id"], i["name"], i["raw"], i["value"]) for i in view["items"]] == [
        ("0x01", "odometer_km", 100, 10.0), ("0x02", "fuel_l", 125, 12.5)]


def test_decode_hex_shows_fragments_unknown_and_bad_input():
    fragment = encode_message_frames(Heartbeat(), "1", 5, max_body_bytes=1)  # empty body: one frame
    assert decode_hex(fragment[0].hex())["message_name"] == "heartbeat"
    text = TextMessage(0x08, "请注意" * 4, 1)
    frames = encode_message_frames(text, "13912345678", 7, protocol_version=1, max_body_bytes=10)
    view = decode_hex(frames[1].hex())
    assert view["subpackage"] == {"count": len(frames), "index": 2} and view["version"] == "2019"
    assert view["phone"] == "00000000013912345678" and view["serial"] == 8 and "reassembler" in view["note"].lower()
    unknown = close_frame(bytes.fromhex("0900 0002 013912345678 0001 ABCD"))
    assert decode_hex(unknown.hex())["body_hex"] == "ABCD"
    with pytest.raises(Jt808Error) as caught:
        decode_hex("7E 02 ZZ 7E")
    assert caught.value.reason == "bad_hex"


# --- framing and header errors, each with its reason ----------------------------------------


def _worked_payload(**patch: bytes) -> bytes:
    data = bytearray(payload_of(WORKED))
    for offset, value in patch.items():
        start = int(offset[1:])
        data[start : start + len(value)] = value
    return bytes(data)


@pytest.mark.parametrize(
    "frame, reason",
    [
        (WORKED[:-2] + b"\x14\x7e", "bad_checksum"),
        (WORKED.replace(b"\x7d\x02", b"\x7d\x03"), "bad_escape"),
        (WORKED[:-2] + b"\x7d\x7e", "bad_escape"),
        (WORKED[1:], "bad_delimiter"),
        (WORKED[:20] + b"\x7e" + WORKED[20:], "bad_delimiter"),
        (b"\x7e\x7e", "truncated"),
        (close_frame(bytes.fromhex("0200002612")), "truncated"),
        (close_frame(_worked_payload(o2=b"\x00\x27")), "bad_length"),
        (close_frame(_worked_payload(o4=b"\x1a")), "bad_bcd"),
        (close_frame(_worked_payload(o34=b"\x18\x13")), "bad_time"),  # month 13
        (close_frame(_worked_payload(o34=b"\x18\x02\x30")), "bad_time"),  # 30 February
        (close_frame(_worked_payload(o34=b"\x18\x1a")), "bad_bcd"),
        (close_frame(_worked_payload(o20=b"\x05\x5d\x4a\x81")), "bad_position"),  # latitude 90.000001
        (close_frame(_worked_payload(o2=b"\x04\x26")), "encrypted"),
        (close_frame(_worked_payload(o0=b"\x09\x00")), "unknown_message"),
        (close_frame(_worked_payload(o2=b"\x20\x26")), "bad_subpackage"),  # count/index read from alarm: 0 of 1
        (close_frame(_worked_payload(o2=b"\x20\x26", o12=b"\x00\x01")), "bad_length"),  # 1 of 1, body 4 short
        (close_frame(_worked_payload(o40=b"\x01\x09")), "truncated"),  # odometer item claims 9 bytes
    ],
)
def test_malformed_frames_are_rejected_with_their_reason(frame, reason):
    with pytest.raises(Jt808Error) as caught:
        decode(frame)
    assert caught.value.reason == reason
    assert isinstance(caught.value, ValueError)


def test_subpackage_header_checks_and_fragments_need_reassembly():
    body = b"\x00" * 10
    bad_index = bytearray(payload_of(encode_frame(Header(0x0200, "1", 1, packet_count=2, packet_index=2), body)))
    bad_index[14:16] = b"\x00\x03"  # index 3 of 2
    with pytest.raises(Jt808Error) as caught:
        decode_frame(close_frame(bytes(bad_index)))
    assert caught.value.reason == "bad_subpackage"
    fragment = decode_frame(encode_frame(Header(0x0200, "1", 1, packet_count=2, packet_index=1), body))
    with pytest.raises(Jt808Error) as caught:
        decode_message(fragment)
    assert caught.value.reason == "subpackage"


def test_escape_covers_both_flag_bytes_and_nothing_else():
    raw = bytes(range(256)) * 2
    assert unescape(escape(raw)) == raw
    assert b"\x7e" not in escape(raw)
    assert escape(b"\x7e\x7d\x01\x02") == b"\x7d\x02\x7d\x01\x01\x02"


def test_phone_is_padded_and_matches_across_versions():
    old, _ = decode(encode_message(Heartbeat(), "13912345678", 1))
    new, _ = decode(encode_message(Heartbeat(), "13912345678", 1, protocol_version=1))
    assert (old.phone, new.phone) == ("013912345678", "00000000013912345678")
    assert phone_key(old.phone) == phone_key(new.phone) == "13912345678"
    with pytest.raises(Jt808Error) as caught:
        encode_message(Heartbeat(), "1391234567890", 1)  # 13 digits do not fit BCD[6]
    assert caught.value.reason == "bad_field"


@pytest.mark.parametrize(
    "message, version",
    [
        (Authenticate("code", imei="123456789012345", software_version="1.0"), None),
        (Authenticate("code"), 1),
        (TextMessage(0, "hi", text_type=1), None),
        (TextMessage(0, "hi"), 1),
        (RegisterReply(1, 0, None), None),
        (RegisterReply(1, 2, "code"), None),
        (Register(33, 200, "TOOLONG", "M", "T", 1, "浙B12345"), None),  # maker id is BYTE[5] in 2013
        (TerminalGeneralReply(70000, 0x8001, 0), None),
        (TextMessage(0, "☃ snow"), None),  # no GBK for the snowman
    ],
)
def test_encoder_refuses_what_the_layout_cannot_carry(message, version):
    with pytest.raises(Jt808Error) as caught:
        encode_message(message, "1", 1, protocol_version=version)
    assert caught.value.reason in {"bad_field", "bad_text"}


def test_location_encoder_checks_hemisphere_and_time():
    _, report = decode(WORKED)
    south = STATUS_MASKS["south"]
    with pytest.raises(Jt808Error, match="south"):
        encode_message(replace(report, lat=-12.0), "1", 1)
    ok = replace(report, lat=-12.0, status=report.status | south)
    assert decode(encode_message(ok, "1", 1))[1].lat == -12.0
    with pytest.raises(Jt808Error, match="timezone"):
        encode_message(replace(report, time=datetime(2020, 1, 1)), "1", 1)


def test_2019_text_message_and_register_layouts():
    register = Register(33, 201, "MAKER000001", "X" * 30, "T" * 30, 2, "浙B·12345")
    header, decoded = decode(encode_message(register, "13912345678", 9, protocol_version=1))
    assert decoded == register and header.protocol_version == 1
    frame = encode_message(register, "13912345678", 9, protocol_version=1)
    assert len(decode_frame(frame).body) == 2 + 2 + 11 + 30 + 30 + 1 + len("浙B·12345".encode("gbk"))
    short = Register(33, 201, "M1", "X", "T1", 1, "浙B12345")
    assert len(decode_frame(encode_message(short, "1", 1)).body) == 2 + 2 + 5 + 20 + 7 + 1 + 8
    assert decode_frame(encode_message(TextMessage(0x0C, "前方学校", 1), "1", 1, 1)).body[:2] == b"\x0c\x01"


# --- hypothesis round trips -------------------------------------------------------------------

GBK_CHARS = st.characters(codec="gbk", exclude_characters="\x00").filter(
    lambda c: c.encode("gbk").decode("gbk") == c
)


def gbk_text(max_bytes: int | None = None, max_size: int = 12):
    text = st.text(GBK_CHARS, max_size=max_size)
    return text if max_bytes is None else text.filter(lambda s: len(s.encode("gbk")) <= max_bytes)


WORD = st.integers(0, 0xFFFF)
BYTE = st.integers(0, 0xFF)
DWORD = st.integers(0, 0xFFFFFFFF)
KNOWN_ITEMS = st.sampled_from([("odometer_km", 0xFFFFFFFF), ("fuel_l", 0xFFFF), ("recorder_speed_kmh", 0xFFFF),
                               ("signal_strength", 0xFF), ("satellites", 0xFF)]).flatmap(
    lambda kind: st.integers(0, kind[1]).map(lambda raw: AdditionalItem.of(kind[0], raw)))
ANY_ITEMS = st.builds(AdditionalItem, BYTE, st.binary(max_size=40))


@st.composite
def location_reports(draw):
    status = draw(DWORD)
    lat = draw(st.integers(0, 90_000_000)) / 1e6
    lon = draw(st.integers(0, 180_000_000)) / 1e6
    when = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 15, 59, 59), timezones=st.just(timezone.utc)))
    return LocationReport(
        alarm=draw(DWORD), status=status,
        lat=-lat if status & STATUS_MASKS["south"] else lat, lon=-lon if status & STATUS_MASKS["west"] else lon,
        altitude_m=draw(WORD), speed_kmh=draw(WORD) / 10, direction=draw(WORD), time=when.replace(microsecond=0),
        items=tuple(draw(st.lists(st.one_of(KNOWN_ITEMS, ANY_ITEMS), max_size=4))),
    )


def messages(is_2019: bool):
    widths = (11, 30, 30) if is_2019 else (5, 20, 7)
    return st.one_of(
        st.builds(TerminalGeneralReply, WORD, WORD, BYTE),
        st.builds(PlatformGeneralReply, WORD, WORD, BYTE),
        st.just(Heartbeat()),
        st.just(Logout()),
        st.builds(Register, WORD, WORD, *(gbk_text(w, max_size=w) for w in widths), BYTE, gbk_text()),
        st.builds(RegisterReply, WORD, st.just(0), gbk_text()),
        st.builds(RegisterReply, WORD, st.integers(1, 255), st.none()),
        st.builds(Authenticate, gbk_text(255), st.none(), st.none()) if not is_2019 else
        st.builds(Authenticate, gbk_text(255), gbk_text(15, 15), gbk_text(20, 20)),
        st.builds(TextMessage, BYTE, gbk_text(max_size=600), BYTE if is_2019 else st.none()),
        st.builds(ManualAlarmConfirm, WORD, DWORD),
        location_reports(),
        st.builds(LocationBatch, BYTE, st.lists(location_reports(), max_size=4).map(tuple)),
    )


VERSIONED_MESSAGES = st.sampled_from([None, 0, 1, 255]).flatmap(
    lambda version: st.tuples(st.just(version), messages(version is not None)))
PHONES_2013 = st.text("0123456789", min_size=12, max_size=12)


def _split_in_chunks(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


def _feed_all(splitter: FrameSplitter, chunks: list[bytes]) -> list[bytes]:
    return [frame for chunk in chunks for frame in splitter.feed(chunk)]


@settings(max_examples=300, deadline=None)
@given(
    versioned=VERSIONED_MESSAGES,
    phone=PHONES_2013,
    serial=WORD,
    max_body=st.one_of(st.just(1023), st.integers(1, 64)),
    cuts=st.lists(st.integers(0, 10_000), max_size=20),
    data=st.data(),
)
def test_every_message_round_trips_through_frames_splitter_and_reassembly(versioned, phone, serial, max_body, cuts,
                                                                          data):
    version, message = versioned
    phone = phone if version is None else "00000000" + phone
    frames = encode_message_frames(message, phone, serial, protocol_version=version, max_body_bytes=max_body)
    # Fragments may arrive in any order, interleaved with other (unsplit) messages.
    order = data.draw(st.permutations(range(len(frames))))
    other = Logout() if isinstance(message, Heartbeat) else Heartbeat()
    beat = encode_message(other, phone, 0, protocol_version=version)
    stream = b"".join(frames[i] + beat for i in order)
    split = _feed_all(FrameSplitter(), _split_in_chunks(stream, cuts))
    assert split == [f for i in order for f in (frames[i], beat)]
    reassembler = Reassembler()
    whole = [p for p in (reassembler.feed(decode_frame(f)) for f in split) if p is not None]
    assert [p.header.message_id for p in whole if p.header.message_id != other.MESSAGE_ID] == [message.MESSAGE_ID]
    packet = next(p for p in whole if p.header.message_id == message.MESSAGE_ID)
    assert packet.header == Header(message.MESSAGE_ID, phone, serial, version)
    assert decode_message(packet) == message
    assert len(reassembler) == 0 and reassembler.pending_bytes == 0
    if len(frames) == 1:  # an unsplit frame re-encodes from its decoded form byte for byte
        assert encode_message(decode(frames[0])[1], phone, serial, version) == frames[0]


# --- the splitter --------------------------------------------------------------------------------

GARBAGE = st.binary(max_size=40) | st.lists(st.sampled_from([0x7E, 0x7D, 0x01, 0x02, 0x00, 0xFF]), max_size=12).map(
    bytes)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.tuples(GARBAGE, st.sampled_from([WORKED, encode_message(Heartbeat(), "7", 0x7E7D)])),
                    max_size=8),
    tail=GARBAGE,
    cuts=st.lists(st.integers(0, 100_000), max_size=30),
    max_frame=st.sampled_from([MAX_FRAME_BYTES, 40, 60]),
)
def test_splitter_output_does_not_depend_on_chunking(pieces, tail, cuts, max_frame):
    stream = b"".join(g + f for g, f in pieces) + tail
    whole, chunked = FrameSplitter(max_frame), FrameSplitter(max_frame)
    out_whole = whole.feed(stream)
    out_chunked = _feed_all(chunked, _split_in_chunks(stream, cuts))
    assert out_chunked == out_whole
    counters = lambda s: (s.frames, s.garbage_bytes, s.oversize, dict(s.rejected), s.pending_bytes)  # noqa: E731
    assert counters(chunked) == counters(whole)
    # Every valid frame that fits survives whatever garbage came before it.
    expected = [f for _, f in pieces if len(f) <= max_frame]
    it = iter(out_whole)
    assert all(any(f == got for got in it) for f in expected)


def test_splitter_back_to_back_frames_garbage_half_frames_and_oversize():
    splitter = FrameSplitter()
    assert splitter.feed(b"GET / HTTP/1.1\r\n" + WORKED + WORKED[:10]) == [WORKED]
    assert splitter.garbage_bytes == 16 and splitter.pending_bytes == 9
    assert splitter.feed(WORKED[10:] + WORKED) == [WORKED, WORKED]  # 7E 7E between them
    assert splitter.feed(b"\x7e\x01\x02\x03\x7e") == [] and splitter.rejected == {"truncated": 1}
    assert splitter.feed(b"\x7e" + b"\x55" * (MAX_FRAME_BYTES + 5)) == []
    assert splitter.oversize == 1 and splitter.pending_bytes == 0  # dropped at once, not buffered
    assert splitter.feed(b"\x55" * 100 + WORKED) == [WORKED]
    assert (splitter.frames, splitter.oversize) == (4, 1)
    with pytest.raises(ValueError):
        FrameSplitter(max_frame_bytes=5)


# --- reassembly ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fragments(message, phone="13912345678", serial=65534, max_body=16):
    return [decode_frame(f) for f in encode_message_frames(message, phone, serial, max_body_bytes=max_body)]


def test_reassembler_handles_serial_wrap_duplicates_and_interleaving():
    text_a, text_b = TextMessage(0, "甲" * 30), TextMessage(0, "乙" * 30)
    a, b = _fragments(text_a), _fragments(text_b, phone="13900000000")
    assert [p.header.serial for p in a][:3] == [65534, 65535, 0]
    r = Reassembler()
    out = [r.feed(p) for p in [a[0], b[1], a[0], *a[1:-1], *b[2:], b[0], a[-1]]]
    done = [p for p in out if p is not None]
    assert [decode_message(p) for p in done] == [text_b, text_a]
    assert r.duplicates == 1 and r.completed == 2 and len(r) == 0 and r.pending_bytes == 0


def test_reassembler_bounds_memory_by_timeout_count_and_size():
    clock = FakeClock()
    r = Reassembler(timeout_s=30, max_pending=2, max_message_bytes=100, clock=clock)
    first = _fragments(TextMessage(0, "x" * 40))
    assert r.feed(first[0]) is None
    clock.now = 31
    assert r.expire() == 1 and len(r) == 0 and r.pending_bytes == 0
    for phone in ("1", "2", "3"):  # three half-sent messages, room for two
        assert r.feed(_fragments(TextMessage(0, "y" * 40), phone=phone)[0]) is None
    assert len(r) == 2 and r.evicted == 1
    big = _fragments(TextMessage(0, "z" * 200), phone="4")
    with pytest.raises(Jt808Error) as caught:
        for p in big:
            r.feed(p)
    # while it grew it took a place (evicting another half-sent message); refused, it holds none
    assert caught.value.reason == "oversize" and len(r) == 1 and r.evicted == 2
    clock.now = 100
    assert r.feed(decode_frame(WORKED)).body == decode_frame(WORKED).body  # unsplit packets pass straight through
    r.expire()
    assert len(r) == 0 and r.pending_bytes == 0 and r.expired == 2


# --- location reports -> PingBatch -------------------------------------------------------------


def test_reports_to_batch_fills_every_column():
    _, worked = decode(WORKED)
    west = LocationReport(0, STATUS_MASKS["west"] | STATUS_MASKS["south"], -33.5, -70.25, 0, 88.8, 359,
                          datetime(2021, 3, 1, 0, 0, 1, tzinfo=timezone.utc))
    batch = reports_to_batch(["VEH-1", "VEH-2"], [worked, west])
    assert list(batch.vehicle_id) == ["VEH-1", "VEH-2"]
    assert batch.epoch_ms.tolist() == [1539569410000, 1614556801000]
    np.testing.assert_array_equal(batch.lon, [132.444444, -70.25])
    np.testing.assert_array_equal(batch.lat, [12.222222, -33.5])
    np.testing.assert_array_equal(batch.speed_kmh, [6.0, 88.8])
    np.testing.assert_array_equal(batch.heading, [0.0, 359.0])
    assert batch.alarm.tolist() == [1, 0] and batch.alarm.dtype == np.uint32
    assert batch.status.tolist() == [2, 12] and batch.epoch_ms.dtype == np.int64
    assert len(reports_to_batch([], [])) == 0
    with pytest.raises(ValueError, match="2 vehicle ids for 1"):
        reports_to_batch(["VEH-1", "VEH-2"], [worked])


def test_alarm_and_status_names_cover_the_listed_bits():
    report = LocationReport(ALARM_MASKS["route_deviation"] | 1 << 15 | 1 << 31,
                            STATUS_MASKS["acc_on"] | 0b11 << 8 | STATUS_MASKS["beidou_used"], 0, 0, 0, 0, 0,
                            datetime(2020, 1, 1, tzinfo=timezone.utc))
    assert report.alarm_names == ["bit15", "route_deviation", "illegal_door_open"]
    assert report.status_names == ["acc_on", "beidou_used"] and report.load_state == "full"


# --- fuzz ----------------------------------------------------------------------------------------


def _corpus(rng: random.Random) -> list[bytes]:
    """Valid frames of every message type, both header versions, some sub-packeted."""
    frames = [WORKED]
    _, worked = decode(WORKED)
    samples = [
        TerminalGeneralReply(1, 0x8300, 0), PlatformGeneralReply(126, 0x0200, 0), Heartbeat(), Logout(),
        RegisterReply(3, 0, "AUTH123"), RegisterReply(3, 1), ManualAlarmConfirm(126, 1),
        replace(worked, items=worked.items + (AdditionalItem(0xE1, b"\x7e\x7d\x00"),)),
        LocationBatch(1, (worked, worked)),
    ]
    for version in (None, 1):
        is_2019 = version is not None
        samples_v = samples + [
            Register(33, 200, "M1", "MODEL", "T01", 1, "浙B12345"),
            Authenticate("AUTH123", "123456789012345" if is_2019 else None, "V1.0" if is_2019 else None),
            TextMessage(0x0C, "前方学校，减速慢行", 1 if is_2019 else None),
        ]
        for message in samples_v:
            frames.append(encode_message(message, "13912345678", rng.randrange(0x10000), version))
        frames += encode_message_frames(LocationBatch(0, (worked,) * 3), "13912345678", 7, version, max_body_bytes=40)
    return frames


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:  # bit flip
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1:  # insertion, often of a flag or escape byte
            picks = (0x7E, 0x7D, 0x01, 0x02)
            data[at:at] = bytes(rng.choice((*picks, rng.randrange(256))) for _ in range(rng.randint(1, 4)))
        elif kind == 2:  # deletion
            del data[at : at + rng.randint(1, 4)]
        elif kind == 3:  # truncation
            del data[at:]
        elif kind == 4 and data:  # a byte set to an extreme
            data[min(at, len(data) - 1)] = rng.choice((0x00, 0xFF, 0x99, 0x7E, 0x7D))
        else:  # a word set to an extreme (lengths, counts, ids)
            data[at : at + 2] = rng.choice((b"\x00\x00", b"\xff\xff", b"\x03\xff", b"\x20\x00", b"\x40\x00"))
    return bytes(data)


def _decode_everything(frame: bytes, reassembler: Reassembler, reasons: dict) -> None:
    try:
        packet = reassembler.feed(decode_frame(frame))
        if packet is not None:
            message = decode_message(packet)
            # whatever decodes must also have a hex view and a batch row
            if isinstance(message, LocationReport):
                reports_to_batch(["VEH-X"], [message])
    except Jt808Error as error:
        reasons[error.reason] = reasons.get(error.reason, 0) + 1


def test_fuzz_decoder_raises_only_jt808_error():
    rng = random.Random(808)
    corpus = _corpus(rng)
    payloads = [payload_of(f) for f in corpus]
    packets = [decode_frame(f) for f in corpus]
    reassembler = Reassembler(max_pending=64)
    reasons: dict[str, int] = {}
    started = time.perf_counter()
    n = 100_000
    for i in range(n):
        mode = i % 3
        if mode == 0:  # mutate the wire bytes: mostly caught by framing
            frame = _mutate(rng, rng.choice(corpus))
        elif mode == 1:  # mutate header and body, re-frame with a valid checksum
            frame = close_frame(_mutate(rng, rng.choice(payloads)))
        else:  # mutate the body only, under a header whose length matches: reaches every body decoder
            packet = rng.choice(packets)
            body = _mutate(rng, packet.body)[:1023]
            frame = encode_frame(packet.header, body)
        _decode_everything(frame, reassembler, reasons)
        if i % 97 == 0:
            try:
                json.dumps(decode_hex(frame.hex()), ensure_ascii=False)
            except Jt808Error:
                pass
    elapsed = time.perf_counter() - started
    print(f"\nfuzz: {n} mutated frames in {elapsed:.1f} s; rejections {sorted(reasons.items())}")
    assert set(reasons) <= REASONS
    # the mutations reach deep: body-level reasons show up, not only framing ones
    assert {"bad_checksum", "bad_escape", "bad_length", "bad_bcd", "truncated", "unknown_message"} <= set(reasons)
    assert sum(reasons.values()) < n  # some mutations still decode (e.g. a flipped alarm bit)


def test_fuzz_streams_valid_frames_survive_garbage_between_them():
    rng = random.Random(7)
    corpus = [f for f in _corpus(rng) if decode_frame(f).header.packet_count is None]
    for _ in range(300):
        sent, stream = [], bytearray()
        for _ in range(rng.randint(1, 6)):
            garbage = _mutate(rng, rng.choice(corpus)) if rng.random() < 0.5 else rng.randbytes(rng.randint(0, 30))
            frame = rng.choice(corpus)
            stream += garbage + frame
            sent.append(frame)
        splitter = FrameSplitter()
        out = _feed_all(splitter, _split_in_chunks(bytes(stream), [rng.randrange(len(stream) + 1) for _ in range(8)]))
        it = iter(out)
        recovered = [next((got for got in it if got == f), None) for f in sent]
        assert recovered == sent  # every valid frame, in order, whatever garbage came before
        for frame in recovered:
            decode(frame)  # and it decodes
        reasons: dict[str, int] = {}
        for frame in out:
            _decode_everything(frame, Reassembler(), reasons)


def test_every_message_type_is_covered():
    assert set(MESSAGE_TYPES) == {0x0001, 0x0002, 0x0003, 0x0100, 0x0102, 0x0200, 0x0704, 0x8001, 0x8100, 0x8203,
                                  0x8300}
