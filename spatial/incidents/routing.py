"""Who must act on an incident (owner: the incidents-routing work; this is the core's stub).

Until the routing table lands, every incident goes to the city's emergency management
department and nobody is above it. The signatures are the contract the core calls:

    recipients_for(incidents, world) -> DataFrame[incident_id, recipient_kind, recipient_id,
                                                  role, district_adcode]
        incidents: DataFrame[incident_id, rule, subject_id, subject_kind, lon, lat, level]
    escalation_target(recipients, world) -> DataFrame[incident_id, from_recipient_id,
                                                      recipient_kind, recipient_id, role,
                                                      district_adcode]
        recipients: DataFrame[incident_id, recipient_kind, recipient_id, role, district_adcode];
        one row per input row that has somebody above it (the others are left out).
"""

from __future__ import annotations

import pandas as pd

CITY_EMERGENCY_ID = "DEPT-EM"  # stub: the city's emergency management department
RECIPIENT_COLUMNS = ["incident_id", "recipient_kind", "recipient_id", "role", "district_adcode"]
ESCALATION_COLUMNS = ["incident_id", "from_recipient_id", "recipient_kind", "recipient_id", "role",
                      "district_adcode"]


def recipients_for(incidents: pd.DataFrame, world) -> pd.DataFrame:
    ids = incidents["incident_id"].astype(str).to_numpy()
    return pd.DataFrame({
        "incident_id": ids,
        "recipient_kind": "department",
        "recipient_id": CITY_EMERGENCY_ID,
        "role": "emergency_management",
        "district_adcode": pd.Series([None] * len(ids), dtype=object),
    }, columns=RECIPIENT_COLUMNS)


def escalation_target(recipients: pd.DataFrame, world) -> pd.DataFrame:
    rows = recipients[recipients["recipient_id"].astype(str) != CITY_EMERGENCY_ID]
    return pd.DataFrame({
        "incident_id": rows["incident_id"].astype(str).to_numpy(),
        "from_recipient_id": rows["recipient_id"].astype(str).to_numpy(),
        "recipient_kind": "department",
        "recipient_id": CITY_EMERGENCY_ID,
        "role": "emergency_management",
        "district_adcode": pd.Series([None] * len(rows), dtype=object),
    }, columns=ESCALATION_COLUMNS)
