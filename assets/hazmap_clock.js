/* The header clock, in Beijing time whatever the wall computer's zone. Runs in the browser
 * so the server sends nothing every second.
 *
 * hazmap.beijingTime(ms): "YYYY-MM-DD HH:MM:SS" in Asia/Shanghai, written out as UTC+8 (China has
 * kept no daylight saving time since 1991) rather than through Intl.DateTimeFormat: the page's
 * first DateTimeFormat with a time zone loads ICU's zone and locale data, 15-30 ms of the main
 * thread while the page's scripts run, before Dash starts (issue 16, the first render). */
(function () {
    "use strict";

    var hazmap = (window.hazmap = window.hazmap || {});
    var OFFSET_MS = 8 * 3600 * 1000;

    function two(n) { return n < 10 ? "0" + n : String(n); }

    hazmap.beijingTime = function (ms) {
        var d = new Date(ms + OFFSET_MS);
        return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) + " " +
            two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
    };

    setInterval(function () {
        var clock = document.getElementById("hz-clock");
        if (clock) { clock.textContent = hazmap.beijingTime(Date.now()); }
    }, 1000);
})();
