/* Fuzz target: the training-state sidecar read on resume (step_<N>.state.safetensors): the
 * safetensors reader and then trainer_state_meta_parse, the parse of its metadata (adam_t and the
 * three rng roots). Accepted metadata must be exactly what trainer_save writes: adam_t decimal
 * digits, each rng 64 hex digits that print back to the same text. */
#include "diffusion/train.h"
#include "fuzz_util.h"

#include <ctype.h>
#include <inttypes.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256];
    if (fuzz_write_temp(data, size, path, sizeof path)) return 0;
    st_file *f = NULL;
    error e = {0};
    int rc = st_open(path, &f, &e);
    unlink(path);
    if (rc != 0) return 0;
    train_state_meta sm;
    error e2 = {0};
    if (trainer_state_meta_parse(f, &sm, &e2) == HDLM_OK) {
        const char *at = st_meta(f, "adam_t");
        char buf[80];
        snprintf(buf, sizeof buf, "%" PRId64, sm.adam_t);
        FUZZ_REQUIRE(at && sm.adam_t >= 0);
        /* leading zeros are allowed; the value is the same number */
        while (at[0] == '0' && at[1])
            at++;
        FUZZ_REQUIRE(!strcmp(buf, at));
        const char *keys[3] = {"data_rng", "noise_rng", "dropout_rng"};
        const rng *rs[3] = {&sm.data_rng, &sm.noise_rng, &sm.dropout_rng};
        for (int i = 0; i < 3; i++) {
            const rng *r = rs[i];
            snprintf(buf, sizeof buf, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                     r->s[0], r->s[1], r->s[2], r->s[3]);
            FUZZ_REQUIRE(!strcasecmp(buf, st_meta(f, keys[i])));
        }
    } else {
        FUZZ_REQUIRE(e2.msg[0] != '\0');
    }
    st_close(f);
    return 0;
}
