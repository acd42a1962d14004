"""How the wall's canvases redraw, in real headless Chromium (assets/hazmap_canvas.js and the
layers on it): what the bench's zoom and tick figures rest on (issue 16).

- After a zoom, the static and vector canvases draw the view at once and their padding afterwards
  in idle strips: right after the zoom the view's features are drawn, once the strips are in the
  canvas holds what a redraw of the whole canvas at once draws: the same counts, the static
  canvas's pixels exactly, the vector canvas's within antialiasing (its strips compared over a
  loaded zoom band: a band's arrival redraws the whole canvas).
- A poll's redraw of the live canvas runs as several short tasks when the stamping outlasts the
  per-task budget, and the image it puts is the one a redraw at once gives.
- The static canvas's points, stamped on its worker in shared memory (the page cross-origin
  isolated), are the page's own stamping pixel for pixel; without isolation, without the worker's
  script or with a worker that fails, the page stamps.
"""

from __future__ import annotations

import math

import pytest

from layers.static_canvas import CANVAS_LAYERS
from layers.vector_canvas import VECTOR_LAYERS
from tests.browser.test_live_map import live_app, wait_for_trucks  # noqa: F401 (fixture)
from tests.browser.test_map import assert_no_console_errors
from tests.browser.test_wall import switch_on_every_layer, wait_for_drawn, wait_for_vector

pytestmark = pytest.mark.browser

# A canvas's pixels as RGBA words, read back from the canvas itself (compared in the page: a
# canvas holds millions).
PIXELS = "(c => new Uint32Array(c.getContext('2d').getImageData(0, 0, c.width, c.height).data.buffer))"
DIFFERING = "((a, b) => { let n = Math.abs(a.length - b.length); for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) n++; return n; })"

# Features of a static layer whose drawn point lies in a layer-point rectangle widened by `margin`
# px, from the features' lon/lat as the canvas holds them (quantised).
POINTS_IN_JS = """([name, ids, box, margin]) => {
    const map = window.hazmap.leafletMap;
    let n = 0;
    for (const id of ids) {
        const ll = window.hazmapStatic.lonLatOf(name, id);
        const p = map.latLngToLayerPoint([ll[1], ll[0]]);
        if (p.x >= box[0] - margin && p.x <= box[2] + margin && p.y >= box[1] - margin && p.y <= box[3] + margin) n++;
    }
    return n;
}"""

# A canvas's pixels drawn as it stands (the padding in strips) against the whole canvas drawn again
# at once: how many pixels differ, by how much at most in a channel, how many are drawn at all.
STRIPS_AGAINST_WHOLE_JS = """(handle) => {
    const read = c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const strips = read(window[handle].canvas());
    window[handle].redraw();
    const whole = read(window[handle].canvas());
    let differing = 0, largest = 0, drawn = 0;
    for (let i = 0; i < whole.length; i += 4) {
        let d = 0;
        for (let k = 0; k < 4; k++) d = Math.max(d, Math.abs(strips[i + k] - whole[i + k]));
        if (d) differing++;
        if (d > largest) largest = d;
        if (whole[i + 3]) drawn++;
    }
    return {differing: differing, largest: largest, drawn: drawn, size: whole.length / 4};
}"""

# Whether every vector layer's zoom band at the map's zoom is loaded (a hidden layer has none).
BANDS_IN_JS = "(names => names.every(n => !window.hazmapVector.band(n) || window.hazmapVector.band(n).loaded))"

VIEW_AND_CANVAS_JS = """(which) => {
    const map = window.hazmap.leafletMap, size = map.getSize(), v = map.containerPointToLayerPoint([0, 0]);
    const canvas = which === 'static' ? window.hazmapStatic.canvas() : window.hazmapVector.canvas();
    const at = L.DomUtil.getPosition(canvas);
    return {view: [v.x, v.y, v.x + size.x, v.y + size.y],
            canvas: [at.x, at.y, at.x + canvas.clientWidth, at.y + canvas.clientHeight]};
}"""


