"""The incident store: rule events -> incidents, recipients, transitions, inbox, outbox, exactly once.

`IncidentStore(store, world, settings)` works on the Store's SQLAlchemy engine (both backends).
Every call is ONE transaction that begins by bumping the cursor row's `version`: that write
serialises incident writers (SQLite takes its write lock there, PostgreSQL the row lock) and
stamps the rows the call changes, so a screen can ask for what changed since a version.

The shape (DESIGN.md §3 step 3): events are applied in `seq` order (stored events) or file
order; each event's key (rule, episode_id, phase, ordinal) goes into `incident_applied`, whose
primary key (led by the episode's start: a batch's keys are appended, not scattered) makes a
second application impossible; the incidents, their recipients, the
append-only transition log and the outbox rows (deliveries for issue 13's sender) are written in
the same transaction, and `apply_stored_events` records the last applied `seq` there too. A
crash loses nothing acknowledged and doubles nothing. The push that routes an opened incident to
a recipient is recorded by the recipient row itself (pushed_at, tier 0), not logged as a
transition (one row fewer per recipient); `show()` lists it in the history. The routing goes
into the outbox as ONE `routed` row per opened incident, which the sender fans out to the
recipient rows (`fan_out_routing`, the deliveries named by `routing_push_ids`). Pushes up the
escalation chain are logged, with an outbox row each. The inbox is a view of the recipients
(pending rows of one recipient), not a copy.

Lifecycle decisions are pure: a batch is planned set-based (spatial/incidents/batch.py, the
event-by-event reference being spatial/incidents/lifecycle.py); routing is
spatial/incidents/routing.py; KPIs spatial/incidents/kpis.py. Each table is written once per
batch (`_insert`, data/bulk.py): one executemany on SQLite, a COPY on PostgreSQL (upserts COPY into a per-
connection temporary table emptied at commit, then one INSERT … SELECT … ON CONFLICT), with
times in the backend's wire form (µs since the epoch on SQLite, ISO text for COPY) and JSON built
as text in bulk, so a year of incidents is not converted value by value.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data import schema
from data.bulk import bulk_insert, wire_times
from data.schema import JsonDocument, UtcDateTime
from data.store import Store
from spatial.incidents import kpis as kpi_logic
from spatial.incidents.levels import level_keys, parse_level
from spatial.incidents.lifecycle import (
    EVENT_COLUMNS,
    OUTBOX_ACTIONS,
    OUTCOMES,
    STATES,
    TRANSITION_ACTIONS,
    IncidentError,
    IncidentSettings,
    check_events,
    check_transition,
    escalation_due,
)
from spatial.incidents.batch import json_text, plan_batch
from spatial.incidents.routing import PreparedRouting, escalation_target, prepare_routing, recipients_for
from spatial.model import Event, World

__all__ = ["ApplyResult", "EscalationResult", "IncidentError", "IncidentSettings", "IncidentStore", "OUTCOMES"]

CURSOR = "events"  # the cursor row of the processor that follows the events table
CHUNK_EVENTS = 5_000  # events applied per transaction by apply_stored_events and a file's import
# the pushed recipient rows not yet counted as overdue: literal text (migration 0008's partial index
# WHERE), so that SQLite, which matches a partial index only on the same terms, uses the index
UNCOUNTED_OVERDUE = "state = 'pushed' AND overdue_counted_severity IS NULL"
UNCOUNTED_INDEX = "ix_incident_recipients_uncounted_deadline"
# the cursor row whose last_seq holds the latest sign deadline (µs since the epoch) of any row the
# escalation pass counted as overdue: a KPI table at a `now` past it has no counted row to take back
OVERDUE_CURSOR = "overdue_counted_deadline"

# the incidents the rule still holds open: literal text (migration 0009's partial index WHERE), as above
ACTIVE = "state = 'active'"
ACTIVE_INDEX = "ix_incidents_active"

# --- tables (declared on the store's metadata; migration 0005 is their frozen history) -----------
_m = schema.metadata


def _time(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, UtcDateTime(), nullable=nullable)


incidents = sa.Table(
    "incidents", _m,
    sa.Column("id", sa.Text(), nullable=False),
    sa.Column("rule", sa.Text(), nullable=False),
    sa.Column("subject_id", sa.Text(), nullable=False),
    sa.Column("subject_kind", sa.Text(), nullable=False),
    sa.Column("first_episode_id", sa.Text(), nullable=False),
    sa.Column("last_episode_id", sa.Text(), nullable=False),
    sa.Column("episodes", sa.BigInteger(), nullable=False),
    sa.Column("state", sa.Text(), nullable=False),  # the rule side: active | ended
    sa.Column("status", sa.Text(), nullable=False),  # handling: its least advanced recipient's state
    sa.Column("severity", sa.BigInteger(), nullable=False),  # as the latest event says
    sa.Column("peak_severity", sa.BigInteger(), nullable=False),
    sa.Column("opened_severity", sa.BigInteger()),  # the level it opened at: the KPI tables' level. Migration 0012.
    _time("first_time", False), _time("last_time", False), _time("end_time"), _time("closed_at"),
    sa.Column("lon", sa.Double()), sa.Column("lat", sa.Double()),
    sa.Column("district_adcode", sa.Text()),
    sa.Column("evidence", JsonDocument(), nullable=False),  # the latest event's
    sa.Column("source", sa.Text(), nullable=False),  # monitor | file | …
    sa.Column("quick_close", sa.Boolean(), nullable=False),  # the rule closed it within minutes, unsigned
    sa.Column("false_alarm", sa.Boolean(), nullable=False),  # a recipient disposed it as 误报
    sa.Column("escalations", sa.BigInteger(), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    sa.Index("ix_incidents_subject_id_first_time", "subject_id", "first_time"),  # a subject's newest (drill-down)
    sa.Index("ix_incidents_status", "status"),
    sa.Index("ix_incidents_first_time", "first_time"),
    sa.Index("ix_incidents_version", "version"),
    # the apply's candidates (migration 0009): a subject's active incident, and those ended within
    # the reopen window, found without reading the subject's whole record
    sa.Index(ACTIVE_INDEX, "state", sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE)),
    sa.Index("ix_incidents_end_time", "end_time"),
)

incident_recipients = sa.Table(
    "incident_recipients", _m,
    sa.Column("incident_id", sa.Text(), nullable=False),
    sa.Column("recipient_id", sa.Text(), nullable=False),  # DEPT-… | ENT-…
    sa.Column("recipient_kind", sa.Text(), nullable=False),  # department | enterprise
    sa.Column("role", sa.Text()),
    sa.Column("district_adcode", sa.Text()),
    sa.Column("state", sa.Text(), nullable=False),  # pushed | signed | disposed | closed
    sa.Column("tier", sa.BigInteger(), nullable=False),  # 0 routed, 1.. escalated to
    sa.Column("escalated_from", sa.Text()),
    _time("pushed_at", False), _time("sign_deadline", False),
    _time("signed_at"), sa.Column("signed_by", sa.Text()),
    _time("disposed_at"), sa.Column("disposed_by", sa.Text()), sa.Column("measures", sa.Text()),
    sa.Column("note", sa.Text()), sa.Column("outcome", sa.Text()),
    _time("closed_at"), sa.Column("closed_by", sa.Text()),
    _time("escalated_at"),  # when it was escalated past (once)
    sa.Column("reminders", sa.BigInteger(), nullable=False), _time("last_reminded_at"),
    sa.Column("supervised_by", sa.Text()), _time("supervised_at"), _time("supervision_deadline"),
    sa.Column("supervision_note", sa.Text()),
    sa.Column("version", sa.BigInteger(), nullable=False),
    # NULL until the escalation pass counts it in the rollup as unsigned past its deadline; then the
    # severity it was counted under (signing takes the count back from that level). Migration 0008.
    sa.Column("overdue_counted_severity", sa.BigInteger()),
    # the level an upgrade of the incident pushed this recipient at; NULL: routed when it opened (tier
    # 0) or escalated to (tier 1..). Migration 0010.
    sa.Column("upgraded_to", sa.BigInteger()),
    # the level the row was pushed at (its deadline's): the KPI tables' level for its counts. Migration 0012.
    sa.Column("pushed_severity", sa.BigInteger()),
    sa.PrimaryKeyConstraint("incident_id", "recipient_id", name="pk_incident_recipients"),
    sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_incident_recipients_incidents",
                            ondelete="CASCADE"),
    sa.Index("ix_incident_recipients_recipient_id_state", "recipient_id", "state"),
    sa.Index("ix_incident_recipients_state_sign_deadline", "state", "sign_deadline"),
    # the pushed rows the pass has not counted yet (data/incident_kpis.py counts those past `now` live)
    sa.Index(UNCOUNTED_INDEX, "sign_deadline",
             sqlite_where=sa.text(UNCOUNTED_OVERDUE), postgresql_where=sa.text(UNCOUNTED_OVERDUE)),
)

incident_transitions = sa.Table(  # append-only: nothing updates or deletes a row
    "incident_transitions", _m,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("id", sa.Text(), nullable=False),
    sa.Column("incident_id", sa.Text(), nullable=False),
    sa.Column("recipient_id", sa.Text()),  # NULL: the incident's own (opened, updated, rule_closed …)
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("from_state", sa.Text()), sa.Column("to_state", sa.Text()),
    sa.Column("actor", sa.Text(), nullable=False),  # a person's name, rule:<rule>, or system
    _time("at", False),  # when it happened (the feed's clock in the demo)
    sa.Column("note", sa.Text()),
    sa.Column("details", JsonDocument()),
    _time("recorded_at", False),
    sa.PrimaryKeyConstraint("seq", name="pk_incident_transitions"),
    sa.UniqueConstraint("id", name="uq_incident_transitions_id"),
    sa.Index("ix_incident_transitions_incident_id", "incident_id"),
    sqlite_autoincrement=True,
)

incident_outbox = sa.Table(  # deliveries for the sender (issue 13): one per recipient-facing transition,
    # an opened incident's routing one `routed` row for all its recipients (fan_out_routing)
    "incident_outbox", _m,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("delivery_id", sa.Text(), nullable=False),
    sa.Column("transition_id", sa.Text(), nullable=False),
    sa.Column("incident_id", sa.Text(), nullable=False),
    # NULL on a `routed` row: an opened incident's routing, fanned out by the sender (migration 0009)
    sa.Column("recipient_id", sa.Text()),
    sa.Column("recipient_kind", sa.Text()),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("payload", JsonDocument(), nullable=False),
    _time("created_at", False),
    sa.Column("attempts", sa.BigInteger(), nullable=False),
    _time("sent_at"),
    sa.Column("last_error", sa.Text()),
    sa.PrimaryKeyConstraint("seq", name="pk_incident_outbox"),
    sa.UniqueConstraint("delivery_id", name="uq_incident_outbox_delivery_id"),
    sa.Index("ix_incident_outbox_sent_at", "sent_at"),
    sqlite_autoincrement=True,
)

incident_applied = sa.Table(  # one row per applied event; the primary key is the exactly-once key
    "incident_applied", _m,
    sa.Column("rule", sa.Text(), nullable=False),
    # the episode's start (every event of an episode carries it): leads the key so that a batch's
    # keys land on the key's newest pages, not on a random page each (migration 0011)
    _time("episode_start", False),
    sa.Column("episode_id", sa.Text(), nullable=False),
    sa.Column("phase", sa.Text(), nullable=False),
    sa.Column("ordinal", sa.BigInteger(), nullable=False),
    sa.Column("digest", sa.Text()),  # updates: what the update said (a replayed update is known by it)
    sa.Column("incident_id", sa.Text(), nullable=False),
    sa.Column("seq", sa.BigInteger()),  # the events table's seq (NULL: from a file)
    sa.Column("source", sa.Text(), nullable=False),
    _time("applied_at", False),
    # the order events were applied in: the batch's version (as incidents.version) and the event's
    # place in the batch (the key orders the table by episode, not by arrival). Migration 0009.
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.Column("position", sa.BigInteger(), nullable=False),
    # led by the episode's start and id, which the apply reads by; on SQLite the key is the table
    sa.PrimaryKeyConstraint("episode_start", "episode_id", "rule", "phase", "ordinal", name="pk_incident_applied"),
    sa.Index("ix_incident_applied_incident_id", "incident_id"),
    sqlite_with_rowid=False,
)

incident_cursor = sa.Table(  # the processor's last applied seq, and the store's change version
    "incident_cursor", _m,
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("last_seq", sa.BigInteger(), nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("name", name="pk_incident_cursor"),
)

incident_kpis = sa.Table(  # the KPI rollup (spatial/incidents/kpis.py), kept in each change's transaction
    "incident_kpis", _m,
    sa.Column("grouping", sa.Text(), nullable=False),  # department | enterprise | district | rule | level | day
    sa.Column("key", sa.Text(), nullable=False),
    sa.Column("day", sa.Text(), nullable=False),  # the incident's first day, Asia/Shanghai
    sa.Column("metric", sa.Text(), nullable=False),
    sa.Column("bin", sa.BigInteger(), nullable=False),  # a duration bin, -1 for a plain counter
    sa.Column("n", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("grouping", "key", "day", "metric", "bin", name="pk_incident_kpis"),
)

incident_kpi_totals = sa.Table(  # incident_kpis summed over days, kept with it: a KPI table over all days reads this
    "incident_kpi_totals", _m,
    sa.Column("grouping", sa.Text(), nullable=False),
    sa.Column("key", sa.Text(), nullable=False),
    sa.Column("metric", sa.Text(), nullable=False),
    sa.Column("bin", sa.BigInteger(), nullable=False),
    sa.Column("n", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("grouping", "key", "metric", "bin", name="pk_incident_kpi_totals"),
)

# the escalation pass's scratch table (a per-connection TEMP table, not in the schema: escalate_overdue)
_overdue_scratch = sa.Table(
    "_overdue_rows", sa.MetaData(),
    sa.Column("incident_id", sa.Text()), sa.Column("recipient_id", sa.Text()), sa.Column("escalate", sa.Boolean()),
    sa.Column("remind", sa.Boolean()), sa.Column("counted_severity", sa.BigInteger()),
)

TABLES = (incidents, incident_recipients, incident_transitions, incident_outbox, incident_applied, incident_cursor,
          incident_kpis, incident_kpi_totals)


@dataclass(frozen=True)
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    opened: int = 0
    updated: int = 0
    closed: int = 0
    reopened: int = 0
    last_seq: int | None = None  # apply_stored_events: the cursor after the call

    def __add__(self, other: "ApplyResult") -> "ApplyResult":
        return ApplyResult(*(getattr(self, f) + getattr(other, f) for f in
                             ("applied", "duplicates", "opened", "updated", "closed", "reopened")),
                           last_seq=other.last_seq if other.last_seq is not None else self.last_seq)


@dataclass(frozen=True)
class EscalationResult:
    escalated: int = 0
    reminded: int = 0


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("us")


def _at(value, what: str = "at") -> pd.Timestamp:
    if value is None:
        return _now()
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise IncidentError(f"{what}: not a time: {value!r}") from exc
    if ts is pd.NaT or ts.tzinfo is None:
        raise IncidentError(f"{what}: {value!r} is not a timezone-aware time")
    return ts.tz_convert("UTC")


def read_event_file(path) -> tuple[pd.DataFrame, list[str]]:
    """An events file as `hazmap events --json` (.jsonl) or `hazmap rules run` (.csv, .parquet,
    .jsonl) writes it -> (frame, a label per row naming its file line), unchecked beyond parsing:
    apply_events(frame, labels=…) checks the values and names the line of the first bad one."""
    from pathlib import Path

    path = Path(path)
    name, suffix = path.name, path.suffix.lower()
    if suffix not in (".jsonl", ".csv", ".parquet"):
        raise IncidentError(f"{name}: an events file is .jsonl, .csv or .parquet")
    if not path.is_file():
        raise IncidentError(f"{name}: no such file")
    if suffix == ".jsonl":
        records, labels = [], []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise IncidentError(f"{name}, line {number}: not JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise IncidentError(f"{name}, line {number}: expected a JSON object")
                records.append(record)
                labels.append(f"{name}, line {number}")
        frame = pd.DataFrame.from_records(records)
    elif suffix == ".csv":
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as exc:
            raise IncidentError(f"{name}: not a CSV file ({exc})") from None
        labels = [f"{name}, line {i + 2}" for i in range(len(frame))]  # line 1 is the header
    else:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            raise IncidentError(f"{name}: not a Parquet file ({exc})") from None
        labels = [f"{name}, row {i + 1}" for i in range(len(frame))]
    missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
    if missing and len(frame):
        raise IncidentError(f"{name}: missing column(s) {', '.join(missing)}")
    if not len(frame):
        return pd.DataFrame(columns=EVENT_COLUMNS), []
    # a file's seq (from `hazmap events`) is not this store's order; its event_time is kept (an update's own time)
    frame = frame[EVENT_COLUMNS + [c for c in ("event_time",) if c in frame.columns]].copy()
    if suffix != ".jsonl":
        texts = frame["evidence"].tolist()
        parsed = []
        for label, text in zip(labels, texts):
            if isinstance(text, dict):
                parsed.append(text)
                continue
            try:
                parsed.append(json.loads(text) if text not in (None, "") else {})
            except (TypeError, json.JSONDecodeError):
                raise IncidentError(f"{label}: evidence is not JSON") from None
        frame["evidence"] = parsed
        frame["end"] = frame["end"].replace("", None)
        if "event_time" in frame.columns:
            frame["event_time"] = frame["event_time"].replace("", None)
    return frame, labels


def _iso(times: pd.Series) -> list[str]:
    """ISO-8601 UTC strings, in bulk."""
    return np.datetime_as_string(times.dt.tz_convert(None).to_numpy(dtype="datetime64[ms]"), unit="ms").tolist()


def _isoformat(times: pd.Series) -> np.ndarray:
    """pd.Timestamp.isoformat() of aware UTC µs times, in bulk ("…T01:00:00+00:00", µs when any)."""
    text = pd.Series(np.datetime_as_string(times.dt.tz_convert("UTC").dt.as_unit("us").array.asi8.view("M8[us]"),
                                           unit="us"), dtype=object)
    return (text.str.replace(r"\.000000$", "", regex=True) + "+00:00").to_numpy(dtype=object)


def _us_of(times) -> np.ndarray:
    """Times (aware Series, naive UTC datetime64, Timestamps …) -> int64 µs since the epoch, in bulk."""
    if isinstance(times, (pd.Series, pd.Index)) and isinstance(times.dtype, pd.DatetimeTZDtype):
        return np.asarray(times.dt.as_unit("us").array.asi8 if isinstance(times, pd.Series)
                          else times.as_unit("us").asi8, dtype="int64")
    values = times if isinstance(times, np.ndarray) else None
    if values is not None and values.dtype.kind == "M":
        return values.astype("datetime64[us]").view("int64")
    return pd.to_datetime(pd.Series(list(times) if not isinstance(times, (pd.Series, np.ndarray)) else times,
                                    dtype=object), utc=True).dt.as_unit("us").array.asi8.copy()


def _objects(values, n: int | None = None) -> pd.Series:
    """A column of Python objects as is (pandas 3 would infer its arrow-backed str dtype and convert
    every value); a scalar stands for `n` of them."""
    if n is not None:
        return pd.Series(np.full(n, values, dtype=object), dtype=object)
    return pd.Series(np.asarray(values, dtype=object), dtype=object)


def _isoformat_us(us: np.ndarray) -> np.ndarray:
    """pd.Timestamp.isoformat() of UTC µs times, in bulk ("…T01:00:00+00:00", µs when any)."""
    text = np.datetime_as_string(np.asarray(us, dtype="int64").view("M8[us]"), unit="us").astype(object)
    whole = np.asarray(us, dtype="int64") % 1_000_000 == 0
    text[whole] = np.datetime_as_string(np.asarray(us, dtype="int64")[whole].view("M8[us]"), unit="s").astype(object)
    return text + "+00:00"


def _iso_ms(us: np.ndarray) -> np.ndarray:
    """ISO-8601 UTC text to the millisecond (as _iso), in bulk."""
    return np.datetime_as_string((np.asarray(us, dtype="int64") // 1000).view("M8[ms]"), unit="ms").astype(object)


ROUTED = OUTBOX_ACTIONS[0]  # "routed": the outbox action of an opened incident's routing: one row, fanned out by the sender


def fan_out_routing(connection: sa.Connection, rows: list[dict]) -> list[dict]:
    """Outbox rows as the sender reads them (dicts), each `routed` row — an opened incident's
    routing, one row for all its recipients — replaced by a `pushed` row per recipient the routing
    made (tier 0): its delivery id the routed row's and the recipient's, its transition the routing
    push show() lists, its payload what the push says to that recipient (time, level, deadline)."""
    routed = [row for row in rows if row["action"] == ROUTED]
    if not routed:
        return rows
    r = incident_recipients
    found: dict[str, list] = {}
    for rec in connection.execute(
            sa.select(r.c.incident_id, r.c.recipient_id, r.c.recipient_kind, r.c.pushed_at, r.c.sign_deadline)
            .where(r.c.tier == 0, r.c.upgraded_to.is_(None),  # an upgrade's pushes have outbox rows of their own
                   r.c.incident_id.in_(sorted({row["incident_id"] for row in routed})))
            .order_by(r.c.incident_id, r.c.recipient_id)):
        found.setdefault(rec.incident_id, []).append(rec)
    out = []
    for row in rows:
        if row["action"] != ROUTED:
            out.append(row)
            continue
        mine = found.get(row["incident_id"], [])
        at = _isoformat_us(_us_of([rec.pushed_at for rec in mine]))
        deadline = _iso_ms(_us_of([rec.sign_deadline for rec in mine]))
        for rec, push_id, at_text, deadline_text in zip(
                mine, routing_push_ids([rec.incident_id for rec in mine], [rec.recipient_id for rec in mine]),
                at, deadline):
            payload = {"incident_id": rec.incident_id, "action": "pushed", "to_state": "pushed", "at": at_text,
                       "note": None, "level": row["payload"]["level"], "sign_deadline": deadline_text}
            out.append({**row, "delivery_id": f"{row['delivery_id']}:{rec.recipient_id}", "transition_id": push_id,
                        "recipient_id": rec.recipient_id, "recipient_kind": rec.recipient_kind, "action": "pushed",
                        "payload": payload})
    return out


def routing_push_ids(incident_ids, recipient_ids) -> np.ndarray:
    """The transition id of the push that routed an opened incident to a recipient: named by the
    pair (one push each), as the outbox row refers to it and show() lists it."""
    return "TR-push-" + np.asarray(incident_ids, dtype=object) + "-" + np.asarray(recipient_ids, dtype=object)


def _with_routing_pushes(history: pd.DataFrame, recipients: pd.DataFrame) -> pd.DataFrame:
    """The history with the routing pushes read from the recipient rows: a recipient reached when
    the incident opened is recorded by its row (pushed_at), not by a logged transition; its push
    is listed after the incident's `opened` (as the same transaction wrote them). Recipients whose
    push is logged (escalations, stores written before) are left as logged."""
    logged = set(history.loc[history["action"] == "pushed", "recipient_id"])
    by_upgrade = recipients["upgraded_to"].notna().to_numpy() if "upgraded_to" in recipients.columns \
        else np.zeros(len(recipients), bool)
    routed = recipients[(recipients["tier"].to_numpy(dtype="int64") == 0) & ~by_upgrade
                        & ~recipients["recipient_id"].isin(logged).to_numpy()]
    if not len(routed):
        return history
    k = len(routed)
    opened = np.flatnonzero((history["action"] == "opened").to_numpy())
    at = int(opened[0]) + 1 if len(opened) else 0
    recorded = history["recorded_at"].iloc[at - 1] if len(opened) else routed["pushed_at"].iloc[0]
    pushes = pd.DataFrame({
        "seq": pd.array([pd.NA] * k, dtype="Int64"),
        "id": _objects(routing_push_ids(routed["incident_id"].to_numpy(dtype=object),
                                        routed["recipient_id"].to_numpy(dtype=object))),
        "incident_id": _objects(routed["incident_id"].to_numpy(dtype=object)),
        "recipient_id": _objects(routed["recipient_id"].to_numpy(dtype=object)),
        "action": _objects("pushed", k), "from_state": _objects(None, k), "to_state": _objects("pushed", k),
        "actor": _objects("system", k), "at": routed["pushed_at"].reset_index(drop=True), "note": _objects(None, k),
        "details": _objects(None, k), "recorded_at": pd.Series([recorded] * k, dtype=history["recorded_at"].dtype),
    })
    out = history.astype({"seq": "Int64"})
    return pd.concat([out.iloc[:at], pushes[out.columns], out.iloc[at:]], ignore_index=True)


def _log_frame(rows, documents: tuple[str, ...]) -> pd.DataFrame:
    """Transitions or outbox rows as a frame, their JSON documents as text (dicts encoded here)."""
    if rows is None:
        return pd.DataFrame()
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    for name in documents:
        if name in frame.columns and len(frame):
            values = frame[name].tolist()
            if not all(v is None or isinstance(v, str) for v in values):
                values = [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
                          for v in values]
            frame[name] = pd.Series(values, dtype=object, index=frame.index)
    return frame


def _check_actions(frame: pd.DataFrame, known: tuple[str, ...], what: str) -> None:
    """Only the actions lifecycle names (TRANSITION_ACTIONS, OUTBOX_ACTIONS) are written: the screen
    labels each of them (layers/labels.py), so a new one is added there, not found raw on the wall."""
    if not len(frame) or "action" not in frame.columns:
        return
    unknown = sorted(set(pd.unique(frame["action"].to_numpy(dtype=object))) - set(known))
    if unknown:
        raise RuntimeError(f"incident {what} action(s) {unknown} not in spatial/incidents/lifecycle.py's list")


def _events_frame(events, labels=None) -> pd.DataFrame:
    """A list of Events or a frame (EVENT_COLUMNS, `seq` optional) as one checked frame."""
    if isinstance(events, pd.DataFrame):
        frame = events
    else:
        from data.tracks import events_frame  # plain JSON evidence (numpy values unwrapped), as stored

        events = list(events)
        bad = [i for i, e in enumerate(events) if not isinstance(e, Event)]
        if bad:
            raise IncidentError(f"event {bad[0]}: expected a spatial.model.Event, got {type(events[bad[0]]).__name__}")
        frame = events_frame(events)
    return check_events(frame, labels)


class IncidentStore:
    """Incidents on a Store's engine; see the module docstring. Every call is one transaction."""

    def __init__(self, store: Store, world: World | None = None, settings: IncidentSettings = IncidentSettings(),
                 audit=None):
        self.store = store
        self.engine = store.engine
        self.dialect = store.dialect
        self.world = world
        self.settings = settings
        # audit(connection, action, rows): called inside a person's action's transaction (data/people.py)
        self.audit = audit

    # --- the transaction and the wire ------------------------------------------------------

    def _begin(self, connection: sa.Connection) -> tuple[int, int]:
        """Take the incident write lock and the next version: (last_seq, version)."""
        row = connection.execute(
            sa.update(incident_cursor).where(incident_cursor.c.name == CURSOR)
            .values(version=incident_cursor.c.version + 1)
            .returning(incident_cursor.c.last_seq, incident_cursor.c.version)
        ).first()
        if row is None:
            raise IncidentError("the incident tables have no cursor row: run `hazmap db upgrade`")
        self._tx = (uuid.uuid4().hex[:12], [0])
        return int(row[0]), int(row[1])

    def _wire_times(self, values, n: int | None = None) -> list:
        return wire_times(self.dialect, values, n)

    def _insert(self, connection: sa.Connection, table: sa.Table, columns: dict[str, Iterable],
                conflict: tuple[str, ...] | None = None, update: Iterable[str] = (),
                accumulate: Iterable[str] = (), json_ready: Iterable[str] = ()) -> None:
        bulk_insert(connection, table, columns, conflict=conflict, update=update, accumulate=accumulate,
                    json_ready=json_ready)

    def _read(self, connection: sa.Connection, table: sa.Table, *conditions, columns=None,
              order_by=None, limit=None) -> pd.DataFrame:
        """Rows as a frame: times decoded in bulk to aware UTC, JSON parsed."""
        cols = [table.c[c] for c in columns] if columns else list(table.columns)
        postgres = self.dialect == "postgresql"
        selected = []
        for c in cols:
            if isinstance(c.type, UtcDateTime):
                selected.append(sa.type_coerce(c, sa.DateTime(timezone=True) if postgres else sa.BigInteger()))
            elif isinstance(c.type, JsonDocument):
                selected.append(sa.cast(c, sa.Text()) if postgres else sa.type_coerce(c, sa.Text()))
            else:
                selected.append(c)
        statement = sa.select(*selected).where(*conditions)
        if order_by is not None:
            statement = statement.order_by(*order_by)
        if limit is not None:
            statement = statement.limit(int(limit))
        rows = connection.execute(statement).all()
        raw = list(zip(*rows)) if rows else [() for _ in cols]
        data = {}
        for c, values in zip(cols, raw):
            if isinstance(c.type, UtcDateTime):
                if self.dialect == "sqlite":
                    data[c.name] = pd.Series(pd.to_datetime(pd.array(list(values), dtype="Int64"), unit="us", utc=True))
                else:
                    data[c.name] = pd.Series(pd.to_datetime(pd.Series(list(values), dtype=object), utc=True))
                data[c.name] = data[c.name].astype("datetime64[us, UTC]")
            elif isinstance(c.type, JsonDocument):
                data[c.name] = pd.Series([None if v is None else json.loads(v) for v in values], dtype=object)
            elif isinstance(c.type, sa.Boolean):
                data[c.name] = pd.Series([bool(v) for v in values], dtype="bool")
            else:
                data[c.name] = pd.Series(list(values), dtype=object)
        frame = pd.DataFrame(data, columns=[c.name for c in cols])
        for c in cols:
            if isinstance(c.type, sa.BigInteger) and not c.nullable:
                frame[c.name] = frame[c.name].astype("int64")
            elif isinstance(c.type, sa.Double):
                frame[c.name] = frame[c.name].astype("float64")
        return frame

    # --- events -> incidents ------------------------------------------------------------------

    def apply_events(self, events: list[Event] | pd.DataFrame, *, source: str = "file",
                     labels: list[str] | None = None, chunk: int | None = None) -> ApplyResult:
        """Apply events in the given order, in ONE transaction, or with `chunk` in transactions of
        that many (a file's import: the incident write lock is then held a batch at a time, as the
        monitor holds it, not for the whole file, and the batch's rows are not all in memory at
        once); those applied before are counted as duplicates and change nothing. Every event is
        checked first: a malformed one refuses them all (named by `labels[row]` when given, e.g. a
        file's line). A failure in a later chunk leaves the chunks before it applied and says so;
        applying the same events again applies the rest."""
        frame = _events_frame(events, labels)
        step = max(int(chunk or len(frame)), 1)
        total = ApplyResult()
        for first in range(0, max(len(frame), 1), step):
            part = frame.iloc[first:first + step].reset_index(drop=True) if chunk else frame
            try:
                with self.engine.begin() as connection:
                    _, version = self._begin(connection)
                    total = total + self._apply(connection, part, source, version)
            except Exception as failure:
                if not first:
                    raise
                last = min(first + step, len(frame))
                where = f"{labels[first]} to {labels[last - 1]}" if labels is not None \
                    else f"events {first} to {last - 1}"
                # one line: the driver's own message, not SQLAlchemy's statement and link
                reason = (str(getattr(failure, "orig", None) or failure).strip().splitlines() or [""])[0]
                raise IncidentError(f"{where} were not applied ({type(failure).__name__}: {reason}); the "
                                    f"{first:,} event(s) before them are, and applying the same events again "
                                    "applies the rest (the applied ones are counted, not doubled)") from failure
        return total

    def apply_stored_events(self, limit: int | None = None, *, chunk: int = CHUNK_EVENTS) -> ApplyResult:
        """Apply the events table after the last applied seq, in seq order, one transaction per
        chunk (each also moves the cursor); `limit` caps the events taken in this call."""
        total = ApplyResult(last_seq=self.last_applied_seq())
        remaining = limit
        while remaining is None or remaining > 0:
            take = chunk if remaining is None else min(chunk, remaining)
            with self.engine.begin() as connection:
                last_seq, version = self._begin(connection)
                frame = self._stored_events(connection, last_seq, take)
                if not len(frame):
                    break
                result = self._apply(connection, check_events(frame), "monitor", version)
                new_last = int(frame["seq"].iloc[-1])
                connection.execute(sa.update(incident_cursor).where(incident_cursor.c.name == CURSOR)
                                   .values(last_seq=new_last))
            total = total + ApplyResult(**{**result.__dict__, "last_seq": new_last})
            if remaining is not None:
                remaining -= len(frame)
            if len(frame) < take:
                break
        return total

    def last_applied_seq(self) -> int:
        with self.engine.connect() as connection:
            value = connection.execute(sa.select(incident_cursor.c.last_seq)
                                       .where(incident_cursor.c.name == CURSOR)).scalar()
        return int(value or 0)

    def version(self) -> int:
        with self.engine.connect() as connection:
            value = connection.execute(sa.select(incident_cursor.c.version)
                                       .where(incident_cursor.c.name == CURSOR)).scalar()
        return int(value or 0)

    def _stored_events(self, connection: sa.Connection, after_seq: int, limit: int) -> pd.DataFrame:
        t = schema.events
        frame = self._read(connection, t, t.c.seq > after_seq,
                           columns=["seq", "rule", "subject_id", "episode_id", "phase", "start_time", "end_time",
                                    "event_time", "lon", "lat", "severity", "evidence"],
                           order_by=[t.c.seq], limit=limit)
        return frame.rename(columns={"start_time": "start", "end_time": "end"})

    def _apply(self, connection: sa.Connection, frame: pd.DataFrame, source: str, version: int) -> ApplyResult:
        if not len(frame):
            return ApplyResult()
        applied = self._read(connection, incident_applied, self._of_episodes(frame),
                             columns=["rule", "episode_id", "phase", "ordinal", "digest", "incident_id"])
        window_start = frame["start"].min() - pd.Timedelta(seconds=self.settings.reopen_window_s)
        known_ids = applied["incident_id"].unique().tolist()
        t = incidents
        subjects = frame["subject_id"].unique().tolist()
        # three terms each on its own index (a year's record is not read per batch): the episodes'
        # incidents, the active ones (partial index), those ended within the reopen window; each
        # narrowed to the batch's subjects as a filter — `subject_id || ''` keeps the drill-down's
        # subject index out of them (SQLite, without statistics, took it and read every subject's record)
        subject = t.c.subject_id.op("||")(sa.literal(""))
        candidates = self._read(
            connection, t,
            sa.or_(
                self.store._in_values(t.c.id, known_ids, "in_ids"),
                sa.and_(sa.text(ACTIVE), self.store._in_values(subject, subjects, "in_active_subjects")),
                sa.and_(t.c.end_time >= window_start, self.store._in_values(subject, subjects, "in_ended_subjects")),
            ),
        )
        plan = plan_batch(frame, applied, candidates, self.settings, source=source)
        now = _now()
        if len(plan.applied):
            self._insert(connection, incident_applied, {
                **{c: plan.applied[c].to_numpy() for c in ("rule", "episode_id", "phase", "ordinal", "digest",
                                                            "incident_id", "seq")},
                "episode_start": plan.applied["episode_start"],
                "source": source, "applied_at": now, "version": version,
                "position": np.arange(len(plan.applied), dtype="int64"),
            })
        rows = plan.incidents.set_index("id", drop=False)
        routed = None
        if plan.opened:
            routed, pushed_at, severity = self._route(rows.loc[plan.opened], plan.opened_severity)
            first = routed.dropna(subset=["district_adcode"]).drop_duplicates("incident_id")
            adcode = pd.Series(first["district_adcode"].to_numpy(dtype=object), index=first["incident_id"].to_numpy())
            routed_here = rows["id"].map(adcode)
            has = routed_here.notna().to_numpy()
            rows["district_adcode"] = np.where(has, routed_here.to_numpy(dtype=object),
                                               rows["district_adcode"].to_numpy(dtype=object))
        # the level each incident opened at (the KPI tables' level for it): the store's for those it
        # holds, the opening event's for those this batch opened
        opened_at = pd.concat([pd.Series(candidates["opened_severity"].to_numpy(dtype=object),
                                         index=candidates["id"].to_numpy(dtype=object)),
                               pd.Series(plan.opened_severity, index=pd.Index(plan.opened, dtype=object), dtype=object)])
        opened_at = opened_at[~opened_at.index.duplicated(keep="last")]
        rows["opened_severity"] = kpi_logic.level_or(opened_at.reindex(rows["id"]), rows["severity"])
        if len(rows):
            values = {c.name: rows[c.name] for c in incidents.columns if c.name not in ("closed_at", "version")}
            values["version"] = version
            self._insert(connection, incidents, values, conflict=("id",),
                         update=[c for c in values if c not in ("id", "rule", "subject_id", "first_episode_id",
                                                                 "first_time", "source", "opened_severity")])
        increments = []
        deliveries = None
        # ids given here: the routing's outbox row names its incident's `opened` transition
        transitions = plan.transitions.assign(id=_objects(self._new_ids("TR", len(plan.transitions))))
        if routed is not None:
            opened_info = rows.loc[plan.opened, ["rule", "severity", "district_adcode", "first_time", "quick_close",
                                                 "episodes"]]
            opened_info["severity"] = plan.opened_severity  # counted at the level it was pushed with
            increments.append(kpi_logic.rollup_increments(opened_info, "incidents", per_recipient=False))
            # the push at opening is recorded by the recipient row itself (pushed_at), not logged: one
            # row fewer per recipient; show() puts it in the history (_with_routing_pushes)
            self._push(connection, routed, pushed_at, severity, tier=np.zeros(len(routed), "int64"),
                       escalated_from=[None] * len(routed), actor="system", version=version, info=opened_info,
                       logged=False, increments=increments)
            deliveries = self._routing_deliveries(routed, pushed_at, severity, transitions)
        new_ids = set(plan.opened)
        for metric, ids in (("quick_closes", plan.quick_closed), ("reopens", plan.reopened)):
            if ids:
                info = rows.loc[ids, ["rule", "opened_severity", "district_adcode", "first_time"]] \
                    .rename(columns={"opened_severity": "severity"})  # counted at the level it opened at
                increments.append(kpi_logic.rollup_increments(info, metric, per_recipient=False))
                older = [i for i in ids if i not in new_ids]  # the new ones' recipients count it when pushed
                if older:
                    increments.append(self._recipient_increments(
                        connection, older, metric, info[~info.index.duplicated()]))
        if len(plan.upgrades):  # after the noise counters: an upgrade's new recipients count it as it stands
            rerouted, notices = self._reroute(connection, plan.upgrades, rows, version, increments)
            transitions = pd.concat([transitions, rerouted], ignore_index=True)
            deliveries = notices if deliveries is None else pd.concat([deliveries, notices], ignore_index=True)
        self._bump(connection, increments)  # the batch's counters in one upsert per rollup table
        self._log(connection, transitions, deliveries, now)
        c = plan.counts
        return ApplyResult(applied=c["applied"], duplicates=plan.duplicates, opened=c["opened"],
                           updated=c["updated"], closed=c["closed"], reopened=c["reopened"])

    def _of_episodes(self, frame: pd.DataFrame) -> sa.TextClause:
        """The applied keys of a batch's episodes: `(episode_start, episode_id) IN` the batch's
        pairs, each pair a seek on the key (one JSON text on SQLite, two arrays on PostgreSQL)."""
        pairs = pd.DataFrame({"start": _us_of(frame["start"]), "episode": frame["episode_id"].to_numpy(dtype=object)})
        pairs = pairs.drop_duplicates()
        if self.dialect == "sqlite":
            return sa.text("(episode_start, episode_id) IN (SELECT json_extract(value, '$[0]'), "
                           "json_extract(value, '$[1]') FROM json_each(:episode_pairs))").bindparams(
                episode_pairs=json.dumps(list(zip(pairs["start"].tolist(), pairs["episode"].tolist()))))
        # and the starts' range: the key's range scan bounds what the pairs are joined with whatever
        # the statistics (without them — a fresh table, autovacuum off — the join alone or `= ANY` of
        # the starts was planned as a scan of the whole table: 280 ms a batch at a year's record)
        starts = self._wire_times(pairs["start"].to_numpy().view("M8[us]"))
        lo, hi = self._wire_times(np.array([pairs["start"].min(), pairs["start"].max()]).view("M8[us]"))
        return sa.text("episode_start BETWEEN CAST(:first_start AS timestamptz) AND CAST(:last_start AS timestamptz) "
                       "AND (episode_start, episode_id) IN (SELECT * FROM unnest(CAST(:episode_starts AS timestamptz[]), "
                       "CAST(:episode_ids AS text[])))").bindparams(
            first_start=lo, last_start=hi, episode_starts=starts, episode_ids=pairs["episode"].tolist())

    def _bump(self, connection, parts: list[pd.DataFrame]) -> None:
        """Add counter increments to the KPI rollup (one upsert per distinct counter)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return
        keys = ["grouping", "key", "day", "metric", "bin"]
        both = {c: np.concatenate([p[c].to_numpy(dtype="int64" if c == "bin" else object) for p in parts])
                for c in keys}
        n = np.concatenate([p["n"].to_numpy(dtype="int64") for p in parts])
        for table, grouped_by in ((incident_kpis, keys),
                                  # and the same counters over all days (the KPI table over the whole record)
                                  (incident_kpi_totals, [c for c in keys if c != "day"])):
            total = kpi_logic.count_distinct({c: both[c] for c in grouped_by}, weights=n)
            # upserted in the primary key's order: the upsert walks its B-tree once, in order
            order = np.lexsort([total[c] for c in reversed(grouped_by)])
            self._insert(connection, table, {c: total[c][order] for c in [*grouped_by, "n"]},
                         conflict=tuple(grouped_by), accumulate=("n",))

    def _info(self, connection, ids) -> pd.DataFrame:
        """What the rollup needs of some incidents, indexed by id."""
        return self._read(connection, incidents, self.store._in_values(incidents.c.id, list(ids), "in_ids"),
                          columns=["id", "rule", "severity", "district_adcode", "first_time", "quick_close",
                                   "episodes"]).set_index("id")

    def _recipient_increments(self, connection, ids: list[str], metric: str, info: pd.DataFrame) -> pd.DataFrame:
        """`metric` + 1 for every department and enterprise an incident was pushed to."""
        r = incident_recipients
        rows = self._read(connection, r, self.store._in_values(r.c.incident_id, ids, "in_ids"),
                          columns=["incident_id", "recipient_id", "recipient_kind"])
        rows = rows.join(info, on="incident_id")
        return kpi_logic.rollup_increments(rows, metric, per_recipient=True, incident_groupings=False)

    def _route(self, opened: pd.DataFrame, opened_severity: np.ndarray):
        """Recipients of newly opened incidents (routing.recipients_for; `opened` holds their rows,
        `opened_severity` the level each opened with), with push times (the incident's first event)
        and severities, row by row."""
        frame = pd.DataFrame({
            "incident_id": opened["id"].to_numpy(dtype=object), "rule": opened["rule"].to_numpy(dtype=object),
            "subject_id": opened["subject_id"].to_numpy(dtype=object),
            "subject_kind": opened["subject_kind"].to_numpy(dtype=object),
            "lon": opened["lon"].to_numpy(dtype="float64"), "lat": opened["lat"].to_numpy(dtype="float64"),
            "level": np.asarray(opened_severity, dtype="int64"),
        })
        routed = recipients_for(frame, self._routing())
        routed = routed.drop_duplicates(["incident_id", "recipient_id"]).reset_index(drop=True)
        at = pd.Index(frame["incident_id"].to_numpy(dtype=object), dtype=object).get_indexer(
            routed["incident_id"].to_numpy(dtype=object))
        first_time = _us_of(opened["first_time"]).view("M8[us]")[at]  # naive datetime64: UTC
        return routed, first_time, frame["level"].to_numpy()[at]

    def _reroute(self, connection, upgrades: pd.DataFrame, rows: pd.DataFrame, version: int, increments: list
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Route incidents again at the level an event raised them to after they opened (the
        plan's `upgrades`, in batch order, each as if applied alone — a batch's bounds change
        nothing): the routing's recipients at the new level not yet reached are pushed (tier 0,
        `upgraded_to`), each recipient not yet signed must sign within the new level's wait from the
        upgrade (or from its push, when it was reached later) if that is sooner, and an `upgraded`
        transition records it, with an outbox row to every recipient still acting (pushed or
        signed). Returns the transitions and outbox rows. Numpy on integer codes throughout: a few
        hundred upgrades a batch, where each pandas merge or groupby cost more than their rows."""
        k = len(upgrades)
        up_ids = upgrades["incident_id"].to_numpy(dtype=object)
        at_us = _us_of(upgrades["at"])
        level = upgrades["severity"].to_numpy(dtype="int64")
        wait_us = (self.settings.deadline_s(level) * 1e6).astype("int64")
        due_us = at_us + wait_us
        order = np.arange(k)
        # the upgraded incidents numbered once; each one's upgrades in batch order (CSR: by_code)
        up_code, up_incidents = pd.factorize(up_ids)
        up_incidents = pd.Index(np.asarray(up_incidents, dtype=object), dtype=object)
        by_code = np.argsort(up_code, kind="stable")
        code_sorted = up_code[by_code]

        def upgrades_of(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """(row, upgrade) pairs: each row with every upgrade of its incident, rows in order and
            each row's upgrades in batch order."""
            first = np.searchsorted(code_sorted, codes, "left")
            count = np.searchsorted(code_sorted, codes, "right") - first
            row = np.repeat(np.arange(len(codes)), count)
            within = np.arange(len(row)) - np.repeat(np.cumsum(count) - count, count)
            return row, by_code[np.repeat(first, count) + within]

        def held_to(codes: np.ndarray, pushed_us: np.ndarray, after: np.ndarray) -> np.ndarray:
            """The soonest deadline the upgrades after `after` (an upgrade's place; -1 all) set a
            recipient of incident `codes` pushed at `pushed_us`: each level's wait from the upgrade,
            or from the push when that came later (an escalation reached after the event's time)."""
            row, u = upgrades_of(codes)
            keep = u > after[row]
            row, u = row[keep], u[keep]
            soonest = np.full(len(codes), np.iinfo("int64").max // 2, dtype="int64")
            np.minimum.at(soonest, row, np.maximum(at_us[u], pushed_us[row]) + wait_us[u])
            return soonest

        at_row = rows.index.get_indexer(up_ids)
        asked = pd.DataFrame({
            "incident_id": _objects(order),  # one routing per upgrade, told apart by its place
            **{c: _objects(rows[c].to_numpy(dtype=object)[at_row]) for c in ("rule", "subject_id", "subject_kind")},
            "lon": upgrades["lon"].to_numpy(dtype="float64"), "lat": upgrades["lat"].to_numpy(dtype="float64"),
            "level": level})
        wanted = recipients_for(asked, self._routing())
        which = wanted["incident_id"].to_numpy(dtype="int64")
        r = incident_recipients
        have = self._read(connection, r, self.store._in_values(r.c.incident_id, up_incidents.tolist(), "in_ids"),
                          columns=["incident_id", "recipient_id", "recipient_kind", "state", "pushed_at",
                                   "sign_deadline"])
        have_code = up_incidents.get_indexer(have["incident_id"].to_numpy(dtype=object))

        # the recipients reached before, not yet signed: their deadline brought forward, each row by
        # its key (a condition on state and deadline would lead SQLite to the (state, deadline) index)
        due = held_to(have_code, _us_of(have["pushed_at"]), np.full(len(have), -1))
        later = (have["state"].to_numpy(dtype=object) == "pushed") & (_us_of(have["sign_deadline"]) > due)
        if later.any():
            # the driver's executemany with wire times: SQLAlchemy's per-row processing cost more than the update
            postgres = self.dialect == "postgresql"
            mark, due_mark = ("%s", "%s::timestamptz") if postgres else ("?", "?")
            sql = (f"UPDATE {r.name} SET sign_deadline = {due_mark}, version = {mark} "
                   f"WHERE incident_id = {mark} AND recipient_id = {mark}")
            params = list(zip(self._wire_times(due[later].view("M8[us]")), [version] * int(later.sum()),
                              have["incident_id"].to_numpy(dtype=object)[later].tolist(),
                              have["recipient_id"].to_numpy(dtype=object)[later].tolist()))
            driver = connection.connection.driver_connection
            if postgres:
                with driver.cursor() as cursor:
                    cursor.executemany(sql, params)
            else:
                driver.executemany(sql, params)

        # every recipient once: those reached before (upgrade -1), then each upgrade's new ones in
        # batch order, the first naming a recipient kept
        every_code = np.concatenate([have_code, up_code[which]])
        every_upgrade = np.concatenate([np.full(len(have), -1, dtype="int64"), which])
        every_recipient = np.concatenate([have["recipient_id"].to_numpy(dtype=object),
                                          wanted["recipient_id"].to_numpy(dtype=object)])
        every_kind = np.concatenate([have["recipient_kind"].to_numpy(dtype=object),
                                     wanted["recipient_kind"].to_numpy(dtype=object)])
        every_state = np.concatenate([have["state"].to_numpy(dtype=object), np.full(len(wanted), "pushed", dtype=object)])
        by_upgrade = np.argsort(every_upgrade, kind="stable")
        pair = every_code.astype("int64") * (len(every_recipient) + 1) + pd.factorize(every_recipient)[0]
        kept = np.sort(by_upgrade[np.unique(pair[by_upgrade], return_index=True)[1]])
        kept = kept[np.argsort(every_upgrade[kept], kind="stable")]  # in the order the upgrades reach them
        fresh = kept[every_upgrade[kept] >= 0]
        from_wanted = fresh - len(have)  # every new recipient is a routing row of `wanted`
        new = wanted.iloc[from_wanted].reset_index(drop=True).assign(
            incident_id=_objects(up_ids[which[from_wanted]]))
        ids_new = new["incident_id"].to_numpy(dtype=object)
        u = which[from_wanted]
        new_incidents = pd.unique(ids_new)
        info = rows.loc[new_incidents, ["rule", "severity", "district_adcode", "first_time", "quick_close",
                                        "episodes"]] if len(new) else rows.iloc[:0]
        # its own level's wait from its push, or a later upgrade's if sooner
        due_after = np.minimum(at_us[u] + wait_us[u], held_to(up_code[u], at_us[u], u))
        pushed, deliveries = self._push(
            connection, new, at_us[u].view("M8[us]"), level[u], tier=np.zeros(len(new), "int64"),
            escalated_from=[None] * len(new), actor="system", version=version, info=info, upgraded_to=level[u],
            deadline_us=due_after, increments=increments)
        # a recipient not yet signed makes its incident's status `pushed` (the least advanced state)
        status = rows["status"].to_numpy(dtype=object)[rows.index.get_indexer(new_incidents)]
        moved = new_incidents[status != "pushed"].tolist()
        if moved:
            self._refresh_status(connection, moved, version, _now())

        # one `upgraded` transition per upgrade; a notice to each recipient reached before it and still acting
        tr_ids = self._new_ids("TR", k)
        reached = np.split(new["recipient_id"].to_numpy(dtype=object), np.searchsorted(u, order[1:]))
        details = np.array([json.dumps({"severity": int(s), "pushed": p.tolist(), "sign_deadline": d},
                                       ensure_ascii=False)
                            for s, p, d in zip(level, reached, _iso_ms(due_us))], dtype=object)
        transitions = pd.DataFrame({
            "id": _objects(tr_ids), "incident_id": _objects(up_ids), "recipient_id": _objects(None, k),
            "action": _objects("upgraded", k), "from_state": _objects(None, k), "to_state": _objects(None, k),
            "actor": _objects("system", k), "at": upgrades["at"].reset_index(drop=True), "note": _objects(None, k),
            "details": _objects(details)})
        acting = kept[np.isin(every_state[kept], ["pushed", "signed"])]
        row, j = upgrades_of(every_code[acting])
        reached_before = every_upgrade[acting][row] < j
        row, j = row[reached_before], j[reached_before]
        by_notice = np.lexsort((every_upgrade[acting][row], j))  # by upgrade, then the order it reached them
        row, j = row[by_notice], j[by_notice]
        n = len(row)
        payload = ('{"incident_id": ' + json_text(up_ids[j])
                   + ', "action": "upgraded", "to_state": null, "at": "' + _isoformat_us(at_us[j])
                   + '", "note": null, "level": "' + level_keys(level[j]).astype(object) + '"}')
        notices = pd.DataFrame({
            "transition_id": _objects(tr_ids[j]), "incident_id": _objects(up_ids[j]),
            "recipient_id": _objects(every_recipient[acting][row]),
            "recipient_kind": _objects(every_kind[acting][row]),
            "action": _objects("upgraded", n), "payload": _objects(payload)})
        return (pd.concat([p for p in (transitions, pushed) if len(p)], ignore_index=True),
                pd.concat([d for d in (notices, deliveries) if len(d)], ignore_index=True))

    def _routing(self) -> PreparedRouting:
        """The world's tables as routing reads them, indexed once per world (not per batch)."""
        cached = getattr(self, "_prepared_routing", None)
        if cached is None or cached.world is not self.world:
            cached = self._prepared_routing = prepare_routing(self.world)
        return cached

    def _routing_deliveries(self, routed: pd.DataFrame, pushed_at, severity, transitions: pd.DataFrame) -> pd.DataFrame:
        """ONE outbox row per routed incident (action `routed`, no recipient), naming its `opened`
        transition; the sender fans it out to the recipient rows (fan_out_routing)."""
        every = routed["incident_id"].to_numpy(dtype=object)
        first = np.sort(np.unique(every, return_index=True)[1])  # each incident's first row, in routing order
        incident_ids = every[first]
        opened = transitions[transitions["action"].to_numpy(dtype=object) == "opened"]
        transition_of = pd.Series(opened["id"].to_numpy(dtype=object), index=opened["incident_id"].to_numpy(dtype=object))
        level = level_keys(np.asarray(severity)[first]).astype(object)
        payload = ('{"incident_id": ' + json_text(incident_ids) + f', "action": "{ROUTED}", "to_state": null, '
                   '"at": "' + _isoformat_us(_us_of(pushed_at)[first]) + '", "note": null, "level": "' + level + '"}')
        n = len(incident_ids)
        return pd.DataFrame({"transition_id": _objects(transition_of.reindex(incident_ids).to_numpy(dtype=object)),
                             "incident_id": _objects(incident_ids), "recipient_id": _objects(None, n),
                             "recipient_kind": _objects(None, n), "action": _objects(ROUTED, n),
                             "payload": _objects(payload)})

    def _push(self, connection, routed: pd.DataFrame, pushed_at, severity, *, tier, escalated_from, actor, version,
              info: pd.DataFrame, logged: bool = True, upgraded_to=None, deadline_us=None,
              increments: list | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Insert recipient rows (pushed) and count them in the rollup; returns their `pushed`
        transitions and outbox deliveries as frames (ids given), for _log. `logged=False` (the
        routing of opened incidents): the recipient row is the push's record, not logged
        (show() reads it back, named by routing_push_ids), and its delivery is the incident's one
        `routed` outbox row (_routing_deliveries): nothing is returned. `upgraded_to`: the level an
        upgrade pushes them at (_reroute); `deadline_us`: sign deadlines other than the level's;
        `increments`: a list the rollup's increments are added to (the caller bumps once) instead
        of a bump here."""
        n = len(routed)
        if not n:
            return pd.DataFrame(), pd.DataFrame()
        pushed_us = _us_of(pushed_at)
        deadline_us = pushed_us + (self.settings.deadline_s(severity) * 1e6).astype("int64") if deadline_us is None \
            else np.asarray(deadline_us, dtype="int64")
        tier = np.asarray(tier, dtype="int64")
        escalated_from = np.asarray(list(escalated_from), dtype=object)
        incident_ids = routed["incident_id"].to_numpy(dtype=object)
        recipient_ids = routed["recipient_id"].to_numpy(dtype=object)
        recipient_kinds = routed["recipient_kind"].to_numpy(dtype=object)
        # the level each row is pushed at (its deadline's): every count of the row keys its level by it
        pushed_severity = np.asarray(severity if upgraded_to is None else upgraded_to, dtype="int64")
        self._insert(connection, incident_recipients, {
            "incident_id": incident_ids, "recipient_id": recipient_ids, "recipient_kind": recipient_kinds,
            "role": routed["role"].to_numpy(dtype=object), "district_adcode": routed["district_adcode"].to_numpy(
                dtype=object), "state": "pushed", "tier": tier, "escalated_from": escalated_from,
            "pushed_at": pushed_us.view("M8[us]"), "sign_deadline": deadline_us.view("M8[us]"), "reminders": 0,
            "version": version, "upgraded_to": None if upgraded_to is None else np.asarray(upgraded_to, dtype="int64"),
            "pushed_severity": pushed_severity,
        })
        counted = routed[["incident_id", "recipient_id", "recipient_kind"]].join(info, on="incident_id")
        counted["severity"] = pushed_severity  # at the level pushed at, whatever the batch ends at
        pushed_counts = kpi_logic.rollup_increments(counted, "pushed", per_recipient=True)
        # per recipient, its incidents are counted as its pushes are (the same rows, another metric)
        incidents_counts = pushed_counts[pushed_counts["grouping"].isin(kpi_logic.RECIPIENT_GROUPINGS).to_numpy()] \
            .assign(metric="incidents")
        # a recipient counts its incidents' noise as it stands (a later one as it happens, in _apply)
        quick = counted["quick_close"].to_numpy(dtype=bool)
        reopens = np.maximum(counted["episodes"].to_numpy(dtype="int64") - 1, 0)
        parts = [pushed_counts, incidents_counts]
        if quick.any():
            parts.append(kpi_logic.rollup_increments(counted[quick], "quick_closes", per_recipient=True,
                                                     incident_groupings=False))
        if reopens.any():
            parts.append(kpi_logic.rollup_increments(counted.loc[counted.index.repeat(reopens)], "reopens",
                                                     per_recipient=True, incident_groupings=False))
        if increments is None:
            self._bump(connection, parts)
        else:
            increments.extend(parts)
        if not logged:
            return pd.DataFrame(), pd.DataFrame()
        ids = self._new_ids("TR", n)
        details = np.full(n, None, dtype=object)
        for i in np.flatnonzero(tier):  # escalations only: tier and role are on the recipient row
            details[i] = json.dumps({"tier": int(tier[i]), "escalated_from": escalated_from[i]}, ensure_ascii=False)
        if upgraded_to is not None:
            details = '{"upgraded_to": ' + np.asarray(upgraded_to, dtype="int64").astype(str).astype(object) + "}"
        at = pd.Series(pd.DatetimeIndex(pushed_us.view("M8[us]"), tz="UTC"))
        transitions = pd.DataFrame({
            "id": _objects(ids), "incident_id": _objects(incident_ids), "recipient_id": _objects(recipient_ids),
            "action": _objects("pushed", n), "from_state": _objects(None, n), "to_state": _objects("pushed", n),
            "actor": _objects(actor, n), "at": at, "note": _objects(None, n), "details": _objects(details)})
        level = level_keys(severity).astype(object)
        payload = ('{"incident_id": ' + json_text(incident_ids) + ', "action": "pushed", "to_state": "pushed", '
                   '"at": "' + _isoformat_us(pushed_us) + '", "note": null, "level": "' + level
                   + '", "sign_deadline": "' + _iso_ms(deadline_us) + '"}')
        deliveries = pd.DataFrame({"transition_id": _objects(ids), "incident_id": _objects(incident_ids),
                                   "recipient_id": _objects(recipient_ids), "recipient_kind": _objects(recipient_kinds),
                                   "action": _objects("pushed", n), "payload": _objects(payload)})
        return transitions, deliveries

    def _new_id(self, kind: str) -> str:
        """Unique without a round trip: the transaction's random prefix and a counter."""
        prefix, counter = self._tx
        counter[0] += 1
        return f"{kind}-{prefix}-{counter[0] - 1}"

    def _new_ids(self, kind: str, n: int) -> np.ndarray:
        prefix, counter = self._tx
        first = counter[0]
        counter[0] += n
        return f"{kind}-{prefix}-" + np.arange(first, first + n).astype(str).astype(object)

    def _delivery(self, transition: dict, recipient_kind: str, extra: dict | None = None) -> dict:
        transition.setdefault("id", self._new_id("TR"))
        at = transition["at"]
        return {"transition_id": transition["id"], "incident_id": transition["incident_id"],
                "recipient_id": transition["recipient_id"], "recipient_kind": recipient_kind,
                "action": transition["action"],
                "payload": {"incident_id": transition["incident_id"], "action": transition["action"],
                            "to_state": transition["to_state"], "at": at.isoformat() if isinstance(at, pd.Timestamp)
                            else pd.Timestamp(at).isoformat(), "note": transition["note"], **(extra or {})}}

    def _log(self, connection, transitions, outbox, now: pd.Timestamp) -> None:
        """Append transitions and outbox rows: lists of dicts (documents as dicts) or frames
        (documents as JSON text); transitions without an id get one."""
        transitions = _log_frame(transitions, ("details",))
        outbox = _log_frame(outbox, ("payload",))
        _check_actions(transitions, TRANSITION_ACTIONS, "transition")
        _check_actions(outbox, TRANSITION_ACTIONS + OUTBOX_ACTIONS, "outbox")
        if len(transitions):
            given = transitions["id"].to_numpy(dtype=object) if "id" in transitions.columns \
                else np.full(len(transitions), None, dtype=object)
            missing = pd.isna(given)
            if missing.any():
                given = given.copy()
                given[missing] = self._new_ids("TR", int(missing.sum()))
            self._insert(connection, incident_transitions, {
                "id": given,
                **{c: transitions[c] for c in ("incident_id", "recipient_id", "action", "from_state", "to_state",
                                               "actor", "at", "note", "details")},
                "recorded_at": now,
            }, json_ready=("details",))
        if len(outbox):
            self._insert(connection, incident_outbox, {
                "delivery_id": self._new_ids("DLV", len(outbox)),
                **{c: outbox[c] for c in ("transition_id", "incident_id", "recipient_id", "recipient_kind", "action",
                                          "payload")},
                "created_at": now, "attempts": 0,
            }, json_ready=("payload",))

    # --- reading ------------------------------------------------------------------------------

    def list(self, status: str | None = None, level=None, department: str | None = None,
             recipient_id: str | None = None, since=None, limit: int | None = None) -> pd.DataFrame:
        """Incidents, newest first (first_time), with their level key; filters optional. `level`
        is a severity 1..4 or a level name (red, 重大 …); `department` and `recipient_id` keep the
        incidents pushed to that recipient."""
        t = incidents
        conditions = []
        if status is not None:
            if status not in STATES:
                raise IncidentError(f"status must be one of {', '.join(STATES)}, got {status!r}")
            conditions.append(t.c.status == status)
        if level is not None:
            try:
                conditions.append(t.c.severity == parse_level(level))
            except ValueError as exc:
                raise IncidentError(str(exc)) from exc
        for who in (department, recipient_id):
            if who is not None:
                r = incident_recipients
                conditions.append(t.c.id.in_(sa.select(r.c.incident_id).where(r.c.recipient_id == str(who))))
        if since is not None:
            conditions.append(t.c.first_time >= _at(since, "since"))
        if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
            raise IncidentError(f"limit must be a non-negative integer, got {limit!r}")
        with self.engine.connect() as connection:
            frame = self._read(connection, t, *conditions, order_by=[t.c.first_time.desc(), t.c.id], limit=limit)
        frame.insert(frame.columns.get_loc("severity") + 1, "level", level_keys(frame["severity"].to_numpy()))
        return frame

    def show(self, incident_id: str) -> dict:
        """One incident: {"incident": row, "events": applied events (with the stored event rows
        where they came from the events table), "recipients": rows, "history": transitions}."""
        with self.engine.connect() as connection:
            frame = self._read(connection, incidents, incidents.c.id == str(incident_id))
            if not len(frame):
                raise IncidentError(f"no incident {incident_id!r}")
            applied = self._read(connection, incident_applied, incident_applied.c.incident_id == str(incident_id),
                                 order_by=[incident_applied.c.version, incident_applied.c.position])
            recipients = self._read(connection, incident_recipients,
                                    incident_recipients.c.incident_id == str(incident_id),
                                    order_by=[incident_recipients.c.tier, incident_recipients.c.recipient_id])
            history = self._read(connection, incident_transitions,
                                 incident_transitions.c.incident_id == str(incident_id),
                                 order_by=[incident_transitions.c.seq])
        row = frame.iloc[0].to_dict()
        row["level"] = str(level_keys([row["severity"]])[0])
        return {"incident": row, "events": applied, "recipients": recipients,
                "history": _with_routing_pushes(history, recipients)}

    def active_episodes(self) -> pd.DataFrame:
        """The episode each active incident waits on the rule to close: rule, subject_id and
        episode_id (its last episode), read by the active incidents' partial index."""
        t = incidents
        with self.engine.connect() as connection:
            frame = self._read(connection, t, sa.text(ACTIVE), columns=["rule", "subject_id", "last_episode_id"])
        return frame.rename(columns={"last_episode_id": "episode_id"})

    def inbox(self, recipient_id: str, pending_only: bool = True) -> pd.DataFrame:
        """What one recipient must act on: its rows (not closed, when pending_only) with the
        incident's rule, subject, level and times; oldest deadline first."""
        r, t = incident_recipients, incidents
        conditions = [r.c.recipient_id == str(recipient_id)]
        if pending_only:
            conditions.append(r.c.state != "closed")
        with self.engine.connect() as connection:
            mine = self._read(connection, r, *conditions, order_by=[r.c.sign_deadline, r.c.incident_id])
            info = self._read(connection, t, self.store._in_values(t.c.id, mine["incident_id"].tolist(), "in_ids"),
                              columns=["id", "rule", "subject_id", "severity", "state", "status", "first_time",
                                       "end_time"])
        info = info.rename(columns={"id": "incident_id", "state": "rule_state", "status": "incident_status"})
        out = mine.merge(info, on="incident_id", how="left")
        out["level"] = level_keys(out["severity"].to_numpy()) if len(out) else pd.Series(dtype=object)
        return out

    # --- recipients act -----------------------------------------------------------------------

    def _act(self, action: str, incident_ids: list[str], recipient_id: str | None, actor: str, at, *,
             note=None, outcome=None, measures=None) -> pd.DataFrame:
        """One transaction: check every (incident, recipient) first, then change them all
        (vectorised: a responder signs a day's incidents in one call)."""
        if not actor or not str(actor).strip():
            raise IncidentError("who acts must be named (--as NAME)")
        if isinstance(incident_ids, str):
            incident_ids = [incident_ids]
        ids = list(dict.fromkeys(str(i) for i in incident_ids))
        if not ids:
            raise IncidentError("no incident given")
        at = _at(at)
        r = incident_recipients
        with self.engine.begin() as connection:
            _, version = self._begin(connection)
            info = self._read(connection, incidents, self.store._in_values(incidents.c.id, ids, "in_ids"),
                              columns=["id", "severity", "state"])
            found = set(info["id"])
            unknown = [i for i in ids if i not in found]
            if unknown:
                raise IncidentError(f"no incident {', '.join(unknown[:5])}" + (" …" if len(unknown) > 5 else ""))
            rows = self._read(connection, r, self.store._in_values(r.c.incident_id, ids, "in_ids"),
                              columns=["incident_id", "recipient_id", "state", "recipient_kind", "pushed_at",
                                       "sign_deadline", "overdue_counted_severity", "pushed_severity"])
            if recipient_id is not None:
                targets = rows[rows["recipient_id"] == str(recipient_id)]
                pushed_to = set(targets["incident_id"])
                missing = [i for i in ids if i not in pushed_to]
                if missing:
                    raise IncidentError(f"{missing[0]} was not pushed to {recipient_id}")
            else:  # the only recipient, or the only one not closed
                per = rows.groupby("incident_id")["recipient_id"].transform("size")
                candidates = rows[(per == 1) | (rows["state"] != "closed")]
                per_id = candidates["incident_id"].value_counts()
                ambiguous = [i for i in ids if per_id.get(i, 0) != 1]
                if ambiguous:
                    pending = rows[(rows["incident_id"] == ambiguous[0]) & (rows["state"] != "closed")]
                    who = ", ".join(pending["recipient_id"]) or "none"
                    raise IncidentError(f"{ambiguous[0]}: say for whom (--for RECIPIENT); pending recipients: {who}")
                targets = candidates
            targets = targets.merge(info.rename(columns={"id": "incident_id", "state": "rule_state"}),
                                    on="incident_id").set_index("incident_id").loc[ids].reset_index()
            new_state = np.empty(len(targets), dtype=object)
            for (state, sev, rule_state), index in targets.groupby(["state", "severity", "rule_state"]).groups.items():
                try:  # one check per distinct case, not per row
                    new_state[targets.index.get_indexer(index)] = check_transition(
                        action, state, severity=int(sev), rule_state=rule_state, note=note, outcome=outcome,
                        measures=measures)
                except IncidentError as exc:
                    first = targets.loc[index[0]]
                    raise IncidentError(f"{first['incident_id']} ({first['recipient_id']}): {exc}") from None
            stamp = {"sign": ("signed_at", "signed_by"), "dispose": ("disposed_at", "disposed_by"),
                     "close": ("closed_at", "closed_by")}[action]
            values = {stamp[0]: at, stamp[1]: str(actor), "version": version, "state": sa.bindparam("b_state")}
            if action == "dispose":
                values.update(measures=measures, note=note, outcome=outcome)
            connection.execute(
                sa.update(r).where(r.c.incident_id == sa.bindparam("b_incident"),
                                   r.c.recipient_id == sa.bindparam("b_recipient")).values(**values),
                [{"b_incident": i, "b_recipient": w, "b_state": st}
                 for i, w, st in zip(targets["incident_id"], targets["recipient_id"], new_state)])
            done = {"sign": "signed", "dispose": "disposed", "close": "closed"}[action]
            details = {"outcome": outcome, "measures": measures} if action == "dispose" else None
            transitions = [{"incident_id": i, "recipient_id": w, "action": done, "from_state": before,
                            "to_state": after, "actor": str(actor), "at": at, "note": note, "details": details}
                           for i, w, before, after in zip(targets["incident_id"], targets["recipient_id"],
                                                          targets["state"], new_state)]
            self._refresh_status(connection, ids, version, at, false_alarm=(outcome == "false_alarm"))
            # the handling results go out too (issue 13: an upstream platform gets each alarm and its handling)
            outbox = [self._delivery(t, "department" if t["recipient_id"].startswith("DEPT-") else "enterprise",
                                     details) for t in transitions]
            self._log(connection, transitions, outbox, _now())
            if action in ("sign", "dispose"):
                counted = targets[["incident_id", "recipient_id", "recipient_kind", "pushed_at", "sign_deadline"]] \
                    .join(self._info(connection, ids), on="incident_id")
                counted["severity"] = kpi_logic.level_or(targets["pushed_severity"], counted["severity"])  # as pushed
                waited = (at - counted["pushed_at"]).dt.total_seconds().to_numpy()
                parts = [kpi_logic.rollup_increments(counted, done, per_recipient=True),
                         kpi_logic.rollup_increments(counted, f"{action}_s", per_recipient=True, seconds=waited)]
                if action == "sign":
                    parts.append(kpi_logic.rollup_increments(counted[(at > counted["sign_deadline"]).to_numpy()],
                                                             "signed_late", per_recipient=True))
                    # the pass counted these unsigned past their deadline: no longer, under the level it used
                    was_overdue = targets["overdue_counted_severity"].notna().to_numpy()
                    if was_overdue.any():
                        back = counted[was_overdue].assign(
                            severity=targets["overdue_counted_severity"][was_overdue].to_numpy(dtype="int64"))
                        back = kpi_logic.rollup_increments(back, "unsigned_overdue", per_recipient=True)
                        parts.append(back.assign(n=-back["n"]))
                elif outcome == "false_alarm":
                    parts.append(kpi_logic.rollup_increments(counted, "false_alarms", per_recipient=True))
                self._bump(connection, parts)
            if self.audit is not None:
                self.audit(connection, action, [{k: t[k] for k in ("incident_id", "recipient_id", "from_state",
                                                                    "to_state", "note")} for t in transitions])
        return pd.DataFrame({"incident_id": targets["incident_id"].to_numpy(),
                             "recipient_id": targets["recipient_id"].to_numpy(),
                             "from_state": targets["state"].to_numpy(), "to_state": new_state})

    def _refresh_status(self, connection, ids: list[str], version: int, at, *, false_alarm: bool = False) -> None:
        """incidents.status = the least advanced recipient's state; closed_at once all are closed."""
        r = incident_recipients
        states = self._read(connection, r, self.store._in_values(r.c.incident_id, ids, "in_ids"),
                            columns=["incident_id", "state"])
        rank = states["state"].map({s: i for i, s in enumerate(STATES)})
        least = rank.groupby(states["incident_id"]).min().reindex(ids).fillna(0).astype("int64")
        status = np.asarray(STATES, dtype=object)[least.to_numpy()]
        values = {"status": sa.bindparam("b_status"), "version": version, "closed_at": sa.bindparam("b_closed_at")}
        if false_alarm:
            values["false_alarm"] = True
        connection.execute(
            sa.update(incidents).where(incidents.c.id == sa.bindparam("b_id")).values(**values),
            [{"b_id": i, "b_status": st, "b_closed_at": at if st == "closed" else None} for i, st in zip(ids, status)])

    def sign(self, incident_ids: list[str] | str, recipient_id: str | None, actor: str, at=None,
             note: str | None = None) -> pd.DataFrame:
        """签收: several incidents at once (all or none)."""
        return self._act("sign", incident_ids, recipient_id, actor, at, note=note)

    def dispose(self, incident_id: str | list[str], recipient_id: str | None, actor: str, measures: str | None,
                note: str | None, outcome: str, at=None) -> pd.DataFrame:
        """处置: measures taken, a note (required for red and orange), the outcome (OUTCOMES).
        Several ids dispose them alike, all or none."""
        return self._act("dispose", incident_id, recipient_id, actor, at, note=note, outcome=outcome,
                         measures=measures)

    def close(self, incident_id: str | list[str], recipient_id: str | None, actor: str, note: str | None = None,
              at=None) -> pd.DataFrame:
        """办结 (several ids: all or none)."""
        return self._act("close", incident_id, recipient_id, actor, at, note=note)

    def supervise(self, incident_id: str, department_id: str, actor: str, deadline, note: str | None,
                  at=None) -> int:
        """督办: a department orders the incident's enterprise recipients to act by `deadline`;
        returns the number of enterprise rows supervised."""
        at = _at(at)
        deadline = _at(deadline, "deadline")
        if not str(department_id).startswith("DEPT-"):
            raise IncidentError(f"a supervision order comes from a department (DEPT-…), not {department_id!r}")
        if deadline <= at:
            raise IncidentError(f"the supervision deadline {deadline} is not after {at}")
        r = incident_recipients
        with self.engine.begin() as connection:
            _, version = self._begin(connection)
            rows = self._read(connection, r, r.c.incident_id == str(incident_id))
            if not len(rows):
                raise IncidentError(f"no incident {incident_id!r} with recipients")
            enterprises = rows[(rows["recipient_kind"] == "enterprise") & (rows["state"] != "closed")]
            if not len(enterprises):
                raise IncidentError(f"{incident_id} has no enterprise recipient left to supervise")
            connection.execute(sa.update(r).where(r.c.incident_id == str(incident_id),
                                                  r.c.recipient_id.in_(enterprises["recipient_id"].tolist()))
                               .values(supervised_by=str(department_id), supervised_at=at,
                                       supervision_deadline=deadline, supervision_note=note, version=version))
            transitions, outbox = [], []
            for who in enterprises["recipient_id"]:
                t = {"incident_id": str(incident_id), "recipient_id": who, "action": "supervised",
                     "from_state": None, "to_state": None, "actor": str(actor), "at": at, "note": note,
                     "details": {"department_id": str(department_id), "deadline": deadline.isoformat()}}
                transitions.append(t)
                outbox.append(self._delivery(t, "enterprise", {"department_id": str(department_id),
                                                               "deadline": deadline.isoformat()}))
            connection.execute(sa.update(incidents).where(incidents.c.id == str(incident_id)).values(version=version))
            self._log(connection, transitions, outbox, _now())
            if self.audit is not None:
                self.audit(connection, "supervise", [{"incident_id": t["incident_id"], "recipient_id": t["recipient_id"],
                                                      "note": note, **t["details"]} for t in transitions])
        return len(enterprises)

    def escalate_overdue(self, now=None) -> EscalationResult:
        """Past its sign deadline a pushed recipient is reminded (once per deadline period) and
        escalated once to the next recipient up (routing.escalation_target); the first time the
        pass sees it past its deadline it is counted in the KPI rollup as unsigned overdue
        (data/incident_kpis.py). Set-based: one read, one UPDATE of the recipients it moves (from a
        scratch table of their keys), one of their incidents, one write per log table."""
        now = _at(now, "now")
        r = incident_recipients
        with self.engine.begin() as connection:
            _, version = self._begin(connection)
            rows = self._read(connection, r, r.c.state == "pushed", r.c.sign_deadline < now,
                              columns=["incident_id", "recipient_id", "recipient_kind", "role", "district_adcode",
                                       "state", "tier", "sign_deadline", "escalated_at", "reminders",
                                       "last_reminded_at", "overdue_counted_severity", "pushed_severity"])
            if not len(rows):
                return EscalationResult()
            info = self._info(connection, rows["incident_id"].unique().tolist())
            rows["severity"] = info["severity"].reindex(rows["incident_id"]).to_numpy(dtype="int64")
            escalate, remind = escalation_due(rows, now, self.settings)
            newly_overdue = rows["overdue_counted_severity"].isna().to_numpy()
            up = rows[escalate]
            counted = rows[["incident_id", "recipient_id", "recipient_kind"]].join(info, on="incident_id")
            counted["severity"] = kpi_logic.level_or(rows["pushed_severity"], counted["severity"])  # as pushed
            self._bump(connection, [
                kpi_logic.rollup_increments(counted[escalate], "escalated", per_recipient=True),
                kpi_logic.rollup_increments(counted[newly_overdue], "unsigned_overdue", per_recipient=True)])
            if newly_overdue.any():
                self._raise_overdue_cursor(connection, rows["sign_deadline"][newly_overdue].max())
            moved = escalate | remind | newly_overdue
            self._update_overdue_rows(connection, rows[moved].assign(severity=counted["severity"][moved].to_numpy()),
                                      escalate[moved], remind[moved], newly_overdue[moved], now, version)

            targets = escalation_target(up[["incident_id", "recipient_kind", "recipient_id", "role",
                                            "district_adcode"]].reset_index(drop=True), self.world)
            have = self._read(connection, r, self.store._in_values(r.c.incident_id, up["incident_id"].unique().tolist(),
                                                                   "in_ids"), columns=["incident_id", "recipient_id"])
            known = pd.MultiIndex.from_frame(have[["incident_id", "recipient_id"]])
            new = targets[~pd.MultiIndex.from_frame(targets[["incident_id", "recipient_id"]]).isin(known)]
            new = new.drop_duplicates(["incident_id", "recipient_id"]).reset_index(drop=True)
            escalated = pd.DataFrame({
                "id": self._new_ids("TR", len(up)), "incident_id": up["incident_id"].to_numpy(dtype=object),
                "recipient_id": up["recipient_id"].to_numpy(dtype=object), "action": "escalated",
                "from_state": "pushed", "to_state": "pushed", "actor": "system", "at": now,
                "note": pd.Series([None] * len(up), dtype=object), "details": '{"sign_overdue": true}'})
            parts, outbox = [escalated], []
            if len(new):
                tier_from = up.set_index(["incident_id", "recipient_id"])["tier"]
                tiers = tier_from.reindex(pd.MultiIndex.from_frame(new[["incident_id", "from_recipient_id"]])) \
                    .fillna(0).to_numpy(dtype="int64") + 1
                pushed, deliveries = self._push(
                    connection, new, [now] * len(new), info["severity"].reindex(new["incident_id"]).to_numpy(),
                    tier=tiers, escalated_from=new["from_recipient_id"].tolist(), actor="system", version=version,
                    info=info)
                parts.append(pushed)
                outbox.append(deliveries)
            again = rows[remind]
            reminded, reminder_deliveries = self._reminders(again, now)
            parts.append(reminded)
            outbox.append(reminder_deliveries)
            escalated_ids = up["incident_id"].unique().tolist()
            if escalated_ids:
                connection.execute(sa.update(incidents).where(self.store._in_values(incidents.c.id, escalated_ids,
                                                                                    "in_ids"))
                                   .values(escalations=incidents.c.escalations + 1, version=version))
            if len(new):
                self._refresh_status(connection, new["incident_id"].unique().tolist(), version, now)
            parts, outbox = [p for p in parts if len(p)], [o for o in outbox if len(o)]
            if not parts:
                return EscalationResult()
            transitions = pd.concat(parts, ignore_index=True)
            self._log(connection, transitions, pd.concat(outbox, ignore_index=True) if outbox else None, _now())
            from data.people import audit_system  # the system's escalations audited in their own transaction

            audit_system(connection, transitions["action"], transitions["incident_id"], transitions["recipient_id"],
                         transitions["details"])
        return EscalationResult(escalated=int(len(up)), reminded=int(len(again)))

    def _reminders(self, again: pd.DataFrame, now: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The `reminded` transitions and their deliveries for the rows `again` (with severity), as
        frames with JSON text, built in bulk."""
        n = len(again)
        if not n:
            return pd.DataFrame(), pd.DataFrame()
        ids = self._new_ids("TR", n)
        incident_ids = again["incident_id"].to_numpy(dtype=object)
        recipient_ids = again["recipient_id"].to_numpy(dtype=object)
        count = (again["reminders"].to_numpy(dtype="int64") + 1).astype(str).astype(object)
        transitions = pd.DataFrame({
            "id": ids, "incident_id": incident_ids, "recipient_id": recipient_ids, "action": "reminded",
            "from_state": "pushed", "to_state": "pushed", "actor": "system", "at": now,
            "note": pd.Series([None] * n, dtype=object), "details": '{"reminders": ' + count + "}"})
        payload = ('{"incident_id": ' + json_text(incident_ids) + ', "action": "reminded", "to_state": "pushed", '
                   '"at": "' + now.isoformat() + '", "note": null, "level": "'
                   + level_keys(again["severity"].to_numpy(dtype="int64")).astype(object) + '"}')
        deliveries = pd.DataFrame({"transition_id": ids, "incident_id": incident_ids, "recipient_id": recipient_ids,
                                   "recipient_kind": again["recipient_kind"].to_numpy(dtype=object),
                                   "action": "reminded", "payload": payload})
        return transitions, deliveries

    def _raise_overdue_cursor(self, connection, deadline: pd.Timestamp) -> None:
        """OVERDUE_CURSOR := max(itself, deadline) (the row made on first use)."""
        c = incident_cursor
        us = int(deadline.value // 1000)
        moved = connection.execute(sa.update(c).where(c.c.name == OVERDUE_CURSOR).values(
            last_seq=sa.case((c.c.last_seq < us, us), else_=c.c.last_seq)))
        if not moved.rowcount:
            connection.execute(sa.insert(c).values(name=OVERDUE_CURSOR, last_seq=us, version=0))

    def _update_overdue_rows(self, connection, rows: pd.DataFrame, escalate, remind, newly_overdue,
                             now: pd.Timestamp, version: int) -> None:
        """One UPDATE of the recipient rows the pass moves: escalated (escalated_at), reminded
        (reminders, last_reminded_at), counted overdue (the severity counted under), from a
        per-connection scratch table of their keys (SQLite executemany, PostgreSQL COPY)."""
        if not len(rows):
            return
        postgres = self.dialect == "postgresql"
        connection.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {_overdue_scratch.name} (incident_id TEXT NOT NULL, "
            "recipient_id TEXT NOT NULL, escalate BOOLEAN NOT NULL, remind BOOLEAN NOT NULL, "
            "counted_severity BIGINT, PRIMARY KEY (incident_id, recipient_id))"
            + (" ON COMMIT DELETE ROWS" if postgres else ""))
        connection.exec_driver_sql(f"DELETE FROM {_overdue_scratch.name}")  # SQLite keeps it past the commit
        severity = rows["severity"].to_numpy(dtype="int64")
        self._insert(connection, _overdue_scratch, {
            "incident_id": rows["incident_id"].to_numpy(dtype=object),
            "recipient_id": rows["recipient_id"].to_numpy(dtype=object),
            "escalate": np.asarray(escalate, dtype=bool), "remind": np.asarray(remind, dtype=bool),
            "counted_severity": np.where(np.asarray(newly_overdue, dtype=bool), severity.astype(object), None)})
        r = incident_recipients.name
        connection.execute(sa.text(
            f"UPDATE {r} SET "
            f"escalated_at = CASE WHEN s.escalate THEN :now ELSE {r}.escalated_at END, "
            f"reminders = {r}.reminders + CASE WHEN s.remind THEN 1 ELSE 0 END, "
            f"last_reminded_at = CASE WHEN s.remind THEN :now ELSE {r}.last_reminded_at END, "
            f"overdue_counted_severity = COALESCE(s.counted_severity, {r}.overdue_counted_severity), "
            f"version = :version FROM {_overdue_scratch.name} AS s "
            f"WHERE {r}.incident_id = s.incident_id AND {r}.recipient_id = s.recipient_id"
        ).bindparams(sa.bindparam("now", type_=UtcDateTime()), sa.bindparam("version", type_=sa.BigInteger())),
            {"now": now, "version": version})

    def append_history(self, connection: sa.Connection, incident_id: str, action: str, actor: str, at,
                       note: str | None = None, details: dict | None = None) -> None:
        """Append one transition of the incident itself (no recipient, no outbox row) inside the
        caller's transaction: the channels (data/channels/) record driver messages and the
        terminal's 0x0001 answers here."""
        _, version = self._begin(connection)
        connection.execute(sa.update(incidents).where(incidents.c.id == str(incident_id)).values(version=version))
        self._log(connection, [{"incident_id": str(incident_id), "recipient_id": None, "action": action,
                                "from_state": None, "to_state": None, "actor": str(actor), "at": _at(at),
                                "note": note, "details": details}], [], _now())

    # --- KPIs ---------------------------------------------------------------------------------

    def rebuild_kpis(self) -> int:
        """The KPI rollup recomputed from the incidents and recipient rows (spatial/incidents/kpis.py
        `rollup_of_records`) in one transaction under the incident write lock: for a rollup whose
        rows an earlier version counted otherwise (before migration 0012 a raised incident's rows
        counted at the level it stood at), or that was lost. Returns the counters written."""
        with self.engine.begin() as connection:
            self._begin(connection)
            records = self._read(connection, incidents, columns=[
                "id", "rule", "severity", "opened_severity", "district_adcode", "first_time", "quick_close",
                "episodes"])
            recipients = self._read(connection, incident_recipients, columns=[
                "incident_id", "recipient_id", "recipient_kind", "state", "pushed_at", "pushed_severity",
                "sign_deadline", "signed_at", "disposed_at", "outcome", "escalated_at", "overdue_counted_severity"])
            connection.execute(incident_kpis.delete())
            connection.execute(incident_kpi_totals.delete())
            self._bump(connection, kpi_logic.rollup_of_records(records, recipients))
            return int(connection.execute(sa.select(sa.func.count()).select_from(incident_kpis)).scalar_one())

    def kpis(self, by: str = "department", since=None, until=None, now=None) -> pd.DataFrame:
        """Handling figures per department | district | enterprise | rule | level | day
        (spatial/incidents/kpis.py) from the rollup, over incidents first seen on the local days
        [since, until) (whole Asia/Shanghai days); overdue counts the recipients signed late and
        those still unsigned past their deadline at `now` (data/incident_kpis.py: the escalation
        pass's counter, corrected live). Durations are read from 5 % bins."""
        from data.incident_kpis import read_kpis

        if by not in kpi_logic.GROUPINGS:
            raise IncidentError(f"--by must be one of {', '.join(kpi_logic.GROUPINGS)}, got {by!r}")
        return read_kpis(self, by, _at(since, "since") if since is not None else None,
                         _at(until, "until") if until is not None else None,
                         _at(now, "now") if now is not None else _now())

    def kpis_exact(self, by: str = "department", since=None, until=None, now=None) -> pd.DataFrame:
        """The same figures from every incident and recipient row (exact quantiles; reads them all:
        the reference the rollup is tested against, not for a year's table on a screen)."""
        if by not in kpi_logic.GROUPINGS:
            raise IncidentError(f"--by must be one of {', '.join(kpi_logic.GROUPINGS)}, got {by!r}")
        t, r = incidents, incident_recipients
        conditions = []
        if since is not None:
            conditions.append(t.c.first_time >= _at(since, "since"))
        if until is not None:
            conditions.append(t.c.first_time < _at(until, "until"))
        with self.engine.connect() as connection:
            inc = self._read(connection, t, *conditions,
                             columns=["id", "rule", "severity", "opened_severity", "district_adcode", "first_time",
                                      "quick_close", "false_alarm", "episodes", "escalations"])
            rec_conditions = [r.c.incident_id.in_(sa.select(t.c.id).where(*conditions))] if conditions else []
            rec = self._read(connection, r, *rec_conditions,
                             columns=["incident_id", "recipient_id", "recipient_kind", "district_adcode", "state",
                                      "tier", "pushed_at", "sign_deadline", "signed_at", "disposed_at", "outcome",
                                      "escalated_at", "pushed_severity"])
        return kpi_logic.kpis(inc, rec, by=by, now=_at(now, "now") if now is not None else _now())
