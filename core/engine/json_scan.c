/* A JSON validator that builds nothing.
 *
 * Every publish of JSON is validated in the caller's thread. jansson's
 * json_loadb builds a tree (one allocation per value) only for us to throw
 * it away, which made validation the largest cost of a small publish. This
 * scanner accepts exactly what our jansson calls accept (JSON_DECODE_ANY,
 * integers beyond 64 bits read as reals): same grammar, same UTF-8 rules,
 * \u0000 refused, lone surrogate escapes refused, nesting up to jansson's
 * 2048, numbers refused when they overflow a double. The fuzz target
 * fuzz_envelope checks the two agree on every input it makes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l */
#endif
#include "engine/json_scan.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct scanner {
    const unsigned char *p, *end;
} scanner;

static void skip_ws(scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* One UTF-8 sequence starting at p (first byte >= 0x80); returns its
 * length, or 0 if it is not well formed (overlong, surrogate, > U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    size_t n;
    unsigned v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3Fu);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return n;
}

/* At the opening quote. */
#define BYTES_OF(b) (0x0101010101010101ULL * (b))

/* Whether none of 8 bytes needs a look of its own: no quote, backslash,
 * control byte or byte of a multi-byte sequence. Each test is the exact
 * "some byte is below n" trick (a borrow can flag a byte after a true hit,
 * never miss one), so a plain run is never taken for anything else; a
 * false alarm only sends those bytes down the byte-at-a-time path. */
static inline int plain8(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    uint64_t quote = v ^ BYTES_OF(0x22), backslash = v ^ BYTES_OF(0x5C);
    uint64_t hits = ((v - BYTES_OF(0x20)) & ~v) |                 /* < 0x20, or >= 0x80 */
                    ((quote - BYTES_OF(0x01)) & ~quote) |         /* '"' */
                    ((backslash - BYTES_OF(0x01)) & ~backslash) | /* '\\' */
                    v;                                            /* >= 0x80 */
    return !(hits & BYTES_OF(0x80));
}

static int scan_string(scanner *s)
{
    s->p++;
    while (s->p < s->end) {
        /* Most string bytes are plain ASCII: eight at a time (a 1 KiB
         * string validated 4-5 times faster, and every JSON publish,
         * incoming message and json_get_string validates). */
        while (s->end - s->p >= 8 && plain8(s->p))
            s->p += 8;
        if (s->p >= s->end)
            break;
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c == '\\') {
            if (s->end - s->p < 2)
                return -1;
            c = s->p[1];
            if (c == 'u') {
                unsigned v;
                if (s->end - s->p < 6 || hex4(s->p + 2, &v))
                    return -1;
                s->p += 6;
                if (v == 0)
                    return -1;
                if (v >= 0xDC00 && v <= 0xDFFF)
                    return -1;
                if (v >= 0xD800 && v <= 0xDBFF) {
                    unsigned lo;
                    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                        hex4(s->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return -1;
                    s->p += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", c) || !c)
                return -1;
            s->p += 2;
            continue;
        }
        if (c < 0x80) {
            s->p++;
            continue;
        }
        size_t n = utf8_seq(s->p, s->end);
        if (!n)
            return -1;
        s->p += n;
    }
    return -1;
}

static int is_digit(const scanner *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* Whether the number text overflows a double, as jansson's strtod check
 * decides. Short plain numbers cannot; the rest ask strtod in the C locale
 * (jansson converts its decimal point for the locale the same way). */
static int overflows_double(const unsigned char *start, size_t len, int has_exp)
{
    if (!has_exp && len <= 300)
        return 0;
    static locale_t c_locale;
    static int c_locale_tried;
    if (!__atomic_load_n(&c_locale_tried, __ATOMIC_ACQUIRE)) {
        locale_t loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        locale_t expected = (locale_t)0;
        if (!__atomic_compare_exchange_n(&c_locale, &expected, loc, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE) &&
            loc)
            freelocale(loc);
        __atomic_store_n(&c_locale_tried, 1, __ATOMIC_RELEASE);
    }
    locale_t loc = __atomic_load_n(&c_locale, __ATOMIC_ACQUIRE);
    char small[64];
    char *buf = len < sizeof(small) ? small : malloc(len + 1);
    if (!buf)
        return 1;
    memcpy(buf, start, len);
    buf[len] = 0;
    errno = 0;
    double v = loc ? strtod_l(buf, NULL, loc) : strtod(buf, NULL);
    int overflow = errno == ERANGE && isinf(v);
    if (buf != small)
        free(buf);
    return overflow;
}

static int scan_number(scanner *s)
{
    const unsigned char *start = s->p;
    int has_exp = 0;
    if (*s->p == '-')
        s->p++;
    if (!is_digit(s))
        return -1;
    if (*s->p == '0') {
        s->p++;
        if (is_digit(s))
            return -1;
    } else {
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s))
            return -1;
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        has_exp = 1;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s))
            return -1;
        while (is_digit(s))
            s->p++;
    }
    return overflows_double(start, (size_t)(s->p - start), has_exp) ? -1 : 0;
}

