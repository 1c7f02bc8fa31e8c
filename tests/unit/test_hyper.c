/* Hyperschedules: the five schedule plugins (loaded from the build's plugin folder) through
 * diffusion/hyper.c, against every worked example of spec §1.3-§1.8, against an independent
 * emulation of the reference's MetaSchedule / HybridMetaSchedule objects over many (w, τ, L),
 * bit-exact float32 times, refusals, the checks of hyper_levels, and schedule-wide properties. */
#include "check.h"
#include "diffusion/hyper.h"
#include "nn/mask.h"
#include "plugin/host.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static plugin_registry *reg;

/* A schedule plugin instance and its hyper. */
typedef struct sched {
    plugin_instance *inst;
    hyper h;
} sched;

/* opts: "key=value,key=value" or "" */
static int sched_open(sched *s, const char *name, const char *opts, error *e) {
    memset(s, 0, sizeof *s);
    plugin_opts *o = plugin_opts_new();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", opts);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        HDLM_ASSERT(eq);
        *eq = '\0';
        plugin_opts_set_text(o, tok, eq + 1);
    }
    int rc = plugin_instance_create(reg, HDLM_KIND_SCHEDULE, name, o, NULL, &s->inst, e);
    if (rc != HDLM_OK) return rc;
    hyper_from_plugin(&s->h, s->inst->self, s->inst->ops, s->inst->entry->desc->name);
    return HDLM_OK;
}

static sched must_open(const char *name, const char *opts) {
    sched s;
    error e = {0};
    if (sched_open(&s, name, opts, &e) != HDLM_OK) {
        fprintf(stderr, "cannot open %s(%s): %s\n", name, opts, e.msg);
        exit(1);
    }
    return s;
}

static void sched_close(sched *s) {
    plugin_instance_destroy(s->inst);
    s->inst = NULL;
}

/* Levels of a step as "l0 l1 ...", n_settled in *ns; "ERR: msg" on failure. */
static const char *levels_str(const hyper *h, int64_t step, int64_t L, int64_t *ns) {
    static char out[4096];
    int32_t level[512];
    HDLM_ASSERT(L <= 512);
    error e = {0};
    int64_t n = -1;
    if (hyper_levels(h, step, L, level, &n, &e) != HDLM_OK) {
        snprintf(out, sizeof out, "ERR: %s", e.msg);
        if (ns) *ns = -1;
        return out;
    }
    size_t len = 0;
    out[0] = '\0';
    for (int64_t i = 0; i < L; i++)
        len += (size_t)snprintf(out + len, sizeof out - len, "%s%d", i ? " " : "", level[i]);
    if (ns) *ns = n;
    return out;
}

#define CHECK_ROW(h, step, L, want_ns, want)                                                       \
    do {                                                                                           \
        int64_t ns_;                                                                               \
        CHECK_STR(levels_str(h, step, L, &ns_), want);                                             \
        CHECK_EQ(ns_, want_ns);                                                                    \
    } while (0)

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ---- independent emulation of the reference objects (spec §1.2, §1.5) ---- */

#define EM_MAX 64
typedef struct emul {
    int P, K, W;
    int len[EM_MAX], blen[EM_MAX];
    int32_t S[EM_MAX][EM_MAX], B[EM_MAX][EM_MAX];
    int64_t h[EM_MAX + 1];
} emul;

static void em_finish(emul *m) {
    int mx = 0;
    m->h[0] = 0;
    for (int p = 0; p < m->P; p++) {
        int z = 0;
        while (z < m->len[p] && m->S[p][z] == 0)
            z++;
        m->h[p + 1] = m->h[p] + z;
        for (int j = 0; j < m->len[p]; j++)
            if (m->S[p][j] > mx) mx = m->S[p][j];
    }
    m->W = mx + 1;
}

/* MetaSchedule.__call__(s) then MetaScheduleStep(stop = L) */
static void em_levels(const emul *m, int64_t s, int64_t L, int32_t *out, int64_t *ns) {
    const int32_t *R = NULL;
    int rlen = 0;
    int64_t n = 0;
    if (s == 0) {
    } else if (s <= m->K) {
        R = m->B[s - 1];
        rlen = m->blen[s - 1];
    } else {
        int64_t u = s - 1 - m->K, p = u % m->P, c = u / m->P;
        R = m->S[p];
        rlen = m->len[p];
        n = m->h[p] + m->h[m->P] * c;
    }
    for (int64_t i = 0; i < L; i++)
        out[i] = i < n ? 0 : i < n + rlen ? R[i - n] : m->W;
    *ns = n;
}

static void em_simple(emul *m, int w, int tau) {
    memset(m, 0, sizeof *m);
    m->P = 1;
    m->len[0] = w;
    for (int j = 0; j < w; j++) /* Python round() ties to even: nearbyint in FE_TONEAREST */
        m->S[0][j] = (int32_t)nearbyint((double)(j * (tau - 1)) / (double)(w - 1));
    m->K = w - 1;
    for (int k = 1; k <= m->K; k++) {
        m->blen[k - 1] = k;
        for (int j = 0; j < k; j++)
            m->B[k - 1][j] = m->S[0][w - k + j];
    }
    em_finish(m);
}

