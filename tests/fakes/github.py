# FakeGitHub: the GitHub REST API as far as integrationsd's token check needs it
# (shared/reference/external-apis.md section 2). Stdlib only.
#
#   GET <base_path>/user        needs Authorization "Bearer <t>" or "token <t>"; behaviour by
#                               the token's marker (fakes/__init__.py): VALID -> 200 private-user
#                               JSON with X-OAuth-Scopes "repo, read:org" (classic ghp_, gho_,
#                               legacy 40-hex) or no X-OAuth-Scopes (github_pat_, ghu_, ghs_, ghr_),
#                               X-RateLimit-Limit/Remaining/Reset/Used/Resource on every answer;
#                               unknown token -> 401 Bad credentials; RATELIMIT -> 403 with
#                               X-RateLimit-Remaining: 0; FORBIDDEN -> 403 permissions (remaining
#                               > 0); SECONDARY -> 403 secondary limit with Retry-After; SLOW* ->
#                               late 200; RESET/CLOSE -> no answer; HUGE -> 200 with 20 MiB;
#                               E500/E502/E503 -> that status.
#   GET <base_path>/rate_limit  200 rate-limit overview for a VALID token, 401 otherwise.
#   no User-Agent               403 text/html "Request forbidden by administrative rules..."
#   X-GitHub-Api-Version        must be absent, 2022-11-28 or 2026-03-10, else 400
#   anything else               404 {"message":"Not Found",...}
#
#   gh = FakeGitHub().start(); tok = gh_token("VALID"); ... gh.requests_with(tok); gh.close()
import itertools
import json
import random
import string

from .base import FakeServer, slow_seconds

API_VERSIONS = ("2022-11-28", "2026-03-10")
RATE_LIMIT = 5000
RATE_REMAINING = 4999
RATE_USED = 1
RATE_RESET = 1893456000  # 2030-01-01T00:00:00Z, fixed so tests can compare exactly
RATE_RESET_ISO = "2030-01-01T00:00:00.000Z"
SCOPES = "repo, read:org"
SCOPES_LIST = ["repo", "read:org"]
DOC = "https://docs.github.com/rest"

USER = {
    "login": "octocat", "id": 1, "node_id": "MDQ6VXNlcjE=",
    "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4", "type": "User", "site_admin": False,
    "name": "The Octocat", "email": None, "public_repos": 8, "followers": 20, "following": 0,
    "created_at": "2011-01-25T18:44:36Z", "updated_at": "2024-01-01T00:00:00Z", "private_gists": 0,
    "total_private_repos": 2, "owned_private_repos": 2, "two_factor_authentication": True,
    "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
}

NO_UA_BODY = (b"Request forbidden by administrative rules. Please make sure your request has a User-Agent "
              b"header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required)."
              b" Check https://developer.github.com for other possible causes.\n")

SCOPELESS_PREFIXES = ("github_pat_", "ghu_", "ghs_", "ghr_")
_rng = random.Random()


def _filler(n):
    return "".join(_rng.choice(string.ascii_lowercase) for _ in range(max(0, n)))


def gh_token(marker="VALID", prefix="ghp_", length=None):
    """A token of GitHub's shape whose tail is `marker` (unique random filler before it).
    Default lengths: 40 for ghp_/gho_/ghu_/ghs_/ghr_, 93 for github_pat_ (22 + '_' + 59)."""
    if length is None:
        length = 93 if prefix == "github_pat_" else 40
    body_len = length - len(prefix) - len(marker)
    if body_len < 0:
        raise ValueError("marker too long for length %d" % length)
    fill = _filler(body_len)
    if prefix == "github_pat_" and body_len > 23:
        fill = fill[:22] + "_" + fill[23:]
    return prefix + fill + marker


def legacy_token():
    """A pre-2021 40-hex token (register it on the fake to give it a behaviour)."""
    return "".join(_rng.choice("0123456789abcdef") for _ in range(40))


def parse_auth(value):
    """Token from 'Bearer <t>' / 'token <t>' (scheme case-insensitive), else None."""
    if not value:
        return None
    parts = value.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() not in ("bearer", "token"):
        return None
    return parts[1].strip()


def rate_headers(limit=RATE_LIMIT, remaining=RATE_REMAINING, used=RATE_USED, reset=RATE_RESET):
    return [("X-RateLimit-Limit", str(limit)), ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(reset)), ("X-RateLimit-Used", str(used)),
            ("X-RateLimit-Resource", "core")]


