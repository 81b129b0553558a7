/* Unit tests for integrations/slack_webhooks_check: the routing types, the list's
 * channel filter from both sides of its bound, a create body (userId, the OAuth code
 * and its byte bound), a PATCH body (types, the routing list's
 * size bound, duplicates, what is required, the order the checks run in) and the one
 * table of statuses and VerifyWise messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "integrations/slack_webhooks.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    assert_non_null(j);
    return j;
}

static enum slack_wh_err patch(const char *text, struct slack_webhook_patch *p)
{
    json_t *j = parse(text);
    enum slack_wh_err e = slack_webhooks_check_patch(j, p);
    json_decref(j);
    return e;
}

static void routing_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < SLACK_ROUTING_TYPES; i++)
        assert_true(slack_routing_type_valid(slack_routing_types[i], strlen(slack_routing_types[i])));
    assert_false(slack_routing_type_valid("membership and roles", 20));
    assert_false(slack_routing_type_valid("Membership and roles", 19));
    assert_false(slack_routing_type_valid("Membership and roles ", 21));
    assert_false(slack_routing_type_valid("", 0));
}

static void channel(void **state)
{
    (void)state;
    static const char *const chars[] = {"c", "\xc3\xa9", "\xe2\x82\xac"};
    for (size_t c = 0; c < 3; c++) {
        char buf[2048] = "";
        size_t cl = strlen(chars[c]);
        for (size_t i = 0; i < SLACK_CHANNEL_MAX; i++)
            strcat(buf, chars[c]);
        assert_int_equal(slack_webhooks_check_channel(buf, SLACK_CHANNEL_MAX * cl), SLACK_WH_OK);
        strcat(buf, chars[c]);
        assert_int_equal(slack_webhooks_check_channel(buf, (SLACK_CHANNEL_MAX + 1) * cl),
                         SLACK_WH_ERR_CHANNEL_TOO_LONG);
    }
    assert_int_equal(slack_webhooks_check_channel("", 0), SLACK_WH_OK);
    assert_int_equal(SLACK_CHANNEL_MAX, 255);
}

static void patch_active(void **state)
{
    (void)state;
    struct slack_webhook_patch p;
    assert_int_equal(patch("{}", &p), SLACK_WH_ERR_NOTHING);
    assert_int_equal(patch("{\"active\":true}", &p), SLACK_WH_ERR_NOTHING);
    assert_int_equal(patch("{\"is_active\":\"true\"}", &p), SLACK_WH_ERR_ACTIVE_TYPE);
    assert_int_equal(patch("{\"is_active\":1}", &p), SLACK_WH_ERR_ACTIVE_TYPE);
    assert_int_equal(patch("{\"is_active\":null}", &p), SLACK_WH_ERR_ACTIVE_TYPE);
    /* is_active is looked at before routing_type */
    assert_int_equal(patch("{\"is_active\":0,\"routing_type\":[\"nope\"]}", &p), SLACK_WH_ERR_ACTIVE_TYPE);
    assert_null(p.active);
    assert_null(p.routing);
    assert_int_equal(patch("{\"is_active\":true}", &p), SLACK_WH_OK);
    assert_string_equal(p.active, "true");
    assert_null(p.routing);
    slack_webhook_patch_clear(&p);
    assert_int_equal(patch("{\"is_active\":false}", &p), SLACK_WH_OK);
    assert_string_equal(p.active, "false");
    slack_webhook_patch_clear(&p);
}

