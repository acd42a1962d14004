"""The exchange format: round trips, GCJ-02 import, point tables, validation, atomic export."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from pandas.testing import assert_frame_equal
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from data import exchange
from data.exchange import ExchangeError, export_world, import_world
from spatial.crs import geometry_wgs84_to_gcj02, to_metric
from spatial.model import CHILD_SPECS, DEPARTMENT_KINDS, LAYER_SPECS, PLAIN_SPECS, World

UTC = "UTC"


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert(UTC)


def _box(lon: float, lat: float, size: float) -> Polygon:
    return Polygon([(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size), (lon, lat)])


def _layer(name: str, rows: list[dict], geometries: list) -> gpd.GeoDataFrame:
    spec = LAYER_SPECS[name]
    columns = {}
    for f in spec.fields:
        values = [row.get(f.name) for row in rows]
        columns[f.name] = exchange._typed_column(f, values)
    return gpd.GeoDataFrame(pd.DataFrame(columns), geometry=gpd.GeoSeries(geometries, crs="EPSG:4326"),
                            crs="EPSG:4326")


def _child(name: str, rows: list[dict]) -> pd.DataFrame:
    spec = CHILD_SPECS.get(name) or PLAIN_SPECS[name]
    return pd.DataFrame({f.name: exchange._typed_column(f, [row[f.name] for row in rows]) for f in spec.fields})


CATALOGUE = pd.DataFrame(
    {"name": ["ammonia", "chlorine", "gasoline", "methanol", "LPG"]},
    index=pd.Index(["1005", "1017", "1203", "1230", "1075"], name="un_number"),
)


def build_test_world() -> World:
    """Every layer with a few features in Ningbo, optional NULLs, Point and Polygon sites,
    child rows, non-ASCII names, sub-second times: in canonical order (sorted by id)."""
    haishu = MultiPolygon([_box(121.40, 29.80, 0.10), _box(121.52, 29.80, 0.03)])
    zhenhai = MultiPolygon([_box(121.60, 29.95, 0.12)])
    return World(
        districts=_layer("districts", [
            {"id": "DIST-330203", "adcode": "330203", "name": "海曙区", "name_en": "Haishu"},
            {"id": "DIST-330211", "adcode": "330211", "name": "镇海区", "name_en": "Zhenhai"},
        ], [haishu, zhenhai]),
        parks=_layer("parks", [
            {"id": "CP-01", "name": "宁波石化经济技术开发区", "name_en": "Ningbo Petrochemical Zone",
             "district_adcode": "330211"},
        ], [MultiPolygon([_box(121.62, 29.97, 0.04)])]),
        entities=_layer("entities", [
            {"id": "ENT-001", "name": "镇海炼化", "licensed": True, "category": "production",
             "district_adcode": "330211", "park_id": "CP-01", "contact": "李娜", "phone": "0574-86001234"},
            {"id": "ENT-002", "name": "海曙储运", "licensed": True, "category": "trade",
             "district_adcode": "330203", "park_id": None, "contact": None, "phone": "13800000000"},
            {"id": "ENT-003", "name": "第一中学实验室", "licensed": False, "category": "school",
             "district_adcode": "330203", "park_id": None, "contact": None, "phone": None},
        ], [Point(121.6412345678901, 29.9812345678901), Point(121.45, 29.85), Point(121.47, 29.86)]),
        hazard_sources=_layer("hazard_sources", [
            {"id": "HS-001", "entity_id": "ENT-001", "name": "液氯储罐区", "people_500m": 120, "alpha": 2.0,
             "s_value": 3.4, "r_value": 61.2, "grade": 2},
            {"id": "HS-002", "entity_id": "ENT-002", "name": "汽油罐区", "people_500m": 0, "alpha": 0.5,
             "s_value": 1.1, "r_value": 0.55, "grade": 4},
        ], [Point(121.642, 29.982), Point(121.451, 29.851)]),
        monitoring_points=_layer("monitoring_points", [
            {"id": "MP-001", "hazard_source_id": "HS-001", "kind": "toxic_gas", "unit": "mg/m3",
             "substance_un": "1017", "low_low": None, "low": None, "high": 1.0, "high_high": 2.0,
             "range_min": 0.0, "range_max": 20.0},
            {"id": "MP-002", "hazard_source_id": "HS-002", "kind": "level", "unit": "m", "substance_un": None,
             "low_low": 0.5, "low": 1.0, "high": 9.0, "high_high": 9.5, "range_min": 0.0, "range_max": 10.0},
        ], [Point(121.6421, 29.9821), Point(121.4511, 29.8511)]),
        vehicles=_layer("vehicles", [
            {"id": "VEH-0001", "plate": "浙B12345", "carrier": "甬运物流", "body": "tank",
             "approved_media": ["1203", "1230"], "terminal_phone": "013912345678", "driver": "张三",
             "escort": "李四", "carrier_id": "ENT-003"},
            {"id": "VEH-0002", "plate": "浙B6789挂", "carrier": "甬运物流", "body": "van", "approved_media": [],
             "terminal_phone": "013987654321", "driver": "王五", "escort": "赵六"},
        ], [Point(121.50, 29.88), Point(121.55, 29.90)]),
        waybills=_layer("waybills", [
            {"id": "WB-0001", "vehicle_id": "VEH-0001", "status": "active", "loading_site_id": "ENT-001",
             "unloading_site_id": "ENT-002", "consignor": "镇海炼化", "consignee": "海曙储运", "carrier": "甬运物流",
             "planned_departure": _ts("2024-05-01T08:30:00+08:00"),
             "planned_arrival": _ts("2024-05-01T02:15:30.250000Z"), "emergency_phone": "0574-12345678"},
            {"id": "WB-0002", "vehicle_id": "VEH-0002", "status": "planned", "loading_site_id": "ENT-002",
             "unloading_site_id": "ENT-001", "consignor": "海曙储运", "consignee": "镇海炼化", "carrier": "甬运物流",
             "planned_departure": _ts("2024-05-02T00:00:00Z"), "planned_arrival": _ts("2024-05-02T03:00:00Z"),
             "emergency_phone": "0574-87654321"},
        ], [LineString([(121.642, 29.982), (121.55, 29.9), (121.451, 29.851)]),
            LineString([(121.451, 29.851), (121.642, 29.982)])]),
        roads=_layer("roads", [
            {"id": "ROAD-G1501", "name": "绕城高速", "road_class": "expressway", "speed_limit_kmh": 80.0},
            {"id": "ROAD-S19", "name": "", "road_class": "primary", "speed_limit_kmh": 60.0},
        ], [LineString([(121.40, 29.90), (121.70, 29.95)]), LineString([(121.45, 29.80), (121.46, 29.95)])]),
        wash_stations=_layer("wash_stations", [
            {"id": "WS-01", "name": "镇海洗消站", "district_adcode": "330211"},
        ], [Point(121.63, 29.96)]),
        parking_lots=_layer("parking_lots", [
            {"id": "PL-01", "name": "危货停车场", "capacity": 40},
        ], [Point(121.60, 29.94)]),
        service_areas=_layer("service_areas", [
            {"id": "SA-01", "name": "宁波服务区", "road_id": "ROAD-G1501"},
        ], [Point(121.55, 29.925)]),
        repair_shops=_layer("repair_shops", [
            {"id": "RS-01", "name": "汽修厂"},
        ], [Point(121.52, 29.87)]),
        sensitive_sites=_layer("sensitive_sites", [
            {"id": "SITE-001", "name": "第一中学", "kind": "school"},
            {"id": "SITE-002", "name": "第二医院", "kind": "hospital"},
        ], [Point(121.47, 29.86), _box(121.48, 29.87, 0.005)]),
        restricted_zones=_layer("restricted_zones", [
            {"id": "ZONE-01", "name": "老城区", "kind": "city_centre", "closed_from": "07:00", "closed_to": "19:00",
             "barred_classes": ["1", "2.3", "6.1"], "speed_limit_kmh": None},
            {"id": "ZONE-02", "name": "水源保护区", "kind": "water_protection", "closed_from": "00:00",
             "closed_to": "24:00", "barred_classes": [], "speed_limit_kmh": 40.0},
        ], [_box(121.53, 29.86, 0.02), MultiPolygon([_box(121.30, 29.70, 0.05), _box(121.36, 29.70, 0.02)])]),
        hazard_source_chemicals=_child("hazard_source_chemicals", [
            {"hazard_source_id": "HS-001", "un_number": "1005", "quantity_t": 12.25},
            {"hazard_source_id": "HS-001", "un_number": "1017", "quantity_t": 5.5},
        ]),
        waybill_goods=_child("waybill_goods", [
            {"waybill_id": "WB-0001", "seq": 1, "un_number": "1203", "name": "汽油", "hazard_class": "3",
             "packing_group": "II", "quantity_t": 18.0},
            {"waybill_id": "WB-0001", "seq": 2, "un_number": "1230", "name": "甲醇", "hazard_class": "3",
             "packing_group": None, "quantity_t": 0.125},
            {"waybill_id": "WB-0002", "seq": 1, "un_number": "1075", "name": "液化石油气", "hazard_class": "2.1",
             "packing_group": None, "quantity_t": 9.9},
        ]),
        departments=_child("departments", [
            {"id": "DEPT-EM", "name": "宁波市应急管理局", "name_en": "Emergency Management", "kind": "emergency_management",
             "district_adcode": None, "contact": "值班室, 24 h", "phone": "0574-87000000", "email": "yj@nb.gov.cn"},
            {"id": "DEPT-HS", "name": "海曙区应急管理局", "name_en": "Haishu district office", "kind": "district_office",
             "district_adcode": "330203", "contact": "\"值班\"", "phone": "0574-87100000", "email": None},
        ]),
        routing=_child("routing", [
            {"id": "RT-01", "rule": "*", "subject_kind": "vehicle", "role": "carrier", "max_severity": None},
            {"id": "RT-02", "rule": "point_level", "subject_kind": "monitoring_point", "role": "emergency_management",
             "max_severity": 2},
        ]),
        chemicals=CATALOGUE,
    )


def assert_world_equal(actual: World, expected: World) -> None:
    for name in LAYER_SPECS:
        got, want = actual.table(name), expected.table(name)
        assert_geodataframe_equal(got, want, check_less_precise=False)
        # exact: the same vertices in the same order, to the last bit
        assert shapely.equals_exact(got.geometry.to_numpy(), want.geometry.to_numpy(), tolerance=0).all(), name
    for name in (*CHILD_SPECS, *PLAIN_SPECS):
        assert_frame_equal(actual.table(name), expected.table(name), obj=name)


def _read_dir(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def world() -> World:
    return build_test_world()


@pytest.fixture(scope="module")
def exported(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "world"
    export_world(world, out)
    return out


@pytest.fixture
def folder(exported, tmp_path) -> Path:
    """A private copy of the good export, to break."""
    target = tmp_path / "in"
    shutil.copytree(exported, target)
    return target


# --------------------------------------------------------------------------------------
# round trip


def test_export_writes_one_file_per_layer_in_spec_order(world, tmp_path):
    paths = export_world(world, tmp_path / "out")
    assert [p.name for p in paths] == [f"{name}.geojson" for name in LAYER_SPECS] + [f"{n}.csv" for n in PLAIN_SPECS]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left behind


def test_round_trip_gives_the_same_world_and_the_same_bytes(world, exported, tmp_path):
    imported = import_world(exported, chemicals=CATALOGUE)
    assert_world_equal(imported, world)
    assert imported.chemicals is CATALOGUE
    for name in LAYER_SPECS:
        table = imported.table(name)
        assert table.crs.to_epsg() == 4326
        assert list(table.columns) == [*LAYER_SPECS[name].columns, "geometry"]
    assert str(imported.waybills["planned_departure"].dtype) == "datetime64[us, UTC]"
    assert imported.entities["park_id"].tolist() == ["CP-01", None, None]
    assert imported.vehicles["approved_media"].tolist() == [["1203", "1230"], []]
    assert imported.sensitive_sites.geometry.geom_type.tolist() == ["Point", "Polygon"]
    assert imported.roads["name"].tolist() == ["绕城高速", ""]  # "" is a value, not a null

    export_world(imported, tmp_path / "again")
    assert _read_dir(tmp_path / "again") == _read_dir(exported)


def test_export_layout_is_the_documented_one(exported):
    text = (exported / "hazard_sources.geojson").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0] == '{"type":"FeatureCollection","name":"hazard_sources","features":['
    assert lines[-2:] == ["]}", ""]
    first = json.loads(lines[1].rstrip(","))
    assert first["id"] == first["properties"]["id"] == "HS-001"
    assert list(first) == ["type", "id", "properties", "geometry"]
    assert list(first["properties"]) == [*LAYER_SPECS["hazard_sources"].columns, "chemicals"]
    assert first["properties"]["chemicals"] == [{"un_number": "1005", "quantity_t": 12.25},
                                                {"un_number": "1017", "quantity_t": 5.5}]
    assert "液氯储罐区" in text  # UTF-8, not \\u escapes
    second = json.loads(lines[2])
    assert second["properties"]["chemicals"] == []

    waybills = json.loads((exported / "waybills.geojson").read_text(encoding="utf-8"))
    props = waybills["features"][0]["properties"]
    assert props["planned_departure"] == "2024-05-01T00:30:00Z"
    assert props["planned_arrival"] == "2024-05-01T02:15:30.250000Z"
    assert [g["seq"] for g in props["goods"]] == [1, 2] and "waybill_id" not in props["goods"][0]
    assert props["goods"][1]["packing_group"] is None

    entities = json.loads((exported / "entities.geojson").read_text(encoding="utf-8"))
    assert [f["id"] for f in entities["features"]] == ["ENT-001", "ENT-002", "ENT-003"]
    assert entities["features"][0]["geometry"]["coordinates"] == [121.6412345678901, 29.9812345678901]


def test_export_sorts_features_and_children_whatever_the_world_order(world, exported, tmp_path):
    shuffled = build_test_world()
    for name in (*LAYER_SPECS, *CHILD_SPECS, *PLAIN_SPECS):
        table = shuffled.table(name)
        setattr(shuffled, name, table.iloc[::-1].reset_index(drop=True))
    export_world(shuffled, tmp_path / "shuffled")
    assert _read_dir(tmp_path / "shuffled") == _read_dir(exported)


def test_export_accepts_loosely_typed_worlds(exported, tmp_path):
    """A store may hand back ints as floats, floats as ints, times in another zone or
    nanoseconds, strlists as tuples: the bytes are the same."""
    loose = build_test_world()
    loose.parking_lots["capacity"] = loose.parking_lots["capacity"].astype("float64")
    loose.roads["speed_limit_kmh"] = pd.Series([80, 60], dtype="int64")
    loose.waybills["planned_departure"] = loose.waybills["planned_departure"].dt.tz_convert("Asia/Shanghai")
    loose.waybills["planned_arrival"] = loose.waybills["planned_arrival"].astype("datetime64[ns, UTC]")
    loose.vehicles["approved_media"] = pd.Series([("1203", "1230"), np.array([], dtype=object)], dtype=object)
    loose.entities["name"] = loose.entities["name"].astype("str")
    export_world(loose, tmp_path / "loose")
    assert _read_dir(tmp_path / "loose") == _read_dir(exported)


def test_polygon_in_a_multipolygon_layer_is_promoted(folder):
    path = folder / "parks.geojson"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["features"][0]["geometry"] = {"type": "Polygon",
                                      "coordinates": doc["features"][0]["geometry"]["coordinates"][0]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    parks = import_world(folder).parks
    assert parks.geometry.iloc[0].geom_type == "MultiPolygon"
    assert parks.geometry.iloc[0].equals(build_test_world().parks.geometry.iloc[0])


def test_empty_layers_round_trip(tmp_path):
    world = build_test_world()
    for name in ("repair_shops", "restricted_zones"):
        setattr(world, name, world.table(name).iloc[0:0])
    export_world(world, tmp_path / "out")
    assert (tmp_path / "out" / "repair_shops.geojson").read_text() == (
        '{"type":"FeatureCollection","name":"repair_shops","features":[\n]}\n')
    imported = import_world(tmp_path / "out")
    assert len(imported.repair_shops) == 0 and len(imported.restricted_zones) == 0
    assert str(imported.restricted_zones["speed_limit_kmh"].dtype) == "float64"
    export_world(imported, tmp_path / "again")
    assert _read_dir(tmp_path / "again") == _read_dir(tmp_path / "out")


# --------------------------------------------------------------------------------------
# GCJ-02


def test_gcj02_import_lands_within_a_metre_of_the_wgs84_truth(world, tmp_path):
    shifted = build_test_world()
    for name in LAYER_SPECS:
        table = shifted.table(name)
        table.geometry = gpd.GeoSeries(geometry_wgs84_to_gcj02(table.geometry.to_numpy()), crs="EPSG:4326")
    export_world(shifted, tmp_path / "gcj")
    as_wgs84 = import_world(tmp_path / "gcj", crs="gcj02")
    as_is = import_world(tmp_path / "gcj")
    for name in LAYER_SPECS:
        truth = shapely.get_coordinates(world.table(name).geometry.to_numpy())
        got = shapely.get_coordinates(as_wgs84.table(name).geometry.to_numpy())
        raw = shapely.get_coordinates(as_is.table(name).geometry.to_numpy())
        tx, ty = to_metric(truth[:, 0], truth[:, 1])
        gx, gy = to_metric(got[:, 0], got[:, 1])
        rx, ry = to_metric(raw[:, 0], raw[:, 1])
        assert np.hypot(gx - tx, gy - ty).max() < 1.0, name
        assert np.hypot(rx - tx, ry - ty).min() > 100.0, name  # the shift was real: hundreds of metres
        assert_frame_equal(pd.DataFrame(as_wgs84.table(name).drop(columns="geometry")),
                           pd.DataFrame(world.table(name).drop(columns="geometry")), obj=name)


def test_unknown_crs_is_refused(exported):
    with pytest.raises(ValueError, match="crs must be one of wgs84, gcj02"):
        import_world(exported, crs="bd09")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# point tables (CSV, XLSX)


def _table_rows(world: World, layer: str, strlist_as_json: bool = False) -> tuple[list[str], list[list]]:
    spec = LAYER_SPECS[layer]
    table = world.table(layer)
    nested = [c for c in CHILD_SPECS.values() if c.parent == layer]
    header = ["lon", "lat", *spec.columns, *(c.nested_as for c in nested)]
    rows = []
    for i in range(len(table)):
        geom = table.geometry.iloc[i]
        row: list = [geom.x, geom.y]
        for f in spec.fields:
            value = table[f.name].iloc[i]
            if f.kind == "strlist":
                value = json.dumps(value) if strlist_as_json else ";".join(value)
            elif f.kind == "float":
                value = None if pd.isna(value) else float(value)
            elif f.kind == "int":
                value = int(value)
            elif f.kind == "bool":
                value = bool(value)
            row.append(value)
        for child in nested:
            children = world.table(child.name)
            mine = children[children[child.parent_key] == table["id"].iloc[i]].drop(columns=child.parent_key)
            row.append(json.dumps(mine.to_dict("records"), ensure_ascii=False))
        rows.append(row)
    return header, rows


def _write_csv(path: Path, header: list[str], rows: list[list], bom: bool = False) -> None:
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else ("true" if v is True else "false" if v is False else
                                                   repr(v) if isinstance(v, float) else v) for v in row])


def _write_xlsx(path: Path, header: list[str], rows: list[list]) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    sheet.append([None] * len(header))  # spreadsheets keep blank rows: they are ignored
    book.save(path)


def test_point_layers_from_csv_and_xlsx_tables(world, folder):
    for layer in ("entities", "vehicles", "hazard_sources", "monitoring_points"):
        (folder / f"{layer}.geojson").unlink()
    header, rows = _table_rows(world, "entities")
    _write_csv(folder / "entities.csv", header, rows, bom=True)  # Excel's "CSV UTF-8" starts with a BOM
    header, rows = _table_rows(world, "vehicles", strlist_as_json=False)
    rows[0][header.index("approved_media")] = '["1203", "1230"]'  # JSON array form in one row
    _write_csv(folder / "vehicles.csv", header, rows)
    header, rows = _table_rows(world, "hazard_sources")
    _write_xlsx(folder / "hazard_sources.xlsx", header, rows)
    header, rows = _table_rows(world, "monitoring_points")
    _write_xlsx(folder / "monitoring_points.xlsx", header, rows)
    # An adcode typed as a number in a spreadsheet is read as its text.
    header, rows = _table_rows(world, "wash_stations")
    rows[0][header.index("district_adcode")] = 330211
    (folder / "wash_stations.geojson").unlink()
    _write_xlsx(folder / "wash_stations.xlsx", header, rows)

    assert_world_equal(import_world(folder, chemicals=CATALOGUE), world)


def test_table_strlist_separator_and_empty_cells(world, folder):
    (folder / "vehicles.geojson").unlink()
    header, rows = _table_rows(world, "vehicles")
    rows[0][header.index("approved_media")] = " 1203 ; 1230 "
    rows[1][header.index("approved_media")] = ""
    _write_csv(folder / "vehicles.csv", header, rows)
    assert import_world(folder).vehicles["approved_media"].tolist() == [["1203", "1230"], []]


def test_gcj02_applies_to_tables_too(world, folder):
    (folder / "entities.geojson").unlink()
    header, rows = _table_rows(world, "entities")
    for row in rows:
        lon, lat = shapely.get_coordinates(geometry_wgs84_to_gcj02(np.array([Point(row[0], row[1])])))[0]
        row[0], row[1] = float(lon), float(lat)
    _write_csv(folder / "entities.csv", header, rows)
    # The whole folder is read as GCJ-02 (the other layers shift too); the entities are the check.
    got = import_world(folder, crs="gcj02").entities.geometry
    truth = world.entities.geometry
    gx, gy = to_metric(got.x.to_numpy(), got.y.to_numpy())
    tx, ty = to_metric(truth.x.to_numpy(), truth.y.to_numpy())
    assert np.hypot(gx - tx, gy - ty).max() < 1.0


TABLE_CASES = [
    # (what, cell to change (row index, column) -> value, expected fragments)
    ("bad bool", (1, "licensed", "maybe"), ["row 3 (id ENT-002)", "field licensed", "expected true/false"]),
    ("empty required", (0, "name", ""), ["row 2 (id ENT-001)", "field name", "empty cell"]),
    ("bad lon", (2, "lon", "121,47"), ["row 4 (id ENT-003)", "field lon", "expected a number"]),
    ("missing lat", (2, "lat", ""), ["row 4 (id ENT-003)", "field lat", "missing"]),
    ("bad prefix", (0, "id", "E-1"), ["row 2 (id E-1)", "field id", "must start with ENT-"]),
    ("not plain decimal", (1, "lon", "1_21.5"), ["row 3 (id ENT-002)", "field lon", "expected a number"]),
    ("swapped lon/lat", (1, "lon", "29.85"), ["row 3 (id ENT-002)", "field lon/lat", "far outside China"]),
]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("what, change, fragments", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_bad_table_cells_are_named(world, folder, suffix, what, change, fragments):
    (folder / "entities.geojson").unlink()
    header, rows = _table_rows(world, "entities")
    row, column, value = change
    rows[row][header.index(column)] = value
    (_write_csv if suffix == ".csv" else _write_xlsx)(folder / f"entities{suffix}", header, rows)
    with pytest.raises(ExchangeError) as caught:
        import_world(folder)
    line = next(p for p in caught.value.problems if p.startswith(f"entities{suffix}: "))
    for fragment in fragments:
        assert fragment in line, (fragment, line)


def test_bad_table_header_is_named(world, folder):
    (folder / "entities.geojson").unlink()
    header, rows = _table_rows(world, "entities")
    header[header.index("lat")] = "latitude"
    _write_csv(folder / "entities.csv", header, rows)
    with pytest.raises(ExchangeError) as caught:
        import_world(folder)
    assert "entities.csv: column 'latitude': unknown column" in str(caught.value)
    assert "entities.csv: column 'lat' is missing (required)" in str(caught.value)


def test_xlsx_dates_need_a_time_zone(world, folder):
    """A spreadsheet date cell has no zone; the format does not guess one."""
    (folder / "entities.geojson").unlink()
    header, rows = _table_rows(world, "entities")
    rows[0][header.index("name")] = pd.Timestamp("2024-05-01 08:00").to_pydatetime()
    _write_xlsx(folder / "entities.xlsx", header, rows)
    with pytest.raises(ExchangeError, match=r"entities\.xlsx: row 2 \(id ENT-001\): field name: .*no time zone"):
        import_world(folder)


# --------------------------------------------------------------------------------------
# validation: one table of broken inputs, each naming file, feature and field


def _edit(file: str, feature_id: str | None, edit):
    """A mutation: load `file`, apply `edit` to the feature with that id (or the document)."""

    def apply(folder: Path) -> None:
        path = folder / file
        doc = json.loads(path.read_text(encoding="utf-8"))
        if feature_id is None:
            edit(doc)
        else:
            edit(next(f for f in doc["features"] if f["id"] == feature_id))
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")

    return apply


def _props(**changes):
    def edit(feature):
        for key, value in changes.items():
            if value is _DELETE:
                del feature["properties"][key]
            else:
                feature["properties"][key] = value

    return edit


_DELETE = object()


def _geometry(geometry):
    def edit(feature):
        feature["geometry"] = geometry

    return edit


def _set(key, value):
    def edit(feature):
        feature[key] = value

    return edit


def _child_edit(nested: str, index: int, **changes):
    def edit(feature):
        item = feature["properties"][nested][index]
        for key, value in changes.items():
            if value is _DELETE:
                del item[key]
            else:
                item[key] = value

    return edit


def _append_child(nested: str, item: dict):
    def edit(feature):
        feature["properties"][nested].append(item)

    return edit


def _rename_id(old: str, new: str):
    def edit(feature):
        feature["id"] = feature["properties"]["id"] = new

    return edit


BOWTIE = {"type": "Polygon", "coordinates": [[[121.6, 29.9], [121.7, 30.0], [121.7, 29.9], [121.6, 30.0],
                                              [121.6, 29.9]]]}

BAD_FEATURES = [
    # (case, file, feature id, edit, expected "feature n (id x): field f" and the words)
    ("missing required", "entities.geojson", "ENT-002", _props(name=_DELETE),
     "feature 2 (id ENT-002): field name", "missing (required)"),
    ("null required", "hazard_sources.geojson", "HS-001", _props(people_500m=None),
     "feature 1 (id HS-001): field people_500m", "null, but the field is required"),
    ("int as text", "hazard_sources.geojson", "HS-002", _props(people_500m="12"),
     "feature 2 (id HS-002): field people_500m", "expected an integer"),
    ("int as float", "hazard_sources.geojson", "HS-002", _props(grade=2.0),
     "feature 2 (id HS-002): field grade", "expected an integer"),
    ("float as text", "hazard_sources.geojson", "HS-001", _props(alpha="2.0"),
     "feature 1 (id HS-001): field alpha", "expected a number"),
    ("bool as text", "entities.geojson", "ENT-003", _props(licensed="no"),
     "feature 3 (id ENT-003): field licensed", "expected true or false"),
    ("datetime not ISO", "waybills.geojson", "WB-0002", _props(planned_departure="2024/05/02 00:00"),
     "feature 2 (id WB-0002): field planned_departure", "ISO-8601"),
    ("datetime without offset", "waybills.geojson", "WB-0001", _props(planned_arrival="2024-05-01T02:15:30"),
     "feature 1 (id WB-0001): field planned_arrival", "UTC offset"),
    ("waybill status unknown", "waybills.geojson", "WB-0001", _props(status="delivered"),
     "feature 1 (id WB-0001): field status", "must be one of planned, active, done, cancelled"),
    ("unloaded before departing", "waybills.geojson", "WB-0001",
     _props(actual_departure="2024-05-01T03:00:00+00:00", actual_unloading="2024-05-01T02:00:00+00:00"),
     "feature 1 (id WB-0001): field actual_unloading", "is before/below actual_departure"),
    ("strlist as text", "vehicles.geojson", "VEH-0001", _props(approved_media="1203;1230"),
     "feature 1 (id VEH-0001): field approved_media", "expected an array of strings"),
    ("closed hour not HH:MM", "restricted_zones.geojson", "ZONE-01", _props(closed_from="7am"),
     "feature 1 (id ZONE-01): field closed_from", "must be a local time HH:MM"),
    ("closed hour past midnight", "restricted_zones.geojson", "ZONE-02", _props(closed_to="24:30"),
     "feature 2 (id ZONE-02): field closed_to", "must be a local time HH:MM"),
    ("strlist of numbers", "restricted_zones.geojson", "ZONE-01", _props(barred_classes=[1, 2.3]),
     "feature 1 (id ZONE-01): field barred_classes", "expected an array of strings"),
    ("string as number", "districts.geojson", "DIST-330203", _props(name_en=330203),
     "feature 1 (id DIST-330203): field name_en", "expected a string"),
    ("unknown field", "entities.geojson", "ENT-001", _props(owner="x"),
     "feature 1 (id ENT-001): field owner", "unknown field"),
    ("out of range", "hazard_sources.geojson", "HS-001", _props(grade=7),
     "feature 1 (id HS-001): field grade", "must be 1, 2, 3 or 4"),
    ("negative capacity", "parking_lots.geojson", "PL-01", _props(capacity=-1),
     "feature 1 (id PL-01): field capacity", "must be ≥ 0"),
    ("range inverted", "monitoring_points.geojson", "MP-002", _props(range_max=-1.0),
     "feature 2 (id MP-002): field range_max", "below range_min"),
    ("arrival before departure", "waybills.geojson", "WB-0002", _props(planned_arrival="2024-05-01T00:00:00Z"),
     "feature 2 (id WB-0002): field planned_arrival", "before/below planned_departure"),
    ("wrong geometry type", "entities.geojson", "ENT-001",
     _geometry({"type": "LineString", "coordinates": [[121.6, 29.9], [121.7, 29.9]]}),
     "feature 1 (id ENT-001): field geometry", "wrong geometry type LineString"),
    ("geometry collection", "sensitive_sites.geojson", "SITE-001",
     _geometry({"type": "GeometryCollection", "geometries": []}),
     "feature 1 (id SITE-001): field geometry", "GeometryCollection is not accepted"),
    ("self-intersecting polygon", "parks.geojson", "CP-01", _geometry(BOWTIE),
     "feature 1 (id CP-01): field geometry", "invalid geometry: Self-intersection"),
    ("unclosed ring", "restricted_zones.geojson", "ZONE-01",
     _geometry({"type": "Polygon", "coordinates": [[[121.6, 29.9], [121.7, 29.9], [121.7, 30.0], [121.6, 30.0]]]}),
     "feature 1 (id ZONE-01): field geometry", "closed ring"),
    ("empty geometry", "repair_shops.geojson", "RS-01", _geometry({"type": "Point", "coordinates": []}),
     "feature 1 (id RS-01): field geometry", "empty Point"),
    ("null geometry", "wash_stations.geojson", "WS-01", _geometry(None),
     "feature 1 (id WS-01): field geometry", "missing geometry"),
    ("one-point line", "roads.geojson", "ROAD-S19", _geometry({"type": "LineString", "coordinates": [[121.5, 29.9]]}),
     "feature 2 (id ROAD-S19): field geometry", "at least 2 positions"),
    ("3-D position", "entities.geojson", "ENT-002", _geometry({"type": "Point", "coordinates": [121.5, 29.9, 4.0]}),
     "feature 2 (id ENT-002): field geometry", "3-D positions"),
    ("text coordinate", "entities.geojson", "ENT-002", _geometry({"type": "Point", "coordinates": ["121.5", 29.9]}),
     "feature 2 (id ENT-002): field geometry", "two finite numbers"),
    ("lon/lat swapped", "vehicles.geojson", "VEH-0002", _geometry({"type": "Point", "coordinates": [29.9, 121.55]}),
     "feature 2 (id VEH-0002): field geometry", "position [29.9, 121.55] is outside the lon/lat range"),
    ("far outside China", "parking_lots.geojson", "PL-01", _geometry({"type": "Point", "coordinates": [2.35, 48.85]}),
     "feature 1 (id PL-01): field geometry", "far outside China"),
    ("id without prefix", "repair_shops.geojson", "RS-01", _rename_id("RS-01", "R-01"),
     "feature 1 (id R-01): field id", "must start with RS-"),
    ("bare prefix", "repair_shops.geojson", "RS-01", _rename_id("RS-01", "RS-"),
     "feature 1 (id RS-): field id", "must start with RS-"),
    ("duplicate id", "sensitive_sites.geojson", "SITE-002", _rename_id("SITE-002", "SITE-001"),
     "feature 2 (id SITE-001): field id", "duplicate id 'SITE-001' (also feature 1)"),
    ("feature id differs", "entities.geojson", "ENT-003", _set("id", "ENT-004"),
     "feature 3 (id ENT-003): field id", "differs from properties.id"),
    ("unknown feature member", "entities.geojson", "ENT-003", _set("style", {"color": "red"}),
     "feature 3 (id ENT-003): field style", "unknown Feature member"),
    ("dangling entity", "hazard_sources.geojson", "HS-002", _props(entity_id="ENT-999"),
     "feature 2 (id HS-002): field entity_id", "'ENT-999' is not the id of any feature in entities.geojson"),
    ("dangling hazard source", "monitoring_points.geojson", "MP-001", _props(hazard_source_id="HS-404"),
     "feature 1 (id MP-001): field hazard_source_id", "not the id of any feature in hazard_sources.geojson"),
    ("dangling vehicle", "waybills.geojson", "WB-0002", _props(vehicle_id="VEH-9"),
     "feature 2 (id WB-0002): field vehicle_id", "not the id of any feature in vehicles.geojson"),
    ("dangling loading site", "waybills.geojson", "WB-0001", _props(loading_site_id="ENT-9"),
     "feature 1 (id WB-0001): field loading_site_id", "not the id of any feature in entities.geojson"),
    ("dangling unloading site", "waybills.geojson", "WB-0001", _props(unloading_site_id="ENT-9"),
     "feature 1 (id WB-0001): field unloading_site_id", "not the id of any feature in entities.geojson"),
    ("dangling park", "entities.geojson", "ENT-002", _props(park_id="CP-99"),
     "feature 2 (id ENT-002): field park_id", "not the id of any feature in parks.geojson"),
    ("dangling road", "service_areas.geojson", "SA-01", _props(road_id="ROAD-X"),
     "feature 1 (id SA-01): field road_id", "not the id of any feature in roads.geojson"),
    ("dangling district", "wash_stations.geojson", "WS-01", _props(district_adcode="330999"),
     "feature 1 (id WS-01): field district_adcode", "not the adcode of any feature in districts.geojson"),
    ("child wrong type", "waybills.geojson", "WB-0001", _child_edit("goods", 1, quantity_t="0.125"),
     "feature 1 (id WB-0001): field goods[2].quantity_t", "expected a number"),
    ("child missing field", "hazard_sources.geojson", "HS-001", _child_edit("chemicals", 0, un_number=_DELETE),
     "feature 1 (id HS-001): field chemicals[1].un_number", "missing (required)"),
    ("child with parent key", "waybills.geojson", "WB-0002", _child_edit("goods", 0, waybill_id="WB-0002"),
     "feature 2 (id WB-0002): field goods[1].waybill_id", "parent key is implied"),
    ("child duplicate seq", "waybills.geojson", "WB-0001", _child_edit("goods", 1, seq=1),
     "feature 1 (id WB-0001): field goods", "seq 1 appears more than once"),
    ("children not a list", "hazard_sources.geojson", "HS-002", _props(chemicals={}),
     "feature 2 (id HS-002): field chemicals", "expected an array of objects"),
    ("children missing", "waybills.geojson", "WB-0002", _props(goods=_DELETE),
     "feature 2 (id WB-0002): field goods", "missing (required"),
]


@pytest.mark.parametrize("case, file, feature_id, edit, where, words", BAD_FEATURES,
                         ids=[c[0] for c in BAD_FEATURES])
def test_bad_feature_is_named_by_file_feature_and_field(folder, case, file, feature_id, edit, where, words):
    _edit(file, feature_id, edit)(folder)
    with pytest.raises(ExchangeError) as caught:
        import_world(folder, chemicals=CATALOGUE)
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{file}: {where}: "), problems[0]
    assert words in problems[0], problems[0]
    assert problems[0] in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_unknown_un_numbers_need_a_catalogue(folder):
    _edit("hazard_sources.geojson", "HS-001", _append_child("chemicals", {"un_number": "9999", "quantity_t": 1.0}))(
        folder)
    _edit("monitoring_points.geojson", "MP-002", _props(substance_un="8888"))(folder)
    import_world(folder)  # without a catalogue UN numbers are not checked
    with pytest.raises(ExchangeError) as caught:
        import_world(folder, chemicals=CATALOGUE)
    assert caught.value.problems == [
        "hazard_sources.geojson: feature 1 (id HS-001): field chemicals[3].un_number: "
        "unknown UN number '9999' (not in the chemical catalogue)",
        "monitoring_points.geojson: feature 2 (id MP-002): field substance_un: "
        "unknown UN number '8888' (not in the chemical catalogue)",
    ]
    with pytest.raises(ExchangeError, match="8888"):
        import_world(folder, chemicals=["1005", "1017", "1203", "1230", "1075", "9999"])


def test_all_problems_are_collected_in_file_then_feature_order(folder):
    _edit("waybills.geojson", "WB-0002", _props(vehicle_id="VEH-9"))(folder)
    _edit("entities.geojson", "ENT-003", _props(licensed="no", category=None))(folder)
    _edit("entities.geojson", "ENT-001", _geometry({"type": "Point", "coordinates": [29.9, 121.6]}))(folder)
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(ExchangeError) as caught:
        import_world(folder)
    problems = caught.value.problems
    assert [p.split(": field ")[0] for p in problems] == [
        "notes.txt: unknown file (expected <layer>.geojson for the layers " + ", ".join(LAYER_SPECS)
        + ", or <layer>.csv / .xlsx for point layers; <table>.csv / .xlsx for the tables departments, routing)",
        "entities.geojson: feature 1 (id ENT-001)",
        "entities.geojson: feature 3 (id ENT-003)",
        "entities.geojson: feature 3 (id ENT-003)",
        "waybills.geojson: feature 2 (id WB-0002)",
    ]
    assert str(caught.value).startswith(f"cannot import {folder}: 5 problem(s)\n  notes.txt: ")


BAD_FOLDERS = [
    # (case, how to break the folder, expected problem)
    ("unknown file", lambda d: (d / "readme.md").write_text("x"), "readme.md: unknown file"),
    ("unknown layer", lambda d: (d / "bridges.geojson").write_text("{}"), "bridges.geojson: unknown file"),
    ("table for a line layer", lambda d: (d / "roads.csv").write_text("lon,lat\n"),
     "roads.csv: only point layers may come as tables; send roads.geojson"),
    ("two files for a layer", lambda d: (d / "entities.csv").write_text("lon,lat\n"),
     "entities.csv: the entities layer comes in 2 files (entities.csv, entities.geojson): keep one"),
    ("missing layer file", lambda d: (d / "roads.geojson").unlink(), "roads.geojson: missing: every layer"),
    ("malformed JSON", lambda d: (d / "parks.geojson").write_text('{"type": "FeatureCollection",\n "features": [}'),
     "parks.geojson: malformed JSON at line 2 column 15: "),
    ("NaN in JSON", lambda d: (d / "parks.geojson").write_text('{"type": "FeatureCollection", "features": [NaN]}'),
     "parks.geojson: malformed JSON: NaN is not a JSON number"),
    ("not UTF-8", lambda d: (d / "parks.geojson").write_bytes('{"name": "镇海"}'.encode("gb18030")),
     "parks.geojson: not UTF-8 text"),
    ("not a collection", lambda d: (d / "parks.geojson").write_text('{"type": "Feature"}'),
     "parks.geojson: not a GeoJSON FeatureCollection"),
    ("projected crs", lambda d: (d / "parks.geojson").write_text(
        '{"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32651"}}, "features": []}'),
     "parks.geojson: crs \"EPSG:32651\" (string) is not WGS-84"),
    ("not a feature", lambda d: (d / "parks.geojson").write_text('{"type": "FeatureCollection", "features": [[]]}'),
     "parks.geojson: feature 1 (id ?): not a GeoJSON Feature"),
    ("duplicate key", lambda d: (d / "repair_shops.geojson").write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"RS-01","name":"a","name":"b"},'
        '"geometry":{"type":"Point","coordinates":[121.5,29.9]}}]}'),
     "repair_shops.geojson: feature 1 (id RS-01): field name: appears twice in the object"),
]


@pytest.mark.parametrize("case, breaks, expected", BAD_FOLDERS, ids=[c[0] for c in BAD_FOLDERS])
def test_bad_folder_is_named(folder, case, breaks, expected):
    breaks(folder)
    with pytest.raises(ExchangeError) as caught:
        import_world(folder)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_an_unreadable_file_is_reported_once_not_per_reference(folder):
    (folder / "entities.geojson").write_text("[")
    with pytest.raises(ExchangeError) as caught:
        import_world(folder)
    assert [p.split(":")[0] for p in caught.value.problems] == ["entities.geojson"]


def test_empty_or_missing_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".DS_Store").write_text("")  # hidden files are ignored, so this is empty
    with pytest.raises(ExchangeError, match="no layer files"):
        import_world(tmp_path / "empty")
    with pytest.raises(ExchangeError, match="not a folder"):
        import_world(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------
# export: validation and atomicity


def test_export_refuses_an_inconsistent_world_and_writes_nothing(tmp_path):
    world = build_test_world()
    world.hazard_sources.loc[0, "entity_id"] = "ENT-999"
    world.vehicles.loc[1, "plate"] = None
    with pytest.raises(ExchangeError) as caught:
        export_world(world, tmp_path / "out")
    assert caught.value.problems == [
        "hazard_sources.geojson: feature 1 (id HS-001): field entity_id: "
        "'ENT-999' is not the id of any feature in entities.geojson",
        "vehicles.geojson: feature 2 (id VEH-0002): field plate: null, but the field is required",
    ]
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_orphan_child_rows_and_missing_columns(tmp_path):
    world = build_test_world()
    world.waybill_goods.loc[0, "waybill_id"] = "WB-9999"
    with pytest.raises(ExchangeError, match="waybill_goods: waybill_id 'WB-9999' is not an id in waybills"):
        export_world(world, tmp_path / "out")
    world = build_test_world()
    world.roads = world.roads.drop(columns="road_class")
    with pytest.raises(ExchangeError, match="roads: column 'road_class' is missing"):
        export_world(world, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_no_half_written_folder(world, exported, tmp_path, monkeypatch):
    real_write = exchange._write_file
    calls = []

    def failing_write(path, data):
        calls.append(path.name)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(exchange, "_write_file", failing_write)
    with pytest.raises(OSError, match="No space left"):
        export_world(world, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a staging folder

    previous = tmp_path / "previous"
    shutil.copytree(exported, previous)
    (previous / "roads.geojson").write_text("an older export")
    before = _read_dir(previous)
    calls.clear()
    with pytest.raises(OSError):
        export_world(world, previous)
    assert _read_dir(previous) == before
    assert [p.name for p in tmp_path.iterdir()] == ["previous"]

    monkeypatch.setattr(exchange, "_write_file", real_write)
    export_world(world, previous)  # a good export replaces the previous one whole
    assert _read_dir(previous) == _read_dir(exported)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous"]


def test_export_never_replaces_a_folder_with_other_files(world, tmp_path):
    target = tmp_path / "docs"
    target.mkdir()
    (target / "report.pdf").write_bytes(b"%PDF")
    with pytest.raises(ExchangeError, match="holds files that are not a hazmap export"):
        export_world(world, target)
    assert [p.name for p in target.iterdir()] == ["report.pdf"]
    target.joinpath("report.pdf").unlink()
    export_world(world, target)  # an empty folder is fine
    assert len(list(target.iterdir())) == len(LAYER_SPECS) + len(PLAIN_SPECS)


# --------------------------------------------------------------------------------------
# the demo world


def _canonical_rows(table: pd.DataFrame, spec) -> list[tuple]:
    """A table's rows as JSON-like values, whatever its dtypes (the demo generator and the
    store use pandas' string dtype, the importer Python objects)."""
    columns = [exchange._export_values(f, table[f.name]) for f in spec.fields]
    return list(zip(*columns))


