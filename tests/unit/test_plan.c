/* The schedule plan (diffusion/plan.c) and its three consumers. For every shipped schedule (and
 * a schedule written in Lua, through the real binding) at a few lengths, what each consumer
 * actually iterates is recorded and compared:
 *   - sampling (sample_run): the probe sampler records every step's states, t_now and t_next;
 *   - the bound (eval_bound, exact mode): the probe noise records what `bound` gets per step —
 *     per-step layout (one step per pass) and the 2L layout (one step per block per pass);
 *   - training (method_prepare): the times, states and attention rows of every sequence, per-step
 *     (one drawn step per sequence) and in the 2L layout (one drawn step per block).
 * Sampling and the bound must see the same steps, states and times position for position; each
 * training draw must be one of those steps with its level times (read independently through
 * hyper_levels / hyper_times); the 2L layout's block k must run exactly the steps at which the
 * sampler has block k active right after the settled prefix, in both training and the bound.
 * Then the invariants: each kind of broken schedule is refused when a plan is compiled, with the
 * schedule, step, position and values named. */
#include "base/rng.h"
#include "check.h"
#include "diffusion/eval.h"
#include "diffusion/hyper.h"
#include "diffusion/method.h"
#include "diffusion/plan.h"
#include "diffusion/sample.h"
#include "lua/l_internal.h"
#include "nn/mask.h"
#include "nn/model.h"
#include "plugin/host.h"
#include "plugins/probes/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#define V     10 /* real tokens; the probe adds the mask, id V */
#define VP    (V + 1)
#define L_MAX 16
#define K_MAX 64

static plugin_registry *reg;

static plugin_instance *make(uint32_t kind, const char *name, const char *opts) {
    plugin_opts *o = plugin_opts_new();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", opts);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        HDLM_ASSERT(eq);
        *eq = '\0';
        plugin_opts_set_text(o, tok, eq + 1);
    }
    if (kind == HDLM_KIND_NOISE) plugin_opts_set_number(o, "vocab", V);
    plugin_instance *p = NULL;
    error e = {0};
    if (plugin_instance_create(reg, kind, name, o, NULL, &p, &e) != HDLM_OK) {
        fprintf(stderr, "cannot make %s(%s): %s\n", name, opts, e.msg);
        exit(1);
    }
    return p;
}

static void make_model(model *m) {
    model_config c = {
        .vocab = VP, .d_model = 16, .n_layer = 1, .n_head = 2, .seq_len = L_MAX, .mask_id = -1};
    error e = {0};
    if (model_init(m, &c, 7, &e) != HDLM_OK) {
        fprintf(stderr, "model_init: %s\n", e.msg);
        exit(1);
    }
}

/* ---- what each consumer iterates ------------------------------------------------------------ */

/* One step as a consumer sees it, over the L positions. */
typedef struct seen {
    int on;
    uint8_t state[L_MAX];
    float t_now[L_MAX], t_next[L_MAX];
} seen;

typedef struct ctx {
    model *m;
    plugin_instance *noise, *smp;
    const hyper *h;
    const char *what;
    int L;
    int64_t K;
    int32_t W;
    float tl[K_MAX + 1][L_MAX]; /* level times from hyper_levels / hyper_times directly */
    uint8_t sl[K_MAX + 1][L_MAX];
    int64_t nset[K_MAX + 1];
} ctx;

static void read_source(ctx *c) {
    c->K = hyper_n_steps(c->h, c->L);
    c->W = hyper_n_levels(c->h);
    HDLM_ASSERT(c->K >= 1 && c->K <= K_MAX);
    for (int64_t s = 0; s <= c->K; s++) {
        int32_t lv[L_MAX];
        error e = {0};
        HDLM_ASSERT(hyper_levels(c->h, s, c->L, lv, &c->nset[s], &e) == HDLM_OK);
        hyper_times(lv, c->nset[s], c->L, c->W, HYPER_SAMPLING_EPS, c->tl[s], c->sl[s]);
    }
}

