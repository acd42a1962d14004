"""Initial store: every World layer and child table, pings and readings.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen history: the tables are written out here as they were at this revision (not read from
spatial.model, which will move on). Later changes get their own revision.

PostGIS: geometry(<type>, 4326) with GiST indexes, timestamptz, JSONB; pings and readings are
PARTITIONED BY RANGE (time) with one partition per UTC day (the store creates them), a BRIN index on
time and a btree on (key, time), both declared on the parent so every partition inherits them.
SQLite: geometry as a WKB blob, times as INTEGER microseconds since the Unix epoch (UTC), string
lists as JSON text, a plain index on time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# name: (geometry type, "field:kind, optional:kind?")
LAYERS = {
    "districts": ("MultiPolygon", "id:str, adcode:str, name:str, name_en:str"),
    "parks": ("MultiPolygon", "id:str, name:str, name_en:str, district_adcode:str"),
    "entities": ("Point", "id:str, name:str, licensed:bool, category:str, district_adcode:str, park_id:str?"),
    "hazard_sources": (
        "Point",
        "id:str, entity_id:str, name:str, people_500m:int, alpha:float, s_value:float, r_value:float, grade:int",
    ),
    "monitoring_points": (
        "Point",
        "id:str, hazard_source_id:str, kind:str, unit:str, substance_un:str?, low_low:float?, low:float?, "
        "high:float?, high_high:float?, range_min:float, range_max:float",
    ),
    "vehicles": (
        "Point",
        "id:str, plate:str, carrier:str, body:str, approved_media:strlist, terminal_phone:str, driver:str, escort:str",
    ),
    "waybills": (
        "LineString",
        "id:str, vehicle_id:str, status:str, loading_site_id:str, unloading_site_id:str, consignor:str, "
        "consignee:str, carrier:str, planned_departure:datetime, planned_arrival:datetime, emergency_phone:str",
    ),
    "roads": ("LineString", "id:str, name:str, road_class:str, speed_limit_kmh:float"),
    "wash_stations": ("Point", "id:str, name:str, district_adcode:str"),
    "parking_lots": ("Point", "id:str, name:str, capacity:int"),
    "service_areas": ("Point", "id:str, name:str, road_id:str"),
    "repair_shops": ("Point", "id:str, name:str"),
    "sensitive_sites": ("Geometry", "id:str, name:str, kind:str"),
    "restricted_zones": (
        "Geometry",
        "id:str, name:str, kind:str, closed_from:str, closed_to:str, barred_classes:strlist, speed_limit_kmh:float?",
    ),
}

# name: (parent layer, parent key, fields, primary key or None)
CHILDREN = {
    "hazard_source_chemicals": (
        "hazard_sources",
        "hazard_source_id",
        "hazard_source_id:str, un_number:str, quantity_t:float",
        None,
    ),
    "waybill_goods": (
        "waybills",
        "waybill_id",
        "waybill_id:str, seq:int, un_number:str, name:str, hazard_class:str, packing_group:str?, quantity_t:float",
        ("waybill_id", "seq"),
    ),
}

LIVE = {"pings": "vehicle_id", "readings": "point_id"}


def _types(dialect: str) -> dict:
    postgres = dialect == "postgresql"
    return {
        "str": sa.Text,
        "int": sa.BigInteger,
        "float": sa.Double,
        "bool": sa.Boolean,
        "datetime": (lambda: sa.DateTime(timezone=True)) if postgres else sa.BigInteger,
        "strlist": JSONB if postgres else sa.Text,
    }


def _columns(fields: str, dialect: str) -> list[sa.Column]:
    types = _types(dialect)
    out = []
    for part in fields.split(","):
        name, kind = (s.strip() for s in part.split(":"))
        out.append(sa.Column(name, types[kind.rstrip("?")](), nullable=kind.endswith("?")))
    return out


def _geometry(geometry: str, dialect: str):
    if dialect == "postgresql":
        return Geometry(geometry_type=geometry.upper(), srid=4326, spatial_index=False)
    return sa.LargeBinary()


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"hazmap's store runs on PostgreSQL/PostGIS or SQLite, not {dialect}")
    postgres = dialect == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    for name, (geometry, fields) in LAYERS.items():
        columns = _columns(fields, dialect)
        columns.append(sa.Column("geometry", _geometry(geometry, dialect), nullable=False))
        if geometry == "Point":
            columns.append(sa.Column("h3_cell", sa.Text(), nullable=False))
        op.create_table(name, *columns, sa.PrimaryKeyConstraint("id", name=f"pk_{name}"))
        if postgres:
            op.create_index(f"ix_{name}_geometry", name, ["geometry"], postgresql_using="gist")
        if geometry == "Point":
            op.create_index(f"ix_{name}_h3_cell", name, ["h3_cell"])

    for name, (parent, parent_key, fields, primary_key) in CHILDREN.items():
        constraints: list = [
            sa.ForeignKeyConstraint([parent_key], [f"{parent}.id"], name=f"fk_{name}_{parent}", ondelete="CASCADE")
        ]
        if primary_key:
            constraints.append(sa.PrimaryKeyConstraint(*primary_key, name=f"pk_{name}"))
        op.create_table(name, *_columns(fields, dialect), *constraints)
        op.create_index(f"ix_{name}_{parent_key}", name, [parent_key])

    time_type = sa.DateTime(timezone=True) if postgres else sa.BigInteger()
    partitioning = {"postgresql_partition_by": "RANGE (time)"} if postgres else {}
    op.create_table(
        "pings",
        sa.Column("vehicle_id", sa.Text(), nullable=False),
        sa.Column("time", time_type, nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("speed_kmh", sa.Double()),
        sa.Column("heading", sa.Double()),
        sa.Column("alarm", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.BigInteger(), nullable=False),
        **partitioning,
    )
    op.create_table(
        "readings",
        sa.Column("point_id", sa.Text(), nullable=False),
        sa.Column("time", time_type, nullable=False),
        sa.Column("value", sa.Double()),
        **partitioning,
    )
    for name, key in LIVE.items():
        op.create_index(f"ix_{name}_{key}_time", name, [key, "time"])
        if postgres:
            op.create_index(f"ix_{name}_time_brin", name, ["time"], postgresql_using="brin")
        else:
            op.create_index(f"ix_{name}_time", name, ["time"])


def downgrade() -> None:
    # Dropping a partitioned table drops its day partitions with it.
    for name in (*LIVE, *CHILDREN, *reversed(LAYERS)):
        op.drop_table(name)
