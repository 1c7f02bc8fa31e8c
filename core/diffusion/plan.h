/* The schedule plan: everything training, sampling and evaluation derive from a hyperschedule
 * for one sequence length and one attention layout, compiled once when a run starts and then
 * only read (docs/method.md "Levels, steps and states", "From levels to times", "Attention
 * masks", "The KV cache", "The 2L (vectorised) layout"). It holds the level table, the settled
 * prefix of every step, the float32 times and states of every step, the settled-context width,
 * whether the KV cache is exact, which steps make block k the active one, whether the 2L layout
 * computes what the per-step passes compute, and the reverse step of every position (t_now,
 * t_next, first active step). The three consumers (method.c, sample.c, eval.c) read these and
 * keep no rule of their own.
 *
 * Compiling checks the schedule's invariants and refuses a schedule that breaks one, naming the
 * schedule, the step, the position and the values: levels in 0..W; step 0 is the start (nothing
 * settled, every level W); levels never rise from a step to the next; the settled prefix never
 * shrinks and its positions are at level 0; a schedule that settles whole blocks settles a whole
 * number of blocks (or everything); no position is still worthless at the last step; n_steps is
 * at least 1 and the same at the end of compiling as at the start. */
#ifndef HDLM_PLAN_H
#define HDLM_PLAN_H

#include "base/error.h"
#include "diffusion/hyper.h"
#include "hdlm/plugin.h"

#include <stdint.h>

#define PLAN_MAX_STEPS (1LL << 24) /* steps of one length */
#define PLAN_MAX_TABLE (1LL << 26) /* (n_steps + 1) x L entries of the level table */

/* The attention layout a run uses (nn/mask.h). */
typedef struct plan_layout {
    int context;       /* MASK_CTX_* of the settled region */
    int context_width; /* block_causal settled width; 0 = the schedule's default */
} plan_layout;

typedef struct plan {
    const char *name; /* the schedule's (borrowed from the hyper) */
    int L;
    int32_t W;       /* worthless level */
    int64_t K;       /* steps 1..K */
    uint32_t growth; /* HDLM_GROW_* */
    int64_t block;   /* growth block (1 for token growth) */
    int continuous;  /* the instance's HDLM_INFO_CONTINUOUS */
    plan_layout layout;
    int mask_w;       /* block width of the block_causal settled context (hyper_mask_width) */
    int cache_exact;  /* settled keys/values never change (hyper_cache_exact) */
    int32_t *levels;  /* (K + 1, L) */
    int64_t *settled; /* (K + 1) settled prefix n(s) */
    float *t;         /* (K + 1, L) level times (ε_s = HYPER_SAMPLING_EPS) */
    uint8_t *state;   /* (K + 1, L) HDLM_SETTLED / ACTIVE / WORTHLESS */
    /* the 2L layout: block k = positions [block_start[k], block_start[k] + block) ∩ [0, L) */
    int vectorisable; /* the 2L layout computes exactly the per-step passes (reason below if 0) */
    char why_not[320];
    int n_blocks;         /* blocks of the sequence (growth blocks with block < L), else 0 */
    int32_t *block_start; /* (n_blocks) */
    int64_t *block_off;   /* (n_blocks + 1) offsets into block_steps */
    int64_t *block_steps; /* steps at which block k is the active one, ascending */
} plan;

/* Compiles the plan of hyper h for length L (1 <= L) and layout lay, checking the schedule's
 * invariants. The plan borrows h's name only; h may go once compiled. */
int plan_compile(plan *p, const hyper *h, int L, const plan_layout *lay, error *e);
void plan_free(plan *p);

static inline const int32_t *plan_levels(const plan *p, int64_t s) {
    return p->levels + (size_t)s * p->L;
}
static inline const float *plan_times(const plan *p, int64_t s) {
    return p->t + (size_t)s * p->L;
}
static inline const uint8_t *plan_states(const plan *p, int64_t s) {
    return p->state + (size_t)s * p->L;
}

/* The step of a uniform draw u in [0, 1): 1 + floor(u K), at most K (training draws, the
 * bound's stratified draws). */
static inline int64_t plan_step_of(const plan *p, double u) {
    int64_t s = 1 + (int64_t)(u * (double)p->K);
    return s > p->K ? p->K : s;
}

/* The steps at which block k is the active one (the block right after the settled prefix, not
 * all worthless): *n of them. */
static inline const int64_t *plan_block_steps(const plan *p, int k, int64_t *n) {
    *n = p->block_off[k + 1] - p->block_off[k];
    return p->block_steps + p->block_off[k];
}
static inline int plan_block_end(const plan *p, int k) {
    int64_t hi = p->block_start[k] + p->block;
    return (int)(hi < p->L ? hi : p->L);
}

/* What the generative chain does to position i at step s (1..K), the same for sampling and the
 * bound (docs/method.md "From levels to times"). */
typedef struct plan_move {
    uint8_t state; /* at step s */
    uint8_t first; /* active for the first time: it comes from the limit state */
    float t;       /* level time at s: σ conditioning (and training's corruption) */
    float t_now;   /* the reverse step starts here: 1 at the first active step, else t */
    float t_next;  /* and ends here: 0 when settled at s + 1 or at the last step, else the
                      level time at s + 1 */
} plan_move;

static inline plan_move plan_move_at(const plan *p, int64_t s, int64_t i) {
    size_t j = (size_t)s * p->L + (size_t)i, L = (size_t)p->L;
    plan_move m;
    m.state = p->state[j];
    m.t = p->t[j];
    m.first = m.state == HDLM_ACTIVE && (s == 1 || p->state[j - L] == HDLM_WORTHLESS);
    m.t_now = m.first ? 1.0f : m.t;
    m.t_next = s == p->K || p->state[j + L] == HDLM_SETTLED ? 0.0f : p->t[j + L];
    return m;
}

#endif
