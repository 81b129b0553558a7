/* tests/fuzz/fuzz_notify: notify_decode (the untrusted `<prefix>notify` payload) on
 * arbitrary bytes, with error buffers of several sizes.
 * Properties: on success every required field is present (organization_id > 0,
 * non-empty NUL-free routing_type, title, message; user_id > 0 when present;
 * idempotency_key 1..255 bytes when present); every strict prefix of an accepted
 * message is rejected; the decoded message packed again (canonically, here) decodes to
 * the same fields; on failure the reason is a NUL-terminated string within errlen.
 * Also event_encode of an event built from the decoded message must give one msgpack
 * object that fills its buffer. */
#include "fuzz.h"

#include <msgpack.h>

#include "events/codec.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void check_same(const struct notify_msg *a, const struct notify_msg *b)
{
    FUZZ_ASSERT(a->organization_id == b->organization_id);
    FUZZ_ASSERT(a->has_user_id == b->has_user_id && a->user_id == b->user_id);
    FUZZ_ASSERT(strcmp(a->routing_type, b->routing_type) == 0);
    FUZZ_ASSERT(strcmp(a->title, b->title) == 0);
    FUZZ_ASSERT(strcmp(a->message, b->message) == 0);
    FUZZ_ASSERT((a->idempotency_key == NULL) == (b->idempotency_key == NULL));
    if (a->idempotency_key)
        FUZZ_ASSERT(strcmp(a->idempotency_key, b->idempotency_key) == 0);
}

static void check_accepted(const uint8_t *data, size_t size, const struct notify_msg *m)
{
    FUZZ_ASSERT(m->organization_id > 0);
    FUZZ_ASSERT(m->routing_type && *m->routing_type && m->title && *m->title && m->message && *m->message);
    FUZZ_ASSERT(m->has_user_id ? m->user_id > 0 : m->user_id == 0);
    if (m->idempotency_key)
        FUZZ_ASSERT(*m->idempotency_key && strlen(m->idempotency_key) <= 255);

    /* strict prefixes are truncated messages (only a few, to keep the target fast) */
    struct notify_decoded d;
    char err[128];
    size_t cuts[3] = {size - 1, size / 2, 1};
    for (int i = 0; i < 3; i++)
        if (cuts[i] > 0 && cuts[i] < size) {
            FUZZ_ASSERT(notify_decode((const char *)data, cuts[i], &d, err, sizeof err) == -1);
            FUZZ_ASSERT(d.buf == NULL);
        }

    /* pack again, canonically, and decode */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    pack_str(&pk, "organization_id");
    msgpack_pack_int64(&pk, m->organization_id);
    pack_str(&pk, "user_id");
    if (m->has_user_id)
        msgpack_pack_int64(&pk, m->user_id);
    else
        msgpack_pack_nil(&pk);
    pack_str(&pk, "routing_type");
    pack_str(&pk, m->routing_type);
    pack_str(&pk, "title");
    pack_str(&pk, m->title);
    pack_str(&pk, "message");
    pack_str(&pk, m->message);
    pack_str(&pk, "idempotency_key");
    if (m->idempotency_key)
        pack_str(&pk, m->idempotency_key);
    else
        msgpack_pack_nil(&pk);
    int rc = notify_decode(sb.data, sb.size, &d, err, sizeof err);
    if (sb.size <= NOTIFY_MAX_BYTES) {
        FUZZ_ASSERT(rc == 0);
        check_same(m, &d.msg);
        notify_decoded_free(&d);
    }
    msgpack_sbuffer_destroy(&sb);

    /* an event made from it encodes to exactly one msgpack object */
    json_t *dat = json_pack("{s:s,s:s,s:I}", "title", m->title, "message", m->message, "organization_id",
                            (json_int_t)m->organization_id);
    if (dat) { /* NULL when a string is not valid UTF-8 for jansson: cannot happen after text_ok */
        char *buf = NULL;
        size_t len = 0;
        FUZZ_ASSERT(event_encode(m->routing_type, "fuzz-id", 1700000000000, m->organization_id, "tenant",
                                 m->has_user_id ? m->user_id : 0, dat, &buf, &len) == 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        FUZZ_ASSERT(msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len);
        FUZZ_ASSERT(u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 8);
        msgpack_unpacked_destroy(&u);
        free(buf);
        json_decref(dat);
    } else {
        FUZZ_ASSERT(0 && "decoded text that jansson refuses");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t errlens[] = {128, 16, 1, 0};
    struct notify_decoded d;
    char err[128];
    int first = 0;
    for (size_t i = 0; i < sizeof errlens / sizeof errlens[0]; i++) {
        memset(err, 'x', sizeof err);
        int rc = notify_decode((const char *)data, size, &d, errlens[i] ? err : NULL, errlens[i]);
        FUZZ_ASSERT(rc == 0 || rc == -1);
        if (i == 0)
            first = rc;
        FUZZ_ASSERT(rc == first);
        if (rc == 0) {
            if (i == 0)
                check_accepted(data, size, &d.msg);
            notify_decoded_free(&d);
            FUZZ_ASSERT(d.buf == NULL);
        } else {
            FUZZ_ASSERT(d.buf == NULL);
            fuzz_check_cstr(err, errlens[i]);
            if (errlens[i] > 1)
                FUZZ_ASSERT(err[0] != '\0');
        }
    }
    return 0;
}
