"""Webhook and SMS-gateway channels: one HTTP POST per attempt.

Webhook: the delivery's JSON body, signed: `X-Hazmap-Signature: sha256=<hex HMAC-SHA256 of the
body with the subscription's secret>`, `X-Hazmap-Delivery: <delivery id>` (the same on every
retry and resend: receivers dedupe by it), `X-Hazmap-Event`. An SMS gateway is the same channel
with the provider's body shape as configuration: the subscription's `body_template`
(string.Template `$name` placeholders; values JSON-escaped when the content type is JSON) and
`content_type`, `headers`; the signature and delivery headers are sent too.

Outcome: 2xx ok; 408, 425, 429, 5xx, timeouts and dropped connections are retried; any other
answer (4xx: the receiver refuses this body) is final.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import string
import time
import urllib.error
import urllib.request

from data.channels.store import RULE_NAMES_ZH, Outcome
from spatial.incidents.levels import BY_SEVERITY
from spatial.incidents.titles import ACTION_TITLES

RETRIED_HTTP = {408, 425, 429}
# the event as the officers' screens name it (the driver channel's text/confirm are not SMS events)
EVENT_ZH = {action: names[0] for action, names in ACTION_TITLES.items()}


def signature(secret: str | None, body: bytes) -> str:
    """The X-Hazmap-Signature value a receiver recomputes with its copy of the secret."""
    return "sha256=" + hmac.new((secret or "").encode(), body, hashlib.sha256).hexdigest()


def sms_values(payload: dict) -> dict[str, str]:
    """The placeholders an SMS body template may use."""
    incident = payload.get("incident", {})
    transition = payload.get("transition", {})
    level = BY_SEVERITY.get(int(incident.get("severity", 4)), BY_SEVERITY[4])
    rule_zh = RULE_NAMES_ZH.get(incident.get("rule"), incident.get("rule", ""))
    event_zh = EVENT_ZH.get(payload.get("event"), payload.get("event", ""))
    text = f"【危化品预警】{level.name_zh}·{rule_zh}·{incident.get('subject_id', '')}：{event_zh}（{incident.get('id', '')}）"
    return {"delivery_id": payload.get("delivery_id", ""), "event": payload.get("event", ""), "event_zh": event_zh,
            "incident_id": incident.get("id", ""), "level": level.key, "level_zh": level.name_zh,
            "rule": incident.get("rule", ""), "rule_zh": rule_zh, "subject_id": incident.get("subject_id", ""),
            "recipient_id": transition.get("recipient_id", ""), "at": transition.get("at", ""), "text": text}


def render(subscription: dict, payload: dict) -> tuple[bytes, str]:
    """(body, content type) of a delivery for its subscription's profile."""
    if subscription.get("profile") == "sms":
        content_type = subscription.get("content_type") or "application/json; charset=utf-8"
        values = sms_values(payload)
        if "json" in content_type:
            values = {k: json.dumps(str(v), ensure_ascii=False)[1:-1] for k, v in values.items()}
        return string.Template(subscription["body_template"]).safe_substitute(values).encode("utf-8"), content_type
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")
    return body, subscription.get("content_type") or "application/json; charset=utf-8"


def post(delivery: dict, subscription: dict, timeout_s: float) -> Outcome:
    """One attempt: POST the delivery to the subscription's URL."""
    body, content_type = render(subscription, delivery["payload"])
    headers = {"Content-Type": content_type, "User-Agent": "hazmap-sender",
               "X-Hazmap-Delivery": delivery["delivery_id"], "X-Hazmap-Event": delivery["event"],
               "X-Hazmap-Signature": signature(subscription.get("secret"), body),
               **(subscription.get("headers") or {})}
    request = urllib.request.Request(delivery["target"], data=body, headers=headers, method="POST")
    started = time.perf_counter()

    def took() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = response.read(4096).decode("utf-8", "replace")
            return Outcome("ok", code=response.status, answer=answer, latency_ms=took())
    except urllib.error.HTTPError as exc:
        answer = exc.read(4096).decode("utf-8", "replace") if exc.fp is not None else exc.reason
        retried = exc.code in RETRIED_HTTP or exc.code >= 500
        return Outcome("http_error" if retried else "refused", code=exc.code, answer=str(answer),
                       latency_ms=took(), final=not retried)
    except (TimeoutError, socket.timeout) as exc:
        return Outcome("timeout", answer=f"no answer within {timeout_s:g} s ({exc})", latency_ms=took())
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            return Outcome("timeout", answer=f"no answer within {timeout_s:g} s", latency_ms=took())
        return Outcome("connection", answer=str(exc.reason), latency_ms=took())
    except (http.client.HTTPException, ConnectionError, OSError) as exc:  # closed mid-answer, reset …
        return Outcome("connection", answer=f"{type(exc).__name__}: {exc}", latency_ms=took())
