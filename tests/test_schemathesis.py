"""Schemathesis against the app's own OpenAPI schema, in-process (tests/inprocess.py): every operation, signed in
as a creator (API token) so authenticated routes run past their 401, with generated valid and invalid inputs.
Each response must be no 5xx, have a status the operation declares, the declared content type, and a body that
matches the declared schema. Bounded: MAX_EXAMPLES per operation and mode, no deadline (the machine is shared).

One test walks every operation with Hypothesis itself (`operation.as_strategy()`) rather than through
`schema.parametrize()`: the schema must come from an app built in a fixture (a temporary install), and
schemathesis 4.32's fixture-based loader reads a pytest-internal attribute pytest 9 no longer has.
"""

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup  # a BaseExceptionGroup

from tests.inprocess import LocalApp, local_app

MAX_EXAMPLES = 12  # per operation and mode: about 1,000 requests, ~20 s of CPU
pytestmark = pytest.mark.slow  # tens of seconds without any service
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Iterator[LocalApp]:
    with local_app(tmp_path_factory.mktemp("schemathesis")) as app:
        yield app


def test_every_operation_answers_as_its_schema_says(install):
    creator = install.as_user(install.user())
    schema = schemathesis.openapi.from_asgi("/openapi.json", install.app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure as found is reported
            )
            def run(case) -> None:
                case.call_and_validate(headers=creator, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # no invalid input exists (an operation without parameters or body)
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, FailureGroup) as exc:  # every operation's failure, not only the first one's
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert operations > 20
    assert not failures, "\n\n".join(failures)
