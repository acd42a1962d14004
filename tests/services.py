"""Access to the real services the tests use (PostGIS, Mosquitto, Chromium).

The test command (`./test.sh`) installs and starts them and exports where they are. A test
that needs a service that is not there skips on a developer's laptop, and fails under
CI=true: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = os.environ.get("HAZMAP_TEST_CHROMIUM", "/usr/bin/chromium")


def missing_service(what: str) -> None:
    message = f"{what} is not available; run the tests through ./test.sh, which installs and starts it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def postgis_admin_url() -> str:
    """URL of a PostGIS-capable server's maintenance database (test databases are created there)."""
    url = os.environ.get("HAZMAP_TEST_POSTGRES_URL", "")
    if not url:
        missing_service("PostgreSQL with PostGIS (HAZMAP_TEST_POSTGRES_URL)")
    return url


def mqtt_broker_url() -> str:
    """URL of the Mosquitto the tests publish to (each test picks its own topic prefix)."""
    url = os.environ.get("HAZMAP_TEST_MQTT_URL", "")
    if not url:
        missing_service("Mosquitto (HAZMAP_TEST_MQTT_URL)")
    return url


def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing_service(f"Chromium ({CHROMIUM})")
    return CHROMIUM


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