static void patch_routing(void **state)
{
    (void)state;
    struct slack_webhook_patch p;
    static const char *const shape[] = {
        "{\"routing_type\":\"Membership and roles\"}",
        "{\"routing_type\":null}",
        "{\"routing_type\":{}}",
        "{\"routing_type\":[1]}",
        "{\"routing_type\":[[\"Membership and roles\"]]}",
        "{\"routing_type\":[5,\"nope\"]}",
        "{\"is_active\":true,\"routing_type\":[null]}",
    };
    for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++)
        assert_int_equal(patch(shape[i], &p), SLACK_WH_ERR_ROUTING_SHAPE);
    assert_int_equal(patch("{\"routing_type\":[\"nope\",5]}", &p), SLACK_WH_ERR_ROUTING_VALUE);
    assert_int_equal(patch("{\"routing_type\":[\"Membership and roles\",\"membership and roles\"]}", &p),
                     SLACK_WH_ERR_ROUTING_VALUE);
    assert_null(p.routing);

    assert_int_equal(patch("{\"routing_type\":[]}", &p), SLACK_WH_OK);
    assert_string_equal(p.routing, "[]");
    assert_null(p.active);
    slack_webhook_patch_clear(&p);
    assert_null(p.routing);
    assert_int_equal(patch("{\"routing_type\":[\"Projects and organizations\",\"Membership and roles\","
                           "\"Projects and organizations\"],\"is_active\":false}",
                           &p),
                     SLACK_WH_OK);
    assert_string_equal(p.routing, "[\"Projects and organizations\",\"Membership and roles\"]");
    assert_string_equal(p.active, "false");
    slack_webhook_patch_clear(&p);

    /* at most SLACK_ROUTING_MAX_ITEMS entries, duplicates included */
    for (size_t n = SLACK_ROUTING_MAX_ITEMS; n <= SLACK_ROUTING_MAX_ITEMS + 1; n++) {
        json_t *list = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, json_string(slack_routing_types[i % SLACK_ROUTING_TYPES]));
        json_t *j = json_pack("{s:o}", "routing_type", list);
        enum slack_wh_err e = slack_webhooks_check_patch(j, &p);
        if (n == SLACK_ROUTING_MAX_ITEMS) {
            assert_int_equal(e, SLACK_WH_OK);
            json_error_t je;
            json_t *got = json_loads(p.routing, 0, &je);
            assert_int_equal(json_array_size(got), SLACK_ROUTING_TYPES);
            json_decref(got);
        } else {
            assert_int_equal(e, SLACK_WH_ERR_ROUTING_SHAPE);
        }
        slack_webhook_patch_clear(&p);
        json_decref(j);
    }
    assert_int_equal(SLACK_ROUTING_MAX_ITEMS, 32);
}

static enum slack_wh_err create(const char *text, const char **code, size_t *len)
{
    json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    enum slack_wh_err e = slack_webhooks_check_create(j, code, len);
    json_decref(j);
    return e;
}

static void create_body(void **state)
{
    (void)state;
    const char *code;
    size_t len;
    static const char *const user_id[] = {"{\"code\":\"c\",\"userId\":0}", "{\"code\":\"c\",\"userId\":-3}",
                                          "{\"code\":\"c\",\"userId\":\"1\"}", "{\"code\":\"c\",\"userId\":1.5}",
                                          "{\"userId\":true}"};
    for (size_t i = 0; i < sizeof user_id / sizeof user_id[0]; i++) {
        assert_int_equal(create(user_id[i], &code, &len), SLACK_WH_ERR_USER_ID);
        assert_null(code);
    }
    assert_int_equal(create("{\"code\":5}", &code, &len), SLACK_WH_ERR_CODE_TYPE);
    assert_int_equal(create("{\"code\":[\"c\"]}", &code, &len), SLACK_WH_ERR_CODE_TYPE);
    assert_int_equal(create("{\"code\":\"a\\u0000b\"}", &code, &len), SLACK_WH_ERR_CODE_TYPE);
    assert_int_equal(create("{}", &code, &len), SLACK_WH_ERR_CODE_REQUIRED);
    assert_int_equal(create("{\"code\":null,\"userId\":null}", &code, &len), SLACK_WH_ERR_CODE_REQUIRED);
    assert_int_equal(create("{\"code\":\"\",\"userId\":7}", &code, &len), SLACK_WH_ERR_CODE_REQUIRED);
    json_t *j = json_loads("{\"code\":\"abc\",\"userId\":1}", 0, NULL);
    assert_int_equal(slack_webhooks_check_create(j, &code, &len), SLACK_WH_OK);
    assert_ptr_equal(code, json_string_value(json_object_get(j, "code")));
    assert_int_equal(len, 3);
    json_decref(j);
    /* the bound counts bytes: 512 pass, 513 do not (two-byte characters too) */
    for (size_t n = SLACK_CODE_MAX - 1; n <= SLACK_CODE_MAX + 1; n++) {
        char *s = malloc(n + 1);
        assert_non_null(s);
        memset(s, 'x', n);
        if (n % 2 == 0)
            for (size_t i = 0; i < n; i += 2)
                s[i] = (char)0xc3, s[i + 1] = (char)0xa9;
        s[n] = '\0';
        json_t *body = json_pack("{s:s}", "code", s);
        assert_non_null(body);
        enum slack_wh_err e = slack_webhooks_check_create(body, &code, &len);
        assert_int_equal(e, n <= SLACK_CODE_MAX ? SLACK_WH_OK : SLACK_WH_ERR_CODE_TOO_LONG);
        if (e == SLACK_WH_OK)
            assert_int_equal(len, n);
        json_decref(body);
        free(s);
    }
    assert_int_equal(SLACK_CODE_MAX, 512);
}

