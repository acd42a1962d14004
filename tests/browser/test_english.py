"""The English switch changes every label (issue 16: "Chinese by default; every label switchable to
English"), in real headless Chromium.

The test does not keep a list of labels: it walks every visible text node (and every placeholder
and tooltip) of the wall in English — header, legend with every layer on, layers control, ticker
and queue, search results, the incident's, a truck's and an entity's panels, the area export's
controls and message — and of the login page, and fails on any CJK character left, except in proper
names from the data (entity and site names, plates: any value the World holds) and in the switch
back to Chinese (on the wall and on the login form), which names its language in that language ("中文") as language pickers do.
"""

from __future__ import annotations

import re
import threading

import pandas as pd
import pytest

from tests.browser.conftest import SCREENSHOTS, WALL_1080
from tests.browser.test_map import assert_no_console_errors
from tests.browser.test_wall import LOAD_TIMEOUT_MS, incident_app  # noqa: F401 - the wall with incidents

pytestmark = pytest.mark.browser

CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# Every visible text node, placeholder and tooltip that holds a CJK character: [text, where].
CJK_TEXT_JS = r"""(pattern) => {
    const cjk = new RegExp(pattern), found = [];
    const visible = e => e && e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden';
    const where = e => e.id ? '#' + e.id : (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : e.tagName);
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const t = n.textContent.trim(), e = n.parentElement;
        if (t && cjk.test(t) && visible(e) && !e.closest('#hz-language-switch, .hz-login-language')) { found.push([t, where(e)]); }
    }
    document.querySelectorAll('[placeholder], [title], [aria-label]').forEach(e => {
        ['placeholder', 'title', 'aria-label'].forEach(a => {
            const t = e.getAttribute(a);
            if (t && cjk.test(t) && visible(e) && !e.closest('#hz-language-switch, .hz-login-language')) { found.push([t, where(e) + '@' + a]); }
        });
    });
    if (cjk.test(document.title)) { found.push([document.title, 'title']); }
    return found;
}"""


def _proper_names(world) -> list[str]:
    """Every text value the World holds that has a CJK character (names, plates, addresses), longest first."""
    from spatial.model import WORLD_SPECS

    values: set[str] = set()

    for name in WORLD_SPECS:
        table = world.table(name)
        for column in table.columns:
            if column != "geometry" and not pd.api.types.is_numeric_dtype(table[column]):
                values.update(v for v in table[column].dropna().astype(str).unique() if CJK.search(v))
    return sorted(values, key=len, reverse=True)


def _left_in_chinese(found: list, names: list[str]) -> list:
    """The texts still holding CJK once every proper name from the data is taken out."""
    left = []
    for text, where in found:
        rest = text
        for name in names:
            if name in rest:
                rest = rest.replace(name, " ")
            if not CJK.search(rest):
                break
        if CJK.search(rest):
            left.append((text, where))
    return left


def _check(page, names: list[str], state: str, problems: list) -> None:
    page.wait_for_timeout(300)
    problems += [(state, text, where) for text, where in _left_in_chinese(
        page.evaluate(CJK_TEXT_JS, CJK.pattern), names)]


