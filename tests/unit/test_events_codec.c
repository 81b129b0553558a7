/* tests/unit/test_events_codec: msgpack encoding of every event type (decoded back
 * with msgpack-c, field by field and type by type) and the strict notify decoder
 * against valid, truncated, mistyped, oversized, nested and hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/codec.h"

/* ---- helpers: walk a decoded msgpack object -------------------------------------- */

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
    const msgpack_object *found = NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        assert_int_equal(k->type, MSGPACK_OBJECT_STR);   /* str keys only */
        if (k->via.str.size == kl && memcmp(k->via.str.ptr, key, kl) == 0) {
            assert_null(found);                           /* no duplicates */
            found = &m->via.map.ptr[i].val;
        }
    }
    return found;
}

static void assert_str(const msgpack_object *o, const char *want)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, o->via.str.size);
}

static long long obj_int(const msgpack_object *o)
{
    assert_non_null(o);
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (long long)o->via.u64;
    assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return (long long)o->via.i64;
}

/* The msgpack value must be the JSON value converted with core types only. */
static void assert_same(const msgpack_object *o, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
        assert_int_equal(o->via.map.size, json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            const msgpack_object *mv = map_get(o, k);
            assert_non_null(mv);
            assert_same(mv, v);
        }
        break;
    }
    case JSON_ARRAY:
        assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(o->via.array.size, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            assert_same(&o->via.array.ptr[i], json_array_get(j, i));
        break;
    case JSON_STRING:
        assert_int_equal(o->type, MSGPACK_OBJECT_STR);
        assert_int_equal(o->via.str.size, json_string_length(j));
        assert_memory_equal(o->via.str.ptr, json_string_value(j), o->via.str.size);
        break;
    case JSON_INTEGER:
        assert_true(obj_int(o) == (long long)json_integer_value(j));
        break;
    case JSON_REAL:
        assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
        assert_true(o->via.f64 == json_real_value(j));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
        assert_int_equal(o->via.boolean, json_is_true(j));
        break;
    case JSON_NULL:
        assert_int_equal(o->type, MSGPACK_OBJECT_NIL);
        break;
    }
}

/* ---- event_encode ------------------------------------------------------------------ */

struct event_case {
    const char *type;
    const char *data;
};

/* Every type of SPEC section 6 with representative (secret-free) data. */
static const struct event_case event_cases[] = {
    {"mlflow.test.completed", "{\"success\":true,\"tracking_uri\":\"https://mlflow.example.com\","
                              "\"message\":\"Connection successful\",\"duration_ms\":123}"},
    {"mlflow.sync.completed", "{\"run_id\":17,\"trigger\":\"schedule\",\"status\":\"partial\",\"models_created\":3,"
                              "\"models_updated\":2,\"models_unchanged\":40,\"errors\":[\"experiment 9: HTTP 500\"],"
                              "\"duration_ms\":4512}"},
    {"mlflow.model.changed", "{\"model_id\":12,\"name\":\"fraud-detector\",\"version\":\"3\",\"change\":\"updated\","
                             "\"stage\":null,\"aliases\":[\"champion\",\"prod\"],\"metrics\":{\"auc\":0.913,\"loss\":-0.25}}"},
    {"github.token.saved", "{\"token_name\":\"ci bot\",\"scopes\":[\"repo\",\"read:org\"],\"masked\":\"****abcd\"}"},
    {"github.token.deleted", "{}"},
    {"slack.webhook.created", "{\"webhook_id\":5,\"user_id\":7,\"team_name\":\"Acme\",\"channel\":\"#ai-governance\","
                              "\"routing_types\":[\"membership_and_roles\",\"policies\"],\"is_active\":true}"},
    {"slack.webhook.updated", "{\"webhook_id\":5,\"changed\":[\"routing_type\",\"is_active\"],\"is_active\":false}"},
    {"slack.webhook.deleted", "{\"webhook_id\":5}"},
    {"slack.message.sent", "{\"webhook_id\":5,\"channel\":\"C0123456\",\"message_id\":\"1700000000.000100\","
                           "\"routing_type\":\"policies\",\"idempotency_key\":\"k-1\",\"attempts\":1}"},
    {"slack.message.failed", "{\"webhook_id\":5,\"error\":\"channel_not_found\",\"attempts\":4,\"deactivated\":true,"
                             "\"idempotency_key\":null}"},
    {"llm_key.created", "{\"key_id\":3,\"name\":\"OpenAI\",\"masked\":\"****wxyz\",\"model\":\"gpt-4o\"}"},
    {"llm_key.updated", "{\"key_id\":3,\"changed\":[\"model\"],\"ratio\":1.5,\"big\":9007199254740993,"
                        "\"neg\":-9223372036854775807,\"unicode\":\"\\u00e9t\\u00e9 \\u2713 \\ud83d\\ude80\"}"},
    {"llm_key.deleted", "{\"key_id\":3,\"name\":\"OpenAI\"}"},
};

