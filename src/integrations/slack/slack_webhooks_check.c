/* integrations/slack_webhooks_check: owns the rules of the webhook requests (the five
 * routing types, the channel filter, a PATCH body) and the one table mapping each
 * refusal to its status and VerifyWise message. slack_webhooks_check_create states
 * the rule of the create body (the OAuth installation, slack_oauth.c). Pure: no request, no database. */
#include <stdlib.h>
#include <string.h>

#include "integrations/slack_webhooks.h"
#include "util/json.h"

const char *const slack_routing_types[SLACK_ROUTING_TYPES] = {
    "Membership and roles",        "Projects and organizations", "Policy reminders and status",
    "Evidence and task alerts",    "Control or policy changes",
};

static const struct {
    int status;
    const char *message; /* NULL: the generic 500 */
} errors[SLACK_WH_ERR_COUNT] = {
    [SLACK_WH_OK] = {200, ""},
    [SLACK_WH_ERR_BAD_ID] = {400, SLACK_MSG_BAD_ID},
    [SLACK_WH_ERR_USER_ID] = {400, "Valid User ID is required (must be >= 1)"},
    [SLACK_WH_ERR_CODE_TYPE] = {400, "code must be a string"},
    [SLACK_WH_ERR_CODE_REQUIRED] = {400, "Slack OAuth code is required"},
    [SLACK_WH_ERR_CODE_TOO_LONG] = {400, "Slack OAuth code must be at most 512 characters"},
    [SLACK_WH_ERR_CHANNEL_TOO_LONG] = {400, "channel must be at most 255 characters"},
    [SLACK_WH_ERR_ACTIVE_TYPE] = {400, "is_active must be a boolean"},
    [SLACK_WH_ERR_ROUTING_SHAPE] = {400, "routing_type must be an array of routing types"},
    [SLACK_WH_ERR_ROUTING_VALUE] = {400, SLACK_MSG_BAD_ROUTING},
    [SLACK_WH_ERR_NOTHING] = {400, "Nothing to update: give is_active and/or routing_type"},
    [SLACK_WH_ERR_FORBIDDEN] = {403, "Unauthorized"},
    [SLACK_WH_ERR_NOT_FOUND] = {404, SLACK_MSG_NOT_FOUND},
    [SLACK_WH_ERR_INTERNAL] = {500, NULL},
};

int slack_webhooks_err_status(enum slack_wh_err e)
{
    return (unsigned)e < SLACK_WH_ERR_COUNT ? errors[e].status : 500;
}

const char *slack_webhooks_err_message(enum slack_wh_err e)
{
    return (unsigned)e < SLACK_WH_ERR_COUNT ? errors[e].message : NULL;
}

bool slack_routing_type_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < SLACK_ROUTING_TYPES; i++)
        if (strlen(slack_routing_types[i]) == len && memcmp(slack_routing_types[i], s, len) == 0)
            return true;
    return false;
}

enum slack_wh_err slack_webhooks_check_channel(const char *channel, size_t len)
{
    return utf8_length(channel, len) > SLACK_CHANNEL_MAX ? SLACK_WH_ERR_CHANNEL_TOO_LONG : SLACK_WH_OK;
}

enum slack_wh_err slack_webhooks_check_create(const json_t *body, const char **code, size_t *len)
{
    *code = NULL;
    *len = 0;
    const json_t *uid = json_object_get(body, "userId");
    if (uid && !json_is_null(uid) && (!json_is_integer(uid) || json_integer_value(uid) < 1))
        return SLACK_WH_ERR_USER_ID;
    const char *s;
    size_t n;
    int g = json_get_string(body, "code", &s, &n);
    if (g < 0 || (g == 1 && memchr(s, '\0', n)))
        return SLACK_WH_ERR_CODE_TYPE;
    if (g == 0 || n == 0)
        return SLACK_WH_ERR_CODE_REQUIRED;
    if (n > SLACK_CODE_MAX)
        return SLACK_WH_ERR_CODE_TOO_LONG;
    *code = s;
    *len = n;
    return SLACK_WH_OK;
}

/* routing_type v (present) as a JSON array text, validated, duplicates dropped. */
static enum slack_wh_err routing_of(const json_t *v, char **out)
{
    if (!json_is_array(v) || json_array_size(v) > SLACK_ROUTING_MAX_ITEMS)
        return SLACK_WH_ERR_ROUTING_SHAPE;
    json_t *list = json_array();
    if (!list)
        return SLACK_WH_ERR_INTERNAL;
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it) {
        if (!json_is_string(it) || !slack_routing_type_valid(json_string_value(it), json_string_length(it))) {
            json_decref(list);
            return json_is_string(it) ? SLACK_WH_ERR_ROUTING_VALUE : SLACK_WH_ERR_ROUTING_SHAPE;
        }
        bool dup = false;
        size_t j;
        json_t *o;
        json_array_foreach(list, j, o) if (json_equal(o, it)) dup = true;
        if (!dup && json_array_append(list, it) < 0) {
            json_decref(list);
            return SLACK_WH_ERR_INTERNAL;
        }
    }
    *out = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    return *out ? SLACK_WH_OK : SLACK_WH_ERR_INTERNAL;
}

enum slack_wh_err slack_webhooks_check_patch(const json_t *body, struct slack_webhook_patch *out)
{
    *out = (struct slack_webhook_patch){0};
    const json_t *act = json_object_get(body, "is_active");
    if (act && !json_is_boolean(act))
        return SLACK_WH_ERR_ACTIVE_TYPE;
    const json_t *routing = json_object_get(body, "routing_type");
    char *text = NULL;
    if (routing) {
        enum slack_wh_err e = routing_of(routing, &text);
        if (e != SLACK_WH_OK)
            return e;
    }
    if (!act && !routing)
        return SLACK_WH_ERR_NOTHING;
    out->active = act ? (json_is_true(act) ? "true" : "false") : NULL;
    out->routing = text;
    return SLACK_WH_OK;
}

void slack_webhook_patch_clear(struct slack_webhook_patch *p)
{
    free(p->routing);
    *p = (struct slack_webhook_patch){0};
}
