/* Fuzz target: the JSON parser (base/json.c), which reads run configs, plugin options and every
 * safetensors header. Beyond "never crash": whatever parses must serialise, and that text must
 * parse again to the same serialisation (the writer and the reader agree on every tree). */
#include "base/json.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every node through the public accessors, as callers do. */
static void walk(const json_value *v, int depth) {
    FUZZ_REQUIRE(depth <= JSON_MAX_DEPTH + 1);
    switch (json_type(v)) {
    case JSON_STRING:
        FUZZ_REQUIRE(json_string(v) && strlen(json_string(v)) <= json_string_len(v));
        break;
    case JSON_NUMBER:
        if (json_is_int(v)) (void)json_int(v);
        (void)json_number(v);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_len(v); i++)
            walk(json_at(v, i), depth + 1);
        FUZZ_REQUIRE(json_at(v, json_len(v)) == NULL);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < json_len(v); i++) {
            FUZZ_REQUIRE(json_key_at(v, i) != NULL);
            /* keys are unique (duplicates are refused), so a lookup finds this member unless the
             * key holds a \u0000 that cuts the C string short */
            if (strlen(json_key_at(v, i)) == json_key_len(v, i))
                FUZZ_REQUIRE(json_get(v, json_key_at(v, i)) == json_value_at(v, i));
            walk(json_value_at(v, i), depth + 1);
        }
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_value *v = NULL;
    error e = {0};
    if (json_parse((const char *)data, size, &v, &e) != 0) {
        FUZZ_REQUIRE(v == NULL && e.msg[0] != '\0');
        return 0;
    }
    walk(v, 0);
    json_buf a = {0}, b = {0};
    FUZZ_REQUIRE(json_buf_value(&a, v) == 0);
    json_value *w = NULL;
    error e2 = {0};
    int rc = json_parse(a.data, a.len, &w, &e2);
    if (rc != 0) fprintf(stderr, "re-parse of \"%s\" failed: %s\n", a.data, e2.msg);
    FUZZ_REQUIRE(rc == 0);
    FUZZ_REQUIRE(json_buf_value(&b, w) == 0);
    FUZZ_REQUIRE(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    json_buf_free(&a);
    json_buf_free(&b);
    json_free(w);
    json_free(v);
    return 0;
}
