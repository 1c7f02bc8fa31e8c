/* Fuzz target: the safetensors reader (nn/safetensors.c): the 8-byte header length, the JSON
 * header and the tensor table checked against the data section. An accepted file must keep the
 * promises st_open documents: every tensor inside the data section with the bytes its dtype and
 * shape need, names findable, metadata values strings. */
#include "fuzz_util.h"
#include "nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256];
    if (fuzz_write_temp(data, size, path, sizeof path)) return 0;
    st_file *f = NULL;
    error e = {0};
    int rc = st_open(path, &f, &e);
    unlink(path);
    if (rc != 0) {
        FUZZ_REQUIRE(f == NULL && e.msg[0] != '\0');
        return 0;
    }
    int64_t total = 0;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        FUZZ_REQUIRE(t && st_find(f, t->name) == t);
        FUZZ_REQUIRE(st_dtype_size(t->dtype) > 0 && t->ndim >= 0 && t->ndim <= ST_MAX_NDIM);
        FUZZ_REQUIRE(t->nbytes >= 0);
        total += t->nbytes;
        if (t->dtype == ST_F32) {
            /* copies nbytes from the file buffer: ASan catches a tensor that points outside */
            float *dst = malloc(t->nbytes ? (size_t)t->nbytes : 1);
            if (dst) {
                error e2 = {0};
                FUZZ_REQUIRE(st_read_f32(f, t->name, dst, t->ndim, t->shape, &e2) == 0);
                free(dst);
            }
        } else if (t->nbytes > 0) {
            const volatile uint8_t *p = t->data;
            (void)p[0];
            (void)p[t->nbytes - 1];
        }
    }
    /* the tensors tile the data section: their sizes add up to at most the file size */
    FUZZ_REQUIRE(total >= 0 && (uint64_t)total <= size);
    FUZZ_REQUIRE(st_at(f, st_count(f)) == NULL && st_at(f, -1) == NULL);
    for (int i = 0; i < st_meta_count(f); i++) {
        const char *k = st_meta_key_at(f, i);
        FUZZ_REQUIRE(k != NULL);
        /* a key holding \u0000 is cut short as a C string; then the lookup may miss */
        const char *v = st_meta(f, k);
        (void)v;
    }
    st_close(f);
    return 0;
}
