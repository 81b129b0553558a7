# FakeSlack: Slack's Web API and incoming webhooks as far as integrationsd needs them
# (shared/reference/external-apis.md section 3). Stdlib only.
#
#   POST <base>/api/oauth.v2.access   form body (client_id, client_secret, code, redirect_uri;
#                                     or grant_type=refresh_token + refresh_token). A code made
#                                     with install(...) answers a bot install (with
#                                     refresh_token/expires_in when rotate=True, without the
#                                     fields named in `omit`); install_error(name) makes a code
#                                     that answers HTTP 200 {"ok":false,"error":name}; unknown
#                                     codes -> invalid_code. Refresh: the current refresh token
#                                     of an installation -> new bot + refresh token;
#                                     fail_refresh(channel_id, name) -> {"ok":false,"error":name}.
#                                     slack.refreshes: channel ids of the refreshes answered.
#   POST <base>/api/chat.postMessage  Bearer bot token; per-channel mode (set_mode):
#                                     ok (ts + channel), channel_not_found, is_archived,
#                                     invalid_auth, ratelimited (HTTP 429 + Retry-After),
#                                     e500, garbage; an unknown token -> invalid_auth;
#                                     expire_token(channel_id): the installation's current
#                                     bot token -> token_expired (a rotating token past its
#                                     expires_in) until a refresh issues a new one.
#   POST <base>/services/T/B/<secret> incoming webhook, plain-text answers; per-channel
#                                     hook mode (set_hook_mode): ok ("ok"), channel_not_found
#                                     (404), channel_is_archived (410), no_service (404),
#                                     invalid_payload (400), ratelimited (429 + Retry-After),
#                                     rollup_error (500), bad200 (200 with a non-"ok" body).
#
#   slack.messages        delivered messages: dicts {time, channel, via, body}
#   slack.posts           every post attempt: dicts {time, channel, via, status}
#   slack.requests        every request (fakes.base.Recorded)
import itertools
import json
import secrets
import threading
import time
import urllib.parse

from .base import FakeServer

_seq = itertools.count(1)


class Install:
    def __init__(self, fake, rotate, omit, expires_in):
        n = next(_seq)
        self.team_id = "T%08d" % n
        self.team_name = "Team %d" % n
        self.channel_id = "C%08d" % n
        self.channel = "#alerts-%d" % n
        self.bot_token = "xoxb-%d-%s" % (n, secrets.token_hex(12))
        self.refresh_token = "xoxe-1-%s" % secrets.token_hex(16) if rotate else None
        self.expires_in = expires_in
        self.rotate = rotate
        self.omit = set(omit or ())
        self.hook_secret = secrets.token_hex(12)
        self.url = "%s/services/%s/B%08d/%s" % (fake.url, self.team_id, n, self.hook_secret)
        self.old_tokens = []
        self.expired = set()     # bot tokens past their expiry

    def answer(self):
        a = {"ok": True, "app_id": "A0KRD7HC3", "authed_user": {"id": "U1234"},
             "scope": "incoming-webhook,chat:write", "token_type": "bot", "access_token": self.bot_token,
             "bot_user_id": "U0KRQLJ9H", "team": {"id": self.team_id, "name": self.team_name},
             "enterprise": None, "is_enterprise_install": False,
             "incoming_webhook": {"channel": self.channel, "channel_id": self.channel_id,
                                  "configuration_url": "https://teamname.slack.com/services/B05ABCDEF",
                                  "url": self.url}}
        if self.rotate:
            a["refresh_token"] = self.refresh_token
            a["expires_in"] = self.expires_in
        for f in self.omit:
            if "." in f:
                parent, key = f.split(".", 1)
                a.get(parent, {}).pop(key, None)
            else:
                a.pop(f, None)
        return a