static void em_block(emul *m, int w, int tau) {
    memset(m, 0, sizeof *m);
    m->P = tau;
    for (int p = 0; p < tau; p++) {
        m->len[p] = w;
        for (int j = 0; j < w; j++)
            m->S[p][j] = p == 0 ? 0 : tau - p;
    }
    m->K = tau - 1;
    for (int k = 1; k <= m->K; k++) {
        m->blen[k - 1] = w;
        for (int j = 0; j < w; j++)
            m->B[k - 1][j] = tau - k;
    }
    em_finish(m);
}

/* max_step − 1 for simple annealing: the brute-force search of the reference */
static int64_t em_simple_steps(const emul *m, int w, int tau, int64_t L) {
    int32_t lv[EM_MAX * 4];
    int64_t limit = L + tau + w, ns;
    for (int64_t s = 1; s <= limit; s++) {
        em_levels(m, s, L, lv, &ns);
        int zero = 1;
        for (int64_t i = 0; i < L; i++)
            zero &= lv[i] == 0;
        if (zero) return s; /* max_step = s + 1 */
    }
    return limit - 1;
}

/* make_hybrid_annealing: the explicit table, built step by step like the reference */
static int64_t em_hybrid(int w, int tau, int L, int32_t *table /* (steps, L) */) {
    int nb = (L + w - 1) / w, spb = tau + w - 1;
    int32_t cur[EM_MAX * 4];
    for (int i = 0; i < L; i++)
        cur[i] = tau;
    int64_t row = 0;
    for (int b = 0; b < nb; b++) {
        int start = b * w, blen = L - start < w ? L - start : w;
        for (int s = 0; s < spb; s++) {
            for (int j = 0; j < blen; j++) {
                int off = s - j > 0 ? s - j : 0;
                int v = tau - 1 - off;
                cur[start + j] = v > 0 ? v : 0;
            }
            memcpy(table + row * L, cur, (size_t)L * sizeof *cur);
            row++;
        }
    }
    return row;
}

static int cmp_levels(const hyper *h, int64_t step, int64_t L, const int32_t *want,
                      int64_t want_ns) {
    int32_t lv[EM_MAX * 4];
    int64_t ns;
    error e = {0};
    if (hyper_levels(h, step, L, lv, &ns, &e) != HDLM_OK) {
        fprintf(stderr, "%s step %lld L %lld: %s\n", h->name, (long long)step, (long long)L, e.msg);
        return 0;
    }
    if (ns != want_ns) return 0;
    return memcmp(lv, want, (size_t)L * sizeof *lv) == 0;
}

/* ---- tests ---- */

static void test_simple_examples(void) {
    sched s = must_open("simple_annealing", "width=4,tau=4");
    const hyper *h = &s.h;
    CHECK_EQ(hyper_n_levels(h), 4);
    CHECK_EQ(hyper_n_steps(h, 8), 11); /* max_step 12 */
    CHECK_ROW(h, 0, 8, 0, "4 4 4 4 4 4 4 4");
    CHECK_ROW(h, 1, 8, 0, "3 4 4 4 4 4 4 4");
    CHECK_ROW(h, 2, 8, 0, "2 3 4 4 4 4 4 4");
    CHECK_ROW(h, 3, 8, 0, "1 2 3 4 4 4 4 4");
    CHECK_ROW(h, 4, 8, 0, "0 1 2 3 4 4 4 4");
    CHECK_ROW(h, 5, 8, 1, "0 0 1 2 3 4 4 4");
    CHECK_ROW(h, 6, 8, 2, "0 0 0 1 2 3 4 4");
    CHECK_ROW(h, 10, 8, 6, "0 0 0 0 0 0 0 1");
    CHECK_ROW(h, 11, 8, 7, "0 0 0 0 0 0 0 0");
    CHECK_CONTAINS(levels_str(h, 12, 8, NULL), "step 12 is beyond the last step 11");
    int64_t block = 0;
    CHECK_EQ(h->ops->growth(h->self, &block), HDLM_GROW_TOKENS);
    CHECK_EQ(block, 1);
    sched_close(&s);

    /* w=5, τ=3: S_0 = (0,0,1,2,2) — 0.5 -> 0 and 1.5 -> 2 (ties to even); seen at step w */
    s = must_open("simple_annealing", "width=5,tau=3");
    CHECK_ROW(&s.h, 5, 7, 0, "0 0 1 2 2 3 3");
    CHECK_ROW(&s.h, 6, 7, 2, "0 0 0 0 1 2 2"); /* z = 2: the window moves two per step */
    sched_close(&s);
    s = must_open("simple_annealing", "width=5,tau=7"); /* 1.5 -> 2, 4.5 -> 4 */
    CHECK_ROW(&s.h, 5, 5, 0, "0 2 3 4 6");
    sched_close(&s);

    /* w=4, τ=8: S_0 = (0,2,5,7); position 0 walks 7 -> 5 -> 2 -> 0 over steps 1..4 */
    s = must_open("simple_annealing", "width=4,tau=8");
    const int want0[] = {8, 7, 5, 2, 0, 0};
    for (int st = 0; st <= 5; st++) {
        int32_t lv[6];
        int64_t ns;
        error e = {0};
        CHECK(hyper_levels(&s.h, st, 6, lv, &ns, &e) == HDLM_OK);
        CHECK_EQ(lv[0], want0[st]);
    }
    CHECK_ROW(&s.h, 4, 6, 0, "0 2 5 7 8 8");
    sched_close(&s);

    /* w=4, τ=2, L=8: S_0 = (0,0,1,1), z = 2 -> 7 steps */
    s = must_open("simple_annealing", "width=4,tau=2");
    CHECK_EQ(hyper_n_steps(&s.h, 8), 7);
    CHECK_ROW(&s.h, 4, 8, 0, "0 0 1 1 2 2 2 2");
    CHECK_ROW(&s.h, 7, 8, 6, "0 0 0 0 0 0 0 0");
    /* tiny L: the bootstrap window is already all zero (brute force finds step 3, not 4) */
    CHECK_EQ(hyper_n_steps(&s.h, 1), 3);
    CHECK_ROW(&s.h, 3, 1, 0, "0");
    sched_close(&s);
}

