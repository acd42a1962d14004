/*
 * The drill-down panel's hold on the map (layers/panels/): when a panel opens (a MutationObserver on
 * #hz-panel-body reads its hidden .hz-panel-focus element's data-focus), the map goes to its
 * entity and draws what the panel names: the waybill's planned route, the ERG isolation and
 * protective-action circles. One Leaflet layer group, replaced with every panel, cleared when the
 * panel shows something without a focus.
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
        // Keep the officer's view: move (at the same zoom) only when the entity is out of sight, as
        // after a related link; a click on the map leaves the map where it is.
        if (!map.getBounds().pad(-0.1).contains(centre)) { map.panTo(centre, {animate: false}); }
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

    function startReplay(map, track) {
        stopReplay();
        var box = document.querySelector("#hz-panel-body .hz-replay");
        if (!box || !track || track.length < 2) { return; }
        var t0 = track[0][0], t1 = track[track.length - 1][0];
        var line = L.polyline(track.map(function (p) { return [p[2], p[1]]; }),
            {color: "#b3e5fc", weight: 2, opacity: 0.7, interactive: false});
        group.addLayer(line);
        if (drawn.id === null && !map.getBounds().intersects(line.getBounds())) { // no live position, out of sight
            map.panTo(line.getBounds().getCenter(), {animate: false});
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
            if (focus && focus.track) { startReplay(map, focus.track); }
        });
    }

    function watchPanel() {
        var body = document.getElementById("hz-panel-body");
        if (!body) { setTimeout(watchPanel, 100); return; }
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
                if (!response.ok) { throw new Error(json.message || json.error || String(response.status)); }
                window.dash_clientside.set_props("hz-live-click",
                    {data: {layer: "incidents", id: id, at: Date.now()}});
            });
        }).catch(function (error) {
            if (result) { result.textContent = action + ": " + error.message; }
            button.disabled = false;
        });
    });

    window.hazmapPanel = Object.freeze({
        drawn: function () { return JSON.parse(JSON.stringify(drawn)); },
        replay: function () { return replay ? {t: replay.t, lon: replay.lon, lat: replay.lat, playing: replay.playing} : null; }
    });
})();
