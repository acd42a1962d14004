"""The monitoring-point side of the simulator: a reading a minute from every point, staged alarms.

`plan_points(world, settings)` draws, once, every point's normal behaviour and the staged
ones; `PointSim.readings_between(t0, t1)` then computes the readings of any slice of
simulated time from the plan alone, vectorised over points and readings.

Normal behaviour. A point reports every `reading_interval_s` on its own phase (a whole-second
offset, so the points do not all report on the same second): its reading times are
k * interval + phase for whole k, counted from the epoch. Its value is
    baseline + drift(t) + noise(point, k)
- baseline: inside the point's *normal band* - between its level-1 thresholds (low / low_low
  below, high / high_high above; the range edges where a side has none), kept `MARGIN_FRACTION`
  of the range from either edge, plus room for drift and noise;
- drift: two slow sines (periods of hours) of at most `DRIFT_FRACTION` of the range;
- noise: bounded (triangular on [-a, a], a = `NOISE_FRACTION` of the range) and keyed by a
  counter-based hash of (seed, point, k), so a reading does not depend on how time is sliced.
The noise is far above point_stuck's tolerance (0.1 % of range: two readings fall within it
about one time in six, an hour of them never) and far below point_rate's limit (10 % of
range a minute); baseline +- drift +- noise never leaves the band, so an unstaged point
raises no level, rate, stuck, range or interruption event at all.

Staged behaviours (each kind of `settings.point_stage_kinds` on
max(1, round(point_stage_share * n_points)) points, every staged point a different one), each
starting on one of its point's reading times in [start + stage_margin_s, end - its duration]:
- point_level_1: ramps to the middle of (high, high_high), holds `SPIKE_HOLD_S`, ramps back;
- point_level_2: ramps to above high_high (below range_max), holds, ramps back;
  both ramp at `RAMP_FRACTION_PER_MIN` of the range a minute, well under point_rate's limit,
  so they raise point_level only (level 2 escalates through level 1 or opens at level 2);
- point_stuck: repeats one value exactly for stuck_after_s + `STUCK_EXTRA_S`;
- point_silent: sends nothing for interruption_after_s + `SILENT_EXTRA_S` (rounded up to whole
  intervals), then resumes.
A staged row's start is the reading where the behaviour begins (level: the last normal
reading before the ramp; stuck: the first frozen reading; silent: the last reading before
the silence, which is what point_interruption dates its episode from) and its end the first
reading back to normal.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from data.sim.settings import POINT_STAGES, STAGED_COLUMNS, SimSettings
from spatial.model import ReadingBatch, World
from spatial.rules.point_base import PointWorld
from spatial.rules.point_rate import PointRateSettings
from spatial.rules.point_stuck import PointStuckSettings

__all__ = ["PointSim", "plan_points", "NOISE_FRACTION", "DRIFT_FRACTION", "MARGIN_FRACTION",
           "RAMP_FRACTION_PER_MIN", "SPIKE_HOLD_S", "STUCK_EXTRA_S", "SILENT_EXTRA_S"]

# The simulated instrument, as fractions of each point's range (span = range_max - range_min).
NOISE_FRACTION = 0.008  # half-width of the bounded noise: 8x point_stuck's default tolerance
DRIFT_FRACTION = 0.02  # slow process drift over hours
MARGIN_FRACTION = 0.03  # kept between the normal band and a threshold (3x the level deadband)
DRIFT_PERIODS_H = (1.5, 8.0)  # the drift sines' periods are drawn in this range
# staged ramps climb at 40 % of point_rate's default limit (10 % of range a minute)
RAMP_FRACTION_PER_MIN = 0.4 * PointRateSettings().max_rate_fraction_per_min
SPIKE_HOLD_S = 600.0  # a staged level alarm stays up ~10 min
STUCK_EXTRA_S = 900.0  # a staged stuck value outlasts stuck_after_s by 15 min
SILENT_EXTRA_S = 600.0  # a staged silence outlasts interruption_after_s by 10 min
# a frozen value keeps this many of point_stuck's default tolerances from the readings before
# it, so the stuck run (and the rule's episode) starts exactly at the first frozen reading
_STUCK_CLEARANCE = 2.0 * PointStuckSettings().stuck_tolerance_fraction
_GAS_KINDS = ("combustible_gas", "toxic_gas")  # clean air: baselines low in the band

NORMAL, LEVEL_1, LEVEL_2, STUCK, SILENT = range(5)
_STAGE_CODE = {"point_level_1": LEVEL_1, "point_level_2": LEVEL_2, "point_stuck": STUCK, "point_silent": SILENT}
STATUS_NAMES = np.array(["normal", "level_1", "level_2", "stuck", "silent"], dtype=object)

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_SALT_NOISE_A, _SALT_NOISE_B, _SALT_SPIKE_A, _SALT_SPIKE_B = (_U64(s) for s in (0xA1, 0xB2, 0xC3, 0xD4))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (wraps modulo 2**64 by design)."""
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _uniform(key: np.ndarray, k: np.ndarray, salt: np.uint64) -> np.ndarray:
    """A uniform in [0, 1) from (per-reading point key, reading counter, salt): counter-based."""
    h = _mix(key ^ _mix(k.astype(np.uint64) * _GOLDEN + salt))
    return (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _triangular(key: np.ndarray, k: np.ndarray, salts: tuple) -> np.ndarray:
    """Bounded noise in (-1, 1), triangular (the sum of two uniforms)."""
    return _uniform(key, k, salts[0]) + _uniform(key, k, salts[1]) - 1.0


class PointSim:
    """The plan of every point's readings over [start_ms, end_ms), and the staged behaviours."""

    def __init__(self, point_ids: np.ndarray, staged: pd.DataFrame, start_ms: int, end_ms: int,
                 interval_ms: int, params: dict[str, np.ndarray]):
        self.point_ids = point_ids
        self.staged = staged
        self.start_ms = int(start_ms)
        self.end_ms = int(end_ms)
        self.interval_ms = int(interval_ms)
        self._p = params

    def __len__(self) -> int:
        return len(self.point_ids)

    # --- values ----------------------------------------------------------------------------

    def _normal(self, slot: np.ndarray, t_ms: np.ndarray, k: np.ndarray) -> np.ndarray:
        p = self._p
        t_h = (t_ms - self.start_ms) / 3_600_000.0
        drift = (0.7 * np.sin(2 * np.pi * t_h / p["period_1_h"][slot] + p["angle_1"][slot])
                 + 0.3 * np.sin(2 * np.pi * t_h / p["period_2_h"][slot] + p["angle_2"][slot]))
        noise = _triangular(p["key"][slot], k, (_SALT_NOISE_A, _SALT_NOISE_B))
        return p["baseline"][slot] + p["drift"][slot] * drift + p["noise"][slot] * noise

    def _values(self, slot: np.ndarray, t_ms: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values of readings (slot, time, counter) and a mask of those actually sent."""
        p = self._p
        value = self._normal(slot, t_ms, k)
        sent = np.ones(len(slot), bool)
        code = p["stage"][slot]
        t0, t1 = p["stage_t0"][slot], p["stage_t1"][slot]
        staged = np.flatnonzero((code != NORMAL) & (t_ms >= t0) & (t_ms <= t1))
        if not len(staged):
            return value, sent
        s, t, c = slot[staged], t_ms[staged], code[staged]
        a, b = t0[staged], t1[staged]
        level = (c == LEVEL_1) | (c == LEVEL_2)
        # a trapezoid weight 0 -> 1 (ramp) -> 1 (hold) -> 0 (ramp) between the normal value and the spike
        weight = np.clip(np.minimum(t - a, b - t) / p["ramp_ms"][s], 0.0, 1.0)
        spike = p["target"][s] + p["spike_noise"][s] * _triangular(p["key"][s], k[staged],
                                                                     (_SALT_SPIKE_A, _SALT_SPIKE_B))
        mixed = (1.0 - weight) * value[staged] + weight * spike
        frozen = (c == STUCK) & (t < b)
        value[staged] = np.where(level, mixed, np.where(frozen, p["frozen"][s], value[staged]))
        sent[staged] = ~((c == SILENT) & (t > a) & (t < b))
        return value, sent

    # --- public ----------------------------------------------------------------------------

    def readings_between(self, t0_ms: int, t1_ms: int) -> ReadingBatch:
        """Every reading with time in [t0_ms, t1_ms) (clipped to the plan), sorted by time then
        point. The same for any slicing: the readings of [a, b) and [b, c) are those of [a, c)."""
        t0_ms, t1_ms = int(t0_ms), int(t1_ms)
        if t1_ms < t0_ms:
            raise ValueError(f"readings_between needs t0_ms <= t1_ms, got {t0_ms} > {t1_ms}")
        lo, hi = max(t0_ms, self.start_ms), min(t1_ms, self.end_ms)
        if hi <= lo or not len(self):
            return ReadingBatch.from_arrays(np.empty(0, object), np.empty(0, "int64"), np.empty(0, "float64"))
        phase, step = self._p["phase_ms"], self.interval_ms
        k_first = -((phase - lo) // step)  # ceil((lo - phase) / step)
        k_end = -((phase - hi) // step)
        count = k_end - k_first
        total = int(count.sum())
        slot = np.repeat(np.arange(len(self)), count)
        first_row = np.cumsum(count) - count
        k = k_first[slot] + (np.arange(total) - first_row[slot])
        t_ms = k * step + phase[slot]
        order = np.lexsort((slot, t_ms))
        slot, t_ms, k = slot[order], t_ms[order], k[order]
        value, sent = self._values(slot, t_ms, k)
        return ReadingBatch.from_arrays(self.point_ids[slot[sent]], t_ms[sent], value[sent])

    def status_at(self, t_ms: int) -> pd.Series:
        """The true staged state of every point at `t_ms` (indexed by point id): level_1 /
        level_2 while a staged spike's latest reading stands at or above high / high_high, stuck
        while a staged value is frozen, silent while a staged point sends nothing; else normal."""
        p = self._p
        t_ms = int(t_ms)
        status = np.full(len(self), NORMAL, "int64")
        staged = np.flatnonzero(p["stage"] != NORMAL)  # the handful of staged points
        step = self.interval_ms
        k = (t_ms - p["phase_ms"][staged]) // step  # each one's latest reading at or before t_ms
        last_ms = k * step + p["phase_ms"][staged]
        code, a, b = p["stage"][staged], p["stage_t0"][staged], p["stage_t1"][staged]
        value, _ = self._values(staged, last_ms, k)
        level = np.where(value >= p["high_high"][staged], LEVEL_2,
                         np.where(value >= p["high"][staged], LEVEL_1, NORMAL))
        inside = (last_ms >= a) & (last_ms < b)
        status[staged] = np.select(
            [((code == LEVEL_1) | (code == LEVEL_2)) & inside, (code == STUCK) & inside,
             (code == SILENT) & (t_ms > a) & (t_ms < b)],
            [level, STUCK, SILENT], NORMAL)
        return pd.Series(STATUS_NAMES[status], index=pd.Index(self.point_ids, name="point_id"), name="status")


# --- planning ----------------------------------------------------------------------------------

def _normal_band(pw: PointWorld, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per point: baseline, drift and noise amplitudes that keep every normal reading inside
    the band between its level-1 thresholds (range edges where a side has none)."""
    span = pw.span
    lower = np.fmax(pw.range_min, pw.lower_1)  # fmax/fmin: a NaN threshold yields the range edge
    upper = np.fmin(pw.range_max, pw.upper_1)
    width = upper - lower
    bad = ~(width > 0)
    if bad.any():
        raise ValueError("monitoring points whose level-1 thresholds leave no normal band inside their range: "
                         + ", ".join(map(str, pw.point_ids[bad][:10])))
    # narrow bands (none in the demo world) get smaller margins and noise instead of an error
    margin = np.minimum(MARGIN_FRACTION * span, width / 4)
    noise = np.minimum(NOISE_FRACTION * span, width / 8)
    drift = np.minimum(DRIFT_FRACTION * span, 0.8 * (width - 2 * margin - 2 * noise) / 2)
    room = width - 2 * (margin + noise + drift)
    # where in its room the baseline sits: gas detectors low (clean air), temperatures near
    # their operating point (high sits 15 degrees above it in the demo world), the rest mid-band
    gas = np.isin(pw.kind, np.array(_GAS_KINDS, dtype=object))
    warm = pw.kind == "temperature"
    where = np.select([gas, warm], [rng.uniform(0.0, 0.25, len(pw)), rng.uniform(0.6, 0.9, len(pw))],
                      rng.uniform(0.2, 0.8, len(pw)))
    baseline = lower + margin + noise + drift + where * room
    return {"baseline": baseline, "noise": noise, "drift": drift}


def _stage_eligible(pw: PointWorld, band: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per stage kind: which points have what it needs."""
    with np.errstate(invalid="ignore"):
        has_both = np.isfinite(pw.high) & np.isfinite(pw.high_high) & (pw.high < pw.high_high)
        room_above = np.isfinite(pw.high_high) & (pw.range_max - pw.high_high >= 2 * MARGIN_FRACTION * pw.span / 3)
    lowest = band["baseline"] - band["drift"] - band["noise"]
    return {
        "point_level_1": has_both,
        "point_level_2": room_above,
        # a frozen value at the bottom of the range is a quiet process to point_stuck, not a fault
        "point_stuck": lowest - pw.range_min > 0.01 * pw.span,
        "point_silent": np.ones(len(pw), bool),
    }


def plan_points(world: World, settings: SimSettings) -> PointSim:
    """Every monitoring point's normal behaviour and the staged ones over the settings' span.
    Deterministic in `settings.seed`. Raises ValueError when a stage kind has no eligible point
    or does not fit between start + stage_margin_s and the end."""
    pw = PointWorld(world)
    n = len(pw)
    rng = np.random.default_rng([int(settings.seed), 0x504F494E])  # "POIN": the points' stream
    interval_ms = int(settings.reading_interval_s) * 1000
    if interval_ms <= 0 or interval_ms != settings.reading_interval_s * 1000:
        raise ValueError(f"reading_interval_s must be a whole number of seconds > 0, "
                         f"got {settings.reading_interval_s!r}")
    start_ms, end_ms = settings.start_ms, settings.end_ms

    band = _normal_band(pw, rng)
    params: dict[str, np.ndarray] = {
        **band,
        "span": pw.span,
        "phase_ms": rng.integers(0, int(settings.reading_interval_s), n).astype("int64") * 1000,
        "period_1_h": rng.uniform(*DRIFT_PERIODS_H, n),
        "period_2_h": rng.uniform(*DRIFT_PERIODS_H, n) / 3,
        "angle_1": rng.uniform(0, 2 * np.pi, n),
        "angle_2": rng.uniform(0, 2 * np.pi, n),
        "key": _mix(np.arange(n, dtype=np.uint64) * _GOLDEN + _mix(np.array([settings.seed], np.uint64))),
        "high": np.where(np.isfinite(pw.high), pw.high, np.inf),
        "high_high": np.where(np.isfinite(pw.high_high), pw.high_high, np.inf),
        "stage": np.zeros(n, "int64"),
        "stage_t0": np.zeros(n, "int64"),
        "stage_t1": np.zeros(n, "int64"),
        "ramp_ms": np.ones(n),
        "target": np.zeros(n),
        "spike_noise": np.zeros(n),
        "frozen": np.zeros(n),
    }
    sim = PointSim(pw.point_ids.to_numpy(), pd.DataFrame(columns=list(STAGED_COLUMNS)), start_ms, end_ms,
                   interval_ms, params)

    eligible = _stage_eligible(pw, band)
    free = np.ones(n, bool)
    rows = []
    for kind in settings.point_stage_kinds:  # a handful of kinds
        if not n:
            raise ValueError(f"cannot stage {kind}: the world has no monitoring points")
        pool = np.flatnonzero(eligible[kind] & free)
        if not len(pool):
            raise ValueError(f"cannot stage {kind}: no free monitoring point has what it needs "
                             f"(level stages need high/high_high thresholds with room below range_max)")
        want = max(1, round(settings.point_stage_share * n))
        chosen = np.sort(rng.choice(pool, min(want, len(pool)), replace=False))
        staged_rows = _stage(kind, chosen, sim, pw, settings, rng)
        if staged_rows is not None:
            free[chosen] = False
            rows.append(staged_rows)
    staged = pd.concat(rows, ignore_index=True) if rows else sim.staged
    sim.staged = staged.astype({"count": "int64"}) if len(staged) else staged
    return sim


def _stage(kind: str, slots: np.ndarray, sim: PointSim, pw: PointWorld, settings: SimSettings,
           rng: np.random.Generator) -> pd.DataFrame | None:
    """Stage `kind` on `slots` (writing into sim's parameters); its STAGED_COLUMNS rows, or None
    (with a warning) when the simulated span is too short for it."""
    p, step = sim._p, sim.interval_ms
    code = _STAGE_CODE[kind]
    span = pw.span[slots]
    baseline = p["baseline"][slots]
    if code in (LEVEL_1, LEVEL_2):
        high, high_high = pw.high[slots], pw.high_high[slots]
        if code == LEVEL_1:
            target = (high + high_high) / 2
            spike_noise = np.minimum(p["noise"][slots], 0.3 * (high_high - high))
        else:
            room = np.minimum(pw.range_max[slots] - high_high, 0.2 * span)
            target = high_high + room / 2
            spike_noise = np.minimum(p["noise"][slots], 0.4 * (target - high_high))
        # the ramp covers the farthest the normal value can be from the spike at ramp speed
        distance = target - baseline + p["drift"][slots] + p["noise"][slots] + spike_noise
        ramp_ms = np.ceil(distance / (RAMP_FRACTION_PER_MIN * span) * 60.0) * 1000.0
        duration_ms = np.ceil((2 * ramp_ms + SPIKE_HOLD_S * 1000) / step) * step
        p["target"][slots], p["spike_noise"][slots], p["ramp_ms"][slots] = target, spike_noise, ramp_ms
    else:
        lasting_s = (settings.stuck_after_s + STUCK_EXTRA_S if code == STUCK
                     else settings.interruption_after_s + SILENT_EXTRA_S)
        duration_ms = np.full(len(slots), np.ceil(lasting_s * 1000 / step) * step)
    duration_ms = duration_ms.astype("int64")

    earliest = sim.start_ms + round(settings.stage_margin_s * 1000)
    latest = sim.end_ms - duration_ms - step  # room to snap onto the point's next reading
    short = latest < earliest
    if short.any():
        # as the fleet does with kinds it cannot fit: stage none, say so, go on
        warnings.warn(f"point simulator: {kind} needs {duration_ms[short].max() / 60000:.0f} min after "
                      f"stage_margin_s ({settings.stage_margin_s:.0f} s) but the simulated span is "
                      f"{settings.hours} h: not staged", stacklevel=3)
        return None
    chosen = earliest + np.floor(rng.random(len(slots)) * (latest - earliest + 1)).astype("int64")
    phase = p["phase_ms"][slots]
    t0 = -((phase - chosen) // step) * step + phase  # the point's first reading at or after
    t1 = t0 + duration_ms
    p["stage"][slots], p["stage_t0"][slots], p["stage_t1"][slots] = code, t0, t1

    if code == STUCK:
        p["frozen"][slots] = _frozen_values(sim, slots, t0)
    note = _notes(kind, slots, sim, pw, settings)
    return pd.DataFrame({
        "subject_id": pw.point_ids.to_numpy()[slots], "kind": kind, "rule": POINT_STAGES[kind],
        "drop_reason": None, "count": 1,
        "start": pd.to_datetime(t0, unit="ms", utc=True), "end": pd.to_datetime(t1, unit="ms", utc=True),
        "lon": pw.lon[slots], "lat": pw.lat[slots], "note": note,
    }, columns=list(STAGED_COLUMNS))


def _frozen_values(sim: PointSim, slots: np.ndarray, t0: np.ndarray) -> np.ndarray:
    """The value each stuck point holds: its normal reading at t0, nudged (by half its noise,
    at most a few times) until it is clear of its last hour of readings, so the stuck run
    starts at t0 and not at some earlier reading that happened to be within tolerance."""
    p, step = sim._p, sim.interval_ms
    back = 60  # an hour of readings: no normal run lasts that long
    slot = np.repeat(slots, back)
    t_prev = np.repeat(t0, back) - step * np.tile(np.arange(1, back + 1), len(slots))
    k_prev = (t_prev - p["phase_ms"][slot]) // step
    previous = sim._normal(slot, t_prev, k_prev).reshape(len(slots), back)
    value = sim._normal(slots, t0, (t0 - p["phase_ms"][slots]) // step)
    clearance = _STUCK_CLEARANCE * p["span"][slots]
    nudges = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 2.0, -2.0])
    candidates = value[:, None] + nudges[None, :] * p["noise"][slots][:, None]
    clear = (np.abs(candidates[:, :, None] - previous[:, None, :]) > clearance[:, None, None]).all(axis=2)
    best = np.where(clear.any(axis=1), clear.argmax(axis=1), 0)
    return candidates[np.arange(len(slots)), best]


def _notes(kind: str, slots: np.ndarray, sim: PointSim, pw: PointWorld, settings: SimSettings) -> list[str]:
    """A line per staged point for the duty officer reading a test failure (a handful of rows)."""
    p = sim._p
    notes = []
    for s in slots.tolist():
        unit, what = pw.unit[s], f"{pw.kind[s]} point"
        if kind in ("point_level_1", "point_level_2"):
            notes.append(f"{what}: ramps from ~{p['baseline'][s]:.4g} to {p['target'][s]:.4g} {unit} "
                         f"(high {pw.high[s]:.4g}, high_high {pw.high_high[s]:.4g}), "
                         f"holds {SPIKE_HOLD_S / 60:.0f} min, "
                         f"ramps back at {RAMP_FRACTION_PER_MIN:.0%} of range a minute")
        elif kind == "point_stuck":
            notes.append(f"{what}: holds {p['frozen'][s]:.6g} {unit} for "
                         f"{(p['stage_t1'][s] - p['stage_t0'][s]) / 60000:.0f} min "
                         f"(point_stuck waits {settings.stuck_after_s / 60:.0f} min)")
        else:
            notes.append(f"{what}: no readings for {(p['stage_t1'][s] - p['stage_t0'][s]) / 60000:.0f} min "
                         f"after this one (point_interruption waits {settings.interruption_after_s / 60:.0f} min)")
    return notes