class FakeSlack(FakeServer):
    name = "fake-slack"

    def __init__(self, host="127.0.0.1", port=0):
        super().__init__(host, port)
        self.codes = {}          # code -> Install or ("error", name)
        self.by_token = {}       # bot token -> Install
        self.by_refresh = {}     # refresh token -> Install
        self.by_secret = {}      # hook secret -> Install
        self.modes = {}          # channel_id -> chat.postMessage mode
        self.hook_modes = {}     # channel_id -> webhook mode
        self.refresh_errors = {}  # channel_id -> error name
        self.refreshes = []      # channel ids, one per refresh answered with a new token
        self.retry_after = 1
        self.messages = []
        self.posts = []
        self.delay = 0.0

    # ---- set-up helpers (thread-safe enough: plain dict writes) -----------------
    def install(self, rotate=False, omit=(), expires_in=43200):
        inst = Install(self, rotate, omit, expires_in)
        code = "code-" + secrets.token_hex(8)
        with self._lock:
            self.codes[code] = inst
        return code, inst

    def install_error(self, name):
        code = "code-" + secrets.token_hex(8)
        with self._lock:
            self.codes[code] = ("error", name)
        return code

    def set_mode(self, channel_id, mode):
        self.modes[channel_id] = mode

    def set_hook_mode(self, channel_id, mode):
        self.hook_modes[channel_id] = mode

    def expire_token(self, inst):
        with self._lock:
            inst.expired.add(inst.bot_token)

    def fail_refresh(self, channel_id, name="invalid_refresh_token"):
        self.refresh_errors[channel_id] = name

    def messages_for(self, channel_id):
        with self._lock:
            return [m for m in self.messages if m["channel"] == channel_id]

    def clear_messages(self):
        with self._lock:
            self.messages = []
            self.posts = []

    # ---- dispatch ---------------------------------------------------------------
    def handle(self, h, rec):
        if self.delay:
            if h.sleep(self.delay):
                h.close_quietly()
                return
        if rec.method == "POST" and rec.path.endswith("/oauth.v2.access"):
            return self._oauth(h, rec)
        if rec.method == "POST" and rec.path.endswith("/chat.postMessage"):
            return self._post_message(h, rec)
        if rec.method == "POST" and rec.path.startswith("/services/"):
            return self._webhook(h, rec)
        h.send_bytes(404, b"Not Found", "text/plain")

    def _oauth(self, h, rec):
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(rec.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") == "refresh_token":
            with self._lock:
                inst = self.by_refresh.get(form.get("refresh_token", ""))
            if inst is None:
                return h.send_json(200, {"ok": False, "error": "invalid_refresh_token"})
            err = self.refresh_errors.get(inst.channel_id)
            if err:
                return h.send_json(200, {"ok": False, "error": err})
            with self._lock:
                del self.by_refresh[inst.refresh_token]
                inst.old_tokens.append(inst.bot_token)
                inst.bot_token = "xoxe.xoxb-1-" + secrets.token_hex(40)
                inst.refresh_token = "xoxe-1-" + secrets.token_hex(16)
                self.by_token[inst.bot_token] = inst
                self.by_refresh[inst.refresh_token] = inst
                self.refreshes.append(inst.channel_id)
            return h.send_json(200, {"ok": True, "access_token": inst.bot_token, "token_type": "bot",
                                     "refresh_token": inst.refresh_token, "expires_in": inst.expires_in,
                                     "team": {"id": inst.team_id, "name": inst.team_name}})
        with self._lock:
            entry = self.codes.pop(form.get("code", ""), None)
        if entry is None:
            return h.send_json(200, {"ok": False, "error": "invalid_code"})
        if isinstance(entry, tuple):
            return h.send_json(200, {"ok": False, "error": entry[1]})
        with self._lock:
            self.by_token[entry.bot_token] = entry
            self.by_secret[entry.hook_secret] = entry
            if entry.refresh_token:
                self.by_refresh[entry.refresh_token] = entry
        h.send_json(200, entry.answer())

    def _record_post(self, channel, via, status, body=None):
        now = time.time()
        with self._lock:
            self.posts.append({"time": now, "channel": channel, "via": via, "status": status})
            if status == "ok":
                self.messages.append({"time": now, "channel": channel, "via": via, "body": body})

    def _post_message(self, h, rec):
        auth = rec.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with self._lock:
            inst = self.by_token.get(token)
        try:
            body = json.loads(rec.body.decode("utf-8"))
        except ValueError:
            return h.send_json(200, {"ok": False, "error": "invalid_json"})
        channel = body.get("channel") if isinstance(body, dict) else None
        if inst is None or inst.channel_id != channel:
            self._record_post(channel, "api", "invalid_auth")
            return h.send_json(200, {"ok": False, "error": "invalid_auth"})
        if token in inst.expired:
            self._record_post(channel, "api", "token_expired")
            return h.send_json(200, {"ok": False, "error": "token_expired"})
        mode = self.modes.get(channel, "ok")
        self._record_post(channel, "api", mode, body)
        if mode == "ok":
            ts = "%.6f" % time.time()
            return h.send_json(200, {"ok": True, "channel": channel, "ts": ts,
                                     "message": {"text": body.get("text"), "ts": ts}})
        if mode == "ratelimited":
            return h.send_json(429, {"ok": False, "error": "ratelimited"},
                               headers=[("Retry-After", str(self.retry_after))])
        if mode == "e500":
            return h.send_bytes(500, b"<html>Internal Server Error</html>", "text/html")
        if mode == "garbage":
            return h.send_bytes(200, b"\x00not json", "text/plain")
        return h.send_json(200, {"ok": False, "error": mode})

    def _webhook(self, h, rec):
        secret = rec.path.rsplit("/", 1)[-1]
        with self._lock:
            inst = self.by_secret.get(secret)
        if inst is None:
            return h.send_bytes(404, b"no_service", "text/html")
        try:
            body = json.loads(rec.body.decode("utf-8"))
        except ValueError:
            self._record_post(inst.channel_id, "webhook", "invalid_payload")
            return h.send_bytes(400, b"invalid_payload", "text/html")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return h.send_bytes(400, b"missing_text_or_fallback_or_attachments", "text/html")
        mode = self.hook_modes.get(inst.channel_id, "ok")
        self._record_post(inst.channel_id, "webhook", mode, body)
        status = {"ok": 200, "channel_not_found": 404, "no_service": 404, "channel_is_archived": 410,
                  "invalid_payload": 400, "ratelimited": 429, "rollup_error": 500, "bad200": 200}.get(mode, 400)
        text = {"ok": b"ok", "bad200": b"<html>hello</html>", "ratelimited": b"rate limited"}.get(
            mode, mode.encode())
        headers = [("Retry-After", str(self.retry_after))] if mode == "ratelimited" else None
        h.send_bytes(status, text, "text/html", headers)