/* Sampling: the probe sampler's record of every step (B = 1, no cache). */
static int sampled(ctx *c, seen *out /* (K + 1) */) {
    memset(out, 0, (size_t)(c->K + 1) * sizeof *out);
    probe_log *lg = &((probe_sampler_self *)c->smp->plugin_self)->step;
    sample_config cfg = {.B = 1,
                         .L = c->L,
                         .seed = 3,
                         .temperature = 1,
                         .top_p = 1,
                         .cache = 0,
                         .context = MASK_CTX_BLOCK_CAUSAL,
                         .block_type = MASK_BLOCK_FULL};
    probe_log_clear(lg);
    lg->on = 1;
    sample_result r;
    error e = {0};
    int rc = sample_run(c->m, c->h, c->noise->self, c->noise->ops, "probe_noise", c->smp->self,
                        c->smp->ops, "probe_sampler", &cfg, &r, &e);
    lg->on = 0;
    if (rc != HDLM_OK) {
        fprintf(stderr, "%s: sample_run: %s\n", c->what, e.msg);
        return rc;
    }
    sample_result_free(&r);
    for (size_t k = 0; k < lg->n; k++) {
        const probe_call *pc = &lg->calls[k];
        HDLM_ASSERT(pc->step >= 1 && pc->step <= c->K && pc->L == c->L);
        seen *o = &out[pc->step];
        o->on = 1;
        memcpy(o->state, pc->state, (size_t)c->L);
        memcpy(o->t_now, pc->t, (size_t)c->L * sizeof(float));
        memcpy(o->t_next, pc->s, (size_t)c->L * sizeof(float));
    }
    probe_log_clear(lg);
    return HDLM_OK;
}

static probe_log *bound_log(const ctx *c) {
    return &((probe_noise_self *)c->noise->plugin_self)->bound;
}

/* The bound, exact mode, one sequence per pass: the probe noise's `bound` calls. */
static int evaluated(ctx *c, int vectorised, eval_result *r) {
    static const int32_t seq[L_MAX] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6};
    eval_config cfg = {.context = MASK_CTX_BLOCK_CAUSAL,
                       .block_type = MASK_BLOCK_FULL,
                       .mc = 0,
                       .vectorised = vectorised,
                       .continuous = 0,
                       .batch = 1,
                       .seed = 5};
    probe_log_clear(bound_log(c));
    bound_log(c)->on = 1;
    error e = {0};
    int rc = eval_bound(c->m, c->h, c->noise->self, c->noise->ops, &cfg, seq, 1, c->L, V, r, &e);
    bound_log(c)->on = 0;
    if (rc != HDLM_OK) fprintf(stderr, "%s: eval_bound: %s\n", c->what, e.msg);
    return rc;
}

