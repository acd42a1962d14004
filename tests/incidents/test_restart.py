"""Durability: the serving process is SIGKILLed while it applies events and a duty officer signs
incidents; after a restart every acknowledged change is there, nothing is doubled, and the
monitor resumes after the last applied event (both stores)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pandas as pd
import sqlalchemy as sa

from data.incidents import CURSOR, IncidentError, IncidentStore, fan_out_routing, incident_applied, incident_cursor, \
    incident_outbox, incident_recipients, incident_transitions, incidents
from data.store import Store
from tests.test_cli import HAZMAP

SIM = ["simulate", "--via", "direct", "--lockstep", "--hours", "3", "--seed", "5", "--stage-share", "0.05"]


def _env(tmp_path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZMAP_")}
    env.update(HAZMAP_VAR_DIR=str(tmp_path / "var"), HAZMAP_DATABASE_URL=url)
    return env


def _run(tmp_path, url, *args, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run([HAZMAP, *args], cwd=tmp_path, env=_env(tmp_path, url), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


class Signer(threading.Thread):
    """A duty officer signing whatever is pending, one incident at a time; remembers what the
    store acknowledged (the call returned)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.acked, self.stop, self.errors = url, [], threading.Event(), []

    def run(self):
        with Store.open(self.url) as store:
            desk = IncidentStore(store)
            while not self.stop.is_set():
                with store.engine.connect() as connection:
                    pending = connection.execute(
                        sa.select(incident_recipients.c.incident_id, incident_recipients.c.recipient_id)
                        .where(incident_recipients.c.state == "pushed").limit(1)).first()
                if pending is None:
                    time.sleep(0.05)
                    continue
                try:
                    desk.sign([pending[0]], pending[1], "duty officer")
                except (IncidentError, sa.exc.OperationalError) as exc:  # a busy SQLite file: try again
                    self.errors.append(repr(exc))
                    continue
                self.acked.append(tuple(pending))


def _count(connection, table, *where) -> int:
    return connection.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


def _check_no_doubles(store: Store) -> None:
    with store.engine.connect() as connection:
        opened = connection.execute(
            sa.select(incident_transitions.c.incident_id, sa.func.count())
            .where(incident_transitions.c.action == "opened").group_by(incident_transitions.c.incident_id)).all()
        assert {n for _, n in opened} == {1}
        assert len(opened) == _count(connection, incidents)
        for action in ("pushed", "signed"):
            per = connection.execute(
                sa.select(sa.func.count()).select_from(incident_transitions)
                .where(incident_transitions.c.action == action)
                .group_by(incident_transitions.c.incident_id, incident_transitions.c.recipient_id)).scalars().all()
            assert set(per) <= {1}, action
        # each recipient was pushed once: its incident's routing went out as exactly one outbox row,
        # which the sender fans out to every recipient row the routing made (escalations log their own)
        routings = connection.execute(
            sa.select(incident_outbox.c.incident_id, sa.func.count())
            .where(incident_outbox.c.action == "routed").group_by(incident_outbox.c.incident_id)).all()
        assert {n for _, n in routings} <= {1}
        routed = {i for i, _ in routings}
        assert routed == set(connection.execute(sa.select(incident_recipients.c.incident_id)
                                                .where(incident_recipients.c.tier == 0)).scalars())
        rows = [dict(r) for r in connection.execute(sa.select(incident_outbox)
                                                    .where(incident_outbox.c.action == "routed")).mappings()]
        pushes = [(r["incident_id"], r["recipient_id"]) for r in fan_out_routing(connection, rows)]
        assert len(pushes) == len(set(pushes)) == _count(connection, incident_recipients,
                                                           incident_recipients.c.tier == 0,
                                                           incident_recipients.c.upgraded_to.is_(None))
        # a recipient an upgrade reached has one `pushed` outbox row of its own
        upgraded = set(connection.execute(sa.select(incident_recipients.c.incident_id, incident_recipients.c.recipient_id)
                                          .where(incident_recipients.c.upgraded_to.is_not(None))).all())
        own = connection.execute(sa.select(incident_outbox.c.incident_id, incident_outbox.c.recipient_id)
                                 .where(incident_outbox.c.action == "pushed")).all()
        assert upgraded <= set(own) and len(own) == len(set(own)) and not set(pushes) & upgraded
        cursor = connection.execute(sa.select(incident_cursor.c.last_seq)
                                    .where(incident_cursor.c.name == CURSOR)).scalar()  # the monitor's row
        # what the monitor applied is exactly the events up to its cursor, in one piece
        assert _count(connection, incident_applied, incident_applied.c.seq > cursor) == 0
    return cursor


