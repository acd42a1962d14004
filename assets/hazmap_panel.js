/*
 * The drill-down panel's hold on the map (layers/panels/): when a panel opens (a MutationObserver on
 * #hz-panel-body reads its hidden .hz-panel-focus element's data-focus), the map goes to its
 * entity and draws what the panel names: the waybill's planned route, the ERG isolation and
 * protective-action circles. One Leaflet layer group, replaced with every panel, cleared when the
 * panel shows something without a focus.
 *
 * The map moves to the entity only when the officer asked for a place: a related link, the back
 * button, a grid cell's item, a search hit or a ticker item; not after a click on the map (the
 * entity is in view there), and never once the officer moved the map (drag, wheel, keys, zoom
 * buttons) since asking, so a panel that arrives late does not yank the view back.
 *
 * window.hazmapPanel: a read-only handle for the browser tests (what is drawn now).
 */
(function () {
    "use strict";
    var hazmap = (window.hazmap = window.hazmap || {});
    var group = null;
    var drawn = {id: null, route: 0, circles: []};
    var STYLE = {
        route: {color: "#4fc3f7", weight: 3, opacity: 0.85, dashArray: "6 4", interactive: false},
        isolation: {color: "#e02020", weight: 2, fillOpacity: 0.12, interactive: false},
        protective: {color: "#ff8c1a", weight: 2, fillOpacity: 0.06, dashArray: "4 4", interactive: false}
    };

    // Whether the panel on its way may bring its entity into view (see the top of this file).
    var FLY_SOURCES = ".hz-panel-link, .hz-panel-back, .hz-grid-link, .hz-search-hit, .hz-incident";
    var flyWanted = false, flies = 0;
    document.addEventListener("click", function (event) {
        var target = event.target;
        if (target && target.closest && target.closest(FLY_SOURCES)) { flyWanted = true; }
    }, true);
    function officerMovedMap() { flyWanted = false; }
    function watchMapInput(map) {
        ["pointerdown", "wheel", "touchstart", "keydown"].forEach(function (name) {
            map.getContainer().addEventListener(name, officerMovedMap, {capture: true, passive: true});
        });
    }
    function flyTo(map, latLng) {
        flies += 1;
        map.panTo(latLng, {animate: false});
    }

    function whenMap(callback) {
        if (hazmap.leafletMap) { callback(hazmap.leafletMap); return; }
        setTimeout(function () { whenMap(callback); }, 50);
    }

    function draw(map, focus) {
        if (!group) { group = L.layerGroup().addTo(map); }
        group.clearLayers();
        drawn = {id: null, route: 0, circles: []};
        if (!focus || focus.lon === undefined) { return; }
        drawn.id = focus.id;
        var centre = L.latLng(focus.lat, focus.lon);
        if (focus.route && focus.route.length > 1) {
            var line = L.polyline(focus.route.map(function (xy) { return [xy[1], xy[0]]; }), STYLE.route);
            group.addLayer(line);
            drawn.route = focus.route.length;
        }
        (focus.circles || []).forEach(function (c) {
            var circle = L.circle(centre, Object.assign({radius: c.radius_m}, STYLE[c.kind] || STYLE.protective));
            group.addLayer(circle);
            drawn.circles.push({kind: c.kind, radius_m: c.radius_m});
        });
        // Keep the officer's view: move (at the same zoom) only when asked and the entity is out of sight.
        if (flyWanted && !map.getBounds().pad(-0.1).contains(centre)) { flyTo(map, centre); }
    }

    // Track replay (a truck's 24 h from the store, focus.track = [[epoch_ms, lon, lat], ...]): a slider
    // over its time, play / pause, 1x-600x; the marker sits where the track was at the replay's time.
    var SPEEDS = [1, 10, 60, 300, 600];
    var replay = null;

    function positionAt(track, t) {
        var lo = 0, hi = track.length - 1;
        if (t <= track[0][0]) { return [track[0][1], track[0][2]]; }
        if (t >= track[hi][0]) { return [track[hi][1], track[hi][2]]; }
        while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (track[mid][0] <= t) { lo = mid; } else { hi = mid; } }
        var a = track[lo], b = track[hi], f = (t - a[0]) / (b[0] - a[0]);
        return [a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
    }

    function stopReplay() {
        if (replay && replay.frame) { cancelAnimationFrame(replay.frame); }
        replay = null;
    }

    // The replay's marks: stops ([start_ms, end_ms, lon, lat], the rules' stop stage over the track)
    // and incidents ([epoch_ms, lon, lat, id, rule]) on the map and as ticks under the slider; a
    // tick moves the replay to its time.
    var MARK_STYLE = {
        stop: {radius: 6, color: "#ffffff", weight: 1.5, fillColor: "#9575cd", fillOpacity: 0.9, interactive: false},
        incident: {radius: 8, color: "#e02020", weight: 3, fillColor: "#e02020", fillOpacity: 0.35, interactive: false}
    };

    function drawMarks(box, t0, t1, stops, incidents, jump) {
        var strip = document.createElement("div"), span = Math.max(1, t1 - t0), marks = {stops: [], incidents: []};
        strip.className = "hz-replay-marks";
        strip.style.cssText = "position:relative;flex:1 1 100%;height:10px;margin:0 0 4px 0;"
            + "background:rgba(215,227,240,0.08)";
        function tick(kind, from, to, colour, title) {
            var el = document.createElement("span"), left = Math.max(0, Math.min(1, (from - t0) / span));
            var width = Math.max(0.004, Math.min(1 - left, (to - from) / span));
            el.className = "hz-replay-" + kind;
            el.title = title;
            el.style.cssText = "position:absolute;top:0;height:10px;min-width:3px;cursor:pointer;left:" + (left * 100)
                + "%;width:" + (width * 100) + "%;background:" + colour;
            el.addEventListener("click", function () { jump(from); });
            strip.appendChild(el);
        }
        stops.forEach(function (s) {
            group.addLayer(L.circleMarker([s[3], s[2]], MARK_STYLE.stop));
            marks.stops.push({start_ms: s[0], end_ms: s[1], lon: s[2], lat: s[3]});
            tick("stop", s[0], s[1], "#9575cd", Math.round((s[1] - s[0]) / 60000) + " min");
        });
        incidents.forEach(function (i) {
            group.addLayer(L.circleMarker([i[2], i[1]], MARK_STYLE.incident));
            marks.incidents.push({epoch_ms: i[0], lon: i[1], lat: i[2], id: i[3], rule: i[4]});
            tick("incident", i[0], i[0], "#e02020", i[4] + " " + i[3]);
        });
        box.appendChild(strip);
        return marks;
    }

    function startReplay(map, track, stops, incidents) {
        stopReplay();
        var box = document.querySelector("#hz-panel-body .hz-replay");
        if (!box || !track || track.length < 2) { return; }
        var t0 = track[0][0], t1 = track[track.length - 1][0];
        var line = L.polyline(track.map(function (p) { return [p[2], p[1]]; }),
            {color: "#b3e5fc", weight: 2, opacity: 0.7, interactive: false});
        group.addLayer(line);
        if (flyWanted && drawn.id === null && !map.getBounds().intersects(line.getBounds())) { // no live position
            flyTo(map, line.getBounds().getCenter());
        }
        var marker = L.circleMarker([track[0][2], track[0][1]],
            {radius: 7, color: "#fff", weight: 2, fillColor: "#ff8c1a", fillOpacity: 1, interactive: false});
        group.addLayer(marker);
        box.innerHTML = "";
        var button = document.createElement("button"), slider = document.createElement("input");
        var speed = document.createElement("select"), clock = document.createElement("span");
        button.className = "hz-replay-play"; button.textContent = box.getAttribute("data-play");
        slider.type = "range"; slider.min = String(t0); slider.max = String(t1); slider.value = String(t0);
        slider.className = "hz-replay-slider";
        SPEEDS.forEach(function (x) { var o = document.createElement("option"); o.value = String(x); o.textContent = x + "×"; speed.appendChild(o); });
        speed.className = "hz-replay-speed"; clock.className = "hz-replay-clock";
        box.appendChild(button); box.appendChild(speed); box.appendChild(clock); box.appendChild(slider);
        replay = {t: t0, playing: false, frame: null, last: null, track: track};
        replay.marks = drawMarks(box, t0, t1, stops, incidents, function (t) { replay.t = t; show(); });
        replay.readyAt = performance.now();
        function show() {
            var p = positionAt(track, replay.t);
            replay.lon = p[0]; replay.lat = p[1];
            marker.setLatLng([p[1], p[0]]);
            slider.value = String(replay.t);
            clock.textContent = new Date(replay.t).toLocaleTimeString("zh-CN", {timeZone: "Asia/Shanghai", hour12: false});
        }
        function tick(now) {
            if (!replay || !replay.playing) { return; }
            if (replay.last !== null) { replay.t = Math.min(t1, replay.t + (now - replay.last) * Number(speed.value)); }
            replay.last = now;
            show();
            if (replay.t >= t1) { replay.playing = false; button.textContent = box.getAttribute("data-play"); return; }
            replay.frame = requestAnimationFrame(tick);
        }
        button.addEventListener("click", function () {
            replay.playing = !replay.playing;
            replay.last = null;
            button.textContent = box.getAttribute(replay.playing ? "data-pause" : "data-play");
            if (replay.playing) { if (replay.t >= t1) { replay.t = t0; } replay.frame = requestAnimationFrame(tick); }
        });
        slider.addEventListener("input", function () { replay.t = Number(slider.value); show(); });
        show();
    }

    // The panel's body changes with every panel the screen opens: read its focus then.
    var shownFocus = null;

    function onPanelChange() {
        var node = document.querySelector("#hz-panel-body .hz-panel-focus");
        var text = node ? node.getAttribute("data-focus") : null;
        if (text === shownFocus) { return; }
        shownFocus = text;
        var focus = text ? JSON.parse(text) : null;
        whenMap(function (map) {
            draw(map, focus);
            stopReplay();
            if (focus && focus.track) { startReplay(map, focus.track, focus.stops || [], focus.incidents || []); }
            flyWanted = false; // this panel has had its chance; the next one waits for its own request
        });
    }

    function watchPanel() {
        var body = document.getElementById("hz-panel-body");
        if (!body) { setTimeout(watchPanel, 100); return; }
        whenMap(watchMapInput);
        new MutationObserver(onPanelChange).observe(body, {childList: true, subtree: true});
        onPanelChange();
    }
    watchPanel();

    // An incident's action buttons (layers/panels/incident.py) post to the REST API as the logged-in
    // officer (session cookie + the CSRF double-submit header), so its permission check, validation
    // and audit decide; then the panel is opened again to show the new history.
    function cookie(name) {
        var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
        return match ? decodeURIComponent(match[1]) : "";
    }

    function actionBody(action, note) {
        var value = function (id) { var el = document.getElementById(id); return el ? el.value : null; };
        if (action === "dispose") { return {outcome: value("hz-incident-outcome"), measures: note || null, note: note || null}; }
        if (action === "supervise") {
            var hours = Number(value("hz-incident-deadline")) || 24;
            return {deadline: new Date(Date.now() + hours * 3600e3).toISOString(), note: note || null};
        }
        if (action === "text") { return {message: note || ""}; }
        return {note: note || null};
    }

    document.addEventListener("click", function (event) {
        var button = event.target.closest && event.target.closest(".hz-incident-button");
        if (!button) { return; }
        var action = button.getAttribute("data-action"), id = button.getAttribute("data-incident");
        var noteEl = document.getElementById("hz-incident-note");
        var result = document.getElementById("hz-incident-result");
        var url = new URL("api/incidents/" + encodeURIComponent(id) + "/" + action, document.baseURI);
        button.disabled = true;
        fetch(url, {
            method: "POST", credentials: "same-origin",
            headers: {"Content-Type": "application/json", "X-CSRFToken": cookie("_csrf_token")},
            body: JSON.stringify(actionBody(action, noteEl ? noteEl.value : ""))
        }).then(function (response) {
            return response.json().catch(function () { return {}; }).then(function (json) {
                if (!response.ok) {
                    var refused = new Error(json.message || json.error || String(response.status));
                    refused.status = response.status;
                    throw refused;
                }
                window.dash_clientside.set_props("hz-live-click",
                    {data: {layer: "incidents", id: id, at: Date.now()}});
            });
        }).catch(function (error) {
            // the officer's language, by the answer's status (layers/panels/incident.py REFUSALS); the
            // API's own message (English, for an engineer) on hover
            var texts = {};
            try { texts = JSON.parse(result && result.getAttribute("data-refused") || "{}"); } catch (e) { texts = {}; }
            var said = texts[String(error.status)] || texts.other || error.message;
            if (result) {  // the button's own label, then why
                result.textContent = button.textContent + ": " + said;
                result.title = error.message;
            }
            button.disabled = false;
        });
    });

    window.hazmapPanel = Object.freeze({
        drawn: function () { return JSON.parse(JSON.stringify(drawn)); },
        replay: function () {
            return replay ? {t: replay.t, lon: replay.lon, lat: replay.lat, playing: replay.playing,
                             positions: replay.track.length, readyAt: replay.readyAt,
                             marks: JSON.parse(JSON.stringify(replay.marks))} : null;
        },
        flies: function () { return flies; }
    });
})();
