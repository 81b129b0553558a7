# The OpenAPI document: served public as JSON, equal to doc/openapi.yaml (so the built-in
# copy cannot drift from the reference), made of valid Draft 2020-12 schemas, and the
# response checker that every other test goes through (openapi_check.py) really refuses
# undescribed routes, statuses and bodies. The route set is compared with the server's
# route table by tests/unit/test_openapi.
import json
import os

import jsonschema
import pytest
import yaml

from conftest import TOP_SRCDIR, openapi_check

DOC = os.path.join(TOP_SRCDIR, "doc", "openapi.yaml")


def load_yaml():
    with open(DOC, encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_served_document_is_the_yaml_public_json(svc):
    st, hdrs, data = svc.req("GET", "/api/integrations/openapi.json")  # no token
    assert st == 200, data
    assert hdrs.get("Content-Type") == "application/json; charset=utf-8"
    assert hdrs.get("Cache-Control") == "no-store"
    assert isinstance(data, dict)
    assert data == load_yaml(), "the built-in document differs from doc/openapi.yaml: run contrib/dev/openapi-json and rebuild"
    with open(os.path.join(TOP_SRCDIR, "doc", "openapi.json"), encoding="utf-8") as f:
        assert json.load(f) == data


def test_every_schema_is_valid_draft_2020_12():
    doc = load_yaml()
    assert doc["openapi"].startswith("3.1.")
    assert doc["components"]["securitySchemes"]["Bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": doc["components"]["securitySchemes"]["Bearer"]["description"]}
    n = 0

    def walk(node):
        nonlocal n
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "schema" and isinstance(v, dict):
                    jsonschema.Draft202012Validator.check_schema(v)
                    n += 1
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc["paths"])
    walk(doc["components"]["responses"])
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        n += 1
    assert n > 50


def test_every_operation_has_a_summary_and_documents_the_shared_statuses():
    doc = load_yaml()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert op.get("summary"), (method, path)
            for st in ("400", "413", "431", "500", "503"):
                assert st in op["responses"], (method, path, st)
            if op.get("security") != []:
                for st in ("401", "403", "406"):
                    assert st in op["responses"], (method, path, st)


@pytest.fixture(scope="module")
def checker():
    return openapi_check.Checker(DOC)


def test_checker_refuses_an_undescribed_path(checker):
    with pytest.raises(openapi_check.OpenApiMismatch, match="not in doc/openapi.yaml"):
        checker.check("GET", "/api/nothing-here", 200, {"message": "OK"}, True)
    checker.check("GET", "/api/nothing-here", 404, {"message": "Not Found", "data": "Cannot GET /api/nothing-here"}, True)


def test_checker_refuses_an_undescribed_method_and_status(checker):
    with pytest.raises(openapi_check.OpenApiMismatch, match="PUT /api/llm-keys is not in"):
        checker.check("PUT", "/api/llm-keys", 200, {"message": "OK", "data": []}, True)
    checker.check("PUT", "/api/llm-keys", 405, {"message": "Method Not Allowed", "data": "x"}, True)
    with pytest.raises(openapi_check.OpenApiMismatch, match="status 418 is not described"):
        checker.check("GET", "/healthz", 418, {"message": "I'm a teapot"}, True)


def test_checker_refuses_a_body_that_does_not_match(checker):
    ok = {"message": "OK", "data": [{"id": 1, "key": "****...abcd", "name": "OpenAI", "url": None,
                                     "model": "gpt-4o", "created_at": "2026-01-01T00:00:00Z"}]}
    checker.check("GET", "/api/llm-keys", 200, ok, True)
    unmasked = json.loads(json.dumps(ok))
    unmasked["data"][0]["key"] = "sk-live-1234567890abcd"
    with pytest.raises(openapi_check.OpenApiMismatch, match="does not match"):
        checker.check("GET", "/api/llm-keys", 200, unmasked, True)
    with pytest.raises(openapi_check.OpenApiMismatch, match="does not match"):
        checker.check("GET", "/api/llm-keys", 200, {"message": "OK", "data": {"id": 1}}, True)
    # a literal route wins over a parameter: /status is not /{nameOrId}
    with pytest.raises(openapi_check.OpenApiMismatch, match="does not match"):
        checker.check("GET", "/api/llm-keys/status", 200, ok, True)
    # a JSON body where the document describes none (204)
    with pytest.raises(openapi_check.OpenApiMismatch, match="describes none"):
        checker.check("DELETE", "/api/slack-webhooks/3", 204, {"message": "No Content"}, True)


def test_answers_in_this_suite_are_checked(svc, tokens):
    from conftest import SERVICE_PORTS, openapi_check as oc
    assert svc.port in SERVICE_PORTS
    before = oc.checker(TOP_SRCDIR).checked
    st, _, _ = svc.req("GET", "/healthz")
    assert st == 200
    assert oc.checker(TOP_SRCDIR).checked == before + 1
