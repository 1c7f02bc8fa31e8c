/* The schedule plan (see plan.h): reads every step of the schedule once through hyper_levels,
 * checks the invariants the consumers rely on, and derives the tables they read. */
#include "plan.h"

#include "nn/mask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void plan_free(plan *p) {
    if (!p) return;
    free(p->levels);
    free(p->settled);
    free(p->t);
    free(p->state);
    free(p->block_start);
    free(p->block_off);
    free(p->block_steps);
    memset(p, 0, sizeof *p);
}

/* The invariants between step s - 1 and step s (1 <= s <= K), and of step 0 (s = 0). */
static int check_step(const plan *p, int64_t s, error *e) {
    const int32_t *lv = plan_levels(p, s);
    int64_t n = p->settled[s], L = p->L;
    if (s == 0) {
        if (n != 0)
            return error_set(e, HDLM_EPLUGIN,
                             "schedule '%s' step 0: n_settled = %lld, expected 0 (step 0 is the "
                             "start: nothing settled, every position at level W = %d)",
                             p->name, (long long)n, (int)p->W);
        for (int64_t i = 0; i < L; i++)
            if (lv[i] != p->W)
                return error_set(e, HDLM_EPLUGIN,
                                 "schedule '%s' step 0: position %lld is at level %d, expected W "
                                 "= %d (step 0 is the start: every position fully noised)",
                                 p->name, (long long)i, (int)lv[i], (int)p->W);
        return HDLM_OK;
    }
    const int32_t *prev = plan_levels(p, s - 1);
    if (n < p->settled[s - 1])
        return error_set(e, HDLM_EPLUGIN,
                         "schedule '%s' step %lld: n_settled = %lld is below %lld at step %lld "
                         "(the settled prefix never shrinks)",
                         p->name, (long long)s, (long long)n, (long long)p->settled[s - 1],
                         (long long)(s - 1));
    if (p->growth == HDLM_GROW_BLOCKS && n % p->block != 0 && n != L)
        return error_set(e, HDLM_EPLUGIN,
                         "schedule '%s' step %lld: n_settled = %lld is not a whole number of "
                         "blocks of %lld (the schedule says it settles whole blocks) nor L = %lld",
                         p->name, (long long)s, (long long)n, (long long)p->block, (long long)L);
    for (int64_t i = 0; i < L; i++)
        if (lv[i] > prev[i])
            return error_set(e, HDLM_EPLUGIN,
                             "schedule '%s' step %lld: position %lld rises from level %d at step "
                             "%lld to %d (levels never rise)",
                             p->name, (long long)s, (long long)i, (int)prev[i], (long long)(s - 1),
                             (int)lv[i]);
    if (s == p->K)
        for (int64_t i = n; i < L; i++)
            if (lv[i] == p->W)
                return error_set(e, HDLM_EPLUGIN,
                                 "schedule '%s' step %lld (the last): position %lld is still at "
                                 "level W = %d (worthless), so it is never denoised",
                                 p->name, (long long)s, (long long)i, (int)p->W);
    return HDLM_OK;
}

/* Why the 2L layout would not compute what the per-step passes compute (docs/method.md "The 2L
 * (vectorised) layout"), or "" when it does: whole blocks settle, every step's active positions
 * lie in the block right after the settled prefix with no worthless position among them, every
 * block has such a step, and settled rows do not see later settled positions. The text follows
 * "vectorised training " / "the 2L layout ". */
static void find_why_not(plan *p) {
    char *w = p->why_not;
    size_t cap = sizeof p->why_not;
    w[0] = '\0';
    if (p->layout.context == MASK_CTX_FULL) {
        snprintf(w, cap,
                 "with context 'full' leaks each block's clean tokens into its prediction; use "
                 "context 'block_causal' or 'causal'");
        return;
    }
    if (p->growth != HDLM_GROW_BLOCKS) {
        snprintf(w, cap,
                 "needs a schedule that settles whole blocks; schedule %s settles token "
                 "by token",
                 p->name);
        return;
    }
    if (p->block >= p->L) {
        snprintf(w, cap,
                 "needs more than one block; schedule %s has one block of %lld >= length %d, so "
                 "the clean copy would serve no block",
                 p->name, (long long)p->block, p->L);
        return;
    }
    for (int64_t s = 1; s <= p->K; s++) {
        int64_t lo = p->settled[s], hi = lo + p->block < p->L ? lo + p->block : p->L;
        if (lo % p->block) {
            snprintf(w, cap,
                     "needs settled prefixes of whole blocks; schedule %s has %lld settled at "
                     "step %lld (blocks of %lld)",
                     p->name, (long long)lo, (long long)s, (long long)p->block);
            return;
        }
        const int32_t *lv = plan_levels(p, s);
        int any_active = 0, any_worthless = 0;
        for (int64_t i = lo; i < p->L; i++) {
            int active = lv[i] < p->W;
            if (active && i >= hi) {
                snprintf(w, cap,
                         "needs the active positions in the block right after the settled prefix; "
                         "schedule %s at step %lld has position %lld active outside %lld..%lld",
                         p->name, (long long)s, (long long)i, (long long)lo, (long long)hi - 1);
                return;
            }
            if (i < hi) any_active |= active, any_worthless |= !active;
        }
        if (any_active && any_worthless) {
            snprintf(w, cap,
                     "needs whole blocks active; schedule %s at step %lld has active and "
                     "worthless positions in the block %lld..%lld",
                     p->name, (long long)s, (long long)lo, (long long)hi - 1);
            return;
        }
    }
    for (int k = 0; k < p->n_blocks; k++)
        if (p->block_off[k + 1] == p->block_off[k]) {
            snprintf(w, cap,
                     "needs every block active right after the blocks before it settle; schedule "
                     "%s never has block %d (positions %d..%d) so",
                     p->name, k, (int)p->block_start[k], plan_block_end(p, k) - 1);
            return;
        }
}

