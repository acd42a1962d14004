"""The live layer in real headless Chromium: the real Dash app with a live source whose
LiveState a background thread keeps changing (a few trucks driving circles every 0.5 s,
readings, alerts opened while the page watches).

What a duty officer relies on: every truck with a position is drawn; a moving truck moves
on the screen between polls; an alerted truck and point take their alert colours (read back
from the canvas pixels, not only from the debug handle); a click on a live truck opens its
details with its live state, and a click on a moving truck draws its trail of the last 2 h
(following it while selected, gone when the panel closes); the overlays hide the layer; the
header shows the feed's clock; the console stays clean (unreachable tiles apart).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from layers.live import LIVE_POINTS_TITLE, LIVE_TRUCKS_TITLE, TRAIL_COLOR, LiveEncoder, dequantise, quantise
from layers.style import LIVE_POINT_STYLES, LIVE_TRUCK_STYLES
from spatial.model import Event, LiveState, PingBatch, ReadingBatch
from tests.browser.conftest import UNREACHABLE_TILES

pytestmark = pytest.mark.browser

SEED = 11
SCALE = 0.05
STEP_S = 0.5
FEED_START = pd.Timestamp("2026-11-02T08:00:00+08:00")  # the simulator's day, not today
CIRCLE_DEG = 0.01  # the moving trucks drive circles of ~1 km around their home
LOAD_TIMEOUT_MS = 30_000
HISTORY_PINGS = 240  # the moving trucks' 2 h before the feed starts, a ping every 30 s
HISTORY_STOP = slice(100, 113)  # ... with a 6 min stop on the way
HISTORY_FROM_DEG = (0.06, 0.04)  # ... driving in from here (relative to home)


class ScriptedFeed:
    """A live source as the app's LiveMonitor is one: `snapshot()` copies a LiveState that a
    background thread changes. Four trucks drive circles, after 2 h of driving in to their
    home (a ping every 30 s, one 6 min stop); one truck reported last 30 min before the others
    (stale); every point but three has read; `open_alerts()` opens a severity-1 alert on one
    truck and one point, as the rule engine would; `pause()` holds the state still."""

    def __init__(self, world):
        vehicles = world.vehicles
        self.ids = vehicles["id"].to_numpy(object)
        self.home = np.column_stack([vehicles.geometry.x.to_numpy(), vehicles.geometry.y.to_numpy()])
        self.moving = self.ids[:4]
        self.stale = self.ids[4]
        self.alerted_truck = self.ids[5]
        points = world.monitoring_points
        self.point_ids = points["id"].to_numpy(object)
        self.unread_points = self.point_ids[-3:]
        self.alerted_point = _loneliest_point(points, self.home)
        self._state = LiveState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = False
        self._step = 0
        t0 = int(FEED_START.value // 1_000_000)
        history = self._history(t0)
        epoch = np.full(len(self.ids), t0)
        epoch[4] = t0 - 30 * 60_000
        still = PingBatch.from_arrays(self.ids, epoch, self.home[:, 0], self.home[:, 1], np.zeros(len(self.ids)),
                                      np.zeros(len(self.ids)))
        read = self.point_ids[:-3]
        readings = ReadingBatch.from_arrays(read, np.full(len(read), t0), np.ones(len(read)))
        with self._lock:
            self._state.apply_pings(history)
            self._state.apply_pings(still)
            self._state.apply_readings(readings)
        self._thread = threading.Thread(target=self._run, name="scripted-live-feed", daemon=True)

    def _history(self, t0: int) -> PingBatch:
        """The moving trucks' last 2 h: a straight drive in to home at 40 km/h, stopped a while."""
        share = np.linspace(0.0, 1.0, HISTORY_PINGS, endpoint=False)
        epoch = t0 - (HISTORY_PINGS - np.arange(HISTORY_PINGS)) * 30_000
        speed = np.full(HISTORY_PINGS, 40.0)
        speed[HISTORY_STOP] = 0.0
        share[HISTORY_STOP] = share[HISTORY_STOP.start]  # standing still
        home = self.home[:4]
        lon = (home[:, :1] + HISTORY_FROM_DEG[0] * (1 - share)).ravel()
        lat = (home[:, 1:] + HISTORY_FROM_DEG[1] * (1 - share)).ravel()
        ids = np.repeat(self.moving, HISTORY_PINGS)
        return PingBatch.from_arrays(ids, np.tile(epoch, 4), lon, lat, np.tile(speed, 4), np.zeros(len(ids)))

    def snapshot(self) -> LiveState:
        with self._lock:
            return self._state.copy()

    def start(self) -> "ScriptedFeed":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def pause(self) -> None:
        """No more changes until `resume()` (a step under way finishes first)."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    @property
    def step(self) -> int:
        return self._step

    def circle_position(self, vehicle_id: str, step: int) -> tuple[float, float]:
        home = self.home[list(self.ids).index(vehicle_id)]
        angle = step * 0.4
        return home[0] + CIRCLE_DEG * np.cos(angle), home[1] + CIRCLE_DEG * np.sin(angle)

    def open_alerts(self) -> None:
        start = FEED_START + pd.Timedelta(seconds=self._step)
        events = [
            Event("speeding", self.alerted_truck, "EP-T", "open", start, None, *self.home[5], 1, {}),
            Event("point_level", self.alerted_point, "EP-P", "open", start, None, 0.0, 0.0, 1, {}),
        ]
        with self._lock:
            self._state.apply_events(events)

    def _run(self) -> None:
        while not self._stop.wait(STEP_S):
            with self._lock:
                if self._paused:
                    continue
                self._step += 1
                k = self._step
                lon, lat = zip(*(self.circle_position(v, k) for v in self.moving))  # four trucks: a tiny loop
                heading = (np.degrees(-k * 0.4) + 360) % 360  # counter-clockwise round the circle
                epoch = int(FEED_START.value // 1_000_000) + k * 1000
                batch = PingBatch.from_arrays(self.moving, np.full(4, epoch), lon, lat, np.full(4, 40.0),
                                              np.full(4, heading))
                readings = ReadingBatch.from_arrays(self.point_ids[:5], np.full(5, epoch), np.full(5, 1.0 + k % 3))
                self._state.apply_pings(batch)
                self._state.apply_readings(readings)


def _loneliest_point(points, truck_lonlat: np.ndarray) -> str:
    """The point farthest from every truck's home (no truck drawn over it)."""
    xy = np.column_stack([points.geometry.x.to_numpy(), points.geometry.y.to_numpy()])
    nearest = np.sqrt(((xy[:, None, :] - truck_lonlat[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    return str(points["id"].iloc[int(np.argmax(nearest))])


@dataclass
class LiveApp:
    url: str
    world: object
    feed: ScriptedFeed


@pytest.fixture(scope="module")
def live_app(tmp_path_factory) -> Iterator[LiveApp]:
    from werkzeug.serving import make_server

    from app.settings import Settings
    from app.webapp import create_app
    from data.demo import build_world

    world = build_world(seed=SEED, scale=SCALE)
    feed = ScriptedFeed(world).start()
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), tile_url=UNREACHABLE_TILES, language="zh")
    web = create_app(settings, world, world_version=world.fingerprint(), live=feed)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-live-test-server", daemon=True)
    thread.start()
    try:
        yield LiveApp(f"http://127.0.0.1:{server.server_port}/", world, feed)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        feed.stop()


def _rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


# The live canvas's pixel under a container point (read from the canvas itself).
CANVAS_PIXEL_JS = """([x, y]) => {
    const map = window.hazmap.leafletMap;
    const canvas = window.hazmapLive.canvas();
    const layer = map.containerPointToLayerPoint([x, y]);
    const origin = L.DomUtil.getPosition(canvas);
    const ratio = canvas.width / canvas.clientWidth;
    const px = Math.floor((layer.x - origin.x) * ratio), py = Math.floor((layer.y - origin.y) * ratio);
    return Array.from(canvas.getContext('2d').getImageData(px, py, 1, 1).data);
}"""


def wait_for_trucks(page, n: int) -> None:
    page.wait_for_function("(n) => window.hazmapLive && window.hazmapLive.trucks === n", arg=n,
                           timeout=LOAD_TIMEOUT_MS, polling=100)


def centre_on(page, lonlat, zoom: int = 15) -> None:
    """Centre the map on a place and wait until the live canvas has been redrawn there."""
    page.evaluate("""([lon, lat, zoom]) => {
        const map = window.hazmap.leafletMap;
        map.setView([lat, lon], zoom, {animate: false});
    }""", [lonlat[0], lonlat[1], zoom])
    page.wait_for_timeout(200)


def test_live_trucks_move_and_alerts_take_their_colours(page, live_app, console):
    feed, world = live_app.feed, live_app.world
    page.goto(live_app.url)
    wait_for_trucks(page, len(world.vehicles))
    loaded_at = page.evaluate("performance.now()")

    # Everything the feed holds is drawn, in the state the server decided.
    assert page.evaluate("(id) => window.hazmapLive.stateOf(id)", feed.stale) == "stale"
    parked = str(world.vehicles["id"].iloc[-1])
    assert page.evaluate("(id) => window.hazmapLive.stateOf(id)", parked) == "parked"
    assert page.evaluate("(id) => window.hazmapLive.statusOf(id)", feed.unread_points[0]) == "unknown"
    assert page.evaluate("(id) => window.hazmapLive.statusOf(id)", str(feed.point_ids[0])) == "normal"

    # A moving truck moves on the screen between two polls, within 10 s of the page loading.
    mover = str(feed.moving[0])
    first = page.evaluate("""(id) => ({v: window.hazmapLive.version, px: window.hazmapLive.drawnPixel(id),
                                       at: window.hazmapLive.positionsOf(id)})""", mover)
    assert first["px"] is not None, "the moving truck is not drawn"
    page.wait_for_function(
        """([id, v, px]) => {
            const live = window.hazmapLive, now = live.drawnPixel(id);
            return live.version > v && now && (now[0] !== px[0] || now[1] !== px[1]);
        }""",
        arg=[mover, first["v"], first["px"]], timeout=10_000, polling=100,
    )
    second = page.evaluate("""(id) => ({t: performance.now(), px: window.hazmapLive.drawnPixel(id),
                                        at: window.hazmapLive.positionsOf(id),
                                        state: window.hazmapLive.stateOf(id)})""", mover)
    assert second["t"] - loaded_at < 10_000
    assert second["at"] != first["at"]
    assert second["state"] == "moving"
    # The position the screen holds is one the truck drove through, to quantisation precision (~3 m).
    radius = np.hypot(second["at"][0] - feed.home[0][0], second["at"][1] - feed.home[0][1])
    assert abs(radius - CIRCLE_DEG) < 1e-4

    # Alerts opened while the page watches reach it through the incremental frames.
    feed.open_alerts()
    page.wait_for_function(
        """([truck, point]) => window.hazmapLive.stateOf(truck) === 'alert_high'
                               && window.hazmapLive.statusOf(point) === 'alarm_high'""",
        arg=[feed.alerted_truck, feed.alerted_point], timeout=10_000, polling=100,
    )
    home = feed.home[5]
    centre_on(page, home)
    pixel = page.evaluate("(id) => window.hazmapLive.drawnPixel(id)", feed.alerted_truck)
    assert page.evaluate(CANVAS_PIXEL_JS, pixel) == [*_rgb(LIVE_TRUCK_STYLES["alert_high"].color), 255]

    point = world.monitoring_points.set_index("id").geometry[feed.alerted_point]
    centre_on(page, (point.x, point.y))
    pixel = page.evaluate("(id) => window.hazmapLive.pointPixel(id)", feed.alerted_point)
    assert page.evaluate(CANVAS_PIXEL_JS, pixel) == [*_rgb(LIVE_POINT_STYLES["alarm_high"].color), 255]

    # A stale and a parked truck in their own colours too.
    for vehicle, state in ((feed.stale, "stale"), (parked, "parked")):
        centre_on(page, feed.home[list(feed.ids).index(vehicle)], zoom=17)
        pixel = page.evaluate("(id) => window.hazmapLive.drawnPixel(id)", vehicle)
        assert page.evaluate(CANVAS_PIXEL_JS, pixel) == [*_rgb(LIVE_TRUCK_STYLES[state].color), 255], vehicle

    # The header shows the feed's clock (Beijing time of the newest report), not today's.
    assert page.locator("#hz-feed-clock").inner_text().startswith("2026-11-02 08:")
    assert console.unexpected() == [], "console errors besides unreachable tiles:\n" + "\n".join(console.unexpected())


def test_clicking_a_live_truck_opens_its_details_with_its_live_state(page, live_app, console):
    feed, world = live_app.feed, live_app.world
    page.goto(live_app.url)
    wait_for_trucks(page, len(world.vehicles))
    truck = feed.stale
    centre_on(page, feed.home[list(feed.ids).index(truck)], zoom=17)
    x, y = page.evaluate("""(id) => {
        const p = window.hazmapLive.drawnPixel(id);
        const box = window.hazmap.leafletMap.getContainer().getBoundingClientRect();
        return [box.left + p[0], box.top + p[1]];
    }""", truck)
    page.mouse.click(x, y)
    panel = page.locator("#hz-panel.hz-open")
    panel.wait_for(timeout=10_000)
    assert panel.locator(".hz-panel-layer").inner_text() == "危货车辆"
    plate = world.vehicles.set_index("id").loc[truck, "plate"]
    assert panel.locator(".hz-panel-title").inner_text() == plate
    live = dict(zip(panel.locator(".hz-panel-live th").all_inner_texts(),
                    panel.locator(".hz-panel-live td").all_inner_texts()))
    assert live["实时状态"] == LIVE_TRUCK_STYLES["stale"].label[0]
    assert live["最后上报"] == "2026-11-02 07:30:00"
    assert console.unexpected() == [], "console errors besides unreachable tiles:\n" + "\n".join(console.unexpected())


def test_live_overlays_are_in_the_legend_and_hide_the_layer(page, live_app, console):
    feed, world = live_app.feed, live_app.world
    page.goto(live_app.url)
    wait_for_trucks(page, len(world.vehicles))
    legend = page.locator("#hz-legend")
    assert LIVE_TRUCKS_TITLE[0] in legend.inner_text() and LIVE_POINTS_TITLE[0] in legend.inner_text()
    for style in LIVE_TRUCK_STYLES.values():
        assert style.label[0] in legend.inner_text()

    truck = str(world.vehicles["id"].iloc[-1])  # parked all along
    centre_on(page, feed.home[-1], zoom=17)
    pixel = page.evaluate("(id) => window.hazmapLive.drawnPixel(id)", truck)
    parked = [*_rgb(LIVE_TRUCK_STYLES["parked"].color), 255]
    assert page.evaluate(CANVAS_PIXEL_JS, pixel) == parked

    label = page.locator(".leaflet-control-layers-overlays label").filter(has_text=LIVE_TRUCKS_TITLE[0])
    label.click()
    page.wait_for_function("() => !window.hazmapLive.shown.trucks", timeout=5_000)
    page.wait_for_function("(id) => window.hazmapLive.drawnPixel(id) === null", arg=truck, timeout=5_000)
    assert page.evaluate(CANVAS_PIXEL_JS, pixel) != parked
    assert LIVE_TRUCKS_TITLE[0] not in page.locator("#hz-legend").inner_text()
    label.click()
    page.wait_for_function("(id) => window.hazmapLive.drawnPixel(id) !== null", arg=truck, timeout=5_000)
    assert console.unexpected() == [], "console errors besides unreachable tiles:\n" + "\n".join(console.unexpected())


# Container pixels of lon/lat positions on the current view.
CONTAINER_PIXELS_JS = """(positions) => positions.map(
    ([lon, lat]) => { const p = window.hazmap.leafletMap.latLngToContainerPoint([lat, lon]); return [p.x, p.y]; })"""


def click_truck(page, vehicle_id: str) -> None:
    """Click where the screen last drew the truck (through the page, as an officer would)."""
    x, y = page.evaluate("""(id) => {
        const p = window.hazmapLive.drawnPixel(id);
        const box = window.hazmap.leafletMap.getContainer().getBoundingClientRect();
        return [box.left + p[0], box.top + p[1]];
    }""", vehicle_id)
    page.mouse.click(x, y)


def is_trail_colour(rgba: list[int]) -> bool:
    """The trail's colour near full strength: the newest part, which fades a few steps with age
    (how many pings lie behind depends on when the feed was paused; seen: 222 for 229)."""
    return rgba[3] >= 240 and all(abs(a - b) <= 10 for a, b in zip(rgba[:3], _rgb(TRAIL_COLOR)))


def settled(page, feed: ScriptedFeed) -> int:
    """Pause the feed and wait until the screen holds its last version (trucks stand still)."""
    feed.pause()
    version = feed.snapshot().version
    page.wait_for_function("(v) => window.hazmapLive.version === v", arg=version, timeout=10_000, polling=100)
    return version


def wait_for_trail(page, vehicle_id: str, version: int) -> dict:
    """The screen's trail of `vehicle_id` once it is of `version` and drawn."""
    page.wait_for_function(
        """([id, v]) => { const t = window.hazmapLive.trailOf();
                          return t && t.id === id && t.version === v && t.drawn === t.n && t.n > 0; }""",
        arg=[vehicle_id, version], timeout=10_000, polling=100)
    return page.evaluate("window.hazmapLive.trailOf()")


def test_clicking_a_moving_truck_draws_its_trail_until_the_panel_closes(page, live_app, console):
    feed, world = live_app.feed, live_app.world
    page.goto(live_app.url)
    wait_for_trucks(page, len(world.vehicles))
    mover = str(feed.moving[0])
    centre_on(page, feed.home[0], zoom=15)
    deadline = time.monotonic() + 15
    while feed.step < 14 and time.monotonic() < deadline:  # most of a lap of its circle behind it
        time.sleep(0.1)
    try:
        version = settled(page, feed)
        state = feed.snapshot()
        expected = state.trail(mover)
        assert len(expected) > HISTORY_PINGS  # the 2 h in and the circle so far

        # The circle it drove: its pings but the newest two, where nothing else is drawn, as the
        # screen holds them (quantised like the trucks: ~3 m, most of a pixel at this zoom).
        truck_px = np.array(page.evaluate("(id) => window.hazmapLive.drawnPixel(id)", mover))
        bbox = LiveEncoder(world).bbox
        recent = expected.iloc[-14:-2]
        held = dequantise(*quantise(recent["lon"].to_numpy(), recent["lat"].to_numpy(), bbox)[:2], bbox)
        pixels = page.evaluate(CONTAINER_PIXELS_JS, np.column_stack(held).tolist())
        free = [px for px in pixels if np.hypot(*(np.array(px) - truck_px)) > 25
                and page.evaluate("([x, y]) => window.hazmapLive.hitAt(x, y)", px) is None]
        assert len(free) >= 6, f"too few of the truck's past positions are clear of other glyphs: {free}"
        assert page.evaluate("window.hazmapLive.trailOf()") is None
        assert not any(is_trail_colour(page.evaluate(CANVAS_PIXEL_JS, px)) for px in free)

        click_truck(page, mover)
        page.locator("#hz-panel.hz-open").wait_for(timeout=10_000)
        shown = wait_for_trail(page, mover, version)
        # The screen holds LiveState.trail of the truck, ping for ping; the 6 min stop is a dot.
        assert shown["n"] == len(expected) and shown["stops"] == 1
        colours = [page.evaluate(CANVAS_PIXEL_JS, px) for px in free]
        # Most of its past positions show the trail's colour (one may blend with a neighbour's
        # antialiased edge or the stop's dot: seen 1 of 12 at alpha 239 when the whole file runs).
        trail_coloured = sum(is_trail_colour(c) for c in colours)
        assert trail_coloured >= 0.8 * len(colours), f"not the trail's colour {TRAIL_COLOR}: {colours}"
        # The truck itself stays on top of its trail.
        assert page.evaluate(CANVAS_PIXEL_JS, truck_px.tolist()) == [*_rgb(LIVE_TRUCK_STYLES["moving"].color), 255]

        # While selected the trail follows the truck: fetched again as the feed moves on.
        feed.resume()
        page.wait_for_function("(v) => window.hazmapLive.trailOf().version > v", arg=version, timeout=10_000,
                               polling=100)
        version = settled(page, feed)
        shown = wait_for_trail(page, mover, version)
        assert shown["n"] == len(feed.snapshot().trail(mover))
        stats = page.evaluate("window.hazmapLive.stats()")
        # Drawing the trail is a small part of a paint, far from a long task (50 ms).
        assert stats["trailMs"] and max(stats["trailMs"]) < 50, stats["trailMs"]
        print(f"\ntrail of {shown['n']} pings: draw ms {sorted(stats['trailMs'])}, "
              f"decode ms {sorted(stats['trailDecodeMs'])}, payload chars {stats['trailChars'][-1]}, "
              f"paint ms median {float(np.median(stats['paintMs'])):.1f}")

        # Another truck clicked: its trail (one ping, it reported once) replaces the mover's.
        other = feed.stale
        centre_on(page, feed.home[list(feed.ids).index(other)], zoom=17)
        click_truck(page, other)
        shown = wait_for_trail(page, other, version)
        assert shown["n"] == len(feed.snapshot().trail(other)) == 1
        # The drill-down panel takes the map to its entity when it arrives: let it arrive before
        # the view is moved away, as an officer reads the panel first.
        page.wait_for_function(
            """(id) => { const n = document.querySelector('#hz-panel-body .hz-panel-focus');
                         return n !== null && JSON.parse(n.getAttribute('data-focus')).id === id; }""",
            arg=other, timeout=10_000, polling=100)

        # The panel closed: no trail is selected or drawn.
        centre_on(page, feed.home[0], zoom=15)
        click_truck(page, mover)
        wait_for_trail(page, mover, version)
        page.locator("#hz-panel-close").click()
        page.wait_for_function("() => window.hazmapLive.trailOf() === null", timeout=5_000)
        page.wait_for_timeout(200)
        assert not any(is_trail_colour(page.evaluate(CANVAS_PIXEL_JS, px)) for px in free)
    finally:
        feed.resume()
    assert console.unexpected() == [], "console errors besides unreachable tiles:\n" + "\n".join(console.unexpected())
