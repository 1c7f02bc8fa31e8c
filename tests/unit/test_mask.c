/* Attention-mask builders of nn/mask against the spec's pictures: every row is rendered as a
 * '#'/'.' string with mask_row_allows and compared with the spec's exact rows (§2.1 block and
 * simple annealing, each context and block type), plus the plain causal/full rows, the
 * vectorised 2L layout of §2.5 and the name parsers. Rows are checked as strings so a failure
 * prints the whole picture line. */
#include "check.h"
#include "hdlm/plugin.h"
#include "nn/mask.h"

#include <stdint.h>
#include <string.h>

enum { S = HDLM_SETTLED, A = HDLM_ACTIVE, W = HDLM_WORTHLESS };

#define MAXL 32

/* '#' where row r may attend to key j (j < n), '.' elsewhere */
static const char *row_str(const attn_row *r, int n) {
    static char buf[MAXL + 1];
    for (int j = 0; j < n; j++)
        buf[j] = mask_row_allows(r, j) ? '#' : '.';
    buf[n] = 0;
    return buf;
}

/* Compares rows[0..n) (over n keys) with the expected strings; prints the row index on failure. */
static void check_rows(const char *what, const attn_row *rows, int n, const char *const *want) {
    for (int i = 0; i < n; i++) {
        const char *got = row_str(&rows[i], n);
        if (strcmp(got, want[i]))
            fprintf(stderr, "%s: row %d is \"%s\", expected \"%s\"\n", what, i, got, want[i]);
        CHECK_STR(got, want[i]);
    }
}

/* Every row's non-empty ranges lie inside [0, n) (the attention kernel asserts it). */
static void check_in_range(const attn_row *rows, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const attn_row *r = &rows[i];
        if (r->lo1 < r->hi1 && (r->lo1 < 0 || r->hi1 > n)) bad++;
        if (r->lo2 < r->hi2 && (r->lo2 < 0 || r->hi2 > n)) bad++;
    }
    CHECK_EQ(bad, 0);
}

/* ---- spec §2.1: block annealing w=4, τ=4, L=12, step 5 --------------------------------------- */