def test_demo_world_round_trips_with_its_catalogue(tmp_path):
    from data.demo import build_world

    world = build_world(seed=1, scale=0.02)
    export_world(world, tmp_path / "a")
    imported = import_world(tmp_path / "a", chemicals=world.chemicals)
    export_world(imported, tmp_path / "b")
    assert _read_dir(tmp_path / "a") == _read_dir(tmp_path / "b")
    for name, spec in {**LAYER_SPECS, **CHILD_SPECS, **PLAIN_SPECS}.items():
        keys = exchange._child_sort_keys(spec) if name in CHILD_SPECS else ["id"]
        original = world.table(name).sort_values(keys, kind="stable", ignore_index=True)
        got = imported.table(name)
        assert len(got) == len(original) > 0, name
        assert _canonical_rows(got, spec) == _canonical_rows(original, spec), name
        if name in LAYER_SPECS:
            assert shapely.equals_exact(got.geometry.to_numpy(), original.geometry.to_numpy(), tolerance=0).all()


# --------------------------------------------------------------------------------------
# the specification's examples are valid


DOC = Path(__file__).resolve().parents[1] / "docs" / "exchange-format.md"
_PREFIXES = {spec.id_prefix: name for name, spec in LAYER_SPECS.items()}


def _fenced_blocks(text: str, language: str) -> list[str]:
    parts = text.split("```" + language + "\n")[1:]
    return [part.split("```", 1)[0] for part in parts]


