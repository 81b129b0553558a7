# FakeMLflow: an MLflow tracking server + model registry as far as integrationsd needs it
# (shared/reference/external-apis.md section 1; its checklist 1.10). Stdlib only.
#
#   /api/2.0/mlflow/experiments/search        GET or POST; max_results required (0/absent -> 400)
#   /api/2.0/mlflow/runs/search               POST only (JSON body, Content-Type checked);
#                                             experiment_ids, max_results (<= 50000),
#                                             run_view_type ACTIVE_ONLY (default) / DELETED_ONLY / ALL
#   /api/2.0/mlflow/registered-models/search  GET only; max_results <= 1000 (else 400)
#   /api/2.0/mlflow/model-versions/search     GET only; aliases are NOT in search results
#   /api/2.0/mlflow/registered-models/get     GET ?name=        (aliases as [{alias, version}])
#   /api/2.0/mlflow/model-versions/get        GET ?name=&version= (aliases as ["a", ...])
#   /api/2.0/mlflow/registered-models/alias   GET ?name=&alias=
#   /health -> "OK", /version -> "2.16.2"; unknown paths -> Flask 404 HTML; wrong method -> 405 HTML
#
# Wire rules kept: empty arrays and unset fields are omitted ({} is an empty search), int64
# as JSON numbers, version as a string, "" for some optional strings, next_page_token only on
# non-final pages (base64 of {"offset": N}), errors {"error_code","message"} with the status
# map, basic-auth 401 text/html with WWW-Authenticate and 403 "Permission denied" text.
#
# Dataset (deterministic, configurable): n_experiments experiments (ids "1".."n", plus the
# "0" Default when with_default) with runs_per_experiment runs each (every deleted_every-th
# run is deleted: only DELETED_ONLY/ALL return it); n_models registered models with
# versions_per_model versions each (aliases "champion" on the newest, "challenger" on the one
# before), plus one prompt model (tag mlflow.prompt.is_prompt=true) that older servers still
# return from search (prompts_in_search).
#
# Faults and knobs (all thread-safe to change while serving):
#   auth = None | ("basic", user, password) | ("bearer", token); forbidden_users = {"user"}
#   page_delay = seconds       every runs/search page waits that long (slow pages)
#   fail_once(path, offset=0, status=500, times=1)   that page fails with a JSON error, then works
#   rate_limit_once(path, offset=0, retry_after="1") 429 + Retry-After once
#   failing_experiments = {"7"}   runs/search naming experiment 7 always answers 500
#   garbage = {path}          200 with a non-JSON body
#   resets = {path}           the connection is reset (RST) without an answer
#   status_for = {path: (status, error_code)}   that status with an MLflow JSON error, always
#   stage_overrides[(name, version)] = "Archived";  alias_overrides[name] = {alias: version}
#   removed_runs = {run_id}; removed_versions = {(name, version)}; run_tag_overrides[run_id] = {k: v}
#   description_overrides[(name, version)] = "text"
import base64
import json
import threading
import urllib.parse

from .base import FakeServer

API = "/api/2.0/mlflow"
AUTH_HTML = ("You are not authenticated. Please see "
             "https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to "
             "authenticate.")
NOT_FOUND_HTML = (b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
                  b"<p>The requested URL was not found on the server.</p>\n")
METHOD_HTML = (b"<!doctype html>\n<html lang=en>\n<title>405 Method Not Allowed</title>\n"
               b"<h1>Method Not Allowed</h1>\n<p>The method is not allowed for the requested URL.</p>\n")
T0 = 1718000000000

STATUS_OF = {"INVALID_PARAMETER_VALUE": 400, "BAD_REQUEST": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
             "RESOURCE_DOES_NOT_EXIST": 404, "REQUEST_LIMIT_EXCEEDED": 429, "INTERNAL_ERROR": 500,
             "TEMPORARILY_UNAVAILABLE": 503}


def make_token(offset):
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def parse_token(tok):
    if not tok:
        return 0
    try:
        return int(json.loads(base64.b64decode(tok.encode(), validate=True).decode())["offset"])
    except Exception:
        raise ValueError("Invalid page token, could not base64-decode")


def run_id_for(exp, i):
    return "%08x%024x" % (int(exp), i)


