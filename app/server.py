"""Serving for real: waitress, logging (text or JSON lines) and the request id.

Why waitress: a maintained, pure-Python production WSGI server that runs a bounded pool of
threads in ONE process. hazmap must stay one process per city for now (DESIGN.md §2): the
live monitor (gateway, MQTT feed, rules worker, LiveState) lives in the serving process, and
a pre-forking server (gunicorn, uWSGI workers) would start one monitor per worker, each
binding the JT/T 808 port and keeping its own state. Its limits, written down in
docs/deploy.md: the thread pool (`http_threads`) bounds how many requests run at once (more
wait in its queue; above `http_connection_limit` connections new ones wait in the listen
backlog); `http_channel_timeout_s` closes a connection that sends or reads nothing for that
long; a request that is already running is never killed (Python threads cannot be), so the
proxy's `proxy_read_timeout` is what bounds a client's wait; no TLS and no HTTP/2 (nginx in
front does those); the GIL is shared with the rules worker, so heavy screens and heavy
traffic compete for one core's worth of Python.

Shutdown: SIGTERM (and SIGINT) become SystemExit in the main thread, which is inside
`server.run()`; waitress lets the requests in flight finish (it waits up to 5 s for its
threads), `serve()` closes the listening socket and raises SystemExit(128 + signal) again,
and the CLI's `finally` stops the live monitor (the gateway drains its last reports into the
store) before the process exits 143.
"""

from __future__ import annotations

import contextvars
import json
import logging
import signal
import sys
import threading
import time
from typing import Literal

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("hazmap_request_id", default="-")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

log = logging.getLogger("hazmap.server")


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the HTTP request it was logged in ('-' outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, request id, and
    the exception's traceback or any `extra={...}` fields given to the call."""

    _STANDARD = frozenset(vars(logging.LogRecord("x", 0, "", 0, "", None, None))) | {"message", "asctime",
                                                                                   "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        body = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def configure_logging(log_format: Literal["text", "json"] = "text", *, verbose: bool = False) -> None:
    """Root logging to stderr in the chosen format (replacing what was there), request ids on."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log_format must be 'text' or 'json', got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)  # library warnings (a simulator's shortfall …) go to the log


def serve(wsgi_app, *, host: str, port: int, threads: int, connection_limit: int, channel_timeout_s: float,
          trusted_proxy: str = "") -> None:
    """Serve `wsgi_app` with waitress until the process is told to stop (SystemExit or
    KeyboardInterrupt in this thread); then stop listening and let requests in flight finish."""
    from waitress.server import create_server

    options = dict(host=host, port=port, threads=threads, connection_limit=connection_limit,
                   channel_timeout=int(channel_timeout_s), ident="hazmap", expose_tracebacks=False)
    if trusted_proxy:  # behind nginx: take the client's address and scheme from its headers
        options.update(trusted_proxy=trusted_proxy, trusted_proxy_count=1,
                       trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"},
                       clear_untrusted_proxy_headers=True)
    server = create_server(wsgi_app, **options)
    log.info("hazmap at http://%s:%s (waitress, %d threads, at most %d connections)",
             host, server.effective_port, threads, connection_limit)
    stopped_by: list[int] = []

    def on_signal(signum, _frame):
        stopped_by.append(signum)
        raise SystemExit(128 + signum)

    # waitress' loop unwinds on SystemExit / KeyboardInterrupt but swallows them: note which
    # signal it was and raise it again once the server is closed (a service manager sees 143).
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        server.run()
    finally:
        # run() has already let the threads finish the requests in flight (waitress waits up to 5 s);
        # this closes the listening socket.
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("web server stopped")
    if stopped_by:
        raise SystemExit(128 + stopped_by[0])
