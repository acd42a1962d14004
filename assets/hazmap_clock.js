/* The header clock, in Beijing time whatever the wall computer's zone. Runs in the browser
 * so the server sends nothing every second. */
(function () {
    "use strict";
    var format = new Intl.DateTimeFormat("zh-CN", {
        timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
    });
    setInterval(function () {
        var clock = document.getElementById("hz-clock");
        if (clock) { clock.textContent = format.format(new Date()).replace(/\//g, "-"); }
    }, 1000);
})();