static void decode_event(const char *buf, size_t len, msgpack_unpacked *u)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(u->data.type, MSGPACK_OBJECT_MAP);
}

static void test_encode_every_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof event_cases / sizeof event_cases[0]; i++) {
        json_error_t jerr;
        json_t *data = json_loads(event_cases[i].data, JSON_REJECT_DUPLICATES, &jerr);
        assert_non_null(data);
        char *buf = NULL;
        size_t len = 0;
        long long actor = (i % 2) ? 99 : 0;   /* alternate a real actor and "no actor" */
        assert_int_equal(event_encode(event_cases[i].type, "0123456789abcdef0123456789abcdef", 1700000000123LL,
                                      42, "a1b2c3d4e5", actor, data, &buf, &len),
                         0);
        assert_non_null(buf);
        msgpack_unpacked u;
        decode_event(buf, len, &u);
        const msgpack_object *m = &u.data;
        assert_int_equal(m->via.map.size, 8);   /* exactly the listed fields */

        const msgpack_object *v = map_get(m, "v");
        assert_non_null(v);
        assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_int_equal(v->via.u64, 1);
        assert_str(map_get(m, "type"), event_cases[i].type);
        assert_str(map_get(m, "id"), "0123456789abcdef0123456789abcdef");
        const msgpack_object *t = map_get(m, "time");
        assert_non_null(t);
        assert_int_equal(t->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_true(t->via.u64 == 1700000000123ULL);
        const msgpack_object *org = map_get(m, "organization_id");
        assert_non_null(org);
        assert_int_equal(org->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_int_equal(org->via.u64, 42);
        assert_str(map_get(m, "tenant"), "a1b2c3d4e5");
        const msgpack_object *a = map_get(m, "actor_user_id");
        assert_non_null(a);
        if (actor > 0) {
            assert_int_equal(a->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
            assert_int_equal(a->via.u64, 99);
        } else {
            assert_int_equal(a->type, MSGPACK_OBJECT_NIL);
        }
        const msgpack_object *d = map_get(m, "data");
        assert_non_null(d);
        assert_same(d, data);

        msgpack_unpacked_destroy(&u);
        free(buf);
        json_decref(data);
    }
}

static void test_encode_null_fields(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(event_encode("github.token.deleted", "id1", 1, 7, NULL, -5, NULL, &buf, &len), 0);
    msgpack_unpacked u;
    decode_event(buf, len, &u);
    assert_int_equal(map_get(&u.data, "tenant")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(map_get(&u.data, "actor_user_id")->type, MSGPACK_OBJECT_NIL);
    const msgpack_object *d = map_get(&u.data, "data");
    assert_int_equal(d->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(d->via.map.size, 0);
    msgpack_unpacked_destroy(&u);
    free(buf);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    char *buf = (char *)1;
    size_t len = 1;
    json_t *arr = json_array();
    assert_int_equal(event_encode("x.y", "id", 1, 1, "t", 1, arr, &buf, &len), -1);
    assert_null(buf);
    assert_int_equal(len, 0);
    json_decref(arr);

    json_t *obj = json_object();
    assert_int_equal(event_encode(NULL, "id", 1, 1, "t", 1, obj, &buf, &len), -1);
    assert_int_equal(event_encode("x.y", NULL, 1, 1, "t", 1, obj, &buf, &len), -1);

    /* 40 levels of nesting inside data is refused, 10 is fine */
    json_t *deep = json_object();
    json_t *cur = deep;
    for (int i = 0; i < 40; i++) {
        json_t *n = json_object();
        json_object_set_new(cur, "k", n);
        cur = n;
        if (i == 8) {
            assert_int_equal(event_encode("x.y", "id", 1, 1, "t", 1, deep, &buf, &len), 0);
            free(buf);
        }
    }
    assert_int_equal(event_encode("x.y", "id", 1, 1, "t", 1, deep, &buf, &len), -1);
    assert_null(buf);
    json_decref(deep);
    json_decref(obj);
}

/* Strings are str (never bin), reals float64 (never float32), no ext anywhere. */
static void test_encode_core_types(void **state)
{
    (void)state;
    json_t *data = json_pack("{s:s, s:f, s:f, s:[b,n,i]}", "s", "x", "f", 0.5, "g", 1e300, "a", 1, 3);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(event_encode("x.y", "id", 1, 1, "t", 1, data, &buf, &len), 0);
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)buf[i];
        /* no bin8/16/32, ext or float32 marker byte; the payload is all ASCII/small */
        assert_false(b == 0xc4 || b == 0xc5 || b == 0xc6 || (b >= 0xc7 && b <= 0xc9) || b == 0xca ||
                     (b >= 0xd4 && b <= 0xd8));
    }
    msgpack_unpacked u;
    decode_event(buf, len, &u);
    assert_same(map_get(&u.data, "data"), data);
    msgpack_unpacked_destroy(&u);
    free(buf);
    json_decref(data);
}

/* ---- notify messages: a small builder ------------------------------------------------- */

enum val_kind {
    V_STR, V_EMPTY, V_NEG, V_ZERO, V_ONE, V_HUGE, V_FLOAT, V_NIL, V_TRUE, V_BIN, V_ARRAY, V_MAP, V_KINDS
};

static void pack_val(msgpack_packer *pk, enum val_kind k)
{
    switch (k) {
    case V_STR: msgpack_pack_str_with_body(pk, "x", 1); break;
    case V_EMPTY: msgpack_pack_str_with_body(pk, "", 0); break;
    case V_NEG: msgpack_pack_int64(pk, -1); break;
    case V_ZERO: msgpack_pack_int64(pk, 0); break;
    case V_ONE: msgpack_pack_int64(pk, 1); break;
    case V_HUGE: msgpack_pack_uint64(pk, UINT64_MAX); break;
    case V_FLOAT: msgpack_pack_double(pk, 1.0); break;
    case V_NIL: msgpack_pack_nil(pk); break;
    case V_TRUE: msgpack_pack_true(pk); break;
    case V_BIN: msgpack_pack_bin_with_body(pk, "x", 1); break;
    case V_ARRAY: msgpack_pack_array(pk, 1); msgpack_pack_int64(pk, 1); break;
    case V_MAP: msgpack_pack_map(pk, 0); break;
    case V_KINDS: break;
    }
}

#define NFIELDS 6
static const char *const fields[NFIELDS] = {"organization_id", "user_id", "routing_type",
                                            "title", "message", "idempotency_key"};

static void pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void pack_default(msgpack_packer *pk, int f)
{
    switch (f) {
    case 0: msgpack_pack_int64(pk, 42); break;
    case 1: msgpack_pack_int64(pk, 7); break;
    case 2: msgpack_pack_str_with_body(pk, "membership_and_roles", 20); break;
    case 3: msgpack_pack_str_with_body(pk, "Title", 5); break;
    case 4: msgpack_pack_str_with_body(pk, "Hello \xc3\xa9t\xc3\xa9", 11); break;
    case 5: msgpack_pack_str_with_body(pk, "idem-1", 6); break;
    }
}

/* A notify message with every field, except `omit` (-1: none), and with field
 * `over` (-1: none) set to value kind `kind`. */
static void build(msgpack_sbuffer *sb, int omit, int over, enum val_kind kind)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, omit >= 0 ? NFIELDS - 1 : NFIELDS);
    for (int f = 0; f < NFIELDS; f++) {
        if (f == omit)
            continue;
        pack_key(&pk, fields[f]);
        if (f == over)
            pack_val(&pk, kind);
        else
            pack_default(&pk, f);
    }
}

