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

import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data.people import ROLES, User
from spatial.incidents.levels import level_keys

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


# The city's context on the map: no enterprise owns a road, a district or a school, and no
# incident routing narrows them. Anyone who may use the screen sees them (an admin too).
PUBLIC_LAYERS = frozenset({"districts", "parks", "roads", "wash_stations", "parking_lots", "service_areas",
                           "repair_shops", "sensitive_sites", "restricted_zones"})
INCIDENTS = "incidents"  # the kind of visible_ids that lists incident ids


@dataclass(frozen=True)
class Visible:
    """What one scoped user may see now: ids of the regulated world features (entities, hazard
    sources, monitoring points, vehicles, waybills) and of incidents. `key` changes whenever
    `features` does: the wall reloads its truck and point lists then."""

    key: str
    features: frozenset[str]
    incidents: frozenset[str]
    open_by_level: dict[str, int] = field(default_factory=dict)  # its incidents not closed, by level key
    _masks: dict = field(default_factory=dict, compare=False, repr=False)

    def mask(self, name: str, ids: pd.Index) -> np.ndarray:
        """Which of `ids` (a fixed list such as the live layer's vehicles, called `name`) are
        visible, as one boolean array, computed once per Visible."""
        found = self._masks.get(name)
        if found is None or len(found) != len(ids):
            found = np.asarray(ids.isin(list(self.features)), bool)
            self._masks[name] = found
        return found


NOTHING = Visible("none", frozenset(), frozenset())


class Scopes:
    """THE scope decision: which features and incidents each user may see, as sets (never a
    call per row), for the screen's routes and callbacks, the REST API and the CLI alike.

    - duty officer, kiosk: everything (`visible` is None: callers skip filtering entirely);
    - admin: the public layers only (no `entity.read`, no `incident.read`);
    - enterprise: the incidents routed to it; the features it owns (`Ownership`);
    - department: the incidents routed to it; their subjects and the enterprises owning them
      (the same answer as `can(user, "entity.read", Target(concerned=…))` feature by feature).

    A scoped user's sets are cached per recipient and are read again only when the incident
    store's change version (one row, one cheap read) moved: a new incident routed to a
    department shows its truck at the next poll."""

    def __init__(self, world, store=None):
        self.store = store
        self.ownership = Ownership(world)
        owned_by: dict[str, set[str]] = {}
        for feature, owners in self.ownership.owner.items():
            for owner in owners:
                owned_by.setdefault(owner, set()).add(feature)
        self.owned_by = {k: frozenset(v) for k, v in owned_by.items()}
        # (feature, owner) pairs: a department's subjects' owners in one isin, not a loop
        pairs = [(f, o) for f, owners in self.ownership.owner.items() for o in owners]
        self._owner_of = pd.DataFrame(pairs, columns=["feature", "owner"], dtype=object)
        self.public_ids = frozenset(str(i) for name in PUBLIC_LAYERS for i in world.table(name)["id"]) \
            if hasattr(world, "table") else frozenset()
        self._cache: dict[tuple[str, str], tuple[int, Visible]] = {}
        self._lock = threading.Lock()

    # -- the decision ----------------------------------------------------------------------

    def visible(self, user: User | None) -> Visible | None:
        """None when `user` sees every feature and incident; else what it may see."""
        if user is None or user.disabled or not can(user, "screen.view"):
            return NOTHING
        if user.role in UNSCOPED:
            return None if can(user, "entity.read") else NOTHING
        own = user.recipient_id
        if not own or not can(user, "entity.read"):
            return NOTHING
        version = self._incident_version()
        with self._lock:
            cached = self._cache.get((user.role, own))
            if cached is not None and cached[0] == version:
                return cached[1]
        routed = self._routed_to(own)
        incidents = frozenset(routed["incident_id"])
        still_open = routed[routed["status"] != "closed"]
        open_by_level = pd.Series(level_keys(still_open["severity"].astype("int64").to_numpy()), dtype=object) \
            .value_counts().to_dict() if len(still_open) else {}
        if user.role == "enterprise":
            features = self.owned_by.get(own, frozenset({own}))
        else:  # department: the incidents' subjects and who owns them
            subjects = routed["subject_id"].unique()
            owners = self._owner_of["owner"][self._owner_of["feature"].isin(subjects)].unique()
            features = frozenset(subjects).union(owners)
        key = hashlib.blake2s("\n".join(sorted(features)).encode(), digest_size=6).hexdigest()
        found = Visible(key, features, incidents, {str(k): int(v) for k, v in open_by_level.items()})
        with self._lock:
            self._cache[(user.role, own)] = (version, found)
        return found

    def visible_ids(self, user: User | None, kind: str) -> frozenset[str] | None:
        """The ids of `kind` (a world layer's name, or "incidents") `user` may see; None: all."""
        if kind in PUBLIC_LAYERS:
            return None if user is not None and can(user, "screen.view") else frozenset()
        found = self.visible(user)
        if found is None:
            return None
        return found.incidents if kind == INCIDENTS else found.features

    def may_see(self, user: User | None, feature_id: str) -> bool:
        """One feature (any layer, by id): what the screen's panels and the API's reads ask."""
        feature_id = str(feature_id)
        if feature_id in self.public_ids:
            return user is not None and can(user, "screen.view")
        found = self.visible(user)
        return found is None or feature_id in found.features

    # -- the store ---------------------------------------------------------------------------

    def _incident_version(self) -> int:
        if self.store is None:
            return 0
        import sqlalchemy as sa

        from data.incidents import CURSOR, incident_cursor

        with self.store.engine.connect() as connection:
            found = connection.execute(sa.select(incident_cursor.c.version)
                                       .where(incident_cursor.c.name == CURSOR)).scalar()
        return int(found or 0)

    def _routed_to(self, recipient: str) -> pd.DataFrame:
        columns = ["incident_id", "subject_id", "status", "severity"]
        if self.store is None:
            return pd.DataFrame({c: [] for c in columns}, dtype=object)
        import sqlalchemy as sa

        from data.incidents import incident_recipients as r, incidents as i

        with self.store.engine.connect() as connection:
            rows = connection.execute(sa.select(i.c.id, i.c.subject_id, i.c.status, i.c.severity)
                                      .join(r, r.c.incident_id == i.c.id).where(r.c.recipient_id == recipient)).all()
        frame = pd.DataFrame(rows, columns=columns, dtype=object)
        return frame.astype({"incident_id": str, "subject_id": str, "status": str})
