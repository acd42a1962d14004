"""The REST API: a Flask blueprint on the Dash app's server, documented and checked by spectree.

`install_api(web, people, world, settings)` registers `/api/…` (docs/api.md lists the routes)
and serves the OpenAPI document generated from app/api/models.py at `/api/openapi.json`.
Every route asks app/permissions.can; what the caller may not see answers 404. Errors are
JSON `{"error": …, "status": …}`: 400 bad value, 401 not logged in, 404 not found (or not
yours), 409 an illegal transition, 413 body too large, 422 a request that does not match the
schema, 429 too many failed logins. Nothing answers 500 on bad input.
"""

from __future__ import annotations

import json
import logging

import flask
import numpy as np
import pandas as pd
import sqlalchemy as sa
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecuritySchemeData, SecureType
from werkzeug.exceptions import HTTPException

from app.api import models as m
from app.auth import API_MAX_BODY_BYTES, audit_actor, client_address, current_user
from app.permissions import Scopes, Target, can, scope
from data.people import Actor, AuthError, LockedError, PeopleStore
from spatial.model import LAYER_SPECS

log = logging.getLogger(__name__)

MAX_SPAN_DAYS = 366  # incident lists and KPIs
MAX_TRACK_HOURS = 48  # tracks and readings: a day or two at a time
_ERRORS = {f"HTTP_{code}": m.Error for code in (400, 401, 404, 409, 413, 422, 429)}


def _spec() -> SpecTree:
    return SpecTree(
        "flask", title="hazmap API", version="1", path="api/docs", mode="strict", annotations=False,
        validation_error_status=422,
        security_schemes=[SecurityScheme(name="bearer",
                                         data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer"))],
        security={"bearer": []},
        before=_reshape_validation_error,
    )


def _reshape_validation_error(_req, resp, error, _instance, *_rest):
    """spectree's 422 body is pydantic's error list: wrap it as {"error", "status", "details"}."""
    if error is not None and resp is not None:
        details = json.loads(resp.get_data() or b"[]")
        first = details[0] if details else {}
        where = ".".join(str(p) for p in first.get("loc", [])) or "request"
        resp.set_data(json.dumps({"error": f"{where}: {first.get('msg', 'invalid')}", "status": 422,
                                  "details": details}, default=str))
        resp.mimetype = "application/json"


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str, **extra) -> flask.Response:
    response = flask.jsonify(error=message, status=status, **extra)
    response.status_code = status
    return response


def _json_value(v):
    if v is None:
        return None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, (list, dict, str, int, float, bool)):
        return v
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return str(v)


def _records(frame: pd.DataFrame, columns=None) -> list[dict]:
    frame = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _utc(value) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ApiError(400, f"time {value!s} needs a UTC offset (e.g. +08:00 or Z)")
    return ts.tz_convert("UTC")


def _span(start, end, max_days: float) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    start, end = _utc(start), _utc(end)
    if start is not None and end is not None:
        if end <= start:
            raise ApiError(400, f"'to' ({end.isoformat()}) must be after 'from' ({start.isoformat()})")
        if end - start > pd.Timedelta(days=max_days):
            raise ApiError(400, f"the span from 'from' to 'to' is at most {max_days:g} days")
    return start, end


