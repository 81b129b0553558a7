/* integrations/mlflow_map: owns the mapping of MLflow runs and model versions to
 * model records (reference 3.2, with the fixes of issue 4: no odd stage fallbacks,
 * no "now" timestamps that would make every sync look like a change). Pure. */
#include "integrations/mlflow_map.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *mlflow_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    return s && *s ? s : NULL;
}

long long mlflow_ms(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? (long long)json_integer_value(v) : -1;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d >= 0 && d < 9.2e15 ? (long long)d : -1;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!*s || strlen(s) > 16)
            return -1;
        for (const char *p = s; *p; p++)
            if (!isdigit((unsigned char)*p))
                return -1;
        return strtoll(s, NULL, 10);
    }
    return -1;
}

json_t *mlflow_tags_object(const json_t *arr)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    size_t i;
    const json_t *t;
    if (!json_is_array(arr))
        return o;
    json_array_foreach(arr, i, t) {
        const json_t *k = json_object_get(t, "key"), *v = json_object_get(t, "value");
        if (json_is_string(k) && json_string_length(k) > 0 && json_is_string(v))
            json_object_set_new(o, json_string_value(k), json_string(json_string_value(v)));
    }
    return o;
}

bool mlflow_tags_is_prompt(const json_t *arr)
{
    size_t i;
    const json_t *t;
    if (!json_is_array(arr))
        return false;
    json_array_foreach(arr, i, t) {
        const char *k = mlflow_str(t, "key"), *v = mlflow_str(t, "value");
        if (k && v && strcmp(k, "mlflow.prompt.is_prompt") == 0 && strcasecmp(v, "true") == 0)
            return true;
    }
    return false;
}

/* A string tag of a {key: value} object, NULL when absent or empty. */
static const char *tag(const json_t *tags, const char *key)
{
    return mlflow_str(tags, key);
}

static const char *first(const char *a, const char *b)
{
    return a ? a : b;
}

static void record_init(struct mlflow_record *r)
{
    memset(r, 0, sizeof *r);
    r->training_started_at = r->training_ended_at = r->model_created_at = r->model_updated_at = -1;
}

enum mlflow_map_result mlflow_map_run(const json_t *run, const struct mlflow_experiment_info *exp,
                                      struct mlflow_record *out)
{
    record_init(out);
    const json_t *info = json_object_get(run, "info"), *data = json_object_get(run, "data");
    if (!json_is_object(info))
        return MLFLOW_MAP_INVALID;
    const char *run_id = first(mlflow_str(info, "run_id"), mlflow_str(info, "run_uuid"));
    if (!run_id)
        return MLFLOW_MAP_INVALID;
    const json_t *tag_arr = json_object_get(data, "tags");
    if (mlflow_tags_is_prompt(tag_arr))
        return MLFLOW_MAP_SKIP;
    json_t *tags = mlflow_tags_object(tag_arr);
    if (!tags)
        return MLFLOW_MAP_INVALID;
    const char *name = first(tag(tags, "model_name"),
                             first(tag(tags, "mlflow.modelName"),
                                   first(tag(tags, "mlflow.runName"),
                                         first(mlflow_str(info, "run_name"), tag(tags, "mlflow.experimentName")))));
    if (!name) {
        json_decref(tags);
        return MLFLOW_MAP_SKIP;
    }
    json_t *metrics = json_object(), *params = json_object();
    if (!metrics || !params) {
        json_decref(tags);
        json_decref(metrics);
        json_decref(params);
        return MLFLOW_MAP_INVALID;
    }
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(data, "metrics"), i, m) {
        const char *k = mlflow_str(m, "key");
        const json_t *v = json_object_get(m, "value");
        if (k && (json_is_number(v) || json_is_string(v)))
            json_object_set_new(metrics, k, json_deep_copy(v));
    }
    json_array_foreach(json_object_get(data, "params"), i, m) {
        const char *k = mlflow_str(m, "key");
        const json_t *v = json_object_get(m, "value");
        if (k && json_is_string(v))
            json_object_set_new(params, k, json_string(json_string_value(v)));
    }
    const char *stage = first(tag(tags, "stage"), first(tag(tags, "model_stage"), "unknown"));
    const char *status = mlflow_str(info, "status");
    out->kind = "run";
    out->model_name = name;
    out->version = run_id;
    out->run_id = run_id;
    out->lifecycle_stage = stage;
    out->description = tag(tags, "mlflow.note.content");
    out->source = mlflow_str(info, "artifact_uri");
    out->status = first(status, stage);
    out->experiment_id = mlflow_str(info, "experiment_id");
    out->experiment_name = first(tag(tags, "mlflow.experimentName"), exp ? exp->name : NULL);
    out->artifact_location = first(out->source, exp ? exp->artifact_location : NULL);
    out->training_status = status;
    out->source_version = tag(tags, "mlflow.source.git.commit");
    out->training_started_at = mlflow_ms(info, "start_time");
    out->training_ended_at = mlflow_ms(info, "end_time");
    out->model_created_at = out->training_started_at;
    out->model_updated_at = out->training_ended_at >= 0 ? out->training_ended_at : out->training_started_at;
    out->tags = tags;
    out->metrics = metrics;
    out->parameters = params;
    return MLFLOW_MAP_OK;
}

