"""Simulated responders: departments and enterprises sign for, dispose of and close the incidents
pushed to them, with realistic delays, a share late and a share silent (the demo's alert loop).

The city's figures (DOMAIN.md §1): 95 % of the warnings pushed to departments and 97 % of those
pushed to enterprises are handled. A recipient row here is silent (never signs: it is reminded
and escalated, and stays unhandled) with the profile's `silent_share`, late (signs only after
its deadline, so the incident escalates first) with `late_share`, and otherwise signs within
its deadline after a log-normal delay; once signed it disposes, then closes, after log-normal
delays of their own. So the handling rate (disposed / pushed) lands near 1 - silent_share per
recipient kind and escalations happen. The delays and shares are engineering guesses, not
measured.

Every decision is a pure function of (seed, incident, recipient): a responder restarted, or
stepped at other instants, decides the same. `Responders.step(now)` acts on everything due up
to `now` (the feed's clock in the demo) through the IncidentStore's API, at the instant each
action fell due (to the `resolution_s`), several incidents of one recipient per call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.special import ndtri

from data.incidents import IncidentError, IncidentStore, incident_recipients, incidents

log = logging.getLogger(__name__)

_MEASURES = ("现场核查，已责令整改", "电话联系驾驶员，已纠正", "派员到场处置", "通知企业安全员复核")
_NOTES = ("已处置完毕", "经核实已整改", "现场确认无异常", "已通报相关单位")


@dataclass(frozen=True)
class ResponderProfile:
    """How one kind of recipient behaves (shares of recipient rows; delays in seconds)."""

    silent_share: float  # never signs: reminded, escalated, left unhandled
    late_share: float  # signs between late_factor times its deadline
    sign_median_s: float  # on time: log-normal around this, at most 90 % of the deadline
    dispose_median_s: float  # after signing
    close_median_s: float  # after disposing
    false_alarm_share: float  # of disposals: outcome false_alarm (误报)
    sigma: float = 0.8  # spread of the log-normal delays
    late_factor: tuple[float, float] = (1.1, 2.5)

    def __post_init__(self) -> None:
        for name in ("silent_share", "late_share", "false_alarm_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"ResponderProfile.{name} must be a share in [0, 1], got {getattr(self, name)!r}")
        if self.silent_share + self.late_share > 1:
            raise ValueError("ResponderProfile: silent_share + late_share exceed 1")
        if min(self.sign_median_s, self.dispose_median_s, self.close_median_s) <= 0 or self.sigma < 0:
            raise ValueError("ResponderProfile: delays must be > 0 and sigma >= 0")
        if not 1 < self.late_factor[0] <= self.late_factor[1]:
            raise ValueError("ResponderProfile.late_factor: (low, high) with 1 < low <= high")


@dataclass(frozen=True)
class ResponderSettings:
    # the city's handling rates: 95 % departments, 97 % enterprises (DOMAIN.md §1)
    department: ResponderProfile = field(default_factory=lambda: ResponderProfile(
        silent_share=0.05, late_share=0.10, sign_median_s=600.0, dispose_median_s=3600.0, close_median_s=1800.0,
        false_alarm_share=0.05))
    enterprise: ResponderProfile = field(default_factory=lambda: ResponderProfile(
        silent_share=0.03, late_share=0.08, sign_median_s=300.0, dispose_median_s=2400.0, close_median_s=900.0,
        false_alarm_share=0.10))
    seed: int = 1
    resolution_s: float = 60.0  # actions due within one such slot of one recipient go in one call


@dataclass
class StepResult:
    signed: int = 0
    disposed: int = 0
    closed: int = 0
    refused: int = 0  # calls the store refused (someone else acted first): logged, skipped

    def __iadd__(self, other: "StepResult") -> "StepResult":
        self.signed += other.signed
        self.disposed += other.disposed
        self.closed += other.closed
        self.refused += other.refused
        return self


_PENDING = ("pushed", "signed", "disposed")


class Responders:
    """Acts for every department and enterprise on the incidents of an IncidentStore."""

    def __init__(self, incident_store: IncidentStore, settings: ResponderSettings = ResponderSettings()):
        self.incidents = incident_store
        self.settings = settings

    def pending(self, now: pd.Timestamp) -> pd.DataFrame:
        """Recipient rows not closed and pushed by `now`, with their incident's severity."""
        r = incident_recipients
        query = (sa.select(r.c.incident_id, r.c.recipient_id, r.c.recipient_kind, r.c.state, r.c.pushed_at,
                           r.c.sign_deadline, r.c.signed_at, r.c.disposed_at, incidents.c.severity)
                 .join(incidents, incidents.c.id == r.c.incident_id)
                 .where(r.c.state.in_(_PENDING), r.c.pushed_at <= now)
                 .order_by(r.c.pushed_at, r.c.incident_id, r.c.recipient_id))
        with self.incidents.engine.connect() as connection:
            rows = connection.execute(query).all()
        columns = ["incident_id", "recipient_id", "recipient_kind", "state", "pushed_at", "sign_deadline",
                   "signed_at", "disposed_at", "severity"]
        frame = pd.DataFrame([tuple(row) for row in rows], columns=columns)
        for c in ("pushed_at", "sign_deadline", "signed_at", "disposed_at"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
        return frame

    def decide(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Each row's fate, vectorised: silent, and the delays (s) to sign (after the push),
        to dispose (after signing) and to close (after disposing); outcome, measures, note."""
        keys = (rows["incident_id"].astype(str) + "\x1f" + rows["recipient_id"].astype(str)).to_numpy(dtype=object)
        u = [_uniform(keys, self.settings.seed, k) for k in range(6)]
        enterprise = (rows["recipient_kind"] == "enterprise").to_numpy()
        p = {name: np.where(enterprise, getattr(self.settings.enterprise, name), getattr(self.settings.department, name))
             for name in ("silent_share", "late_share", "sign_median_s", "dispose_median_s", "close_median_s",
                          "false_alarm_share", "sigma")}
        late_lo = np.where(enterprise, self.settings.enterprise.late_factor[0], self.settings.department.late_factor[0])
        late_hi = np.where(enterprise, self.settings.enterprise.late_factor[1], self.settings.department.late_factor[1])
        deadline_s = (rows["sign_deadline"] - rows["pushed_at"]).dt.total_seconds().to_numpy(dtype="float64")
        silent = u[0] < p["silent_share"]
        late = ~silent & (u[0] < p["silent_share"] + p["late_share"])
        on_time_s = np.minimum(_lognormal(p["sign_median_s"], p["sigma"], u[1]), 0.9 * deadline_s)
        late_s = deadline_s * (late_lo + (late_hi - late_lo) * u[1])
        false_alarm = u[4] < p["false_alarm_share"]
        pick = (u[5] * len(_MEASURES)).astype("int64") % len(_MEASURES)
        return pd.DataFrame({
            "silent": silent, "late": late,
            "sign_s": np.where(late, late_s, on_time_s),
            "dispose_s": _lognormal(p["dispose_median_s"], p["sigma"], u[2]),
            "close_s": _lognormal(p["close_median_s"], p["sigma"], u[3]),
            "outcome": np.where(false_alarm, "false_alarm", "resolved").astype(object),
            "measures": np.asarray(_MEASURES, dtype=object)[pick],
            "note": np.where(false_alarm, "经核实为误报", np.asarray(_NOTES, dtype=object)[pick]).astype(object),
        }, index=rows.index)

    def step(self, now) -> StepResult:
        """Sign, dispose and close whatever fell due by `now` (one pass: a row signed now is
        disposed at a later step)."""
        now = pd.Timestamp(now)
        if now.tzinfo is None:
            raise ValueError(f"now must be a timezone-aware time, got {now!r}")
        rows = self.pending(now)
        result = StepResult()
        if not len(rows):
            return result
        fate = self.decide(rows)
        pushed, signed = (rows["state"] == "pushed").to_numpy(), (rows["state"] == "signed").to_numpy()
        since = rows["pushed_at"].where(pushed, rows["signed_at"].where(signed, rows["disposed_at"]))
        delay_s = np.select([pushed, signed], [fate["sign_s"], fate["dispose_s"]], fate["close_s"])
        due = since + pd.to_timedelta(np.round(delay_s), unit="s")  # whole seconds
        act = (due <= now).to_numpy() & ~(pushed & fate["silent"].to_numpy())
        slot = pd.Timedelta(seconds=self.settings.resolution_s)
        work = rows[act].assign(at=due[act].dt.ceil(slot).clip(upper=now), **{c: fate.loc[act, c]
                                for c in ("outcome", "measures", "note")})
        work.loc[work["state"] != "signed", "outcome"] = ""  # only a disposal's call is split by outcome
        for (state, recipient, at, outcome), group in work.groupby(["state", "recipient_id", "at", "outcome"],
                                                                  sort=True):
            ids = group["incident_id"].tolist()
            actor = f"sim duty officer ({recipient})"
            try:
                if state == "pushed":
                    self.incidents.sign(ids, recipient, actor, at=at)
                    result.signed += len(ids)
                elif state == "signed":
                    first = group.iloc[0]
                    self.incidents.dispose(ids, recipient, actor, first["measures"], first["note"], outcome, at=at)
                    result.disposed += len(ids)
                else:
                    self.incidents.close(ids, recipient, actor, at=at)
                    result.closed += len(ids)
            except IncidentError as exc:  # another actor got there first: nothing was changed
                log.info("simulated %s of %d incident(s) refused: %s", state, len(ids), exc)
                result.refused += 1
        return result


def _uniform(keys: np.ndarray, seed: int, k: int) -> np.ndarray:
    """A uniform [0, 1) per key, a pure function of (seed, k, key)."""
    hashed = pd.util.hash_array(keys, hash_key=f"hazmap{int(seed):06d}r{k:03d}"[:16], categorize=False)
    return (hashed >> np.uint64(11)).astype("float64") / float(1 << 53)


def _lognormal(median_s, sigma, u: np.ndarray) -> np.ndarray:
    return np.asarray(median_s, dtype="float64") * np.exp(np.asarray(sigma, dtype="float64")
                                                         * ndtri(np.clip(u, 1e-9, 1 - 1e-9)))


class ResponderRunner:
    """The demo's responders in a thread: every `every_s` wall seconds, `step(clock())` with the
    simulation's clock (epoch ms). Owns nothing but the thread: the caller closes the store."""

    def __init__(self, responders: Responders, clock: Callable[[], int | None], every_s: float = 2.0):
        self.responders = responders
        self.clock = clock
        self.every_s = every_s
        self.totals = StepResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "ResponderRunner":
        self._thread = threading.Thread(target=self._run, name="hazmap-responders", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            now_ms = self.clock()
            if now_ms is None:
                continue
            try:
                self.totals += self.responders.step(pd.Timestamp(int(now_ms), unit="ms", tz="UTC"))
            except Exception:  # a failed step (store busy, a restart) is retried at the next tick
                log.exception("the simulated responders' step failed")

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