static int decode(const char *buf, size_t len)
{
    struct notify_decoded d;
    char err[128] = "";
    int rc = notify_decode(buf, len, &d, err, sizeof err);
    if (rc == 0) {
        assert_non_null(d.buf);
        notify_decoded_free(&d);
    } else {
        assert_null(d.buf);
        assert_true(err[0] != '\0');
    }
    return rc;
}

/* ---- notify_decode: accepted ------------------------------------------------------------ */

static void test_notify_valid_full(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    build(&sb, -1, -1, V_STR);
    struct notify_decoded d;
    char err[128];
    assert_int_equal(notify_decode(sb.data, sb.size, &d, err, sizeof err), 0);
    assert_int_equal(d.msg.organization_id, 42);
    assert_true(d.msg.has_user_id);
    assert_int_equal(d.msg.user_id, 7);
    assert_string_equal(d.msg.routing_type, "membership_and_roles");
    assert_string_equal(d.msg.title, "Title");
    assert_string_equal(d.msg.message, "Hello \xc3\xa9t\xc3\xa9");
    assert_string_equal(d.msg.idempotency_key, "idem-1");
    notify_decoded_free(&d);
    assert_null(d.buf);
    notify_decoded_free(&d);   /* twice is harmless */
    msgpack_sbuffer_destroy(&sb);
}

