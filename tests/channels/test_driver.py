"""The driver's channel end to end: the app's JT/T 808 gateway, the simulator's real TCP terminals
(data/sim/senders.py) receiving 0x8300 / 0x8203 and answering 0x0001, the answer in the incident's
history; a terminal that connects late, one that never does."""

from __future__ import annotations

import asyncio
import threading
import time

import pandas as pd
import pytest

import data.sim.senders as senders
from data.channels.jt808_text import Jt808Channel
from data.channels.settings import ChannelError, ChannelSettings
from data.channels.store import DeliveryStore
from data.feeds.gateway import GatewaySettings, Jt808Gateway, vehicle_ids_by_phone
from data.feeds.jt808 import RegisterReply, decode_frame, decode_message
from data.incidents import IncidentStore
from tests.channels.helpers import FAST, sender
from tests.incidents.helpers import ev
from tests.test_store import make_world


class GatewayThread:
    """The gateway on its own loop thread, as the live monitor runs it."""

    def __init__(self, vehicles):
        self.loop = asyncio.new_event_loop()
        self.gateway = Jt808Gateway(vehicle_ids_by_phone(vehicles), None, None,
                                    GatewaySettings(host="127.0.0.1", port=0, stats_port=None))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(10)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.gateway.stop(1.0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def world_store(store):
    world = make_world()
    store.replace_world(world)
    return store, world


@pytest.fixture
def received(monkeypatch):
    """Every platform message the simulator's terminals get, decoded: (vehicle id, message)."""
    got = []
    original = senders._Connection._other

    def spy(self, frame):
        message = decode_message(decode_frame(frame))
        if not isinstance(message, RegisterReply):
            got.append((self.terminal.vehicle_id, message))
        original(self, frame)

    monkeypatch.setattr(senders._Connection, "_other", spy)
    return got


def _until(predicate, s, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s.tick()
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _history(incidents, iid):
    return incidents.show(iid)["history"]


def test_red_and_orange_truck_incidents_reach_the_terminal_and_its_answer_the_history(world_store, received):
    store, world = world_store
    incidents = IncidentStore(store)
    incidents.apply_events([ev("open", 0, subject="VEH-0001", severity=1),  # red: texted
                            ev("open", 1, subject="VEH-0000", severity=2),  # orange: its terminal connects later
                            ev("open", 2, subject="VEH-0001", severity=3, rule="fatigue")])  # yellow: not texted
    ids = incidents.list().set_index(["subject_id", "severity"])["id"]
    gateway = GatewayThread(world.vehicles)
    first = later = None
    try:
        s = sender(store, jt808=Jt808Channel(gateway.gateway, gateway.loop, answer_timeout_s=5.0))
        first = senders.Jt808Sender("127.0.0.1", gateway.gateway.port, world.vehicles).start(["VEH-0001"])
        ds = DeliveryStore(store)
        assert _until(lambda: (ds.list()["status"] == "sent").sum() == 1, s)
        [(vehicle, message)] = received
        assert vehicle == "VEH-0001" and message.MESSAGE_ID == 0x8300 and message.flags == 0b1100
        assert message.text.startswith("【危化品安全提示】重大预警：超速") and ids["VEH-0001", 1] in message.text
        history = _history(incidents, ids["VEH-0001", 1])
        answer = history[history["action"] == "driver_text_answered"].iloc[0]
        assert answer["actor"] == "terminal:013800000001" and answer["details"]["result"] == 0
        waiting = ds.list(status="pending").iloc[0]
        assert waiting["target"] == "013800000000" and "not connected" in waiting["last_error"]
        assert ds.log(waiting["delivery_id"]).empty  # waiting is not an attempt

        later = senders.Jt808Sender("127.0.0.1", gateway.gateway.port, world.vehicles).start(["VEH-0000"])
        assert _until(lambda: (ds.list()["status"] == "sent").sum() == 2, s)
        assert [v for v, _ in received] == ["VEH-0001", "VEH-0000"]
        assert "较大预警" in received[1][1].text
        assert len(ds.list()) == 2  # the yellow incident sent nothing to the driver
    finally:
        for terminal in (first, later):
            if terminal is not None:
                terminal.close()
        gateway.stop()


def test_on_demand_text_and_a_terminal_alarm_confirmed_when_signed(world_store, received):
    store, world = world_store
    incidents = IncidentStore(store)
    incidents.apply_events([ev("open", 0, subject="VEH-0001", severity=3, rule="terminal_alarm",
                               evidence={"terminal_reported": True, "bit": 0, "alarm": "sos"})])
    iid = incidents.list().iloc[0]["id"]
    ds = DeliveryStore(store, FAST)
    with pytest.raises(ChannelError, match="named"):
        ds.request_text(iid, "hi", actor=" ")
    with pytest.raises(ChannelError, match="no incident"):
        ds.request_text("INC-nope", "hi", actor="Li")
    did = ds.request_text(iid, "请在前方服务区停车检查罐体", actor="Li Lei")
    incidents.sign(iid, None, "Li Lei")
    gateway = GatewayThread(world.vehicles)
    terminal = None
    try:
        terminal = senders.Jt808Sender("127.0.0.1", gateway.gateway.port, world.vehicles).start(["VEH-0001"])
        s = sender(store, jt808=Jt808Channel(gateway.gateway, gateway.loop, answer_timeout_s=5.0))
        assert _until(lambda: (ds.list()["status"] == "sent").sum() == 2, s)
    finally:
        if terminal is not None:
            terminal.close()
        gateway.stop()
    kinds = {type(m).__name__: m for _, m in received}
    assert kinds["TextMessage"].text == "请在前方服务区停车检查罐体"
    assert kinds["ManualAlarmConfirm"].alarm_type == 1  # bit 0, SOS
    history = _history(incidents, iid)
    actions = history["action"].tolist()
    assert {"driver_text_requested", "driver_text_answered", "driver_confirm_answered"} <= set(actions)
    requested = history[history["action"] == "driver_text_requested"].iloc[0]
    assert requested["actor"] == "Li Lei" and requested["details"]["delivery_id"] == did


def test_a_terminal_that_never_connects_fails_after_the_set_time(world_store):
    store, world = world_store
    IncidentStore(store).apply_events([ev("open", 0, subject="VEH-0001", severity=1)])
    settings = ChannelSettings(**{**FAST.__dict__, "driver_text_ttl_s": 0.5})
    gateway = GatewayThread(world.vehicles)
    try:
        s = sender(store, settings, jt808=Jt808Channel(gateway.gateway, gateway.loop))
        ds = DeliveryStore(store)
        assert _until(lambda: (ds.list()["status"] == "dead").sum() == 1, s)
    finally:
        gateway.stop()
    [row] = ds.list(failed=True).to_dict("records")
    assert "did not connect within 0.5 s" in row["last_error"]
    assert ds.log(row["delivery_id"])["status"].tolist() == ["expired"]


def test_messages_waiting_for_terminals_do_not_crowd_out_other_channels(world_store):
    """Waiting is looked at again a second later, not at every tick ahead of everything else; a
    sender without the gateway (hazmap deliveries run) leaves them out of its due list."""
    from types import SimpleNamespace

    from data.channels.receiver import Receiver

    store, _ = world_store
    IncidentStore(store).apply_events([ev("open", 0, subject="VEH-0001", severity=1)])
    ds = DeliveryStore(store, FAST)
    with Receiver() as receiver:
        ds.subscribe(name="p", kind="upstream", url=receiver.url)
        assert ds.fan_out() == 2
        assert sorted(d["channel"] for d in ds.due()) == ["jt808", "webhook"]
        assert [d["channel"] for d in ds.due(limit=1, skip_channels=("jt808",))] == ["webhook"]
        offline = SimpleNamespace(gateway=SimpleNamespace(connected_phones=lambda: []))
        s = sender(store, jt808=offline)
        s.tick()
        s.stop()
        waiting = ds.list(status="pending").set_index("channel").loc["jt808"]
        assert "not connected" in waiting["last_error"]
        assert waiting["next_attempt_at"] >= waiting["created_at"] + pd.Timedelta(seconds=1)
        assert sender(store).drain(10)  # the webhook goes; the driver's message still waits for its terminal
    assert len(receiver.accepted) == 1
    assert ds.list(status="pending")["channel"].tolist() == ["jt808"]