def test_the_documented_examples_pass_validation(tmp_path):
    """Every example feature in docs/exchange-format.md passes every check that needs no
    other feature (references aside), and the CSV example reads."""
    text = DOC.read_text(encoding="utf-8")
    lines = [line for block in _fenced_blocks(text, "json") for line in block.splitlines() if line.strip()]
    assert len(lines) >= 6
    seen = set()
    for line in lines:
        feature = json.loads(line)
        layer = _PREFIXES[feature["id"].split("-")[0] + "-"]
        seen.add(LAYER_SPECS[layer].geometry)
        problems = exchange._Problems(exchange._file_ranks())
        collection = json.dumps({"type": "FeatureCollection", "features": [feature]}, ensure_ascii=False)
        loaded = exchange._read_geojson_text(collection, LAYER_SPECS[layer], f"{layer}.geojson", problems)
        exchange._check_geometries({layer: loaded}, "wgs84", problems)
        assert not problems, problems.lines()
    assert seen == {"Point", "LineString", "MultiPolygon", "Geometry"}

    (csv_example,) = _fenced_blocks(text, "csv")
    path = tmp_path / "entities.csv"
    path.write_text(csv_example, encoding="utf-8")
    problems = exchange._Problems(exchange._file_ranks())
    loaded = exchange._read_table(path, LAYER_SPECS["entities"], path.name, problems)
    assert not problems, problems.lines()
    assert [r.typed["park_id"] for r in loaded.records] == ["CP-02", None]