class Api:
    def __init__(self, people: PeopleStore, world, settings, scopes: Scopes | None = None):
        from app.cli_incidents import incident_settings

        self.people = people
        self.store = people.store
        self.world = world
        self.settings = settings
        self.incident_settings = incident_settings(settings)
        self.scopes = scopes or Scopes(world, people.store)  # who sees which features (app/permissions.py)
        self.frames = {name: world.table(name).set_index("id", drop=False) for name in LAYER_SPECS
                       if len(world.table(name))}
        self.prefixes = sorted(((spec.id_prefix, name) for name, spec in LAYER_SPECS.items() if spec.id_prefix),
                               key=lambda p: -len(p[0]))

    def incidents(self, user=None):
        from data.incidents import IncidentStore

        audit = self.people.audit_hook(Actor.of(user, client_address())) if user is not None else None
        return IncidentStore(self.store, self.world, self.incident_settings, audit=audit)

    # -- helpers --------------------------------------------------------------------------------

    def user(self):
        user = current_user()
        if user is None:
            raise ApiError(401, "log in: POST /api/token for a bearer token")
        return user

    def visible_incident(self, user, incident_id: str, action: str = "incident.read") -> frozenset[str]:
        """The incident's recipients, when `user` may see it (and do `action`); else 404."""
        from data.incidents import incident_recipients as r, incidents as t

        with self.store.engine.connect() as connection:  # two small reads, not IncidentStore.show's frames
            exists = connection.execute(sa.select(t.c.id).where(t.c.id == str(incident_id))).first()
            recipients = frozenset(str(v) for v in connection.execute(
                sa.select(r.c.recipient_id).where(r.c.incident_id == str(incident_id))).scalars())
        target = Target(recipients=recipients)
        if exists is None or not can(user, "incident.read", target):
            raise ApiError(404, f"no incident {incident_id!r}")
        if action != "incident.read" and not can(user, action, target):
            raise ApiError(404, f"no incident {incident_id!r}")  # visible but not yours to act on: not found
        return recipients

    def layer_of(self, feature_id: str) -> str | None:
        for prefix, name in self.prefixes:
            if feature_id.startswith(prefix) and name in self.frames and feature_id in self.frames[name].index:
                return name
        return None

    def visible_feature(self, user, feature_id: str, action: str, layer: str | None = None) -> str:
        """The feature's layer, when `user` may do `action` on it (app/permissions.Scopes, the
        screen's own decision); else 404."""
        found = self.layer_of(feature_id)
        if found is None or (layer is not None and found != layer):
            raise ApiError(404, f"no {layer or 'feature'} {feature_id!r}")
        if not can(user, action) or not self.scopes.may_see(user, feature_id):
            raise ApiError(404, f"no {layer or 'feature'} {feature_id!r}")
        return found


def _summary(row: dict) -> dict:
    keys = m.IncidentSummary.model_fields
    return {k: _json_value(row.get(k)) for k in keys}