def open_with_every_layer_drawn(page, live_server) -> None:
    """The wall with every layer on, each canvas layer drawn with the store's count of features."""
    stored = live_server.stored.counts
    page.goto(live_server.url)
    page.wait_for_function("() => window.hazmapStatic && window.hazmapVector", timeout=30_000)
    switch_on_every_layer(page)
    wait_for_drawn(page, {name: stored[name] for name in CANVAS_LAYERS})
    wait_for_vector(page, {name: stored[name] for name in VECTOR_LAYERS})


def test_a_zoom_draws_the_view_at_once_and_the_padding_after_as_a_whole_redraw_would(page, live_server, console):
    world = live_server.stored.world
    open_with_every_layer_drawn(page, live_server)

    # Two steps in, about the first entity: part of the city falls in the canvases' padding.
    centre = world.entities.geometry.iloc[0]
    before = page.evaluate("""async ([lat, lon]) => {
        const map = window.hazmap.leafletMap;
        map.setView([lat, lon], map.getZoom() + 2, {animate: false});
        // what the canvases hold at the end of the zoom's task: the view, the padding still to come
        // (the static canvas puts its worker's pixels in a microtask the zoom queued, before this one)
        await Promise.resolve();
        return {static: window.hazmapStatic.drawn(), vector: window.hazmapVector.drawn(),
                settled: [window.hazmapStatic.settled(), window.hazmapVector.settled()]};
    }""", [centre.y, centre.x])
    assert before["settled"] == [False, False], "the padding is drawn after the view, not with it"
    ids = world.entities["id"].astype(str).tolist()
    boxes = page.evaluate(VIEW_AND_CANVAS_JS, "static")
    margin = 12  # px: assets/hazmap_static.js draws a point within this of its canvas's region
    in_view = page.evaluate(POINTS_IN_JS, ["entities", ids, boxes["view"], 0])
    in_view_wide = page.evaluate(POINTS_IN_JS, ["entities", ids, boxes["view"], 2 * margin])
    in_canvas = page.evaluate(POINTS_IN_JS, ["entities", ids, boxes["canvas"], 0])
    assert in_view >= 1 and in_view < in_canvas, "the zoom leaves entities in the padding"
    assert in_view <= before["static"]["entities"] <= in_view_wide

    page.wait_for_function("() => window.hazmapStatic.settled() && window.hazmapVector.settled()", timeout=10_000)
    after = {"static": page.evaluate("window.hazmapStatic.drawn()"), "vector": page.evaluate("window.hazmapVector.drawn()")}
    assert in_canvas <= after["static"]["entities"] <= page.evaluate(
        POINTS_IN_JS, ["entities", ids, boxes["canvas"], 2 * margin])
    assert after["vector"]["roads"] > before["vector"]["roads"]

    # The strips' canvas against the whole canvas drawn at once: the same features, the same pixels.
    static = page.evaluate(STRIPS_AGAINST_WHOLE_JS, "hazmapStatic")
    assert page.evaluate("window.hazmapStatic.drawn()") == after["static"]
    assert static["drawn"] > 1000, "the static canvas holds a drawing"
    assert static["differing"] == 0, static

    # The vector canvas: its zoom band for the new zoom was not loaded at the zoom above, and the
    # band's arrival redraws the whole canvas, strips or not. A step out and back, every band in,
    # draws the padding in strips over the loaded band; then the comparison is of strips.
    names = list(VECTOR_LAYERS)
    for step in (-1, +1):
        page.wait_for_function(f"(names) => window.hazmapVector.settled() && {BANDS_IN_JS}(names)", arg=names,
                               timeout=15_000)
        strips_now = page.evaluate(f"""([step, names]) => {{
            const map = window.hazmap.leafletMap;
            map.setZoom(map.getZoom() + step, {{animate: false}});
            return {{settled: window.hazmapVector.settled(), loaded: {BANDS_IN_JS}(names)}};
        }}""", [step, names])
    assert strips_now == {"settled": False, "loaded": True}, "the padding is drawn in strips over loaded bands"
    page.wait_for_function("() => window.hazmapVector.settled()", timeout=10_000)
    vector = page.evaluate(STRIPS_AGAINST_WHOLE_JS, "hazmapVector")
    assert vector["drawn"] > 1000, "the vector canvas holds a drawing"
    # Skia antialiases a path clipped to a strip a little differently from the same path drawn
    # whole (~0.3 % of pixels, by at most ~45 of 255 in a channel when measured): a feature missing
    # from a strip differs by its whole ink (up to 255) and over its whole length
    assert vector["differing"] <= 0.01 * vector["size"], vector
    assert vector["largest"] <= 96, vector
    assert_no_console_errors(console)