enum mlflow_map_result mlflow_map_version(const json_t *mv, const char *aliases, struct mlflow_record *out)
{
    record_init(out);
    if (!json_is_object(mv))
        return MLFLOW_MAP_INVALID;
    const char *name = mlflow_str(mv, "name");
    const json_t *v = json_object_get(mv, "version");
    const char *version = mlflow_str(mv, "version");
    if (!name || (!version && !json_is_integer(v)))
        return MLFLOW_MAP_INVALID;
    if (!version)
        return MLFLOW_MAP_INVALID; /* the proto says string; a number is a broken server */
    const json_t *tag_arr = json_object_get(mv, "tags");
    if (mlflow_tags_is_prompt(tag_arr))
        return MLFLOW_MAP_SKIP;
    json_t *tags = mlflow_tags_object(tag_arr);
    json_t *metrics = json_object(), *params = json_object();
    if (!tags || !metrics || !params) {
        json_decref(tags);
        json_decref(metrics);
        json_decref(params);
        return MLFLOW_MAP_INVALID;
    }
    /* aliases: from the registered model, or on the version itself (get/alias answers) */
    if (aliases && *aliases) {
        json_object_set_new(tags, MLFLOW_ALIASES_TAG, json_string(aliases));
    } else {
        const json_t *arr = json_object_get(mv, "aliases");
        if (json_is_array(arr) && json_array_size(arr) > 0) {
            size_t i, cap = 1;
            const json_t *a;
            json_array_foreach(arr, i, a) if (json_is_string(a)) cap += json_string_length(a) + 1;
            char *buf = malloc(cap), *p = buf;
            if (buf) {
                *p = '\0';
                json_array_foreach(arr, i, a) {
                    if (!json_is_string(a) || json_string_length(a) == 0)
                        continue;
                    if (p != buf)
                        *p++ = ',';
                    size_t l = strlen(json_string_value(a));
                    memcpy(p, json_string_value(a), l);
                    p += l;
                    *p = '\0';
                }
                if (*buf)
                    json_object_set_new(tags, MLFLOW_ALIASES_TAG, json_string(buf));
                free(buf);
            }
        }
    }
    out->kind = "model_version";
    out->model_name = name;
    out->version = version;
    out->run_id = mlflow_str(mv, "run_id");
    out->lifecycle_stage = first(mlflow_str(mv, "current_stage"), "None");
    out->description = mlflow_str(mv, "description");
    out->source = mlflow_str(mv, "source");
    out->status = mlflow_str(mv, "status");
    out->model_created_at = mlflow_ms(mv, "creation_timestamp");
    out->model_updated_at = mlflow_ms(mv, "last_updated_timestamp");
    if (out->model_updated_at < 0)
        out->model_updated_at = out->model_created_at;
    out->tags = tags;
    out->metrics = metrics;
    out->parameters = params;
    return MLFLOW_MAP_OK;
}

void mlflow_record_clear(struct mlflow_record *r)
{
    json_decref(r->tags);
    json_decref(r->metrics);
    json_decref(r->parameters);
    r->tags = r->metrics = r->parameters = NULL;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *ms_or_null(long long ms)
{
    return ms >= 0 ? json_integer((json_int_t)ms) : json_null();
}

json_t *mlflow_record_json(const struct mlflow_record *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = 0;
    rc |= json_object_set_new(o, "record_kind", str_or_null(r->kind));
    rc |= json_object_set_new(o, "model_name", str_or_null(r->model_name));
    rc |= json_object_set_new(o, "version", str_or_null(r->version));
    rc |= json_object_set_new(o, "lifecycle_stage", str_or_null(r->lifecycle_stage));
    rc |= json_object_set_new(o, "run_id", str_or_null(r->run_id));
    rc |= json_object_set_new(o, "description", str_or_null(r->description));
    rc |= json_object_set_new(o, "source", str_or_null(r->source));
    rc |= json_object_set_new(o, "status", str_or_null(r->status));
    rc |= json_object_set_new(o, "experiment_id", str_or_null(r->experiment_id));
    rc |= json_object_set_new(o, "experiment_name", str_or_null(r->experiment_name));
    rc |= json_object_set_new(o, "artifact_location", str_or_null(r->artifact_location));
    rc |= json_object_set_new(o, "training_status", str_or_null(r->training_status));
    rc |= json_object_set_new(o, "source_version", str_or_null(r->source_version));
    rc |= json_object_set_new(o, "tags", r->tags ? json_incref(r->tags) : json_object());
    rc |= json_object_set_new(o, "metrics", r->metrics ? json_incref(r->metrics) : json_object());
    rc |= json_object_set_new(o, "parameters", r->parameters ? json_incref(r->parameters) : json_object());
    rc |= json_object_set_new(o, "training_started_at", ms_or_null(r->training_started_at));
    rc |= json_object_set_new(o, "training_ended_at", ms_or_null(r->training_ended_at));
    rc |= json_object_set_new(o, "model_created_at", ms_or_null(r->model_created_at));
    rc |= json_object_set_new(o, "model_updated_at", ms_or_null(r->model_updated_at));
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mlflow_experiment_index(const json_t *exps)
{
    json_t *idx = json_object();
    if (!idx)
        return NULL;
    size_t i;
    json_t *e;
    json_array_foreach(exps, i, e) {
        const char *eid = mlflow_str(e, "experiment_id");
        if (eid && !json_object_get(idx, eid) && json_object_set(idx, eid, e) < 0) { /* the first one wins */
            json_decref(idx);
            return NULL;
        }
    }
    return idx;
}

const struct mlflow_experiment_info *mlflow_find_experiment(const json_t *index, const char *id,
                                                           struct mlflow_experiment_info *buf)
{
    const json_t *e = id ? json_object_get(index, id) : NULL;
    if (!e)
        return NULL;
    buf->id = mlflow_str(e, "experiment_id");
    buf->name = mlflow_str(e, "name");
    buf->artifact_location = mlflow_str(e, "artifact_location");
    return buf;
}
