"""The sender: one drain loop, a worker per channel, retries with backoff, dead letters.

    sender = Sender(store, ChannelSettings(), jt808=Jt808Channel(gateway, loop)).start()
    ...
    sender.stop()

The drain loop (one thread, the only one that writes the delivery tables) holds the sender lease
(a second sender — `hazmap deliveries run` beside `hazmap serve` — waits), turns new outbox rows
into deliveries (DeliveryStore.fan_out), records what the workers report, and hands due
deliveries to the worker of their channel. Channels are keyed by subscription (each webhook
target its own worker) and, for JT/T 808, by a few lanes over the terminals' phones, so a slow
or dead receiver only delays its own deliveries, never another channel's, and never the rules
(which only write the outbox). A worker does I/O only: it POSTs or asks the gateway and puts the
outcome on the loop's queue. A failed attempt is retried after an exponential backoff with jitter
(ChannelSettings.backoff) until max_attempts, then the delivery is dead (dead letters,
`hazmap deliveries resend`). A process killed between a send and its record leaves the delivery
pending: the next sender sends it again with the same id.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
import uuid
import zlib
from collections import Counter

import pandas as pd

from data.channels import webhook
from data.channels.settings import ChannelSettings
from data.channels.store import DeliveryStore, Outcome

log = logging.getLogger(__name__)

WAITING_RECHECK_S = 1.0  # a message for a terminal not connected is looked at again this often
JT808_LANES = 4  # workers for terminal messages: a terminal slow to answer holds one lane, not all


class _Worker:
    """One channel's thread: takes (delivery, send) items, reports (delivery, outcome, at)."""

    def __init__(self, name: str, results: queue.Queue, wake: threading.Event, size: int):
        self.name = name
        self.items: queue.Queue = queue.Queue(maxsize=size)
        self._results = results
        self._wake = wake
        self.thread = threading.Thread(target=self._run, name=f"hazmap-send-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.items.get()
            if item is None:
                return
            delivery, send = item
            try:
                outcome = send(delivery)
            except Exception as exc:  # a channel bug must not kill the worker: it is a failed attempt
                log.exception("sender: channel %s failed on %s", self.name, delivery["delivery_id"])
                outcome = Outcome("error", answer=f"{type(exc).__name__}: {exc}")
            self._results.put((delivery, outcome, pd.Timestamp.now(tz="UTC").floor("us")))
            self._wake.set()

    def stop(self) -> None:
        try:
            self.items.put_nowait(None)
        except queue.Full:
            pass


class Sender:
    def __init__(self, store, settings: ChannelSettings = ChannelSettings(), *, jt808=None,
                 owner: str | None = None, seed: int | None = None):
        self.settings = settings
        self.deliveries = DeliveryStore(store, settings)
        self.jt808 = jt808
        self.owner = owner or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._random = random.Random(seed)
        self._results: queue.Queue = queue.Queue()
        self._wake = threading.Event()
        self._workers: dict[str, _Worker] = {}
        self._inflight: set[str] = set()
        self._subs: dict[str, dict] = {}
        self._lease_until = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts: Counter = Counter()  # attempts, sent, failed (attempts not ok), dead, fanned_out
        self.error: str | None = None

    # --- one pass of the drain loop ----------------------------------------------------------

    def tick(self, now: pd.Timestamp | None = None) -> bool:
        """Lease, fan out, record, dispatch; False when another sender holds the lease."""
        if not self._hold_lease():
            return False
        self.counts["fanned_out"] += self.deliveries.fan_out()
        self._record_results()
        now = pd.Timestamp.now(tz="UTC").floor("us") if now is None else now
        due = self.deliveries.due(now, exclude=self._inflight, skip_channels=() if self.jt808 else ("jt808",))
        if not due:
            return True
        if any(d["channel"] in ("webhook", "sms") for d in due):  # read afresh: a URL or secret may have changed
            self._subs = self.deliveries.subscription_rows()
        connected = None
        waiting = []
        for delivery in due:
            if delivery["channel"] == "jt808":
                if self.jt808 is None:
                    continue  # no gateway in this process: the sender beside it sends them
                if connected is None:
                    from data.feeds.jt808 import phone_key

                    connected = set(self.jt808.gateway.connected_phones())
                if phone_key(delivery["target"]) not in connected:
                    expires = delivery.get("expires_at")
                    if expires is not None and now >= pd.Timestamp(expires):
                        self._record(delivery, Outcome("expired", answer=f"terminal {delivery['target']} did not "
                                                       f"connect within {self.settings.driver_text_ttl_s:g} s",
                                                       final=True), now)
                    else:
                        waiting.append(delivery["delivery_id"])
                    continue
                lane = zlib.crc32(delivery["target"].encode()) % JT808_LANES
                self._dispatch(f"jt808-{lane}", delivery, self.jt808.send)
            else:
                sub = self._subs.get(delivery["subscription_id"])
                if sub is None:  # unsubscribed since: nobody to send it to
                    self._record(delivery, Outcome("refused", answer="the subscription was removed", final=True), now)
                    continue
                timeout = self.settings.webhook_timeout_s
                # the subscription's URL now (it may have moved since the fan-out), logged as the target
                delivery = {**delivery, "target": sub["url"]}
                self._dispatch(sub["id"], delivery, lambda d, sub=sub: webhook.post(d, sub, timeout))
        if waiting:
            self.deliveries.note_waiting(waiting, "terminal not connected: sent when it connects",
                                         now + pd.Timedelta(seconds=WAITING_RECHECK_S))
        return True

    def _hold_lease(self) -> bool:
        clock = time.monotonic()
        if clock < self._lease_until:
            return True
        if self.deliveries.take_lease(self.owner):
            self._lease_until = clock + self.settings.lease_s / 3
            return True
        return False

    def _dispatch(self, channel: str, delivery: dict, send) -> None:
        worker = self._workers.get(channel)
        if worker is None:
            worker = self._workers[channel] = _Worker(channel, self._results, self._wake,
                                                      self.settings.channel_queue_max)
        try:
            worker.items.put_nowait((delivery, send))
        except queue.Full:
            return  # this channel is behind: the delivery stays due and is handed over later
        self._inflight.add(delivery["delivery_id"])

    def _record_results(self) -> None:
        while True:
            try:
                delivery, outcome, at = self._results.get_nowait()
            except queue.Empty:
                return
            self._inflight.discard(delivery["delivery_id"])
            if outcome.waiting:  # a terminal gone between the check and the send: it waits, not an attempt
                continue
            self._record(delivery, outcome, at)

    def _record(self, delivery: dict, outcome: Outcome, at) -> None:
        status = self.deliveries.record(delivery, outcome, at, self._random.random())
        self.counts["attempts"] += 1
        if not outcome.ok:
            self.counts["failed"] += 1
            log.info("delivery %s to %s: %s %s (%s)", delivery["delivery_id"], delivery["target"], outcome.status,
                     outcome.code or "", status)
        self.counts[{"sent": "sent", "dead": "dead"}.get(status, "retrying")] += 1

    # --- running ---------------------------------------------------------------------------

    def idle(self) -> bool:
        return not self._inflight and self._results.empty()

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Tick in this thread until no delivery this sender can send is pending (sent or dead,
        retries included); False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            held = self.tick()
            if held and self.idle():
                pending = self.deliveries.list(status="pending", limit=None)
                if self.jt808 is None:
                    pending = pending[pending["channel"] != "jt808"]
                if not len(pending):
                    return True
            self._wake.wait(min(self.settings.tick_s, max(0.0, deadline - time.monotonic())))
            self._wake.clear()
        return False

    def start(self) -> "Sender":
        self._thread = threading.Thread(target=self._run, name="hazmap-sender", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
                self.error = None
            except Exception as exc:  # a store hiccup: say it, keep the loop (the outbox waits meanwhile)
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("sender: drain loop failed (%s); retrying", self.error,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                self._stopping.wait(self.settings.tick_s * 4)
            self._wake.wait(self.settings.tick_s)
            self._wake.clear()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        for worker in self._workers.values():
            worker.stop()
        try:
            self._record_results()
        except Exception:
            log.exception("sender: could not record the last outcomes (they are resent)")
        self.deliveries.release_lease(self.owner)

    def stats(self) -> dict:
        return {**{k: int(v) for k, v in self.counts.items()}, "in_flight": len(self._inflight),
                "channels": len(self._workers), "error": self.error}