def install_api(web, people: PeopleStore, world, settings) -> SpecTree:
    """The API blueprint and its OpenAPI document on a Dash app's server."""
    api_spec = _spec()
    api = Api(people, world, settings, web.server.extensions.get("hazmap_scopes"))  # one cache: screen and API
    bp = flask.Blueprint("hazmap_api", __name__)

    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return _error(exc.status, exc.message)

    # -- tokens ---------------------------------------------------------------------------------

    @bp.post("/api/token")
    @api_spec.validate(json=m.TokenRequest, resp=Response(HTTP_200=m.TokenOut, **_ERRORS), security={})
    def token():
        """Log in for a bearer token (expires; a kiosk's never)."""
        body = flask.request.context.json
        try:
            user = people.authenticate(body.username, body.password, address=client_address())
        except LockedError as exc:
            response = _error(429, str(exc))
            response.headers["Retry-After"] = str(int(exc.retry_after_s) + 1)
            return response
        except AuthError as exc:
            return _error(401, str(exc))
        issued = people.issue_token(user, kind="api", address=client_address(), ttl_s=settings.api_token_ttl_s)
        return m.TokenOut(token=issued["token"], token_id=issued["id"], expires_at=issued["expires_at"],
                          user=user.name, role=user.role)

    @bp.delete("/api/token")
    @api_spec.validate(resp=Response(HTTP_200=m.Revoked, **_ERRORS))
    def revoke_token():
        """Revoke the token this request carries."""
        user = api.user()
        token_id = flask.g.get("hazmap_token_id")
        if token_id is None:
            raise ApiError(400, "this request carries no bearer token to revoke")
        people.revoke_token(token_id, by=Actor.of(user, client_address()), owner=user.name)
        return m.Revoked(revoked=token_id)

    # -- incidents ------------------------------------------------------------------------------

    @bp.get("/api/incidents")
    @api_spec.validate(query=m.IncidentQuery, resp=Response(HTTP_200=m.IncidentPage, **_ERRORS))
    def list_incidents():
        """Incidents, newest first, filtered and paged; a department or enterprise sees its own."""
        user = api.user()
        if not can(user, "incident.read"):
            raise ApiError(404, "not found")
        q = flask.request.context.query
        start, end = _span(q.from_, q.to, MAX_SPAN_DAYS)
        own = scope(user)
        from data.incidents import IncidentError

        try:
            frame = api.incidents().list(status=q.status, level=q.level, department=q.department,
                                         recipient_id=own, since=start)
        except IncidentError as exc:
            raise ApiError(400, str(exc)) from None
        keep = np.ones(len(frame), dtype=bool)
        if q.enterprise:
            keep &= frame["id"].isin(_pushed_to(api, q.enterprise)).to_numpy()
        if q.rule:
            keep &= (frame["rule"] == q.rule).to_numpy()
        if q.district:
            keep &= (frame["district_adcode"] == q.district).to_numpy()
        if end is not None:
            keep &= (frame["first_time"] < end).to_numpy()
        if q.bbox:
            try:
                x0, y0, x1, y1 = (float(v) for v in q.bbox.split(","))
            except ValueError:
                raise ApiError(400, f"bbox is four numbers min_lon,min_lat,max_lon,max_lat, got {q.bbox!r}") from None
            if not (x0 < x1 and y0 < y1):
                raise ApiError(400, "bbox is min_lon,min_lat,max_lon,max_lat with min < max")
            lon, lat = frame["lon"].to_numpy(float), frame["lat"].to_numpy(float)
            keep &= (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)
        frame = frame[keep]
        first = (q.page - 1) * q.page_size
        page = frame.iloc[first:first + q.page_size]
        return m.IncidentPage(items=[_summary(r) for r in page.to_dict("records")], page=q.page,
                              page_size=q.page_size, total=int(len(frame)))

    @bp.get("/api/incidents/<incident_id>")
    @api_spec.validate(resp=Response(HTTP_200=m.IncidentDetail, **_ERRORS))
    def get_incident(incident_id: str):
        """One incident with its evidence, recipients and history."""
        from data.incidents import IncidentError

        api.visible_incident(api.user(), incident_id)
        try:
            shown = api.incidents().show(incident_id)
        except IncidentError:
            raise ApiError(404, f"no incident {incident_id!r}") from None
        inc = shown["incident"]
        return m.IncidentDetail(
            incident=_summary(inc), evidence=_json_safe(inc.get("evidence") or {}),
            recipients=_records(shown["recipients"], m.Recipient.model_fields),
            history=_records(shown["history"], m.Transition.model_fields))

    def _act(incident_id: str, action: str, body) -> m.ActOut:
        from data.incidents import IncidentError

        user = api.user()
        recipients = set(api.visible_incident(user, incident_id))
        if can(user, "incident.act_for_any"):
            recipient = body.recipient
            if recipient is not None and recipient not in recipients:
                raise ApiError(404, f"{incident_id} was not pushed to {recipient}")
        else:
            recipient = user.recipient_id
            if body.recipient not in (None, recipient) or not can(
                    user, "incident.act", Target(recipients=frozenset(recipients), recipient_id=recipient)):
                raise ApiError(404, f"no incident {incident_id!r} for {recipient}")
        store = api.incidents(user)
        try:
            if action == "sign":
                done = store.sign([incident_id], recipient, user.name, note=body.note)
            elif action == "dispose":
                done = store.dispose(incident_id, recipient, user.name, body.measures, body.note, body.outcome)
            else:
                done = store.close(incident_id, recipient, user.name, note=body.note)
        except IncidentError as exc:
            raise _incident_error(exc) from None
        return m.ActOut(incident_id=incident_id, changed=_records(done))

    @bp.post("/api/incidents/<incident_id>/sign")
    @api_spec.validate(json=m.ActIn, resp=Response(HTTP_200=m.ActOut, **_ERRORS))
    def sign(incident_id: str):
        """签收: sign for the incident (the caller's recipient row; a duty officer names it)."""
        return _act(incident_id, "sign", flask.request.context.json)

    @bp.post("/api/incidents/<incident_id>/dispose")
    @api_spec.validate(json=m.DisposeIn, resp=Response(HTTP_200=m.ActOut, **_ERRORS))
    def dispose(incident_id: str):
        """处置: measures, a note (required for red and orange), the outcome."""
        return _act(incident_id, "dispose", flask.request.context.json)

    @bp.post("/api/incidents/<incident_id>/close")
    @api_spec.validate(json=m.ActIn, resp=Response(HTTP_200=m.ActOut, **_ERRORS))
    def close(incident_id: str):
        """办结: close a disposed incident."""
        return _act(incident_id, "close", flask.request.context.json)

    @bp.post("/api/incidents/<incident_id>/supervise")
    @api_spec.validate(json=m.SuperviseIn, resp=Response(HTTP_200=m.ActOut, **_ERRORS))
    def supervise(incident_id: str):
        """督办: order the incident's enterprise to act by a deadline."""
        from data.incidents import IncidentError

        user = api.user()
        body = flask.request.context.json
        api.visible_incident(user, incident_id, "incident.supervise")
        department = body.department if can(user, "incident.act_for_any") else user.department_id
        if body.department not in (None, department):
            raise ApiError(404, f"no department {body.department!r} of yours")
        if department is None:
            raise ApiError(400, "name the ordering department (department: DEPT-…)")
        try:
            n = api.incidents(user).supervise(incident_id, department, user.name, _utc(body.deadline), body.note)
        except IncidentError as exc:
            raise _incident_error(exc) from None
        return m.ActOut(incident_id=incident_id, changed=[{"supervised": n, "department": department}])

    @bp.post("/api/incidents/<incident_id>/text")
    @api_spec.validate(json=m.TextIn, resp=Response(HTTP_200=m.ActOut, **_ERRORS))
    def text(incident_id: str):
        """A JT/T 808 text to the incident's truck (through the channels' driver line)."""
        user = api.user()
        body = flask.request.context.json
        api.visible_incident(user, incident_id, "incident.text")
        try:
            from data.channels.settings import ChannelError
            from data.channels.store import DeliveryStore
        except ImportError:
            raise ApiError(404, "this server has no delivery channels") from None
        try:
            delivery = DeliveryStore(api.store).request_text(incident_id, body.message, user.name)
        except ChannelError as exc:
            raise ApiError(409, str(exc)) from None
        people.record(Actor.of(user, client_address()), "incident.text", incident_id,
                      details={"delivery_id": delivery})
        return m.ActOut(incident_id=incident_id, changed=[{"delivery_id": delivery}])

    @bp.get("/api/inbox")
    @api_spec.validate(query=m.InboxQuery, resp=Response(HTTP_200=m.Inbox, **_ERRORS))
    def inbox():
        """What the caller's department or enterprise must act on (a duty officer names one)."""
        user = api.user()
        q = flask.request.context.query
        if not can(user, "inbox.read"):
            raise ApiError(404, "not found")
        if can(user, "incident.act_for_any"):
            recipient = q.recipient
            if not recipient:
                raise ApiError(400, "name the inbox: ?recipient=DEPT-… or ENT-…")
        else:
            recipient = user.recipient_id
            if q.recipient not in (None, recipient):
                raise ApiError(404, f"no inbox {q.recipient!r}")
        frame = api.incidents().inbox(recipient, pending_only=not q.all)
        return m.Inbox(recipient=recipient, items=_records(frame, m.InboxRow.model_fields))

    @bp.get("/api/kpis")
    @api_spec.validate(query=m.KpiQuery, resp=Response(HTTP_200=m.Kpis, **_ERRORS))
    def kpis():
        """Handling figures by department, district, enterprise, rule, level or day; a department
        or enterprise gets its own row."""
        from data.incidents import IncidentError

        user = api.user()
        if not can(user, "kpis.read"):
            raise ApiError(404, "not found")
        q = flask.request.context.query
        start, end = _span(q.from_, q.to, MAX_SPAN_DAYS)
        own = scope(user)
        if own is not None and q.by != user.role:
            raise ApiError(404, f"a {user.role} user sees its own figures: by={user.role}")
        if not _any_incident(api, start, end):  # spatial/incidents/kpis.py fails on no incidents at all
            return m.Kpis(by=q.by, rows=[])
        try:
            frame = api.incidents().kpis(by=q.by, since=start, until=end)
        except IncidentError as exc:
            raise ApiError(400, str(exc)) from None
        except KeyError:  # the same when no recipient of that kind is in the span: no rows
            return m.Kpis(by=q.by, rows=[])
        if own is not None:
            frame = frame[frame[q.by].astype(str) == own]
        return m.Kpis(by=q.by, rows=_records(frame))

    # -- the world and its live data -----------------------------------------------------------

    @bp.get("/api/entities/<feature_id>")
    @api_spec.validate(resp=Response(HTTP_200=m.EntityOut, **_ERRORS))
    def entity(feature_id: str):
        """Any world feature (entity, hazard source, point, vehicle, waybill, site …) with its
        related features."""
        user = api.user()
        layer = api.visible_feature(user, feature_id, "entity.read")
        row = api.frames[layer].loc[feature_id]
        props = {k: _json_value(v) for k, v in row.items() if k not in ("geometry", "h3_cell")}
        geom = row.get("geometry")
        point = geom.representative_point() if geom is not None and not geom.is_empty else None
        return m.EntityOut(id=feature_id, layer=layer, properties=_json_safe(props),
                           lon=None if point is None else float(point.x), lat=None if point is None else float(point.y),
                           related=_related(api, layer, feature_id, user))

    @bp.get("/api/vehicles/<vehicle_id>/track")
    @api_spec.validate(query=m.SpanQuery, resp=Response(HTTP_200=m.Track, **_ERRORS))
    def track(vehicle_id: str):
        """A truck's stored pings in [from, to) (at most 48 h)."""
        user = api.user()
        api.visible_feature(user, vehicle_id, "track.read", "vehicles")
        q = flask.request.context.query
        start, end = _span(q.from_, q.to, MAX_TRACK_HOURS / 24)
        pings = api.store.read_pings(start, end, [vehicle_id])
        return m.Track(vehicle_id=vehicle_id, time=[t.isoformat() for t in pings["time"]],
                       lon=pings["lon"].astype(float).tolist(), lat=pings["lat"].astype(float).tolist(),
                       speed_kmh=[_json_value(v) for v in pings["speed_kmh"]])

    @bp.get("/api/points/<point_id>/readings")
    @api_spec.validate(query=m.SpanQuery, resp=Response(HTTP_200=m.Readings, **_ERRORS))
    def readings(point_id: str):
        """A monitoring point's stored readings in [from, to) (at most 48 h)."""
        user = api.user()
        api.visible_feature(user, point_id, "readings.read", "monitoring_points")
        q = flask.request.context.query
        start, end = _span(q.from_, q.to, MAX_TRACK_HOURS / 24)
        frame = api.store.read_readings(start, end, [point_id])
        return m.Readings(point_id=point_id, time=[t.isoformat() for t in frame["time"]],
                          value=[_json_value(v) for v in frame["value"]])

    @bp.get("/api/deliveries")
    @api_spec.validate(query=m.DeliveryQuery, resp=Response(HTTP_200=m.Deliveries, **_ERRORS))
    def deliveries():
        """The delivery log (channels): newest first."""
        user = api.user()
        if not can(user, "deliveries.read"):
            raise ApiError(404, "not found")
        q = flask.request.context.query
        try:
            from data.channels.store import DeliveryStore
        except ImportError:
            return m.Deliveries(items=[], available=False)
        frame = DeliveryStore(api.store).list(status=q.status, limit=q.limit)
        return m.Deliveries(items=[_json_safe(r) for r in _records(frame)], available=True)

    web.server.register_blueprint(bp)
    web.server.extensions["hazmap_api"] = api
    _document_health(api_spec, web)
    _json_errors(web)
    # spectree's UI pages live under /api/docs/; the document itself at /api/openapi.json
    api_spec.register(web.server)
    web.server.add_url_rule("/api/openapi.json", "hazmap_openapi",
                            lambda: flask.current_app.json.response(api_spec.spec))
    return api_spec


