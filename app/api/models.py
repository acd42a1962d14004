"""The REST API's typed request and response models (pydantic v2): the OpenAPI document is
generated from them by spectree, and every request and response is checked against them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_PAGE_SIZE = 200
Id = Field(min_length=1, max_length=128, pattern=r"^[\w.:-]+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    error: str = Field(description="what was wrong")
    status: int
    details: list[Any] | None = None


class Health(BaseModel):
    status: str
    uptime_s: float


class TokenRequest(Strict):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    token: str = Field(description="the bearer token: shown once; send as `Authorization: Bearer …`")
    token_id: str = Field(description="its public id (what a revocation names)")
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime | None = Field(description="null: never (kiosk)")
    user: str
    role: str


class Revoked(BaseModel):
    revoked: str


class IncidentQuery(Strict):
    status: Literal["pushed", "signed", "disposed", "closed"] | None = None
    level: Literal["red", "orange", "yellow", "blue", "1", "2", "3", "4"] | None = None
    rule: str | None = Field(None, max_length=64)
    department: str | None = Field(None, max_length=128, description="pushed to this department (DEPT-…)")
    district: str | None = Field(None, max_length=16, description="district adcode")
    enterprise: str | None = Field(None, max_length=128, description="pushed to this enterprise (ENT-…)")
    bbox: str | None = Field(None, max_length=120, pattern=r"^-?\d{1,3}(\.\d+)?(,-?\d{1,3}(\.\d+)?){3}$",
                             description="min_lon,min_lat,max_lon,max_lat (WGS-84)")
    from_: datetime | None = Field(None, alias="from", description="first seen at or after (ISO 8601 with offset)")
    to: datetime | None = Field(None, description="first seen before")
    page: int = Field(1, ge=1, le=100_000)
    page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class IncidentSummary(BaseModel):
    id: str
    rule: str
    subject_id: str
    subject_kind: str
    level: str
    severity: int
    status: str
    state: str
    first_time: datetime
    last_time: datetime
    end_time: datetime | None = None
    lon: float | None = None
    lat: float | None = None
    district_adcode: str | None = None
    episodes: int
    escalations: int


class IncidentPage(BaseModel):
    items: list[IncidentSummary]
    page: int
    page_size: int
    total: int


class Recipient(BaseModel):
    recipient_id: str
    recipient_kind: str
    role: str | None = None
    state: str
    tier: int
    upgraded_to: int | None = None  # the level an upgrade of the incident pushed it at (None: routed at opening)
    pushed_at: datetime
    sign_deadline: datetime
    signed_at: datetime | None = None
    signed_by: str | None = None
    disposed_at: datetime | None = None
    disposed_by: str | None = None
    outcome: str | None = None
    measures: str | None = None
    note: str | None = None
    closed_at: datetime | None = None
    supervised_by: str | None = None
    supervision_deadline: datetime | None = None


class Transition(BaseModel):
    at: datetime
    action: str
    recipient_id: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    actor: str
    note: str | None = None


class IncidentDetail(BaseModel):
    incident: IncidentSummary
    evidence: dict[str, Any]
    recipients: list[Recipient]
    history: list[Transition]


class ActIn(Strict):
    recipient: str | None = Field(None, max_length=128, description="the recipient row acted on: a duty officer "
                                  "names it when several are pending; others act on their own")
    note: str | None = Field(None, max_length=2000)


class DisposeIn(ActIn):
    outcome: Literal["resolved", "rectified", "penalised", "referred", "false_alarm"]
    measures: str | None = Field(None, max_length=2000)


class SuperviseIn(Strict):
    department: str | None = Field(None, max_length=128, description="the ordering department (DEPT-…); a "
                                   "department user's own by default")
    deadline: datetime
    note: str | None = Field(None, max_length=2000)


class TextIn(Strict):
    message: str = Field(min_length=1, max_length=500)


class ActOut(BaseModel):
    incident_id: str
    changed: list[dict[str, Any]]


class InboxQuery(Strict):
    recipient: str | None = Field(None, max_length=128, description="a duty officer names whose inbox")
    all: bool = False


class InboxRow(BaseModel):
    incident_id: str
    recipient_id: str
    state: str
    level: str
    rule: str
    subject_id: str
    pushed_at: datetime
    sign_deadline: datetime


class Inbox(BaseModel):
    recipient: str
    items: list[InboxRow]


class KpiQuery(Strict):
    by: Literal["department", "district", "enterprise", "rule", "level", "day"] = "department"
    from_: datetime | None = Field(None, alias="from")
    to: datetime | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Kpis(BaseModel):
    by: str
    rows: list[dict[str, Any]]


class Related(BaseModel):
    id: str
    layer: str
    relation: str


class EntityOut(BaseModel):
    id: str
    layer: str
    properties: dict[str, Any]
    lon: float | None = None
    lat: float | None = None
    related: list[Related]


class SpanQuery(Strict):
    from_: datetime = Field(alias="from")
    to: datetime

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Track(BaseModel):
    vehicle_id: str
    time: list[datetime]
    lon: list[float]
    lat: list[float]
    speed_kmh: list[float | None]


class Readings(BaseModel):
    point_id: str
    time: list[datetime]
    value: list[float | None]


class DeliveryQuery(Strict):
    status: Literal["pending", "sent", "dead"] | None = None
    limit: int = Field(100, ge=1, le=MAX_PAGE_SIZE)


class Deliveries(BaseModel):
    items: list[dict[str, Any]]
    available: bool = Field(description="false: this server has no delivery log (channels not installed)")
