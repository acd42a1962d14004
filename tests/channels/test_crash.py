"""Exactly once from the outbox's side: a sender SIGKILLed between sending and recording leaves the
delivery pending; the next sender sends it again with the same delivery id, which the receiver
dedupes by; nothing is lost and no delivery is recorded twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from data.channels.receiver import Receiver
from data.channels.store import DeliveryStore
from data.store import Store
from tests.channels.helpers import FAST, open_incidents, sender


@pytest.mark.parametrize("backend", ["sqlite", "postgis"])
def test_a_sender_killed_between_send_and_record_resends_with_the_same_id(request, tmp_path, backend):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgis_url")
    store = Store.open(url, upgrade=True)
    try:
        open_incidents(store, n=3)
        first_seen = []

        def behave(n, did):
            if n == 1:
                first_seen.append(did)
                return "hang"  # the sender has sent; its record waits for this answer
            return "ok"

        with Receiver(secret="k", behave=behave) as receiver:
            ds = DeliveryStore(store, FAST)
            ds.subscribe(name="upstream", kind="upstream", url=receiver.url, secret="k")
            env = {**os.environ, "HAZMAP_DATABASE_URL": url, "HAZMAP_WEBHOOK_TIMEOUT_S": "60"}
            code = "import sys; from app.cli import main; sys.argv = ['hazmap'] + sys.argv[1:]; main()"
            child = subprocess.Popen([sys.executable, "-c", code, "deliveries", "run", "--until-idle"],
                                     env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 60
                while not first_seen and time.monotonic() < deadline and child.poll() is None:
                    time.sleep(0.05)
                assert first_seen, child.stderr.read().decode() if child.poll() is not None else "no request"
                child.send_signal(signal.SIGKILL)
                assert child.wait(30) == -signal.SIGKILL
            finally:
                child.kill()
            killed = first_seen[0]
            row = ds.list().set_index("delivery_id").loc[killed]
            assert (row["status"], row["attempts"]) == ("pending", 0)  # sent, never recorded
            assert ds.log(killed).empty
            receiver.release.set()

            s = sender(store)  # waits out the dead sender's lease (FAST.lease_s), then drains
            assert s.drain(30)
    finally:
        store.close()
    ids = [r["delivery_id"] for r in receiver.requests]
    assert ids.count(killed) == 2  # the same id again after the crash
    assert len(receiver.accepted) == 3 and killed in receiver.accepted
    with Store.open(url) as store:
        ds = DeliveryStore(store)
        deliveries = ds.list()
        log = ds.log()
    assert set(deliveries["status"]) == {"sent"} and len(deliveries) == 3
    assert sorted(log["delivery_id"]) == sorted(deliveries["delivery_id"])  # one recorded attempt each
    assert set(log["status"]) == {"ok"}