# The static and vector canvases' draws after a zoom (every 2D call on them): in which animation
# frame since the zoom and in which task (a counter bumped by the first call of a task, reset by the
# microtask checkpoint at its end).
STRIP_TASKS_JS = """async (step) => {
    const map = window.hazmap.leafletMap, proto = CanvasRenderingContext2D.prototype, calls = [];
    let frames = 0, task = 0, inTask = false, live = true;
    const tick = () => { frames++; if (live) requestAnimationFrame(tick); };
    const own = {putImageData: proto.putImageData, clearRect: proto.clearRect, stroke: proto.stroke};
    for (const k of Object.keys(own)) proto[k] = function () {
        const name = this.canvas.className;
        if (name.includes('hz-static-canvas') || name.includes('hz-vector-canvas')) {
            if (!inTask) { inTask = true; task++; queueMicrotask(() => { inTask = false; }); }
            calls.push([frames, task]);
        }
        return own[k].apply(this, arguments);
    };
    map.setZoom(map.getZoom() + step, {animate: false});
    const zoomTask = task;
    requestAnimationFrame(tick);
    while (!(window.hazmapStatic.settled() && window.hazmapVector.settled())) {
        await new Promise(r => setTimeout(r, 5));
    }
    live = false;
    Object.assign(proto, own);
    const strips = calls.filter(c => c[1] > zoomTask);
    return {firstFrame: Math.min(...strips.map(c => c[0])), tasks: new Set(strips.map(c => c[1])).size};
}"""


def test_after_a_zoom_the_padding_strips_of_both_canvases_run_together_after_the_zoom_s_frames(page, live_server,
                                                                                              console):
    """With software compositing every 2D canvas is copied at every commit, changed or not, and each
    task that draws a strip ends in a commit: the static and vector canvases' four strips run in
    the same four tasks (not eight), and none before the zoom's own frame and the next are out."""
    open_with_every_layer_drawn(page, live_server)
    names = list(VECTOR_LAYERS)
    for step in (+1, -1):  # every band of both zooms loaded: no whole redraw when a band comes
        page.evaluate("(step) => { const m = window.hazmap.leafletMap; m.setZoom(m.getZoom() + step, {animate: false}); }",
                      step)
        page.wait_for_function(f"(names) => window.hazmapStatic.settled() && window.hazmapVector.settled() && "
                               f"{BANDS_IN_JS}(names)", arg=names, timeout=15_000)
    for step in (+1, -1):
        strips = page.evaluate(STRIP_TASKS_JS, step)
        assert 1 <= strips["tasks"] <= 4, strips
        assert strips["firstFrame"] >= 2, strips
    assert_no_console_errors(console)


# The static canvas redrawn whole, its pixels kept in the page (`window.__static`), and what
# stamped them: the worker or the page (assets/hazmap_static.js `stampOnWorker`).
STATIC_REDRAW_JS = """(key) => {
    window.hazmapStatic.redraw();
    (window.__static = window.__static || {})[key] = %s(window.hazmapStatic.canvas());
    return window.hazmapStatic.stats().worker;
}""" % PIXELS


