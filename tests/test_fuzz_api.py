"""Fuzzing: schemathesis generates requests from the API's own OpenAPI document.

Every operation of ``/api/schema`` gets ``JOBS_FUZZ_EXAMPLES`` generated
requests (25 by default; set it higher for a longer run), valid and invalid
ones, sent to the Django application in this process. Each answer must be no
server error, carry a status code the document lists for that operation, and
have the content type and body the document gives for that status.

``GET /api/events`` is a stream that never ends by itself, so it is not
fuzzed here; tests/test_hostile_http.py sends it broken ``Last-Event-ID``
values over a real socket.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs import health

# Django closes stale database connections at the start of each request:
# after other tests opened one, that needs database access.
pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("JOBS_FUZZ_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def fuzzable(settings) -> None:
    # Generated creates come fast: neither the per-client throttle nor the
    # backpressure (whose worker is not running here) may answer them.
    settings.JOBS_THROTTLE_CREATE_RATE = 0
    settings.JOBS_MAX_LATENESS = 0
    settings.JOBS_MAX_DUE_PER_SECOND = 0
    # A healthy system, so that every 5xx is a defect (the 503 of a system
    # without a worker is tests/test_health.py's).
    health.write_heartbeat()


schema = schemathesis.openapi.from_wsgi("/api/schema", get_wsgi_application()).exclude(
    path="/api/events"
)


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_schema_says(case):
    case.call_and_validate(checks=CHECKS)
