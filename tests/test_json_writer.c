/* The JSON writer (wsn_json_*) and WSN_PUBLISH_TRUSTED_JSON: exact text,
 * every misuse refused with its code and the error kept, and trusted text
 * reaching a real client byte for byte. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void check_text(wsn_json_writer *w, const char *want)
{
    size_t len = 0;
    const char *got = wsn_json_writer_text(w, &len);
    CHECK_STR(got, want);
    CHECK_EQ(len, strlen(want));
}

static void test_values(void)
{
    wsn_json_writer *w = wsn_json_writer_new();
    CHECK(w);
    CHECK_OK(wsn_json_begin_object(w));
    CHECK(!wsn_json_writer_text(w, NULL)); /* not whole yet */
    CHECK_OK(wsn_json_key(w, "s", 1));
    CHECK_OK(wsn_json_string(w, "a\"b\\c\n\x01/\xc3\xa9", 10));
    CHECK_OK(wsn_json_key(w, "i", 1));
    CHECK_OK(wsn_json_integer(w, INT64_MIN));
    CHECK_OK(wsn_json_key(w, "n", 1));
    CHECK_OK(wsn_json_number(w, 0.1));
    CHECK_OK(wsn_json_key(w, "whole", 5));
    CHECK_OK(wsn_json_number(w, 3));
    CHECK_OK(wsn_json_key(w, "a", 1));
    CHECK_OK(wsn_json_begin_array(w));
    CHECK_OK(wsn_json_bool(w, 1));
    CHECK_OK(wsn_json_bool(w, 0));
    CHECK_OK(wsn_json_null(w));
    CHECK_OK(wsn_json_begin_array(w));
    CHECK_OK(wsn_json_end_array(w));
    CHECK_OK(wsn_json_begin_object(w));
    CHECK_OK(wsn_json_end_object(w));
    CHECK_OK(wsn_json_raw(w, " { \"x\" : [ 1.50 , 2e3 ] } ", 26));
    CHECK_OK(wsn_json_end_array(w));
    CHECK_OK(wsn_json_key(w, "nul", 3));
    CHECK_OK(wsn_json_string(w, "a\0b", 3));
    CHECK_OK(wsn_json_key(w, "", 0));
    CHECK_OK(wsn_json_string(w, "", 0));
    CHECK_OK(wsn_json_end_object(w));
    check_text(w, "{\"s\":\"a\\\"b\\\\c\\n\\u0001/\xc3\xa9\",\"i\":-9223372036854775808,"
                  "\"n\":0.1,\"whole\":3.0,\"a\":[true,false,null,[],{},{\"x\":[1.50,2e3]}],"
                  "\"nul\":\"a\\u0000b\",\"\":\"\"}");
    CHECK_OK(wsn_json_writer_error(w));

    /* A scalar alone is a whole value; reset reuses the writer. */
    wsn_json_writer_reset(w);
    CHECK(!wsn_json_writer_text(w, NULL));
    CHECK_OK(wsn_json_string(w, "only", 4));
    check_text(w, "\"only\"");
    wsn_json_writer_free(w);
    wsn_json_writer_free(NULL);
}

/* Each misuse answers with its code, and that code sticks until reset. */
static void expect_sticky(wsn_json_writer *w, int want)
{
    CHECK_RC(wsn_json_writer_error(w), want);
    CHECK(!wsn_json_writer_text(w, NULL));
    CHECK_RC(wsn_json_null(w), want);
    CHECK_RC(wsn_json_begin_object(w), want);
    CHECK_RC(wsn_json_key(w, "k", 1), want);
    wsn_json_writer_reset(w);
    CHECK_OK(wsn_json_writer_error(w));
    CHECK_OK(wsn_json_integer(w, 7));
    check_text(w, "7");
    wsn_json_writer_reset(w);
}