def _any_incident(api: Api, start, end) -> bool:
    from data.incidents import incidents as t

    conditions = ([t.c.first_time >= start] if start is not None else []) + \
        ([t.c.first_time < end] if end is not None else [])
    with api.store.engine.connect() as connection:
        return connection.execute(sa.select(t.c.id).where(*conditions).limit(1)).first() is not None


def _pushed_to(api: Api, recipient: str) -> list[str]:
    from data.incidents import incident_recipients as r

    with api.store.engine.connect() as connection:
        return [str(v) for v in connection.execute(sa.select(r.c.incident_id).where(r.c.recipient_id == recipient))
                .scalars()]


_RELATIONS = {  # layer -> (column holding a related id, relation name)
    "hazard_sources": [("entity_id", "entity")],
    "monitoring_points": [("hazard_source_id", "hazard_source")],
    "vehicles": [("carrier_id", "carrier")],
    "waybills": [("vehicle_id", "vehicle"), ("loading_site_id", "loading_site"),
                 ("unloading_site_id", "unloading_site")],
    "entities": [("park_id", "park")],
}
_CHILDREN = {  # layer -> (child layer, its column naming the parent, relation)
    "entities": [("hazard_sources", "entity_id", "hazard_source"), ("vehicles", "carrier_id", "vehicle")],
    "hazard_sources": [("monitoring_points", "hazard_source_id", "monitoring_point")],
    "vehicles": [("waybills", "vehicle_id", "waybill")],
}
MAX_RELATED = 500


