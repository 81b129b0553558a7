/* events/codec: owns the wire format of events and notify messages (SPEC section 6).
 * event_encode turns an event and its JSON data into a msgpack map with str keys and
 * core types only (map, array, str, int, float64, bool, nil). notify_decode is the
 * strict reader for untrusted `<prefix>notify` payloads: a size cap, a structural
 * pre-scan (no container may claim more elements than bytes remain, bounded depth;
 * this defuses msgpack-c's up-front allocation for huge counts), then msgpack-c, then
 * field-by-field checks. Pure: no I/O, no logging, no global state. */
#include "events/codec.h"

#include <limits.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENT_DATA_MAX_DEPTH 16   /* nesting of containers inside `data` */
#define NOTIFY_MAX_DEPTH 16       /* containers, top-level map included */
#define NOTIFY_MAX_KEYS 32        /* top-level pairs (duplicate check is quadratic) */
#define NOTIFY_KEY_MAX 255        /* idempotency_key bytes */

/* ---- encoding -------------------------------------------------------------- */

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str_with_body(pk, s, n);
}

static int pack_json(msgpack_packer *pk, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (depth >= EVENT_DATA_MAX_DEPTH)
            return -1;
        size_t n = json_object_size(v);
        if (n > UINT32_MAX || msgpack_pack_map(pk, n) != 0)
            return -1;
        const char *key;
        size_t klen;
        json_t *val;
        size_t written = 0;
        json_object_keylen_foreach((json_t *)v, key, klen, val) {
            if (msgpack_pack_str_with_body(pk, key, klen) != 0 || pack_json(pk, val, depth + 1) != 0)
                return -1;
            written++;
        }
        return written == n ? 0 : -1;
    }
    case JSON_ARRAY: {
        if (depth >= EVENT_DATA_MAX_DEPTH)
            return -1;
        size_t n = json_array_size(v);
        if (n > UINT32_MAX || msgpack_pack_array(pk, n) != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (pack_json(pk, json_array_get(v, i), depth + 1) != 0)
                return -1;
        return 0;
    }
    case JSON_STRING:
        return msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, (int64_t)json_integer_value(v));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    }
    return -1;
}

int event_encode(const char *type, const char *id, int64_t time_ms, long long organization_id,
                 const char *tenant, long long actor_user_id, const json_t *data, char **out,
                 size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!type || !id || (data && !json_is_object(data)))
        return -1;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    int rc = 0;
    rc |= msgpack_pack_map(&pk, 8);
    rc |= pack_cstr(&pk, "v");
    rc |= msgpack_pack_int64(&pk, 1);
    rc |= pack_cstr(&pk, "type");
    rc |= pack_cstr(&pk, type);
    rc |= pack_cstr(&pk, "id");
    rc |= pack_cstr(&pk, id);
    rc |= pack_cstr(&pk, "time");
    rc |= msgpack_pack_int64(&pk, time_ms);
    rc |= pack_cstr(&pk, "organization_id");
    rc |= msgpack_pack_int64(&pk, organization_id);
    rc |= pack_cstr(&pk, "tenant");
    rc |= tenant ? pack_cstr(&pk, tenant) : msgpack_pack_nil(&pk);
    rc |= pack_cstr(&pk, "actor_user_id");
    rc |= actor_user_id > 0 ? msgpack_pack_int64(&pk, actor_user_id) : msgpack_pack_nil(&pk);
    rc |= pack_cstr(&pk, "data");
    if (data)
        rc |= pack_json(&pk, data, 0);
    else
        rc |= msgpack_pack_map(&pk, 0);

    if (rc != 0 || sb.size == 0) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    *len = sb.size;
    *out = msgpack_sbuffer_release(&sb);   /* malloc'd; the caller free()s */
    return 0;
}

/* ---- notify decoding --------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *why)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", why);
}

static uint64_t be_read(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Walk the whole msgpack structure without allocating: every header must be
 * complete, every payload present, no container may claim more elements than bytes
 * remain (each element takes at least one byte), nesting is bounded, and exactly one
 * object fills the input. Returns 0 or -1 with a reason. */
