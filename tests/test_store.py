"""The store, on both backends (embedded SQLite and PostGIS): one suite, parametrised by the
`store` / `store_url` fixtures in conftest.py."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from alembic import command
from geopandas.testing import assert_geodataframe_equal
from pandas.testing import assert_frame_equal
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from data import schema
from data.store import SchemaBehindError, Store, StoreError, _alembic_config
from spatial.h3cells import H3_RES_AREA_FILTER, cells_for_points
from spatial.model import CHILD_SPECS, LAYER_SPECS, WORLD_SPECS, PingBatch, ReadingBatch, World

UTC = dt.timezone.utc
DAY_MS = 86_400_000


# --- a small world, by hand -------------------------------------------------------------------


def _layer(rows: list[dict]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs="EPSG:4326")


def _layer_int_occupancy(rows: list[dict]) -> gpd.GeoDataFrame:
    """An optional int column with a NULL comes back as pandas' nullable Int64."""
    layer = _layer(rows)
    layer["occupancy"] = layer["occupancy"].astype("Int64")
    return layer


def _square(lon: float, lat: float, size: float = 0.01) -> Polygon:
    return Polygon([(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size)])


def make_world(variant: int = 0) -> World:
    """A few features per layer: optional NULLs, string lists, Chinese text, quotes and commas,
    microsecond times, a Polygon and a Point sensitive site, child rows. Rows are deliberately
    not in id order. `variant` shifts values so two worlds differ everywhere."""
    v = variant
    t0 = pd.Timestamp("2024-05-01T08:30:00.123456Z") + pd.Timedelta(hours=v)
    return World(
        districts=_layer([
            {"id": "DIST-330212", "adcode": "330212", "name": "鄞州区", "name_en": "Yinzhou",
             "geometry": MultiPolygon([_square(121.5, 29.8), _square(121.6, 29.8)])},
            {"id": "DIST-330203", "adcode": "330203", "name": "海曙区", "name_en": "Haishu",
             "geometry": MultiPolygon([_square(121.5 + v * 0.001, 29.9, 0.05)])},
        ]),
        parks=_layer([
            {"id": "CP-1", "name": "宁波石化经济技术开发区", "name_en": "Ningbo Petrochemical Zone",
             "district_adcode": "330211", "geometry": MultiPolygon([_square(121.7, 30.0, 0.03)])},
        ]),
        entities=_layer([
            {"id": "ENT-0002", "name": 'Acme "Chem", Ltd.', "licensed": True, "category": "production",
             "district_adcode": "330211", "park_id": "CP-1", "contact": "王伟", "phone": "0574-86001234",
             "geometry": Point(121.71, 30.01)},
            {"id": "ENT-0001", "name": "镇海炼化", "licensed": bool(v % 2 == 0), "category": "use",
             "district_adcode": "330211", "park_id": None, "contact": None, "phone": "13800000000",
             "geometry": Point(121.55 + v * 1e-4, 29.87)},
            {"id": "ENT-0003", "name": "宁波大学实验室", "licensed": False, "category": "research",
             "district_adcode": "330205", "park_id": None, "contact": None, "phone": None,
             "geometry": Point(121.63, 29.91)},
        ]),
        hazard_sources=_layer([
            {"id": "HS-0001", "entity_id": "ENT-0002", "name": "储罐区 1", "people_500m": 120 + v, "alpha": 1.2,
             "s_value": 63.75, "r_value": 0.1 + 0.2, "grade": 2, "geometry": Point(121.711, 30.011)},
            {"id": "HS-0002", "entity_id": "ENT-0001", "name": "LPG sphere", "people_500m": 0, "alpha": 2.0,
             "s_value": 1e-300, "r_value": 123456.789, "grade": 1, "geometry": Point(121.551, 29.871)},
        ]),
        monitoring_points=_layer([
            {"id": "MP-0002", "hazard_source_id": "HS-0001", "kind": "level", "unit": "m", "substance_un": None,
             "low_low": None, "low": 0.5, "high": 8.0, "high_high": None, "range_min": 0.0, "range_max": 10.0,
             "geometry": Point(121.7111, 30.0111)},
            {"id": "MP-0001", "hazard_source_id": "HS-0002", "kind": "toxic_gas", "unit": "ppm",
             "substance_un": "UN1017", "low_low": 0.0, "low": 1.0, "high": 10.0 + v, "high_high": 20.0,
             "range_min": 0.0, "range_max": 100.0, "geometry": Point(121.5511, 29.8711)},
        ]),
        vehicles=_layer([
            {"id": "VEH-0001", "plate": "浙B12345", "carrier": "宁波危运", "body": "tank",
             "approved_media": ["UN1203", "UN1017", "苯"][: 3 - v], "terminal_phone": "013800000001",
             "driver": "张三", "escort": "李四", "carrier_id": "ENT-0002", "geometry": Point(121.6, 29.9)},
            {"id": "VEH-0000", "plate": "浙B00000", "carrier": "Carrier, Inc.", "body": "van", "approved_media": [],
             "terminal_phone": "013800000000", "driver": "王五", "escort": "", "carrier_id": None,
             "geometry": Point(121.61, 29.91)},
        ]),
        waybills=_layer([
            {"id": "WB-0002", "vehicle_id": "VEH-0001", "status": "active", "loading_site_id": "ENT-0002",
             "unloading_site_id": "ENT-0001", "consignor": "A", "consignee": "B", "carrier": "宁波危运",
             "planned_departure": t0, "planned_arrival": t0 + pd.Timedelta(hours=2, microseconds=7),
             "emergency_phone": "0574-1234567", "actual_departure": t0 + pd.Timedelta(minutes=3 + v),
             "actual_unloading": None,
             "geometry": LineString([(121.711, 30.011), (121.65, 29.95), (121.551, 29.871)])},
            {"id": "WB-0001", "vehicle_id": "VEH-0000", "status": "done" if v == 0 else "active",
             "loading_site_id": "ENT-0001", "unloading_site_id": "ENT-0003", "consignor": "C", "consignee": "D",
             "carrier": "Carrier, Inc.", "planned_departure": t0 - pd.Timedelta(days=1),
             "planned_arrival": t0 - pd.Timedelta(hours=20), "emergency_phone": "110",
             "actual_departure": t0 - pd.Timedelta(hours=23), "actual_unloading": t0 - pd.Timedelta(hours=19, seconds=v),
             "geometry": LineString([(121.551, 29.871), (121.63, 29.91)])},
        ]),
        roads=_layer([
            {"id": "ROAD-G1501", "name": "绕城高速", "road_class": "motorway", "speed_limit_kmh": 100.0,
             "geometry": LineString([(121.4, 29.8), (121.5, 29.85), (121.7, 29.9)])},
        ]),
        wash_stations=_layer([
            {"id": "WS-1", "name": "洗罐站", "district_adcode": "330211", "geometry": Point(121.72, 30.02)},
        ]),
        parking_lots=_layer([
            {"id": "PL-1", "name": "危化品停车场", "capacity": 40 + v, "geometry": Point(121.73, 30.03)},
        ]),
        service_areas=_layer([
            {"id": "SA-1", "name": "服务区", "road_id": "ROAD-G1501", "geometry": Point(121.5, 29.85)},
        ]),
        repair_shops=_layer([
            {"id": "RS-1", "name": "修理厂", "geometry": Point(121.52, 29.86)},
        ]),
        sensitive_sites=_layer_int_occupancy([
            {"id": "SITE-2", "name": "中心小学", "kind": "school", "occupancy": 1200 + v, "geometry": Point(121.64, 29.92)},
            {"id": "SITE-1", "name": "水源保护区", "kind": "water_protection", "occupancy": None,
             "geometry": Polygon(_square(121.3, 29.7, 0.1).exterior.coords, [[(121.32, 29.72), (121.33, 29.72),
                                                                              (121.33, 29.73)]])},
        ]),
        restricted_zones=_layer([
            {"id": "ZONE-1", "name": "三江口限行区", "kind": "hazmat_ban", "closed_from": "07:00",
             "closed_to": "19:00", "barred_classes": ["2", "3", "6.1"], "speed_limit_kmh": None,
             "geometry": _square(121.54, 29.86, 0.02)},
            {"id": "ZONE-0", "name": "Port road", "kind": "speed", "closed_from": "00:00", "closed_to": "00:00",
             "barred_classes": [], "speed_limit_kmh": 40.0, "geometry": MultiPolygon([_square(121.8, 29.95)])},
        ]),
        hazard_source_chemicals=pd.DataFrame([
            {"hazard_source_id": "HS-0002", "un_number": "UN1075", "quantity_t": 500.0},
            {"hazard_source_id": "HS-0001", "un_number": "UN1203", "quantity_t": 2000.5 + v},
            {"hazard_source_id": "HS-0001", "un_number": "UN1114", "quantity_t": 150.25},
        ]),
        waybill_goods=pd.DataFrame([
            {"waybill_id": "WB-0002", "seq": 2, "un_number": "UN1114", "name": "苯", "hazard_class": "3",
             "packing_group": "II", "quantity_t": 5.0},
            {"waybill_id": "WB-0002", "seq": 1, "un_number": "UN1203", "name": "汽油", "hazard_class": "3",
             "packing_group": None, "quantity_t": 20.0 + v},
            {"waybill_id": "WB-0001", "seq": 1, "un_number": "UN1017", "name": "Chlorine", "hazard_class": "2.3",
             "packing_group": None, "quantity_t": 1.5},
        ]),
        departments=pd.DataFrame([
            {"id": "DEPT-YZ", "name": "鄞州区应急管理局", "name_en": "Yinzhou district office",
             "kind": "district_office", "district_adcode": "330212", "contact": "值班室", "phone": "0574-1",
             "email": None},
            {"id": "DEPT-EM", "name": "市应急管理局", "name_en": "Emergency Management", "kind": "emergency_management",
             "district_adcode": None, "contact": "王, \"值班\"", "phone": f"0574-{v}", "email": "em@nb.gov.cn"},
        ]),
        routing=_routing([
            {"id": "RT-2", "rule": "*", "subject_kind": "vehicle", "role": "carrier", "max_severity": None},
            {"id": "RT-1", "rule": "speeding", "subject_kind": "vehicle", "role": "traffic_police",
             "max_severity": 2 + v},
        ]),
    )


