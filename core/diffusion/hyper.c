/* Hyperschedules seen from the core: a schedule instance and its ops, the checked level lookup, and
 * the level -> (t, state) conversion of docs/method.md "From levels to times" in float32, operation
 * by operation as the reference's PyTorch code does, so that times are bit-identical. Knows no
 * schedule by name; does not build masks (nn/mask.c) nor draw training steps (the trainer). */
#include "hyper.h"

#include "diffusion/facts.h"
#include "nn/mask.h"

#include <stdlib.h>
#include <string.h>

/* ---- the source ---- */

void hyper_from_plugin(hyper *h, void *self, const hdlm_schedule_ops *ops, const char *name) {
    HDLM_ASSERT(h && ops && ops->n_levels && ops->n_steps && ops->levels && ops->growth);
    memset(h, 0, sizeof *h);
    h->self = self;
    h->ops = ops;
    h->flags = facts_of(ops, self).flags & HDLM_INFO_CONTINUOUS;
    h->name = name ? name : "(unnamed schedule)";
}

uint32_t hyper_growth(const hyper *h, int64_t *block) {
    int64_t b = 1;
    uint32_t g = h->ops->growth(h->self, &b);
    *block = g == HDLM_GROW_BLOCKS && b >= 1 ? b : 1;
    return g;
}

/* ---- checked levels ---- */

int hyper_levels(const hyper *h, int64_t step, int64_t L, int32_t *level, int64_t *n_settled,
                 error *e) {
    HDLM_ASSERT(h && (L == 0 || level) && n_settled);
    const char *name = h->name ? h->name : "(unnamed schedule)";
    if (L < 0)
        return error_set(e, HDLM_EINVAL, "schedule '%s': sequence length L = %lld is negative",
                         name, (long long)L);
    if (step < 0)
        return error_set(e, HDLM_EINVAL, "schedule '%s': step %lld is negative", name,
                         (long long)step);
    /* a source whose n_steps failed (< 0, e.g. a Lua error) says why from its levels op */
    int64_t n = hyper_n_steps(h, L);
    if (n >= 0 && step > n)
        return error_set(e, HDLM_EINVAL,
                         "schedule '%s': step %lld is beyond the last step %lld for L = %lld", name,
                         (long long)step, (long long)n, (long long)L);
    *n_settled = -1;
    char err[700] = "";
    int rc = h->ops->levels(h->self, step, L, level, n_settled, err, sizeof err);
    err[sizeof err - 1] = '\0'; /* do not trust the source to terminate it */
    if (rc != HDLM_OK) {
        int code = rc == HDLM_ENOMEM ? HDLM_ENOMEM : HDLM_EPLUGIN;
        const char *why = err[0] ? err : "levels failed with no message";
        if (n < 0) return error_set(e, code, "schedule '%s': %s", name, why);
        return error_set(e, code, "schedule '%s' step %lld: %s", name, (long long)step, why);
    }
    if (n < 0)
        return error_set(e, HDLM_EPLUGIN, "schedule '%s': n_steps(%lld) failed (returned %lld)",
                         name, (long long)L, (long long)n);
    int32_t W = hyper_n_levels(h);
    if (W < 1)
        return error_set(e, HDLM_EPLUGIN, "schedule '%s': n_levels (W) is %d, expected >= 1", name,
                         (int)W);
    if (*n_settled < 0 || *n_settled > L)
        return error_set(e, HDLM_EPLUGIN,
                         "schedule '%s' step %lld: n_settled = %lld is outside 0..L = %lld", name,
                         (long long)step, (long long)*n_settled, (long long)L);
    for (int64_t i = 0; i < L; i++) {
        if (level[i] < 0 || level[i] > W)
            return error_set(e, HDLM_EPLUGIN,
                             "schedule '%s' step %lld: level %d at position %lld is outside 0..%d",
                             name, (long long)step, (int)level[i], (long long)i, (int)W);
        if (i < *n_settled && level[i] != 0)
            return error_set(e, HDLM_EPLUGIN,
                             "schedule '%s' step %lld: position %lld is settled (n_settled = "
                             "%lld) but at level %d, expected 0",
                             name, (long long)step, (long long)i, (long long)*n_settled,
                             (int)level[i]);
    }
    return HDLM_OK;
}

/* ---- levels -> times (docs/method.md "From levels to times") ---- */

/* The reference keeps ε_s as a Python float (double) and derives a = 10·ε_s and Δ from it in
 * double before rounding to float32; 10·f32(ε_s) would round differently (0x3a83126e instead of
 * 0x3a83126f for 1e-3). So recover the decimal the caller meant: the shortest one that rounds to
 * this float. */
static double eps_as_double(float eps) {
    if (eps == HYPER_SAMPLING_EPS) return 1e-4;
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) { /* 9 significant digits always round-trip */
        snprintf(buf, sizeof buf, "%.*g", digits, (double)eps);
        if (strtof(buf, NULL) == eps) return strtod(buf, NULL);
    }
    return (double)eps;
}

/* f32(f32(level) · f32(Δ)) + f32(a): the product is forced through a float store so a compiler
 * that contracts into an FMA (one rounding instead of two) cannot change the bits. */
static float active_time(int32_t level, float delta, float a) {
    volatile float prod = (float)level * delta;
    return prod + a;
}

void hyper_times(const int32_t *level, int64_t n_settled, int64_t L, int32_t W, float eps, float *t,
                 uint8_t *state) {
    HDLM_ASSERT(L == 0 || (level && t && state));
    double eps_d = eps_as_double(eps);
    double a_d = 10.0 * eps_d;
    /* the reference divides by zero for W = 1; the contract makes that Δ = 0 (all actives at a) */
    double delta_d = W > 1 ? (1.0 - 2.0 * a_d) / (double)(W - 1) : 0.0;
    /* torch: t[settled] = eps and t[worthless] = 1 - eps store double scalars into float32;
     * clamp(min=eps, max=1-eps) compares with the same scalars rounded to float32 */
    const float lo = (float)eps_d, hi = (float)(1.0 - eps_d);
    const float a = (float)a_d, delta = (float)delta_d;
    for (int64_t i = 0; i < L; i++) {
        float ti;
        if (i < n_settled) {
            state[i] = HDLM_SETTLED;
            ti = lo;
        } else if (level[i] == W) {
            state[i] = HDLM_WORTHLESS;
            ti = hi;
        } else {
            state[i] = HDLM_ACTIVE;
            ti = active_time(level[i], delta, a);
        }
        t[i] = ti < lo ? lo : ti > hi ? hi : ti;
    }
}

/* ---- the settled layout shared by training, sampling and evaluation ---- */

int hyper_mask_width(const hyper *h, int L, int context_width) {
    int64_t block;
    hyper_growth(h, &block);
    int64_t w = context_width > 0 ? context_width : block;
    return (int)(w < 1 ? 1 : w < L ? w : L);
}

int hyper_cache_exact(const hyper *h, int L, int context, int context_width) {
    if (context == MASK_CTX_CAUSAL) return 1;
    if (context == MASK_CTX_FULL) return 0; /* a newly settled token changes every earlier one */
    int w = hyper_mask_width(h, L, context_width);
    if (w == 1) return 1;
    int64_t block;
    uint32_t g = hyper_growth(h, &block);
    /* a settled position sees its own width-w block: exact when such blocks settle all at once */
    return g == HDLM_GROW_BLOCKS && (block % w == 0 || block >= L);
}