static void test_block_examples(void) {
    sched s = must_open("block_annealing", "width=4,tau=4");
    const hyper *h = &s.h;
    CHECK_EQ(hyper_n_steps(h, 12), 12); /* max_step 13 */
    CHECK_ROW(h, 1, 12, 0, "3 3 3 3 4 4 4 4 4 4 4 4");
    CHECK_ROW(h, 4, 12, 0, "0 0 0 0 4 4 4 4 4 4 4 4");
    CHECK_ROW(h, 5, 12, 4, "0 0 0 0 3 3 3 3 4 4 4 4");
    CHECK_ROW(h, 8, 12, 4, "0 0 0 0 0 0 0 0 4 4 4 4");
    CHECK_ROW(h, 9, 12, 8, "0 0 0 0 0 0 0 0 3 3 3 3");
    CHECK_ROW(h, 12, 12, 8, "0 0 0 0 0 0 0 0 0 0 0 0");
    int64_t block = 0;
    CHECK_EQ(h->ops->growth(h->self, &block), HDLM_GROW_BLOCKS);
    CHECK_EQ(block, 4);
    /* a partial last block is truncated: L = 10 -> blocks 4, 4, 2 and still 12 steps */
    CHECK_EQ(hyper_n_steps(h, 10), 12);
    CHECK_ROW(h, 9, 10, 8, "0 0 0 0 0 0 0 0 3 3");
    sched_close(&s);
    /* tau absent (0) means tau = width */
    s = must_open("block_annealing", "width=3");
    CHECK_EQ(hyper_n_levels(&s.h), 3);
    CHECK_EQ(hyper_n_steps(&s.h, 7), 9);
    sched_close(&s);
    s = must_open("block_annealing", "");
    CHECK_EQ(hyper_n_levels(&s.h), 16);
    sched_close(&s);
}

static void test_hybrid_examples(void) {
    sched s = must_open("hybrid_annealing", "width=3,tau=3");
    const hyper *h = &s.h;
    CHECK_EQ(hyper_n_steps(h, 7), 15); /* steps per block 5, max_step 16 */
    CHECK_ROW(h, 1, 7, 0, "2 2 2 3 3 3 3");
    CHECK_ROW(h, 2, 7, 0, "1 2 2 3 3 3 3");
    CHECK_ROW(h, 3, 7, 0, "0 1 2 3 3 3 3");
    CHECK_ROW(h, 5, 7, 0, "0 0 0 3 3 3 3");
    CHECK_ROW(h, 6, 7, 3, "0 0 0 2 2 2 3");
    CHECK_ROW(h, 13, 7, 6, "0 0 0 0 0 0 0");
    CHECK_ROW(h, 15, 7, 6, "0 0 0 0 0 0 0");
    int64_t block = 0;
    CHECK_EQ(h->ops->growth(h->self, &block), HDLM_GROW_BLOCKS);
    CHECK_EQ(block, 3);
    sched_close(&s);
}