def test_the_static_canvas_is_stamped_on_its_worker_exactly_as_the_page_stamps_it(page, live_server, console):
    """The wall is cross-origin isolated (app/webapp.py), so the static canvas's points are stamped
    by its worker (assets/hazmap_static_worker.js) in memory shared with the page: the pixels, the
    drawn counts and what a click hits are those of the page's own stamping, at the city's view and
    two steps in, and a zoom's drawing is put within the zoom's task."""
    world = live_server.stored.world
    open_with_every_layer_drawn(page, live_server)
    assert page.evaluate("window.crossOriginIsolated"), "the wall's page is not cross-origin isolated"
    centre = world.entities.geometry.iloc[0]
    ids = world.entities["id"].astype(str).tolist()[:40]
    for step in (0, 2):
        if step:
            page.evaluate("([lat, lon, step]) => window.hazmap.leafletMap.setView([lat, lon], "
                          "window.hazmap.leafletMap.getZoom() + step, {animate: false})", [centre.y, centre.x, step])
            page.wait_for_function("() => window.hazmapStatic.settled()", timeout=10_000)
        page.wait_for_function(f"() => ({STATIC_REDRAW_JS})('worker')", timeout=10_000)  # once the worker is up
        on_worker = {"drawn": page.evaluate("window.hazmapStatic.drawn()"), "hits": page.evaluate(HITS_JS, ids)}
        page.evaluate("window.hazmapStatic.stampOnWorker(false)")
        assert page.evaluate(STATIC_REDRAW_JS, "page") is False
        on_page = {"drawn": page.evaluate("window.hazmapStatic.drawn()"), "hits": page.evaluate(HITS_JS, ids)}
        page.evaluate("window.hazmapStatic.stampOnWorker(true)")
        differing = page.evaluate(f"{DIFFERING}(window.__static.worker, window.__static.page)")
        drawn_pixels = page.evaluate("window.__static.page.filter(w => w).length")
        assert drawn_pixels > 1000, "the static canvas holds a drawing"
        assert differing == 0, f"{differing} of the canvas's pixels differ between the worker and the page"
        assert on_worker == on_page
        assert sum(1 for hit in on_page["hits"] if hit) >= 10, on_page["hits"]
    # Zooms: the view's drawing is in the canvas at the end of each zoom's task, the worker's part
    # in it (it takes bands while the other canvases draw; the page takes any left when it puts).
    zoomed = page.evaluate("""async () => {
        const map = window.hazmap.leafletMap, out = [];
        for (let i = 0; i < 6; i++) {
            while (!window.hazmapStatic.settled()) { await new Promise(r => setTimeout(r, 5)); }
            const before = window.hazmapStatic.stats().paintMs.length;
            map.setZoom(map.getZoom() + (i % 2 ? 1 : -1), {animate: false});
            await Promise.resolve();  // the microtask the zoom queued runs first
            const stats = window.hazmapStatic.stats();
            out.push({paints: stats.paintMs.length - before, worker: stats.worker});
        }
        return out;
    }""")
    assert all(z["paints"] == 1 for z in zoomed), zoomed
    assert any(z["worker"] for z in zoomed), zoomed
    assert_no_console_errors(console)


# What a click at each feature's drawn point would open ({layer, id} or null), by the static canvas's hit test.
HITS_JS = """(ids) => ids.map(id => {
    const ll = window.hazmapStatic.lonLatOf('entities', id), map = window.hazmap.leafletMap;
    const p = map.latLngToContainerPoint([ll[1], ll[0]]);
    return window.hazmapStatic.hitAt(p.x, p.y);
})"""