static int same_f(const float *a, const float *b, int n) {
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

/* ---- per-step layout: sampling = the bound = training's draws ---------------------------------
 */

static void check_per_step(ctx *c, const seen *smp) {
    int L = c->L;
    /* sampling visits every step in order, with the schedule's states; a position's first active
     * step starts from 1, later ones from the level time; t_next is the next level time, 0 when
     * settled next and at the last step */
    int bad_smp = 0;
    for (int64_t s = 1; s <= c->K; s++) {
        const seen *o = &smp[s];
        if (!o->on) {
            bad_smp++;
            continue;
        }
        for (int i = 0; i < L; i++) {
            int first = o->state[i] == HDLM_ACTIVE &&
                        (s == 1 || (smp[s - 1].on && smp[s - 1].state[i] == HDLM_WORTHLESS));
            float want_next = s == c->K || c->sl[s + 1][i] == HDLM_SETTLED ? 0.0f : c->tl[s + 1][i];
            bad_smp += o->state[i] != c->sl[s][i];
            bad_smp += o->t_now[i] != (first ? 1.0f : c->tl[s][i]);
            bad_smp += o->t_next[i] != want_next;
        }
    }
    if (bad_smp) fprintf(stderr, "%s L=%d: sampling differs in %d places\n", c->what, L, bad_smp);
    CHECK_EQ(bad_smp, 0);

    /* the bound, per-step layout: pass j is step j + 1, seen exactly as the sampler saw it */
    eval_result r;
    CHECK_EQ(evaluated(c, 0, &r), HDLM_OK);
    const probe_log *bl = bound_log(c);
    CHECK_EQ((int64_t)bl->n, c->K);
    CHECK(!r.vectorised && r.n_steps == c->K);
    int bad_eval = 0;
    for (size_t j = 0; j < bl->n && (int64_t)j < c->K; j++) {
        const probe_call *pc = &bl->calls[j];
        const seen *o = &smp[j + 1];
        bad_eval += pc->L != L || memcmp(pc->state, o->state, (size_t)L) ||
                    !same_f(pc->t, o->t_now, L) || !same_f(pc->s, o->t_next, L);
    }
    if (bad_eval) fprintf(stderr, "%s L=%d: %d bound passes differ\n", c->what, L, bad_eval);
    CHECK_EQ(bad_eval, 0);
    eval_result_free(&r);
    probe_log_clear(bound_log(c));

    /* training, one stratified draw per sequence: u = (b + 1/2)/K is step b + 1; its states are
     * the sampler's, its times the level times, its rows those of the layout's mask width
     * (continuous-time training draws t instead of steps) */
    if (c->h->flags & HDLM_INFO_CONTINUOUS) return;
    method me;
    method_config mc = {
        .context = MASK_CTX_BLOCK_CAUSAL, .block_type = MASK_BLOCK_FULL, .low_discrepancy = 1};
    error e = {0};
    CHECK_EQ(method_init(&me, &mc, c->h, c->noise->self, c->noise->ops, V, L, &e), HDLM_OK);
    int B = (int)c->K;
    int32_t *win = calloc((size_t)B * L, sizeof *win);
    rng *streams = malloc((size_t)B * sizeof *streams);
    for (int b = 0; b < B; b++)
        rng_init(&streams[b], 100 + (uint64_t)b);
    CHECK_EQ(method_prepare(&me, win, B, streams, 0.5 / (double)B, 0, B, &e), HDLM_OK);
    int64_t blk;
    int width = hyper_growth(c->h, &blk) == HDLM_GROW_BLOCKS ? (int)(blk < L ? blk : L) : 1;
    int bad_train = 0;
    for (int b = 0; b < B; b++) {
        int64_t s = b + 1;
        const float *t = me.t + (size_t)b * L;
        const uint8_t *st = me.state + (size_t)b * L;
        bad_train += memcmp(st, smp[s].state, (size_t)L) != 0;
        bad_train += !same_f(t, c->tl[s], L);
        for (int i = 0; i < L; i++) /* where the reverse step starts at the level time */
            if (!(st[i] == HDLM_ACTIVE && smp[s].t_now[i] == 1.0f))
                bad_train += t[i] != smp[s].t_now[i];
        attn_row rows[L_MAX];
        mask_rows_from_states(rows, smp[s].state, L, MASK_CTX_BLOCK_CAUSAL, width, MASK_BLOCK_FULL);
        for (int i = 0; i < L; i++) {
            const attn_row *q = &me.rows[(size_t)b * L + i];
            bad_train += q->lo1 != rows[i].lo1 || q->hi1 != rows[i].hi1 || q->lo2 != rows[i].lo2 ||
                         q->hi2 != rows[i].hi2;
        }
    }
    if (bad_train)
        fprintf(stderr, "%s L=%d: training differs in %d places\n", c->what, L, bad_train);
    CHECK_EQ(bad_train, 0);
    free(win), free(streams);
    method_free(&me);
}

/* ---- the 2L layout: block k runs the steps the sampler has block k active at ----------------- */

static void check_vectorised(ctx *c, const seen *smp) {
    int L = c->L;
    int64_t blk;
    if (hyper_growth(c->h, &blk) != HDLM_GROW_BLOCKS || blk >= L) return;
    int n_blocks = (int)((L + blk - 1) / blk);
    /* from the sampler's record: the steps where the blocks before k are settled, block k is
     * not and is not all worthless */
    int64_t steps[L_MAX][K_MAX];
    int cnt[L_MAX] = {0};
    for (int k = 0; k < n_blocks; k++) {
        int lo = (int)(k * blk), hi = lo + (int)blk < L ? lo + (int)blk : L;
        for (int64_t s = 1; s <= c->K; s++) {
            int ok = 1, live = 0;
            for (int i = 0; i < L; i++) {
                int settled = smp[s].state[i] == HDLM_SETTLED;
                if (i < lo) ok &= settled;
                if (i == lo) ok &= !settled;
                if (i >= lo && i < hi) live |= smp[s].state[i] != HDLM_WORTHLESS;
            }
            if (ok && live) steps[k][cnt[k]++] = s;
        }
        CHECK(cnt[k] > 0);
    }
    /* the bound: pass j holds step j of every block's list (inert once a block has none left) */
    eval_result r;
    CHECK_EQ(evaluated(c, 1, &r), HDLM_OK);
    CHECK(r.vectorised);
    int draws = 0;
    for (int k = 0; k < n_blocks; k++)
        draws = cnt[k] > draws ? cnt[k] : draws;
    const probe_log *bl = bound_log(c);
    CHECK_EQ((int64_t)bl->n, draws);
    int bad = 0;
    for (size_t j = 0; j < bl->n; j++) {
        const probe_call *pc = &bl->calls[j];
        if (pc->L != 2 * L) {
            bad++;
            continue;
        }
        for (int k = 0; k < n_blocks; k++) {
            int lo = (int)(k * blk), hi = lo + (int)blk < L ? lo + (int)blk : L;
            for (int i = lo; i < hi; i++) {
                uint8_t st = pc->state[L + i];
                if ((int)j >= cnt[k]) {
                    bad += st != HDLM_WORTHLESS;
                    continue;
                }
                const seen *o = &smp[steps[k][j]];
                bad += st != o->state[i] || pc->t[L + i] != o->t_now[i] ||
                       pc->s[L + i] != o->t_next[i];
            }
        }
    }
    if (bad) fprintf(stderr, "%s L=%d: 2L bound differs in %d places\n", c->what, L, bad);
    CHECK_EQ(bad, 0);
    eval_result_free(&r);
    probe_log_clear(bound_log(c));

    /* training: every block's draw is one of its steps (level times), and all of them come up */
    method me;
    method_config mc = {
        .context = MASK_CTX_BLOCK_CAUSAL, .block_type = MASK_BLOCK_FULL, .vectorised = 1};
    error e = {0};
    CHECK_EQ(method_init(&me, &mc, c->h, c->noise->self, c->noise->ops, V, L, &e), HDLM_OK);
    CHECK_EQ(me.T, 2 * L);
    enum { B = 256 };
    int32_t *win = calloc((size_t)B * L, sizeof *win);
    rng *streams = malloc(B * sizeof *streams);
    for (int b = 0; b < B; b++)
        rng_init(&streams[b], 900 + (uint64_t)b);
    CHECK_EQ(method_prepare(&me, win, B, streams, 0, 0, 1, &e), HDLM_OK);
    int hit[L_MAX][K_MAX];
    memset(hit, 0, sizeof hit);
    int unmatched = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < n_blocks; k++) {
            int lo = (int)(k * blk), hi = lo + (int)blk < L ? lo + (int)blk : L, found = -1;
            const float *t = me.t + (size_t)b * 2 * L + L;
            const uint8_t *st = me.state + (size_t)b * 2 * L + L;
            /* steps with equal levels in the block (a partial block's last steps) all count */
            for (int q = 0; q < cnt[k]; q++) {
                int64_t s = steps[k][q];
                if (same_f(t + lo, c->tl[s] + lo, hi - lo) &&
                    !memcmp(st + lo, c->sl[s] + lo, (size_t)(hi - lo)))
                    found = q, hit[k][q]++;
            }
            unmatched += found < 0;
        }
    CHECK_EQ(unmatched, 0);
    int missed = 0;
    for (int k = 0; k < n_blocks; k++)
        for (int q = 0; q < cnt[k]; q++)
            missed += hit[k][q] == 0;
    if (missed || unmatched)
        fprintf(stderr, "%s L=%d: 2L training: %d unmatched, %d steps never drawn\n", c->what, L,
                unmatched, missed);
    CHECK_EQ(missed, 0);
    free(win), free(streams);
    method_free(&me);
}

