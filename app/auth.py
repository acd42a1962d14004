"""Login for the screen, bearer tokens for the API, CSRF and security headers, on the app's server.

`install_auth(web, people, settings)` adds to a Dash app's Flask server:

- `GET/POST /login` (a plain form, no Dash) and `POST /logout`. A successful login sets the
  session cookie `hazmap_session` (HttpOnly, SameSite=Lax, Secure over HTTPS): the secret of a
  "session" token (data/people.py), so a session is revocable and ends when its user is disabled.
- A gate before every request: open paths (health, readiness, metrics, login, the token
  endpoint, the OpenAPI document, static assets) pass; `/api/…` needs `Authorization: Bearer
  <token>` or a session and answers 401 JSON without; the screen and its routes need a session
  (a browser is sent to /login; Dash's own requests get 401). With `auth_required = false` the
  screen is open as a read-only kiosk (the API still needs a token).
- CSRF: a state-changing request authenticated by the session cookie must carry the double-
  submit token: the `_csrf_token` cookie (derived from the session secret, readable by the
  page's script) echoed in the `X-CSRFToken` header, which dash-renderer sends on its own with
  every callback, or in the login form's `csrf_token` field. Bearer-token calls carry no ambient
  credential and need none.
- Security headers on every response: a CSP that allows what Dash needs (its inline renderer
  start-up and style attributes) and the basemap's tile origin, frame-ancestors 'none',
  X-Content-Type-Options, Referrer-Policy; `Cache-Control: no-store` on the API and the login.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import urllib.parse

import flask

from app.permissions import can
from app.settings import Settings
from data.people import Actor, AuthError, LockedError, PeopleStore, User

SESSION_COOKIE = "hazmap_session"
CSRF_COOKIE = "_csrf_token"  # the name dash-renderer reads to send X-CSRFToken
CSRF_HEADER = "X-CSRFToken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/api/health", "/api/ready", "/metrics", "/login", "/api/token", "/api/openapi.json",
                        "/_favicon.ico", "/favicon.ico"})
OPEN_PREFIXES = ("/assets/", "/_dash-component-suites/")  # static files: code, not data
KIOSK = User("kiosk (open screen)", "kiosk")


def client_address() -> str | None:
    return flask.request.remote_addr


def current_user() -> User | None:
    """The user of the request being answered (None outside one, or not logged in)."""
    if not flask.has_request_context():
        return None
    return getattr(flask.g, "hazmap_user", None)


def request_visible():
    """What the request's user may see (app/permissions.Scopes.visible): None when it sees
    everything, and on a screen without people (no Scopes installed)."""
    scopes = flask.current_app.extensions.get("hazmap_scopes") if flask.has_app_context() else None
    return None if scopes is None else scopes.visible(current_user())


def csrf_for(session_secret: str) -> str:
    return hmac.new(session_secret.encode(), b"hazmap-csrf", hashlib.sha256).hexdigest()


class Auth:
    def __init__(self, people: PeopleStore, settings: Settings, prefix: str = "/"):
        self.people = people
        self.settings = settings
        self.prefix = prefix.rstrip("/")
        tiles = settings.basemap_layers()  # the basemap preset's tile server (none offline)
        self.csp = _csp(tiles[0]["url"] if tiles else "")

    # -- who is asking ------------------------------------------------------------------------

    def _identify(self) -> tuple[User | None, str | None]:
        """(user, how: 'bearer' | 'session' | 'open'), or (None, None)."""
        header = flask.request.headers.get("Authorization", "")
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() == "bearer":
                found = self.people.resolve_token(secret.strip(), "api")
                if found:
                    flask.g.hazmap_token_id = found[1]
                return (found[0], "bearer") if found else (None, None)
        secret = flask.request.cookies.get(SESSION_COOKIE)
        if secret:
            found = self.people.resolve_token(secret, "session")
            if found:
                return found[0], "session"
        return None, None

    def _local(self, path: str) -> str:
        return path[len(self.prefix):] if self.prefix and path.startswith(self.prefix) else path

    def gate(self):
        path = self._local(flask.request.path)
        user, how = self._identify()
        api = path.startswith("/api/")
        if user is None and not api and not self.settings.auth_required:
            user, how = KIOSK, "open"
        flask.g.hazmap_user, flask.g.hazmap_auth = user, how
        if api and flask.request.content_length and flask.request.content_length > API_MAX_BODY_BYTES:
            return _json_error(413, f"the body is {flask.request.content_length} bytes; at most "
                                    f"{API_MAX_BODY_BYTES} are taken")
        if api and ("\x00" in urllib.parse.unquote(flask.request.full_path)
                    or b"\\u0000" in flask.request.get_data(cache=True) or b"\x00" in flask.request.get_data()):
            # PostgreSQL text cannot hold NUL: refuse it here, for every route alike
            return _json_error(400, "NUL characters (\\u0000) are not allowed in a request")
        if api and flask.request.method not in SAFE_METHODS and flask.request.get_data(cache=True):
            if flask.request.get_json(silent=True) is None:  # spectree would read it as {}: say what is wrong
                return _json_error(400, "the body is not JSON (send a JSON object with Content-Type: "
                                        "application/json)")
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            # logging in (form or token) takes credentials from the body, not from the cookie
            if how == "session" and flask.request.method not in SAFE_METHODS and path not in ("/login", "/api/token"):
                return self._check_csrf()
            return None
        if user is None:
            if api or path.startswith("/_dash-") or flask.request.method not in SAFE_METHODS:
                return _json_error(401, "log in: POST /api/token for a bearer token, or /login for the screen",
                                   {"WWW-Authenticate": 'Bearer realm="hazmap"'})
            return flask.redirect(f"{self.prefix}/login?next={urllib.parse.quote(flask.request.full_path)}")
        if not api and not can(user, "screen.view"):
            return _json_error(404, "not found")
        rule = flask.request.url_rule
        if api and rule is not None and "<path:" in rule.rule:  # Dash's catch-all page route is no API
            return _json_error(404, f"no API route {path}; the routes are in /api/openapi.json")
        if how == "session" and flask.request.method not in SAFE_METHODS:
            return self._check_csrf()
        return None

    def _check_csrf(self):
        secret = flask.request.cookies.get(SESSION_COOKIE, "")
        expected = csrf_for(secret)
        sent = flask.request.headers.get(CSRF_HEADER) or flask.request.form.get("csrf_token", "")
        cookie = flask.request.cookies.get(CSRF_COOKIE, "")
        if not (hmac.compare_digest(sent, expected) and hmac.compare_digest(cookie, expected)):
            return _json_error(403, "missing or wrong CSRF token: send the _csrf_token cookie's value in the "
                                    "X-CSRFToken header")
        return None

    def headers(self, response: flask.Response) -> flask.Response:
        response.headers.setdefault("Content-Security-Policy", self.csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        path = self._local(flask.request.path)
        if path.startswith("/api/") or path == "/login":
            response.headers["Cache-Control"] = "no-store"
        return response

    # -- the login page -----------------------------------------------------------------------

    def login(self):
        if flask.request.method == "GET":
            return self._login_page()
        form = flask.request.form
        form_token, cookie_token = form.get("csrf_token", ""), flask.request.cookies.get("hazmap_login_csrf", "")
        if not form_token or not hmac.compare_digest(form_token, cookie_token):
            return self._login_page("The form expired: please try again.", 403)
        name, password = form.get("username", ""), form.get("password", "")
        try:
            user = self.people.authenticate(name, password, address=client_address())
        except LockedError as exc:
            response = self._login_page(str(exc), 429)
            response.headers["Retry-After"] = str(int(exc.retry_after_s) + 1)
            return response
        except AuthError as exc:
            return self._login_page(str(exc), 401)
        if not can(user, "screen.view"):
            return self._login_page("this user may not use the screen", 403)
        issued = self.people.issue_token(user, kind="session", address=client_address(),
                                         ttl_s=self.settings.session_ttl_s)
        target = _safe_next(form.get("next", ""), self.prefix)
        response = flask.redirect(target)
        secure = flask.request.is_secure
        # a kiosk's session never ends: its cookie outlives browser restarts on the wall's PC
        max_age = KIOSK_COOKIE_S if issued["expires_at"] is None else int(self.settings.session_ttl_s)
        response.set_cookie(SESSION_COOKIE, issued["token"], max_age=max_age, httponly=True, samesite="Lax",
                            secure=secure, path=self.prefix or "/")
        response.set_cookie(CSRF_COOKIE, csrf_for(issued["token"]), max_age=max_age, httponly=False,
                            samesite="Strict", secure=secure, path=self.prefix or "/")
        response.delete_cookie("hazmap_login_csrf", path=self.prefix + "/login")
        return response

    def logout(self):
        user = current_user()
        secret = flask.request.cookies.get(SESSION_COOKIE)
        if user is not None and secret and flask.g.get("hazmap_auth") == "session":
            self.people.end_session(secret, user, client_address())
        response = flask.redirect(f"{self.prefix}/login")
        response.delete_cookie(SESSION_COOKIE, path=self.prefix or "/")
        response.delete_cookie(CSRF_COOKIE, path=self.prefix or "/")
        return response

    def _login_page(self, message: str | None = None, status: int = 200) -> flask.Response:
        from layers.labels import LOGIN_LABELS

        chosen = flask.request.args.get("lang")  # the form's own switch; else the wall's switch cookie
        language = next((v for v in (chosen, flask.request.cookies.get("hazmap_language")) if v in ("zh", "en")),
                        self.settings.language)
        t = {k: v[0] if language == "zh" else v[1] for k, v in LOGIN_LABELS.items()}
        token = secrets.token_urlsafe(24)
        raw_next = flask.request.values.get("next", "")
        nxt = html.escape(_safe_next(raw_next, self.prefix))
        other = "en" if language == "zh" else "zh"
        switch = html.escape(f"{self.prefix}/login?" + urllib.parse.urlencode({"lang": other, "next": raw_next}))
        note = f'<p class="hz-login-error" role="alert">{html.escape(message)}</p>' if message else ""
        body = f"""<!doctype html><html lang="{'zh-CN' if language == 'zh' else 'en'}"><head><meta charset="utf-8">
