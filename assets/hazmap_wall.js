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

    window.hazmapWall = Object.freeze({
        searches: function () { return searches; },
        opened: function () { return opened; }
    });
})();