static void test_notify_valid_minimal(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pack_key(&pk, "message");
    msgpack_pack_str_with_body(&pk, "m", 1);
    pack_key(&pk, "title");
    msgpack_pack_str_with_body(&pk, "t", 1);
    pack_key(&pk, "routing_type");
    msgpack_pack_str_with_body(&pk, "policies", 8);
    pack_key(&pk, "organization_id");
    msgpack_pack_uint64(&pk, 9223372036854775807ULL);
    struct notify_decoded d;
    char err[128];
    assert_int_equal(notify_decode(sb.data, sb.size, &d, err, sizeof err), 0);
    assert_true(d.msg.organization_id == 9223372036854775807LL);
    assert_false(d.msg.has_user_id);
    assert_null(d.msg.idempotency_key);
    assert_string_equal(d.msg.routing_type, "policies");
    notify_decoded_free(&d);
    msgpack_sbuffer_destroy(&sb);

    /* optional fields given as nil */
    build(&sb, -1, 1, V_NIL);
    assert_int_equal(notify_decode(sb.data, sb.size, &d, err, sizeof err), 0);
    assert_false(d.msg.has_user_id);
    notify_decoded_free(&d);
    msgpack_sbuffer_destroy(&sb);
    build(&sb, -1, 5, V_NIL);
    assert_int_equal(notify_decode(sb.data, sb.size, &d, err, sizeof err), 0);
    assert_null(d.msg.idempotency_key);
    notify_decoded_free(&d);
    msgpack_sbuffer_destroy(&sb);
}

