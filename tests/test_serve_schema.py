"""Property-based API test: schemathesis against the service's own OpenAPI (issue 13, row 12).

Over the ASGI transport (no network), every check schemathesis has: no 5xx, responses match
their schemas, schema-valid requests are accepted and schema-invalid ones rejected, an
undocumented method answers 405. Two apps:

* the model-free fake backend (no explain) through ``schema.parametrize()``: every phase
  (examples, coverage: boundary values and negative cases, fuzzing);
* the tiny spaCy pipeline (explain available), which needs the session's ``tiny_bert``
  fixture: schemathesis' lazy ``from_fixture`` loader breaks on pytest 9 (it reads
  ``request.node._nodeid``, gone in pytest 9), so that test draws cases from
  ``schema.as_strategy()`` with Hypothesis' ``@given``, positive and negative.

A bounded number of examples keeps the whole module under ~30 s.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from serve_helpers import FakeBackend, serve_pipeline

from spacy_senti.serve import ServeSettings, create_app

# small limits, so boundary cases (max length, max items) stay cheap for the tiny model
LIMITS = ServeSettings(max_texts=4, max_explain_texts=2, max_chars=64, max_batch=8, max_wait_ms=1,
                       timeout_s=30)
EXAMPLES = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))

fake_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(settings=LIMITS, backend=FakeBackend()))


@fake_schema.parametrize()
@EXAMPLES
def test_api_fake_backend(case):
    case.call_and_validate()


@pytest.fixture(scope="module")
def spacy_schema(tiny_bert, tmp_path_factory):
    path = serve_pipeline(tiny_bert, tmp_path_factory.mktemp("serve_pipe"))
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(path, LIMITS))


def test_api_spacy_backend(spacy_schema):
    explain = spacy_schema["/v1/analyze"]["POST"].definition.raw["requestBody"]
    assert "enum" not in explain["content"]["application/json"]["schema"]["properties"][
        "explain"]  # this pipeline has senti_lexicon: explain=true is schema-valid
    cases = st.one_of(spacy_schema.as_strategy(GenerationMode.POSITIVE),
                      spacy_schema.as_strategy(GenerationMode.NEGATIVE))

    @EXAMPLES
    @given(case=cases)
    def check(case) -> None:
        case.call_and_validate()

    check()
