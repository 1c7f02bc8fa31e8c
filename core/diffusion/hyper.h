/* Hyperschedules seen from the core: a source of levels (a schedule plugin, or a schedule written
 * in Lua) plus the level -> time / state conversion of docs/method.md "From levels to times",
 * computed in float32 exactly as the reference does so that times are bit-identical. The core knows
 * no schedule by name. */
#ifndef HDLM_HYPER_H
#define HDLM_HYPER_H

#include "base/error.h"
#include "hdlm/plugin.h"

#include <stdint.h>

#define HYPER_SAMPLING_EPS                                                                         \
    1e-4f /* ε_s of docs/method.md "From levels to times" (annealing.sampling_eps) */

/* A schedule as the core sees it: an instance (self) and the schedule ops of docs/method.md
 * "Levels, steps and states" (hdlm/plugin.h), whether they come from a plugin or from a schedule
 * written in Lua (which fills an hdlm_schedule_ops table of its own). flags are the instance's:
 * the ops' flags plus what the instance's options add (`continuous`). Read levels through
 * hyper_levels (checked) or, for a whole run, through a compiled plan (diffusion/plan.h). */
typedef struct hyper {
    void *self;
    const hdlm_schedule_ops *ops;
    uint32_t flags;   /* HDLM_SCHEDULE_* */
    const char *name; /* for messages */
} hyper;

/* A hyper over a schedule instance (a plugin's, or a Lua schedule's own ops). */
void hyper_from_plugin(hyper *h, void *self, const hdlm_schedule_ops *ops, const char *name);

static inline int32_t hyper_n_levels(const hyper *h) {
    return h->ops->n_levels(h->self);
}
/* < 0 when the source failed (a Lua error); hyper_levels then reports why */
static inline int64_t hyper_n_steps(const hyper *h, int64_t L) {
    return h->ops->n_steps(h->self, L);
}
/* HDLM_GROW_*; *block = the growth block, 1 for token growth (or a block < 1) */
uint32_t hyper_growth(const hyper *h, int64_t *block);

/* Levels of step (0 <= step <= n_steps(L)), checked: every level in 0..W, settled prefix levels
 * 0, n_settled in 0..L. A schedule that breaks these is reported with its name and the step. */
int hyper_levels(const hyper *h, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                 error *e);

/* The block width of the settled×settled pattern of block_causal context (docs/method.md,
 * "Attention masks"): context_width when > 0, else the schedule's block for schedules that settle
 * whole blocks and 1 for those that settle token by token (the exact-cache default; the reference
 * uses the annealing width there). Clamped to 1..L. The one rule training, sampling and
 * evaluation share. */
int hyper_mask_width(const hyper *h, int L, int context_width);

/* Whether settled keys/values stay fixed once computed (what makes the KV cache exact): settled
 * rows never see later settled positions that settle at another step. */
int hyper_cache_exact(const hyper *h, int L, int context, int context_width);

/* States and float32 times from levels (docs/method.md, "From levels to times"). W = n_levels. eps
 * = ε_s (HYPER_SAMPLING_EPS). settled (i < n_settled) -> t = eps; worthless (level == W) -> t = 1 -
 * eps; active -> t = f32(f32(level) * f32(Δ)) + f32(a), a = 10 eps, Δ = (1 - 2a)/(W - 1) (W == 1: Δ
 * = 0), clamped to [eps, 1 - eps]. */
void hyper_times(const int32_t *level, int64_t n_settled, int64_t L, int32_t W, float eps,
                 float *t /* (L) */, uint8_t *state /* (L) */);

#endif
