/* Tests for base/json: parse -> serialise round trips, unicode escapes, numbers and the int64
 * flag, error messages with byte offsets, and the json_buf writer. */
#include "base/json.h"
#include "check.h"

#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parses text, serialises the tree and compares with want (NULL: want == text). */
static void check_roundtrip(const char *text, const char *want) {
    json_value *v = NULL;
    error e = {0};
    int rc = json_parse(text, strlen(text), &v, &e);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "  parse of %s failed: %s\n", text, e.msg);
        return;
    }
    json_buf b = {0};
    CHECK_EQ(json_buf_value(&b, v), 0);
    CHECK_STR(b.data, want ? want : text);
    /* the serialised text parses to the same serialisation again */
    json_value *v2 = NULL;
    CHECK_EQ(json_parse(b.data, b.len, &v2, &e), 0);
    json_buf b2 = {0};
    json_buf_value(&b2, v2);
    CHECK_STR(b2.data, b.data);
    json_buf_free(&b2);
    json_buf_free(&b);
    json_free(v2);
    json_free(v);
}

/* Parsing text must fail with a message containing want. */
static void check_error(const char *text, size_t n, const char *want) {
    json_value *v = (json_value *)1;
    error e = {0};
    int rc = json_parse(text, n, &v, &e);
    CHECK_EQ(rc, HDLM_EINVAL);
    CHECK(v == NULL);
    CHECK_CONTAINS(e.msg, want);
    if (!rc) json_free(v);
}

static json_value *parse_ok(const char *text) {
    json_value *v = NULL;
    error e = {0};
    if (json_parse(text, strlen(text), &v, &e)) fprintf(stderr, "unexpected: %s\n", e.msg);
    CHECK(v != NULL);
    return v;
}

static void test_roundtrips(void) {
    check_roundtrip("null", NULL);
    check_roundtrip("true", NULL);
    check_roundtrip("[]", NULL);
    check_roundtrip("{}", NULL);
    check_roundtrip("{\"b\":1,\"a\":[true,false,null,\"x\"],\"c\":{\"d\":-2.5}}", NULL);
    /* whitespace is dropped, key order kept */
    check_roundtrip(" { \"z\" : [ 1 , 2 ] ,\n\t\"a\" : { } }\r\n", "{\"z\":[1,2],\"a\":{}}");
    /* escapes are normalised: \/ is just '/', \u0041 is 'A', control characters stay escaped */
    check_roundtrip("\"a\\/b\\u0041\\n\\t\\\"\\\\\\u0001\"", "\"a/bA\\n\\t\\\"\\\\\\u0001\"");
    /* numbers: exponents and fractions come back in shortest round-trip form */
    check_roundtrip("[1.5e3,0.1,-0,1E-7,123456789012345678]",
                    "[1500,0.1,-0,1e-07,123456789012345678]");
    /* non-ASCII UTF-8 passes through unchanged */
    check_roundtrip("\"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\"", NULL);
}

static void test_access(void) {
    json_value *v =
        parse_ok("{\"name\":\"x\",\"shape\":[3,4],\"ok\":true,\"none\":null,\"f\":2.25}");
    CHECK_EQ(json_type(v), JSON_OBJECT);
    CHECK_EQ(json_len(v), 5);
    CHECK_STR(json_key_at(v, 1), "shape");
    CHECK_EQ(json_type(json_value_at(v, 1)), JSON_ARRAY);
    CHECK(json_key_at(v, 5) == NULL);
    CHECK(json_value_at(v, 5) == NULL);
    CHECK_STR(json_string(json_get(v, "name")), "x");
    CHECK_EQ(json_string_len(json_get(v, "name")), 1);
    const json_value *shape = json_get(v, "shape");
    CHECK_EQ(json_len(shape), 2);
    CHECK_EQ(json_int(json_at(shape, 0)), 3);
    CHECK_EQ(json_int(json_at(shape, 1)), 4);
    CHECK(json_at(shape, 2) == NULL);
    CHECK_EQ(json_bool(json_get(v, "ok")), 1);
    CHECK_EQ(json_type(json_get(v, "none")), JSON_NULL);
    CHECK_NEAR(json_number(json_get(v, "f")), 2.25, 0);
    CHECK_EQ(json_is_int(json_get(v, "f")), 0);
    /* missing keys and wrong kinds give NULL / JSON_NONE / 0, so lookups chain */
    CHECK(json_get(v, "missing") == NULL);
    CHECK_EQ(json_type(json_get(v, "missing")), JSON_NONE);
    CHECK(json_get(shape, "name") == NULL);
    CHECK(json_at(v, 0) == NULL);
    CHECK(json_string(shape) == NULL);
    CHECK_EQ(json_len(json_get(v, "name")), 0);
    CHECK_EQ(json_type(json_at(json_get(json_get(v, "a"), "b"), 3)), JSON_NONE);
    CHECK_STR(json_type_name(JSON_OBJECT), "an object");
    json_free(v);
    json_free(NULL);
}