class FakeMLflow(FakeServer):
    name = "fake-mlflow"

    def __init__(self, host="127.0.0.1", port=0, n_experiments=3, runs_per_experiment=4, n_models=2,
                 versions_per_model=2, deleted_every=0, with_default=True, prompts_in_search=True):
        super().__init__(host, port)
        self.n_experiments = n_experiments
        self.runs_per_experiment = runs_per_experiment
        self.n_models = n_models
        self.versions_per_model = versions_per_model
        self.deleted_every = deleted_every
        self.with_default = with_default
        self.prompts_in_search = prompts_in_search
        self.auth = None
        self.forbidden_users = set()
        self.page_delay = 0.0
        self.failing_experiments = set()
        self.garbage = set()
        self.resets = set()
        self.status_for = {}
        self.stage_overrides = {}
        self.alias_overrides = {}
        self.description_overrides = {}
        self.removed_runs = set()
        self.removed_versions = set()
        self.run_tag_overrides = {}
        self._once = {}
        self._flock = threading.Lock()

    # ------------------------------------------------------------ knobs
    def fail_once(self, path, offset=0, status=500, times=1):
        with self._flock:
            self._once[(path, offset)] = [status, times, None]

    def rate_limit_once(self, path, offset=0, retry_after="1"):
        with self._flock:
            self._once[(path, offset)] = [429, 1, retry_after]

    def _take_once(self, path, offset):
        with self._flock:
            e = self._once.get((path, offset))
            if not e or e[1] <= 0:
                return None
            e[1] -= 1
            return e[0], e[2]

    # ------------------------------------------------------------ dataset
    def experiments(self):
        out = []
        if self.with_default:
            out.append({"experiment_id": "0", "name": "Default", "artifact_location": "mlflow-artifacts:/0",
                        "lifecycle_stage": "active", "creation_time": T0, "last_update_time": T0})
        for e in range(1, self.n_experiments + 1):
            x = {"experiment_id": str(e), "name": "experiment-%d" % e,
                 "artifact_location": "mlflow-artifacts:/%d" % e, "lifecycle_stage": "active",
                 "creation_time": T0 + e, "last_update_time": T0 + e}
            if e % 3 == 0:
                x["tags"] = [{"key": "team", "value": "risk"}]
            out.append(x)
        return out

    def run(self, exp, i):
        rid = run_id_for(exp, i)
        start = T0 + int(exp) * 100000 + i * 10
        deleted = self.deleted_every and i % self.deleted_every == self.deleted_every - 1
        info = {"run_id": rid, "run_uuid": rid, "run_name": "run-%s-%d" % (exp, i), "experiment_id": str(exp),
                "user_id": "alice", "status": "RUNNING" if i % 7 == 6 else "FINISHED", "start_time": start,
                "artifact_uri": "mlflow-artifacts:/%s/%s/artifacts" % (exp, rid),
                "lifecycle_stage": "deleted" if deleted else "active"}
        if info["status"] != "RUNNING":
            info["end_time"] = start + 5000
        tags = [{"key": "mlflow.runName", "value": info["run_name"]},
                {"key": "mlflow.user", "value": "alice"},
                {"key": "mlflow.source.type", "value": "LOCAL"}]
        if i % 2 == 0:
            tags.append({"key": "model_name", "value": "model-of-exp-%s" % exp})
        if i % 5 == 0:
            tags.append({"key": "stage", "value": "production"})
        if i % 4 == 1:
            tags.append({"key": "mlflow.source.git.commit", "value": "%040x" % (int(exp) * 1000 + i)})
        over = self.run_tag_overrides.get(rid)
        if over:
            tags = [t for t in tags if t["key"] not in over] + [{"key": k, "value": v} for k, v in over.items()]
        data = {}
        if i % 3 != 2:  # some runs have no metrics at all: the key is omitted
            data["metrics"] = [{"key": "auc", "value": 0.5 + (i % 50) / 100.0, "timestamp": start, "step": 0},
                               {"key": "loss", "value": 1.0 / (i + 1), "timestamp": start, "step": 3}]
        data["params"] = [{"key": "lr", "value": "0.0%d" % (i % 9 + 1)}, {"key": "depth", "value": str(i % 12)}]
        data["tags"] = tags
        return {"info": info, "data": data}

    def runs_of(self, exp_ids, view):
        out = []
        for e in exp_ids:
            try:
                n = int(e)
            except ValueError:
                continue
            if n == 0:
                if not self.with_default:
                    continue
                count = 1
            elif 1 <= n <= self.n_experiments:
                count = self.runs_per_experiment
            else:
                continue
            for i in range(count):
                r = self.run(e, i)
                if r["info"]["run_id"] in self.removed_runs:
                    continue
                deleted = r["info"]["lifecycle_stage"] == "deleted"
                if view == "ACTIVE_ONLY" and deleted or view == "DELETED_ONLY" and not deleted:
                    continue
                out.append(r)
        return out

    def model_names(self):
        return ["model-%03d" % m for m in range(self.n_models)]

    def aliases_of(self, name):
        if name in self.alias_overrides:
            return dict(self.alias_overrides[name])
        n = self.versions_per_model
        al = {}
        if n >= 1:
            al["champion"] = str(n)
        if n >= 2:
            al["challenger"] = str(n - 1)
        return al

    def version(self, name, v, with_aliases=False):
        m = int(name.split("-")[1]) if name.startswith("model-") else 999
        stage = ["None", "Staging", "Production", "Archived"][v % 4] if v != self.versions_per_model else "Production"
        stage = self.stage_overrides.get((name, str(v)), stage)
        x = {"name": name, "version": str(v), "creation_timestamp": T0 + m * 1000 + v,
             "last_updated_timestamp": T0 + m * 1000 + v + 1, "current_stage": stage,
             "description": self.description_overrides.get((name, str(v)), "" if v % 2 else "version %d" % v),
             "source": "models:/m-%032x" % (m * 1000 + v), "run_id": "" if v % 3 == 0 else run_id_for(1, v),
             "status": "READY", "run_link": ""}
        if v % 2 == 0:
            x["tags"] = [{"key": "validated", "value": "true"}]
        if with_aliases:
            al = sorted(a for a, ver in self.aliases_of(name).items() if ver == str(v))
            if al:
                x["aliases"] = al
        return x

    def prompt_model(self):
        return {"name": "prompt-greeting", "creation_timestamp": T0, "last_updated_timestamp": T0,
                "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}],
                "latest_versions": [self.prompt_version()]}

    def prompt_version(self):
        return {"name": "prompt-greeting", "version": "1", "creation_timestamp": T0, "last_updated_timestamp": T0,
                "current_stage": "None", "source": "prompt-template", "status": "READY",
                "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"},
                         {"key": "mlflow.prompt.text", "value": "Hello {{name}}"}]}

    def registered_models(self):
        out = []
        for name in self.model_names():
            rm = {"name": name, "creation_timestamp": T0, "last_updated_timestamp": T0 + 1}
            if name.endswith("0"):
                rm["description"] = "the %s model" % name
            vs = [self.version(name, v) for v in range(1, self.versions_per_model + 1)
                  if (name, str(v)) not in self.removed_versions]
            if vs:
                rm["latest_versions"] = [vs[-1]]
            al = self.aliases_of(name)
            if al:
                rm["aliases"] = [{"alias": a, "version": v} for a, v in sorted(al.items())]
            rm["tags"] = [{"key": "team", "value": "risk"}]
            out.append(rm)
        if self.prompts_in_search:
            out.append(self.prompt_model())
        return sorted(out, key=lambda r: r["name"])

    def all_versions(self):
        out = []
        for name in self.model_names():
            for v in range(1, self.versions_per_model + 1):
                if (name, str(v)) not in self.removed_versions:
                    out.append(self.version(name, v))
        if self.prompts_in_search:
            out.append(self.prompt_version())
        return out

    def expected_run_ids(self):
        """Run ids a sync must land (active runs that have a name)."""
        exps = [e["experiment_id"] for e in self.experiments()]
        return {r["info"]["run_id"] for r in self.runs_of(exps, "ACTIVE_ONLY")}

    def expected_versions(self):
        return {(v["name"], v["version"]) for v in self.all_versions() if not v["name"].startswith("prompt-")}

    # ------------------------------------------------------------ HTTP
    def _error(self, h, code, message, status=None):
        h.send_json(status or STATUS_OF.get(code, 500), {"error_code": code, "message": message})

    def _authorized(self, h, rec):
        if not self.auth:
            return True
        got = rec.headers.get("Authorization") or ""
        kind = self.auth[0]
        ok = False
        user = None
        if kind == "basic" and got.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(got[6:]).decode().partition(":")
                ok = user == self.auth[1] and pw == self.auth[2]
                if not ok and user in self.forbidden_users and pw == self.auth[2]:
                    h.send_bytes(403, b"Permission denied", "text/plain; charset=utf-8")
                    return False
            except Exception:
                ok = False
        elif kind == "bearer" and got.startswith("Bearer "):
            ok = got[7:] == self.auth[1]
        if not ok:
            h.send_bytes(401, AUTH_HTML.encode(), "text/html; charset=utf-8",
                         headers=[("WWW-Authenticate", 'Basic realm="mlflow"')])
        return ok

    def _params(self, h, rec, method_ok):
        """The request's arguments: query (GET) or JSON body (POST). None when answered."""
        if rec.method not in method_ok:
            h.send_bytes(405, METHOD_HTML, "text/html; charset=utf-8", headers=[("Allow", ", ".join(method_ok))])
            return None
        if rec.method == "GET":
            return {k: (v if len(v) > 1 else v[0]) for k, v in rec.query.items()}
        ctype = rec.headers.get("Content-Type")
        if not ctype:
            self._error(h, "INVALID_PARAMETER_VALUE", "Bad Request. Content-Type header is missing.")
            return None
        if not ctype.split(";")[0].strip().lower() == "application/json":
            self._error(h, "INVALID_PARAMETER_VALUE", "Bad Request. Content-Type must be one of ['application/json'].")
            return None
        try:
            body = json.loads(rec.body.decode() or "{}")
            if not isinstance(body, dict):
                raise ValueError
            return body
        except ValueError:
            self._error(h, "MALFORMED_REQUEST", "Malformed request body", status=400)
            return None

    def _max_results(self, h, p, limit, default=None):
        raw = p.get("max_results", default)
        try:
            n = int(raw) if raw is not None else 0
        except (TypeError, ValueError):
            self._error(h, "INVALID_PARAMETER_VALUE",
                        "Invalid value \"%s\" for parameter 'max_results' supplied:  Hint: Value was of type "
                        "'str'. See the API docs for more information about request parameters." % raw)
            return None
        if n <= 0:
            self._error(h, "INVALID_PARAMETER_VALUE",
                        "Invalid value %d for parameter 'max_results' supplied. It must be a positive integer" % n)
            return None
        if n > limit:
            self._error(h, "INVALID_PARAMETER_VALUE",
                        "Invalid value for request parameter max_results. It must be at most %d, but got value %d"
                        % (limit, n))
            return None
        return n

    def _page(self, h, items, key, offset, n):
        page = items[offset:offset + n]
        out = {}
        if page:
            out[key] = page
        if offset + n < len(items):
            out["next_page_token"] = make_token(offset + n)
        h.send_json(200, out)

    def handle(self, h, rec):
        path = rec.path
        if path == "/health":
            h.send_bytes(200, b"OK", "text/html; charset=utf-8")
            return
        if not path.startswith(API + "/") and path != "/version":
            h.send_bytes(404, NOT_FOUND_HTML, "text/html; charset=utf-8")
            return
        if not self._authorized(h, rec):
            return
        if path == "/version":
            h.send_bytes(200, b"2.16.2", "text/plain; charset=utf-8")
            return
        if path in self.resets:
            h.reset()
            return
        if path in self.garbage:
            h.send_bytes(200, b"<html>this is not json {", "application/json")
            return
        if path in self.status_for:
            st, code = self.status_for[path]
            self._error(h, code, "injected failure", status=st)
            return
        route = path[len(API):]
        handler = {
            "/experiments/search": self._experiments_search,
            "/runs/search": self._runs_search,
            "/registered-models/search": self._models_search,
            "/model-versions/search": self._versions_search,
            "/registered-models/get": self._model_get,
            "/model-versions/get": self._version_get,
            "/registered-models/alias": self._alias_get,
        }.get(route)
        if handler is None:
            h.send_bytes(404, NOT_FOUND_HTML, "text/html; charset=utf-8")
            return
        handler(h, rec)

    def _offset(self, h, p, path):
        try:
            offset = parse_token(p.get("page_token"))
        except ValueError as e:
            self._error(h, "INVALID_PARAMETER_VALUE", str(e))
            return None
        once = self._take_once(path, offset)
        if once:
            status, retry_after = once
            headers = [("Retry-After", retry_after)] if retry_after else None
            code = "REQUEST_LIMIT_EXCEEDED" if status == 429 else "INTERNAL_ERROR"
            h.send_json(status, {"error_code": code, "message": "injected transient failure"}, headers=headers)
            return None
        return offset

    def _experiments_search(self, h, rec):
        p = self._params(h, rec, ("GET", "POST"))
        if p is None:
            return
        n = self._max_results(h, p, 50000)
        if n is None:
            return
        offset = self._offset(h, p, rec.path)
        if offset is None:
            return
        self._page(h, self.experiments(), "experiments", offset, n)

    def _runs_search(self, h, rec):
        p = self._params(h, rec, ("POST",))
        if p is None:
            return
        n = self._max_results(h, p, 50000, default=1000)
        if n is None:
            return
        ids = p.get("experiment_ids") or []
        if not isinstance(ids, list):
            self._error(h, "INVALID_PARAMETER_VALUE", "experiment_ids must be a list")
            return
        bad = set(str(i) for i in ids) & self.failing_experiments
        if bad:
            self._error(h, "INTERNAL_ERROR", "experiment %s is broken" % sorted(bad)[0])
            return
        view = p.get("run_view_type") or "ACTIVE_ONLY"
        if view not in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
            self._error(h, "INVALID_PARAMETER_VALUE", "Invalid run_view_type")
            return
        offset = self._offset(h, p, rec.path)
        if offset is None:
            return
        if self.page_delay:
            h.sleep(self.page_delay)
        self._page(h, self.runs_of([str(i) for i in ids], view), "runs", offset, n)

    def _models_search(self, h, rec):
        p = self._params(h, rec, ("GET",))
        if p is None:
            return
        n = self._max_results(h, p, 1000, default=100)
        if n is None:
            return
        offset = self._offset(h, p, rec.path)
        if offset is None:
            return
        self._page(h, self.registered_models(), "registered_models", offset, n)

    def _versions_search(self, h, rec):
        p = self._params(h, rec, ("GET",))
        if p is None:
            return
        n = self._max_results(h, p, 200000, default=200000)
        if n is None:
            return
        offset = self._offset(h, p, rec.path)
        if offset is None:
            return
        self._page(h, self.all_versions(), "model_versions", offset, n)

    def _model_get(self, h, rec):
        p = self._params(h, rec, ("GET",))
        if p is None:
            return
        name = p.get("name")
        for rm in self.registered_models():
            if rm["name"] == name:
                h.send_json(200, {"registered_model": rm})
                return
        self._error(h, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=%s not found" % name)

    def _version_get(self, h, rec):
        p = self._params(h, rec, ("GET",))
        if p is None:
            return
        name, ver = p.get("name"), p.get("version")
        try:
            v = int(ver)
        except (TypeError, ValueError):
            self._error(h, "INVALID_PARAMETER_VALUE", "Parameter 'version' must be an integer, got '%s'." % ver)
            return
        if name in self.model_names() and 1 <= v <= self.versions_per_model:
            h.send_json(200, {"model_version": self.version(name, v, with_aliases=True)})
            return
        self._error(h, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=%s, version=%s) not found" % (name, ver))

    def _alias_get(self, h, rec):
        p = self._params(h, rec, ("GET",))
        if p is None:
            return
        name, alias = p.get("name"), p.get("alias")
        ver = self.aliases_of(name).get(alias) if name in self.model_names() else None
        if ver is None:
            self._error(h, "INVALID_PARAMETER_VALUE", "Registered model alias %s not found." % alias)
            return
        h.send_json(200, {"model_version": self.version(name, int(ver), with_aliases=True)})

    # ------------------------------------------------------------ assertions helpers
    def calls(self, route):
        return [r for r in self.requests if r.path == API + route]


def dead_url():
    """A loopback URL nothing listens on (connection refused)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


__all__ = ["FakeMLflow", "make_token", "parse_token", "run_id_for", "dead_url", "API", "urllib"]
