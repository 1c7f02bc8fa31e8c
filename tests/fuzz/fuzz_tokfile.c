/* Fuzz target: the token file loader (corpus_load in data/tokfile.c) on arbitrary files.
 * Input byte 0 is a flag byte, the rest is the file. With flag bit 0 set the target writes the
 * right payload checksum into the header first: random bytes almost never match the FNV-1a
 * checksum, and without this every input would stop there and the checks behind it (token range,
 * split sizes) would never be fuzzed. A loaded corpus must hold what the header promised. */
#include "data/tokfile.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int fix_checksum = data[0] & 1;
    size_t n = size - 1;
    uint8_t *file = malloc(n ? n : 1);
    if (!file) return 0;
    memcpy(file, data + 1, n);
    if (fix_checksum && n >= 64) {
        uint64_t h = fnv1a64(file + 64, n - 64);
        for (int i = 0; i < 8; i++)
            file[40 + i] = (uint8_t)(h >> (8 * i));
    }
    char path[256];
    if (fuzz_write_temp(file, n, path, sizeof path)) {
        free(file);
        return 0;
    }
    corpus c;
    error e = {0};
    int rc = corpus_load(path, &c, &e);
    unlink(path);
    if (rc == HDLM_OK) {
        uint64_t nt = 0, nv = 0;
        uint32_t vocab = 0, bpt = 0;
        for (int i = 0; i < 8; i++) {
            nt |= (uint64_t)file[24 + i] << (8 * i);
            nv |= (uint64_t)file[32 + i] << (8 * i);
        }
        for (int i = 0; i < 4; i++) {
            vocab |= (uint32_t)file[16 + i] << (8 * i);
            bpt |= (uint32_t)file[20 + i] << (8 * i);
        }
        FUZZ_REQUIRE((uint64_t)c.n_train == nt && (uint64_t)c.n_valid == nv);
        FUZZ_REQUIRE(64 + (nt + nv) * bpt == n);
        for (int64_t i = 0; i < c.n_train; i++)
            FUZZ_REQUIRE(c.train[i] >= 0 && (uint32_t)c.train[i] < vocab);
        for (int64_t i = 0; i < c.n_valid; i++)
            FUZZ_REQUIRE(c.valid[i] >= 0 && (uint32_t)c.valid[i] < vocab);
        corpus_free(&c);
    } else {
        FUZZ_REQUIRE(e.msg[0] != '\0' && c.train == NULL && c.valid == NULL);
    }
    free(file);
    return 0;
}