static void error_table(void **state)
{
    (void)state;
    static const int status[SLACK_WH_ERR_COUNT] = {
        [SLACK_WH_OK] = 200,
        [SLACK_WH_ERR_BAD_ID] = 400,
        [SLACK_WH_ERR_USER_ID] = 400,
        [SLACK_WH_ERR_CODE_TYPE] = 400,
        [SLACK_WH_ERR_CODE_REQUIRED] = 400,
        [SLACK_WH_ERR_CODE_TOO_LONG] = 400,
        [SLACK_WH_ERR_CHANNEL_TOO_LONG] = 400,
        [SLACK_WH_ERR_ACTIVE_TYPE] = 400,
        [SLACK_WH_ERR_ROUTING_SHAPE] = 400,
        [SLACK_WH_ERR_ROUTING_VALUE] = 400,
        [SLACK_WH_ERR_NOTHING] = 400,
        [SLACK_WH_ERR_FORBIDDEN] = 403,
        [SLACK_WH_ERR_NOT_FOUND] = 404,
        [SLACK_WH_ERR_INTERNAL] = 500,
    };
    for (int e = 0; e < SLACK_WH_ERR_COUNT; e++) {
        assert_int_equal(slack_webhooks_err_status((enum slack_wh_err)e), status[e]);
        if (e != SLACK_WH_OK && e != SLACK_WH_ERR_INTERNAL)
            assert_true(strlen(slack_webhooks_err_message((enum slack_wh_err)e)) > 0);
    }
    assert_null(slack_webhooks_err_message(SLACK_WH_ERR_INTERNAL));
    assert_int_equal(slack_webhooks_err_status(SLACK_WH_ERR_COUNT), 500);
    assert_string_equal(slack_webhooks_err_message(SLACK_WH_ERR_BAD_ID), "Valid ID is required (must be >= 1)");
    assert_string_equal(slack_webhooks_err_message(SLACK_WH_ERR_NOT_FOUND), "Slack Webhook not found");
    assert_string_equal(slack_webhooks_err_message(SLACK_WH_ERR_USER_ID), "Valid User ID is required (must be >= 1)");
    assert_string_equal(slack_webhooks_err_message(SLACK_WH_ERR_CODE_REQUIRED), "Slack OAuth code is required");
    assert_string_equal(slack_webhooks_err_message(SLACK_WH_ERR_CODE_TOO_LONG),
                        "Slack OAuth code must be at most 512 characters");
    assert_string_equal(slack_webhooks_err_message(SLACK_WH_ERR_FORBIDDEN), "Unauthorized");
    assert_string_equal(slack_webhooks_err_message(SLACK_WH_ERR_ROUTING_VALUE),
                        "Invalid routing type. Must be one of: Membership and roles, Projects and organizations, "
                        "Policy reminders and status, Evidence and task alerts, Control or policy changes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routing_types), cmocka_unit_test(channel), cmocka_unit_test(patch_active),
        cmocka_unit_test(patch_routing), cmocka_unit_test(create_body),   cmocka_unit_test(error_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
