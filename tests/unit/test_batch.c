/* Batching: windows are the source at the offsets the rng draws (in batch order), the same seed
 * gives the same batch, the whole offset range [0, n - L] is reachable, and a split shorter than
 * one window is refused with the sizes. */
#include "check.h"
#include "data/batch.h"

#include <stdint.h>
#include <string.h>

enum { N = 1000 };

static void test_windows_match_source(void) {
    static int32_t src[N];
    for (int i = 0; i < N; i++)
        src[i] = (i * 37 + 11) % 256; /* not monotone: windows must copy */
    const int64_t B = 6, L = 16;
    int32_t out[6 * 16]; /* (B, L) */
    rng r, replay;
    rng_init(&r, 42);
    replay = r;
    error e = {0};
    CHECK_EQ(batch_draw(src, N, B, L, &r, out, &e), HDLM_OK);
    int match = 1;
    for (int64_t b = 0; b < B; b++) {
        uint64_t off = rng_below(&replay, N - L + 1);
        CHECK(off <= (uint64_t)(N - L));
        match &= memcmp(out + b * L, src + off, (size_t)L * sizeof *src) == 0;
    }
    CHECK(match);
    /* the cursor advanced by exactly the B draws */
    CHECK(memcmp(&r, &replay, sizeof r) == 0);

    /* same seed -> same batch; another seed -> another batch */
    int32_t again[6 * 16], other[6 * 16];
    rng_init(&r, 42);
    CHECK_EQ(batch_draw(src, N, B, L, &r, again, &e), HDLM_OK);
    CHECK(memcmp(out, again, sizeof out) == 0);
    rng_init(&r, 43);
    CHECK_EQ(batch_draw(src, N, B, L, &r, other, &e), HDLM_OK);
    CHECK(memcmp(out, other, sizeof out) != 0);
}

static void test_offset_range(void) {
    /* tokens[i] = i, so a window's first token is its offset */
    int32_t src[20];
    for (int i = 0; i < 20; i++)
        src[i] = i;
    int seen[5] = {0};
    rng r;
    rng_init(&r, 7);
    int32_t out[16];
    int consecutive = 1;
    for (int it = 0; it < 500; it++) {
        CHECK_EQ(batch_draw(src, 20, 1, 16, &r, out, NULL), HDLM_OK);
        HDLM_ASSERT(out[0] >= 0 && out[0] <= 4);
        seen[out[0]]++;
        for (int j = 1; j < 16; j++)
            consecutive &= out[j] == out[0] + j;
    }
    CHECK(consecutive);
    for (int k = 0; k < 5; k++)
        CHECK(seen[k] > 50); /* 100 expected each, n - L included */

    /* n == L: the only window is the whole split */
    CHECK_EQ(batch_draw(src, 16, 1, 16, &r, out, NULL), HDLM_OK);
    CHECK_EQ(out[0], 0);
    CHECK_EQ(out[15], 15);
}

static void test_errors(void) {
    int32_t src[100] = {0}, out[256];
    rng r;
    rng_init(&r, 1);
    error e = {0};
    CHECK_EQ(batch_draw(src, 100, 2, 256, &r, out, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "split has 100 tokens, shorter than one window of 256; use a shorter "
                     "seq_len or a bigger corpus");
    CHECK_EQ(batch_draw(src, 100, 0, 10, &r, out, &e), HDLM_EINVAL);
    CHECK_STR(e.msg, "batch: batch size 0 and window 10 must be positive");
}

static void test_n_windows(void) {
    CHECK_EQ(batch_n_windows(1000, 256), 3);
    CHECK_EQ(batch_n_windows(512, 256), 2);
    CHECK_EQ(batch_n_windows(255, 256), 0);
    CHECK_EQ(batch_n_windows(0, 256), 0);
    CHECK_EQ(batch_n_windows(100, 0), 0);
}

int main(void) {
    test_windows_match_source();
    test_offset_range();
    test_errors();
    test_n_windows();
    return check_report("test_batch");
}