static void test_misuse(void)
{
    wsn_json_writer *w = wsn_json_writer_new();
    CHECK(w);

    CHECK_RC(wsn_json_key(w, "k", 1), WSN_EINVAL); /* key outside an object */
    expect_sticky(w, WSN_EINVAL);

    CHECK_OK(wsn_json_begin_object(w));
    CHECK_RC(wsn_json_integer(w, 1), WSN_EINVAL); /* value where a key is due */
    expect_sticky(w, WSN_EINVAL);

    CHECK_OK(wsn_json_begin_object(w));
    CHECK_OK(wsn_json_key(w, "k", 1));
    CHECK_RC(wsn_json_key(w, "k2", 2), WSN_EINVAL); /* key where its value is due */
    expect_sticky(w, WSN_EINVAL);

    CHECK_OK(wsn_json_begin_object(w));
    CHECK_OK(wsn_json_key(w, "k", 1));
    CHECK_RC(wsn_json_end_object(w), WSN_EINVAL); /* a key without its value */
    expect_sticky(w, WSN_EINVAL);

    CHECK_OK(wsn_json_begin_array(w));
    CHECK_RC(wsn_json_end_object(w), WSN_EINVAL); /* mismatched end */
    expect_sticky(w, WSN_EINVAL);

    CHECK_RC(wsn_json_end_array(w), WSN_EINVAL); /* end with nothing open */
    expect_sticky(w, WSN_EINVAL);

    CHECK_OK(wsn_json_null(w));
    CHECK_RC(wsn_json_null(w), WSN_EINVAL); /* a second top-level value */
    expect_sticky(w, WSN_EINVAL);

    CHECK_RC(wsn_json_string(w, "\xff", 1), WSN_EINVAL); /* not UTF-8 */
    expect_sticky(w, WSN_EINVAL);
    CHECK_RC(wsn_json_string(w, "\xed\xa0\x80", 3), WSN_EINVAL); /* a surrogate */
    expect_sticky(w, WSN_EINVAL);
    CHECK_OK(wsn_json_begin_object(w));
    CHECK_RC(wsn_json_key(w, "\xc0\xaf", 2), WSN_EINVAL); /* an overlong key */
    expect_sticky(w, WSN_EINVAL);

    CHECK_RC(wsn_json_number(w, NAN), WSN_EINVAL);
    expect_sticky(w, WSN_EINVAL);
    CHECK_RC(wsn_json_number(w, -INFINITY), WSN_EINVAL);
    expect_sticky(w, WSN_EINVAL);

    CHECK_RC(wsn_json_raw(w, "{\"a\":}", 6), WSN_EINVAL);
    expect_sticky(w, WSN_EINVAL);
    CHECK_RC(wsn_json_raw(w, "1 2", 3), WSN_EINVAL);
    expect_sticky(w, WSN_EINVAL);
    CHECK_RC(wsn_json_raw(w, NULL, 0), WSN_EINVAL);
    expect_sticky(w, WSN_EINVAL);
    CHECK_RC(wsn_json_string(w, NULL, 3), WSN_EINVAL);
    expect_sticky(w, WSN_EINVAL);

    /* Nesting is bounded: the level past the bound is WSN_ELIMIT. */
    for (int i = 0; i < WSN_JSON_MAX_DEPTH; i++)
        CHECK_OK(wsn_json_begin_array(w));
    CHECK_RC(wsn_json_begin_array(w), WSN_ELIMIT);
    expect_sticky(w, WSN_ELIMIT);

    CHECK_RC(wsn_json_null(NULL), WSN_EINVAL);
    CHECK_RC(wsn_json_writer_error(NULL), WSN_EINVAL);
    CHECK(!wsn_json_writer_text(NULL, NULL));
    wsn_json_writer_free(w);
}

/* Depth that the bound allows comes back whole, and large strings grow
 * the buffer without losing a byte. */
static void test_large(void)
{
    wsn_json_writer *w = wsn_json_writer_new();
    CHECK(w);
    for (int i = 0; i < WSN_JSON_MAX_DEPTH; i++)
        CHECK_OK(wsn_json_begin_array(w));
    for (int i = 0; i < WSN_JSON_MAX_DEPTH; i++)
        CHECK_OK(wsn_json_end_array(w));
    size_t len = 0;
    const char *text = wsn_json_writer_text(w, &len);
    CHECK(text);
    CHECK_EQ(len, 2 * WSN_JSON_MAX_DEPTH);
    CHECK_OK(wsn_json_validate(text, len));

    wsn_json_writer_reset(w);
    size_t big = 1 << 20;
    char *s = malloc(big);
    CHECK(s);
    memset(s, 'x', big);
    CHECK_OK(wsn_json_begin_array(w));
    for (int i = 0; i < 4; i++)
        CHECK_OK(wsn_json_string(w, s, big));
    CHECK_OK(wsn_json_end_array(w));
    text = wsn_json_writer_text(w, &len);
    CHECK(text);
    CHECK_EQ(len, 4 * (big + 2) + 3 + 2);
    CHECK_OK(wsn_json_validate(text, len));
    free(s);
    wsn_json_writer_free(w);
}