def test_every_label_of_the_wall_switches_to_english(chromium, incident_app, console):  # noqa: F811
    from tests.browser.conftest import open_page

    url, incidents, world = incident_app
    names = _proper_names(world)
    context, page = open_page(chromium, WALL_1080, console)
    problems: list = []
    try:
        page.goto(url)
        page.locator("#hz-language-switch").click()  # the officer's switch, as on the wall
        page.wait_for_function("document.querySelector('.hz-root') && document.querySelector('.hz-root').lang === 'en'",
                               timeout=LOAD_TIMEOUT_MS)
        page.wait_for_function("window.hazmapWall && window.hazmapWall.ticker().polls > 0", timeout=LOAD_TIMEOUT_MS)
        page.locator("#hz-wall-header .hz-wall-trucks").wait_for(timeout=LOAD_TIMEOUT_MS)
        switch_on_every_layer_en(page)
        page.wait_for_timeout(1500)
        _check(page, names, "wall, every layer on", problems)

        truck = world.vehicles.iloc[3]
        page.locator("#hz-search-input").fill(truck["plate"])
        page.locator("#hz-search-results .hz-search-hit").first.wait_for(timeout=10_000)
        _check(page, names, "search results", problems)
        page.locator("#hz-search-results .hz-search-hit").first.click()
        page.locator("#hz-panel.hz-open").wait_for(timeout=10_000)
        page.wait_for_function("(id) => document.querySelector('#hz-panel').innerText.includes(id)", arg=truck["id"],
                               timeout=10_000)
        _check(page, names, "a truck's panel", problems)

        page.locator("#hz-search-input").fill("no such thing 999")
        page.locator("#hz-search-results .hz-search-none").wait_for(timeout=10_000)
        _check(page, names, "search without hits", problems)
        page.keyboard.press("Escape")

        entity = world.entities.iloc[0]
        page.evaluate("(id) => window.dash_clientside.set_props('hz-live-click', {data: {layer: 'entities', id, at: Date.now()}})",
                      str(entity["id"]))
        page.wait_for_function("(id) => document.querySelector('#hz-panel').innerText.includes(id)",
                               arg=str(entity["id"]), timeout=10_000)
        _check(page, names, "an entity's panel", problems)

        page.locator("#hz-incidents .hz-incident").first.click()
        page.wait_for_function("document.querySelector('#hz-panel').innerText.includes('Incident')", timeout=10_000)
        _check(page, names, "an incident's panel", problems)

        page.locator("#hz-panel-close").click()
        page.locator("#hz-snapshot-export").click()  # no area drawn: the export says what to do
        page.wait_for_function("document.querySelector('#hz-snapshot-status').innerText.trim().length > 0",
                               timeout=10_000)
        _check(page, names, "area export without an area", problems)
    finally:
        context.close()
    assert problems == [], "Chinese left on the English wall:\n" + "\n".join(map(str, problems))
    assert_no_console_errors(console)


def switch_on_every_layer_en(page) -> None:
    for label in page.locator(".leaflet-control-layers-overlays label").all():
        if not label.locator("input").is_checked():
            label.click()