<title>hazmap — {t['page']}</title><style>{_LOGIN_CSS}</style></head>
<body class="hz-login"><form method="post" action="{self.prefix}/login" class="hz-login-form">
<h1>{t['title']} · hazmap</h1>{note}
<label>{t['user']} <input name="username" autocomplete="username" required autofocus></label>
<label>{t['password']} <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="csrf_token" value="{token}"><input type="hidden" name="next" value="{nxt}">
<button type="submit">{t['submit']}</button><a href="{switch}" class="hz-login-language">{t['switch']}</a></form>
</body></html>"""
        response = flask.Response(body, status=status, mimetype="text/html")
        response.set_cookie("hazmap_login_csrf", token, httponly=True, samesite="Strict",
                            secure=flask.request.is_secure, path=self.prefix + "/login")
        if chosen == language:  # the choice is kept for the wall after the login (webapp.LANGUAGE_COOKIE)
            response.set_cookie("hazmap_language", language, max_age=10 * 365 * 24 * 3600, samesite="Lax")
        return response


API_MAX_BODY_BYTES = 64 * 1024
KIOSK_COOKIE_S = 10 * 365 * 24 * 3600
_LOGIN_CSS = ("body{background:#0b1622;color:#e6edf3;font:20px sans-serif;display:flex;justify-content:center;"
              "align-items:center;height:100vh;margin:0}form{display:flex;flex-direction:column;gap:14px;"
              "min-width:360px}input,button{font-size:20px;padding:8px}.hz-login-error{color:#ff6b6b}")


def _safe_next(target: str, prefix: str) -> str:
    """Only a path on this site (never //host or a scheme): no open redirect."""
    home = (prefix or "") + "/"
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return home
    parsed = urllib.parse.urlsplit(target)
    if parsed.scheme or parsed.netloc:
        return home
    return target.rstrip("?") or home


def _csp(tile_url: str) -> str:
    tiles = urllib.parse.urlsplit(tile_url.replace("{s}", "a"))
    tile_origin = f"{tiles.scheme}://{tiles.netloc}" if tiles.scheme and tiles.netloc else ""
    if "{s}" in tile_url:
        tile_origin = f"{tiles.scheme}://*.{tiles.netloc.split('.', 1)[-1]}"
    return ("default-src 'self'; "
            # dash-renderer starts from an inline script; dash's callbacks and h3-js use eval-free code
            # but plotly's bundle evaluates strings: 'unsafe-eval' until Dash ships a strict mode
            "script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data: blob: {tile_origin}".rstrip() + "; "
            "connect-src 'self'; worker-src 'self' blob:; font-src 'self' data:; object-src 'none'; "
            "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def _json_error(status: int, message: str, headers: dict | None = None) -> flask.Response:
    response = flask.jsonify(error=message, status=status)
    response.status_code = status
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def install_auth(web, people: PeopleStore, settings: Settings) -> Auth:
    """Login routes, the gate, CSRF and security headers on a Dash app's server."""
    prefix = web.config.routes_pathname_prefix.rstrip("/")
    auth = Auth(people, settings, prefix or "/")
    server = web.server
    server.add_url_rule(f"{prefix}/login", "hazmap_login", auth.login, methods=["GET", "POST"])
    server.add_url_rule(f"{prefix}/logout", "hazmap_logout", auth.logout, methods=["POST"])
    server.before_request(auth.gate)
    server.after_request(auth.headers)
    return auth


def audit_actor() -> Actor:
    user = current_user()
    return Actor(user.name if user else "-", user.role if user else None, client_address())
