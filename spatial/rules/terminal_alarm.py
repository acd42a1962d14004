"""Terminal alarms: the JT/T 808 alarm bits a truck's terminal reports, as events of their own.

Rule `terminal_alarm`: one episode per (vehicle, alarm bit), opening at the first ping with
the bit set and closing at the first ping without it (its end is the last ping with the bit
set). A bit set on a single ping opens and closes. Evidence marks `terminal_reported: True`
with the bit number and name, so the platform's own findings (speeding, route_deviation,
fatigue…) are never merged with what the terminal says: they carry other rule names.

Which bits: `ALARM_BIT_NAMES` (JT/T 808-2019 table 24, the 0x0200 alarm word; bits 15–17 are
reserved and ignored); `alarm_bits` narrows them. Severity (engineering default):
SOS (bit 0) SEVERITY_HIGHEST; the bits that report a violation or an immediate danger
(overspeed, fatigue, danger warning, driving overtime, parking timeout, area/route in-out,
road-segment time, route deviation, stolen, illegal ignition/move, collision, rollover,
illegal door opening) SEVERITY_HIGH; pre-warnings and device faults SEVERITY_MEDIUM.

Vectorised: bit masks over the (slot, time)-sorted batch with the previous ping's bits
carried per slot; the per-bit episode starts are carried in a (slot, 32) array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from spatial.model import Event
from spatial.rules.base import (
    SEVERITY_HIGH,
    SEVERITY_HIGHEST,
    SEVERITY_MEDIUM,
    RuleBatch,
    RuleWorld,
    finite_or_none,
    grow,
    iso_times,
    make_event,
    previous_in_run,
    run_starts,
    setting,
)

# JT/T 808-2019 table 24: the alarm word of the 0x0200 location report.
ALARM_BIT_NAMES: dict[int, str] = {
    0: "sos", 1: "overspeed", 2: "fatigue", 3: "danger_warning", 4: "gnss_fault", 5: "gnss_antenna_open",
    6: "gnss_antenna_short", 7: "power_low", 8: "power_off", 9: "display_fault", 10: "tts_fault",
    11: "camera_fault", 12: "ic_card_fault", 13: "overspeed_warning", 14: "fatigue_warning",
    18: "daily_driving_overtime", 19: "parking_timeout", 20: "area_in_out", 21: "route_in_out",
    22: "road_segment_time", 23: "route_deviation", 24: "vss_fault", 25: "fuel_abnormal", 26: "stolen",
    27: "illegal_ignition", 28: "illegal_move", 29: "collision_warning", 30: "rollover_warning",
    31: "illegal_door_open",
}
HIGH_BITS = frozenset({1, 2, 3, 18, 19, 20, 21, 22, 23, 26, 27, 28, 29, 30, 31})


def alarm_severity(bit: int) -> int:
    if bit == 0:
        return SEVERITY_HIGHEST
    return SEVERITY_HIGH if bit in HIGH_BITS else SEVERITY_MEDIUM


@dataclass(frozen=True)
class TerminalAlarmSettings:
    alarm_bits: tuple = setting(tuple(sorted(ALARM_BIT_NAMES)), "bit numbers",
                                "JT/T 808-2019 table 24 (every defined alarm bit)")

    def __post_init__(self):
        bits = self.alarm_bits
        if not isinstance(bits, tuple) or not all(isinstance(b, int) and b in ALARM_BIT_NAMES for b in bits):
            raise ValueError(f"terminal_alarm alarm_bits must be a tuple of defined JT/T 808 alarm bits "
                             f"({sorted(ALARM_BIT_NAMES)}), got {bits!r}")

    @property
    def mask(self) -> int:
        return sum(1 << b for b in set(self.alarm_bits))


@dataclass(frozen=True)
class TerminalAlarmState:
    bits: np.ndarray = field(default_factory=lambda: np.empty(0, "uint32"))  # last ping's masked alarm word
    last_ms: np.ndarray = field(default_factory=lambda: np.empty(0, "int64"))
    last_lon: np.ndarray = field(default_factory=lambda: np.empty(0, "float64"))
    last_lat: np.ndarray = field(default_factory=lambda: np.empty(0, "float64"))
    start_ms: np.ndarray = field(default_factory=lambda: np.empty((0, 32), "int64"))  # per (slot, bit), -1 none


def _grow_rows(array: np.ndarray, size: int, fill) -> np.ndarray:
    if len(array) >= size:
        return array
    out = np.full((max(size, 2 * len(array)), array.shape[1]), fill, dtype=array.dtype)
    out[: len(array)] = array
    return out


@dataclass(frozen=True)
class TerminalAlarmRule:
    settings: TerminalAlarmSettings = field(default_factory=TerminalAlarmSettings)
    name: ClassVar[str] = "terminal_alarm"

    def initial_state(self) -> TerminalAlarmState:
        return TerminalAlarmState()

    def step(self, state: TerminalAlarmState, batch: RuleBatch, world: RuleWorld
             ) -> tuple[TerminalAlarmState, list[Event]]:
        if not len(batch):
            return state, []
        size = int(batch.slot.max()) + 1
        carried = grow(state.bits, size, 0)
        last_ms, last_lon, last_lat = grow(state.last_ms, size, -1), grow(state.last_lon, size, np.nan), \
            grow(state.last_lat, size, np.nan)
        carried_starts = _grow_rows(state.start_ms, size, -1)
        start_ms = carried_starts.copy()
        slot, t = batch.slot, batch.epoch_ms
        bits = np.asarray(batch.alarm, "uint32") & np.uint32(self.settings.mask)
        prev = previous_in_run(bits, slot, carried)
        prev_t = previous_in_run(t, slot, last_ms)
        prev_lon, prev_lat = previous_in_run(batch.lon, slot, last_lon), previous_in_run(batch.lat, slot, last_lat)
        starts = run_starts(slot)
        ends = np.r_[starts[1:], len(batch)] - 1
        start_ms[slot[ends]] = -1  # rewritten below for the bits still set at each slot's last ping
        # only pings with some bit set, or right after one, can open, close or carry an episode
        active = np.flatnonzero((bits | prev) != 0)
        events: list[Event] = []
        if len(active):
            first_of_slot = np.repeat(starts, np.diff(np.r_[starts, len(batch)]))[active]
            a_slot, a_bits, a_prev = slot[active], bits[active], prev[active]
            rose, fell = a_bits & ~a_prev, a_prev & ~a_bits
            set_at_end = ends[bits[ends] != 0]
            end_pos = np.searchsorted(active, set_at_end)
            carried_start = carried_starts[a_slot]
            for bit in sorted(set(self.settings.alarm_bits)):  # ≤ 29 bits, each vectorised over active pings
                flag = np.uint32(1 << bit)
                on, rising, falling = (a_bits & flag) != 0, (rose & flag) != 0, (fell & flag) != 0
                if not (on.any() or falling.any()):
                    continue
                # the episode a ping belongs to (or, at a falling ping, the one it closes) began at
                # the latest rising ping of this bit in its slot, else where the state says
                latest = np.maximum.accumulate(np.where(rising, active, -1))
                episode_start = np.where(latest >= first_of_slot, t[np.maximum(latest, 0)], carried_start[:, bit])
                name, severity = ALARM_BIT_NAMES[bit], alarm_severity(bit)
                closing, opening = np.flatnonzero(falling), np.flatnonzero(rising)
                i_close, i_open = active[closing], active[opening]
                # the evidence's times, formatted together (one call, not one per event)
                first_iso, last_iso, closed_iso, open_iso = np.split(iso_times(np.concatenate(
                    [episode_start[closing], prev_t[i_close], t[i_close], t[i_open]])),
                    np.cumsum([len(closing)] * 3))
                for k, i in enumerate(i_close):  # one per episode that ends
                    evidence = {"terminal_reported": True, "bit": bit, "alarm": name, "first_ping": first_iso[k],
                                "last_ping": last_iso[k], "closed": closed_iso[k],
                                "duration_s": (int(prev_t[i]) - int(episode_start[closing[k]])) / 1000.0}
                    events.append(make_event(self.name, batch.vehicle_id[i], "close", episode_start[closing[k]],
                                             prev_t[i], prev_lon[i], prev_lat[i], severity, evidence))
                for k, i in enumerate(i_open):  # one per episode that starts
                    evidence = {"terminal_reported": True, "bit": bit, "alarm": name, "first_ping": open_iso[k],
                                "alarm_word": int(batch.alarm[i]), "speed_kmh": finite_or_none(batch.speed_kmh[i]),
                                "speed_derived": bool(batch.speed_derived[i])}
                    events.append(make_event(self.name, batch.vehicle_id[i], "open", t[i], None, batch.lon[i],
                                             batch.lat[i], severity, evidence))
                still = (bits[set_at_end] & flag) != 0
                start_ms[slot[set_at_end[still]], bit] = episode_start[end_pos[still]]
        carried, last_ms, last_lon, last_lat = carried.copy(), last_ms.copy(), last_lon.copy(), last_lat.copy()
        carried[slot[ends]], last_ms[slot[ends]] = bits[ends], t[ends]
        last_lon[slot[ends]], last_lat[slot[ends]] = batch.lon[ends], batch.lat[ends]
        return TerminalAlarmState(carried, last_ms, last_lon, last_lat, start_ms), events
