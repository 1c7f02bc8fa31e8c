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

/* Where levels come from. Both a plugin instance and a Lua schedule fill one of these. */
typedef struct hyper {
    void *ctx;
    uint32_t flags; /* HDLM_INFO_CONTINUOUS or 0 */
    int32_t (*n_levels)(void *ctx);
    int64_t (*n_steps)(void *ctx, int64_t L);
    int (*levels)(void *ctx, int64_t step, int64_t L, int32_t *level, int64_t *n_settled, error *e);
    uint32_t (*growth)(void *ctx, int64_t *block);
    const char *name; /* for messages */
    /* Set by hyper_from_plugin (ctx is then the plugin's self), NULL for other sources: the
     * callbacks receive ctx only, so the plugin's levels op (err buffer, not error) can only be
     * reached from here; h->levels of a plugin hyper only reports that. Use hyper_levels. */
    const hdlm_schedule_ops *plugin_ops;
} hyper;

/* A hyper over a schedule plugin instance (ops = hdlm_schedule_ops of the instance). */
void hyper_from_plugin(hyper *h, void *self, const hdlm_schedule_ops *ops, const char *name);

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