def _routing(rows: list[dict]) -> pd.DataFrame:
    """The optional int max_severity, with a NULL, comes back as pandas' nullable Int64."""
    frame = pd.DataFrame(rows)
    frame["max_severity"] = frame["max_severity"].astype("Int64")
    return frame


def assert_worlds_equal(loaded: World, expected: World) -> None:
    for name, frame in expected.tables().items():
        got = loaded.table(name)
        keys = [c for c in CHILD_SPECS[name].columns] if name in CHILD_SPECS else ["id"]
        want = frame.sort_values(keys, ignore_index=True)
        spec_columns = WORLD_SPECS[name].columns
        assert list(got.columns) == spec_columns + (["geometry"] if name in LAYER_SPECS else []), name
        if name in LAYER_SPECS:
            assert got.crs == "EPSG:4326"
            assert_geodataframe_equal(got, want, check_dtype=True, check_like=False)
            # topological equality is not enough: the very same vertices come back
            assert (shapely.to_wkb(got.geometry.array) == shapely.to_wkb(want.geometry.array)).all(), name
        else:
            assert_frame_equal(got, want, check_dtype=True)


# --- migrations and the schema check ------------------------------------------------------------


def test_migrations_create_every_table_as_declared(store):
    inspector = sa.inspect(store.engine)
    tables = set(inspector.get_table_names())
    for name, table in schema.metadata.tables.items():
        assert name in tables, name
        columns = {c["name"]: c for c in inspector.get_columns(name)}
        # Columns added by a later revision come after the geometry: compare names, not order.
        assert sorted(columns) == sorted(c.name for c in table.columns), name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (name, column.name)
    assert "h3_cell" in {c["name"] for c in inspector.get_columns("entities")}
    assert "h3_cell" not in {c["name"] for c in inspector.get_columns("roads")}
    assert {tuple(fk["constrained_columns"]) for fk in inspector.get_foreign_keys("waybill_goods")} == {("waybill_id",)}

    with store.engine.connect() as connection:
        if store.dialect == "sqlite":
            types = {r[1]: r[2] for r in connection.exec_driver_sql("PRAGMA table_info(sensitive_sites)")}
            assert types["geometry"] == "BLOB"
            time_types = {r[1]: r[2] for r in connection.exec_driver_sql("PRAGMA table_info(pings)")}
            assert time_types["time"] == "BIGINT"
            return
        geometry_columns = dict(
            connection.exec_driver_sql(
                "SELECT f_table_name, type || ':' || srid FROM geometry_columns WHERE f_table_schema = 'public'"
            ).all()
        )
        assert geometry_columns == {
            name: {"Geometry": "GEOMETRY"}.get(spec.geometry, spec.geometry.upper()) + ":4326"
            for name, spec in LAYER_SPECS.items()
        } | {"events": "POINT:4326"}
        gist = {
            table
            for table, indexdef in connection.exec_driver_sql("SELECT tablename, indexdef FROM pg_indexes").all()
            if "USING gist (geometry)" in indexdef
        }
        assert gist == set(LAYER_SPECS) | {"events"}
        partitioned = dict(
            connection.exec_driver_sql(
                "SELECT c.relname, p.partstrat::text || ':' || a.attname FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid "
                "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]"
            ).all()
        )
        assert partitioned == {"pings": "r:time", "readings": "r:time"}
        live_indexes = connection.exec_driver_sql(
            "SELECT c.relname, am.amname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = ic.relam WHERE c.relname IN ('pings', 'readings')"
        ).all()
        assert {(t, am) for t, am, _ in live_indexes} == {
            ("pings", "brin"), ("pings", "btree"), ("readings", "brin"), ("readings", "btree")
        }
        assert any("(vehicle_id, \"time\")" in d for _, _, d in live_indexes)
        assert any("(point_id, \"time\")" in d for _, _, d in live_indexes)
        json_type = connection.exec_driver_sql(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'vehicles' "
            "AND column_name = 'approved_media'"
        ).scalar()
        assert json_type == "jsonb"