static void check_consumers(model *m, plugin_instance *noise, plugin_instance *smp, const hyper *h,
                            const char *what, const int *lens, int n_lens) {
    for (int li = 0; li < n_lens; li++) {
        ctx *c = calloc(1, sizeof *c);
        c->m = m, c->noise = noise, c->smp = smp, c->h = h, c->what = what, c->L = lens[li];
        read_source(c);
        seen *smp_seen = calloc((size_t)c->K + 1, sizeof *smp_seen);
        CHECK_EQ(sampled(c, smp_seen), HDLM_OK);
        check_per_step(c, smp_seen);
        check_vectorised(c, smp_seen);
        free(smp_seen);
        free(c);
    }
}

/* ---- a schedule written in Lua, through the binding --------------------------------------- */

static const char *const LUA_SCHED =
    "return hdlm.schedule{ name = 'lua_pairs', n_levels = 3, growth = 'blocks', block = 4,\n"
    "  n_steps = function(L) return 3 * ((L + 3) // 4) end,\n"
    "  levels = function(step, L)\n"
    "    local b, k = (step - 1) // 3, (step - 1) % 3\n"
    "    local lo, lv = 4 * b, {}\n"
    "    for i = 0, L - 1 do\n"
    "      if i < lo then lv[i + 1] = 0\n"
    "      elseif i < lo + 4 then lv[i + 1] = math.max(0, 2 - k - (i % 2))\n"
    "      else lv[i + 1] = 3 end\n"
    "    end\n"
    "    return lv, lo\n"
    "  end }\n";

