"""The system's own changes are audited in their transaction (both stores): escalations past a
sign deadline (actor "system") and a replaced world (the routing table comes with it)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from data.incidents import IncidentStore
from data.people import Actor, PeopleStore
from tests.incidents.helpers import ev


def _overdue_incident(store, world):
    vehicle = world.vehicles.dropna(subset=["carrier_id"]).iloc[0]
    incidents = IncidentStore(store, world)
    incidents.apply_events([ev("open", 0, subject=vehicle["id"], severity=1)])
    return incidents, str(incidents.list()["id"].iloc[0])


def test_an_escalation_by_the_system_writes_its_audit_rows(store, api_world):
    store.replace_world(api_world)
    incidents, incident = _overdue_incident(store, api_world)
    before = len(incidents.show(incident)["history"])
    result = incidents.escalate_overdue(pd.Timestamp("2030-01-01T00:00:00Z"))  # past every sign deadline
    assert result.escalated > 0
    history = incidents.show(incident)["history"]
    added = history.iloc[before:]  # what the escalation wrote: escalations, pushes up the chain, reminders
    assert set(added["actor"]) == {"system"} and "escalated" in set(added["action"])
    audit = PeopleStore(store).read_audit()
    system = audit[audit["actor"] == "system"]
    assert sorted(zip(system["action"], system["details"].map(lambda d: d["recipient_id"]))) == \
        sorted(zip("incident." + added["action"], added["recipient_id"]))
    assert set(system["target"]) == {incident}
    assert (system["action"] == "incident.escalated").sum() == result.escalated
    # each row's details: the recipient and the transition's own details (a push up the chain its tier)
    expected = sorted(json.dumps({"recipient_id": r, **(d or {})}, sort_keys=True)
                      for r, d in zip(added["recipient_id"], added["details"]))
    assert sorted(json.dumps(d, sort_keys=True) for d in system["details"]) == expected
    assert any(len(d) > 1 for d in system["details"])  # not only the recipient: the details reached the audit


def test_an_escalation_whose_audit_fails_changes_nothing(store, api_world, monkeypatch):
    import data.people

    store.replace_world(api_world)
    incidents, incident = _overdue_incident(store, api_world)
    before = incidents.show(incident)

    def broken(connection, *columns):
        raise RuntimeError("the audit write failed")

    monkeypatch.setattr(data.people, "audit_system", broken)
    with pytest.raises(RuntimeError, match="audit write failed"):
        incidents.escalate_overdue(pd.Timestamp("2030-01-01T00:00:00Z"))
    after = incidents.show(incident)
    assert len(after["history"]) == len(before["history"])
    assert after["recipients"]["escalated_at"].isna().all()


def test_a_replaced_world_and_its_audit_row_commit_or_fail_together(store, api_world):
    from data.store import StoreError

    people = PeopleStore(store)
    actor = Actor("cli:test", None, "cli")

    def failing(connection):
        people.audit(connection, actor, "world.import", "somewhere")
        raise StoreError("the audit write failed")

    with pytest.raises(StoreError, match="audit write failed"):
        store.replace_world(api_world, audit=failing)
    assert store.counts().get("districts", 0) == 0  # nothing of the world landed
    assert "world.import" not in set(people.read_audit()["action"])
    store.replace_world(api_world, audit=lambda connection: people.audit(connection, actor, "world.import", "dir"))
    assert store.counts()["districts"] == len(api_world.districts)
    assert list(people.read_audit()["action"]) == ["world.import"]


def test_hazmap_world_import_audits_in_its_transaction(tmp_path, api_world, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import cli
    from data.exchange import export_world
    from data.store import Store

    monkeypatch.setenv("HAZMAP_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("HAZMAP_DATABASE_URL", raising=False)
    export_world(api_world, tmp_path / "world")
    result = CliRunner().invoke(cli, ["world", "import", str(tmp_path / "world")])
    assert result.exit_code == 0, result.output
    with Store.open(f"sqlite:///{(tmp_path / 'var' / 'hazmap.sqlite').as_posix()}") as store:
        audit = PeopleStore(store).read_audit()
    imported = audit[audit["action"] == "world.import"]
    assert list(imported["target"]) == [str(tmp_path / "world")]
    assert imported.iloc[0]["details"]["routing"] == len(api_world.routing)