def test_migration_downgrades_and_upgrades_again(store):
    with store.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "base")
    assert store.current_revision() is None
    assert not set(schema.metadata.tables) & set(sa.inspect(store.engine).get_table_names())
    store.upgrade()
    assert store.current_revision() == Store.head_revision()
    store.replace_world(make_world())
    assert store.counts()["entities"] == 3


def test_open_refuses_an_empty_database_and_upgrades_on_request(store_url):
    with pytest.raises(SchemaBehindError) as refused:
        Store.open(store_url)
    head = Store.head_revision()
    message = str(refused.value)
    assert "database at revision <none>" in message
    assert f"hazmap needs {head}: run `hazmap db upgrade`" in message

    with Store.open(store_url, upgrade=True) as store:
        assert store.current_revision() == head
        assert store.dialect in ("sqlite", "postgresql")
    with Store.open(store_url) as store:  # at head now: opens without upgrading
        assert store.counts()["districts"] == 0


def test_open_refuses_a_database_behind_head(store):
    # One revision behind head (with a single revision today, that is before it: an
    # alembic_version table without a row).
    with store.engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "-1")
    with pytest.raises(SchemaBehindError, match=r"hazmap needs .*: run `hazmap db upgrade`"):
        Store.open(store.engine.url.render_as_string(hide_password=False))