def _related(api: Api, layer: str, feature_id: str, user) -> list[dict]:
    out = []
    row = api.frames[layer].loc[feature_id]
    for column, relation in _RELATIONS.get(layer, []):
        value = row.get(column)
        if isinstance(value, str) and value:
            found = api.layer_of(value)
            if found:
                out.append({"id": value, "layer": found, "relation": relation})
    for child, column, relation in _CHILDREN.get(layer, []):
        frame = api.frames.get(child)
        if frame is None or column not in frame.columns:
            continue
        ids = frame.index[(frame[column] == feature_id).to_numpy()]
        out += [{"id": str(i), "layer": child, "relation": relation} for i in ids[:MAX_RELATED]]
    visible = api.scopes.visible(user)  # a related feature the user may not see is not named either
    if visible is not None:
        out = [r for r in out if r["id"] in visible.features or r["id"] in api.scopes.public_ids]
    return out


def _json_safe(value):
    return json.loads(json.dumps(value, default=str, allow_nan=True).replace("NaN", "null"))


def _incident_error(exc) -> ApiError:
    message = str(exc)
    if "cannot " in message or "left to supervise" in message:  # the state forbids it
        return ApiError(409, message)
    if "was not pushed to" in message or message.startswith("no incident"):
        return ApiError(404, message)
    return ApiError(422, message)


