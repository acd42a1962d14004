"""The one permission function: `can(user, action, target)`.

The REST API (app/api/), the screen's callbacks and routes (app/webapp.py through app/auth.py)
and the CLI's `--as NAME` all ask it; nothing else decides who may see or do what. What a user
may not see is answered as if it did not exist (404, "not found"), so ids cannot be probed.

Roles (issue 14):
- duty_officer: sees everything; signs, disposes and closes for any recipient (naming it),
  escalates, issues supervision orders, texts drivers.
- department: the incidents routed to its department and the entities they concern; acts on
  its own recipient row; supervises and texts on its incidents.
- enterprise: its own incidents, its vehicles (carrier_id), its sites, hazard sources and
  their monitoring points; acts on its own recipient row.
- admin: users and the routing table, the audit log and deliveries; no incident handling.
- kiosk: the wall screen, read-only, everything the wall shows.

`target` carries what the decision needs about the thing (a `Target`): the recipients an
incident was pushed to, the recipient row acted on, the enterprises that own an entity, the
recipients of the incidents about it. With no target the question is "may this role do this
kind of thing at all" (a list, then filtered by `scope`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from data.people import ROLES, User

ALL = frozenset(ROLES)
READERS = frozenset({"duty_officer", "department", "enterprise", "kiosk"})
# action -> the roles that may do it at all; the scoped roles are narrowed by the target below
RULES: dict[str, frozenset[str]] = {
    "screen.view": ALL,
    "incident.read": READERS,
    "incident.act": frozenset({"duty_officer", "department", "enterprise"}),  # sign, dispose, close
    "incident.act_for_any": frozenset({"duty_officer"}),  # name any recipient
    "incident.supervise": frozenset({"duty_officer", "department"}),
    "incident.text": frozenset({"duty_officer", "department"}),
    "incident.escalate": frozenset({"duty_officer"}),
    "inbox.read": frozenset({"duty_officer", "department", "enterprise"}),
    "kpis.read": READERS,
    "entity.read": READERS,  # any world feature (entity, vehicle, point, site …) with its related ones
    "track.read": READERS,
    "readings.read": READERS,
    "deliveries.read": frozenset({"duty_officer", "admin"}),
    "export": frozenset({"duty_officer", "department", "enterprise"}),
    "users.manage": frozenset({"admin"}),
    "routing.manage": frozenset({"admin"}),
    "audit.read": frozenset({"admin"}),
}
UNSCOPED = frozenset({"duty_officer", "admin", "kiosk"})
ACTIONS = tuple(RULES)


@dataclass(frozen=True)
class Target:
    recipients: frozenset[str] = field(default_factory=frozenset)  # an incident's recipients (DEPT-/ENT-)
    recipient_id: str | None = None  # the recipient row acted on
    owners: frozenset[str] = field(default_factory=frozenset)  # enterprises owning an entity
    concerned: frozenset[str] = field(default_factory=frozenset)  # recipients of incidents about it


def can(user: User | None, action: str, target: Target | None = None) -> bool:
    """May `user` do `action` (on `target`)? Unknown actions are a programming error."""
    roles = RULES.get(action)
    if roles is None:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    if user is None or user.disabled or user.role not in roles:
        return False
    if user.role in UNSCOPED or target is None:
        return True
    own = user.recipient_id
    if not own:
        return False
    if action == "incident.act":
        return target.recipient_id == own
    if action.startswith("incident.") or action == "inbox.read":
        return own in target.recipients
    if action in ("entity.read", "track.read", "readings.read", "export"):
        if user.role == "enterprise":
            return own in target.owners
        return own in target.concerned
    return own in target.recipients


def scope(user: User) -> str | None:
    """The recipient a scoped user's lists are narrowed to (None: unscoped)."""
    return None if user.role in UNSCOPED else user.recipient_id


class Ownership:
    """Which enterprises own each world feature, built once per World: an entity owns itself, its
    hazard sources and their monitoring points; a carrier its vehicles; a waybill belongs to its
    truck's carrier and to the enterprises it loads at and unloads at."""

    def __init__(self, world) -> None:
        owner: dict[str, set[str]] = {}

        def add(features, owners) -> None:
            for f, o in zip(pd.Series(features).astype(str), pd.Series(owners)):
                if isinstance(o, str) and o:
                    owner.setdefault(f, set()).add(o)

        add(world.entities["id"], world.entities["id"])
        hs = world.hazard_sources
        add(hs["id"], hs["entity_id"])
        mp = world.monitoring_points
        add(mp["id"], mp["hazard_source_id"].map(dict(zip(hs["id"], hs["entity_id"]))))
        veh = world.vehicles
        if "carrier_id" in veh.columns:
            add(veh["id"], veh["carrier_id"])
            wb = world.waybills
            if len(wb):
                add(wb["id"], wb["vehicle_id"].map(dict(zip(veh["id"], veh["carrier_id"]))))
                add(wb["id"], wb["loading_site_id"])
                add(wb["id"], wb["unloading_site_id"])
        self.owner = {k: frozenset(v) for k, v in owner.items()}

    def owners(self, feature_id: str) -> frozenset[str]:
        return self.owner.get(str(feature_id), frozenset())
