"""Health, readiness, request ids and JSON logs on the app's server; the settings reference."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from pathlib import Path

import pytest

from app.settings import Settings
from app.webapp import create_app
from data.demo import build_world
from data.reference import load_chemicals
from data.store import Store
from spatial.model import LiveState

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world():
    return build_world(seed=9, scale=0.005, chemicals=load_chemicals())


@pytest.fixture(scope="module")
def store_url(world, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('ops') / 'hazmap.sqlite'}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(world)
    return url


class FakeMonitor:
    """What the ops routes read of a LiveMonitor: stats(), and whether it has feeds."""

    def __init__(self, *, gateway=True, last_input_s_ago=None, uptime_s=5.0, worker_error=None):
        self.gateway = object() if gateway else None
        self.mqtt_feed = None
        self._stats = {"queued_batches": 0, "uptime_s": uptime_s, "last_input_s_ago": last_input_s_ago,
                       "worker_error": worker_error}

    def snapshot(self) -> LiveState:
        return LiveState()

    def stats(self) -> dict:
        return dict(self._stats)


def client(world, url, live=None, **settings):
    return create_app(Settings(database_url=url, **settings), world, world.fingerprint(), live=live).server.test_client()


def test_health_answers_while_the_process_lives(world, store_url):
    response = client(world, store_url).get("/api/health")
    assert response.status_code == 200 and response.get_json()["status"] == "alive"


def test_ready_when_store_schema_world_and_feed_are_fine(world, store_url):
    response = client(world, store_url, FakeMonitor(last_input_s_ago=2.0)).get("/api/ready")
    body = response.get_json()
    assert response.status_code == 200 and body["ready"] is True, body
    assert set(body["checks"]) == {"store", "schema", "world", "rules", "feed"}
    assert "0005" in body["checks"]["schema"]["detail"] or "revision" in body["checks"]["schema"]["detail"]


def test_not_ready_on_a_schema_behind_names_the_fix(world, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    Store.open(url, upgrade=True).close()
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as connection:  # back to the first revision: the schema is behind
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    engine.dispose()
    response = client(world, url).get("/api/ready")
    body = response.get_json()
    assert response.status_code == 503 and body["ready"] is False
    assert body["checks"]["store"]["ok"] is True
    assert body["checks"]["schema"]["ok"] is False and "hazmap db upgrade" in body["checks"]["schema"]["detail"]


def test_not_ready_when_the_database_does_not_answer(world):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    response = client(world, f"postgresql+psycopg://nobody@127.0.0.1:{port}/none").get("/api/ready")
    body = response.get_json()
    assert response.status_code == 503
    assert body["checks"]["store"]["ok"] is False and "cannot reach the database" in body["checks"]["store"]["detail"]
    assert body["checks"]["schema"]["ok"] is False


def test_not_ready_when_the_world_is_empty(world, store_url):
    from app.ops import Ops

    empty = world.__class__(**{**vars(world), "districts": world.districts.iloc[:0]})
    ok, checks = Ops(Settings(database_url=store_url), empty).readiness()  # the screen itself needs districts
    assert ok is False and checks["world"]["ok"] is False and "no world" in checks["world"]["detail"]
    assert Ops(Settings(database_url=store_url), world).readiness()[0] is True


@pytest.mark.parametrize("monitor, limit, ok, says", [
    (FakeMonitor(last_input_s_ago=400.0), 300.0, False, "silent for 400 s"),
    (FakeMonitor(last_input_s_ago=None, uptime_s=900.0), 300.0, False, "no report or reading has arrived"),
    (FakeMonitor(last_input_s_ago=None, uptime_s=10.0), 300.0, True, "waiting for the first report"),
    (FakeMonitor(last_input_s_ago=4000.0), 0.0, True, "silence check is off"),
    (FakeMonitor(gateway=False, last_input_s_ago=None, uptime_s=9999.0), 300.0, True, "no JT/T 808 gateway"),
])
def test_feed_freshness_or_a_deliberate_idle(world, store_url, monitor, limit, ok, says):
    response = client(world, store_url, monitor, ready_feed_max_silence_s=limit).get("/api/ready")
    feed = response.get_json()["checks"]["feed"]
    assert feed["ok"] is ok and says in feed["detail"], feed
    assert response.status_code == (200 if ok else 503)


def test_not_ready_while_the_rules_queue_is_full(world, store_url):
    from types import SimpleNamespace

    monitor = FakeMonitor(last_input_s_ago=1.0)
    monitor.settings = SimpleNamespace(queue_batches=10, incidents=None)
    monitor._stats["queued_batches"] = 10
    response = client(world, store_url, monitor).get("/api/ready")
    rules = response.get_json()["checks"]["rules"]
    assert response.status_code == 503 and "queue is full (10 batches)" in rules["detail"]


def test_not_ready_when_the_rules_worker_died(world, store_url):
    response = client(world, store_url, FakeMonitor(last_input_s_ago=1.0, worker_error="RuntimeError('x')")
                      ).get("/api/ready")
    rules = response.get_json()["checks"]["rules"]
    assert response.status_code == 503 and rules["ok"] is False and "RuntimeError" in rules["detail"]


def test_request_id_from_the_proxy_or_new_and_in_every_log_line(world, store_url, capsys):
    from app.server import configure_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("json")
    try:
        web = client(world, store_url, log_requests=True)
        given = uuid.uuid4().hex
        response = web.get("/api/health", headers={"X-Request-ID": given})
        assert response.headers["X-Request-ID"] == given
        fresh = web.get("/api/health", headers={"X-Request-ID": "<script>" + "x" * 200})
        made = fresh.headers["X-Request-ID"]
        assert made != given and len(made) == 32 and int(made, 16) >= 0
        logging.getLogger("hazmap.test").info("outside any request")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "hazmap.http"]
    assert [(a["request_id"], a["path"], a["status"]) for a in access] == [
        (given, "/api/health", 200), (made, "/api/health", 200)]
    assert {"time", "level", "message", "duration_ms"} <= set(access[0])
    assert lines[-1]["message"] == "outside any request" and lines[-1]["request_id"] == "-"


def test_text_logs_carry_the_request_id_too():
    from app.server import TEXT_FORMAT, RequestIdFilter

    record = logging.LogRecord("hazmap", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    RequestIdFilter().filter(record)
    assert logging.Formatter(TEXT_FORMAT).format(record).endswith("hazmap [-]: hello world")


def test_bad_log_format_is_refused_by_the_settings():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="log_format"):
        Settings(log_format="xml")


def test_settings_reference_is_current():
    """docs/settings.md is generated from the settings objects; regenerate it when a setting changes."""
    from app.settings_doc import DOC_PATH, REGENERATE, render

    assert DOC_PATH.read_text(encoding="utf-8") == render(), f"docs/settings.md is not current: run `{REGENERATE}`"


def test_settings_reference_lists_every_key_with_unit_and_source():
    from app.settings_doc import render, rule_rows

    text = render()
    for name in Settings.model_fields:
        assert f"| `{name}` | `HAZMAP_{name.upper()}` |" in text
    assert "| `ready_feed_max_silence_s` | `HAZMAP_READY_FEED_MAX_SILENCE_S` | `300.0` | s |" in text
    rows = rule_rows()
    assert len(rows) > 50 and all(f"| `{r['rule']}` | `{r['name']}` |" in text for r in rows)
    speeding = next(r for r in rows if r["rule"] == "speeding")
    assert str(speeding["source"])[:20] in text



_SLOW_APP = """
import pathlib, sys, time
from app.server import configure_logging, serve