static int scan_literal(scanner *s)
{
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(s->end - s->p) >= n && !memcmp(s->p, words[i], n)) {
            s->p += n;
            /* jansson reads a whole run of letters as one word. */
            if (s->p < s->end && ((*s->p | 0x20) >= 'a' && (*s->p | 0x20) <= 'z'))
                return -1;
            return 0;
        }
    }
    return -1;
}

int wsni_json_scan_valid(const char *text, size_t len)
{
    scanner s = {(const unsigned char *)text, (const unsigned char *)text + len};
    /* One bit per open container: set for an object. */
    unsigned char open_is_object[MAX_DEPTH / 8 + 1];
    int depth = 0;

    skip_ws(&s);
value:
    if (s.p >= s.end)
        return 0;
    switch (*s.p) {
    case '{':
    case '[': {
        int is_object = *s.p == '{';
        if (++depth > MAX_DEPTH)
            return 0;
        if (is_object)
            open_is_object[(depth - 1) / 8] |= (unsigned char)(1u << ((depth - 1) % 8));
        else
            open_is_object[(depth - 1) / 8] &= (unsigned char)~(1u << ((depth - 1) % 8));
        s.p++;
        skip_ws(&s);
        if (s.p < s.end && *s.p == (is_object ? '}' : ']')) {
            s.p++;
            depth--;
            goto after_value;
        }
        if (is_object)
            goto key;
        goto value;
    }
    case '"':
        /* jansson counts every value, scalars too, against its limit. */
        if (depth + 1 > MAX_DEPTH || scan_string(&s))
            return 0;
        break;
    case 't':
    case 'f':
    case 'n':
        if (depth + 1 > MAX_DEPTH || scan_literal(&s))
            return 0;
        break;
    default:
        if (depth + 1 > MAX_DEPTH || (*s.p != '-' && !(*s.p >= '0' && *s.p <= '9')))
            return 0;
        if (scan_number(&s))
            return 0;
        break;
    }
after_value:
    skip_ws(&s);
    if (!depth)
        return s.p == s.end;
    if (s.p >= s.end)
        return 0;
    int in_object = (open_is_object[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
    if (*s.p == ',') {
        s.p++;
        skip_ws(&s);
        if (in_object)
            goto key;
        goto value;
    }
    if (*s.p == (in_object ? '}' : ']')) {
        s.p++;
        depth--;
        goto after_value;
    }
    return 0;
key:
    if (s.p >= s.end || *s.p != '"' || scan_string(&s))
        return 0;
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ':')
        return 0;
    s.p++;
    skip_ws(&s);
    goto value;
}

/* --- walking text already known to be valid --------------------------- */

/* Whether 8 bytes hold no quote and no backslash (the exact zero-byte
 * test, as plain8). */
static inline int no_quote8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    uint64_t quote = v ^ BYTES_OF(0x22), backslash = v ^ BYTES_OF(0x5C);
    return !((((quote - BYTES_OF(0x01)) & ~quote) | ((backslash - BYTES_OF(0x01)) & ~backslash)) &
             BYTES_OF(0x80));
}