static void test_trusted_publish(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *ws;
    wsn_client *c = tu_accept(srv, &ws);
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));

    wsn_json_writer *w = wsn_json_writer_new();
    CHECK(w);
    CHECK_OK(wsn_json_begin_object(w));
    CHECK_OK(wsn_json_key(w, "text", 4));
    CHECK_OK(wsn_json_string(w, "hi \"you\"", 8));
    CHECK_OK(wsn_json_end_object(w));
    size_t len;
    const char *text = wsn_json_writer_text(w, &len);
    CHECK_OK(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, text, len, NULL, NULL,
                                   WSN_PUBLISH_TRUSTED_JSON));
    tu_expect_envelope(ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":{\"text\":\"hi \\\"you\\\"\"}}");

    /* Trusted text is passed on as given: not minified. */
    CHECK_OK(wsn_server_publish_ex(srv, c, "c", WSN_TYPE_JSON, "[1, 2]", 6, "m1", NULL,
                                   WSN_PUBLISH_TRUSTED_JSON | WSN_PUBLISH_NONBLOCK));
    tu_expect_envelope(ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":[1, 2],\"message_id\":\"m1\"}");
    /* Without the flag the same text is checked and minified. */
    CHECK_OK(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, "[1, 2]", 6, NULL, NULL, 0));
    tu_expect_envelope(ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":[1,2]}");
    CHECK_RC(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, "[1,", 3, NULL, NULL, 0),
             WSN_EJSON);

    /* Only publish_ex takes the flag. */
    CHECK_RC(wsn_server_publish_wait_ex(srv, "c", WSN_TYPE_JSON, "1", 1, 1, "b", 0,
                                        WSN_PUBLISH_TRUSTED_JSON),
             WSN_EINVAL);
    CHECK_RC(wsn_server_send_raw_ex(srv, c, WSN_TYPE_TEXT, "x", 1, WSN_PUBLISH_TRUSTED_JSON),
             WSN_EINVAL);
    CHECK_RC(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, "1", 1, NULL, NULL, 4),
             WSN_EINVAL);
    /* NULL data is refused, trusted or not. */
    CHECK_RC(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, NULL, 0, NULL, NULL,
                                   WSN_PUBLISH_TRUSTED_JSON),
             WSN_EJSON);

    /* The flag means nothing for text: it is still checked. */
    CHECK_RC(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_TEXT, "\xff", 1, NULL, NULL,
                                   WSN_PUBLISH_TRUSTED_JSON),
             WSN_EINVAL);
    CHECK_OK(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_TEXT, "t", 1, NULL, NULL,
                                   WSN_PUBLISH_TRUSTED_JSON));
    tu_expect_envelope(ws, "{\"channel\":\"c\",\"type\":\"text\",\"time\":\"T\","
                           "\"message\":\"t\"}");

    wsn_json_writer_free(w);
    wsc_free(ws);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* A MessagePack client needs a parse of the text: trusted text that is
 * not JSON is then WSN_EJSON at the call, and the JSON client beside it
 * is not harmed. */
static void test_trusted_invalid_msgpack(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc_opts co;
    memset(&co, 0, sizeof(co));
    co.port = wsn_server_port(srv);
    co.protocol = "wsnotify.msgpack";
    wsc *mp;
    wsn_client *mc = tu_accept_opts(srv, &co, &mp);
    wsc *ws;
    wsn_client *jc = tu_accept(srv, &ws);
    CHECK_OK(wsn_server_subscribe(srv, mc, "c"));
    CHECK_OK(wsn_server_subscribe(srv, jc, "c"));

    CHECK_RC(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, "{oops", 5, NULL, NULL,
                                   WSN_PUBLISH_TRUSTED_JSON),
             WSN_EJSON);
    CHECK_RC(wsn_server_publish_ex(srv, mc, "c", WSN_TYPE_JSON, "{oops", 5, NULL, NULL,
                                   WSN_PUBLISH_TRUSTED_JSON),
             WSN_EJSON);
    /* Valid trusted text reaches both. */
    CHECK_OK(wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, "{\"ok\":1}", 8, NULL, NULL,
                                   WSN_PUBLISH_TRUSTED_JSON));
    tu_expect_envelope(ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":{\"ok\":1}}");
    wsc_msg m;
    tu_recv(mp, &m, TU_TIMEOUT);
    CHECK_EQ(m.opcode, WSC_OP_BINARY);
    wsc_msg_clear(&m);

    wsc_free(mp);
    wsc_free(ws);
    wsn_client_release(mc);
    wsn_client_release(jc);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"values", test_values},
    {"misuse", test_misuse},
    {"large", test_large},
    {"trusted_publish", test_trusted_publish},
    {"trusted_invalid_msgpack", test_trusted_invalid_msgpack},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
