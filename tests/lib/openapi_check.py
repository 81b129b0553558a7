# Checks every HTTP answer the test suites receive against doc/openapi.yaml: the route
# (method and path) must be described, the status must be described for it, and a JSON
# body must validate against that status's schema (JSON Schema Draft 2020-12, Debian's
# python3-jsonschema). Used by http_request() in tests/lib/integrationsd_test.py, which the black-box,
# fault and package suites share.
#
# Answers that exist outside the route table are checked against the shared component
# responses instead: an unknown path (404 "Cannot GET"), a known path with another method
# (405), and what the server answers before routing (400 framing, 413, 414, 415, 431, 503).
import os
import re
import threading

import jsonschema
import yaml

PRE_ROUTING = {
    "400": "BadRequest",
    "413": "PayloadTooLarge",
    "414": "URITooLong",
    "415": "UnsupportedMediaType",
    "431": "HeadersTooLarge",
    "500": "InternalError",
    "503": "ServiceUnavailable",
    "504": "GatewayTimeout",
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class OpenApiMismatch(AssertionError):
    pass


class Checker:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver.from_schema(self.doc)
        self.routes = []
        for template, item in self.doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)) + "$"
            self.routes.append((template.count("{"), re.compile(rx), template, item))
        # literal segments win over parameters (/api/llm-keys/status before /{nameOrId})
        self.routes.sort(key=lambda r: r[0])
        self.checked = 0
        self.lock = threading.Lock()

    def match(self, path):
        for _, rx, template, item in self.routes:
            if rx.match(path):
                return template, item
        return None, None

    def _deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj and len(obj) == 1:
            _, obj = self.resolver.resolve(obj["$ref"])
        return obj

    def component_response(self, name):
        return self.doc["components"]["responses"][name]

    def _validate(self, where, response, data, is_json):
        response = self._deref(response)
        content = response.get("content") or {}
        if not is_json:
            return
        media = content.get("application/json")
        if media is None:
            raise OpenApiMismatch("%s: a JSON body where the document describes none (%s): %r"
                                  % (where, sorted(content) or "no content", data))
        schema = media.get("schema")
        if schema is None:
            return
        validator = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            raise OpenApiMismatch("%s: body does not match doc/openapi.yaml: %s at %s\nbody: %r"
                                  % (where, e.message, "/".join(str(p) for p in e.absolute_path) or "(root)",
                                     data))

    def check(self, method, path, status, data, is_json):
        """Raise OpenApiMismatch when the answer is not described by the document."""
        with self.lock:
            self.checked += 1
        method = method.lower()
        path = path.split("?", 1)[0].split("#", 1)[0]
        st = str(status)
        where = "%s %s -> %s" % (method.upper(), path, st)
        template, item = self.match(path)
        if template is None:
            if st == "404":
                return self._validate(where + " (unknown path)", self.component_response("NotFound"), data, is_json)
            if st in PRE_ROUTING:
                return self._validate(where + " (before routing)", self.component_response(PRE_ROUTING[st]), data, is_json)
            raise OpenApiMismatch("%s: the path is not in doc/openapi.yaml" % where)
        op = item.get(method)
        if op is None and method == "head":
            op = item.get("get")
        if op is None:
            if method == "options":
                return  # CORS preflight: answered for every path, no body
            if st == "405":
                return self._validate(where, self.component_response("MethodNotAllowed"), data, is_json)
            if st in PRE_ROUTING:
                return self._validate(where + " (before routing)", self.component_response(PRE_ROUTING[st]), data, is_json)
            raise OpenApiMismatch("%s: %s %s is not in doc/openapi.yaml" % (where, method.upper(), template))
        responses = op.get("responses", {})
        response = responses.get(st) or responses.get(st[0] + "XX") or responses.get("default")
        if response is None:
            if st == "414":
                return self._validate(where, self.component_response("URITooLong"), data, is_json)
            raise OpenApiMismatch("%s: status %s is not described for %s %s in doc/openapi.yaml (described: %s)"
                                  % (where, st, method.upper(), template, ", ".join(sorted(responses))))
        self._validate("%s (%s %s)" % (where, method.upper(), template), response, data, is_json)


_checker = None


def checker(top_srcdir):
    global _checker
    if _checker is None:
        _checker = Checker(os.path.join(top_srcdir, "doc", "openapi.yaml"))
    return _checker
