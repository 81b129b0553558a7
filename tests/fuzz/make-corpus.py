#!/usr/bin/python3
"""tests/fuzz/make-corpus.py: writes the seed corpora tests/fuzz/corpus/<name>/ (valid and
invalid inputs for each target). Run it with Debian's /usr/bin/python3 (python3-msgpack)
after changing a target's input format; the files are committed, so the fuzz runs never
need Python. Uses `openssl enc` for the encrypted seeds. Existing seed files are replaced,
other files in the folders are left alone."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# Fixed inputs of the targets (keep in sync with tests/fuzz/fuzz_*.c).
JWT_SECRET = b"fuzz-secret-0123456789abcdef0123456789"
NOW_MS = 1700000000000
SECRETS_PASSWORD = b"fuzz-password"
SECRETS_KEY = b"fuzz-key-0123456789abcdef"


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jdump(o):
    return json.dumps(o, separators=(",", ":")).encode()


# ---- jwt: first byte 0 = raw token, 1 = "h.p" signed by the target, 2 = "hjson\npjson" ----
def sign(hp):
    return hp + b"." + b64u(hmac.new(JWT_SECRET, hp, hashlib.sha256).digest())


def token(header, payload):
    return sign(b64u(jdump(header)) + b"." + b64u(jdump(payload)))


STD = {"alg": "HS256", "typ": "JWT"}
CLAIMS = {"id": 7, "email": "admin@example.com", "roleName": "Admin", "tenantId": "a1b2c3d4e5",
          "organizationId": 1, "expire": NOW_MS + 3600000, "iat": (NOW_MS // 1000) - 10}


def jwt():
    write("jwt", "raw-valid", b"\x00" + token(STD, CLAIMS))
    write("jwt", "raw-expired", b"\x00" + token(STD, dict(CLAIMS, expire=NOW_MS - 1)))
    write("jwt", "raw-exp-claim", b"\x00" + token(STD, dict(CLAIMS, exp=NOW_MS // 1000 + 60)))
    write("jwt", "raw-no-typ", b"\x00" + token({"alg": "HS256"}, CLAIMS))
    t = token(STD, CLAIMS)
    write("jwt", "raw-bad-signature", b"\x00" + t[:-2] + (b"AA" if not t.endswith(b"AA") else b"BA"))
    write("jwt", "raw-alg-none", b"\x00" + b64u(jdump({"alg": "none"})) + b"." + b64u(jdump(CLAIMS)) + b".")
    write("jwt", "raw-two-segments", b"\x00" + b64u(jdump(STD)) + b"." + b64u(jdump(CLAIMS)))
    write("jwt", "raw-padding", b"\x00" + t.split(b".")[0] + b"==." + t.split(b".", 1)[1])
    write("jwt", "signed-hp", b"\x01" + b64u(jdump(STD)) + b"." + b64u(jdump(CLAIMS)))
    write("jwt", "signed-hp-crit", b"\x01" + b64u(jdump(dict(STD, crit=["exp"]))) + b"." + b64u(jdump(CLAIMS)))
    write("jwt", "json-std", b"\x02\n" + jdump(CLAIMS))
    write("jwt", "json-minimal", b"\x02\n" + jdump({"expire": NOW_MS + 1}))
    write("jwt", "json-real-expire", b"\x02\n" + b'{"expire":1.7e12,"id":1.5,"tenantId":5}')
    write("jwt", "json-long-role", b"\x02\n" + jdump(dict(CLAIMS, roleName="R" * 64, tenantId="t" * 63)))
    write("jwt", "json-nul-tenant", b"\x02\n" + b'{"expire":1e13,"tenantId":"ab\\u0000cd"}')
    write("jwt", "json-dup-keys", b"\x02\n" + b'{"expire":1e13,"expire":1}')
    write("jwt", "json-hs512", b"\x02" + jdump({"alg": "HS512", "typ": "JWT"}) + b"\n" + jdump(CLAIMS))
    write("jwt", "json-not-object", b"\x02\n[1,2,3]")


# ---- b64url: bytes (both as text and as data) ------------------------------------------------
def b64url():
    for n in range(4):
        write("b64url", "bytes-%d" % n, bytes(range(250, 250 + n)) if n else b"")
    write("b64url", "text-hmac", b64u(hmac.new(b"k", b"m", hashlib.sha256).digest()))
    write("b64url", "text-header", b64u(jdump(STD)))
    write("b64url", "text-bad-trailing-bits", b"AB")
    write("b64url", "text-padding", b"QQ==")
    write("b64url", "text-std-alphabet", b"a+b/")
    write("b64url", "hex-mixed-case", b"00ff7FAbcD")
    write("b64url", "hex-odd", b"abc")


# ---- json_body: bodies of the black-box tests ----------------------------------------------
def json_body():
    key = "sk-test-" + "k" * 40
    gh = "ghp_" + "A1b2" * 9
    bodies = {
        "llm-create": {"name": "OpenAI", "key": key, "model": "gpt-4o"},
        "llm-create-anthropic": {"name": "Anthropic", "key": "sk-ant-x", "model": "claude-3"},
        "llm-create-url-ignored": {"name": "OpenRouter", "key": key, "model": "m", "url": "http://x/"},
        "llm-create-bad-provider": {"name": "openai", "key": key, "model": "m"},
        "llm-create-key-number": {"name": "OpenAI", "key": 12345678, "model": "m"},
        "llm-create-key-513": {"name": "OpenAI", "key": "sk-long-" + "x" * 505, "model": "m"},
        "llm-create-unicode": {"name": "OpenAI", "key": "sk-\u00e9\u4e2d\U0001f600", "model": "\u00fc" * 255},
        "llm-patch-model": {"model": "gpt-4.1"},
        "llm-patch-empty": {"key": "", "name": "", "model": ""},
        "llm-patch-null": {"key": None, "model": None, "name": "Anthropic"},
        "github-token": {"token": gh, "token_name": "CI token"},
        "github-token-pat": {"token": "github_pat_" + "1" * 82},
        "github-token-spaces": {"token": "  \t" + gh + "\n "},
        "github-token-legacy": {"token": "0123456789abcdef0123456789ABCDEF01234567"},
        "github-token-short": {"token": "ghp_"},
        "github-token-name-101": {"token": gh, "token_name": "n" * 101},
        "github-token-object": {"token": {"token": gh}},
        "mlflow-configure": {"trackingServerUrl": "http://mlflow.example.com:5000/", "authMethod": "basic",
                             "username": "u", "password": "p", "timeout": 30, "verifySsl": True},
        "mlflow-configure-token": {"trackingServerUrl": " HTTPS://mlflow.example.com/base ", "authMethod": "token",
                                   "apiToken": "t0k3n", "timeout": 300},
        "mlflow-configure-bad": {"trackingServerUrl": "ftp://user@host?x#y", "authMethod": "Basic",
                                 "timeout": 1.5, "verifySsl": "yes"},
        "slack-create": {"code": "1234.5678.abcdef", "userId": 3},
        "slack-create-bad": {"code": "x" * 513, "userId": 0},
        "slack-patch": {"is_active": False, "routing_type": ["Membership and roles", "Projects and organizations",
                                                             "Membership and roles"]},
        "slack-patch-routing": {"routing_type": ["Policy reminders and status", "Evidence and task alerts",
                                                 "Control or policy changes"]},
        "slack-patch-bad": {"is_active": "yes", "routing_type": ["membership and roles", 5]},
        "empty-object": {},
    }
    for name, b in bodies.items():
        write("json_body", name, json.dumps(b, ensure_ascii=False).encode())
    write("json_body", "empty", b"")
    write("json_body", "whitespace", b" \r\n\t")
    write("json_body", "truncated", b'{"token":')
    write("json_body", "not-json", b"not json")
    write("json_body", "invalid-utf8", b'{"token":"ghp_\xff\xfe"}')
    write("json_body", "array", b'["ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]')
    write("json_body", "string", b'"ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"')
    write("json_body", "duplicate-keys", b'{"name":"OpenAI","name":"Anthropic"}')
    write("json_body", "deep-32", b'{"a":' + b"[" * 31 + b"]" * 31 + b"}")
    write("json_body", "deep-33", b'{"a":' + b"[" * 32 + b"]" * 32 + b"}")
    write("json_body", "brackets-in-string", b'{"a":"[[[[{{{{\\"]]]"}')
    write("json_body", "nul-in-string", b'{"name":"Open\\u0000AI","key":"k\\u0000","model":"m"}')
    write("json_body", "big-numbers", b'{"timeout":1e300,"n":-0.0,"i":9223372036854775807}')


# ---- router: "METHOD\nPATH[?QUERY]\nKEY" (last byte of KEY = buffer size) ------------------
def router():
    cases = {
        "get-list": "GET\n/api/llm-keys\n",
        "get-status": "GET\n/api/llm-keys/status\n",
        "get-by-name": "GET\n/api/llm-keys/OpenAI\n",
        "patch-id": "PATCH\n/api/llm-keys/12\n",
        "put-405": "PUT\n/api/llm-keys/12\n",
        "post-verify": "POST\n/api/llm-keys/5/verify\n",
        "github-token": "DELETE\n/api/integrations/github/token\n",
        "github-test": "POST\n/api/integrations/github/token/test\n",
        "mlflow-models-refresh": "GET\n/api/integrations/mlflow/models?refresh=true\nrefresh@",
        "mlflow-history": "GET\n/api/integrations/mlflow/sync-history?limit=10&offset=20\noffset\x04",
        "query-escapes": "GET\n/healthz?a=%41%2Fb+c&b=%zz&c\na\x10",
        "query-nul": "GET\n/metrics?x=%00\nx ",
        "query-no-value": "GET\n/readyz?flag&x=1\nflag\x00",
        "trailing-slash": "GET\n/api/llm-keys/\n",
        "double-slash": "GET\n//api//llm-keys\n",
        "empty-segment-param": "GET\n/api/llm-keys//verify\n",
        "options": "OPTIONS\n/api/llm-keys\n",
        "unknown-method": "BREW\n/\n",
        "not-found": "GET\n/api/nope/nope/nope/nope/nope\n",
    }
    for name, s in cases.items():
        write("router", name, s)


# ---- notify: msgpack maps -----------------------------------------------------------------------
def notify():
    base = {"organization_id": 1, "routing_type": "email", "title": "Model approved",
            "message": "Model fraud-v3 moved to production"}
    p = lambda o: msgpack.packb(o, use_bin_type=True)  # noqa: E731
    write("notify", "minimal", p(base))
    write("notify", "full", p(dict(base, user_id=42, idempotency_key="evt-123", extra=[1, {"a": None}])))
    write("notify", "nil-optionals", p(dict(base, user_id=None, idempotency_key=None)))
    write("notify", "unicode", p(dict(base, title="Mod\u00e8le \u4e2d \U0001f600")))
    write("notify", "missing-title", p({k: v for k, v in base.items() if k != "title"}))
    write("notify", "org-zero", p(dict(base, organization_id=0)))
    write("notify", "org-negative", p(dict(base, organization_id=-5)))
    write("notify", "org-string", p(dict(base, organization_id="1")))
    write("notify", "empty-message", p(dict(base, message="")))
    write("notify", "key-256", p(dict(base, idempotency_key="k" * 256)))
    write("notify", "bin-title", p(dict(base, title=b"bytes")))
    write("notify", "bad-utf8", p(base).replace(b"email", b"em\xc3\x28l"))
    write("notify", "nul-in-title", p(dict(base, title="a\x00b")))
    write("notify", "int-key", p({1: 2, **base}))
    dup = p(base)
    write("notify", "duplicate-key", bytes([0x85]) + dup[1:] + p("title") + p("again"))
    write("notify", "array-top", p([1, 2, 3]))
    write("notify", "trailing", p(base) + b"\xc0")
    write("notify", "truncated", p(base)[:-3])
    write("notify", "huge-map-count", b"\xdf\xff\xff\xff\xff")
    write("notify", "huge-array-count", b"\x81\xa1a\xdd\x7f\xff\xff\xff")
    write("notify", "deep", p(dict(base, d=[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]])))
    write("notify", "ext-and-floats", p(dict(base, f=1.5, e=msgpack.ExtType(5, b"xyz"))))
    write("notify", "str8-str16", p(dict(base, message="m" * 40, title="t" * 300)))
    write("notify", "uint64-org", p(dict(base, organization_id=2 ** 64 - 1)))


# ---- secrets: 0 = scheme B value, 1 = "cipherhex\nivhex", 2 = plaintext round trip ---------
def enc(key, iv, pt):
    return subprocess.run(["openssl", "enc", "-aes-256-cbc", "-K", key.hex(), "-iv", iv.hex()],
                          input=pt, capture_output=True, check=True).stdout


def secrets():
    key_b = (SECRETS_KEY + b"0" * 32)[:32]
    key_a = hashlib.scrypt(SECRETS_PASSWORD, salt=b"default-salt", n=16384, r=8, p=1, dklen=32,
                           maxmem=64 * 1024 * 1024)
    iv = bytes(range(16))
    ct = enc(key_b, iv, b"sk-test-key-1234")
    write("secrets", "b-valid", b"\x00" + iv.hex().encode() + b":" + ct.hex().encode())
    write("secrets", "b-valid-upper", b"\x00" + iv.hex().upper().encode() + b":" + ct.hex().upper().encode())
    write("secrets", "b-bad-padding", b"\x00" + iv.hex().encode() + b":" + (b"00" * 16))
    write("secrets", "b-short-iv", b"\x00" + b"0011:" + ct.hex().encode())
    write("secrets", "b-two-colons", b"\x00" + iv.hex().encode() + b":" + ct.hex().encode() + b":00")
    write("secrets", "b-odd-hex", b"\x00" + iv.hex().encode() + b":abc")
    write("secrets", "b-empty-ct", b"\x00" + iv.hex().encode() + b":")
    write("secrets", "b-legacy-plaintext", b"\x00sk-plaintext-key")
    cta = enc(key_a, iv, b"mlflow-password")
    write("secrets", "a-valid", b"\x01" + cta.hex().encode() + b"\n" + iv.hex().encode())
    write("secrets", "a-wrong-iv", b"\x01" + cta.hex().encode() + b"\n" + (b"ff" * 16))
    write("secrets", "a-not-block", b"\x01" + cta.hex().encode()[:-2] + b"\n" + iv.hex().encode())
    write("secrets", "a-no-iv", b"\x01" + cta.hex().encode())
    write("secrets", "plain-key", b"\x02sk-test-key-1234567890")
    write("secrets", "plain-empty", b"\x02")
    write("secrets", "plain-unicode", b"\x02" + "cl\u00e9-\u4e2d\U0001f600".encode())
    write("secrets", "plain-nul", b"\x02vAr\x00\xbe")
    write("secrets", "plain-block", b"\x02" + b"0123456789abcdef")


# ---- cidr: "LIST\nIP\nIP..." ---------------------------------------------------------------------
def cidr():
    cases = {
        "default-deny": "127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,169.254.0.0/16,100.64.0.0/10,"
                        "0.0.0.0/8,::1/128,fc00::/7,fe80::/10,::ffff:0:0/96\n10.1.2.3\n8.8.8.8\n::ffff:10.0.0.1\n"
                        "[fe80::1%eth0]\n2001:db8::1\n169.254.169.254",
        "spaces-and-empty": " 10.0.0.0/8 , ,\t192.168.1.1 ,\n192.168.1.1\n192.168.1.2",
        "mapped-range": "::ffff:127.0.0.0/104\n127.1.2.3\n::ffff:127.0.0.1",
        "bare-v6": "2001:db8::1\n2001:db8::1\n2001:db8::2",
        "host-bits": "10.1.2.3/8,fe80::1234/10\n10.200.0.1",
        "zero-prefix": "0.0.0.0/0,::/0\n1.2.3.4\n::",
        "embedded-v4": "::1.2.3.4/128,64:ff9b::/96\n::1.2.3.4\n64:ff9b::8.8.8.8",
        "bad-prefix": "10.0.0.0/33",
        "bad-prefix-v6": "fe80::/129",
        "bad-address": "10.0.0.256/8",
        "slash-only": "10.0.0.0/",
        "leading-zero": "010.0.0.1",
        "too-long": "1" * 70,
        "empty": "\n1.2.3.4\nnot-an-ip\n",
        "unparsable-ips": "10.0.0.0/8\n\n[\n[]\n%eth0\n" + "a" * 60,
    }
    for name, s in cases.items():
        write("cidr", name, s)


# ---- github_format: raw token bytes ------------------------------------------------------------
def github_format():
    cases = {
        "ghp-40": "ghp_" + "A1b2" * 9, "ghp-39": "ghp_" + "a" * 35, "ghp-only": "ghp_",
        "gho-40": "gho_" + "x" * 36, "ghu-dash": "ghu_" + "x" * 35 + "-", "ghs-40": "ghs_" + "9" * 36,
        "ghr-40": "ghr_" + "Z" * 36, "pat-30": "github_pat_" + "1" * 19, "pat-29": "github_pat_" + "1" * 18,
        "pat-255": "github_pat_" + "x" * 244, "ghp-256": "ghp_" + "a" * 252, "legacy-hex": "0123456789abcdef" * 2 + "01234567",
        "hex-39": "a" * 39, "not-hex-40": "g" * 40, "upper-prefix": "GHP_" + "a" * 36,
        "slack": "xoxb-1234567890-1234567890123-abcdefghijklmnopqrstuvwx", "g": "g", "gh": "gh",
    }
    for name, s in cases.items():
        write("github_format", name, s)


# ---- cron: expression text ---------------------------------------------------------------------
def cron():
    cases = {
        "every-5": "*/5 * * * *", "midnight-sunday": "0 0 * * 0", "weekdays": "0 9-17 * * mon-fri",
        "feb-30": "0 0 30 2 *", "leap-day": "0 12 29 2 *", "lists": "15,45 */2 1-15 jan,jul *",
        "sunday-7": "0 0 * * 7", "dom-and-dow": "0 0 13 * fri", "step-from": "5/15 * * * sun",
        "range-step": "0-30/10 0-23/6 1-31/2 1-12/3 0-6/2", "names-upper": "0 0 1 JAN,Dec SUN-sat",
        "out-of-range": "60 * * * *", "backwards": "0 5-1 * * *", "four-fields": "* * * *",
        "six-fields": "* * * * * *", "macro": "@daily", "empty-item": "1,,2 * * * *",
        "step-zero": "*/0 * * * *", "long-number": "0001 * * * *", "tabs": "\t0\t0\t*\t*\t*\t",
        "seed-bytes": "0 0 * * *\x00\x7f\xff\xff\xff",
    }
    for name, s in cases.items():
        write("cron", name, s)


# ---- mlflow: response bodies ---------------------------------------------------------------------
def mlflow():
    run = {"info": {"run_id": "abc123", "run_uuid": "abc123", "experiment_id": "1", "run_name": "rf-baseline",
                    "status": "FINISHED", "start_time": 1700000000000, "end_time": 1700000360000,
                    "artifact_uri": "s3://bucket/1/abc123/artifacts", "lifecycle_stage": "active"},
           "data": {"metrics": [{"key": "accuracy", "value": 0.93, "timestamp": 1700000300000, "step": 0},
                                {"key": "loss", "value": "NaN"}],
                    "params": [{"key": "max_depth", "value": "8"}, {"key": "n", "value": 3}],
                    "tags": [{"key": "mlflow.runName", "value": "rf-baseline"},
                             {"key": "mlflow.source.git.commit", "value": "deadbeef"},
                             {"key": "mlflow.note.content", "value": "first"},
                             {"key": "stage", "value": "staging"}]}}
    prompt = {"info": {"run_id": "p1"}, "data": {"tags": [{"key": "mlflow.prompt.is_prompt", "value": "TRUE"}]}}
    write("mlflow", "runs", jdump({"runs": [run, prompt, {"info": {}}, {"info": {"run_id": "x"}}, 5],
                                   "experiments": [{"experiment_id": "1", "name": "fraud",
                                                    "artifact_location": "s3://bucket/1"}],
                                   "next_page_token": "tok"}))
    write("mlflow", "runs-string-times", jdump({"runs": [{"info": {"run_uuid": "u", "start_time": "1700000000000",
                                                                   "end_time": -1},
                                                          "data": {"tags": [{"key": "model_name", "value": "m"}]}}]}))
    write("mlflow", "experiments", jdump({"experiments": [{"experiment_id": "0", "name": "Default",
                                                           "artifact_location": "mlflow-artifacts:/0",
                                                           "lifecycle_stage": "active"}],
                                          "next_page_token": ""}))
    write("mlflow", "registered-models", jdump({"registered_models": [
        {"name": "fraud", "aliases": [{"alias": "champion", "version": "3"}, {"alias": "prod", "version": "3"}]},
        {"name": "my-prompt", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]}],
        "model_versions": [{"name": "fraud", "version": "3", "current_stage": "Production", "run_id": "abc123",
                            "source": "models:/fraud/3", "status": "READY", "creation_timestamp": 1700000000000,
                            "last_updated_timestamp": 1700000100000, "description": "",
                            "tags": [{"key": "k", "value": "v"}]},
                           {"name": "my-prompt", "version": "1"}]}))
    write("mlflow", "model-versions", jdump({"model_versions": [
        {"name": "churn", "version": "1", "aliases": ["a", "", 5, "b"], "creation_timestamp": 1.7e12},
        {"name": "churn", "version": 2}, {"version": "3"}]}))
    write("mlflow", "empty-object", b"{}")
    write("mlflow", "error-body", jdump({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "nope"}))
    write("mlflow", "html", b"<html><body>502 Bad Gateway</body></html>")
    write("mlflow", "array", b"[]")
    write("mlflow", "truncated", jdump({"runs": [run]})[:-7])
    write("mlflow", "empty", b"")


# ---- mlflow_scan: 2 budget bytes (values, depth), then an MLflow answer -------------------------
def mlflow_scan():
    def case(values, depth, body):
        v = values - 1
        return bytes([(v >> 4) & 0xff, ((v & 0x0f) << 4) | ((depth - 1) // 4)]) + body
    run = {"info": {"run_id": "abc", "experiment_id": "1", "status": "FINISHED", "start_time": 1700000000000},
           "data": {"metrics": [{"key": "auc", "value": 0.93, "timestamp": 1700000300000, "step": 0}],
                    "params": [{"key": "max_depth", "value": "6"}],
                    "tags": [{"key": "mlflow.runName", "value": "bold \"owl\" 42"}]}}
    write("mlflow_scan", "runs-fits", case(4096, 61, jdump({"runs": [run] * 3, "next_page_token": "t"})))
    write("mlflow_scan", "runs-over-values", case(20, 61, jdump({"runs": [run] * 3})))
    write("mlflow_scan", "empty-objects", case(100, 61, b'{"experiments":[' + b",".join([b"{}"] * 200) + b"]}"))
    write("mlflow_scan", "nested", case(4096, 9, b"[" * 64 + b"]" * 64))
    write("mlflow_scan", "nested-objects", case(4096, 13, b'{"a":' * 12 + b"1" + b"}" * 12))
    write("mlflow_scan", "escapes", case(64, 5, b'{"k\\":"v\\\"{[","n":[-1.5e+3,true,null,false]}'))
    write("mlflow_scan", "names-and-values", case(8, 5, b'{"a":"b","c":{"d":"e"},"f":["g","h"]}'))
    write("mlflow_scan", "truncated", case(4096, 61, jdump({"runs": [run]})[:-9]))
    write("mlflow_scan", "garbage", case(1, 1, b"<html>}}]]::,,\"\""))


# ---- slack: 0 = chat.postMessage answer, 1 = webhook answer (status, outcome, body),
#      2 = "title\nmessage\nurl" ------------------------------------------------------------
def slack():
    def answer(mode, status, body, outcome=1):
        return bytes([mode]) + (status - 100).to_bytes(2, "big") + bytes([outcome]) + body
    write("slack", "api-ok", answer(0, 200, jdump({"ok": True, "channel": "C0123", "ts": "1700000000.000100"})))
    write("slack", "api-ok-long-ts", answer(0, 200, jdump({"ok": True, "channel": "C" * 80, "ts": "9" * 80})))
    write("slack", "api-invalid-auth", answer(0, 200, jdump({"ok": False, "error": "invalid_auth"})))
    write("slack", "api-channel-gone", answer(0, 200, jdump({"ok": False, "error": "channel_not_found"})))
    write("slack", "api-internal", answer(0, 200, jdump({"ok": False, "error": "internal_error"})))
    write("slack", "api-control-chars", answer(0, 200, b'{"ok":false,"error":"bad\u0001\u007f\u00e9' + b"x" * 140 + b'"}'))
    write("slack", "api-no-ok", answer(0, 200, jdump({"error": "x"})))
    write("slack", "api-500", answer(0, 503, b"upstream connect error"))
    write("slack", "api-html", answer(0, 200, b"<html>hi</html>"))
    write("slack", "api-dns", answer(0, 200, b"", outcome=4))
    write("slack", "api-bad-url", answer(0, 200, b"", outcome=28))
    write("slack", "hook-ok", answer(1, 200, b"ok"))
    write("slack", "hook-ok-space", answer(1, 200, b" ok\r\n"))
    write("slack", "hook-200-other", answer(1, 200, b"okay"))
    write("slack", "hook-no-service", answer(1, 404, b"no_service"))
    write("slack", "hook-gone", answer(1, 410, b""))
    write("slack", "hook-archived", answer(1, 400, b"channel_is_archived"))
    write("slack", "hook-long", answer(1, 403, b"invalid_token" + b"\xff" * 150))
    write("slack", "hook-timeout", answer(1, 200, b"", outcome=12))
    write("slack", "msg-basic", b"\x02Model approved\nModel fraud-v3 moved to production\n"
          b"https://hooks.slack.com/services/T000/B000/XXXX")
    write("slack", "msg-routing-type", b"\x02Membership and roles\nPolicy reminders and status")
    write("slack", "msg-unicode", b"\x02" + "Mod\u00e8le \U0001f600".encode() + b"\n" + "\u4e2d".encode() * 10)
    write("slack", "msg-title-150", b"\x02" + b"t" * 150 + b"\nm")
    write("slack", "msg-title-151", b"\x02" + b"t" * 151 + b"\nm")
    write("slack", "msg-mrkdwn", b"\x02*bold* <!channel>\n<https://x|link> `code` & < > \\\" \n")
    write("slack", "msg-bad-utf8", b"\x02\xc3\x28\nmsg")
    write("slack", "msg-empty-message", b"\x02title\n")
    write("slack", "msg-long-url", b"\x02t\nm\nhttps://" + b"a" * 2100)


def main():
    for f in (jwt, b64url, json_body, router, notify, secrets, cidr, github_format, cron, mlflow, mlflow_scan, slack):
        f()
    print("make-corpus: wrote %s" % CORPUS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
