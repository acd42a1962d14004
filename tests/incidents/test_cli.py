"""`hazmap incidents …` as an operator runs it: import what `hazmap events --json` and `hazmap
rules run` write, list, show, sign / dispose / close with one clear line on bad input, KPIs."""

from __future__ import annotations

import json
import shutil

import pytest

from data.store import Store
from data.tracks import write_events
from tests.incidents.helpers import episode, ev
from tests.test_cli import hazmap


@pytest.fixture(scope="module")
def built_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    hazmap(folder, "world", "build", "--seed", "7", "--scale", "0.02")
    for name in ("王伟", "李娜"):  # `--as NAME` is a checked user (issue 14)
        hazmap(folder, "users", "add", name, "--role", "duty_officer")
    return folder / "var"


@pytest.fixture
def operator(tmp_path, built_world):
    shutil.copytree(built_world, tmp_path / "var")
    return tmp_path


def _rows(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _show(tmp, incident_id) -> dict:
    return json.loads(hazmap(tmp, "incidents", "show", incident_id, "--json").stdout)


def _recipient(tmp, incident_id, recipient_id) -> dict:
    return next(r for r in _show(tmp, incident_id)["recipients"] if r["recipient_id"] == recipient_id)


def _incidents(tmp) -> list[dict]:
    return _rows(hazmap(tmp, "incidents", "list", "--json"))


def test_import_what_hazmap_events_writes_twice_doubles_nothing(operator):
    with Store.open(f"sqlite:///{operator / 'var' / 'hazmap.sqlite'}") as store:
        store.write_events([*episode(0, 10, severity=1), ev("open", 30, subject="VEH-0002", severity=3)])
    (operator / "events.jsonl").write_text(hazmap(operator, "events", "--json").stdout, encoding="utf-8")
    first = json.loads(hazmap(operator, "incidents", "import", "--events", "events.jsonl").stdout)
    assert (first["applied"], first["opened"], first["closed"]) == (3, 2, 1)
    again = json.loads(hazmap(operator, "incidents", "import", "--events", "events.jsonl").stdout)
    assert (again["applied"], again["duplicates"]) == (0, 3)
    # the live monitor's way in (the events table) knows them too
    assert json.loads(hazmap(operator, "incidents", "apply").stdout)["duplicates"] == 3
    listed = _incidents(operator)
    assert [(r["level"], r["subject_id"]) for r in listed] == [("yellow", "VEH-0002"), ("red", "VEH-0001")]
    red = _rows(hazmap(operator, "incidents", "list", "--level", "重大", "--json"))
    assert [r["subject_id"] for r in red] == ["VEH-0001"]
    shown = json.loads(hazmap(operator, "incidents", "show", red[0]["id"], "--json").stdout)
    assert [e["phase"] for e in shown["events"]] == ["open", "close"]
    assert shown["recipients"] and {r["state"] for r in shown["recipients"]} == {"pushed"}


def test_sign_dispose_close_and_one_line_for_what_is_refused(operator):
    write_events([*episode(0, 10, severity=2), ev("open", 5, subject="VEH-0002", severity=3)],
                 operator / "events.csv")  # as `hazmap rules run --out events.csv` writes
    hazmap(operator, "incidents", "import", "--events", "events.csv")
    ids = [r["id"] for r in _incidents(operator)]
    recipients = {i: {r["recipient_id"]: r for r in _show(operator, i)["recipients"]} for i in ids}
    who = sorted(set(recipients[ids[0]]) & set(recipients[ids[1]]))[0]  # both trucks' incidents reach it
    if len(recipients[ids[0]]) > 1:  # several recipients: the CLI asks which one acts
        proc = hazmap(operator, "incidents", "sign", ids[0], "--as", "王伟", ok=False)
        assert proc.returncode == 2 and "say for whom (--for RECIPIENT)" in proc.stderr
    hazmap(operator, "incidents", "sign", *ids, "--as", "王伟", "--for", who, "--at", "2026-11-02T09:05:00+08:00")
    assert [_recipient(operator, i, who)["state"] for i in ids] == ["signed", "signed"]
    orange = _rows(hazmap(operator, "incidents", "list", "--level", "orange", "--json"))[0]["id"]
    refused = hazmap(operator, "incidents", "dispose", orange, "--as", "王伟", "--for", who, "--outcome", "resolved",
                     ok=False)
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].endswith(
        "a red or orange incident needs a disposal note (--note)")
    hazmap(operator, "incidents", "dispose", orange, "--as", "王伟", "--for", who, "--outcome", "false_alarm",
           "--measures", "核实", "--note", "设备误报")
    hazmap(operator, "incidents", "close", orange, "--as", "李娜", "--for", who)
    assert _recipient(operator, orange, who)["closed_by"] == "李娜"
    history = _show(operator, orange)["history"]
    for args, message in [
        (("dispose", orange, "--as", "王伟", "--for", who, "--outcome", "resolved", "--note", "again"),
         "cannot dispose an incident that is closed"),
        (("sign", "INC-0000000000000000", "--as", "王伟"), "no incident INC-0000000000000000"),
        (("dispose", ids[1], "--as", "王伟", "--for", who, "--outcome", "maybe", "--note", "x"),
         "outcome must be one of"),
        (("kpis", "--by", "weekday"), "--by must be one of"),
    ]:
        proc = hazmap(operator, "incidents", *args, ok=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("hazmap:")]
        assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr
    assert _show(operator, orange)["history"] == history
    kpis = {r["level"]: r for r in _rows(hazmap(operator, "incidents", "kpis", "--by", "level", "--json"))}
    assert (kpis["orange"]["disposed"], kpis["orange"]["false_alarms"], kpis["yellow"]["signed"]) == (1, 1, 1)
    # the rollup recomputed from the records gives the same tables
    rebuilt = hazmap(operator, "incidents", "rebuild-kpis")
    assert rebuilt.stdout.startswith("KPI rollup rebuilt: ") and "counters" in rebuilt.stdout
    again = {r["level"]: r for r in _rows(hazmap(operator, "incidents", "kpis", "--by", "level", "--json"))}
    assert again == kpis


def test_a_malformed_file_names_its_line_and_changes_nothing(operator):
    good = json.dumps({"rule": "speeding", "subject_id": "VEH-1", "episode_id": "e1", "phase": "open",
                       "start": "2026-11-02T01:00:00+00:00", "end": None, "lon": 121.5, "lat": 29.8, "severity": 2,
                       "evidence": {}})
    bad = json.loads(good) | {"episode_id": "e2", "severity": 7}
    (operator / "bad.jsonl").write_text(good + "\n\n" + json.dumps(bad) + "\n", encoding="utf-8")
    proc = hazmap(operator, "incidents", "import", "--events", "bad.jsonl", ok=False)
    assert proc.returncode == 2
    assert "bad.jsonl, line 3: severity must be 1 (highest) ... 4" in proc.stderr
    (operator / "broken.jsonl").write_text(good + "\n{not json\n", encoding="utf-8")
    proc = hazmap(operator, "incidents", "import", "--events", "broken.jsonl", ok=False)
    assert "broken.jsonl, line 2: not JSON" in proc.stderr
    assert _incidents(operator) == []
