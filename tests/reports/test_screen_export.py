"""The screen's area export: a drawn polygon's snapshot as a ZIP of every format, through the
same path as `hazmap snapshot`; the draw control and the panel are in the app's layout."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from tests.reports.conftest import AT


def drawn(world):
    w, s, e, n = world.districts[world.districts["name"] == "北仑区"].total_bounds
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"type": "rectangle"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}]}


def test_export_drawn_area_zip(stored):
    from app.screen_reports import export_drawn
    from app.settings import Settings

    settings = Settings(database_url=stored["url"])
    name, data = export_drawn(settings, stored["world"], drawn(stored["world"]), at=AT)
    assert name.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert sorted(n.rsplit(".", 1)[1] for n in names) == ["geojson", "html", "pdf", "png", "xlsx"]
        doc = json.loads(archive.read(next(n for n in names if n.endswith(".geojson"))))
    assert doc["area"] == "drawn area" and doc["figures"]["trucks"] > 0


def test_nothing_drawn_is_one_message(stored):
    from app.screen_reports import export_drawn
    from app.settings import Settings
    from spatial.snapshot import AreaError

    with pytest.raises(AreaError, match="draw an area"):
        export_drawn(Settings(database_url=stored["url"]), stored["world"], {"type": "FeatureCollection",
                                                                             "features": []}, at=AT)


def test_layout_has_the_draw_control_and_the_export(stored):
    from app.screen_reports import DOWNLOAD_ID, DRAW_ID, EXPORT_ID
    from app.settings import Settings
    from app.webapp import create_app

    web = create_app(Settings(database_url=stored["url"]), stored["world"], world_version="t1")
    layout = json.dumps(web.layout().to_plotly_json(), default=lambda o: o.to_plotly_json()
                        if hasattr(o, "to_plotly_json") else str(o))
    for component_id in (DRAW_ID, EXPORT_ID, DOWNLOAD_ID):
        assert f'"{component_id}"' in layout
    assert any(DOWNLOAD_ID in str(k) for k in web.callback_map)  # the export callback is registered


def test_export_briefing_zip(stored):
    import pandas as pd

    from app.screen_reports import export_briefing
    from app.settings import Settings

    settings = Settings(database_url=stored["url"])
    now = pd.Timestamp("2026-11-03T08:00:00+08:00").tz_convert("UTC")
    name, data = export_briefing(settings, stored["world"], None, now=now)  # yesterday: 2 November
    assert name == "briefing_2026-11-02.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["briefing_2026-11-02.pdf", "briefing_2026-11-02.xlsx"]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        export_briefing(settings, stored["world"], "2 Nov", now=now)


def test_who_may_export():
    from app.screen_reports import may_export
    from data.people import User

    assert may_export(None)  # a screen without logins
    assert may_export(User("duty", "duty_officer"))
    assert not may_export(User("kiosk", "kiosk"))  # read-only wall
    assert not may_export(User("admin", "admin"))
    assert not may_export(User("plant", "enterprise", enterprise_id="ENT-000001"))  # would see others' items


def test_a_screen_export_is_audited_with_its_user_and_address(stored):
    """Issue 14: every export is in the audit log; the screen's downloads name who and from where."""
    import flask

    from app.screen_reports import _audit_export
    from data.people import PeopleStore, User
    from data.store import Store

    with Store.open(stored["url"]) as store:
        people = PeopleStore(store)
        before = len(people.read_audit())
        app = flask.Flask(__name__)
        with app.test_request_context("/", environ_base={"REMOTE_ADDR": "127.0.0.5"}):
            flask.g.hazmap_user = User("duty1", "duty_officer", None, None)
            _audit_export(people, "snapshot", "snapshot_北仑区.zip")
        rows = people.read_audit()
    assert len(rows) == before + 1
    row = rows.iloc[-1]
    assert (row["actor"], row["role"], row["address"], row["action"], row["target"]) == (
        "duty1", "duty_officer", "127.0.0.5", "export", "snapshot_北仑区.zip")
    assert row["details"] == {"what": "snapshot", "via": "screen"}
