"""On the wall screen, in Chromium: draw a rectangle with the draw control, press the export
button, get the drawn area's snapshot as a ZIP of every format."""

from __future__ import annotations

import io
import threading
import zipfile

import pytest

from tests.services import CHROMIUM_ARGS, chromium_path

UNREACHABLE_TILES = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"


@pytest.mark.browser
def test_draw_an_area_and_download_its_snapshot(stored, tmp_path):
    executable = chromium_path()
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from app.screen_reports import EXPORT_ID
    from app.settings import Settings
    from app.webapp import create_app

    settings = Settings(database_url=stored["url"], var_dir=tmp_path, tile_url=UNREACHABLE_TILES, language="zh")
    web = create_app(settings, stored["world"], world_version=stored["world"].fingerprint())
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    errors = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 900}, accept_downloads=True)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"http://127.0.0.1:{server.server_port}/")
                page.wait_for_selector(".leaflet-draw-draw-rectangle", timeout=60_000)
                page.click(".leaflet-draw-draw-rectangle")
                box = page.locator("#hz-map").bounding_box()
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(cx - 120, cy - 80)
                page.mouse.down()
                page.mouse.move(cx, cy, steps=5)
                page.mouse.move(cx + 120, cy + 80, steps=5)
                page.mouse.up()
                page.wait_for_timeout(500)
                with page.expect_download(timeout=120_000) as download:
                    page.click(f"#{EXPORT_ID}")
                data = open(download.value.path(), "rb").read()
            finally:
                browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert not errors, errors
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(n.rsplit(".", 1)[1] for n in archive.namelist()) == ["geojson", "html", "pdf", "png", "xlsx"]
