/*
 * The sprites hazmap's point layers stamp into an ImageData (assets/hazmap_live.js,
 * hazmap_static.js) and the static canvas's worker (assets/hazmap_static_worker.js, which loads
 * this file with importScripts): nothing here touches the page, so one copy of the code serves
 * both threads and the two draw the same pixels. `self` is the window in the page, the worker's
 * global scope in the worker.
 */
(function (scope) {
    "use strict";

    var hazmap = (scope.hazmap = scope.hazmap || {});

    // --- sprites: a glyph drawn once on a small canvas, then stamped as pixels into an ImageData ----
    // (assets/hazmap_live.js, hazmap_static.js). Stamping pixels is several times cheaper than a
    // path or drawImage per feature on a software canvas. A sprite lists the pixels its glyph
    // covers, opaque ones first: those are copied without a test, the antialiased edge after them
    // is copied onto empty pixels and blended over drawn ones ("source over", straight alpha).
    var packed = new Uint32Array(1), packedBytes = new Uint8Array(packed.buffer); // endian-proof RGBA words

    hazmap.spriteFromImage = function (data, size, reach) {
        var opaque = [], edge = [];
        for (var y = 0; y < size; y++) {
            for (var x = 0; x < size; x++) {
                var k = (y * size + x) * 4;
                if (data[k + 3]) { (data[k + 3] === 255 ? opaque : edge).push(k); }
            }
        }
        var all = opaque.concat(edge), n = all.length;
        var sprite = {
            dx: new Int16Array(n), dy: new Int16Array(n), color: new Uint32Array(n), alpha: new Uint8Array(n),
            rgb: new Uint8Array(3 * n), r: reach, opaque: opaque.length, offWidth: -1, off: new Int32Array(n)
        };
        for (var j = 0; j < n; j++) {
            var at = all[j], p = at >> 2;
            packedBytes.set(data.subarray(at, at + 4));
            sprite.dx[j] = (p % size) - reach;
            sprite.dy[j] = Math.floor(p / size) - reach;
            sprite.color[j] = packed[0];
            sprite.alpha[j] = data[at + 3];
            sprite.rgb[3 * j] = data[at]; sprite.rgb[3 * j + 1] = data[at + 1]; sprite.rgb[3 * j + 2] = data[at + 2];
        }
        return sprite;
    };

    // A translucent or antialiased pixel of the sprite (colour word q, alpha a) over a drawn one
    // (word p), "source over" in straight alpha; returns the new word. Over an opaque pixel: red
    // and blue at once, alpha scaled to 0-256 (within 1/255 of the exact blend). Over a translucent
    // one (a fill over another fill: most blends where the city is dense, issue 16): exact, one
    // division, rounded to nearest, on the word (it went byte by byte, three divisions and the
    // clamped array's rounding: ~40 % of the pixels a dense static load stamps, the largest part of its time).
    var LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1; // alpha in the top byte
    function blend(p, q, a) {
        if ((p >>> 24) === 255) {
            var sa = a + (a >> 7), ia = 256 - sa;
            return (0xff000000 | ((((q & 0xff00ff) * sa + (p & 0xff00ff) * ia) >>> 8) & 0xff00ff) |
                ((((q & 0xff00) * sa + (p & 0xff00) * ia) >>> 8) & 0xff00)) >>> 0;
        }
        var sw = a * 255, dw = (p >>> 24) * (255 - a), oa = sw + dw, k = 1 / oa; // out alpha x 255
        return ((oa / 255 + 0.5) << 24 |
            ((((q >>> 16) & 255) * sw + ((p >>> 16) & 255) * dw) * k + 0.5) << 16 |
            ((((q >>> 8) & 255) * sw + ((p >>> 8) & 255) * dw) * k + 0.5) << 8 |
            (((q & 255) * sw + (p & 255) * dw) * k + 0.5)) >>> 0;
    }
    // The same, byte by byte, where alpha is not the top byte of a word (a big-endian machine).
    function blendBytes(target, at, sprite, j) {
        var bytes = target.bytes, k = at * 4, da = bytes[k + 3], s = sprite.rgb, c = j * 3, a = sprite.alpha[j];
        var dw = da * (255 - a), oa = a * 255 + dw; // out alpha x 255
        bytes[k] = (s[c] * a * 255 + bytes[k] * dw) / oa;
        bytes[k + 1] = (s[c + 1] * a * 255 + bytes[k + 1] * dw) / oa;
        bytes[k + 2] = (s[c + 2] * a * 255 + bytes[k + 2] * dw) / oa;
        bytes[k + 3] = oa / 255;
    }

    // The pixels a layer stamps into: its ImageData's bytes and their Uint32 view (read once: the
    // ImageData's own getters cost more than a stamp). In the worker `image` is {width, height,
    // data} over a SharedArrayBuffer (assets/hazmap_static_worker.js).
    hazmap.stampTarget = function (image) {
        return {image: image, width: image.width, height: image.height, bytes: image.data,
            pixels: new Uint32Array(image.data.buffer, image.data.byteOffset, image.width * image.height)};
    };

    // `sprite` centred on pixel (bx, by) of `target`, clipped to the pixel rectangle [x0, x1) x [y0, y1).
    hazmap.stamp = function (target, sprite, bx, by, x0, y0, x1, y1) {
        var w = target.width, pixels = target.pixels, r = sprite.r, color = sprite.color, alpha = sprite.alpha;
        var n = color.length, j, at, p;
        if (bx - r >= x0 && by - r >= y0 && bx + r < x1 && by + r < y1) { // all inside: offsets, no tests
            if (sprite.offWidth !== w) {
                for (j = 0; j < n; j++) { sprite.off[j] = sprite.dy[j] * w + sprite.dx[j]; }
                sprite.offWidth = w;
            }
            var off = sprite.off, base = by * w + bx, opaque = sprite.opaque;
            for (j = 0; j < opaque; j++) { pixels[base + off[j]] = color[j]; }
            for (; j < n; j++) {
                at = base + off[j];
                p = pixels[at];
                if (p === 0) { pixels[at] = color[j]; } else if (LITTLE_ENDIAN) { pixels[at] = blend(p, color[j], alpha[j]); } else { blendBytes(target, at, sprite, j); }
            }
            return;
        }
        var dx = sprite.dx, dy = sprite.dy;
        for (j = 0; j < n; j++) {
            var x = bx + dx[j], y = by + dy[j];
            if (x < x0 || y < y0 || x >= x1 || y >= y1) { continue; }
            at = y * w + x;
            p = pixels[at];
            if (alpha[j] === 255 || p === 0) {
                pixels[at] = color[j];
            } else if (LITTLE_ENDIAN) {
                pixels[at] = blend(p, color[j], alpha[j]);
            } else {
                blendBytes(target, at, sprite, j);
            }
        }
    };

    // A point feature's glyph as RGBA pixels, drawn with canvas paths on `ctx` (a small scratch
    // canvas: the page's or, in the worker, an OffscreenCanvas's; both rasterise in software on the
    // wall): a disc of `style.radius` filled at `fillOpacity` and ringed `style.weight` wide, both
    // times `scale`. Returns {data, size, reach} for hazmap.spriteFromImage.
    hazmap.pointGlyph = function (ctx, style, scale) {
        var r = style.radius * scale, w = style.weight > 0 ? style.weight * scale : 0;
        var reach = Math.ceil(r + w) + 1, size = 2 * reach + 1, c = reach + 0.5;
        ctx.canvas.width = ctx.canvas.height = size;
        ctx.clearRect(0, 0, size, size);
        ctx.beginPath();
        ctx.arc(c, c, r, 0, 2 * Math.PI);
        ctx.globalAlpha = style.fillOpacity;
        ctx.fillStyle = style.color;
        ctx.fill();
        ctx.globalAlpha = 1;
        if (w > 0) {
            ctx.lineWidth = w;
            ctx.strokeStyle = style.stroke;
            ctx.stroke();
        }
        return {data: ctx.getImageData(0, 0, size, size).data, size: size, reach: reach};
    };

    // --- the static layers' points (assets/hazmap_static.js and its worker) ------------------------
    // Layer points of a layer's features, NaN where off the canvas (beyond `margin` of it). `d`:
    // {n, nx, ny} (Web Mercator at zoom 0 over its scale), `view`: the canvas (layer points) and zoom.
    hazmap.layerPoints = function (d, xs, ys, view) {
        var n = d.n, margin = 12 * view.s;
        for (var i = 0; i < n; i++) {
            var x = d.nx[i] * view.scale - view.ox, y = d.ny[i] * view.scale - view.oy;
            var off = x < view.minX - margin || x > view.maxX + margin || y < view.minY - margin ||
                y > view.maxY + margin;
            xs[i] = off ? NaN : x;
            ys[i] = off ? NaN : y;
        }
    };

    // How many features lie within `covered` (the part of the canvas drawn, layer points; the same
    // margin): what a layer reports as drawn.
    hazmap.countDrawn = function (xs, ys, view, covered) {
        var margin = 12 * view.s, drawn = 0, n = xs.length;
        var kx0 = covered.minX - margin, ky0 = covered.minY - margin, kx1 = covered.maxX + margin,
            ky1 = covered.maxY + margin;
        for (var i = 0; i < n; i++) {
            var x = xs[i], y = ys[i]; // NaN fails every test
            if (x >= kx0 && x <= kx1 && y >= ky0 && y <= ky1) { drawn++; }
        }
        return drawn;
    };

    // The rows of band `k` of `nb` across the clip rectangle [x0, y0, x1, y1) (canvas pixels).
    hazmap.band = function (clip, k, nb) {
        var h = clip[3] - clip[1];
        return [clip[0], clip[1] + Math.floor((k * h) / nb), clip[2], clip[1] + Math.floor(((k + 1) * h) / nb)];
    };

    // Band `band` of the canvas drawn: its pixels cleared, then every layer of `layers` ({d, xs, ys,
    // table}: the data, layer points and a sprite per class), in order, one sprite per feature within
    // reach of the band, clipped to it. Bands are apart in pixels, so any of them may be drawn by
    // either thread, in any order, and give the pixels the whole clip drawn at once gives.
    hazmap.stampBand = function (layers, view, band, target) {
        var pixels = target.pixels, W = target.width, m = view.m, stamp = hazmap.stamp, i, k;
        for (var row = band[1]; row < band[3]; row++) { pixels.fill(0, row * W + band[0], row * W + band[2]); }
        for (k = 0; k < layers.length; k++) {
            var layer = layers[k], xs = layer.xs, ys = layer.ys, table = layer.table, cls = layer.d.cls, n = layer.d.n;
            var reach = 0; // in canvas pixels, the band widened by the largest sprite's reach
            for (i = 0; i < table.length; i++) { reach = Math.max(reach, table[i].r); }
            var cx0 = band[0] - reach, cy0 = band[1] - reach, cx1 = band[2] + reach, cy1 = band[3] + reach;
            for (i = 0; i < n; i++) {
                var lx = xs[i];
                if (lx !== lx) { continue; } // NaN: off the canvas
                var bx = Math.floor((lx - view.minX) * m), by = Math.floor((ys[i] - view.minY) * m);
                if (bx < cx0 || by < cy0 || bx >= cx1 || by >= cy1) { continue; }
                stamp(target, table[cls[i]], bx, by, band[0], band[1], band[2], band[3]);
            }
        }
    };

    // The bands of a job shared by the page and the worker: each takes the next band not yet taken
    // (`ctrl[0]`, atomically) until none is left, and counts those it drew in `ctrl[1]`. Returns
    // the number it drew.
    hazmap.takeBands = function (ctrl, nb, drawBand) {
        var drew = 0;
        for (;;) {
            var k = Atomics.add(ctrl, 0, 1);
            if (k >= nb) { return drew; }
            drawBand(k);
            drew++;
            Atomics.add(ctrl, 1, 1);
        }
    };
})(typeof self !== "undefined" ? self : globalThis); // globalThis: node, for a probe of the stamping
