"""The 0x0200 location report: fixed part, named alarm and status bits, additional items,
BCD time in UTC+8, and the conversion of decoded reports to a columnar PingBatch."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Sequence

import numpy as np

from data.feeds.jt808.errors import Jt808Error
from spatial.model import PingBatch

# JT/T 808 times are Beijing time; China keeps no daylight saving, so a fixed offset is exact.
BEIJING = timezone(timedelta(hours=8))

ALARM_BITS: dict[int, str] = {
    0: "sos",
    1: "overspeed",
    2: "fatigue",
    3: "danger_warning",
    4: "gnss_fault",
    5: "gnss_antenna_open",
    6: "gnss_antenna_short",
    7: "power_low",
    8: "power_off",
    9: "display_fault",
    10: "tts_fault",
    11: "camera_fault",
    12: "ic_card_fault",
    13: "overspeed_warning",
    14: "fatigue_warning",
    18: "daily_driving_overtime",
    19: "parking_timeout",
    20: "area_in_out",
    21: "route_in_out",
    22: "road_segment_time",
    23: "route_deviation",
    24: "vss_fault",
    25: "fuel_abnormal",
    26: "stolen",
    27: "illegal_ignition",
    28: "illegal_move",
    29: "collision_warning",
    30: "rollover_warning",
    31: "illegal_door_open",
}
ALARM_MASKS: dict[str, int] = {name: 1 << bit for bit, name in ALARM_BITS.items()}

# Single-bit status flags; bits 8-9 are the two-bit load state (see LOAD_STATES).
STATUS_BITS: dict[int, str] = {
    0: "acc_on",
    1: "fix_valid",
    2: "south",
    3: "west",
    4: "out_of_service",
    5: "coordinates_encrypted",
    10: "oil_circuit_cut",
    11: "electric_circuit_cut",
    12: "doors_locked",
    13: "door1_open",
    14: "door2_open",
    15: "door3_open",
    16: "door4_open",
    17: "door5_open",
    18: "gps_used",
    19: "beidou_used",
    20: "glonass_used",
    21: "galileo_used",
}
STATUS_MASKS: dict[str, int] = {name: 1 << bit for bit, name in STATUS_BITS.items()}
_LOAD_MASK = 0b11 << 8
LOAD_STATES = ("empty", "half", "reserved", "full")
STATUS_SOUTH = STATUS_MASKS["south"]
STATUS_WEST = STATUS_MASKS["west"]


def bit_names(value: int, names: dict[int, str]) -> list[str]:
    """Names of the set bits, lowest first; a set bit without a name shows as `bitN`.
    (Status bits 8-9, the load state, are left to `load_state`.)"""
    out = []
    for bit in range(32):
        if value >> bit & 1:
            name = names.get(bit)
            if name is None and names is STATUS_BITS and bit in (8, 9):
                continue
            out.append(name or f"bit{bit}")
    return out


# Known additional items: id -> (name, value length, divisor to the named unit).
ITEM_KINDS: dict[int, tuple[str, int, int]] = {
    0x01: ("odometer_km", 4, 10),
    0x02: ("fuel_l", 2, 10),
    0x03: ("recorder_speed_kmh", 2, 10),
    0x30: ("signal_strength", 1, 1),
    0x31: ("satellites", 1, 1),
}
ITEM_IDS: dict[str, int] = {name: item_id for item_id, (name, _, _) in ITEM_KINDS.items()}


@dataclass(frozen=True, slots=True)
class AdditionalItem:
    """One `[id][len][value]` item, kept as sent so it re-encodes unchanged."""

    item_id: int
    value: bytes

    @property
    def name(self) -> str | None:
        kind = ITEM_KINDS.get(self.item_id)
        return kind[0] if kind and len(self.value) == kind[1] else None

    @property
    def raw_value(self) -> int | None:
        """The integer of a known item (odometer 100 = 10.0 km), None for an unknown id or
        a known id with an unexpected length."""
        return int.from_bytes(self.value, "big") if self.name else None

    @property
    def scaled_value(self) -> float | None:
        raw = self.raw_value
        return None if raw is None else raw / ITEM_KINDS[self.item_id][2]

    @classmethod
    def of(cls, name: str, raw: int) -> "AdditionalItem":
        """A known item from its name and raw integer: AdditionalItem.of('fuel_l', 125)."""
        item_id = ITEM_IDS[name]
        return cls(item_id, raw.to_bytes(ITEM_KINDS[item_id][1], "big"))


_FIXED = struct.Struct(">IIIIHHH6s")
FIXED_BYTES = _FIXED.size  # 28


@dataclass(frozen=True, slots=True)
class LocationReport:
    """0x0200. `lat`/`lon` in degrees with the hemisphere from status bits 2/3 applied,
    `time` timezone-aware UTC (whole seconds)."""

    MESSAGE_ID: ClassVar[int] = 0x0200
    NAME: ClassVar[str] = "location_report"

    alarm: int
    status: int
    lat: float
    lon: float
    altitude_m: int
    speed_kmh: float
    direction: int
    time: datetime
    items: tuple[AdditionalItem, ...] = ()

    @property
    def alarm_names(self) -> list[str]:
        return bit_names(self.alarm, ALARM_BITS)

    @property
    def status_names(self) -> list[str]:
        return bit_names(self.status, STATUS_BITS)

    @property
    def load_state(self) -> str:
        return LOAD_STATES[(self.status & _LOAD_MASK) >> 8]

    @property
    def fix_valid(self) -> bool:
        return bool(self.status & STATUS_MASKS["fix_valid"])

    def item_value(self, name: str) -> float | None:
        """The scaled value of the first well-formed known item `name`, None when absent."""
        item_id = ITEM_IDS[name]
        for item in self.items:
            if item.item_id == item_id and item.name:
                return item.scaled_value
        return None

    @property
    def odometer_km(self) -> float | None:
        return self.item_value("odometer_km")

    @property
    def fuel_l(self) -> float | None:
        return self.item_value("fuel_l")

    @classmethod
    def decode_body(cls, body: bytes, is_2019: bool = False) -> "LocationReport":
        if len(body) < FIXED_BYTES:
            raise Jt808Error("truncated", f"location report of {len(body)} bytes; the fixed part has {FIXED_BYTES}")
        alarm, status, lat_e6, lon_e6, altitude, speed_dkmh, direction, bcd = _FIXED.unpack_from(body)
        if lat_e6 > 90_000_000 or lon_e6 > 180_000_000:
            raise Jt808Error("bad_position", f"latitude {lat_e6 / 1e6} / longitude {lon_e6 / 1e6} degrees out of range")
        lat = lat_e6 / 1e6
        lon = lon_e6 / 1e6
        if status & STATUS_SOUTH:
            lat = -lat
        if status & STATUS_WEST:
            lon = -lon
        return cls(alarm, status, lat, lon, altitude, speed_dkmh / 10, direction, decode_time(bcd),
                   _decode_items(body, FIXED_BYTES))

    def encode_body(self, is_2019: bool = False) -> bytes:
        lat_e6 = _hemisphere_value(self.lat, self.status & STATUS_SOUTH, "lat", 90_000_000)
        lon_e6 = _hemisphere_value(self.lon, self.status & STATUS_WEST, "lon", 180_000_000)
        speed_dkmh = round(self.speed_kmh * 10)
        for name, value, top in (("alarm", self.alarm, 0xFFFFFFFF), ("status", self.status, 0xFFFFFFFF),
                                 ("altitude_m", self.altitude_m, 0xFFFF), ("speed_kmh*10", speed_dkmh, 0xFFFF),
                                 ("direction", self.direction, 0xFFFF)):
            if not 0 <= value <= top:
                raise Jt808Error("bad_field", f"{name} {value} is outside 0..{top}")
        fixed = _FIXED.pack(self.alarm, self.status, lat_e6, lon_e6, self.altitude_m, speed_dkmh, self.direction,
                            encode_time(self.time))
        items = []
        for item in self.items:
            if not 0 <= item.item_id <= 0xFF or len(item.value) > 0xFF:
                raise Jt808Error("bad_field", f"item 0x{item.item_id:X} with {len(item.value)} bytes does not fit")
            items.append(bytes((item.item_id, len(item.value))) + item.value)
        return fixed + b"".join(items)


def _hemisphere_value(degrees: float, negative_flag: int, name: str, top: int) -> int:
    if (degrees < 0 and not negative_flag) or (degrees > 0 and negative_flag):
        flag = "south" if name == "lat" else "west"
        raise Jt808Error("bad_field", f"{name} {degrees} disagrees with the status {flag} bit")
    value = round(abs(degrees) * 1e6)
    if value > top:
        raise Jt808Error("bad_field", f"{name} {degrees} is out of range")
    return value


def _decode_items(body: bytes, offset: int) -> tuple[AdditionalItem, ...]:
    items = []
    end = len(body)
    while offset < end:
        if offset + 2 > end:
            raise Jt808Error("truncated", f"additional item at byte {offset} lacks its length byte")
        item_id, length = body[offset], body[offset + 1]
        offset += 2
        if offset + length > end:
            raise Jt808Error("truncated", f"additional item 0x{item_id:02X} claims {length} bytes, {end - offset} left")
        items.append(AdditionalItem(item_id, body[offset : offset + length]))
        offset += length
    return tuple(items)


def decode_time(bcd: bytes) -> datetime:
    """BCD[6] YYMMDDhhmmss in Beijing time -> timezone-aware UTC."""
    digits = bcd.hex()
    if not digits.isdigit():
        raise Jt808Error("bad_bcd", f"time {digits.upper()} has a nibble above 9")
    try:
        local = datetime(2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6:8]),
                         int(digits[8:10]), int(digits[10:12]), tzinfo=BEIJING)
    except ValueError as error:
        raise Jt808Error("bad_time", f"time 20{digits[0:2]}-{digits[2:4]}-{digits[4:6]} "
                         f"{digits[6:8]}:{digits[8:10]}:{digits[10:12]} is no date: {error}") from None
    return local.astimezone(timezone.utc)


def encode_time(when: datetime) -> bytes:
    """Timezone-aware datetime -> BCD[6] Beijing time (fractions of a second dropped)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise Jt808Error("bad_field", f"time {when} has no timezone")
    local = when.astimezone(BEIJING)
    if not 2000 <= local.year <= 2099:
        raise Jt808Error("bad_field", f"time {when} is outside the years 2000-2099 a BCD time holds")
    return bytes.fromhex(local.strftime("%y%m%d%H%M%S"))