static int prescan(const unsigned char *p, size_t len, char *err, size_t errlen)
{
    uint64_t stack[NOTIFY_MAX_DEPTH];   /* elements left in each open container */
    int depth = 0;
    uint64_t need = 1;                  /* objects still expected, all levels */
    size_t off = 0;

    while (need > 0) {
        if (off >= len) {
            set_err(err, errlen, "truncated message");
            return -1;
        }
        unsigned char b = p[off++];
        need--;
        if (depth > 0)
            stack[depth - 1]--;

        uint64_t skip = 0;      /* payload bytes after the header */
        uint64_t children = 0;  /* objects contained, for containers */
        bool container = false;
        int lenbytes = 0;       /* size of a length field that follows b */

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b >= 0x80 && b <= 0x8f) {
            container = true;
            children = 2u * (uint64_t)(b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            container = true;
            children = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;              /* bin8, str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;              /* bin16, str16 */
            case 0xc6: case 0xdb: lenbytes = 4; break;              /* bin32, str32 */
            case 0xc7: lenbytes = 1; skip = 1; break;               /* ext8: len, type */
            case 0xc8: lenbytes = 2; skip = 1; break;
            case 0xc9: lenbytes = 4; skip = 1; break;
            case 0xca: skip = 4; break;                             /* float32 */
            case 0xcb: skip = 8; break;                             /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                             /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xdd: case 0xde: case 0xdf:
                container = true;
                lenbytes = (b == 0xdc || b == 0xde) ? 2 : 4;
                break;
            default: /* 0xc1 */
                set_err(err, errlen, "invalid msgpack byte");
                return -1;
            }
            if (lenbytes) {
                if ((size_t)lenbytes > len - off) {
                    set_err(err, errlen, "truncated message");
                    return -1;
                }
                uint64_t n = be_read(p + off, lenbytes);
                off += (size_t)lenbytes;
                if (container)
                    children = (b == 0xde || b == 0xdf) ? 2 * n : n;
                else
                    skip += n;
            }
        }

        if (skip > len - off) {
            set_err(err, errlen, "truncated message");
            return -1;
        }
        off += (size_t)skip;

        if (container) {
            if (children > len - off || need + children > len - off) {
                set_err(err, errlen, "container count exceeds remaining bytes");
                return -1;
            }
            need += children;
            if (children > 0) {
                if (depth >= NOTIFY_MAX_DEPTH) {
                    set_err(err, errlen, "nesting too deep");
                    return -1;
                }
                stack[depth++] = children;
            } else if (depth >= NOTIFY_MAX_DEPTH) {
                set_err(err, errlen, "nesting too deep");
                return -1;
            }
        }
        while (depth > 0 && stack[depth - 1] == 0)
            depth--;
    }
    if (off != len) {
        set_err(err, errlen, "trailing bytes after message");
        return -1;
    }
    return 0;
}

static bool key_is(const msgpack_object_str *k, const char *name)
{
    size_t n = strlen(name);
    return k->size == n && memcmp(k->ptr, name, n) == 0;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) and no NUL byte, since
 * the strings are handed out NUL-terminated. */
static bool text_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (k > n - i - 1)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* A required or optional positive integer. */
static int want_positive(const msgpack_object *o, long long *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 == 0 || o->via.u64 > (uint64_t)LLONG_MAX)
        return -1;
    *out = (long long)o->via.u64;
    return 0;
}