def test_open_refuses_a_revision_it_does_not_know(store):
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffffffff'")
    with pytest.raises(StoreError, match="revision ffffffff, which this hazmap .* does not know"):
        Store.open(store.engine.url.render_as_string(hide_password=False))


def test_sqlite_store_creates_the_folder_of_its_file(tmp_path):
    path = tmp_path / "a" / "b" / "hazmap.sqlite"
    with Store.open(f"sqlite:///{path.as_posix()}", upgrade=True) as store:
        assert store.dialect == "sqlite"
    assert path.is_file()


@pytest.mark.parametrize("url", ["", "mysql+pymysql://u@h/db", "postgresql+psycopg2://u@h/db", "not a url"])
def test_open_rejects_unsupported_urls(url):
    with pytest.raises(StoreError):
        Store.open(url)


# --- the World ---------------------------------------------------------------------------------


def test_world_round_trip_is_exact(store):
    world = make_world()
    store.replace_world(world)
    loaded = store.load_world()
    assert_worlds_equal(loaded, world)
    assert store.counts() == world.counts()
    assert store.counts()["active_waybills"] == 1
    assert loaded.chemicals.empty
    # times come back aware and UTC, through the Core table declared in data.schema as well
    with store.engine.connect() as connection:
        departure = connection.execute(
            sa.select(schema.WORLD_TABLES["waybills"].c.planned_departure).where(
                schema.WORLD_TABLES["waybills"].c.id == "WB-0002"
            )
        ).scalar_one()
    assert departure == dt.datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)
    assert departure.utcoffset() == dt.timedelta(0)