static lua_State *lua_with_schedules(void) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    l_ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    lua_setfield(L, LUA_REGISTRYINDEX, "hdlm.ctx");
    lua_newtable(L); /* a module table holding only hdlm.schedule */
    lua_pushlightuserdata(L, c);
    int ctx_idx = lua_gettop(L);
    lua_pushvalue(L, ctx_idx - 1);
    l_schedule_register(L, ctx_idx);
    lua_pop(L, 2);
    lua_setglobal(L, "hdlm");
    return L;
}

static void test_consumers(model *m, plugin_instance *noise, plugin_instance *smp) {
    static const struct {
        const char *name, *opts;
    } shipped[] = {
        {"autoregressive", ""},
        {"diffusion", "tau=4"},
        {"diffusion", "tau=3,continuous=true"}, /* levels still drive sampling and the bound */
        {"block_annealing", "width=4,tau=3"},
        {"block_annealing", "width=3,tau=2"}, /* a partial last block at L = 8, 16 */
        {"simple_annealing", "width=3,tau=3"},
        {"hybrid_annealing", "width=4,tau=3"},
        {"hybrid_annealing", "width=3,tau=2"},
    };
    static const int lens[] = {5, 8, 16};
    for (size_t k = 0; k < sizeof shipped / sizeof shipped[0]; k++) {
        plugin_instance *p = make(HDLM_KIND_SCHEDULE, shipped[k].name, shipped[k].opts);
        hyper h;
        hyper_from_plugin(&h, p->self, p->ops, shipped[k].name);
        if (strstr(shipped[k].opts, "continuous")) h.flags |= HDLM_INFO_CONTINUOUS;
        char what[128];
        snprintf(what, sizeof what, "%s(%s)", shipped[k].name, shipped[k].opts);
        /* the autoregressive schedule's steps grow with L: stay inside K_MAX */
        check_consumers(m, noise, smp, &h, what, lens, 3);
        plugin_instance_destroy(p);
    }
    lua_State *L = lua_with_schedules();
    int rc = luaL_dostring(L, LUA_SCHED);
    CHECK_EQ(rc, LUA_OK);
    if (rc != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
    } else {
        const hyper *h = l_check_schedule(L, -1);
        CHECK(h->ops != NULL && !strcmp(h->name, "lua_pairs"));
        check_consumers(m, noise, smp, h, "lua_pairs", lens, 3);
    }
    lua_close(L);
}

/* ---- invariants: broken schedules refused at compile time ---------------------------------- */

typedef struct broken {
    int mode;
    int read_last; /* the last step was read (B_STEPS_DRIFT then answers another n_steps) */
} broken;

enum {
    B_OK,
    B_RISE,        /* position 1 rises at step 2 */
    B_START,       /* step 0 is not everything at W */
    B_SHRINK,      /* the settled prefix shrinks at step 4 */
    B_PARTIAL,     /* block growth but 3 settled (blocks of 2) */
    B_WORTHLESS,   /* position 5 still worthless at the last step */
    B_STEPS_DRIFT, /* n_steps changes between calls */
    B_NO_STEPS,    /* n_steps 0 */
};

/* A sound schedule on L = 6, W = 3, blocks of 2: block b (steps 2b+1, 2b+2) at level 2 then 0,
 * settled one step after; each mode breaks one thing. */