/* Every plugin step against the emulated reference objects, for many shapes. */
static void test_against_reference_objects(void) {
    static const int ws[] = {2, 3, 4, 5, 7}, taus[] = {2, 3, 4, 5, 8, 9};
    static const int Ls[] = {1, 2, 3, 5, 8, 12, 13};
    int32_t want[EM_MAX * 4];
    static int32_t table[4096 * 64];
    int bad = 0, checked = 0;
    for (size_t a = 0; a < sizeof ws / sizeof *ws; a++)
        for (size_t b = 0; b < sizeof taus / sizeof *taus; b++) {
            int w = ws[a], tau = taus[b];
            char opts[64];
            snprintf(opts, sizeof opts, "width=%d,tau=%d", w, tau);
            sched ss = must_open("simple_annealing", opts), sb = must_open("block_annealing", opts),
                  sh = must_open("hybrid_annealing", opts);
            emul ms, mb;
            em_simple(&ms, w, tau);
            em_block(&mb, w, tau);
            for (size_t c = 0; c < sizeof Ls / sizeof *Ls; c++) {
                int64_t L = Ls[c], ns;
                /* simple */
                int64_t n = em_simple_steps(&ms, w, tau, L);
                bad += hyper_n_steps(&ss.h, L) != n;
                for (int64_t st = 0; st <= n; st++) {
                    em_levels(&ms, st, L, want, &ns);
                    bad += !cmp_levels(&ss.h, st, L, want, ns);
                    checked++;
                }
                /* block: max_step = W·⌈L/w⌉ + 1 */
                n = (int64_t)mb.W * ((L + w - 1) / w);
                bad += hyper_n_steps(&sb.h, L) != n;
                for (int64_t st = 0; st <= n; st++) {
                    em_levels(&mb, st, L, want, &ns);
                    bad += !cmp_levels(&sb.h, st, L, want, ns);
                    checked++;
                }
                /* hybrid: the stored table; settled = whole blocks before the current one */
                n = em_hybrid(w, tau, (int)L, table);
                bad += hyper_n_steps(&sh.h, L) != n;
                for (int64_t st = 1; st <= n; st++) {
                    int64_t nsh = (st - 1) / (tau + w - 1) * w;
                    bad += !cmp_levels(&sh.h, st, L, table + (st - 1) * L, nsh);
                    checked++;
                }
            }
            sched_close(&ss);
            sched_close(&sb);
            sched_close(&sh);
        }
    CHECK_EQ(bad, 0);
    CHECK(checked > 5000);
}

static void test_step_counts(void) {
    /* §1.7: block τ·⌈L/w⌉, simple w − 1 + ⌈L/z⌉, hybrid ⌈L/w⌉·(τ + w − 1); shipped configs */
    sched s = must_open("block_annealing", "width=1024,tau=1024");
    CHECK_EQ(hyper_n_steps(&s.h, 1024), 1024); /* ε config */
    sched_close(&s);
    s = must_open("block_annealing", "width=1024,tau=2048");
    CHECK_EQ(hyper_n_steps(&s.h, 1024), 2048); /* γ config */
    sched_close(&s);
    s = must_open("block_annealing", "width=16,tau=8");
    CHECK_EQ(hyper_n_steps(&s.h, 100), 8 * 7);
    sched_close(&s);
    s = must_open("simple_annealing", "width=16,tau=16"); /* z = 1: L + w − 1 */
    CHECK_EQ(hyper_n_steps(&s.h, 100), 115);
    sched_close(&s);
    s = must_open("simple_annealing", "width=16,tau=4"); /* S_0 = round(j/5): z = 3 */
    CHECK_EQ(hyper_n_steps(&s.h, 100), 15 + 34);
    sched_close(&s);
    s = must_open("hybrid_annealing", "width=16,tau=8");
    CHECK_EQ(hyper_n_steps(&s.h, 100), 7 * 23);
    sched_close(&s);
    s = must_open("hybrid_annealing", "width=1,tau=4"); /* w = 1: block annealing with w = 1 */
    sched sb = must_open("block_annealing", "width=1,tau=4");
    CHECK_EQ(hyper_n_steps(&s.h, 5), hyper_n_steps(&sb.h, 5));
    int same = 1;
    for (int st = 0; st <= 20; st++) {
        int64_t a, b;
        char x[256];
        snprintf(x, sizeof x, "%s", levels_str(&s.h, st, 5, &a));
        same &= !strcmp(x, levels_str(&sb.h, st, 5, &b)) && a == b;
    }
    CHECK(same);
    sched_close(&s);
    sched_close(&sb);
}

