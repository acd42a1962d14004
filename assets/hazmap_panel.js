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
        var bounds = L.latLngBounds(centre, centre);
        if (focus.route && focus.route.length > 1) {
            var line = L.polyline(focus.route.map(function (xy) { return [xy[1], xy[0]]; }), STYLE.route);
            group.addLayer(line);
            bounds.extend(line.getBounds());
            drawn.route = focus.route.length;
        }
        (focus.circles || []).forEach(function (c) {
            var circle = L.circle(centre, Object.assign({radius: c.radius_m}, STYLE[c.kind] || STYLE.protective));
            group.addLayer(circle);
            drawn.circles.push({kind: c.kind, radius_m: c.radius_m});
        });
        if (drawn.circles.length) { bounds.extend(centre.toBounds(2 * drawn.circles[drawn.circles.length - 1].radius_m)); }
        if (drawn.route || drawn.circles.length) {
            map.fitBounds(bounds, {padding: [40, 40], maxZoom: 15});
        } else if (!map.getBounds().pad(-0.1).contains(centre)) {
            map.panTo(centre);  // keep the officer's zoom; move only when the entity is out of sight
        }
    }

    // The panel's body changes with every panel the screen opens: read its focus then.
    var shownFocus = null;

    function onPanelChange() {
        var node = document.querySelector("#hz-panel-body .hz-panel-focus");
        var text = node ? node.getAttribute("data-focus") : null;
        if (text === shownFocus) { return; }
        shownFocus = text;
        var focus = text ? JSON.parse(text) : null;
        whenMap(function (map) { draw(map, focus); });
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
        drawn: function () { return JSON.parse(JSON.stringify(drawn)); }
    });
})();
