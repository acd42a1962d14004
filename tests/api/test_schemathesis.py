"""schemathesis against the served OpenAPI document (/api/openapi.json), on both stores, as a duty
officer and as a department user: no request it makes gets a server error, and every response
matches the document (schema, status codes, content type). Examples per operation are bounded
so the whole run stays well under two minutes."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

EXAMPLES_PER_OPERATION = 12
CHECKS = [checks.not_a_server_error, checks.response_schema_conformance, checks.status_code_conformance,
          checks.content_type_conformance]


@pytest.mark.parametrize("user", ["duty", "dept"])
def test_the_served_document_holds_under_schemathesis(shared_env, user):
    env = shared_env
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", env.client.application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures = []
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers=env.headers(user), checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, report them together
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert failures == []