# --------------------------------------------------------------------------------------
# plain tables: departments and routing (CSV, no geometry)


def test_plain_tables_are_csv_with_a_header_and_rows_by_id(exported):
    text = (exported / "routing.csv").read_text(encoding="utf-8")
    assert text.split("\n") == [
        "id,rule,subject_kind,role,max_severity",
        "RT-01,*,vehicle,carrier,",
        "RT-02,point_level,monitoring_point,emergency_management,2",
        "",
    ]
    assert '"""值班"""' in (exported / "departments.csv").read_text(encoding="utf-8")


def test_a_folder_without_plain_tables_imports_them_empty(folder):
    (folder / "departments.csv").unlink()
    (folder / "routing.csv").unlink()
    imported = import_world(folder)
    assert imported.departments.empty and list(imported.departments.columns) == PLAIN_SPECS["departments"].columns
    assert imported.routing.empty


def _write_lines(folder: Path, name: str, lines: list[str]) -> None:
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_bad_departments_and_routing_are_each_named_with_their_row(folder):
    _write_lines(folder, "departments.csv", [
        "id,name,name_en,kind,district_adcode,contact,phone,email",
        "DEPT-EM,应急局,EM,emergency_management,,值班室,0574-1,",
        "DEPT-X,某局,X,secret_police,,值班室,0574-2,",
        "DEPT-HS,海曙,Haishu,district_office,330203,值班室,0574-3,",
        "DEPT-HS2,海曙2,Haishu 2,district_office,330203,值班室,0574-4,",
        "DEPT-Z,无区,No district,district_office,,值班室,0574-5,",
        "DEPT-Q,外区,Elsewhere,district_office,339999,值班室,,",
        "OFFICE-1,前缀,Prefix,transport,,值班室,0574-6,",
    ])
    _write_lines(folder, "routing.csv", [
        "id,rule,subject_kind,role,max_severity",
        "RT-1,*,vehicle,carrier,",
        "RT-2,speeding,vehicle,traffic_police,",
        "RT-3,point_level,monitoring_point,carrier,",
        "RT-4,*,ship,plant,5",
    ])
    with pytest.raises(ExchangeError) as caught:
        import_world(folder)
    problems = caught.value.problems
    assert problems == [
        "departments.csv: row 3 (id DEPT-X): field kind: unknown department kind 'secret_police' (expected one of "
        + ", ".join(DEPARTMENT_KINDS) + ")",
        "departments.csv: row 5 (id DEPT-HS2): field district_adcode: district 330203 has a district office "
        "already (row 4)",
        "departments.csv: row 6 (id DEPT-Z): field district_adcode: a district office needs its district's adcode",
        "departments.csv: row 7 (id DEPT-Q): field phone: empty cell, but the field is required",
        "departments.csv: row 7 (id DEPT-Q): field district_adcode: '339999' is not the adcode of any feature in "
        "districts.geojson",
        "departments.csv: row 8 (id OFFICE-1): field id: must start with DEPT- followed by the rest of the id, "
        "got 'OFFICE-1'",
        "routing.csv: row 3 (id RT-2): field role: no department of kind 'traffic_police' (roles: carrier, "
        "district_office, emergency_management, plant, secret_police, transport)",
        "routing.csv: row 4 (id RT-3): field role: carrier does not apply to a monitoring point",
        "routing.csv: row 5 (id RT-4): field max_severity: must be 1 (red), 2, 3 or 4 (blue), got '5'",
        "routing.csv: row 5 (id RT-4): field subject_kind: unknown subject kind 'ship' (expected vehicle, "
        "monitoring_point)",
    ]


def test_plain_table_as_geojson_and_unknown_carrier_are_refused(folder):
    (folder / "routing.csv").rename(folder / "routing.geojson")
    _edit("vehicles.geojson", "VEH-0001", _props(carrier_id="ENT-404"))(folder)
    with pytest.raises(ExchangeError) as caught:
        import_world(folder)
    text = "\n".join(caught.value.problems)
    assert "routing.geojson: routing has no geometry: send routing.csv or routing.xlsx" in text
    assert "field carrier_id: 'ENT-404' is not the id of any feature in entities.geojson" in text
