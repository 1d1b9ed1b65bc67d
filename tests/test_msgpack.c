/* The wsnotify.msgpack subprotocol: MessagePack maps with the envelope's
 * keys in binary frames, both ways; JSON clients on the same channel keep
 * getting JSON. Decoded with msgpack-c. */
#define _GNU_SOURCE
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static wsn_client *accept_mp(wsn_server *srv, wsc **w)
{
    wsc_opts co;
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.protocol = "wsnotify.msgpack";
    return tu_accept_opts(srv, &co, w);
}

static int str_eq(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static const char *type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "uint";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32: return "float32";
    case MSGPACK_OBJECT_FLOAT64: return "float64";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "?";
}

/* Receives one binary frame and unpacks it as a map whose keys are exactly
 * `keys` (in order). Values are returned in vals (valid until
 * msgpack_unpacked_destroy(up)). */
static void recv_map(wsc *w, msgpack_unpacked *up, wsc_msg *m, const char **keys,
                     size_t nkeys, msgpack_object *vals)
{
    size_t off = 0, i;
    msgpack_unpack_return r;
    msgpack_object_map *map;
    tu_recv(w, m, TU_TIMEOUT);
    CHECK_MSG(m->opcode == WSC_OP_BINARY, "msgpack client got opcode %d: %.100s",
              m->opcode, (const char *)m->data);
    msgpack_unpacked_init(up);
    r = msgpack_unpack_next(up, (const char *)m->data, m->len, &off);
    CHECK_MSG(r == MSGPACK_UNPACK_SUCCESS, "not MessagePack (%d)", (int)r);
    CHECK_MSG(off == m->len, "%zu trailing bytes after the map", m->len - off);
    CHECK_MSG(up->data.type == MSGPACK_OBJECT_MAP, "top level is %s, want map",
              type_name(up->data.type));
    map = &up->data.via.map;
    CHECK_MSG(map->size == nkeys, "map has %u keys, want %zu", map->size, nkeys);
    for (i = 0; i < nkeys; i++) {
        CHECK_MSG(str_eq(&map->ptr[i].key, keys[i]), "key %zu is not '%s'", i,
                  keys[i]);
        vals[i] = map->ptr[i].val;
    }
}

static void check_time(const msgpack_object *o)
{
    char buf[64];
    CHECK_MSG(o->type == MSGPACK_OBJECT_STR, "time is %s", type_name(o->type));
    CHECK(o->via.str.size < sizeof buf);
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    CHECK_MSG(tu_is_rfc3339nano(buf), "time '%s'", buf);
}