static void test_unicode(void) {
    /* \u escapes become UTF-8: BMP (2- and 3-byte) and a surrogate pair (U+1F600, 4 bytes) */
    json_value *v = parse_ok("\"\\u00e9\\u20AC\\ud83d\\ude00\"");
    CHECK_STR(json_string(v), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
    CHECK_EQ(json_string_len(v), 9);
    json_free(v);
    /* highest code point U+10FFFF = \uDBFF\uDFFF */
    v = parse_ok("\"\\uDBFF\\uDFFF\"");
    CHECK_STR(json_string(v), "\xF4\x8F\xBF\xBF");
    json_free(v);
    /* \u0000 is an embedded NUL: the length says 3 */
    v = parse_ok("\"a\\u0000b\"");
    CHECK_EQ(json_string_len(v), 3);
    CHECK_EQ(json_string(v)[1], 0);
    CHECK_EQ(json_string(v)[2], 'b');
    json_buf b = {0};
    json_buf_value(&b, v);
    CHECK_STR(b.data, "\"a\\u0000b\"");
    json_buf_free(&b);
    json_free(v);
    /* keys are unescaped too */
    v = parse_ok("{\"\\u0041b\":1}");
    CHECK(json_get(v, "Ab") != NULL);
    json_free(v);
}

static void test_numbers(void) {
    json_value *v = parse_ok("-0");
    CHECK(json_number(v) == 0 && signbit(json_number(v)));
    CHECK_EQ(json_is_int(v), 1);
    CHECK_EQ(json_int(v), 0);
    json_free(v);

    v = parse_ok("1e300");
    CHECK(json_number(v) == 1e300);
    CHECK_EQ(json_is_int(v), 0);
    json_free(v);

    v = parse_ok("9007199254740992"); /* 2^53 */
    CHECK_EQ(json_is_int(v), 1);
    CHECK_EQ(json_int(v), 9007199254740992LL);
    CHECK(json_number(v) == 9007199254740992.0);
    json_free(v);

    /* beyond 2^53 the double rounds but the int64 stays exact */
    v = parse_ok("9007199254740993");
    CHECK_EQ(json_int(v), 9007199254740993LL);
    CHECK(json_number(v) == 9007199254740992.0);
    json_free(v);

    v = parse_ok("[9223372036854775807,-9223372036854775808,9223372036854775808,1.0,2e0]");
    CHECK_EQ(json_is_int(json_at(v, 0)), 1);
    CHECK(json_int(json_at(v, 0)) == INT64_MAX);
    CHECK_EQ(json_is_int(json_at(v, 1)), 1);
    CHECK(json_int(json_at(v, 1)) == INT64_MIN);
    CHECK_EQ(json_is_int(json_at(v, 2)), 0); /* does not fit int64: a double only */
    CHECK(json_number(json_at(v, 2)) == 9223372036854775808.0);
    CHECK_EQ(json_is_int(json_at(v, 3)), 0); /* "1.0" is not integer text */
    CHECK_EQ(json_is_int(json_at(v, 4)), 0);
    CHECK(json_number(json_at(v, 4)) == 2.0);
    json_free(v);

    v = parse_ok("[0.1, 2.5e-3, -1E+2, 1e-400, 4.9e-324]");
    CHECK(json_number(json_at(v, 0)) == 0.1);
    CHECK(json_number(json_at(v, 1)) == 2.5e-3);
    CHECK(json_number(json_at(v, 2)) == -100.0);
    CHECK(json_number(json_at(v, 3)) == 0.0); /* underflow rounds to zero; not an error */
    CHECK(json_number(json_at(v, 4)) == 4.9e-324);
    json_free(v);
}

static void test_errors(void) {
    check_error("[1,2,]", 6, "JSON: trailing comma at offset 4");
    check_error("{\"a\":1,}", 8, "JSON: trailing comma at offset 6");
    check_error("{\"a\" 1}", 7, "JSON: expected ':' at offset 5 (found '1')");
    check_error("\"abc", 4, "JSON: unterminated string at offset 0");
    check_error("[\"ab\\", 5, "JSON: unterminated string at offset 1");
    check_error("\"a\\qb\"", 6, "JSON: bad escape \\ followed by 'q' at offset 2");
    check_error("\"\\u12G4\"", 8, "JSON: bad \\u escape (4 hex digits expected) at offset 1");
    check_error("\"\\ud83d\"", 8, "JSON: lone surrogate \\uD83D at offset 1");
    check_error("\"\\ud83dx\\ude00\"", 15, "JSON: lone surrogate \\uD83D at offset 1");
    check_error("\"\\ud83d\\u0041\"", 14, "JSON: lone surrogate \\uD83D at offset 1");
    check_error("\"x\\ude00\"", 9, "JSON: lone surrogate \\uDE00 at offset 2");
    check_error("01", 2, "JSON: number with a leading zero at offset 0");
    check_error("[-012]", 6, "JSON: number with a leading zero at offset 1");
    check_error("-", 1, "JSON: digit expected in number at offset 1 (found end of input)");
    check_error("1.", 2, "JSON: digit expected after '.' in number at offset 2");
    check_error(".5", 2, "JSON: expected a value at offset 0 (found '.')");
    check_error("1e+", 3, "JSON: digit expected in exponent at offset 3");
    check_error("+1", 2, "JSON: expected a value at offset 0 (found '+')");
    check_error("1e999", 5, "JSON: number out of range at offset 0");
    check_error("NaN", 3, "JSON: expected a value at offset 0 (found 'N')");
    check_error("[nul]", 5, "JSON: invalid literal (true, false or null expected) at offset 1");
    check_error("", 0, "JSON: expected a value at offset 0 (found end of input)");
    check_error("  ", 2, "JSON: expected a value at offset 2 (found end of input)");
    check_error("{} x", 4, "JSON: unexpected data after the value at offset 3 (found 'x')");
    check_error("[1 2]", 5, "JSON: expected ',' or ']' at offset 3 (found '2')");
    check_error("{\"a\":1 \"b\":2}", 13, "JSON: expected ',' or '}' at offset 7 (found '\"')");
    check_error("{1:2}", 5, "JSON: expected '\"' (an object key) at offset 1 (found '1')");
    check_error("[1,", 3, "JSON: expected a value at offset 3 (found end of input)");
    check_error("\"a\nb\"", 5, "JSON: unescaped control character 0x0A in string at offset 2");
    check_error("\"\xC3\x28\"", 4, "JSON: invalid UTF-8 in string at offset 1");
    check_error("\"\xC0\xAF\"", 4, "JSON: invalid UTF-8 in string at offset 1");     /* overlong */
    check_error("\"\xED\xA0\x80\"", 5, "JSON: invalid UTF-8 in string at offset 1"); /* surrogate */
    check_error("\"\xF4\x90\x80\x80\"", 6, "JSON: invalid UTF-8 in string at offset 1");
    check_error("[1]\0", 4, "JSON: unexpected data after the value at offset 3 (found byte 0x00)");
    check_error("{\"a\":1,\"b\":2,\"a\":3}", 19, "JSON: duplicate key \"a\" at offset 13");

    /* depth: 64 nested arrays are fine, 65 are refused at the 65th '[' */
    char deep[200];
    for (int d = 64; d <= 65; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        json_value *v = NULL;
        error e = {0};
        int rc = json_parse(deep, 2 * (size_t)d, &v, &e);
        if (d == 64) {
            CHECK_EQ(rc, 0);
            json_free(v);
        } else {
            CHECK_EQ(rc, HDLM_EINVAL);
            CHECK_STR(e.msg, "JSON: nesting deeper than 64 at offset 64");
        }
    }
    /* text need not be NUL-terminated: only n bytes are read */
    json_value *v = NULL;
    error e = {0};
    CHECK_EQ(json_parse("[12]garbage", 4, &v, &e), 0);
    CHECK_EQ(json_int(json_at(v, 0)), 12);
    json_free(v);
}

static void test_duplicates_many(void) {
    /* many keys: the sorted duplicate check names the first repeated key in text order */
    json_buf b = {0};
    json_buf_raw(&b, "{");
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        if (i) json_buf_raw(&b, ",");
        json_buf_str(&b, key);
        json_buf_raw(&b, ":");
        json_buf_int(&b, i);
    }
    json_buf_raw(&b, "}");
    json_value *v = NULL;
    error e = {0};
    CHECK_EQ(json_parse(b.data, b.len, &v, &e), 0);
    CHECK_EQ(json_len(v), 5000);
    CHECK_EQ(json_int(json_get(v, "k4321")), 4321);
    json_free(v);
    /* append two repeats; the earlier-in-text one is reported */
    b.len--;
    json_buf_raw(&b, ",\"k77\":0,\"k3\":0}");
    size_t off = b.len - strlen("\"k77\":0,\"k3\":0}");
    char want[64];
    snprintf(want, sizeof want, "duplicate key \"k77\" at offset %zu", off);
    check_error(b.data, b.len, want);
    json_buf_free(&b);
}