def test_replace_world_replaces_everything(store):
    store.replace_world(make_world(0))
    smaller = make_world(1)
    smaller.entities = smaller.entities[smaller.entities["id"] != "ENT-0003"]
    smaller.waybill_goods = smaller.waybill_goods.iloc[:1]
    store.replace_world(smaller)
    assert_worlds_equal(store.load_world(), smaller)
    store.replace_world(World.empty())
    assert all(n == 0 for n in store.counts().values())
    assert list(store.read_layer("entities").columns) == [*LAYER_SPECS["entities"].columns, "geometry"]


def _broken_worlds():
    missing_required = make_world(1)
    missing_required.entities.loc[0, "name"] = None
    duplicate_goods_line = make_world(1)  # the last child table written
    duplicate_goods_line.waybill_goods.loc[1, "seq"] = 2
    orphan_chemical = make_world(1)
    orphan_chemical.hazard_source_chemicals.loc[0, "hazard_source_id"] = "HS-9999"
    duplicate_id = make_world(1)
    duplicate_id.restricted_zones.loc[1, "id"] = "ZONE-1"
    wrong_type = make_world(1)
    wrong_type.districts.loc[0, "geometry"] = _square(121.5, 29.8)  # Polygon where MultiPolygon is due
    naive_time = make_world(1)
    naive_time.waybills["planned_arrival"] = naive_time.waybills["planned_arrival"].dt.tz_localize(None)
    not_a_list = make_world(1)
    not_a_list.vehicles.at[0, "approved_media"] = "UN1203,UN1017"
    projected = make_world(1)
    projected.roads = projected.roads.to_crs("EPSG:32651")
    duplicate_route = make_world(1)  # the last table written: everything else was already replaced
    duplicate_route.routing.loc[1, "id"] = "RT-2"
    department_without_phone = make_world(1)
    department_without_phone.departments.loc[0, "phone"] = None
    return {
        "missing required": (missing_required, "entities.name is required but missing for ENT-0002"),
        "duplicate goods line": (duplicate_goods_line, "waybill_goods"),
        "orphan child row": (orphan_chemical, "hazard_source_chemicals"),
        "duplicate id": (duplicate_id, "restricted_zones"),
        "wrong geometry type": (wrong_type, "districts: geometry must be MultiPolygon"),
        "naive time": (naive_time, "waybills.planned_arrival: naive datetimes"),
        "strlist as string": (not_a_list, "vehicles.approved_media: expected a list of strings"),
        "projected layer": (projected, "roads: geometries are in EPSG:32651"),
        "duplicate routing id": (duplicate_route, "routing"),
        "department without phone": (department_without_phone, "departments.phone is required but missing for DEPT-YZ"),
    }


@pytest.mark.parametrize("case", list(_broken_worlds()))
def test_replace_world_is_atomic_on_failure(store, case):
    before = make_world(0)
    store.replace_world(before)
    broken, message = _broken_worlds()[case]
    with pytest.raises(StoreError, match=message):
        store.replace_world(broken)
    assert_worlds_equal(store.load_world(), before)
    assert store.counts() == before.counts()


def test_read_layer_filters_points_by_h3_cell(store):
    world = make_world()
    store.replace_world(world)
    entity = world.entities.set_index("id").loc["ENT-0001"]
    cell = cells_for_points([entity.geometry.x], [entity.geometry.y], H3_RES_AREA_FILTER)[0]
    found = store.read_layer("entities", h3_cells=[cell, "8928308280fffff"])
    assert found["id"].tolist() == ["ENT-0001"]
    assert "h3_cell" not in found.columns
    assert store.read_layer("entities", h3_cells=[]).empty
    assert_geodataframe_equal(store.read_layer("sensitive_sites"), store.load_world().sensitive_sites)
    with pytest.raises(StoreError, match="not a point layer"):
        store.read_layer("roads", h3_cells=[cell])
    with pytest.raises(StoreError, match="no World table named 'trucks'"):
        store.read_layer("trucks")


# --- pings and readings --------------------------------------------------------------------------


# multi-byte UTF-8 among them: the binary COPY writes text by byte lengths
VEHICLE_IDS = np.array([*(f"VEH-{i:04d}" for i in range(6)), "VEH-浙B·0006"], dtype=object)