const char *wsni_json_scan_string_end(const char *p, const char *end)
{
    for (p++;; p++) {
        while (end - p >= 8 && no_quote8(p))
            p += 8;
        while (*p != '"' && *p != '\\')
            p++;
        if (*p == '"')
            return p + 1;
        p++; /* the escaped byte, whatever it is */
    }
}

/* Past the closing quote of the string whose opening quote is at p. */
static const char *skip_string(const char *p, const char *end)
{
    return wsni_json_scan_string_end(p, end);
}

const char *wsni_json_scan_skip(const char *p, const char *end)
{
    if (*p == '"')
        return skip_string(p, end);
    if (*p != '{' && *p != '[') {
        /* a number or a literal: up to the next delimiter */
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
               *p != '\n' && *p != '\r')
            p++;
        return p;
    }
    int depth = 0;
    do {
        char c = *p;
        if (c == '"') {
            p = skip_string(p, end);
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        p++;
    } while (depth);
    return p;
}

static void put_utf8(unsigned v, char **out)
{
    unsigned char *o = (unsigned char *)*out;
    if (v < 0x80) {
        *o++ = (unsigned char)v;
    } else if (v < 0x800) {
        *o++ = (unsigned char)(0xC0 | (v >> 6));
        *o++ = (unsigned char)(0x80 | (v & 0x3F));
    } else if (v < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (v >> 12));
        *o++ = (unsigned char)(0x80 | ((v >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (v & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | (v >> 18));
        *o++ = (unsigned char)(0x80 | ((v >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((v >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (v & 0x3F));
    }
    *out = (char *)o;
}

size_t wsni_json_scan_unescape(const char *quoted, size_t len, char *out)
{
    const char *p = quoted + 1, *end = quoted + len - 1;
    char *o = out;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t plain = (size_t)((bs ? bs : end) - p);
        memcpy(o, p, plain);
        o += plain;
        p += plain;
        if (!bs)
            break;
        char c = p[1];
        p += 2;
        switch (c) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            /* Validated text: hex4 cannot fail here. The zeros are for
             * -O3, which cannot see that and warns. */
            unsigned v = 0, lo = 0;
            hex4((const unsigned char *)p, &v);
            p += 4;
            if (v >= 0xD800 && v <= 0xDBFF) {
                hex4((const unsigned char *)p + 2, &lo);
                p += 6;
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(v, &o);
            break;
        }
        default: /* " \ / */
            *o++ = c;
            break;
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

int wsni_json_scan_object(json_members *it, const char *text, size_t len)
{
    const char *end = text + len;
    const char *p = skip_space(text, end);
    if (p == end || *p != '{')
        return -1;
    it->p = skip_space(p + 1, end);
    it->end = end;
    return 0;
}

int wsni_json_scan_next_member(json_members *it, json_span *key, json_span *value)
{
    const char *p = it->p;
    if (*p == '}')
        return 0;
    key->text = p;
    p = wsni_json_scan_skip(p, it->end);
    key->len = (size_t)(p - key->text);
    /* past the whitespace, the colon and the whitespace again */
    value->text = skip_space(skip_space(p, it->end) + 1, it->end);
    p = wsni_json_scan_skip(value->text, it->end);
    value->len = (size_t)(p - value->text);
    p = skip_space(p, it->end);
    if (*p == ',')
        p = skip_space(p + 1, it->end);
    it->p = p;
    return 1;
}

int wsni_json_scan_string_eq(const json_span *key, const char *name, size_t n)
{
    if (key->len < 2 || *key->text != '"')
        return 0;
    if (!memchr(key->text, '\\', key->len))
        return key->len == n + 2 && !memcmp(key->text + 1, name, n);
    /* Escaped: at most six bytes of text per byte of a name we look for. */
    char decoded[128];
    if (key->len > sizeof(decoded) || n * 6 + 2 < key->len)
        return 0;
    return wsni_json_scan_unescape(key->text, key->len, decoded) == n && !memcmp(decoded, name, n);
}