def _document_health(api_spec: SpecTree, web) -> None:
    """/api/health stays app/ops.py's route; wrapping its view documents it (open: no security)."""
    endpoint = next((r.endpoint for r in web.server.url_map.iter_rules() if r.rule.endswith("/api/health")), None)
    if endpoint is None:
        return
    view = web.server.view_functions[endpoint]
    wrapped = api_spec.validate(resp=Response(HTTP_200=m.Health), security={})(view)
    wrapped.__doc__ = "Liveness: the process answers (open)."
    web.server.view_functions[endpoint] = wrapped


def _json_errors(web) -> None:
    """Unmatched /api/ paths, wrong methods and werkzeug's own refusals answer JSON."""
    server = web.server

    @server.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.response is not None or not flask.request.path.startswith("/api/"):
            return exc  # spectree's own 422 (abort with a response), or the screen's
        if exc.code == 413:
            return _error(413, f"the body is too large (at most {API_MAX_BODY_BYTES} bytes)")
        return _error(exc.code or 500, exc.description or exc.name)


def may_see(feature_id: str) -> bool:
    """For the screen's callbacks and routes: may the request's user see this world feature?
    True on a screen without people (no API installed) and for the unscoped roles."""
    scopes = flask.current_app.extensions.get("hazmap_scopes") if flask.has_app_context() else None
    if scopes is None:
        return True
    return scopes.may_see(current_user(), str(feature_id))