def app(environ, start_response):
    seconds = float(environ["QUERY_STRING"] or 0)
    if seconds:
        pathlib.Path(sys.argv[2]).touch()  # the slow request is being worked on
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"finished"]

configure_logging("text")
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=2, connection_limit=10, channel_timeout_s=30)
"""


def test_sigterm_lets_the_request_in_flight_finish_then_exits_143(tmp_path):
    """waitress swallows SystemExit; serve() raises it again after the request in flight is answered."""
    import signal
    import subprocess
    import sys
    import threading
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_APP, str(port), str(tmp_path / "working")], cwd=tmp_path.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    answers: list = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/?0", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        slow = threading.Thread(target=lambda: answers.append(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?2", timeout=30).read()))
        slow.start()
        while not (tmp_path / "working").exists():  # the slow request is running
            assert time.monotonic() < deadline + 30
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        slow.join(30)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answers == [b"finished"]
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "web server stopped" in output


def test_the_example_hazmap_toml_is_valid_settings(monkeypatch):
    """deploy/hazmap.toml holds only keys the Settings know (extra keys are refused), with good values."""
    for name in list(os.environ):
        if name.startswith("HAZMAP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(REPO / "deploy")
    settings = Settings()
    assert settings.var_dir == Path("/var/lib/hazmap") and settings.trusted_proxy == "127.0.0.1"
    assert settings.log_format == "json" and settings.live_clock == "wall"