@pytest.mark.parametrize("without", ["isolation", "worker", "a working worker"])
def test_without_isolation_or_its_worker_the_page_stamps_the_static_canvas(page, live_server, console, without):
    """Where the page is not cross-origin isolated (a proxy that drops the headers; plain http to
    another machine), its worker cannot start, or the worker fails a band, the page stamps every
    point itself, as before."""
    warnings: list[str] = []
    page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)
    if without == "isolation":
        def plain(route):
            response = route.fetch()
            headers = {k: v for k, v in response.headers.items() if not k.lower().startswith("cross-origin")}
            route.fulfill(response=response, headers=headers)

        page.route(live_server.url, plain)
    elif without == "worker":
        page.route("**/hazmap_static_worker.js*", lambda route: route.abort())
    else:  # the worker as served, but its stamping throws
        def failing(route):
            response = route.fetch()
            body = response.text().replace('var hazmap = self.hazmap;', 'var hazmap = self.hazmap; '
                                           'hazmap.stampBand = function () { throw new Error("a broken band"); };')
            assert "a broken band" in body
            route.fulfill(response=response, body=body)

        page.route("**/hazmap_static_worker.js*", failing)
    open_with_every_layer_drawn(page, live_server)
    assert page.evaluate("window.crossOriginIsolated") is (without != "isolation")
    zoom = "(() => { const m = window.hazmap.leafletMap; m.setZoom(m.getZoom() + 1, {animate: false}); })()"
    if without == "a working worker":  # up, and given a job (a zoom) it fails: the page draws it
        for i in range(20):
            page.evaluate(zoom.replace("+ 1", "- 1") if i % 2 else zoom)
            page.wait_for_function("() => window.hazmapStatic.settled()", timeout=10_000)
            if any("the page stamps" in line for line in warnings):
                break
        assert any("hazmap static worker failed: the page stamps" in line for line in warnings), warnings[-10:]
    page.evaluate(zoom)
    page.wait_for_function("() => window.hazmapStatic.settled()", timeout=10_000)
    assert page.evaluate(STATIC_REDRAW_JS, "page") is False
    assert page.evaluate("window.__static.page.filter(w => w).length") > 1000
    # the aborted worker script, or the failed band, is a console error of its own
    unexpected = [line for line in console.unexpected() if "net::ERR_FAILED" not in line
                  and "hazmap static worker: Error: a broken band" not in line]
    assert unexpected == [], unexpected


# Every canvas (and SVG renderer) of the map: its class, its transform's translation and scale (the computed matrix).
CANVAS_PLACES_JS = """() => Array.from(document.querySelectorAll('.leaflet-map-pane canvas, .leaflet-map-pane svg')).map(c => {
    const m = new DOMMatrixReadOnly(getComputedStyle(c).transform);
    const own = (c.getAttribute('class') || '').split(' ').filter(n => n.startsWith('hz-'))[0];
    return {name: own || c.parentElement.className.split(' ').pop(), x: m.e, y: m.f, scale: m.a};
})"""


def test_after_a_zoom_every_canvas_sits_on_whole_pixels(page, live_server, console):
    """Leaflet's zoom without animation leaves a canvas padded 0.1 at -size·0.6 from the centre
    (-99.2 px on a map 992 px tall): resampled by the compositor every frame, and blurred. Each
    renderer is put back where its content belongs (assets/hazmap_canvas.js)."""
    open_with_every_layer_drawn(page, live_server)
    for step in (+1, -1, +1):
        page.evaluate("(step) => { const m = window.hazmap.leafletMap; m.setZoom(m.getZoom() + step, {animate: false}); }",
                      step)
        places = page.evaluate(CANVAS_PLACES_JS)
        names = {p["name"] for p in places}
        assert {"hz-grid-canvas", "hz-counts-canvas", "hz-static-canvas", "hz-vector-canvas"} <= names, names
        assert any("hzland" in n for n in names), names  # Leaflet's own renderer (the land's SVG) too
        off = [p for p in places if p["scale"] != 1 or p["x"] != round(p["x"]) or p["y"] != round(p["y"])]
        assert off == [], off
    assert_no_console_errors(console)