static int32_t br_W(void *self) {
    (void)self;
    return 3;
}
static int64_t br_steps(void *self, int64_t L) {
    broken *b = self;
    if (b->mode == B_NO_STEPS) return 0;
    return b->mode == B_STEPS_DRIFT ? L + b->read_last : L;
}
static uint32_t br_growth(void *self, int64_t *block) {
    (void)self;
    *block = 2;
    return HDLM_GROW_BLOCKS;
}
static int br_levels(void *self, int64_t step, int64_t L, int32_t *level, int64_t *ns, char *err,
                     size_t cap) {
    broken *b = self;
    (void)err, (void)cap;
    int64_t blk = step == 0 ? -1 : (step - 1) / 2, k = step == 0 ? 0 : (step - 1) % 2;
    for (int64_t i = 0; i < L; i++)
        level[i] = i / 2 < blk ? 0 : i / 2 == blk ? (k == 0 ? 2 : 0) : 3;
    *ns = step == 0 ? 0 : 2 * blk;
    if (step == L) b->read_last = 1;
    switch (b->mode) {
    case B_RISE:
        if (step == 2) level[1] = 3; /* back to W inside the active block */
        break;
    case B_START:
        if (step == 0) level[4] = 1;
        break;
    case B_SHRINK:
        if (step == 4) *ns = 0;
        break;
    case B_PARTIAL:
        if (step == 4) *ns = 3, level[3] = 0, level[2] = 0;
        break;
    case B_WORTHLESS:
        if (step >= L - 1) level[5] = 3, level[4] = 3; /* block 2 never starts */
        break;
    default:
        break;
    }
    return HDLM_OK;
}

static void br_info(void *self, hdlm_info *info) {
    (void)self, (void)info;
}

static const hdlm_schedule_ops br_ops = {.head = {.struct_size = sizeof br_ops, .info = br_info},
                                         .n_levels = br_W,
                                         .n_steps = br_steps,
                                         .levels = br_levels,
                                         .growth = br_growth};

static void test_invariants(void) {
    static const struct {
        int mode;
        const char *want[3];
    } cases[] = {
        {B_RISE,
         {"schedule 'broken' step 2", "position 1 rises from level 2 at step 1 to 3",
          "levels never rise"}},
        {B_START, {"schedule 'broken' step 0", "position 4 is at level 1, expected W = 3", ""}},
        {B_SHRINK, {"schedule 'broken' step 4", "n_settled = 0 is below 2 at step 3", ""}},
        {B_PARTIAL,
         {"schedule 'broken' step 4", "n_settled = 3 is not a whole number of blocks", "of 2"}},
        {B_WORTHLESS,
         {"schedule 'broken' step 6 (the last)", "position 4 is still at level W = 3",
          "never denoised"}},
        {B_STEPS_DRIFT, {"schedule 'broken'", "n_steps(6) returned", "n_steps must depend"}},
        {B_NO_STEPS, {"schedule 'broken'", "0 steps for length 6", ""}},
    };
    plan_layout lay = {.context = MASK_CTX_BLOCK_CAUSAL};
    broken b = {B_OK};
    hyper h;
    hyper_from_plugin(&h, &b, &br_ops, "broken");
    plan p;
    error e = {0};
    CHECK_EQ(plan_compile(&p, &h, 6, &lay, &e), HDLM_OK);
    CHECK(p.vectorisable && p.n_blocks == 3 && p.K == 6 && p.mask_w == 2 && p.cache_exact);
    int64_t n;
    const int64_t *st = plan_block_steps(&p, 1, &n);
    CHECK(n == 2 && st[0] == 3 && st[1] == 4);
    plan_free(&p);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        b.mode = cases[k].mode, b.read_last = 0;
        memset(&e, 0, sizeof e);
        CHECK(plan_compile(&p, &h, 6, &lay, &e) != HDLM_OK);
        for (int q = 0; q < 3; q++)
            if (cases[k].want[q][0]) CHECK_CONTAINS(e.msg, cases[k].want[q]);
    }
    /* the 2L predicate, with its reason */
    b.mode = B_OK;
    lay.context = MASK_CTX_FULL;
    CHECK_EQ(plan_compile(&p, &h, 6, &lay, &e), HDLM_OK);
    CHECK(!p.vectorisable && !p.cache_exact);
    CHECK_CONTAINS(p.why_not, "context 'full' leaks");
    plan_free(&p);
    lay.context = MASK_CTX_CAUSAL;
    CHECK_EQ(plan_compile(&p, &h, 2, &lay, &e), HDLM_OK);
    CHECK(!p.vectorisable && p.n_blocks == 0);
    CHECK_CONTAINS(p.why_not, "one block of 2 >= length 2");
    plan_free(&p);
}

