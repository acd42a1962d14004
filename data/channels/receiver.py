"""A tiny webhook receiver on loopback: what `hazmap demo` subscribes to red and orange incidents,
and what the tests post to. It checks the signature, dedupes by the delivery id and keeps what
it got. `behave(request_number, delivery_id) -> "ok" | "fail" | "slow" | "hang" | "close" | "refuse"`
lets a test make it answer slowly, fail, time out or close the connection on purpose."""

from __future__ import annotations

import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from data.channels.webhook import signature


class Receiver:
    def __init__(self, secret: str | None = None, behave: Callable[[int, str], str] | None = None,
                 slow_s: float = 0.5, host: str = "127.0.0.1", port: int = 0):
        self.secret = secret
        self.behave = behave or (lambda n, did: "ok")
        self.slow_s = slow_s
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # every request, in arrival order
        self.accepted: dict[str, dict] = {}  # delivery id -> body, first acceptance
        self.bad_signatures = 0
        self.release = threading.Event()  # "hang" waits for it (or the client's timeout)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                did = self.headers.get("X-Hazmap-Delivery", "")
                signed = hmac.compare_digest(self.headers.get("X-Hazmap-Signature", ""),
                                             signature(receiver.secret, body))
                with receiver.lock:
                    n = len(receiver.requests) + 1
                    receiver.requests.append({"delivery_id": did, "event": self.headers.get("X-Hazmap-Event"),
                                              "signed": signed, "body": body, "at": time.time(),
                                              "content_type": self.headers.get("Content-Type"),
                                              "headers": dict(self.headers)})
                    if not signed:
                        receiver.bad_signatures += 1
                action = receiver.behave(n, did)
                if action == "close":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action == "hang":
                    receiver.release.wait(60)
                if action == "slow":
                    time.sleep(receiver.slow_s)
                if action == "fail":
                    return self._answer(503, {"error": "try later"})
                if action == "refuse" or (receiver.secret is not None and not signed):
                    return self._answer(400, {"error": "bad signature" if not signed else "refused"})
                with receiver.lock:
                    duplicate = did in receiver.accepted
                    if not duplicate:
                        try:
                            receiver.accepted[did] = json.loads(body)
                        except ValueError:
                            receiver.accepted[did] = {"raw": body.decode("utf-8", "replace")}
                self._answer(200, {"ok": True, "duplicate": duplicate})

            def _answer(self, code: int, doc: dict):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, name="hazmap-receiver", daemon=True)

    def start(self) -> "Receiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self) -> dict:
        with self.lock:
            return {"requests": len(self.requests), "accepted": len(self.accepted),
                    "duplicates": len(self.requests) - len({r["delivery_id"] for r in self.requests}),
                    "bad_signatures": self.bad_signatures}