LIVE_DIGEST_JS = """async () => {
    const live = window.hazmapLive, polls = live.polls;
    // the next poll's redraw, all of its tasks run
    while (live.polls === polls || live.drawing) { await new Promise(r => setTimeout(r, 5)); }
    const chunked = %s(live.canvas());  // no task runs between this read, the redraw and the next
    live.redrawNow();
    const atOnce = %s(live.canvas());
    const stats = live.stats();
    return {differing: %s(chunked, atOnce), tasks: stats.tasks[stats.tasks.length - 2],
            drawn: chunked.filter(w => w).length};
}""" % (PIXELS, PIXELS, DIFFERING)


def test_a_polls_live_redraw_runs_in_short_tasks_and_puts_the_whole_image(page, live_app, console):  # noqa: F811
    page.goto(live_app.url)
    wait_for_trucks(page, len(live_app.world.vehicles))
    # No budget: a poll's redraw stops at every check of the clock (each 256 slots of a code).
    page.evaluate("window.hazmapLive.setChunkMs(0)")
    got = page.evaluate(LIVE_DIGEST_JS)
    assert got["tasks"] > 5, "the poll's redraw ran in a task or few"
    assert got["drawn"] > 1000, "trucks and points are on the canvas"
    assert got["differing"] == 0
    # The default budget at this fleet: one task.
    page.evaluate("window.hazmapLive.setChunkMs(-1)")
    got = page.evaluate(LIVE_DIGEST_JS)
    assert got["tasks"] == 1 and got["differing"] == 0
    assert_no_console_errors(console)


# A line of `width` px stroked once and as hairlines side by side (assets/hazmap_canvas.js
# `hazmap.hairlines`, `hazmap.offsetLines`): the ink (alpha summed) and where it lies.
HAIRLINES_JS = """(width) => {
    const size = 240, xs = [20, 90, 150, 220, 200, 40], ys = [30, 60, 20, 120, 210, 180];
    function draw(lanes) {
        const c = document.createElement('canvas'); c.width = c.height = size;
        const ctx = c.getContext('2d'); ctx.strokeStyle = '#ffffff'; ctx.lineJoin = 'bevel'; ctx.beginPath();
        if (lanes) {
            const l = window.hazmap.hairlines(width, 1);
            window.hazmap.offsetLines(ctx, xs, ys, xs.length, l.offsets, false);
            ctx.lineWidth = l.width;
        } else {
            ctx.moveTo(xs[0], ys[0]); for (let i = 1; i < xs.length; i++) ctx.lineTo(xs[i], ys[i]);
            ctx.lineWidth = width;
        }
        ctx.stroke();
        return ctx.getImageData(0, 0, size, size).data;
    }
    const a = draw(false), b = draw(true);
    let inkA = 0, inkB = 0, strayB = 0, lanes = window.hazmap.hairlines(width, 1);
    for (let i = 3; i < a.length; i += 4) {
        inkA += a[i]; inkB += b[i];
        if (b[i] > 64) { // a solid pixel of the lanes lies on or next to the line's own
            const p = (i - 3) / 4, x = p % size, y = Math.floor(p / size);
            let near = false;
            for (let dy = -1; dy <= 1 && !near; dy++) for (let dx = -1; dx <= 1; dx++) if (a[((y + dy) * size + x + dx) * 4 + 3] > 0) near = true;
            if (!near) strayB++;
        }
    }
    return {inkA, inkB, strayB, lanes: lanes.offsets.length, laneWidth: lanes.width};
}"""


@pytest.mark.parametrize("width", [0.9, 1.3, 1.8, 2.0, 2.6, 3.2])
def test_a_line_drawn_as_hairlines_side_by_side_has_the_line_s_ink_where_the_line_is(page, live_server, width):
    page.goto(live_server.url)
    page.wait_for_function("() => window.hazmap && window.hazmap.hairlines", timeout=30_000)
    got = page.evaluate(HAIRLINES_JS, width)
    assert got["laneWidth"] < 1, "each lane is a hairline to Skia (under a device pixel)"
    assert got["lanes"] == (1 if width <= 1 else math.ceil(1.4 * width))
    assert 0.85 * got["inkA"] <= got["inkB"] <= 1.1 * got["inkA"], got
    assert got["strayB"] == 0, got


