"""`hazmap snapshot`: one district at a past time in every format, read back — the same numbers
in the PDF's text, the XLSX, the GeoJSON and the HTML; the PDF's map drawn (pages rendered
by poppler); the HTML map opening in Chromium with every network request blocked; bad areas
and times refused with one message and no files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.reports.conftest import AT, run
from tests.services import CHROMIUM_ARGS, chromium_path, missing_service

AT_TEXT = "2026-11-02T10:00:00"


@pytest.fixture(scope="module")
def exported(stored, tmp_path_factory):
    out = tmp_path_factory.mktemp("snapshot")
    result = run(stored, "snapshot", "--district", "北仑区", "--at", AT_TEXT, "--out", str(out))
    assert result.exit_code == 0, result.output + repr(result.exception)
    files = {p.suffix[1:]: p for p in out.iterdir()}
    assert set(files) == {"pdf", "png", "xlsx", "geojson", "html"}
    return files


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        missing_service(f"poppler's {tool} (Debian poppler-utils)")
    return path


def pdf_figures(path) -> dict[str, str]:
    """Key figures from the PDF's text: each row 'Chinese label  English label  value'."""
    from spatial.snapshot import FIGURE_LABELS

    text = subprocess.run([_poppler("pdftotext"), "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    found = {}
    for key, (zh, en) in FIGURE_LABELS.items():
        match = re.search(rf"(?m)^\s*{re.escape(zh)}\s+{re.escape(en)}\s+(-?[\d.]+)\s*$", text)
        assert match, f"{key} ({zh} / {en}) not found in the PDF's text"
        found[key] = match.group(1)
    return found


def xlsx_figures(path) -> dict:
    from openpyxl import load_workbook

    ws = load_workbook(path, read_only=True)["summary"]
    return {row[3]: row[2] for row in ws.iter_rows(values_only=True) if row and len(row) >= 4 and row[3]
            and row[3] != "key"}


def test_every_format_gives_the_same_figures(exported):
    from spatial.snapshot import FIGURE_LABELS

    doc = json.loads(exported["geojson"].read_text(encoding="utf-8"))
    figures = doc["figures"]
    assert list(figures) == list(FIGURE_LABELS)
    # the staged picture: one point alarm open at T (the other closed before), the four
    # incidents not closed by T in the district, the one closed two days before left out
    assert figures["points_in_alarm"] == 1
    assert figures["incidents_open"] == 4
    assert figures["trucks"] > 0 and figures["hazard_sources"] > 0 and figures["score"] > 0

    pdf = pdf_figures(exported["pdf"])
    xlsx = xlsx_figures(exported["xlsx"])
    html = dict(re.findall(r'<tr data-key="(\w+)">.*?<td class="value">([^<]*)</td>',
                           exported["html"].read_text(encoding="utf-8")))
    for key, value in figures.items():
        assert float(pdf[key]) == pytest.approx(value, abs=1e-9), key
        assert float(xlsx[key]) == pytest.approx(value, abs=1e-9), key
        assert float(html[key]) == pytest.approx(value, abs=1e-9), key

    # the tables: each feature once in the GeoJSON, every row in the XLSX
    from openpyxl import load_workbook

    wb = load_workbook(exported["xlsx"], read_only=True)

    def rows(sheet):  # data rows under the header
        return sum(1 for _ in wb[sheet].iter_rows(min_row=2, values_only=True))

    layers = [f["properties"]["layer"] for f in doc["features"]]
    assert layers[0] == "area"
    assert layers.count("trucks") == figures["trucks"] == rows("trucks")
    assert layers.count("hazard_sources") == figures["hazard_sources"] == rows("hazard_sources")
    assert layers.count("cells") == figures["cells"] == rows("cells")
    assert layers.count("incidents") == rows("incidents")
    cell_sum = sum(f["properties"]["score"] for f in doc["features"] if f["properties"]["layer"] == "cells")
    assert cell_sum == pytest.approx(figures["score"], abs=1e-6)  # the cells add up to the area


def test_pdf_pages_show_the_map(exported, tmp_path):
    from matplotlib.image import imread

    subprocess.run([_poppler("pdftoppm"), "-r", "60", "-png", str(exported["pdf"]), str(tmp_path / "page")],
                   check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    first = imread(pages[0])[..., :3]
    h, w, _ = first.shape
    map_part = first[int(h * 0.15):int(h * 0.9), int(w * 0.03):int(w * 0.6)]
    # paper is white and text thin: the land's fill covers most of the map, the features add colour
    drawn = (map_part.min(axis=2) < 0.97).mean()
    colourful = ((map_part.max(axis=2) - map_part.min(axis=2)) > 0.2).mean()
    assert drawn > 0.3, f"only {drawn:.1%} of the map's place is drawn"
    assert colourful > 0.001, f"only {colourful:.2%} coloured pixels where the map should be"
    png = imread(exported["png"])[..., :3]
    assert (png.min(axis=2) < 0.97).mean() > 0.3


def test_pdf_text_is_chinese_and_selectable(exported):
    text = subprocess.run([_poppler("pdftotext"), str(exported["pdf"]), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "区域风险快照" in text and "北仑区" in text and "重大危险源" in text


def test_html_opens_offline_in_chromium_and_shows_the_features(exported):
    html = exported["html"].read_text(encoding="utf-8")
    assert not re.search(r'<(?:script|link|img)[^>]+(?:src|href)\s*=\s*"(?:https?:)?//', html), "a remote script or stylesheet is linked"
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    doc = json.loads(exported["geojson"].read_text(encoding="utf-8"))
    blocked, errors = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else (blocked.append(route.request.url), route.abort()))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(exported["html"].as_uri())
            page.wait_for_function("typeof L !== 'undefined'")
            counts = page.evaluate("""() => {
                const map = Object.values(window).find(v => v instanceof L.Map);
                const out = {points: 0, polygons: 0};
                map.eachLayer(l => { if (l instanceof L.CircleMarker) out.points++;
                                     else if (l instanceof L.Polygon) out.polygons++; });
                out.figures = document.querySelectorAll('#hazmap-figures tr').length;
                return out;
            }""")
        finally:
            browser.close()
    assert not blocked, f"the page tried the network: {blocked[:3]}"
    assert not errors, errors
    features = doc["features"]
    n_points = sum(f["geometry"]["type"] == "Point" for f in features)
    assert counts["points"] == n_points > 0
    assert counts["polygons"] >= sum(f["properties"]["layer"] == "cells" for f in features)
    assert counts["figures"] == len(doc["figures"])


@pytest.mark.parametrize("args, message", [
    (["--district", "火星区"], "unknown district"),
    (["--bbox", "100,10,101,11"], "wholly outside the city"),
    (["--bbox", "121.9,29.8,121.5,30.0"], "bbox is empty"),
    (["--geojson", "BOWTIE"], "self-intersecting"),
    (["--geojson", "EMPTY"], "empty"),
    (["--h3", "not-a-cell"], "not an H3 cell"),
    (["--district", "北仑区", "--at", "2099-01-01T00:00:00"], "in the future"),
    (["--district", "北仑区", "--at", "2026-10-01T00:00:00"], "before the store's data"),
    (["--district", "北仑区", "--formats", "pdf,doc"], "--formats"),
    ([], "exactly one area"),
])
def test_bad_areas_and_times_get_one_message_and_no_files(stored, tmp_path, args, message):
    from app.cli import UserError

    files = {"BOWTIE": {"type": "Polygon", "coordinates": [[[121.6, 29.8], [121.8, 29.9], [121.8, 29.8],
                                                            [121.6, 29.9], [121.6, 29.8]]]},
             "EMPTY": {"type": "FeatureCollection", "features": []}}
    for i, a in enumerate(args):
        if a in files:
            path = tmp_path / f"{a}.geojson"
            path.write_text(json.dumps(files[a]))
            args = [*args[:i], str(path), *args[i + 1:]]
    out = tmp_path / "out"
    at = [] if "--at" in args else ["--at", AT_TEXT]
    result = run(stored, "snapshot", *args, *at, "--out", str(out))
    assert isinstance(result.exception, UserError), result.output + repr(result.exception)
    assert message in str(result.exception)
    assert not out.exists() or not any(out.iterdir())


def test_partly_outside_is_clipped_and_says_so(stored, tmp_path):
    world = stored["world"]
    w, s, e, n = world.districts.total_bounds
    # the city's eastern edge: half of this box is sea
    result = run(stored, "snapshot", "--bbox", f"{e - 0.3},{(s + n) / 2 - 0.1},{e + 0.3},{(s + n) / 2 + 0.1}",
                 "--at", AT_TEXT, "--formats", "geojson", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "clipped to the city" in result.output
    doc = json.loads(next(tmp_path.glob("*.geojson")).read_text(encoding="utf-8"))
    assert "clipped to the city" in doc["features"][0]["properties"]["note"]
    assert doc["figures"]["area_km2"] < 0.95 * (0.6 * 0.2 * 111 * 111 * np.cos(np.radians((s + n) / 2)))


def test_other_area_kinds(stored, tmp_path):
    import h3

    park = stored["world"].parks["name"].iloc[0]
    centre = stored["world"].parks.geometry.iloc[0].representative_point()
    cell = h3.latlng_to_cell(centre.y, centre.x, 6)
    for args in (["--park", park], ["--h3", cell]):
        result = run(stored, "snapshot", *args, "--at", AT_TEXT, "--formats", "geojson", "--out", str(tmp_path / args[0][2:]))
        assert result.exit_code == 0, result.output + repr(result.exception)
    doc = json.loads(next((tmp_path / "h3").glob("*.geojson")).read_text(encoding="utf-8"))
    assert doc["area"].startswith(f"H3 {cell}")


@pytest.mark.postgis
def test_postgis_gives_the_same_snapshot(stored, postgis_url, tmp_path):
    """The same stored picture on PostGIS: the same figures as on SQLite."""
    from tests.reports.conftest import fill

    on_postgis = fill(postgis_url)
    figures = {}
    for name, store in (("sqlite", stored), ("postgis", on_postgis)):
        result = run(store, "snapshot", "--district", "北仑区", "--at", AT_TEXT, "--formats", "geojson",
                     "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output + repr(result.exception)
        figures[name] = json.loads(next((tmp_path / name).glob("*.geojson")).read_text(encoding="utf-8"))["figures"]
    assert figures["postgis"] == figures["sqlite"]


def test_every_export_is_in_the_audit_log(stored, exported, tmp_path):
    """Issue 14: every export is audited (who, what, where to) — snapshots, briefings, records."""
    from data.people import PeopleStore
    from data.store import Store

    result = run(stored, "briefing", "--date", "2026-11-02", "--formats", "xlsx", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output + repr(result.exception)
    with Store.open(stored["url"]) as store:
        rows = PeopleStore(store).read_audit()
    exports = rows[rows["action"] == "export"]
    whats = [d["what"] for d in exports["details"]]
    assert "snapshot" in whats and "briefing" in whats
    # other tests of this module export too: the row of this module's district export
    mine = exports[exports["target"] == str(exported["pdf"].parent)]
    assert len(mine) == 1
    snapshot = mine.iloc[0]
    assert snapshot["details"]["what"] == "snapshot" and snapshot["details"]["area"] == "北仑区"
    assert set(snapshot["details"]["formats"]) == {"pdf", "png", "xlsx", "geojson", "html"}