def test_sigkill_while_applying_and_signing_loses_nothing_and_doubles_nothing(tmp_path, store_url):
    _run(tmp_path, store_url, "world", "build", "--seed", "7", "--scale", "0.02")
    proc = subprocess.Popen([HAZMAP, *SIM], cwd=tmp_path, env=_env(tmp_path, store_url), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    signer = Signer(store_url)
    signer.start()
    try:
        deadline = time.monotonic() + 600
        with Store.open(store_url) as store:
            while True:
                with store.engine.connect() as connection:
                    opened = _count(connection, incidents)
                if opened >= 8 and len(signer.acked) >= 3:
                    break
                assert proc.poll() is None, f"the simulation ended before the kill: {proc.stderr.read()[-3000:]}"
                assert time.monotonic() < deadline, "no incidents appeared"
                time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        signer.stop.set()
        signer.join(60)
        if proc.poll() is None:
            proc.kill()
    acked = set(signer.acked)

    with Store.open(store_url) as store:
        cursor_at_kill = _check_no_doubles(store)
        with store.engine.connect() as connection:
            first_run_max = connection.execute(sa.select(sa.func.max(sa.text("seq"))).select_from(
                sa.table("events"))).scalar()
            signed = set(map(tuple, connection.execute(
                sa.select(incident_recipients.c.incident_id, incident_recipients.c.recipient_id)
                .where(incident_recipients.c.signed_by == "duty officer")).all()))
        assert acked <= signed and len(acked) >= 3

    # restart: the same day again (a second run on the store writes its events again); the
    # monitor first catches up after its cursor
    _run(tmp_path, store_url, *SIM)
    with Store.open(store_url) as store:
        cursor = _check_no_doubles(store)
        events = store.read_events()
        with store.engine.connect() as connection:
            signed_now = set(map(tuple, connection.execute(
                sa.select(incident_recipients.c.incident_id, incident_recipients.c.recipient_id)
                .where(incident_recipients.c.signed_by == "duty officer")).all()))
            applied = pd.DataFrame(connection.execute(
                sa.select(incident_applied.c.rule, incident_applied.c.episode_id, incident_applied.c.phase)).all(),
                columns=["rule", "episode_id", "phase"])
        after = IncidentStore(store).list()
    assert cursor == int(events["seq"].max()) >= cursor_at_kill
    assert first_run_max is not None and cursor > first_run_max
    assert signed_now == signed  # nothing signed was lost or re-pushed
    keys = set(map(tuple, applied.itertuples(index=False)))
    assert set(map(tuple, events[["rule", "episode_id", "phase"]].itertuples(index=False))) <= keys

    # exactly once: the killed-and-replayed store holds the incidents one clean run gives
    second_run = events[events["seq"] > first_run_max].sort_values("seq")
    clean_url = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    with Store.open(clean_url, upgrade=True) as clean:
        reference = IncidentStore(clean)
        reference.apply_events(second_run)
        expected = reference.list()
    assert sorted(after["id"]) == sorted(expected["id"])
    merged = after.merge(expected, on="id", suffixes=("", "_clean"))
    for column in ("episodes", "state", "peak_severity", "end_time", "first_time"):
        assert merged[column].tolist() == merged[f"{column}_clean"].tolist(), column
