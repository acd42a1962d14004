"""Browser-test fixtures: a demo world written to and read back from a SQLite store, the real
app serving it on a free port, and headless Chromium (Debian's, never `playwright install`).

Tiles point at a closed local port: no tile server is reachable here, and the map must stay
readable without one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import CHROMIUM_ARGS, chromium_path

# Point symbols at every zoom in the browser tests: the counts per cell that replace them below
# `point_symbols_min_zoom` (issue 15) are tested in test_grid.py, which sets it.
os.environ.setdefault("HAZMAP_POINT_SYMBOLS_MIN_ZOOM", "0")

DEMO_SEED = 7
DEMO_SCALE = 0.03
# Port 9 (discard) on loopback: refused at once, like a tile server that is down.
UNREACHABLE_TILES = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
WALL_1080 = {"width": 1920, "height": 1080}
WALL_2160 = {"width": 3840, "height": 2160}
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "screenshots"


@dataclass
class StoredWorld:
    world: object  # spatial.model.World, as loaded back from the store
    counts: dict[str, int]  # the store's own count of every table


@pytest.fixture(scope="session")
def stored_world(tmp_path_factory) -> StoredWorld:
    """build_world(seed=7, scale=0.03) -> SQLite store -> loaded back: the screen shows what a
    store holds, not what the generator happened to keep in memory."""
    from data.demo import build_world
    from data.reference import load_chemicals
    from data.store import Store

    chemicals = load_chemicals()
    url = f"sqlite:///{(tmp_path_factory.mktemp('store') / 'hazmap.sqlite').as_posix()}"
    with Store.open(url, upgrade=True) as store:
        store.replace_world(build_world(seed=DEMO_SEED, scale=DEMO_SCALE, chemicals=chemicals))
    with Store.open(url) as store:
        return StoredWorld(store.load_world(chemicals=chemicals), store.counts())


@dataclass
class LiveServer:
    url: str
    world_version: str
    stored: StoredWorld


@pytest.fixture(scope="session")
def live_server(stored_world, tmp_path_factory) -> Iterator[LiveServer]:
    from werkzeug.serving import make_server

    from app.settings import Settings
    from app.webapp import create_app

    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), tile_url=UNREACHABLE_TILES, language="zh")
    version = stored_world.world.fingerprint()
    web = create_app(settings, stored_world.world, world_version=version)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-test-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}/", version, stored_world)
    finally:
        server.shutdown()
        thread.join(timeout=10)


# Package scope: Playwright's sync API runs an asyncio loop in this thread while it lives;
# stopping it when the browser tests end lets later tests (the gateway's) use asyncio.run.
@pytest.fixture(scope="package")
def chromium():
    executable = chromium_path()  # fails under CI=true when Chromium is missing, skips elsewhere
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions of a page, tile failures set apart."""

    errors: list[str] = field(default_factory=list)
    tile_failures: int = 0

    def unexpected(self) -> list[str]:
        return list(self.errors)


def _is_tile_failure(message) -> bool:
    return message.location.get("url", "").startswith(UNREACHABLE_TILES.split("{")[0])


def open_page(browser, viewport: dict, log: ConsoleLog, **context_options):
    context = browser.new_context(viewport=viewport, device_scale_factor=1, **context_options)
    page = context.new_page()

    def on_console(message):
        if message.type != "error":
            return
        if _is_tile_failure(message):
            log.tile_failures += 1
        else:
            location = message.location.get("url", "")
            log.errors.append(f"{message.text} ({location})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: log.errors.append(f"uncaught: {error}"))
    return context, page


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(chromium, console):
    context, page = open_page(chromium, WALL_1080, console)
    try:
        yield page
    finally:
        context.close()
