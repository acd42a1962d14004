"""The driver's channel: JT/T 808 platform messages to a truck's terminal through the gateway.

`text` deliveries are 0x8300 text messages (GBK text, flags bit 2 "show on the display" and bit 3
"read aloud by TTS" — the gateway's TEXT_DISPLAY_TTS; the emergency bits 0-1 mean different things
in the 2013 and 2019 editions and are left clear: not checked against DOMAIN.md, which does not give
the flags); `confirm` deliveries are 0x8203 manual alarm confirmations of the incident's alarm bit.
The terminal's 0x0001 general response is the attempt's outcome (result 0 ok, 1 failed, 2 wrong
message, 3 unsupported) and goes into the incident's history (DeliveryStore.record).

The gateway runs on its own asyncio loop thread (app/live.py); this channel runs in a sender
worker thread and hands each request to that loop. A terminal that is not connected is not an
attempt: the delivery waits (each tick checks again, so the message goes out when the terminal
next connects) until its expiry, then fails.
"""

from __future__ import annotations

import asyncio
import time

from data.channels.store import Outcome

RESULTS = {0: "ok", 1: "failed", 2: "wrong message", 3: "unsupported"}  # the 0x0001 general response's result


class Jt808Channel:
    def __init__(self, gateway, loop: asyncio.AbstractEventLoop, answer_timeout_s: float = 10.0):
        self.gateway = gateway
        self.loop = loop
        self.answer_timeout_s = answer_timeout_s

    def connected(self, phone: str) -> bool:
        from data.feeds.jt808 import phone_key

        return phone_key(phone) in set(self.gateway.connected_phones())

    def send(self, delivery: dict) -> Outcome:
        phone = delivery["target"]
        if not self.connected(phone):
            return Outcome("not_connected", answer=f"terminal {phone} is not connected", waiting=True)
        payload = delivery["payload"]
        if payload.get("kind") == "confirm":
            coroutine = self.gateway.confirm_alarm(phone, int(payload["alarm_type"]), timeout_s=self.answer_timeout_s)
        else:
            coroutine = self.gateway.send_text(phone, payload["text"], timeout_s=self.answer_timeout_s)
        started = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            result = future.result(self.answer_timeout_s + 5.0)
        except (asyncio.TimeoutError, TimeoutError):
            future.cancel()
            return Outcome("timeout", answer=f"no 0x0001 within {self.answer_timeout_s:g} s",
                           latency_ms=round((time.perf_counter() - started) * 1000, 3))
        except LookupError as exc:  # disconnected between the check and the send
            return Outcome("not_connected", answer=str(exc), waiting=True)
        except (ConnectionError, OSError, ValueError) as exc:
            return Outcome("connection", answer=f"{type(exc).__name__}: {exc}",
                           latency_ms=round((time.perf_counter() - started) * 1000, 3))
        latency = round((time.perf_counter() - started) * 1000, 3)
        name = RESULTS.get(int(result), "unknown")
        if int(result) == 0:
            return Outcome("ok", code=int(result), answer=name, latency_ms=latency)
        # a terminal that refuses or does not support the message will not change its mind on retry
        return Outcome("terminal_error", code=int(result), answer=name, latency_ms=latency,
                       final=int(result) in (2, 3))