def reports_to_batch(vehicle_ids: Sequence[str], reports: Sequence[LocationReport],
                     arrival_ms: np.ndarray | None = None) -> PingBatch:
    """Decoded reports (one vehicle id each) -> a columnar PingBatch; one pass pulls the
    fields out, the unit work is done on whole columns. `arrival_ms` (the gateway's receive
    time of each report, UTC ms) is carried as the batch's arrival column."""
    if len(vehicle_ids) != len(reports):
        raise ValueError(f"{len(vehicle_ids)} vehicle ids for {len(reports)} location reports")
    if arrival_ms is not None and len(arrival_ms) != len(reports):
        raise ValueError(f"{len(arrival_ms)} arrival times for {len(reports)} location reports")
    n = len(reports)
    columns = np.array(
        [(r.time.timestamp(), r.lon, r.lat, r.speed_kmh, r.direction) for r in reports], dtype="float64"
    ).reshape(n, 5)
    bits = np.array([(r.alarm, r.status) for r in reports], dtype="uint32").reshape(n, 2)
    return PingBatch.from_arrays(
        vehicle_id=np.asarray(vehicle_ids, dtype=object),
        epoch_ms=np.rint(columns[:, 0] * 1000).astype("int64"),
        lon=columns[:, 1],
        lat=columns[:, 2],
        speed_kmh=columns[:, 3],
        heading=columns[:, 4],
        alarm=bits[:, 0],
        status=bits[:, 1],
        arrival_ms=arrival_ms,
    )
