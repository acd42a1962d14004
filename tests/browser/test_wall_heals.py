"""The wall heals itself after a server restart (issue 16), in real headless Chromium against a real
`hazmap demo` process: the wall open, the server stopped and started again on the same port, the
header says the link is lost, then that it is back and resynced, then the notice goes away; the
trucks are drawn again from the new server's full frame; never a blank map or an error dialog.
A screenshot of the healed wall is kept (var/screenshots/wall-restart.png).
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.browser.conftest import SCREENSHOTS, WALL_1080, open_page
from tests.test_cli import HAZMAP, wait_until_serving
from tests.test_cli_live import _free_port

pytestmark = pytest.mark.browser

START_TIMEOUT_S = 240
WAIT_MS = 60_000
# Dash's error dialogs (debug) and its front-end error banner: none may show.
ERROR_DIALOGS = ".dash-fe-error__title, .dash-debug-alert, .dash-error-card"


def _start(tmp_path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAZMAP_")}
    env.update(HAZMAP_VAR_DIR=str(tmp_path / "var"), HAZMAP_PORT=str(port), HAZMAP_JT808_PORT="0",
               HAZMAP_JT808_STATS_PORT="0", HAZMAP_WORLD_SCALE="0.02", HAZMAP_SIM_TIME_FACTOR="60",
               HAZMAP_MQTT_URL=f"mqtt://127.0.0.1:{_free_port()}",  # no broker: readings fed in-process
               HAZMAP_AUTH_REQUIRED="false", HAZMAP_WALL_ALARM_SOUND="false")  # an open kiosk wall
    proc = subprocess.Popen([HAZMAP, "demo"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_until_serving(proc, port, START_TIMEOUT_S)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=30)


def test_a_server_restart_is_said_in_the_header_and_healed(chromium, tmp_path, console):
    port = _free_port()
    server = _start(tmp_path, port)
    context, page = open_page(chromium, WALL_1080, console)
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("window.hazmapLive && window.hazmapLive.trucks > 0", timeout=WAIT_MS)
        before = page.evaluate("({version: window.hazmapLive.version, polls: window.hazmapLive.polls})")

        _stop(server)  # the server goes away under the wall
        page.wait_for_function("window.hazmapWall.link() === 'down'", timeout=WAIT_MS)
        assert page.locator("#hz-link-status").inner_text() == "连接中断，正在重连"
        assert page.locator(ERROR_DIALOGS).count() == 0
        assert page.locator(".hz-map .leaflet-pane").count() > 0  # the map stays
        assert page.evaluate("window.hazmapLive.trucks") > 0  # with the trucks it last knew

        server = _start(tmp_path, port)  # back on the same port, a new process with a new live state
        page.wait_for_function("window.hazmapWall.link() === 'back'", timeout=WAIT_MS)
        assert page.locator("#hz-link-status").inner_text() == "已重新连接并同步"
        # resynced: the new server's frames (its versions started again) and its trucks drawn
        page.wait_for_function(
            "(v) => window.hazmapLive.version !== v && window.hazmapLive.trucks > 0", arg=before["version"],
            timeout=WAIT_MS)
        page.wait_for_timeout(1000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "wall-restart.png"))
        page.wait_for_function("window.hazmapWall.link() === 'ok'", timeout=WAIT_MS)  # the notice goes away
        assert page.locator("#hz-link-status").inner_text() == ""
        assert page.locator(ERROR_DIALOGS).count() == 0
        # the rest of the wall is live again too: the header's figures refresh from the new server
        page.wait_for_function("document.querySelector('#hz-wall-header .hz-wall-trucks') !== null", timeout=WAIT_MS)
    finally:
        context.close()
        _stop(server)
