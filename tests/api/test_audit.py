"""The audit log is written in the same transaction as the change (both stores), and the CLI:
`hazmap users …`, `hazmap audit`, and `hazmap incidents … --as NAME` as a checked user."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from data.incidents import IncidentError, IncidentStore
from data.people import Actor, PeopleStore
from tests.api.conftest import PASSWORD, cheap_hasher
from tests.incidents.helpers import ev

ADMIN = Actor("test", "admin", "test")


def _one_incident(store, world):
    vehicle = world.vehicles.dropna(subset=["carrier_id"]).iloc[0]
    incidents = IncidentStore(store, world)
    incidents.apply_events([ev("open", 0, subject=vehicle["id"], severity=3)])
    incident = incidents.list()["id"].iloc[0]
    return incident, incidents.show(incident)["recipients"]["recipient_id"].tolist()


def test_an_incident_action_and_its_audit_row_commit_or_fail_together(store, api_world):
    store.replace_world(api_world)
    incident, recipients = _one_incident(store, api_world)
    people = PeopleStore(store, hasher=cheap_hasher())
    history = len(IncidentStore(store, api_world).show(incident)["history"])

    def failing_audit(connection, action, rows):
        people.audit(connection, ADMIN, f"incident.{action}", rows[0]["incident_id"])
        raise RuntimeError("the audit write failed")

    with pytest.raises(RuntimeError):
        IncidentStore(store, api_world, audit=failing_audit).sign([incident], recipients[0], "duty")
    after = IncidentStore(store, api_world).show(incident)
    assert set(after["recipients"]["state"]) == {"pushed"} and len(after["history"]) == history
    assert "incident.sign" not in set(people.read_audit()["action"])

    audited = IncidentStore(store, api_world, audit=people.audit_hook(Actor("duty", "duty_officer", "10.0.0.7")))
    audited.sign([incident], recipients[0], "duty")
    with pytest.raises(IncidentError):  # an illegal transition: nothing changes, nothing is audited
        audited.sign([incident], recipients[0], "duty")
    rows = people.read_audit()
    signed = rows[rows["action"] == "incident.sign"]
    assert len(signed) == 1 and signed.iloc[0]["address"] == "10.0.0.7" and signed.iloc[0]["target"] == incident
    assert signed.iloc[0]["details"]["to_state"] == "signed"
    audited.supervise(incident, next(r for r in recipients if r.startswith("DEPT-")), "duty",
                      deadline="2030-01-01T00:00:00Z", note="限期整改")
    assert "incident.supervise" in set(people.read_audit()["action"])


@pytest.fixture
def cli_home(tmp_path, api_world, monkeypatch):
    from data.store import Store

    monkeypatch.setenv("HAZMAP_VAR_DIR", str(tmp_path / "var"))
    for key in ("HAZMAP_DATABASE_URL",):
        monkeypatch.delenv(key, raising=False)
    url = f"sqlite:///{(tmp_path / 'var' / 'hazmap.sqlite').as_posix()}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(api_world)
        incident, recipients = _one_incident(store, api_world)
    return tmp_path, incident, recipients


def _run(*args, input=None, ok=True):
    from app.cli import cli

    result = CliRunner().invoke(cli, list(args), input=input)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _refused(*args, input=None) -> str:
    """A command refused with one clear line (main() prints `hazmap: <it>` and exits 2)."""
    from app.cli import UserError

    result = _run(*args, input=input, ok=False)
    assert isinstance(result.exception, UserError), (result.output, result.exception)
    return str(result.exception)


def test_users_and_audit_commands(cli_home):
    _, incident, recipients = cli_home
    department = next(r for r in recipients if r.startswith("DEPT-"))
    made = _run("users", "add", "张三", "--role", "department", "--department", department)
    password = made.output.split("password (shown once): ")[1].split()[0]
    assert len(password) >= 16
    _run("users", "add", "duty1", "--role", "duty_officer", "--password-stdin", input=PASSWORD + "\n")
    for args, message in [
        (("users", "add", "x1", "--role", "boss"), "role must be one of"),
        (("users", "add", "张三", "--role", "kiosk"), "exists already"),
        (("users", "add", "d2", "--role", "department", "--department", "DEPT-NOPE"), "no department DEPT-NOPE"),
        (("users", "add", "k2", "--role", "kiosk", "--password-stdin"), "at least 10 characters"),
        (("users", "disable", "nobody"), "no user 'nobody'"),
    ]:
        assert message in _refused(*args, input="short\n")
    listed = _run("users", "list", "--json").output
    rows = [json.loads(line) for line in listed.splitlines() if line.startswith("{")]  # (log lines mixed in)
    assert {r["name"] for r in rows} == {"张三", "duty1"}
    assert password not in listed and "password_hash" not in listed and "argon2" not in listed
    # --as is a checked user: it must exist, may act, and a department user acts on its own row only
    for args, message in [
        (("incidents", "sign", incident, "--as", "ghost"), "no such active user"),
        (("incidents", "sign", incident, "--as", "张三", "--for", recipients[-1] if recipients[-1] != department
          else recipients[0]), "acts for " + department + " only"),
    ]:
        assert message in _refused(*args)
    _run("incidents", "sign", incident, "--as", "张三")
    _run("users", "disable", "张三")
    assert "no such active user" in _refused("incidents", "close", incident, "--as", "张三")
    _run("world", "export", "--out", str(cli_home[0] / "exported"))
    again = _run("users", "reset-password", "duty1").output
    assert "password (shown once): " in again
    audit = [json.loads(line) for line in _run("audit", "--since", "1h", "--json").output.splitlines()
             if line.startswith("{")]
    actions = [(a["action"], a["target"]) for a in audit]
    assert ("user.add", "张三") in actions and ("incident.sign", incident) in actions
    assert ("user.disable", "张三") in actions and ("user.reset_password", "duty1") in actions
    assert ("export", str(cli_home[0] / "exported")) in actions
    signed = next(a for a in audit if a["action"] == "incident.sign")
    assert (signed["actor"], signed["role"], signed["address"]) == ("张三", "department", "cli")
    assert password not in json.dumps(audit, ensure_ascii=False)
    assert "--since needs a UTC offset" in _refused("audit", "--since", "2026-01-01T00:00")


def test_demo_users_one_per_role_printed_once(cli_home, api_world):
    from app.cli_people import DEMO_USERS, demo_users
    from data.store import Store

    tmp, *_ = cli_home
    with Store.open(f"sqlite:///{(tmp / 'var' / 'hazmap.sqlite').as_posix()}") as store:
        made = demo_users(store, api_world)
        assert [(n, r) for n, r, _ in made] == list(DEMO_USERS)
        assert demo_users(store, api_world) == []  # a second start prints nothing new
        people = PeopleStore(store)
        for name, _, password in made:
            assert people.authenticate(name, password).name == name
