"""Tokens, logins, lock-outs, CSRF, security headers and the screen's gate, on both stores."""

from __future__ import annotations

import logging
import re

import pandas as pd
import pytest

from data.people import Actor, AuthError, LockedError, PeopleSettings, PeopleStore
from tests.api.conftest import PASSWORD, cheap_hasher

ADMIN = Actor("test", "admin", "test")


def _login_form(client, next_path="/"):
    page = client.get(f"/login?next={next_path}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def _log_in(client, user="dept", password=PASSWORD, next_path="/"):
    token = _login_form(client, next_path)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token,
                                       "next": next_path})


def test_a_token_for_a_password_expires_and_can_be_revoked(shared_env):
    env = shared_env
    client = env.client
    issued = client.post("/api/token", json={"username": "dept", "password": PASSWORD}).get_json()
    expires = pd.Timestamp(issued["expires_at"])
    assert issued["token_type"] == "bearer" and issued["role"] == "department"
    assert pd.Timedelta(minutes=59) < expires - pd.Timestamp.now(tz="UTC") <= pd.Timedelta(hours=1)
    auth = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/api/incidents", headers=auth).status_code == 200
    assert client.delete("/api/token", headers=auth).get_json() == {"revoked": issued["token_id"]}
    refused = client.get("/api/incidents", headers=auth)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    # the kiosk's never expires; an expired one is refused
    kiosk = client.post("/api/token", json={"username": "wall", "password": PASSWORD}).get_json()
    assert kiosk["expires_at"] is None
    user = env.people.user("dept")
    short = env.people.issue_token(user, ttl_s=60)
    assert env.people.resolve_token(short["token"])[0] == user
    assert env.people.resolve_token(short["token"], now=pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=2)) is None
    assert env.people.resolve_token(short["token"], kind="session") is None  # an API token is no session


def test_wrong_passwords_answer_alike_and_are_audited_without_the_password(shared_env, caplog):
    env = shared_env
    caplog.set_level(logging.DEBUG)
    secret = "not-the-password-42"
    wrong = env.client.post("/api/token", json={"username": "ent", "password": secret})
    unknown = env.client.post("/api/token", json={"username": "nobody", "password": secret})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json()["error"] == unknown.get_json()["error"] == "wrong user name or password"
    audit = env.people.read_audit(limit=50)
    failed = audit[audit["action"] == "login_failed"]
    assert {"ent", "nobody"} <= set(failed["target"]) and set(failed["address"]) == {"127.0.0.1"}
    assert secret not in audit.to_string() and secret not in caplog.text
    env.people.reset_password("ent", by=ADMIN, password=PASSWORD)  # clears the count for the other tests


def test_repeated_failures_slow_down_then_lock(shared_env):
    env = shared_env
    people = PeopleStore(env.store, hasher=cheap_hasher(),
                         settings=PeopleSettings(slow_after=2, slow_s=30.0, lock_after=4, lock_s=600.0))
    people.add_user("locky", "kiosk", by=ADMIN, password=PASSWORD)
    t = pd.Timestamp.now(tz="UTC")
    for i in range(2):
        with pytest.raises(AuthError):
            people.authenticate("locky", "wrong password!", now=t + pd.Timedelta(seconds=i))
    # the third attempt within 30 s is refused before the password is looked at, right or not
    with pytest.raises(LockedError) as slowed:
        people.authenticate("locky", PASSWORD, now=t + pd.Timedelta(seconds=5))
    assert 20 < slowed.value.retry_after_s <= 30
    assert people.authenticate("locky", PASSWORD, now=t + pd.Timedelta(seconds=40)).name == "locky"  # then fine
    for i in range(4):  # a success cleared the count: four failures in a row (waiting each time) lock it
        with pytest.raises(AuthError):
            people.authenticate("locky", "wrong password!", now=t + pd.Timedelta(minutes=5 * (i + 1)))
    with pytest.raises(LockedError) as locked:
        people.authenticate("locky", PASSWORD, now=t + pd.Timedelta(minutes=21))
    assert locked.value.retry_after_s > 500
    # through the API: 429 with Retry-After (the lock is on the wall clock there)
    response = env.client.post("/api/token", json={"username": "locky", "password": PASSWORD})
    assert response.status_code in (401, 429)
    audit = people.read_audit(actor="locky")
    assert {"login", "login_failed", "login_refused"} <= set(audit["action"])