static void test_notify_unknown_keys_ignored(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, NFIELDS + 3);
    for (int f = 0; f < NFIELDS; f++) {
        pack_key(&pk, fields[f]);
        pack_default(&pk, f);
    }
    pack_key(&pk, "extra");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_map(&pk, 1);
    pack_key(&pk, "a");
    msgpack_pack_double(&pk, 2.5);
    msgpack_pack_bin_with_body(&pk, "\x00\x01", 2);
    msgpack_pack_ext_with_body(&pk, "abcd", 4, 5);
    pack_key(&pk, "v");
    msgpack_pack_int64(&pk, 1);
    pack_key(&pk, "nested");
    for (int i = 0; i < 10; i++)
        msgpack_pack_array(&pk, 1);
    msgpack_pack_nil(&pk);
    assert_int_equal(decode(sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- notify_decode: rejected -------------------------------------------------------------- */

static void test_notify_random_bytes(void **state)
{
    (void)state;
    unsigned int seed = 12345;
    char buf[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof buf) + 1;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(rand_r(&seed) & 0xff);
        if (round % 3 == 0)
            buf[0] = (char)(0x80 | (rand_r(&seed) & 0x0f));   /* start as a fixmap */
        assert_int_equal(decode(buf, len), -1);
    }
    assert_int_equal(decode("", 0), -1);
    assert_int_equal(decode(NULL, 0), -1);
    assert_int_equal(decode("\xc1", 1), -1);
}

static void test_notify_truncated(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    build(&sb, -1, -1, V_STR);
    assert_int_equal(decode(sb.data, sb.size), 0);
    for (size_t n = 0; n < sb.size; n++) {
        char *copy = malloc(n ? n : 1);   /* exact-size copy: ASan sees any over-read */
        memcpy(copy, sb.data, n);
        assert_int_equal(decode(copy, n), -1);
        free(copy);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void test_notify_trailing_bytes(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    build(&sb, -1, -1, V_STR);
    size_t n = sb.size;
    char *two = malloc(2 * n);
    memcpy(two, sb.data, n);
    memcpy(two + n, sb.data, n);
    assert_int_equal(decode(two, n), 0);
    assert_int_equal(decode(two, n + 1), -1);   /* a second message begins */
    assert_int_equal(decode(two, 2 * n), -1);   /* two whole messages */
    two[n] = (char)0xc0;
    assert_int_equal(decode(two, n + 1), -1);   /* one trailing nil */
    free(two);
    msgpack_sbuffer_destroy(&sb);
}

static void test_notify_wrong_types(void **state)
{
    (void)state;
    /* which value kinds each field accepts */
    static const int ok[NFIELDS][V_KINDS] = {
        /*          STR EMPTY NEG ZERO ONE HUGE FLT NIL TRUE BIN ARR MAP */
        /* org  */ {0,  0,    0,  0,   1,  0,   0,  0,  0,   0,  0,  0},
        /* user */ {0,  0,    0,  0,   1,  0,   0,  1,  0,   0,  0,  0},
        /* rt   */ {1,  0,    0,  0,   0,  0,   0,  0,  0,   0,  0,  0},
        /* ttl  */ {1,  0,    0,  0,   0,  0,   0,  0,  0,   0,  0,  0},
        /* msg  */ {1,  0,    0,  0,   0,  0,   0,  0,  0,   0,  0,  0},
        /* idem */ {1,  0,    0,  0,   0,  0,   0,  1,  0,   0,  0,  0},
    };
    for (int f = 0; f < NFIELDS; f++)
        for (int k = 0; k < V_KINDS; k++) {
            msgpack_sbuffer sb;
            build(&sb, -1, f, (enum val_kind)k);
            int rc = decode(sb.data, sb.size);
            if (rc != (ok[f][k] ? 0 : -1))
                fail_msg("field %s, value kind %d: got %d", fields[f], k, rc);
            msgpack_sbuffer_destroy(&sb);
        }
}

static void test_notify_missing_fields(void **state)
{
    (void)state;
    for (int f = 0; f < NFIELDS; f++) {
        msgpack_sbuffer sb;
        build(&sb, f, -1, V_STR);
        int want = (f == 1 || f == 5) ? 0 : -1;   /* user_id and idempotency_key are optional */
        assert_int_equal(decode(sb.data, sb.size), want);
        msgpack_sbuffer_destroy(&sb);
    }
    /* an empty map */
    assert_int_equal(decode("\x80", 1), -1);
}

static void test_notify_empty_strings(void **state)
{
    (void)state;
    for (int f = 2; f < NFIELDS; f++) {
        msgpack_sbuffer sb;
        build(&sb, -1, f, V_EMPTY);
        assert_int_equal(decode(sb.data, sb.size), -1);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_notify_bad_text(void **state)
{
    (void)state;
    static const char *const bad[] = {"a\0b", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
    static const size_t badlen[] = {3, 1, 2, 3, 4, 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        pack_key(&pk, "organization_id");
        msgpack_pack_int64(&pk, 1);
        pack_key(&pk, "routing_type");
        msgpack_pack_str_with_body(&pk, "policies", 8);
        pack_key(&pk, "title");
        msgpack_pack_str_with_body(&pk, bad[i], badlen[i]);
        pack_key(&pk, "message");
        msgpack_pack_str_with_body(&pk, "m", 1);
        assert_int_equal(decode(sb.data, sb.size), -1);
        msgpack_sbuffer_destroy(&sb);
    }
    /* idempotency_key: 255 bytes is the limit */
    char key[257];
    memset(key, 'k', sizeof key);
    for (int n = 255; n <= 256; n++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        for (int f = 0; f < 5; f++) {
            if (f == 1)
                continue;
            pack_key(&pk, fields[f]);
            pack_default(&pk, f);
        }
        pack_key(&pk, "idempotency_key");
        msgpack_pack_str_with_body(&pk, key, (size_t)n);
        assert_int_equal(decode(sb.data, sb.size), n == 255 ? 0 : -1);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_notify_not_a_map(void **state)
{
    (void)state;
    assert_int_equal(decode("\x90", 1), -1);              /* [] */
    assert_int_equal(decode("\x91\x80", 2), -1);          /* [{}] */
    assert_int_equal(decode("\xa1x", 2), -1);             /* "x" */
    assert_int_equal(decode("\x01", 1), -1);              /* 1 */
    assert_int_equal(decode("\xc0", 1), -1);              /* nil */
    assert_int_equal(decode("\xc3", 1), -1);              /* true */
    assert_int_equal(decode("\xc4\x01x", 3), -1);         /* bin */
    /* the valid fields wrapped in an array */
    msgpack_sbuffer sb;
    build(&sb, -1, -1, V_STR);
    char *wrapped = malloc(sb.size + 1);
    wrapped[0] = (char)0x91;
    memcpy(wrapped + 1, sb.data, sb.size);
    assert_int_equal(decode(wrapped, sb.size + 1), -1);
    free(wrapped);
    msgpack_sbuffer_destroy(&sb);
}

static void test_notify_duplicate_and_odd_keys(void **state)
{
    (void)state;
    for (int dup = 0; dup < 3; dup++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, NFIELDS + 2);
        for (int f = 0; f < NFIELDS; f++) {
            pack_key(&pk, fields[f]);
            pack_default(&pk, f);
        }
        const char *k = dup == 0 ? "organization_id" : dup == 1 ? "title" : "unknown";
        pack_key(&pk, "unknown");
        msgpack_pack_int64(&pk, 1);
        pack_key(&pk, k);
        pack_default(&pk, dup == 0 ? 0 : 3);
        assert_int_equal(decode(sb.data, sb.size), -1);
        msgpack_sbuffer_destroy(&sb);
    }
    /* an integer key */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, NFIELDS + 1);
    for (int f = 0; f < NFIELDS; f++) {
        pack_key(&pk, fields[f]);
        pack_default(&pk, f);
    }
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_int64(&pk, 1);
    assert_int_equal(decode(sb.data, sb.size), -1);
    msgpack_sbuffer_destroy(&sb);
    /* a bin key spelled like a field */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_bin_with_body(&pk, "title", 5);
    msgpack_pack_str_with_body(&pk, "t", 1);
    assert_int_equal(decode(sb.data, sb.size), -1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_notify_allocation_bombs(void **state)
{
    (void)state;
    assert_int_equal(decode("\xdd\x0f\xff\xff\xff", 5), -1);   /* array32, 268 M elements */
    assert_int_equal(decode("\xdd\xff\xff\xff\xff", 5), -1);
    assert_int_equal(decode("\xdf\x0f\xff\xff\xff", 5), -1);   /* map32 variant */
    assert_int_equal(decode("\xdf\xff\xff\xff\xff", 5), -1);
    assert_int_equal(decode("\xdc\xff\xff", 3), -1);           /* array16 */
    assert_int_equal(decode("\xde\xff\xff", 3), -1);           /* map16 */
    /* a bomb hidden in the value of an unknown key of an otherwise valid map */
    static const char inner[] = "\x81\xa1x\xdd\x0f\xff\xff\xff";
    assert_int_equal(decode(inner, sizeof inner - 1), -1);
    /* a bomb padded with enough bytes to look plausible at the top */
    size_t n = 4096;
    char *pad = calloc(1, n);
    memcpy(pad, "\xdf\x0f\xff\xff\xff", 5);
    assert_int_equal(decode(pad, n), -1);
    /* array32 with exactly as many elements as bytes remain is structurally fine
     * (still not a map) */
    memcpy(pad, "\xdd\x00\x00\x0f\xfb", 5);
    assert_int_equal(decode(pad, n), -1);
    free(pad);
    /* a str32 claiming more bytes than present */
    assert_int_equal(decode("\xdb\x7f\xff\xff\xff" "abc", 8), -1);
}

/* All fields, with a `message` of n bytes of 'm'. */
static void build_long(msgpack_sbuffer *sb, const char *body, size_t n)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, NFIELDS);
    for (int f = 0; f < NFIELDS; f++) {
        pack_key(&pk, fields[f]);
        if (f == 4)
            msgpack_pack_str_with_body(&pk, body, n);
        else
            pack_default(&pk, f);
    }
}

static void test_notify_oversized(void **state)
{
    (void)state;
    char *body = malloc(NOTIFY_MAX_BYTES);
    memset(body, 'm', NOTIFY_MAX_BYTES);
    msgpack_sbuffer sb;
    build_long(&sb, body, 1000);               /* str16 header, like the sizes below */
    size_t overhead = sb.size - 1000;
    msgpack_sbuffer_destroy(&sb);

    build_long(&sb, body, NOTIFY_MAX_BYTES - overhead);
    assert_int_equal(sb.size, NOTIFY_MAX_BYTES);
    assert_int_equal(decode(sb.data, sb.size), 0);       /* exactly at the limit */
    msgpack_sbuffer_destroy(&sb);

    build_long(&sb, body, NOTIFY_MAX_BYTES - overhead + 1);
    assert_int_equal(sb.size, NOTIFY_MAX_BYTES + 1);
    assert_int_equal(decode(sb.data, sb.size), -1);      /* one byte over */
    msgpack_sbuffer_destroy(&sb);
    free(body);

    /* 10 MB: one str32 filling it */
    size_t huge = 10u * 1024 * 1024;
    char *h = malloc(huge);
    memset(h, 'a', huge);
    size_t n = huge - 5;
    h[0] = (char)0xdb;
    h[1] = (char)(n >> 24);
    h[2] = (char)(n >> 16);
    h[3] = (char)(n >> 8);
    h[4] = (char)n;
    assert_int_equal(decode(h, huge), -1);
    free(h);
}

static void test_notify_deep_nesting(void **state)
{
    (void)state;
    for (int depth = 10; depth <= 40; depth += 5) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, NFIELDS + 1);
        for (int f = 0; f < NFIELDS; f++) {
            pack_key(&pk, fields[f]);
            pack_default(&pk, f);
        }
        pack_key(&pk, "deep");
        for (int i = 0; i < depth; i++) {
            if (i % 2) {
                msgpack_pack_map(&pk, 1);
                pack_key(&pk, "k");
            } else {
                msgpack_pack_array(&pk, 1);
            }
        }
        msgpack_pack_nil(&pk);
        /* the top-level map counts as one level; the limit is 16 */
        assert_int_equal(decode(sb.data, sb.size), depth + 1 <= 16 ? 0 : -1);
        msgpack_sbuffer_destroy(&sb);
    }
    /* 100 nested empty-ish arrays, no map at all */
    char deep[101];
    memset(deep, 0x91, 100);
    deep[100] = (char)0xc0;
    assert_int_equal(decode(deep, sizeof deep), -1);
}

static void test_notify_too_many_keys(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, NFIELDS + 40);
    for (int f = 0; f < NFIELDS; f++) {
        pack_key(&pk, fields[f]);
        pack_default(&pk, f);
    }
    for (int i = 0; i < 40; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "x%d", i);
        msgpack_pack_str_with_body(&pk, k, (size_t)n);
        msgpack_pack_nil(&pk);
    }
    assert_int_equal(decode(sb.data, sb.size), -1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_notify_error_text(void **state)
{
    (void)state;
    struct notify_decoded d;
    char err[128];
    assert_int_equal(notify_decode("\xdd\x0f\xff\xff\xff", 5, &d, err, sizeof err), -1);
    assert_string_equal(err, "container count exceeds remaining bytes");
    msgpack_sbuffer sb;
    build(&sb, 3, -1, V_STR);
    assert_int_equal(notify_decode(sb.data, sb.size, &d, err, sizeof err), -1);
    assert_string_equal(err, "title: missing");
    msgpack_sbuffer_destroy(&sb);
    build(&sb, -1, -1, V_STR);
    assert_int_equal(notify_decode(sb.data, sb.size - 1, &d, err, sizeof err), -1);
    assert_string_equal(err, "truncated message");
    /* a NULL error buffer is allowed */
    assert_int_equal(notify_decode(sb.data, sb.size - 1, &d, NULL, 0), -1);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_every_type),
        cmocka_unit_test(test_encode_null_fields),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_encode_core_types),
        cmocka_unit_test(test_notify_valid_full),
        cmocka_unit_test(test_notify_valid_minimal),
        cmocka_unit_test(test_notify_unknown_keys_ignored),
        cmocka_unit_test(test_notify_random_bytes),
        cmocka_unit_test(test_notify_truncated),
        cmocka_unit_test(test_notify_trailing_bytes),
        cmocka_unit_test(test_notify_wrong_types),
        cmocka_unit_test(test_notify_missing_fields),
        cmocka_unit_test(test_notify_empty_strings),
        cmocka_unit_test(test_notify_bad_text),
        cmocka_unit_test(test_notify_not_a_map),
        cmocka_unit_test(test_notify_duplicate_and_odd_keys),
        cmocka_unit_test(test_notify_allocation_bombs),
        cmocka_unit_test(test_notify_oversized),
        cmocka_unit_test(test_notify_deep_nesting),
        cmocka_unit_test(test_notify_too_many_keys),
        cmocka_unit_test(test_notify_error_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
