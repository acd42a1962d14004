"""The wheel alone serves the screen: built with `python -m build`, installed into a fresh venv
that cannot see the checkout, run from another folder, the page loads with its scripts.

Building and installing costs minutes (the dependencies come from the configured package
index: about 2 min here), so it happens once per test session (`installed_wheel`, shared with
tests/test_deploy_script.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services import CHROMIUM_ARGS, chromium_path

REPO = Path(__file__).resolve().parents[1]
_NOT_SHIPPED = shutil.ignore_patterns(".venv", ".git", "var", "__pycache__", "*.egg-info", "build", "dist",
                                      ".pytest_cache", "tests", "node_modules", "*.pyc")


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    venv: Path
    install_s: float

    @property
    def hazmap(self) -> str:
        return str(self.venv / "bin" / "hazmap")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process run from the wheel's venv: nothing of the checkout's."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HAZMAP_", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(extra)
        return env


_CACHE: dict[str, InstalledWheel] = {}


def build_and_install(base: Path) -> InstalledWheel:
    """`python -m build --wheel` on a copy of the checkout (so the build leaves nothing in the
    tree others work in), then a fresh venv with only that wheel installed."""
    if "wheel" in _CACHE:
        return _CACHE["wheel"]
    source, dist, venv = base / "src", base / "dist", base / "venv"
    shutil.copytree(REPO, source, ignore=_NOT_SHIPPED)
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
                           cwd=source, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("hazmap-*.whl")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                             cwd=base, capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stdout + install.stderr
    _CACHE["wheel"] = InstalledWheel(wheel, venv, time.monotonic() - started)
    print(f"\nwheel venv: installed {wheel.name} and its dependencies in {_CACHE['wheel'].install_s:.0f} s")
    return _CACHE["wheel"]


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> InstalledWheel:
    # module-level cache: tests/test_deploy_script.py imports this fixture, and must share the venv
    return build_and_install(tmp_path_factory.mktemp("wheel"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout_s:.0f} s"
        time.sleep(0.5)


def test_the_wheel_ships_the_screen_and_its_data(installed_wheel):
    import zipfile

    names = set(zipfile.ZipFile(installed_wheel.wheel).namelist())
    shipped_assets = {n.split("/", 1)[1] for n in names if n.startswith("assets/") and not n.endswith(".py")}
    in_checkout = {p.name for p in (REPO / "assets").iterdir() if p.is_file() and p.suffix in (".js", ".css")}
    assert in_checkout and in_checkout <= shipped_assets  # every script and style the checkout has
    assert {"data/reference/ningbo_districts.geojson", "data/reference/chemicals.csv",
            "data/migrations/script.py.mako", "data/migrations/env.py"} <= names
    migrations = {p.name for p in (REPO / "data" / "migrations" / "versions").glob("0*.py")}
    assert {f"data/migrations/versions/{m}" for m in migrations} <= names


def test_the_installed_wheel_serves_the_page_with_its_scripts(installed_wheel, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    run = tmp_path / "elsewhere"  # not the checkout: nothing can be imported from it
    run.mkdir()
    port = free_port()
    env = installed_wheel.env(HAZMAP_VAR_DIR=str(run / "var"), HAZMAP_PORT=str(port), HAZMAP_JT808_PORT="0",
                              HAZMAP_JT808_STATS_PORT="0", HAZMAP_MQTT_IN_SERVE="false",
                              HAZMAP_TILE_URL="http://127.0.0.1:9/tiles/{z}/{x}/{y}.png")
    where = subprocess.run([str(installed_wheel.venv / "bin" / "python"), "-c",
                            "import app, assets; print(app.__file__); print(assets.ASSETS_DIR)"],
                           cwd=run, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(str(installed_wheel.venv) in p and str(REPO) not in p for p in where), where
    password = "wheel-test-" + os.urandom(8).hex()
    for args, given in ((["db", "upgrade"], None), (["world", "build", "--seed", "5", "--scale", "0.01"], None),
                        (["users", "add", "duty", "--role", "duty_officer", "--password-stdin"], password + "\n")):
        done = subprocess.run([installed_wheel.hazmap, *args], cwd=run, env=env, capture_output=True, text=True,
                              timeout=600, input=given)
        assert done.returncode == 0, done.stderr
    installed_assets = sorted(p.name for p in Path(where[1]).iterdir() if p.suffix in (".js", ".css"))
    serve = subprocess.Popen([installed_wheel.hazmap, "serve"], cwd=run, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/health", serve)
        loaded: dict[str, int] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("response", lambda r: loaded.__setitem__(r.url.split("?")[0].rsplit("/", 1)[-1], r.status)
                    if "/assets/" in r.url else None)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")  # a stranger gets the login form
            page.fill("input[name=username]", "duty")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_selector(".leaflet-container", timeout=60_000)
            page.wait_for_function("() => window.hazmap && window.hazmap.map && window.hazmapLive", timeout=30_000)
            preload_ran = page.evaluate("() => Boolean(window.hazmapPreload && window.regeneratorRuntime)")
            # the static canvas's worker: started by the page once its layers come, served from the wheel
            worker_status = page.evaluate("fetch('/assets/hazmap_static_worker.js').then(r => r.status)")
            browser.close()
        # the payload preloader (in the page's head) and the regenerator runtime (in place of Dash's
        # polyfill) are inlined in the page (app/webapp.py), not served as files
        inlined = ("hazmap_preload.js", "regenerator-runtime.min.js")
        assert set(inlined) <= set(installed_assets) and preload_ran, (installed_assets, preload_ran)
        assert worker_status == 200
        served = [name for name in installed_assets if name not in inlined and name != "hazmap_static_worker.js"]
        assert {name: loaded.get(name) for name in served} == {name: 200 for name in served}
        assert not set(inlined) & set(loaded), loaded
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=120)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 128 + signal.SIGTERM, output
    assert "development server" not in output and "waitress" in output, output


def test_every_imported_library_is_a_declared_dependency():
    """The quick cousin of the wheel test: a library the code imports (at the top or inside a
    function) must come with `pip install hazmap`, i.e. be a declared dependency or one of theirs."""
    import ast
    import re
    import tomllib
    from importlib import metadata

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    todo = [canonical(re.match(r"[A-Za-z0-9_.-]+", dep).group()) for dep in project["dependencies"]]
    shipped: set[str] = set()
    while todo:  # the declared dependencies and everything they require (outside their extras)
        name = todo.pop()
        if name in shipped:
            continue
        shipped.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [canonical(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in requires if "extra ==" not in r]
    own = {"app", "assets", "bench", "data", "layers", "reports", "spatial"}
    providers = metadata.packages_distributions()
    missing = {}
    for package in sorted(own):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
                for top in {n.split(".")[0] for n in names} - own - set(sys.stdlib_module_names):
                    if not {canonical(d) for d in providers.get(top, [top])} & shipped:
                        missing.setdefault(top, str(path.relative_to(REPO)))
    assert not missing, f"imported but not a dependency in pyproject.toml: {missing}"