def test_a_disabled_user_is_out_at_once(shared_env):
    env = shared_env
    env.people.add_user("leaver", "duty_officer", by=ADMIN, password=PASSWORD)
    token = env.client.post("/api/token", json={"username": "leaver", "password": PASSWORD}).get_json()["token"]
    assert env.client.get("/api/incidents", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    env.people.set_disabled("leaver", True, by=ADMIN)
    assert env.client.get("/api/incidents", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert env.client.post("/api/token", json={"username": "leaver", "password": PASSWORD}).status_code == 401
    assert list(env.people.read_audit(limit=1)["action"]) == ["login_failed"]


def test_the_screen_needs_a_login_and_state_changes_need_the_csrf_token(shared_env):
    env = shared_env
    client = env.client
    client.delete_cookie("hazmap_session")
    gate = client.get("/")
    assert gate.status_code == 302 and gate.headers["Location"].startswith("/login?next=")
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/assets/hazmap_map.js").status_code == 200  # code, not data: open
    forged = client.post("/login", data={"username": "dept", "password": PASSWORD, "csrf_token": "guess"})
    assert forged.status_code == 403 and "hazmap_session" not in forged.headers.get("Set-Cookie", "")
    assert _log_in(client, password="wrong password!").status_code == 401
    assert _log_in(client, user="de\x00pt").status_code == 401  # the form's name never reaches the database
    env.people.reset_password("dept", by=ADMIN, password=PASSWORD)
    logged = _log_in(client, next_path="/?x=1")
    assert logged.status_code == 302 and logged.headers["Location"] == "/?x=1"
    cookies = {c.key: c for c in client._cookies.values()}
    assert cookies["hazmap_session"].http_only and not cookies["_csrf_token"].http_only
    page = client.get("/")
    assert page.status_code == 200 and "_dash-config" in page.get_data(as_text=True)
    # a state-changing request carried by the session cookie needs the double-submit token
    url = f"/api/incidents/{env.incident}/sign"
    refused = client.post(url, json={})
    assert refused.status_code == 403 and "CSRF" in refused.get_json()["error"]
    assert client.post(url, json={}, headers={"X-CSRFToken": "0" * 64}).status_code == 403
    allowed = client.post(url, json={}, headers={"X-CSRFToken": cookies["_csrf_token"].value})
    assert allowed.status_code in (200, 409)
    assert client.post("/logout").status_code == 403  # logging out is a state change too
    out = client.post("/logout", headers={"X-CSRFToken": cookies["_csrf_token"].value})
    assert out.status_code == 302
    assert client.get("/").status_code == 302  # the session is revoked, not just forgotten
    assert list(env.people.read_audit(limit=1)["action"]) == ["logout"]


def test_no_open_redirect_after_login(shared_env):
    client = shared_env.client
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = _log_in(client, next_path=target)
        assert response.status_code == 302 and response.headers["Location"] == "/", target


def test_security_headers_and_json_errors(shared_env):
    client = shared_env.client
    for response in (client.get("/login"), client.get("/api/health"), client.get("/api/incidents")):
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "127.0.0.1:9" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    auth = shared_env.headers("duty")
    cases = [
        (client.get("/api/nothing-here", headers=auth), 404),
        (client.put("/api/incidents", headers=auth), 405),
        (client.post("/api/token", data="{not json", content_type="application/json"), 400),
        (client.post("/api/token", data=b"x" * 70_000, content_type="application/json"), 413),
        (client.get("/api/incidents?page_size=201", headers=auth), 422),
        (client.get("/api/incidents?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", headers=auth), 400),
        (client.get("/api/incidents?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", headers=auth), 400),
        (client.get(f"/api/vehicles/{shared_env.vehicle}/track?from=2026-11-01T00:00:00Z&to=2026-11-05T00:00:00Z",
                    headers=auth), 400),
        (client.post(f"/api/incidents/{shared_env.incident}/dispose", json={"outcome": "maybe"}, headers=auth), 422),
        # NUL: PostgreSQL text cannot hold it (found by schemathesis as a 500 on PostGIS)
        (client.post("/api/token", json={"username": "du\x00ty", "password": PASSWORD}), 400),
        (client.get("/api/incidents/INC-%00", headers=auth), 400),
        (client.get("/api/incidents?rule=speed%00ing", headers=auth), 400),
    ]
    for response, status in cases:
        body = response.get_json()
        assert response.status_code == status and isinstance(body["error"], str) and body["error"], body


def test_an_open_screen_is_a_read_only_kiosk_and_the_api_still_needs_a_token(shared_env, tmp_path):
    from app.settings import Settings
    from app.webapp import create_app

    env = shared_env
    settings = Settings(var_dir=tmp_path, auth_required=False, tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png")
    client = create_app(settings, env.world, env.world.fingerprint(), people=env.people).server.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/api/incidents").status_code == 401


def test_a_kiosk_login_outlives_the_browser_and_a_shift(shared_env):
    client = shared_env.client
    client.delete_cookie("hazmap_session")
    kiosk = _log_in(client, user="wall")
    duty = _log_in(client, user="duty")
    ages = [re.search(r"hazmap_session=[^;]+;.*?Max-Age=(\d+)", r.headers.get("Set-Cookie", "")).group(1)
            for r in (kiosk, duty)]
    assert int(ages[0]) >= 5 * 365 * 86400 and int(ages[1]) == 43200
