# Fake LLM providers for key verification (shared/reference/external-apis.md section 4).
# Stdlib only; one server per provider; behaviour by the key's marker (fakes/__init__.py).
#
#   FakeAnthropic   GET /v1/models; needs x-api-key (missing -> 401 "x-api-key header is
#                   required") and anthropic-version (missing -> 400); unknown key -> 401
#                   {"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},
#                   "request_id":...}; a request-id header on every answer.
#   FakeOpenAI      GET /v1/models; Bearer (missing -> 401 "You didn't provide an API key...",
#                   code null); unknown key -> 401 {"error":{"message":"Incorrect API key provided:
#                   <masked>...","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}.
#   FakeOpenRouter  GET /api/v1/key and /api/v1/auth/key; Bearer (or x-api-key); VALID -> 200
#                   {"data":{label, limit, usage, ...}}; missing -> 401 "No auth credentials found";
#                   unknown -> 401 {"error":{"code":401,"message":"User not found."}}.
#                   GET /api/v1/models is public: 200 for any key or none (so it cannot verify).
#   Every provider: RATELIMIT -> 429 (+ retry-after), FORBIDDEN -> 403 (OpenAI: 401 restricted
#   key, code null), SLOW*/RESET/CLOSE/HUGE/GARBAGE/E5xx as in fakes/__init__.py.
#
#   f = FakeLLM().start(); f.env() -> {"ANTHROPIC_API_URL": ..., "OPENAI_API_URL": ..., ...}
#   llm_key("Anthropic", "VALID") -> "sk-ant-api03-...VALID"
import itertools
import random
import string

from .base import FakeServer, slow_seconds

PROVIDERS = ("Anthropic", "OpenAI", "OpenRouter")
ANTHROPIC_VERSION = "2023-06-01"
_rng = random.Random()
_ids = itertools.count(1)

_PREFIX = {"Anthropic": ("sk-ant-api03-", 108), "OpenAI": ("sk-proj-", 80), "OpenRouter": ("sk-or-v1-", 73)}


def llm_key(provider, marker="VALID"):
    """A key of the provider's usual shape ending in `marker` (unique random filler)."""
    prefix, length = _PREFIX[provider]
    n = length - len(prefix) - len(marker)
    return prefix + "".join(_rng.choice(string.ascii_lowercase) for _ in range(n)) + marker


def _bearer(value):
    if not value:
        return None
    parts = value.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1].strip()


def _transport_marker(h, marker, default_delay):
    """Handle the markers every provider shares. Returns the marker to answer for
    (SLOW* becomes VALID after the delay) or None when the connection was dropped."""
    delay = slow_seconds(marker, default_delay)
    if delay is not None:
        if h.sleep(delay):
            h.close_quietly()
            return None
        return "VALID"
    if marker == "RESET":
        h.reset()
        return None
    if marker == "CLOSE":
        h.close_quietly()
        return None
    return marker


class FakeAnthropic(FakeServer):
    name = "fake-anthropic"
    base_path = "/v1"

    def _err(self, h, status, etype, message, extra=None):
        rid = "req_fake%08d" % next(_ids)
        h.send_json(status, {"type": "error", "error": {"type": etype, "message": message}, "request_id": rid},
                    [("request-id", rid)] + (extra or []))

    def handle(self, h, rec):
        if rec.method != "GET" or rec.path != self.base_path + "/models":
            self._err(h, 404, "not_found_error", "Not found")
            return
        key = rec.headers.get("x-api-key")
        if not key:
            self._err(h, 401, "authentication_error", "x-api-key header is required")
            return
        if not rec.headers.get("anthropic-version"):
            self._err(h, 400, "invalid_request_error", "anthropic-version: header is required")
            return
        marker = self.marker_for(key)
        if marker is None:
            self._err(h, 401, "authentication_error", "invalid x-api-key")
            return
        marker = _transport_marker(h, marker, self.slow_delay)
        rid = [("request-id", "req_fake%08d" % next(_ids))]
        if marker is None:
            return
        if marker == "VALID":
            h.send_json(200, {"data": [
                {"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
                 "created_at": "2025-05-22T00:00:00Z"},
                {"type": "model", "id": "claude-3-5-haiku-20241022", "display_name": "Claude Haiku 3.5",
                 "created_at": "2024-10-22T00:00:00Z"}],
                "has_more": False, "first_id": "claude-sonnet-4-20250514", "last_id": "claude-3-5-haiku-20241022"},
                rid)
        elif marker == "RATELIMIT":
            self._err(h, 429, "rate_limit_error", "Number of requests has exceeded your rate limit",
                      [("retry-after", "30")])
        elif marker == "FORBIDDEN":
            self._err(h, 403, "permission_error", "Your API key does not have permission to use the specified resource.")
        elif marker == "HUGE":
            h.send_huge(200, rid)
        elif marker == "GARBAGE":
            h.send_bytes(200, b"<html>not json</html>", "text/html", rid)
        elif marker == "E500":
            self._err(h, 500, "api_error", "Internal server error")
        elif marker in ("E502", "E503"):
            self._err(h, 529, "overloaded_error", "Overloaded")
        else:
            self._err(h, 401, "authentication_error", "invalid x-api-key")


def _openai_mask(key):
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * len(key)


