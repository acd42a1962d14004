"""docs/deploy.md followed by a script on this machine: deploy/check-deploy.sh takes the wheel's
venv (built once per session, tests/test_wheel.py) and a fresh PostGIS database, runs the
migrations, the service's command line from the shipped unit file and nginx with the shipped
site, and checks the page, the API, readiness and metrics through the proxy."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.services import missing_service
from tests.test_wheel import REPO, installed_wheel  # noqa: F401 - the session's wheel venv, shared

SCRIPT = REPO / "deploy" / "check-deploy.sh"


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if found is None:
        missing_service("nginx")
    return found


def test_the_deploy_guide_runs_here_and_answers_through_nginx(installed_wheel, postgis_url, tmp_path):  # noqa: F811
    nginx = _nginx()
    env = installed_wheel.env(HAZMAP_VENV=str(installed_wheel.venv), DATABASE_URL=postgis_url, NGINX_BIN=nginx)
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "deploy")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    for step in ("step 5: postgresql", "step 6:", "step 7: nginx", "the page and its scripts answer through nginx",
                 "the worker's script answers through nginx, the page isolated",
                 "/api/ready ready", "/metrics answers through nginx", "carries nginx's request id",
                 "exit 143", "all checks passed"):
        assert step in output, f"{step!r} missing:\n{output}"


def test_the_shipped_unit_and_site_say_what_the_guide_says():
    unit = (REPO / "deploy" / "hazmap.service").read_text()
    site = (REPO / "deploy" / "nginx" / "hazmap.conf").read_text()
    guide = (REPO / "docs" / "deploy.md").read_text()
    assert "ExecStart=/opt/hazmap/venv/bin/hazmap serve" in unit and "SuccessExitStatus=143" in unit
    assert "proxy_set_header X-Request-ID $request_id;" in site and "server 127.0.0.1:8050;" in site
    for path in ("deploy/hazmap.service", "deploy/nginx/hazmap.conf", "deploy/hazmap.toml", "/opt/hazmap/venv",
                 "hazmap db upgrade", "deploy/check-deploy.sh"):
        assert path in guide, f"docs/deploy.md does not mention {path}"
