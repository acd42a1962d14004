/*
 * The wall's search (layers/search.py): a plate, a name or an id typed into the header's box asks
 * `/search/<fingerprint>?q=...&lang=...` (debounced), lists the hits under the box, and a click on
 * a hit (or Enter: the first) flies the map to it and opens it in the side panel (through the
 * `hz-live-click` store, as a click on the canvas layers does). Escape or a click elsewhere
 * closes the list.
 *
 * window.hazmapWall: a read-only handle for the browser tests.
 */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    var DEBOUNCE_MS = 150;
    var FLY_ZOOM = 16;
    var timer = null, asked = 0, hits = [], searches = 0, opened = null;

    function box() { return document.getElementById("hz-search"); }
    function list() { return document.getElementById("hz-search-results"); }

    function render(found, emptyText) {
        var ul = list();
        if (!ul) { return; }
        ul.textContent = "";
        hits = found;
        found.forEach(function (hit, i) {
            var li = document.createElement("li");
            li.className = "hz-search-hit";
            li.dataset.index = String(i);
            var label = document.createElement("span");
            label.className = "hz-search-label";
            label.textContent = hit.label;
            var kind = document.createElement("span");
            kind.className = "hz-search-kind";
            kind.textContent = hit.layer_title + " · " + hit.id;
            li.appendChild(label);
            li.appendChild(kind);
            ul.appendChild(li);
        });
        if (!found.length && emptyText) {
            var none = document.createElement("li");
            none.className = "hz-search-none";
            none.textContent = emptyText;
            ul.appendChild(none);
        }
        ul.classList.toggle("hz-open", ul.childNodes.length > 0);
    }

    function search(text) {
        var wrap = box();
        if (!wrap) { return; }
        var q = text.trim();
        if (!q) { render([], null); return; }
        var ticket = ++asked;
        fetch(wrap.dataset.url + "?q=" + encodeURIComponent(q) + "&lang=" + encodeURIComponent(wrap.dataset.lang),
            {cache: "no-store"})
            .then(function (response) {
                return response.json().then(function (body) {
                    if (!response.ok) { throw new Error(body.error || response.status); }
                    return body;
                });
            })
            .then(function (body) {
                if (ticket !== asked) { return; } // an older answer: a newer search is under way
                searches += 1;
                render(body.hits, wrap.dataset.none);
            })
            .catch(function (error) { console.warn("hazmap search: " + error.message); });
    }

    function open(hit) {
        var map = hazmap.leafletMap;
        if (!map || !hit) { return; }
        render([], null);
        map.setView([hit.lat, hit.lon], Math.max(map.getZoom(), FLY_ZOOM), {animate: true});
        fit.moved = true; // the officer's choice of view: a resize no longer refits the city
        opened = {layer: hit.layer, id: hit.id};
        window.dash_clientside.set_props("hz-live-click", {data: {layer: hit.layer, id: hit.id, at: Date.now()}});
    }

    document.addEventListener("input", function (event) {
        if (!event.target || event.target.id !== "hz-search-input") { return; }
        clearTimeout(timer);
        var text = event.target.value;
        timer = setTimeout(function () { search(text); }, DEBOUNCE_MS);
    });

    document.addEventListener("keydown", function (event) {
        if (!event.target || event.target.id !== "hz-search-input") { return; }
        if (event.key === "Enter" && hits.length) { open(hits[0]); }
        if (event.key === "Escape") { render([], null); }
    });

    document.addEventListener("click", function (event) {
        var li = event.target && event.target.closest ? event.target.closest(".hz-search-hit") : null;
        if (li) { open(hits[Number(li.dataset.index)]); return; }
        if (!(event.target && event.target.closest && event.target.closest("#hz-search"))) { render([], null); }
    });

    // --- the incident ticker and the queue (layers/header.py incident_items) ----------------------
    // `/incidents/<fingerprint>/wall` every POLL_MS: the newest incidents and those not yet signed
    // for. An incident the wall had not seen before at red level flashes and, unless muted (here, kept
    // in localStorage) or switched off for kiosks (settings.wall_alarm_sound), sounds a short tone.
    // A click on a row flies the map to it and opens the incident in the side panel.
    var POLL_MS = 5000, FLASH_MS = 6000;
    var ticker = {seen: null, items: {}, flashed: [], sounded: 0, polls: 0, failures: 0, recent: [], queue: []};
    var audio = null;

    function muted() { return window.localStorage && localStorage.getItem("hazmap_muted") === "1"; }

    function tone() {
        var aside = document.getElementById("hz-incidents");
        if (!aside || aside.dataset.sound !== "on" || muted()) { return; }
        try {
            audio = audio || new (window.AudioContext || window.webkitAudioContext)();
            var osc = audio.createOscillator(), gain = audio.createGain();
            osc.frequency.value = 880;
            gain.gain.value = 0.2;
            osc.connect(gain);
            gain.connect(audio.destination);
            osc.start();
            osc.stop(audio.currentTime + 0.6);
            ticker.sounded += 1;
        } catch (error) { /* no audio device: the flash still shows */ }
    }

    function row(item, fresh) {
        var li = document.createElement("li");
        li.className = "hz-incident hz-level-" + item.level + (fresh ? " hz-flash" : "");
        li.style.setProperty("--level", item.colour);
        li.dataset.id = item.id;
        [["hz-incident-time", item.time], ["hz-incident-level", item.level_name], ["hz-incident-rule", item.rule],
            ["hz-incident-subject", item.subject || item.subject_id]].forEach(function (part) {
            var span = document.createElement("span");
            span.className = part[0];
            span.textContent = part[1];
            li.appendChild(span);
        });
        return li;
    }

    function section(title, items, fresh, texts, total) {
        var div = document.createElement("div");
        div.className = "hz-incidents-section";
        var h = document.createElement("h3");
        h.textContent = title + (total !== undefined ? " " + total : "");
        div.appendChild(h);
        var ul = document.createElement("ul");
        items.forEach(function (item) { ul.appendChild(row(item, fresh[item.id])); });
        if (!items.length) {
            var none = document.createElement("li");
            none.className = "hz-incident-none";
            none.textContent = texts.none;
            ul.appendChild(none);
        }
        div.appendChild(ul);
        return div;
    }

    function renderTicker(body) {
        var aside = document.getElementById("hz-incidents");
        if (!aside) { return; }
        var texts = JSON.parse(aside.dataset.texts), fresh = {}, red = false, now = Date.now();
        var all = body.recent.concat(body.queue);
        all.forEach(function (item) {
            ticker.items[item.id] = item;
            if (ticker.seen !== null && !ticker.seen[item.id]) {
                fresh[item.id] = now;
                if (item.level === "red") { red = true; ticker.flashed.push(item.id); }
            }
        });
        ticker.seen = ticker.seen || {};
        all.forEach(function (item) { ticker.seen[item.id] = true; });
        ticker.recent = body.recent.map(function (i) { return i.id; });
        ticker.queue = body.queue.map(function (i) { return i.id; });
        aside.textContent = "";
        var mute = document.createElement("button");
        mute.className = "hz-incidents-mute";
        mute.textContent = muted() ? texts.unmute : texts.mute;
        mute.hidden = aside.dataset.sound !== "on";
        aside.appendChild(mute);
        aside.appendChild(section(texts.recent, body.recent, fresh, texts));
        aside.appendChild(section(texts.queue, body.queue, fresh, texts, body.unsigned));
        if (red) {
            aside.classList.add("hz-flash");
            setTimeout(function () { aside.classList.remove("hz-flash"); }, FLASH_MS);
            tone();
        }
    }

    function pollIncidents() {
        var aside = document.getElementById("hz-incidents");
        if (!aside) { setTimeout(pollIncidents, 1000); return; } // not (yet) laid out, or no incident store
        fetch(aside.dataset.url, {cache: "no-store"})
            .then(function (response) {
                if (!response.ok) { throw new Error(String(response.status)); }
                return response.json();
            })
            .then(function (body) { ticker.polls += 1; renderTicker(body); })
            .catch(function (error) {
                ticker.failures += 1;
                if (ticker.failures === 1 || ticker.failures % 30 === 0) {
                    console.warn("hazmap incidents: " + error.message + " (" + ticker.failures + " failed)");
                }
            })
            .then(function () { setTimeout(pollIncidents, POLL_MS); });
    }
    setTimeout(pollIncidents, 500);

    document.addEventListener("click", function (event) {
        var target = event.target;
        if (!target || !target.closest) { return; }
        if (target.closest(".hz-incidents-mute")) {
            localStorage.setItem("hazmap_muted", muted() ? "0" : "1");
            var texts = JSON.parse(document.getElementById("hz-incidents").dataset.texts);
            target.textContent = muted() ? texts.unmute : texts.mute;
            return;
        }
        var li = target.closest(".hz-incident");
        if (!li) { return; }
        var item = ticker.items[li.dataset.id], map = hazmap.leafletMap;
        if (!item) { return; }
        if (map && item.lat !== null && item.lon !== null) {
            map.setView([item.lat, item.lon], Math.max(map.getZoom(), FLY_ZOOM), {animate: true});
            fit.moved = true;
        }
        // the incident itself opens (its panel leads to its subject): what the officer clicked on
        opened = {layer: "incidents", id: item.id, subject: item.subject_id};
        window.dash_clientside.set_props("hz-live-click", {data: {layer: "incidents", id: item.id, at: Date.now()}});
    });

    // --- the link to the server (self-healing, said in the header) ----------------------------------
    // assets/hazmap_live.js keeps polling through failures and, after a server restart, gets a full
    // frame (its version is unknown to the new server). Here the header says so: "reconnecting"
    // while polls fail, "resynced" for a while once they succeed again; never a dialog.
    var link = {state: "ok", lastFailures: 0, lastPolls: 0, since: 0};

    function showLink(state) {
        link.state = state;
        link.since = Date.now();
        var right = document.querySelector(".hz-header-right");
        if (!right) { return; }
        var span = document.getElementById("hz-link-status");
        if (!span) {
            span = document.createElement("span");
            span.id = "hz-link-status";
            right.insertBefore(span, right.firstChild);
        }
        span.className = "hz-link-status hz-link-" + state;  // its texts: app/i18n.py, in the header's data
        span.textContent = state === "ok" ? "" : JSON.parse(right.dataset.linkTexts || "{}")[state] || "";
    }

    setInterval(function () {
        var live = window.hazmapLive;
        if (!live) { return; }
        var failed = live.failures > link.lastFailures, polled = live.polls > link.lastPolls;
        link.lastFailures = live.failures;
        link.lastPolls = live.polls;
        if (failed && !polled && link.state !== "down") { showLink("down"); }
        else if (polled && !failed && link.state === "down") { showLink("back"); }
        else if (link.state === "back" && Date.now() - link.since > 15000) { showLink("ok"); }
    }, 1000);

    // --- the city fills the map at any wall size --------------------------------------------------
    // dash-leaflet fits the world's bounds when the map is created, before the fonts and the header
    // have settled (a header wrapping onto a second line changes the map's size): fit again once
    // they have, and when the window changes size, unless the officer has moved the map since.
    var fit = {done: 0, moved: false};

    function fitWorld() {
        var map = hazmap.leafletMap, root = document.querySelector(".hz-root");
        if (!map || !root || !root.dataset.bounds || fit.moved) { return; }
        map.invalidateSize({pan: false});
        var bounds = L.latLngBounds(JSON.parse(root.dataset.bounds)), options = {padding: [12, 12], animate: false};
        // Leaflet's own fit arithmetic: a fit to the view already shown would reset the view and
        // redraw every canvas during the first render for nothing
        var target = map._getBoundsCenterZoom(bounds, options);
        var shift = map.latLngToContainerPoint(target.center).distanceTo(map.latLngToContainerPoint(map.getCenter()));
        if (target.zoom !== map.getZoom() || shift > 0.5) {
            map.fitBounds(bounds, options);
        }
        fit.done += 1;
    }

    function fitOnLoad() {
        var map = hazmap.leafletMap;
        if (!map || !map._loaded) { setTimeout(fitOnLoad, 100); return; }
        map.on("dragstart", function () { fit.moved = true; });
        map.getContainer().addEventListener("wheel", function () { fit.moved = true; }, {passive: true});
        var fonts = document.fonts && document.fonts.ready ? document.fonts.ready : Promise.resolve();
        fonts.then(function () { requestAnimationFrame(fitWorld); });
    }
    fitOnLoad();
    var resizeTimer = null;
    window.addEventListener("resize", function () {
        clearTimeout(resizeTimer);
        resizeTimer = setTimeout(fitWorld, 200);
    });

    // --- the legend -------------------------------------------------------------------------------
    // The legend comes as one attribute of #hz-legend (app/webapp.py `_legend_data`: the shown
    // layers' groups, [title, [[shape, dashed, colour, label], ...]]) and is drawn here as plain DOM:
    // as Dash components it was over half of the layout, rendered by React and run through by every
    // store update while the wall loads. Drawn again when the attribute changes (the layers
    // control's overlays: app/webapp.py `follow_layers`) or the aside is rendered anew.
    var legend = {aside: null, drawn: null, draws: 0};

    function element(tag, className, text) {
        var e = document.createElement(tag);
        e.className = className;
        if (text !== undefined) { e.textContent = text; }
        return e;
    }

    function drawLegend() {
        var aside = document.getElementById("hz-legend"), text = aside && aside.getAttribute("data-legend");
        if (!aside || !text || (aside === legend.aside && text === legend.drawn)) { return; }
        var data = JSON.parse(text), all = document.createDocumentFragment();
        all.appendChild(element("h2", "", data.title));
        data.groups.forEach(function (group) {
            var div = element("div", "hz-legend-group");
            div.appendChild(element("div", "hz-legend-title", group[0]));
            group[1].forEach(function (entry) {
                var row = element("div", "hz-legend-entry");
                var swatch = element("span", "hz-swatch hz-swatch-" + entry[0] + (entry[1] ? " hz-swatch-dashed" : ""));
                swatch.style.setProperty("--swatch", entry[2]);
                row.appendChild(swatch);
                row.appendChild(document.createTextNode(entry[3]));
                div.appendChild(row);
            });
            all.appendChild(div);
        });
        aside.replaceChildren(all);
        legend.drawn = text;
        legend.draws += 1;
        if (aside !== legend.aside) { // watched from now on: its attribute, and its parent (a new aside)
            legend.aside = aside;
            legendWatch.disconnect();
            legendWatch.observe(aside, {attributes: true, attributeFilter: ["data-legend"]});
            legendWatch.observe(aside.parentNode, {childList: true});
        }
    }
    // Until the aside is there, every change of the page's tree is a chance it came.
    var legendWatch = new MutationObserver(drawLegend);
    legendWatch.observe(document.documentElement, {childList: true, subtree: true});
    drawLegend();

    // The browser tab's title follows the officer's language (Dash's title is the settings' one).
    (function titleFromHeader() {
        var h1 = document.querySelector(".hz-titles h1");
        if (!h1) { setTimeout(titleFromHeader, 200); return; }
        document.title = h1.textContent;
    })();

    window.hazmapWall = Object.freeze({
        fitted: function () { return fit.done; },
        legendDraws: function () { return legend.draws; },
        link: function () { return link.state; },
        searches: function () { return searches; },
        opened: function () { return opened; },
        ticker: function () {
            return {polls: ticker.polls, recent: ticker.recent.slice(), queue: ticker.queue.slice(),
                flashed: ticker.flashed.slice(), sounded: ticker.sounded, muted: muted()};
        }
    });
})();