class FakeOpenAI(FakeServer):
    name = "fake-openai"
    base_path = "/v1"

    def _err(self, h, status, message, etype, code, extra=None):
        h.send_json(status, {"error": {"message": message, "type": etype, "param": None, "code": code}},
                    [("x-request-id", "req_fake%08d" % next(_ids))] + (extra or []))

    def handle(self, h, rec):
        if rec.method != "GET" or rec.path != self.base_path + "/models":
            self._err(h, 404, "Invalid URL (%s %s)" % (rec.method, rec.path), "invalid_request_error", None)
            return
        key = _bearer(rec.headers.get("Authorization"))
        if not key:
            self._err(h, 401, "You didn't provide an API key. You need to provide your API key in an "
                              "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as "
                              "the password field (with blank username) if you're accessing the API from your "
                              "browser and are prompted for a username and password. You can obtain an API key "
                              "from https://platform.openai.com/account/api-keys.", "invalid_request_error", None)
            return
        marker = self.marker_for(key)
        if marker is None:
            self._err(h, 401, "Incorrect API key provided: %s. You can find your API key at "
                              "https://platform.openai.com/account/api-keys." % _openai_mask(key),
                      "invalid_request_error", "invalid_api_key")
            return
        marker = _transport_marker(h, marker, self.slow_delay)
        if marker is None:
            return
        rid = [("x-request-id", "req_fake%08d" % next(_ids)), ("openai-processing-ms", "12")]
        if marker == "VALID":
            h.send_json(200, {"object": "list", "data": [
                {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
                {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}]}, rid)
        elif marker == "RATELIMIT":
            self._err(h, 429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                      [("retry-after", "20")])
        elif marker == "FORBIDDEN":
            self._err(h, 401, "You have insufficient permissions for this operation. Missing scopes: "
                              "api.model.read. Check that you have the correct role in your organization.",
                      "invalid_request_error", None)
        elif marker == "HUGE":
            h.send_huge(200, rid)
        elif marker == "GARBAGE":
            h.send_bytes(200, b"<html>not json</html>", "text/html", rid)
        elif marker in ("E500", "E502", "E503"):
            self._err(h, int(marker[1:]), "The server had an error while processing your request. Sorry about that!",
                      "server_error", None)
        else:
            self._err(h, 401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")


class FakeOpenRouter(FakeServer):
    name = "fake-openrouter"
    base_path = "/api/v1"

    def _err(self, h, status, message, extra=None):
        h.send_json(status, {"error": {"code": status, "message": message}}, extra)

    def handle(self, h, rec):
        if rec.method == "GET" and rec.path == self.base_path + "/models":
            h.send_json(200, {"data": [{"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o"}]})
            return
        if rec.method != "GET" or rec.path not in (self.base_path + "/key", self.base_path + "/auth/key"):
            self._err(h, 404, "Not Found")
            return
        key = _bearer(rec.headers.get("Authorization")) or rec.headers.get("x-api-key")
        if not key:
            self._err(h, 401, "No auth credentials found")
            return
        marker = self.marker_for(key)
        if marker is None:
            self._err(h, 401, "User not found.")
            return
        marker = _transport_marker(h, marker, self.slow_delay)
        if marker is None:
            return
        if marker == "VALID":
            h.send_json(200, {"data": {
                "label": key[:12] + "..." + key[-3:], "limit": 100, "limit_reset": "monthly",
                "limit_remaining": 74.5, "include_byok_in_limit": False, "usage": 25.5, "usage_daily": 25.5,
                "usage_weekly": 25.5, "usage_monthly": 25.5, "is_free_tier": False, "is_management_key": False,
                "is_provisioning_key": False, "expires_at": None,
                "rate_limit": {"requests": 1000, "interval": "1h",
                               "note": "This field is deprecated and safe to ignore."}}})
        elif marker == "RATELIMIT":
            self._err(h, 429, "Rate limit exceeded", [("Retry-After", "10")])
        elif marker == "FORBIDDEN":
            self._err(h, 403, "Forbidden")
        elif marker == "HUGE":
            h.send_huge(200)
        elif marker == "GARBAGE":
            h.send_bytes(200, b"<html>not json</html>", "text/html")
        elif marker in ("E500", "E502", "E503"):
            self._err(h, int(marker[1:]), "Internal Server Error" if marker == "E500" else "Provider unavailable")
        else:
            self._err(h, 401, "User not found.")


class FakeLLM:
    """The three provider fakes together; env() gives the service's base-URL variables."""

    def __init__(self, host="127.0.0.1"):
        self.anthropic = FakeAnthropic(host)
        self.openai = FakeOpenAI(host)
        self.openrouter = FakeOpenRouter(host)

    def start(self):
        for f in self.all():
            f.start()
        return self

    def close(self):
        for f in self.all():
            f.close()

    def all(self):
        return (self.anthropic, self.openai, self.openrouter)

    def by_name(self, provider):
        return {"Anthropic": self.anthropic, "OpenAI": self.openai, "OpenRouter": self.openrouter}[provider]

    def env(self):
        return {"ANTHROPIC_API_URL": self.anthropic.url + FakeAnthropic.base_path,
                "OPENAI_API_URL": self.openai.url + FakeOpenAI.base_path,
                "OPENROUTER_API_URL": self.openrouter.url + FakeOpenRouter.base_path}

    def clear(self):
        for f in self.all():
            f.clear()

    def requests_with(self, secret):
        return [r for f in self.all() for r in f.requests_with(secret)]

    @property
    def slow_delay(self):
        return self.anthropic.slow_delay

    @slow_delay.setter
    def slow_delay(self, v):
        for f in self.all():
            f.slow_delay = v