static void test_block_annealing_step5(void) {
    const uint8_t st[12] = {S, S, S, S, A, A, A, A, W, W, W, W};
    attn_row rows[12];
    /* the spec's picture: context block_causal, block full */
    static const char *const want[12] = {
        "####........", "####........", "####........", "####........",
        "########....", "########....", "########....", "########....",
        "............", "............", "............", "............",
    };
    mask_rows_from_states(rows, st, 12, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("block w4 step5 block_causal/full", rows, 12, want);
    check_in_range(rows, 12);
    /* settled block 0 is a single block, so every context gives the same picture except causal */
    mask_rows_from_states(rows, st, 12, MASK_CTX_FULL, 4, MASK_BLOCK_FULL);
    check_rows("block w4 step5 full/full", rows, 12, want);

    /* block_type causal: the active block is lower-triangular over itself */
    static const char *const want_bc[12] = {
        "####........", "####........", "####........", "####........",
        "#####.......", "######......", "#######.....", "########....",
        "............", "............", "............", "............",
    };
    mask_rows_from_states(rows, st, 12, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_CAUSAL);
    check_rows("block w4 step5 block_causal/causal", rows, 12, want_bc);

    /* causal context: the settled block is lower-triangular too */
    static const char *const want_cc[12] = {
        "#...........", "##..........", "###.........", "####........",
        "########....", "########....", "########....", "########....",
        "............", "............", "............", "............",
    };
    mask_rows_from_states(rows, st, 12, MASK_CTX_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("block w4 step5 causal/full", rows, 12, want_cc);

    /* fully blocked worthless rows: both ranges empty (the kernel's "attend uniformly" case) */
    for (int i = 8; i < 12; i++)
        CHECK(rows[i].lo1 >= rows[i].hi1 && rows[i].lo2 >= rows[i].hi2);
}

/* Step 9 of the same schedule: two settled blocks, so block_causal differs from full. */
static void test_block_annealing_step9(void) {
    const uint8_t st[12] = {S, S, S, S, S, S, S, S, A, A, A, A};
    attn_row rows[12];
    static const char *const want_bc[12] = {
        "####........", "####........", "####........", "####........",
        "########....", "########....", "########....", "########....",
        "############", "############", "############", "############",
    };
    mask_rows_from_states(rows, st, 12, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("block w4 step9 block_causal/full", rows, 12, want_bc);
    check_in_range(rows, 12);
    static const char *const want_full[12] = {
        "########....", "########....", "########....", "########....",
        "########....", "########....", "########....", "########....",
        "############", "############", "############", "############",
    };
    mask_rows_from_states(rows, st, 12, MASK_CTX_FULL, 4, MASK_BLOCK_FULL);
    check_rows("block w4 step9 full/full", rows, 12, want_full);
}

/* ---- spec §2.1: simple annealing w=4, τ=4, L=8, step 6 (n_s = 2, active 2..5) ---------------- */

static void test_simple_annealing_step6(void) {
    const uint8_t st[8] = {S, S, A, A, A, A, W, W};
    attn_row rows[8];
    static const char *const want[8] = {
        "##......", "##......", "######..", "######..",
        "######..", "######..", "........", "........",
    };
    mask_rows_from_states(rows, st, 8, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("simple step6 block_causal/full", rows, 8, want);
    check_in_range(rows, 8);
    /* context full: the settled rows are the same here */
    mask_rows_from_states(rows, st, 8, MASK_CTX_FULL, 4, MASK_BLOCK_FULL);
    check_rows("simple step6 full/full", rows, 8, want);
    /* context causal: row 0 sees itself only */
    static const char *const want_c[8] = {
        "#.......", "##......", "######..", "######..",
        "######..", "######..", "........", "........",
    };
    mask_rows_from_states(rows, st, 8, MASK_CTX_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("simple step6 causal/full", rows, 8, want_c);
    /* block type causal inside the active region 2..5 */
    static const char *const want_bc[8] = {
        "##......", "##......", "###.....", "####....",
        "#####...", "######..", "........", "........",
    };
    mask_rows_from_states(rows, st, 8, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_CAUSAL);
    check_rows("simple step6 block_causal/causal", rows, 8, want_bc);
}

/* Regions are defined by index (spec §2.1): A = [n_s, e] with e the LAST active position, so a
 * worthless state between active ones is inside the active region; no settled prefix and no
 * active position are handled too. */
static void test_region_edges(void) {
    attn_row rows[8];
    const uint8_t gap[8] = {S, A, W, A, W, W, W, W};
    static const char *const want_gap[8] = {
        "#.......", "####....", "####....", "####....",
        "........", "........", "........", "........",
    };
    mask_rows_from_states(rows, gap, 8, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("gap", rows, 8, want_gap);

    const uint8_t none_settled[8] = {A, A, A, W, W, W, W, W};
    static const char *const want_ns[8] = {
        "###.....", "###.....", "###.....", "........",
        "........", "........", "........", "........",
    };
    mask_rows_from_states(rows, none_settled, 8, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("no settled", rows, 8, want_ns);
    check_in_range(rows, 8);

    const uint8_t no_active[8] = {S, S, S, S, S, W, W, W};
    static const char *const want_na[8] = {
        "####....", "####....", "####....", "####....",
        "#####...", "........", "........", "........",
    };
    mask_rows_from_states(rows, no_active, 8, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("no active (partial settled block)", rows, 8, want_na);

    const uint8_t all_settled[8] = {S, S, S, S, S, S, S, S};
    static const char *const want_as[8] = {
        "####....", "####....", "####....", "####....",
        "########", "########", "########", "########",
    };
    mask_rows_from_states(rows, all_settled, 8, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_CAUSAL);
    check_rows("all settled", rows, 8, want_as);

    const uint8_t all_worthless[8] = {W, W, W, W, W, W, W, W};
    mask_rows_from_states(rows, all_worthless, 8, MASK_CTX_FULL, 4, MASK_BLOCK_FULL);
    int open = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            open += mask_row_allows(&rows[i], j);
    CHECK_EQ(open, 0);

    /* block_w < 1 is treated as 1: block_causal then equals causal */
    attn_row r1[8], r2[8];
    mask_rows_from_states(r1, all_settled, 8, MASK_CTX_BLOCK_CAUSAL, 0, MASK_BLOCK_FULL);
    mask_rows_from_states(r2, all_settled, 8, MASK_CTX_CAUSAL, 4, MASK_BLOCK_FULL);
    for (int i = 0; i < 8; i++) {
        char a[MAXL + 1];
        snprintf(a, sizeof a, "%s", row_str(&r1[i], 8));
        CHECK_STR(a, row_str(&r2[i], 8));
    }
}

/* Spec §2.1 rules checked exhaustively over random states against a direct transcription. */
static void test_rules_exhaustive(void) {
    const int L = 10;
    uint8_t st[10];
    attn_row rows[10];
    int bad = 0, cases = 0;
    /* all 3^10 states would be 59049 x 3 x 2 builds; a fixed stride keeps it quick and varied */
    for (int code = 0; code < 59049; code += 7) {
        int c = code;
        for (int i = 0; i < L; i++)
            st[i] = (uint8_t)(c % 3), c /= 3;
        int n_s = 0;
        while (n_s < L && st[n_s] == S)
            n_s++;
        int e = n_s - 1;
        for (int i = n_s; i < L; i++)
            if (st[i] == A) e = i;
        for (int ctx = 0; ctx < 3; ctx++)
            for (int bt = 0; bt < 2; bt++) {
                const int w = 3;
                mask_rows_from_states(rows, st, L, ctx, w, bt);
                cases++;
                for (int i = 0; i < L; i++)
                    for (int j = 0; j < L; j++) {
                        int si = i < n_s, sj = j < n_s;
                        int ai = !si && i <= e, aj = !sj && j <= e;
                        int want = 0;
                        if (si && sj)
                            want = ctx == MASK_CTX_FULL     ? 1
                                   : ctx == MASK_CTX_CAUSAL ? j <= i
                                                            : j / w <= i / w;
                        else if (ai && aj)
                            want = bt == MASK_BLOCK_FULL ? 1 : j <= i;
                        else if (ai && sj)
                            want = 1;
                        if (mask_row_allows(&rows[i], j) != want) bad++;
                    }
            }
    }
    CHECK(cases > 1000);
    CHECK_EQ(bad, 0);
}

static void test_plain_rows(void) {
    attn_row rows[5];
    static const char *const want_c[5] = {"#....", "##...", "###..", "####.", "#####"};
    mask_rows_causal(rows, 5);
    check_rows("causal", rows, 5, want_c);
    static const char *const want_f[5] = {"#####", "#####", "#####", "#####", "#####"};
    mask_rows_full(rows, 5);
    check_rows("full", rows, 5, want_f);
    check_in_range(rows, 5);
}

/* ---- spec §2.5: vectorised 2L layout --------------------------------------------------------- */

static void test_vectorised(void) {
    const int L = 8;
    const int32_t starts[2] = {0, 4};
    attn_row rows[16];
    /* clean half block_causal (blocks of 4), buckets full */
    static const char *const want[16] = {
        "####............", "####............", "####............", "####............",
        "########........", "########........", "########........", "########........",
        "........####....", "........####....", "........####....", "........####....",
        "####........####", "####........####", "####........####", "####........####",
    };
    mask_rows_vectorised(rows, L, starts, 2, MASK_CTX_BLOCK_CAUSAL, 4, MASK_BLOCK_FULL);
    check_rows("vectorised block_causal/full", rows, 16, want);
    check_in_range(rows, 16);

    /* clean half causal, buckets causal */
    static const char *const want_cc[16] = {
        "#...............", "##..............", "###.............", "####............",
        "#####...........", "######..........", "#######.........", "########........",
        "........#.......", "........##......", "........###.....", "........####....",
        "####........#...", "####........##..", "####........###.", "####........####",
    };
    mask_rows_vectorised(rows, L, starts, 2, MASK_CTX_CAUSAL, 4, MASK_BLOCK_CAUSAL);
    check_rows("vectorised causal/causal", rows, 16, want_cc);

    /* clean half full */
    mask_rows_vectorised(rows, L, starts, 2, MASK_CTX_FULL, 4, MASK_BLOCK_FULL);
    for (int i = 0; i < L; i++)
        CHECK_STR(row_str(&rows[i], 16), "########........");

    /* the rule for any bucket size: bucket k sees clean [0, k*w) and itself, nothing else; the
     * clean half never sees the noisy half */
    const int LL = 12, w = 3;
    int32_t st[4] = {0, 3, 6, 9};
    attn_row r2[24];
    int bad = 0;
    for (int bt = 0; bt < 2; bt++) {
        mask_rows_vectorised(r2, LL, st, 4, MASK_CTX_BLOCK_CAUSAL, w, bt);
        check_in_range(r2, 2 * LL);
        for (int i = 0; i < 2 * LL; i++)
            for (int j = 0; j < 2 * LL; j++) {
                int want_ij;
                if (i < LL)
                    want_ij = j < LL && j / w <= i / w;
                else {
                    int k = (i - LL) / w, jn = j - LL;
                    if (j < LL)
                        want_ij = j < k * w;
                    else
                        want_ij = jn / w == k && (bt == MASK_BLOCK_FULL || jn <= i - LL);
                }
                if (mask_row_allows(&r2[i], j) != want_ij) bad++;
            }
    }
    CHECK_EQ(bad, 0);

    /* variable-length buckets (simple annealing stitching): {0, 2, 7} over L = 8 */
    const int32_t vs[3] = {0, 2, 7};
    mask_rows_vectorised(rows, L, vs, 3, MASK_CTX_FULL, 4, MASK_BLOCK_FULL);
    CHECK_STR(row_str(&rows[8], 16), "........##......");
    CHECK_STR(row_str(&rows[10], 16), "##........#####.");
    CHECK_STR(row_str(&rows[14], 16), "##........#####.");
    CHECK_STR(row_str(&rows[15], 16), "#######........#");
}

static void test_names(void) {
    CHECK_EQ(mask_context_from_name("full"), MASK_CTX_FULL);
    CHECK_EQ(mask_context_from_name("causal"), MASK_CTX_CAUSAL);
    CHECK_EQ(mask_context_from_name("block_causal"), MASK_CTX_BLOCK_CAUSAL);
    CHECK_EQ(mask_context_from_name("blockcausal"), -1);
    CHECK_EQ(mask_context_from_name(""), -1);
    CHECK_EQ(mask_block_from_name("full"), MASK_BLOCK_FULL);
    CHECK_EQ(mask_block_from_name("causal"), MASK_BLOCK_CAUSAL);
    CHECK_EQ(mask_block_from_name("block_causal"), -1);
}

static void test_row_allows(void) {
    /* overlapping and reversed ranges; empty ranges (lo >= hi) allow nothing */
    attn_row r = {2, 5, 4, 7};
    CHECK_STR(row_str(&r, 8), "..#####.");
    attn_row e = {3, 3, 6, 2};
    CHECK_STR(row_str(&e, 8), "........");
    attn_row two = {0, 1, 6, 8};
    CHECK_STR(row_str(&two, 8), "#.....##");
}

int main(void) {
    test_block_annealing_step5();
    test_block_annealing_step9();
    test_simple_annealing_step6();
    test_region_edges();
    test_rules_exhaustive();
    test_plain_rows();
    test_vectorised();
    test_names();
    test_row_allows();
    return check_report("test_mask");
}