def _pings(n: int, first_ms: int, span_ms: int, seed: int) -> PingBatch:
    rng = np.random.default_rng(seed)
    speed = rng.uniform(0, 100, n)
    speed[rng.random(n) < 0.2] = np.nan
    heading = rng.uniform(0, 360, n)
    heading[rng.random(n) < 0.2] = np.nan
    return PingBatch.from_arrays(
        vehicle_id=VEHICLE_IDS[rng.integers(0, len(VEHICLE_IDS), n)],
        epoch_ms=first_ms + rng.integers(0, span_ms, n),
        lon=rng.uniform(121.0, 122.2, n),
        lat=rng.uniform(29.2, 30.4, n),
        speed_kmh=speed,
        heading=heading,
        alarm=rng.choice([0, 1, 2**31 + 5, 2**32 - 1], n),
        status=rng.choice([0, 2, 3], n),
    )


def _sorted_pings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["epoch_ms", "vehicle_id"], kind="stable", ignore_index=True)


def _partition_days(store: Store, table: str) -> set[str]:
    with store.engine.connect() as connection:
        names = connection.execute(
            sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:t AS regclass)"
            ),
            {"t": table},
        ).scalars()
        return {n.removeprefix(f"{table}_p") for n in names}


def test_pings_round_trip_across_days(store):
    day0 = int(pd.Timestamp("2024-05-01T00:00Z").value // 1_000_000)
    batch = _pings(3_000, day0 - 3_600_000, 3 * DAY_MS, seed=1)  # 30 Apr 23:00 … 3 May 23:00
    assert store.write_pings(batch) == len(batch)
    if store.dialect == "postgresql":
        assert _partition_days(store, "pings") == {"20240430", "20240501", "20240502", "20240503"}
        assert _partition_days(store, "readings") == set()

    start, end = pd.Timestamp("2024-04-30T00:00Z"), pd.Timestamp("2024-05-05T00:00Z")
    got = store.read_pings(start, end)
    # The store keeps what the rules need from history; the gateway's arrival stamp is live-only.
    want = _sorted_pings(batch.to_frame()).drop(columns="arrival_ms")
    assert list(got.columns) == list(want.columns)
    assert_frame_equal(got, want, check_dtype=False)
    assert got["time"].dt.tz is not None and str(got["time"].dt.tz) == "UTC"
    assert got["alarm"].dtype == np.uint32 and got["alarm"].max() == 2**32 - 1
    assert got["speed_kmh"].isna().sum() == np.isnan(batch.speed_kmh).sum() > 0
    assert_frame_equal(PingBatch.from_frame(got).to_frame().drop(columns="arrival_ms"), got)

    window_start = pd.Timestamp("2024-05-01T12:00Z").to_pydatetime()
    window_end = dt.datetime(2024, 5, 2, 6, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # 2024-05-01T22:00Z
    some = ["VEH-0001", "VEH-0004"]
    part = store.read_pings(window_start, window_end, vehicle_ids=some)
    mask = (
        (want["time"] >= window_start) & (want["time"] < window_end) & want["vehicle_id"].isin(some)
    ).to_numpy()
    assert 0 < len(part) < len(want)
    assert_frame_equal(part, want[mask].reset_index(drop=True), check_dtype=False)
    assert store.read_pings(start, end, vehicle_ids=[]).empty

    # a later batch touching a new day gets its partition on demand, old rows stay
    later = _pings(10, day0 + 10 * DAY_MS, 60_000, seed=2)
    assert store.write_pings(later) == 10
    if store.dialect == "postgresql":
        assert "20240511" in _partition_days(store, "pings")
    assert len(store.read_pings(start, pd.Timestamp("2024-06-01T00:00Z"))) == len(batch) + 10
    assert store.write_pings(PingBatch.from_arrays([], [], [], [])) == 0


def test_readings_round_trip_and_partitions_ahead(store):
    store.ensure_partitions(dt.date(2024, 5, 1), 3)
    store.ensure_partitions(dt.date(2024, 5, 2), 3)  # overlapping: existing partitions are kept
    if store.dialect == "postgresql":
        expected = {"20240501", "20240502", "20240503", "20240504"}
        assert _partition_days(store, "pings") == expected
        assert _partition_days(store, "readings") == expected
        assert store.partitions("readings") == [f"readings_p{d}" for d in sorted(expected)]
    else:
        assert store.partitions("readings") == []

    day0 = int(pd.Timestamp("2024-05-01T00:00Z").value // 1_000_000)
    rng = np.random.default_rng(3)
    n = 2_000
    values = rng.normal(5.0, 2.0, n)
    values[::17] = np.nan
    batch = ReadingBatch.from_arrays(
        np.array([f"MP-{i:05d}" for i in rng.integers(0, 9, n)], dtype=object),
        day0 + rng.integers(0, 6 * DAY_MS, n),  # two days beyond the partitions made ahead
        values,
    )
    assert store.write_readings(batch) == n
    if store.dialect == "postgresql":
        assert {"20240505", "20240506"} <= _partition_days(store, "readings")
    got = store.read_readings(pd.Timestamp("2024-05-01T00:00Z"), pd.Timestamp("2024-05-07T00:00Z"))
    want = batch.to_frame().sort_values(["epoch_ms", "point_id"], kind="stable", ignore_index=True)
    assert list(got.columns) == list(want.columns)
    assert_frame_equal(got, want, check_dtype=False)
    only = store.read_readings(
        pd.Timestamp("2024-05-01T00:00Z"), pd.Timestamp("2024-05-07T00:00Z"), point_ids=["MP-00003"]
    )
    assert set(only["point_id"]) == {"MP-00003"} and len(only) == (want["point_id"] == "MP-00003").sum()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.lon.__setitem__(5, np.nan), "lon missing or outside"),
        (lambda b: b.lat.__setitem__(5, 91.0), "lat missing or outside"),
        (lambda b: b.vehicle_id.__setitem__(5, ""), "vehicle_id missing or empty"),
        (lambda b: b.vehicle_id.__setitem__(5, None), "vehicle_id missing or empty"),
        (lambda b: b.speed_kmh.__setitem__(5, np.inf), "speed_kmh is infinite"),
        (lambda b: b.epoch_ms.__setitem__(5, b.epoch_ms[5] * 1000), "times outside years 1-9999"),
    ],
    ids=["nan-lon", "lat-out-of-range", "empty-id", "missing-id", "infinite-speed", "time-in-microseconds"],
)
def test_write_pings_refuses_bad_batches_whole(store, change, message):
    day0 = int(pd.Timestamp("2024-05-01T00:00Z").value // 1_000_000)
    batch = _pings(20, day0, DAY_MS, seed=4)
    change(batch)
    if "years" in message and store.dialect == "sqlite":
        message = None  # SQLite has no partitions: any time is storable
    if message is None:
        store.write_pings(batch)
        return
    with pytest.raises(StoreError, match=message):
        store.write_pings(batch)
    assert store.read_pings(pd.Timestamp("1970-01-01T00:00Z"), pd.Timestamp("2200-01-01T00:00Z")).empty


def test_write_pings_refuses_a_batch_spanning_too_many_new_days(store):
    day0 = int(pd.Timestamp("2024-05-01T00:00Z").value // 1_000_000)
    n = 500  # e.g. seconds read as milliseconds, or a clock gone wild: one ping per day
    batch = PingBatch.from_arrays(["VEH-1"] * n, day0 + np.arange(n) * DAY_MS, [121.5] * n, [29.9] * n)
    if store.dialect == "sqlite":  # no partitions: nothing to guard
        assert store.write_pings(batch) == n
        return
    with pytest.raises(StoreError, match="the batch spans 500 days without a partition .* more than 400"):
        store.write_pings(batch)
    assert _partition_days(store, "pings") == set()


def test_read_pings_wants_aware_times(store):
    with pytest.raises(StoreError, match="not a timezone-aware time"):
        store.read_pings(dt.datetime(2024, 5, 1), pd.Timestamp("2024-05-02T00:00Z"))
    with pytest.raises(StoreError, match="is before start"):
        store.read_pings(pd.Timestamp("2024-05-02T00:00Z"), pd.Timestamp("2024-05-01T00:00Z"))


def test_write_pings_recreates_a_partition_dropped_behind_its_back(store):
    day0 = int(pd.Timestamp("2024-05-01T00:00Z").value // 1_000_000)
    store.write_pings(_pings(5, day0, 60_000, seed=5))
    if store.dialect == "postgresql":  # e.g. a retention job in another process
        with store.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE pings_p20240501")
    assert store.write_pings(_pings(7, day0, 60_000, seed=6)) == 7
    expected = 7 if store.dialect == "postgresql" else 12
    assert len(store.read_pings(pd.Timestamp("2024-05-01T00:00Z"), pd.Timestamp("2024-05-02T00:00Z"))) == expected