static void test_writer(void) {
    json_buf b = {0};
    json_buf_raw(&b, "[");
    json_buf_num(&b, 1.0);
    json_buf_raw(&b, ",");
    json_buf_num(&b, -3.0);
    json_buf_raw(&b, ",");
    json_buf_num(&b, 0.1);
    json_buf_raw(&b, ",");
    json_buf_num(&b, 1.0 / 3.0);
    json_buf_raw(&b, ",");
    json_buf_num(&b, 1e20);
    json_buf_raw(&b, ",");
    json_buf_num(&b, 3e-4);
    json_buf_raw(&b, ",");
    json_buf_num(&b, NAN);
    json_buf_raw(&b, ",");
    json_buf_num(&b, -INFINITY);
    json_buf_raw(&b, ",");
    json_buf_num(&b, -0.0);
    json_buf_raw(&b, ",");
    json_buf_num(&b, 9007199254740992.0);
    json_buf_raw(&b, ",");
    json_buf_int(&b, INT64_MIN);
    json_buf_raw(&b, "]");
    CHECK_STR(b.data, "[1,-3,0.1,0.3333333333333333,1e+20,0.0003,null,null,-0,9007199254740992,"
                      "-9223372036854775808]");
    CHECK_EQ(b.failed, 0);
    CHECK_EQ(b.len, strlen(b.data));
    json_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);

    /* every double written reads back bit-exactly */
    const double xs[] = {0.1,      1.0 / 3.0,     2.0 / 3.0,
                         1e-300,   5e-324,        1.7976931348623157e308,
                         -123.456, 6.02214076e23, 0.30000000000000004};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        json_buf nb = {0};
        json_buf_num(&nb, xs[i]);
        json_value *v = parse_ok(nb.data);
        CHECK(json_number(v) == xs[i]);
        json_free(v);
        json_buf_free(&nb);
    }

    /* strings: quotes, backslashes, control characters escaped; bad UTF-8 replaced by U+FFFD */
    json_buf_str(&b, "say \"hi\"\\\n\x01\x7f");
    CHECK_STR(b.data, "\"say \\\"hi\\\"\\\\\\n\\u0001\x7f\"");
    json_buf_free(&b);
    json_buf_str(&b, "a\xFF"
                     "b\xE2\x82");
    CHECK_STR(b.data, "\"a\\ufffdb\\ufffd\\ufffd\"");
    json_value *v = parse_ok(b.data);
    CHECK_STR(json_string(v), "a\xEF\xBF\xBD"
                              "b\xEF\xBF\xBD\xEF\xBF\xBD");
    json_free(v);
    json_buf_free(&b);
    CHECK_EQ(json_utf8_valid("caf\xC3\xA9 \xF0\x9F\x98\x80", 10), 1);
    CHECK_EQ(json_utf8_valid("\xC3", 1), 0);         /* truncated */
    CHECK_EQ(json_utf8_valid("\xE0\x80\x80", 3), 0); /* overlong */
    CHECK_EQ(json_utf8_valid("", 0), 1);
    json_buf_strn(&b, "x\0y", 3);
    CHECK_STR(b.data, "\"x\\u0000y\"");
    json_buf_free(&b);
    json_buf_free(NULL);

    /* growth: a long buffer stays NUL-terminated and intact */
    for (int i = 0; i < 10000; i++)
        json_buf_raw(&b, "0123456789");
    CHECK_EQ(b.len, 100000);
    CHECK_EQ(b.data[b.len], 0);
    CHECK_EQ(b.data[99999], '9');
    json_buf_free(&b);
}

/* With a ',' decimal-point locale, numbers must still read and write with '.'. */
static void test_locale(void) {
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    int found = 0;
    for (size_t i = 0; i < 4 && !found; i++)
        found = setlocale(LC_NUMERIC, names[i]) && localeconv()->decimal_point[0] == ',';
    if (!found) {
        setlocale(LC_NUMERIC, "C");
        printf("decimal-comma locale check: skipped (no such locale installed)\n");
        return;
    }
    json_value *v = parse_ok("[0.5,1e-3]");
    CHECK(json_number(json_at(v, 0)) == 0.5);
    CHECK(json_number(json_at(v, 1)) == 1e-3);
    json_free(v);
    json_buf b = {0};
    json_buf_num(&b, 0.25);
    CHECK_STR(b.data, "0.25");
    json_buf_free(&b);
    setlocale(LC_NUMERIC, "C");
}

int main(void) {
    test_roundtrips();
    test_access();
    test_unicode();
    test_numbers();
    test_errors();
    test_duplicates_many();
    test_writer();
    test_locale();
    return check_report("test_json");
}