# The canvas layers' projection (assets/hazmap_canvas.js `hazmap.unitProjector`) against Leaflet's
# own, on points over and beyond Ningbo's box (and past Web Mercator's latitude limit), for the
# map's CRS and for the GCJ-02 one (assets/hazmap_crs.js, which keeps Leaflet's path).
UNIT_PROJECTOR_JS = """() => {
    const out = {}, p = {x: 0, y: 0};
    for (const [name, crs] of [['EPSG3857', L.CRS.EPSG3857], ['HazmapGCJ02', L.CRS.HazmapGCJ02]]) {
        const project = window.hazmap.unitProjector(crs), s0 = crs.scale(0);
        let differing = 0, n = 0;
        for (let i = 0; i < 20000; i++) {
            const lat = i < 10 ? [90, -90, 85.06, -85.06, 0, 29.87, 30.2, 28.9, 84.99, -1e-9][i] : 27 + (i * 0.6180339887) % 5;
            const lng = i < 10 ? 121.55 : 119 + (i * 0.7548776662) % 5;
            const q = crs.latLngToPoint(L.latLng(lat, lng), 0);
            project(lat, lng, p);
            n++;
            if (p.x !== q.x / s0 || p.y !== q.y / s0) differing++;
        }
        out[name] = {n: n, differing: differing, fast: crs === window.hazmap.leafletMap.options.crs};
    }
    return out;
}"""


def test_the_canvas_layers_project_as_leaflet_does_to_the_last_bit(page, live_server):
    """Every canvas layer projects its points and vertices once, through `hazmap.unitProjector`:
    for Web Mercator Leaflet's formula written out (no L.LatLng and L.Point per point), which must
    give exactly the numbers crs.latLngToPoint gives, or the canvases would drift from Leaflet's own
    layers (the land, a panel's marks) and from where a click is turned back into lon/lat."""
    page.goto(live_server.url)
    page.wait_for_function("() => window.hazmap && window.hazmap.leafletMap && window.hazmap.unitProjector",
                           timeout=30_000)
    got = page.evaluate(UNIT_PROJECTOR_JS)
    assert got["EPSG3857"] == {"n": 20000, "differing": 0, "fast": True}, got
    assert got["HazmapGCJ02"]["differing"] == 0, got


def test_the_beijing_clock_reads_as_intl_does_in_asia_shanghai(page, live_server):
    """The header's clocks (assets/hazmap_clock.js `hazmap.beijingTime`) write Beijing time as UTC+8
    without Intl (whose first use with a time zone costs the page's start 15-30 ms): the same text
    as Intl.DateTimeFormat in Asia/Shanghai gives, over days, hours and the turn of a year."""
    page.goto(live_server.url)
    page.wait_for_function("() => window.hazmap && window.hazmap.beijingTime", timeout=30_000)
    got = page.evaluate("""() => {
        const f = new Intl.DateTimeFormat('en-CA', {timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit',
            day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'});
        const text = ms => { const p = {}; f.formatToParts(new Date(ms)).forEach(x => { p[x.type] = x.value; });
            return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`; };
        const bad = [];
        const start = Date.UTC(2026, 11, 31, 0, 0, 0);
        for (let k = 0; k < 2000; k++) {
            const ms = start + k * 3607 * 1000 + (k % 60) * 1000;
            if (window.hazmap.beijingTime(ms) !== text(ms)) bad.push([ms, window.hazmap.beijingTime(ms), text(ms)]);
        }
        return {bad: bad.slice(0, 3), n: bad.length, sample: window.hazmap.beijingTime(Date.UTC(2026, 11, 31, 16, 0, 5))};
    }""")
    assert got["n"] == 0, got
    assert got["sample"] == "2027-01-01 00:00:05"