def test_the_login_page_switches_to_english(chromium, stored_world, tmp_path_factory, console):
    from werkzeug.serving import make_server

    from app.settings import Settings
    from app.webapp import create_app
    from tests.api.conftest import build_env
    from tests.browser.conftest import open_page

    tmp = tmp_path_factory.mktemp("login")
    world = stored_world.world
    env = build_env(f"sqlite:///{(tmp / 'hazmap.sqlite').as_posix()}", world, tmp)
    web = create_app(Settings(var_dir=tmp, language="zh"), world, world.fingerprint(), people=env.people)
    server = make_server("127.0.0.1", 0, web.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hazmap-login-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    context, page = open_page(chromium, WALL_1080, console)
    problems: list = []
    try:
        page.goto(url)
        assert "/login" in page.url
        assert CJK.search(page.locator("body").inner_text())  # Chinese by default
        page.locator(".hz-login-language").click()  # the form's own switch (the wall's needs a login)
        page.wait_for_load_state()
        assert "/login" in page.url and page.locator("html").get_attribute("lang") == "en"
        _check(page, _proper_names(world), "login page", problems)
        page.fill("input[name=username]", "nobody")
        page.fill("input[name=password]", "wrong")
        page.locator("button[type=submit]").click()
        page.wait_for_load_state()
        _check(page, _proper_names(world), "login page, refused", problems)
    finally:
        context.close()
        server.shutdown()
        thread.join(timeout=10)
        env.store.close()
    assert problems == [], "Chinese left on the English login page:\n" + "\n".join(map(str, problems))


# A key the store or the World writes, shown as it is: a snake_case word or a lower-case English word.
RAW_KEY = re.compile(r"(?<![A-Za-z0-9/.-])(?:[a-z]+_[a-z_]+|[a-z]{4,})(?![A-Za-z0-9/-])")
RAW_TEXT_JS = r"""() => {
    const found = [], visible = e => e && e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden';
    const where = e => e.id ? '#' + e.id : (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : e.tagName);
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const t = n.textContent.trim(), e = n.parentElement;
        // the map's attribution is Leaflet's (the evidence is walked too: its keys and codes are labelled)
        if (t && visible(e) && !e.closest('.leaflet-control-attribution')) { found.push([t, where(e)]); }
    }
    return found;
}"""


def _raw_keys(page, names: list[str], state: str, problems: list) -> None:
    page.wait_for_timeout(300)
    for text_, where in page.evaluate(RAW_TEXT_JS):
        rest = text_
        for name in names:
            rest = rest.replace(name, " ") if name in rest else rest
        left = RAW_KEY.findall(rest)
        if left:
            problems.append((state, text_, where, left))


def test_the_chinese_wall_shows_labels_not_keys(chromium, incident_app, console):  # noqa: F811
    """The Chinese wall (the default) names every coded value: no store or World key (a recipient's
    `pushed`, a history's `signed`, a rule's `speeding`, a kind's `toxic_gas`) shows as it is, in the
    header, legend, ticker and queue, search, and the incident's, a truck's and an entity's panels."""
    from tests.browser.conftest import open_page

    url, incidents, world = incident_app
    names = _ascii_names(world)
    context, page = open_page(chromium, WALL_1080, console)
    problems: list = []
    try:
        page.goto(url)
        page.wait_for_function("window.hazmapWall && window.hazmapWall.ticker().polls > 0", timeout=LOAD_TIMEOUT_MS)
        page.locator("#hz-wall-header .hz-wall-trucks").wait_for(timeout=LOAD_TIMEOUT_MS)
        assert page.locator(".hz-root").get_attribute("lang") == "zh-CN"
        switch_on_every_layer_en(page)
        page.wait_for_timeout(1500)
        _raw_keys(page, names, "wall, every layer on", problems)
        from app.screen_reports import DRAW_TEXTS  # the drawing tools' tooltips too (assets/hazmap_draw.js)
        assert page.locator(".leaflet-draw-draw-polygon").get_attribute("title") == \
            DRAW_TEXTS["draw.toolbar.buttons.polygon"][0]

        truck = world.vehicles.iloc[3]
        page.locator("#hz-search-input").fill(truck["plate"])
        page.locator("#hz-search-results .hz-search-hit").first.wait_for(timeout=10_000)
        _raw_keys(page, names, "search results", problems)
        page.locator("#hz-search-results .hz-search-hit").first.click()
        page.wait_for_function("(id) => document.querySelector('#hz-panel').innerText.includes(id)", arg=truck["id"],
                               timeout=10_000)
        _raw_keys(page, names, "a truck's panel", problems)

        for layer, table in (("entities", world.entities), ("monitoring_points", world.monitoring_points),
                             ("sensitive_sites", world.sensitive_sites), ("hazard_sources", world.hazard_sources)):
            feature = str(table["id"].iloc[0])
            page.evaluate("([layer, id]) => window.dash_clientside.set_props('hz-live-click', "
                          "{data: {layer, id, at: Date.now()}})", [layer, feature])
            page.wait_for_function("(id) => document.querySelector('#hz-panel').innerText.includes(id)",
                                   arg=feature, timeout=10_000)
            _raw_keys(page, names, f"{layer} panel", problems)

        page.locator("#hz-incidents .hz-incident").first.click()
        page.wait_for_selector("#hz-panel .hz-incident-history", timeout=10_000)
        _raw_keys(page, names, "an incident's panel", problems)
        page.screenshot(path=str(SCREENSHOTS / "incident_panel_zh.png"))
    finally:
        context.close()
    assert problems == [], "keys left on the Chinese wall:\n" + "\n".join(map(str, problems))
    assert_no_console_errors(console)


def _ascii_names(world) -> list[str]:
    """Every text value the World holds (names, English names, plates, ids), longest first: data,
    not keys, whatever its letters."""
    from spatial.model import WORLD_SPECS

    values: set[str] = set()
    for name in WORLD_SPECS:
        table = world.table(name)
        for column in table.columns:
            if column != "geometry" and not pd.api.types.is_numeric_dtype(table[column]) \
                    and not column.endswith(("kind", "category", "status", "class", "body", "role")):
                values.update(v for v in table[column].dropna().astype(str).unique() if v)
    return sorted(values, key=len, reverse=True)