static void test_negotiated(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = accept_mp(srv, &w);
    wsc_opts co;
    wsc *w2;
    CHECK_STR(wsc_subprotocol(w), "wsnotify.msgpack");
    CHECK_STR(wsn_client_subprotocol(c), "wsnotify.msgpack");
    /* an unknown subprotocol alone is refused; with a known one the known
     * one is chosen */
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.protocol = "foo";
    tu_note("unknown subprotocol: HTTP %d", tu_connect_refused(&co));
    co.protocol = "foo, wsnotify.json";
    w2 = tu_connect_opts(&co);
    CHECK_STR(wsc_subprotocol(w2), "wsnotify.json");
    wsc_free(w2);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_envelope_json(void)
{
    static const char *keys[] = {"channel", "type", "time", "message", "message_id",
                                 "reply_to_id"};
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = accept_mp(srv, &w);
    msgpack_unpacked up;
    msgpack_object v[6], *msg;
    wsc_msg m;
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    {
        const char *j = "{\"a\":1,\"b\":[true,null,\"s\",-2,1.5]}";
        CHECK_OK(wsn_server_publish_with_type(srv, "c", WSN_TYPE_JSON, j, strlen(j),
                                              "m1", "r1"));
    }
    recv_map(w, &up, &m, keys, 6, v);
    CHECK(str_eq(&v[0], "c"));
    CHECK(str_eq(&v[1], "json"));
    check_time(&v[2]);
    CHECK(str_eq(&v[4], "m1"));
    CHECK(str_eq(&v[5], "r1"));
    msg = &v[3];
    CHECK_MSG(msg->type == MSGPACK_OBJECT_MAP && msg->via.map.size == 2,
              "message is %s", type_name(msg->type));
    CHECK(str_eq(&msg->via.map.ptr[0].key, "a"));
    CHECK(msg->via.map.ptr[0].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    CHECK_EQ(msg->via.map.ptr[0].val.via.u64, 1);
    CHECK(str_eq(&msg->via.map.ptr[1].key, "b"));
    {
        msgpack_object *arr = &msg->via.map.ptr[1].val;
        CHECK(arr->type == MSGPACK_OBJECT_ARRAY && arr->via.array.size == 5);
        CHECK(arr->via.array.ptr[0].type == MSGPACK_OBJECT_BOOLEAN &&
              arr->via.array.ptr[0].via.boolean);
        CHECK(arr->via.array.ptr[1].type == MSGPACK_OBJECT_NIL);
        CHECK(str_eq(&arr->via.array.ptr[2], "s"));
        CHECK(arr->via.array.ptr[3].type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
              arr->via.array.ptr[3].via.i64 == -2);
        CHECK((arr->via.array.ptr[4].type == MSGPACK_OBJECT_FLOAT64 ||
               arr->via.array.ptr[4].type == MSGPACK_OBJECT_FLOAT32) &&
              arr->via.array.ptr[4].via.f64 == 1.5);
    }
    msgpack_unpacked_destroy(&up);
    wsc_msg_clear(&m);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_envelope_binary_text(void)
{
    static const char *keys[] = {"channel", "type", "time", "message"};
    static const unsigned char bin[] = {0, 0xff, 1, 0x80};
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = accept_mp(srv, &w);
    msgpack_unpacked up;
    msgpack_object v[4];
    wsc_msg m;
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    CHECK_OK(wsn_server_publish_with_type(srv, "c", WSN_TYPE_BINARY, bin, sizeof bin,
                                          NULL, NULL));
    CHECK_OK(wsn_server_publish_with_type(srv, "c", WSN_TYPE_TEXT, "h\xc3\xa9", 3,
                                          "", ""));
    recv_map(w, &up, &m, keys, 4, v);
    CHECK(str_eq(&v[1], "binary"));
    CHECK_MSG(v[3].type == MSGPACK_OBJECT_BIN, "binary message is %s",
              type_name(v[3].type));
    CHECK_MEM(v[3].via.bin.ptr, v[3].via.bin.size, bin, sizeof bin);
    msgpack_unpacked_destroy(&up);
    wsc_msg_clear(&m);
    recv_map(w, &up, &m, keys, 4, v);
    CHECK(str_eq(&v[1], "text"));
    CHECK(str_eq(&v[3], "h\xc3\xa9"));
    msgpack_unpacked_destroy(&up);
    wsc_msg_clear(&m);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void test_incoming(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = accept_mp(srv, &w);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    wsn_event *ev;
    size_t len;
    const unsigned char *p;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* {"type":"json","channel":"c","message":{"x":1},"message_id":"m1"} */
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "type");
    pack_str(&pk, "json");
    pack_str(&pk, "channel");
    pack_str(&pk, "c");
    pack_str(&pk, "message");
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "x");
    msgpack_pack_int(&pk, 1);
    pack_str(&pk, "message_id");
    pack_str(&pk, "m1");
    CHECK_WSC(wsc_send_binary(w, sb.data, sb.size));
    msgpack_sbuffer_clear(&sb);
    /* {"type":"binary","message":<bin>} */
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "type");
    pack_str(&pk, "binary");
    pack_str(&pk, "message");
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "\x00\x01\x02", 3);
    CHECK_WSC(wsc_send_binary(w, sb.data, sb.size));
    msgpack_sbuffer_destroy(&sb);

    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_JSON);
    CHECK_STR(wsn_event_channel(ev), "c");
    CHECK_STR(wsn_event_message_id(ev), "m1");
    CHECK_STR((const char *)wsn_event_payload(ev, &len), "{\"x\":1}");
    wsn_event_free(ev);
    ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    CHECK_EQ(wsn_event_message_type(ev), WSN_TYPE_BINARY);
    p = wsn_event_payload(ev, &len);
    CHECK_MEM(p, len, "\x00\x01\x02", 3);
    CHECK_STR(wsn_event_channel(ev), "");
    wsn_event_free(ev);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_mixed_subscribers(void)
{
    static const char *keys[] = {"channel", "type", "time", "message"};
    wsn_server *srv = tu_server(NULL);
    wsc *wm, *wj;
    wsn_client *cm = accept_mp(srv, &wm), *cj = tu_accept(srv, &wj);
    msgpack_unpacked up;
    msgpack_object v[4];
    wsc_msg m;
    int i;
    CHECK_OK(wsn_server_subscribe(srv, cm, "c"));
    CHECK_OK(wsn_server_subscribe(srv, cj, "c"));
    for (i = 0; i < 20; i++) {
        char msg[16];
        snprintf(msg, sizeof msg, "%d", i);
        CHECK_OK(wsn_server_publish(srv, "c", msg));
    }
    for (i = 0; i < 20; i++) {
        char *want = tu_strdupf("{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                                "\"message\":%d}",
                                i);
        tu_expect_envelope(wj, want);
        free(want);
        recv_map(wm, &up, &m, keys, 4, v);
        CHECK(v[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
        CHECK_EQ(v[3].via.u64, i);
        msgpack_unpacked_destroy(&up);
        wsc_msg_clear(&m);
    }
    wsc_free(wm);
    wsc_free(wj);
    wsn_client_release(cm);
    wsn_client_release(cj);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"negotiated", test_negotiated},
    {"envelope_json", test_envelope_json},
    {"envelope_binary_text", test_envelope_binary_text},
    {"incoming", test_incoming},
    {"mixed_subscribers", test_mixed_subscribers},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