/* Block k is the active one at step s when the settled prefix is exactly the blocks before it
 * and the block is not all worthless (docs/method.md "The 2L layout"; for block annealing the
 * steps [1 + kτ, 1 + (k+1)τ)). */
static int build_blocks(plan *p, error *e) {
    if (p->growth != HDLM_GROW_BLOCKS || p->block >= p->L) return HDLM_OK;
    p->n_blocks = (int)((p->L + p->block - 1) / p->block);
    p->block_start = malloc((size_t)p->n_blocks * sizeof *p->block_start);
    p->block_off = calloc((size_t)p->n_blocks + 1, sizeof *p->block_off);
    p->block_steps = malloc(((size_t)p->K + 1) * sizeof *p->block_steps);
    if (!p->block_start || !p->block_off || !p->block_steps)
        return error_set(e, HDLM_ENOMEM, "schedule '%s': out of memory for %d blocks", p->name,
                         p->n_blocks);
    int64_t n = 0;
    for (int k = 0; k < p->n_blocks; k++) {
        int64_t lo = k * p->block;
        p->block_start[k] = (int32_t)lo;
        p->block_off[k] = n;
        int hi = plan_block_end(p, k);
        for (int64_t s = 1; s <= p->K; s++) {
            if (p->settled[s] != lo) continue;
            const int32_t *lv = plan_levels(p, s);
            int live = 0;
            for (int64_t i = lo; i < hi; i++)
                live |= lv[i] < p->W;
            if (live) p->block_steps[n++] = s;
        }
    }
    p->block_off[p->n_blocks] = n;
    return HDLM_OK;
}

int plan_compile(plan *p, const hyper *h, int L, const plan_layout *lay, error *e) {
    memset(p, 0, sizeof *p);
    p->name = h->name ? h->name : "(unnamed schedule)";
    p->L = L;
    p->layout = *lay;
    p->continuous = (h->flags & HDLM_INFO_CONTINUOUS) != 0;
    p->growth = hyper_growth(h, &p->block);
    if (L < 1)
        return error_set(e, HDLM_EINVAL, "schedule '%s': sequence length %d, expected >= 1",
                         p->name, L);
    /* step 0 first: a source whose n_steps fails (a Lua error) says why from its levels */
    int32_t *lv0 = malloc((size_t)L * sizeof *lv0);
    if (!lv0) return error_set(e, HDLM_ENOMEM, "schedule '%s': out of memory", p->name);
    int64_t n0;
    int rc = hyper_levels(h, 0, L, lv0, &n0, e);
    free(lv0);
    if (rc != HDLM_OK) return rc;
    p->W = hyper_n_levels(h);
    p->K = hyper_n_steps(h, L);
    if (p->K < 1 || p->K > PLAN_MAX_STEPS || (p->K + 1) * (int64_t)L > PLAN_MAX_TABLE)
        return error_set(e, HDLM_EINVAL,
                         "schedule '%s' has %d levels and %lld steps for length %d; expected "
                         "1..%lld steps and a table of at most %lld entries",
                         p->name, (int)p->W, (long long)p->K, L, (long long)PLAN_MAX_STEPS,
                         (long long)PLAN_MAX_TABLE);
    size_t rows = (size_t)p->K + 1, n = rows * (size_t)L;
    p->levels = malloc(n * sizeof *p->levels);
    p->settled = malloc(rows * sizeof *p->settled);
    p->t = malloc(n * sizeof *p->t);
    p->state = malloc(n);
    if (!p->levels || !p->settled || !p->t || !p->state) {
        plan_free(p);
        return error_set(e, HDLM_ENOMEM, "schedule '%s': no memory for %zu x %d levels",
                         h->name ? h->name : "(unnamed schedule)", rows, L);
    }
    for (int64_t s = 0; s <= p->K && rc == HDLM_OK; s++) {
        int32_t *lv = p->levels + (size_t)s * L;
        rc = hyper_levels(h, s, L, lv, &p->settled[s], e);
        if (rc == HDLM_OK) rc = check_step(p, s, e);
        if (rc == HDLM_OK)
            hyper_times(lv, p->settled[s], L, p->W, HYPER_SAMPLING_EPS, p->t + (size_t)s * L,
                        p->state + (size_t)s * L);
    }
    int64_t K2 = rc == HDLM_OK ? hyper_n_steps(h, L) : p->K;
    if (rc == HDLM_OK && K2 != p->K)
        rc = error_set(e, HDLM_EPLUGIN,
                       "schedule '%s': n_steps(%d) returned %lld, then %lld (n_steps must depend "
                       "on L only)",
                       p->name, L, (long long)p->K, (long long)K2);
    if (rc == HDLM_OK) rc = build_blocks(p, e);
    if (rc != HDLM_OK) {
        plan_free(p);
        return rc;
    }
    p->mask_w = hyper_mask_width(h, L, lay->context_width);
    p->cache_exact = hyper_cache_exact(h, L, lay->context, lay->context_width);
    find_why_not(p);
    p->vectorisable = p->why_not[0] == '\0';
    return HDLM_OK;
}