/* The plan's reverse-step rule on one schedule, value by value (block annealing w = 2, τ = 2,
 * L = 4: steps 1-2 block 0 at levels 1, 0; steps 3-4 block 1). */
static void test_moves(void) {
    plugin_instance *ba = make(HDLM_KIND_SCHEDULE, "block_annealing", "width=2,tau=2");
    hyper h;
    hyper_from_plugin(&h, ba->self, ba->ops, "block_annealing");
    plan p;
    plan_layout lay = {.context = MASK_CTX_BLOCK_CAUSAL};
    error e = {0};
    CHECK_EQ(plan_compile(&p, &h, 4, &lay, &e), HDLM_OK);
    CHECK_EQ(p.K, 4);
    const float a = 1e-3f, lo = 1e-4f, hi = 0.9999f, top = 0.999f; /* level 0, settled, W, 1 */
    plan_move m = plan_move_at(&p, 1, 0);                          /* block 0 enters at level 1 */
    CHECK(m.state == HDLM_ACTIVE && m.first && m.t_now == 1.0f && fabsf(m.t - top) < 1e-6f);
    CHECK(fabsf(m.t_next - a) < 1e-6f);
    m = plan_move_at(&p, 2, 0); /* level 0, settles at step 3 */
    CHECK(m.state == HDLM_ACTIVE && !m.first && m.t_now == m.t && m.t_next == 0.0f);
    m = plan_move_at(&p, 2, 3); /* worthless */
    CHECK(m.state == HDLM_WORTHLESS && fabsf(m.t_now - hi) < 1e-6f && m.t_now == m.t);
    CHECK(fabsf(m.t_next - top) < 1e-6f); /* block 1 enters at level 1 next */
    m = plan_move_at(&p, 3, 0);           /* settled */
    CHECK(m.state == HDLM_SETTLED && fabsf(m.t - lo) < 1e-8f && m.t_next == 0.0f);
    m = plan_move_at(&p, 3, 2); /* block 1 enters */
    CHECK(m.first && m.t_now == 1.0f);
    m = plan_move_at(&p, 4, 3); /* the last step ends at 0 */
    CHECK(!m.first && m.t_next == 0.0f);
    CHECK_EQ(plan_step_of(&p, 0.0), 1);
    CHECK_EQ(plan_step_of(&p, 0.2499), 1);
    CHECK_EQ(plan_step_of(&p, 0.25), 2);
    CHECK_EQ(plan_step_of(&p, 0.9999999), 4);
    plan_free(&p);
    plugin_instance_destroy(ba);
}

int main(void) {
    error e = {0};
    char refusals[4096] = "", dir[1024];
    const char *fd = getenv("HDLM_FIXTURE_DIR");
    snprintf(dir, sizeof dir, "%s/probes", fd && *fd ? fd : "tests/plugins");
    CHECK_EQ(plugin_registry_open(&reg, &e), HDLM_OK);
    CHECK(plugin_registry_load_default(reg, refusals, sizeof refusals, &e) >= 0);
    if (plugin_registry_load_dir(reg, dir, refusals, sizeof refusals, &e) < 2 ||
        !plugin_registry_find(reg, HDLM_KIND_NOISE, "probe_noise")) {
        fprintf(stderr, "probe fixtures not found in %s: %s %s\n", dir, e.msg, refusals);
        return 1;
    }
    plugin_instance *noise = make(HDLM_KIND_NOISE, "probe_noise", "");
    plugin_instance *smp = make(HDLM_KIND_SAMPLER, "probe_sampler", "");
    model m;
    make_model(&m);
    test_moves();
    test_invariants();
    test_consumers(&m, noise, smp);
    model_free(&m);
    plugin_instance_destroy(noise);
    plugin_instance_destroy(smp);
    plugin_registry_close(reg);
    return check_report("test_plan");
}