static void test_times(void) {
    /* spec §1.8 example: block w=4, τ=4, L=12 */
    sched s = must_open("block_annealing", "width=4,tau=4");
    int32_t lv[12];
    int64_t ns;
    float t[12];
    uint8_t st[12];
    error e = {0};
    CHECK(hyper_levels(&s.h, 5, 12, lv, &ns, &e) == HDLM_OK);
    hyper_times(lv, ns, 12, 4, HYPER_SAMPLING_EPS, t, st);
    for (int i = 0; i < 12; i++) {
        /* 1e-4, 0.999 and 0.9999 as float32 (the level-3 value happens to equal f32(0.999)) */
        uint32_t want = i < 4 ? 0x38d1b717u : i < 8 ? 0x3f7fbe77u : 0x3f7ff972u;
        CHECK_EQ(fbits(t[i]), want);
        CHECK_EQ(st[i], i < 4 ? HDLM_SETTLED : i < 8 ? HDLM_ACTIVE : HDLM_WORTHLESS);
    }
    CHECK(hyper_levels(&s.h, 8, 12, lv, &ns, &e) == HDLM_OK);
    hyper_times(lv, ns, 12, 4, HYPER_SAMPLING_EPS, t, st);
    for (int i = 4; i < 8; i++) {
        CHECK_EQ(fbits(t[i]), 0x3a83126fu); /* a = f32(10·1e-4 in double); tokens_to_denoise */
        CHECK_EQ(st[i], HDLM_ACTIVE);
    }
    CHECK_EQ(fbits(t[0]), 0x38d1b717u);
    CHECK_EQ(fbits(t[8]), 0x3f7ff972u);
    sched_close(&s);

    /* levels 1, 2 of W = 4, and every level of W = 1024 / 2048 (hash of all bit patterns, made
     * with Python's struct float32 rounding of the same operation sequence); the listed single
     * levels are ones where a double computation rounded once differs in the last bit */
    static int32_t all[2048];
    static float tt[2048];
    static uint8_t ss[2048];
    for (int i = 0; i < 2048; i++)
        all[i] = i;
    hyper_times(all, 0, 4, 4, HYPER_SAMPLING_EPS, tt, ss);
    CHECK_EQ(fbits(tt[1]), 0x3eaad65bu);
    CHECK_EQ(fbits(tt[2]), 0x3f2a94d2u);
    CHECK_EQ(ss[3], HDLM_ACTIVE);
    const struct {
        int W;
        uint64_t hash;
        int lv[2];
        uint32_t bits[2];
    } cases[] = {
        {1024, 0x99f3e45bb7e190b8ull, {1, 6}, {0x3b01786fu, 0x3be09242u}},
        {2048, 0x6aba0c2f238bd13full, {9, 17}, {0x3bb08cdbu, 0x3c182da6u}},
        {7, 0xd35ac1450fe99511ull, {5, 0}, {0x3f5529a4u, 0x3a83126fu}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int W = cases[c].W;
        hyper_times(all, 0, W, W, HYPER_SAMPLING_EPS, tt, ss);
        uint64_t hsh = 0;
        int all_active = 1;
        for (int i = 0; i < W; i++) {
            hsh = hsh * 1000003u + fbits(tt[i]); /* mod 2^64 */
            all_active &= ss[i] == HDLM_ACTIVE;
        }
        CHECK(hsh == cases[c].hash);
        CHECK(all_active);
        CHECK_EQ(fbits(tt[cases[c].lv[0]]), cases[c].bits[0]);
        CHECK_EQ(fbits(tt[cases[c].lv[1]]), cases[c].bits[1]);
    }
    /* W = 1: Δ = 0, every active position at a; another ε_s is read as its decimal value */
    int32_t zero[3] = {0, 0, 1};
    hyper_times(zero, 1, 3, 1, HYPER_SAMPLING_EPS, tt, ss);
    CHECK_EQ(ss[0], HDLM_SETTLED);
    CHECK_EQ(fbits(tt[1]), 0x3a83126fu);
    CHECK_EQ(ss[2], HDLM_WORTHLESS);
    int32_t two[2] = {0, 2};
    hyper_times(two, 0, 2, 2, 1e-3f, tt, ss); /* a = 0.01, clamp at [f32(1e-3), f32(0.999)] */
    CHECK(tt[0] == (float)0.01);
    CHECK(tt[1] == (float)0.999);
}

static void test_autoregressive(void) {
    sched s = must_open("autoregressive", "");
    const hyper *h = &s.h;
    CHECK_EQ(hyper_n_levels(h), 2);
    CHECK_EQ(hyper_n_steps(h, 5), 5);
    CHECK_ROW(h, 0, 5, 0, "2 2 2 2 2");
    CHECK_ROW(h, 1, 5, 0, "1 2 2 2 2");
    CHECK_ROW(h, 3, 5, 2, "0 0 1 2 2");
    CHECK_ROW(h, 5, 5, 4, "0 0 0 0 1");
    CHECK_CONTAINS(levels_str(h, 6, 5, NULL), "beyond the last step 5");
    int64_t block = 0;
    CHECK_EQ(h->ops->growth(h->self, &block), HDLM_GROW_BLOCKS);
    CHECK_EQ(block, 1);
    /* the active token is fully masked in practice: t = 1 − a */
    int32_t lv[5];
    int64_t ns;
    float t[5];
    uint8_t st[5];
    error e = {0};
    CHECK(hyper_levels(h, 3, 5, lv, &ns, &e) == HDLM_OK);
    hyper_times(lv, ns, 5, 2, HYPER_SAMPLING_EPS, t, st);
    CHECK_EQ(st[1], HDLM_SETTLED);
    CHECK_EQ(st[2], HDLM_ACTIVE);
    CHECK_EQ(st[3], HDLM_WORTHLESS);
    CHECK(t[2] == (float)0.999);
    sched_close(&s);
}

static void test_diffusion(void) {
    sched s = must_open("diffusion", "tau=5");
    const hyper *h = &s.h;
    CHECK_EQ(hyper_n_levels(h), 5);
    CHECK_EQ(hyper_n_steps(h, 6), 5);
    CHECK_ROW(h, 0, 6, 0, "5 5 5 5 5 5");
    CHECK_ROW(h, 1, 6, 0, "4 4 4 4 4 4");
    CHECK_ROW(h, 5, 6, 0, "0 0 0 0 0 0");
    CHECK_EQ(h->flags, 0); /* continuous is per instance: applied by the Lua binding */
    int64_t block = 0;
    CHECK_EQ(h->ops->growth(h->self, &block), HDLM_GROW_BLOCKS);
    CHECK(block >= (1 << 30));
    /* = block annealing with w >= L */
    sched b = must_open("block_annealing", "width=64,tau=5");
    int same = 1;
    for (int st = 0; st <= 5; st++) {
        int64_t x, y;
        char a[256];
        snprintf(a, sizeof a, "%s", levels_str(h, st, 6, &x));
        same &= !strcmp(a, levels_str(&b.h, st, 6, &y)) && x == y;
    }
    CHECK(same);
    sched_close(&b);
    sched_close(&s);
    s = must_open("diffusion", "tau=8,continuous=true");
    CHECK_EQ(hyper_n_steps(&s.h, 3), 8);
    sched_close(&s);
}

static void test_refusals(void) {
    sched s;
    error e = {0};
    CHECK(sched_open(&s, "simple_annealing", "width=1", &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "'width' must be >= 2, got 1");
    CHECK_CONTAINS(e.msg, "autoregressive");
    CHECK(sched_open(&s, "diffusion", "tau=0", &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "option 'tau' must be in 2..");
    CHECK(sched_open(&s, "block_annealing", "tau=1", &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "'tau' must be in 2..");
    CHECK(sched_open(&s, "block_annealing", "width=0", &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "'width' must be in 1..");
    CHECK(sched_open(&s, "hybrid_annealing", "tau=-3", &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "'tau' must be in 2..");
    CHECK(sched_open(&s, "block_annealing", "width=2.5", &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "must be an integer");
    CHECK(sched_open(&s, "autoregressive", "width=2", &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "takes no options");
    /* step out of range: each plugin refuses by itself, and hyper_levels names the schedule */
    static const char *const names[] = {"autoregressive", "diffusion", "block_annealing",
                                        "simple_annealing", "hybrid_annealing"};
    for (size_t i = 0; i < 5; i++) {
        s = must_open(names[i], "");
        int64_t n = hyper_n_steps(&s.h, 9), ns;
        int32_t lv[9];
        char err[256] = "";
        CHECK(s.inst->ops != NULL);
        const hdlm_schedule_ops *ops = s.inst->ops;
        CHECK(ops->levels(s.inst->self, n + 1, 9, lv, &ns, err, sizeof err) == HDLM_EINVAL);
        CHECK_CONTAINS(err, "is outside 0..");
        CHECK(ops->levels(s.inst->self, -1, 9, lv, &ns, err, sizeof err) == HDLM_EINVAL);
        CHECK(hyper_levels(&s.h, n + 1, 9, lv, &ns, &e) != HDLM_OK);
        CHECK_CONTAINS(e.msg, names[i]);
        CHECK(hyper_levels(&s.h, -1, 9, lv, &ns, &e) != HDLM_OK);
        CHECK(hyper_levels(&s.h, 0, -1, lv, &ns, &e) != HDLM_OK);
        CHECK_EQ(hyper_n_steps(&s.h, 0), 0);
        /* the hyper is the instance and its ops, nothing in between */
        CHECK(s.h.ops == s.inst->ops && s.h.self == s.inst->self);
        sched_close(&s);
    }
}

/* ---- hyper_levels checks on a broken source ---- */

typedef struct fake {
    int mode;
} fake;

static int32_t fake_W(void *self) {
    (void)self;
    return 3;
}
static int64_t fake_steps(void *self, int64_t L) {
    (void)self;
    return L;
}
static uint32_t fake_growth(void *self, int64_t *block) {
    (void)self;
    *block = 1;
    return HDLM_GROW_TOKENS;
}
static int fake_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *ns, char *err,
                       size_t err_cap) {
    const fake *f = self;
    (void)step;
    for (int64_t i = 0; i < L; i++)
        level[i] = 1;
    *ns = 0;
    switch (f->mode) {
    case 1:
        level[2] = 4;
        break; /* above W */
    case 2:
        level[1] = -1;
        break; /* negative */
    case 3:
        *ns = 2;
        break; /* settled but not at level 0 */
    case 4:
        *ns = L + 1;
        break; /* more settled than positions */
    case 5:
        snprintf(err, err_cap, "fake refuses");
        return HDLM_EINVAL;
    default:
        break;
    }
    return HDLM_OK;
}

static void fake_info(void *self, hdlm_info *info) {
    (void)self, (void)info;
}

static void test_checks(void) {
    fake f = {0};
    static const hdlm_schedule_ops fake_ops = {
        .head = {.struct_size = sizeof fake_ops, .info = fake_info},
        .n_levels = fake_W,
        .n_steps = fake_steps,
        .levels = fake_levels,
        .growth = fake_growth};
    hyper h;
    hyper_from_plugin(&h, &f, &fake_ops, "fake");
    int32_t lv[4];
    int64_t ns;
    error e = {0};
    CHECK(hyper_levels(&h, 1, 4, lv, &ns, &e) == HDLM_OK);
    const char *want[] = {"",
                          "level 4 at position 2 is outside 0..3",
                          "level -1 at position 1 is outside 0..3",
                          "position 0 is settled (n_settled = 2) but at level 1",
                          "n_settled = 5 is outside 0..L = 4",
                          "fake refuses"};
    for (int m = 1; m <= 5; m++) {
        f.mode = m;
        CHECK(hyper_levels(&h, 3, 4, lv, &ns, &e) != HDLM_OK);
        CHECK_CONTAINS(e.msg, want[m]);
        if (m < 5) CHECK_CONTAINS(e.msg, "schedule 'fake' step 3");
    }
    f.mode = 0;
    CHECK(hyper_levels(&h, 5, 4, lv, &ns, &e) != HDLM_OK);
    CHECK_CONTAINS(e.msg, "step 5 is beyond the last step 4");
}

/* ---- properties of every schedule ---- */

static void check_properties(const char *name, const char *opts, int64_t L) {
    sched s = must_open(name, opts);
    const hyper *h = &s.h;
    int32_t W = hyper_n_levels(h);
    int64_t n = hyper_n_steps(h, L);
    int32_t *prev = malloc((size_t)L * sizeof *prev), *cur = malloc((size_t)L * sizeof *cur);
    int64_t prev_ns = 0, ns = 0;
    int ok_mono = 1, ok_prefix = 1, ok_suffix = 1, ok_final = 1, ok_all = 1;
    error e = {0};
    for (int64_t st = 0; st <= n; st++) {
        if (hyper_levels(h, st, L, cur, &ns, &e) != HDLM_OK) {
            fprintf(stderr, "%s(%s) L=%lld step %lld: %s\n", name, opts, (long long)L,
                    (long long)st, e.msg);
            ok_all = 0;
            break;
        }
        if (st == 0) {
            for (int64_t i = 0; i < L; i++)
                ok_all &= cur[i] == W;
            ok_all &= ns == 0;
        } else {
            for (int64_t i = 0; i < L; i++)
                ok_mono &= cur[i] <= prev[i];
            ok_prefix &= ns >= prev_ns;
        }
        /* worthless positions come after every active one */
        int64_t last_active = -1, first_w = L;
        for (int64_t i = ns; i < L; i++) {
            if (cur[i] < W) last_active = i;
            if (cur[i] == W && i < first_w) first_w = i;
        }
        ok_suffix &= last_active < first_w;
        memcpy(prev, cur, (size_t)L * sizeof *cur);
        prev_ns = ns;
    }
    /* the final step leaves nothing worthless and, for the annealing schedules, all zero (the
     * autoregressive one ends with its last token active at level 1) */
    for (int64_t i = 0; i < L; i++) {
        ok_final &= cur[i] < W;
        if (strcmp(name, "autoregressive")) ok_final &= cur[i] == 0;
    }
    if (!(ok_mono && ok_prefix && ok_suffix && ok_final && ok_all))
        fprintf(stderr,
                "property failure: %s(%s) L=%lld: mono %d prefix %d suffix %d final %d "
                "all %d\n",
                name, opts, (long long)L, ok_mono, ok_prefix, ok_suffix, ok_final, ok_all);
    CHECK(ok_mono && ok_prefix && ok_suffix && ok_final && ok_all);
    free(prev);
    free(cur);
    sched_close(&s);
}

static void test_properties(void) {
    static const char *const cfgs[][2] = {
        {"autoregressive", ""},
        {"diffusion", "tau=7"},
        {"diffusion", "tau=2"},
        {"block_annealing", "width=4,tau=4"},
        {"block_annealing", "width=5,tau=3"},
        {"block_annealing", "width=1,tau=2"},
        {"block_annealing", "width=64,tau=32"},
        {"simple_annealing", "width=4,tau=4"},
        {"simple_annealing", "width=5,tau=3"},
        {"simple_annealing", "width=4,tau=8"},
        {"simple_annealing", "width=16,tau=2"},
        {"simple_annealing", "width=2,tau=2"},
        {"hybrid_annealing", "width=3,tau=3"},
        {"hybrid_annealing", "width=4,tau=9"},
        {"hybrid_annealing", "width=1,tau=2"},
    };
    static const int64_t Ls[] = {1, 2, 7, 16, 33, 100};
    for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++)
        for (size_t l = 0; l < sizeof Ls / sizeof *Ls; l++)
            check_properties(cfgs[c][0], cfgs[c][1], Ls[l]);
}

/* ---- the settled layout rule (hyper_mask_width, hyper_cache_exact) ---- */

/* The picture of a mask: one line per query row, '#' where the key is visible. */
static void mask_picture(const attn_row *rows, int L, char *out) {
    for (int i = 0; i < L; i++) {
        for (int j = 0; j < L; j++)
            *out++ = mask_row_allows(&rows[i], j) ? '#' : '.';
        *out++ = i + 1 < L ? '|' : '\0';
    }
}

static void test_mask_width(void) {
    /* simple annealing w = 4, τ = 4, L = 8, step 6 (n_s = 2, active 2..5): the reference's
     * block_causal rows with blocks of the annealing width are 0–1 "##......", 2–5 "######..",
     * 6–7 blocked; hdlm's default (width 1, exact cache) gives row 0 "#......." */
    sched s = must_open("simple_annealing", "width=4,tau=4");
    int32_t lv[8];
    int64_t ns;
    float t[8];
    uint8_t st[8];
    attn_row rows[8];
    char pic[80];
    error e = {0};
    CHECK_EQ(hyper_levels(&s.h, 6, 8, lv, &ns, &e), HDLM_OK);
    CHECK_EQ(ns, 2);
    hyper_times(lv, ns, 8, hyper_n_levels(&s.h), HYPER_SAMPLING_EPS, t, st);
    CHECK_EQ(hyper_mask_width(&s.h, 8, 0), 1);
    CHECK_EQ(hyper_mask_width(&s.h, 8, 4), 4);
    CHECK_EQ(hyper_mask_width(&s.h, 8, 99), 8); /* clamped to L */
    mask_rows_from_states(rows, st, 8, MASK_CTX_BLOCK_CAUSAL, hyper_mask_width(&s.h, 8, 4),
                          MASK_BLOCK_FULL);
    mask_picture(rows, 8, pic);
    CHECK_STR(pic, "##......|##......|######..|######..|######..|######..|........|........");
    mask_rows_from_states(rows, st, 8, MASK_CTX_BLOCK_CAUSAL, hyper_mask_width(&s.h, 8, 0),
                          MASK_BLOCK_FULL);
    mask_picture(rows, 8, pic);
    CHECK_STR(pic, "#.......|##......|######..|######..|######..|######..|........|........");
    /* the cache is exact with width 1 or causal context, not with blocks wider than what settles
     * at once, never with full context */
    CHECK(hyper_cache_exact(&s.h, 8, MASK_CTX_BLOCK_CAUSAL, 0));
    CHECK(!hyper_cache_exact(&s.h, 8, MASK_CTX_BLOCK_CAUSAL, 4));
    CHECK(hyper_cache_exact(&s.h, 8, MASK_CTX_CAUSAL, 4));
    CHECK(!hyper_cache_exact(&s.h, 8, MASK_CTX_FULL, 0));
    sched_close(&s);
    /* block annealing: the schedule's block by default; a width dividing the block stays exact */
    s = must_open("block_annealing", "width=4,tau=4");
    CHECK_EQ(hyper_mask_width(&s.h, 12, 0), 4);
    CHECK(hyper_cache_exact(&s.h, 12, MASK_CTX_BLOCK_CAUSAL, 0));
    CHECK(hyper_cache_exact(&s.h, 12, MASK_CTX_BLOCK_CAUSAL, 2));
    CHECK(!hyper_cache_exact(&s.h, 12, MASK_CTX_BLOCK_CAUSAL, 8));
    sched_close(&s);
    s = must_open("autoregressive", "");
    CHECK_EQ(hyper_mask_width(&s.h, 12, 0), 1);
    sched_close(&s);
}

int main(void) {
    error e = {0};
    char refusals[4096] = "";
    if (plugin_registry_open(&reg, &e) != HDLM_OK ||
        plugin_registry_load_default(reg, refusals, sizeof refusals, &e) < 0) {
        fprintf(stderr, "plugin registry: %s\n", e.msg);
        return 1;
    }
    static const char *const names[] = {"autoregressive", "diffusion", "block_annealing",
                                        "simple_annealing", "hybrid_annealing"};
    for (size_t i = 0; i < 5; i++) {
        const plugin_entry *pe = plugin_registry_find(reg, HDLM_KIND_SCHEDULE, names[i]);
        CHECK(pe != NULL);
        if (!pe) {
            fprintf(stderr, "schedule plugin %s not found in %s (refusals: %s)\n", names[i],
                    HDLM_PLUGIN_DIR, refusals);
            return 1;
        }
        CHECK_STR(pe->desc->version, "1.0.0");
        CHECK(pe->desc->summary && strlen(pe->desc->summary) > 20);
    }
    test_simple_examples();
    test_block_examples();
    test_hybrid_examples();
    test_against_reference_objects();
    test_step_counts();
    test_times();
    test_autoregressive();
    test_diffusion();
    test_refusals();
    test_mask_width();
    test_checks();
    test_properties();
    plugin_registry_close(reg);
    return check_report("test_hyper");
}