class FakeGitHub(FakeServer):
    name = "fake-github"
    server_header = "github.com"

    def __init__(self, host="127.0.0.1", port=0, base_path=""):
        super().__init__(host, port)
        self.base_path = base_path.rstrip("/")
        self._req_ids = itertools.count(1)

    def _common(self):
        return [("X-GitHub-Request-Id", "FAKE:%06X" % next(self._req_ids)),
                ("X-GitHub-Media-Type", "github.v3; format=json")]

    def handle(self, h, rec):
        common = self._common()
        if not rec.headers.get("User-Agent"):
            h.send_bytes(403, NO_UA_BODY, "text/html", common)
            return
        version = rec.headers.get("X-GitHub-Api-Version")
        if version is not None and version not in API_VERSIONS:
            h.send_json(400, {"message": "Invalid API version provided.", "documentation_url": DOC,
                              "status": "400"}, common)
            return
        if rec.method not in ("GET", "HEAD") or rec.path not in (self.base_path + "/user",
                                                                  self.base_path + "/rate_limit"):
            h.send_json(404, {"message": "Not Found", "documentation_url": DOC, "status": "404"}, common)
            return
        auth = rec.headers.get("Authorization")
        token = parse_auth(auth)
        if token is None:
            h.send_json(401, {"message": "Requires authentication",
                              "documentation_url": DOC + "/users/users#get-the-authenticated-user",
                              "status": "401"}, common + rate_headers(60, 59, 1))
            return
        marker = self.marker_for(token)
        if marker is None:
            h.send_json(401, {"message": "Bad credentials", "documentation_url": DOC, "status": "401"},
                        common + rate_headers(60, 59, 1))
            return
        delay = slow_seconds(marker, self.slow_delay)
        if delay is not None:
            if h.sleep(delay):
                h.close_quietly()
                return
            marker = "VALID"
        if marker == "RESET":
            h.reset()
            return
        if marker == "CLOSE":
            h.close_quietly()
            return
        if rec.path.endswith("/rate_limit"):
            core = {"limit": RATE_LIMIT, "remaining": RATE_REMAINING, "reset": RATE_RESET, "used": RATE_USED}
            h.send_json(200, {"resources": {"core": core, "search": {"limit": 30, "remaining": 30,
                                                                       "reset": RATE_RESET, "used": 0}},
                              "rate": core}, common + rate_headers())
            return
        scope_hdr = [] if token.startswith(SCOPELESS_PREFIXES) else [("X-OAuth-Scopes", SCOPES)]
        scope_hdr.append(("X-Accepted-OAuth-Scopes", ""))
        if marker == "VALID":
            h.send_json(200, USER, common + scope_hdr + rate_headers())
        elif marker == "EMPTYSCOPES":
            h.send_json(200, USER, common + [("X-OAuth-Scopes", ""), ("X-Accepted-OAuth-Scopes", "")]
                        + rate_headers())
        elif marker == "NORATE":
            h.send_json(200, USER, common + scope_hdr)
        elif marker == "RATELIMIT":
            h.send_json(403, {"message": "API rate limit exceeded for user ID 1.",
                              "documentation_url": DOC + "/overview/rate-limits-for-the-rest-api",
                              "status": "403"},
                        common + rate_headers(remaining=0, used=RATE_LIMIT))
        elif marker == "SECONDARY":
            h.send_json(403, {"message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                                         "before you try again.",
                              "documentation_url": DOC + "/overview/rate-limits-for-the-rest-api",
                              "status": "403"},
                        common + [("Retry-After", "60")] + rate_headers(remaining=4990, used=10))
        elif marker == "FORBIDDEN":
            h.send_json(403, {"message": "Resource not accessible by personal access token",
                              "documentation_url": DOC + "/users/users#get-the-authenticated-user",
                              "status": "403"},
                        common + [("X-Accepted-GitHub-Permissions", "")] + rate_headers(remaining=4998, used=2))
        elif marker == "HUGE":
            h.send_huge(200, common + scope_hdr + rate_headers())
        elif marker == "GARBAGE":
            h.send_bytes(200, b"<html>not json</html>", "text/html", common + scope_hdr + rate_headers())
        elif marker in ("E500", "E502", "E503"):
            status = int(marker[1:])
            h.send_json(status, {"message": "Server Error"} if status == 500 else
                        {"message": "Service Unavailable"}, common)
        else:
            h.send_json(401, {"message": "Bad credentials", "documentation_url": DOC, "status": "401"},
                        common + rate_headers(60, 59, 1))


if __name__ == "__main__":  # manual use: python3 -m fakes.github [port]
    import sys
    import time
    srv = FakeGitHub(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(json.dumps({"url": srv.url, "valid_token": gh_token("VALID")}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.close()
