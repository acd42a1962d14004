"""Shared fixtures: a store database on each backend.

`store_url` is parametrised over "sqlite" (a file under tmp_path, in a folder that does not exist
yet) and "postgis" (a fresh database `hazmap_test_<random>` with PostGIS on the server at
tests.services.postgis_admin_url(), dropped at the end). `store` is that database opened and
migrated. A missing server goes through tests.services.missing_service (a failure under CI=true).
"""

from __future__ import annotations

import logging
import uuid

import pytest
import sqlalchemy as sa

from tests.services import missing_service, postgis_admin_url

# The test servers' werkzeug request log would install its own StreamHandler on the stderr that
# pytest captures for one test and later closes. Its server threads then print "--- Logging error
# ---" tracebacks, and CPython 3.11's traceback printing calls ast.parse: two threads parsing at
# once raise "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905, a thread
# race fixed after 3.11.7, the pyenv Python here) inside pytest's report of a failing test: an
# INTERNALERROR that ends the whole run. A NullHandler keeps werkzeug from adding its handler;
# its warnings still reach pytest's log capture.
logging.getLogger("werkzeug").addHandler(logging.NullHandler())
logging.getLogger("werkzeug").setLevel(logging.WARNING)

STORE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgis", id="postgis", marks=pytest.mark.postgis),
]


@pytest.fixture(scope="session")
def postgis_template():
    """A database with `CREATE EXTENSION postgis` done once; each test database is a copy of it
    (CREATE DATABASE … TEMPLATE takes a fraction of the time the extension takes to install)."""
    admin = sa.create_engine(postgis_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        missing_service(f"PostgreSQL at {admin.url.render_as_string(hide_password=True)} ({exc.orig})")
    template = f"hazmap_test_tpl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{template}"')
    template_engine = sa.create_engine(admin.url.set(database=template), isolation_level="AUTOCOMMIT")
    try:
        with template_engine.connect() as connection:
            connection.exec_driver_sql("CREATE EXTENSION postgis")
    except sa.exc.DBAPIError as exc:
        template_engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        admin.dispose()
        missing_service(f"the PostGIS extension ({exc.orig})")
    template_engine.dispose()
    yield admin, template
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def postgis_url(postgis_template):
    admin, template = postgis_template
    name = f"hazmap_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{(tmp_path / 'var' / 'hazmap.sqlite').as_posix()}"


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request):
    """URL of an empty database on each backend."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgis_url")


@pytest.fixture
def store(store_url):
    """An empty store on each backend, migrated to head."""
    from data.store import Store

    opened = Store.open(store_url, upgrade=True)
    try:
        yield opened
    finally:
        opened.close()
