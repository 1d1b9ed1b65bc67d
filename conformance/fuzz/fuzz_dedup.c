/* libFuzzer target: the canonical JSON that batching (publish_wait) uses to
 * de-duplicate messages. The input is split at 0xFF bytes into up to 8
 * messages; each goes through the same steps as batch.c's prepare_value:
 * wsni_json_message_value (validate + minify) then wsni_json_canonical.
 *
 * Invariants: minifying never changes the value (canonical of the minified
 * text equals canonical of the input); the canonical form is valid JSON
 * and a fixed point; two messages get the same key only if they are equal
 * JSON values (json_equal), so de-duplication never merges different
 * messages: equal keys need equal JSON values (json_equal, on values
 * loaded the core's way) and the same integer literals (an integer is
 * exact in JSON; two different ids must never collapse into one).
 *
 * WSN_FUZZ_SKIP_BIGINT=1 skips that last check, to fuzz for other
 * problems while the known core bug it finds is open (integers beyond 64
 * bits load as doubles, so 77777777777777777777770 and ...777 share a key
 * and one of the two messages is dropped; docs/conformance.md). */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "engine/codec_json.h"
#include "fuzz_common.h"

#define MAX_PARTS 8

/* The integer literals of minified JSON text (outside strings), "-0" as
 * "0", sorted and joined by spaces: equal values have equal lists. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *integer_literals(const char *s, size_t len)
{
    char **toks = malloc(sizeof(char *) * (len / 2 + 1));
    size_t n = 0, total = 1;
    int in_str = 0;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            i++;
        } else if (c == '"') {
            in_str = 1;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i + 1;
            while (j < len && s[j] && strchr("0123456789.eE+-", s[j]))
                j++;
            int integer = 1;
            for (size_t k = i; k < j; k++)
                integer &= !(s[k] == '.' || s[k] == 'e' || s[k] == 'E');
            if (integer) {
                const char *t = (j - i == 2 && !strncmp(s + i, "-0", 2)) ? "0" : NULL;
                toks[n] = t ? strdup(t) : strndup(s + i, j - i);
                total += strlen(toks[n]) + 1;
                n++;
            }
            i = j;
        } else {
            i++;
        }
    }
    qsort(toks, n, sizeof(char *), cmp_str);
    char *out = malloc(total);
    out[0] = 0;
    for (size_t k = 0; k < n; k++) {
        strcat(out, toks[k]);
        strcat(out, " ");
        free(toks[k]);
    }
    free(toks);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *keys[MAX_PARTS] = {0}, *ints[MAX_PARTS] = {0};
    json_t *vals[MAX_PARTS] = {0};
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && n < MAX_PARTS; i++) {
        if (i < size && data[i] != 0xFF)
            continue;
        const char *part = (const char *)data + start;
        size_t len = i - start;
        start = i + 1;
        strbuf value;
        wsni_strbuf_init(&value);
        int rc = wsni_json_message_value(WSN_TYPE_JSON, part, len, &value);
        /* The reference: jansson, minus what publish refuses on purpose (a
         * NUL byte, at which jansson would stop reading). */
        json_t *orig = memchr(part, 0, len) ? NULL : wsni_json_load_any(part, len, JSON_DECODE_ANY);
        FUZZ_CHECK((rc == WSN_OK) == (orig != NULL), "validate says %d, jansson %s", rc,
                   orig ? "accepts" : "refuses");
        if (rc != WSN_OK) {
            wsni_strbuf_free(&value);
            continue;
        }
        char *key = wsni_json_canonical(value.data, value.len);
        FUZZ_CHECK(key != NULL, "minified value is not JSON: %s", value.data);
        char *direct = wsni_json_canonical(part, len);
        FUZZ_CHECK(direct && !strcmp(key, direct), "minifying changed the value: %s vs %s", key,
                   direct);
        char *again = wsni_json_canonical(key, strlen(key));
        FUZZ_CHECK(again && !strcmp(again, key), "canonical is not a fixed point: %s vs %s", key,
                   again);
        free(direct);
        free(again);
        keys[n] = key;
        vals[n] = orig;
        /* With a key given twice the text holds values the JSON does not
         * (the last one wins): no literal comparison then. */
        json_t *strict = wsni_json_load_any(part, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES);
        ints[n] = strict ? integer_literals(value.data, value.len) : NULL;
        json_decref(strict);
        wsni_strbuf_free(&value);
        n++;
    }
    static int skip_bigint = -1;
    if (skip_bigint < 0) {
        const char *e = getenv("WSN_FUZZ_SKIP_BIGINT");
        skip_bigint = e && *e == '1';
    }
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (!strcmp(keys[a], keys[b])) {
                FUZZ_CHECK(json_equal(vals[a], vals[b]), "same key %s for different values",
                           keys[a]);
                FUZZ_CHECK(skip_bigint || !ints[a] || !ints[b] || !strcmp(ints[a], ints[b]),
                           "same key %s for messages with different integers: [%s] vs [%s]",
                           keys[a], ints[a], ints[b]);
            }
    for (int i = 0; i < n; i++) {
        free(keys[i]);
        free(ints[i]);
        json_decref(vals[i]);
    }
    return 0;
}