int notify_decode(const char *buf, size_t len, struct notify_decoded *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!buf || len == 0) {
        set_err(err, errlen, "empty message");
        return -1;
    }
    if (len > NOTIFY_MAX_BYTES) {
        set_err(err, errlen, "message too large");
        return -1;
    }
    if (prescan((const unsigned char *)buf, len, err, errlen) != 0)
        return -1;

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
    int rc = -1;
    if (r != MSGPACK_UNPACK_SUCCESS || off != len) {
        set_err(err, errlen, "msgpack parse error");
        goto done;
    }
    const msgpack_object *top = &u.data;
    if (top->type != MSGPACK_OBJECT_MAP) {
        set_err(err, errlen, "top level is not a map");
        goto done;
    }
    uint32_t n = top->via.map.size;
    if (n > NOTIFY_MAX_KEYS) {
        set_err(err, errlen, "too many keys");
        goto done;
    }
    const msgpack_object_kv *kv = top->via.map.ptr;
    for (uint32_t i = 0; i < n; i++) {
        if (kv[i].key.type != MSGPACK_OBJECT_STR) {
            set_err(err, errlen, "non-string key");
            goto done;
        }
        for (uint32_t j = 0; j < i; j++)
            if (kv[j].key.via.str.size == kv[i].key.via.str.size &&
                (kv[i].key.via.str.size == 0 || /* "" has a NULL ptr: no memcmp(NULL, ...) */
                 memcmp(kv[j].key.via.str.ptr, kv[i].key.via.str.ptr, kv[i].key.via.str.size) == 0)) {
                set_err(err, errlen, "duplicate key");
                goto done;
            }
    }

    /* Text fields, in the order they are laid out in out->buf. */
    static const char *const text_names[] = {"routing_type", "title", "message", "idempotency_key"};
    const msgpack_object_str *text[4] = {NULL, NULL, NULL, NULL};
    bool have_org = false;
    long long org = 0, user = 0;
    bool has_user = false;

    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object_str *k = &kv[i].key.via.str;
        const msgpack_object *v = &kv[i].val;
        if (key_is(k, "organization_id")) {
            if (want_positive(v, &org) != 0) {
                set_err(err, errlen, "organization_id: not a positive integer");
                goto done;
            }
            have_org = true;
        } else if (key_is(k, "user_id")) {
            if (v->type == MSGPACK_OBJECT_NIL)
                continue;
            if (want_positive(v, &user) != 0) {
                set_err(err, errlen, "user_id: not a positive integer or nil");
                goto done;
            }
            has_user = true;
        } else {
            for (int t = 0; t < 4; t++) {
                if (!key_is(k, text_names[t]))
                    continue;
                if (t == 3 && v->type == MSGPACK_OBJECT_NIL)
                    break;
                char why[64];
                if (v->type != MSGPACK_OBJECT_STR) {
                    snprintf(why, sizeof why, "%s: not a string", text_names[t]);
                    set_err(err, errlen, why);
                    goto done;
                }
                if (v->via.str.size == 0) {
                    snprintf(why, sizeof why, "%s: empty", text_names[t]);
                    set_err(err, errlen, why);
                    goto done;
                }
                if (t == 3 && v->via.str.size > NOTIFY_KEY_MAX) {
                    set_err(err, errlen, "idempotency_key: longer than 255 bytes");
                    goto done;
                }
                if (!text_ok(v->via.str.ptr, v->via.str.size)) {
                    snprintf(why, sizeof why, "%s: invalid UTF-8 or NUL byte", text_names[t]);
                    set_err(err, errlen, why);
                    goto done;
                }
                text[t] = &v->via.str;
                break;
            }
        }
    }
    if (!have_org) {
        set_err(err, errlen, "organization_id: missing");
        goto done;
    }
    for (int t = 0; t < 3; t++)
        if (!text[t]) {
            char why[64];
            snprintf(why, sizeof why, "%s: missing", text_names[t]);
            set_err(err, errlen, why);
            goto done;
        }

    size_t total = 0;
    for (int t = 0; t < 4; t++)
        if (text[t])
            total += text[t]->size + 1;
    char *store = malloc(total);
    if (!store) {
        set_err(err, errlen, "out of memory");
        goto done;
    }
    const char *copies[4] = {NULL, NULL, NULL, NULL};
    char *w = store;
    for (int t = 0; t < 4; t++) {
        if (!text[t])
            continue;
        memcpy(w, text[t]->ptr, text[t]->size);
        w[text[t]->size] = '\0';
        copies[t] = w;
        w += text[t]->size + 1;
    }
    out->buf = store;
    out->msg.organization_id = org;
    out->msg.has_user_id = has_user;
    out->msg.user_id = has_user ? user : 0;
    out->msg.routing_type = copies[0];
    out->msg.title = copies[1];
    out->msg.message = copies[2];
    out->msg.idempotency_key = copies[3];
    rc = 0;
done:
    msgpack_unpacked_destroy(&u);
    return rc;
}

void notify_decoded_free(struct notify_decoded *d)
{
    if (!d)
        return;
    free(d->buf);
    memset(d, 0, sizeof *d);
}
