/* The method's training objective over a schedule plugin and a noise plugin (see method.h).
 * Level tables are built once per sequence length; a micro-batch then costs one table lookup per
 * sequence, the float32 level->time conversion of docs/method.md "From levels to times", the mask
 * rows of docs/method.md "Attention masks", "The 2L (vectorised) layout" and one corrupt and one
 * loss call of the noise plugin per sequence (a batch of one), with the sequence's own rng stream:
 * what a sequence sees and scores never depends on its neighbours. */
#include "method.h"

#include "diffusion/facts.h"
#include "nn/mask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void method_free(method *m) {
    if (!m) return;
    free(m->levels);
    free(m->settled);
    free(m->block_steps);
    free(m->block_off);
    free(m->bucket_start);
    free(m->x0);
    free(m->xt);
    free(m->pos);
    free(m->t);
    free(m->sigma);
    free(m->loss);
    free(m->state);
    free(m->rows);
    memset(m, 0, sizeof *m);
}

int method_init(method *m, const method_config *cfg, const hyper *sched, void *noise_self,
                const hdlm_noise_ops *noise, int32_t V, int L, error *e) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->sched = sched;
    m->noise_self = noise_self;
    m->noise = noise;
    m->V = V;
    const hdlm_info ni = facts_of(noise, noise_self);
    m->Vp = V + ni.n_extra;
    m->L = L;
    m->W = sched->n_levels(sched->ctx);
    m->n_steps = sched->n_steps(sched->ctx, L);
    m->growth = sched->growth(sched->ctx, &m->block);
    m->conditioned = (ni.flags & HDLM_INFO_CONDITIONED) != 0;
    m->continuous = (sched->flags & HDLM_INFO_CONTINUOUS) != 0;
    if (m->W < 1 || m->n_steps < 1 || m->n_steps > (1 << 24))
        return error_set(e, HDLM_EINVAL,
                         "schedule %s: %d levels and %lld steps for length %d; expected >= 1",
                         sched->name, m->W, (long long)m->n_steps, L);
    if (m->growth != HDLM_GROW_BLOCKS || m->block < 1) m->block = 1;
    m->mask_w = hyper_mask_width(sched, L, cfg->context_width);
    if (m->conditioned && !noise->conditioning)
        return error_set(e, HDLM_EPLUGIN,
                         "noise plugin is flagged conditioned but has no conditioning function");
    size_t rows = (size_t)m->n_steps + 1;
    m->levels = malloc(rows * (size_t)L * sizeof *m->levels);
    m->settled = malloc(rows * sizeof *m->settled);
    if (!m->levels || !m->settled) {
        method_free(m);
        return error_set(e, HDLM_ENOMEM, "schedule %s: no memory for %lld x %d levels", sched->name,
                         (long long)rows, L);
    }
    for (int64_t s = 0; s <= m->n_steps; s++) {
        int rc = hyper_levels(sched, s, L, m->levels + (size_t)s * L, &m->settled[s], e);
        if (rc != HDLM_OK) {
            method_free(m);
            return rc;
        }
    }
    m->T = L;
    if (cfg->vectorised) {
        /* the clean copy's rows would see the whole clean copy, so the clean tokens of the block
         * being denoised would reach its noisy copy through the deeper layers */
        if (cfg->context == MASK_CTX_FULL)
            return method_free(m),
                   error_set(e, HDLM_EINVAL,
                             "vectorised training with context 'full' leaks each block's clean "
                             "tokens into its prediction; use context 'block_causal' or 'causal' "
                             "(or vectorised = false)");
        if (m->growth != HDLM_GROW_BLOCKS)
            return method_free(m),
                   error_set(e, HDLM_EINVAL,
                             "vectorised training needs a schedule that settles whole blocks; "
                             "schedule %s settles token by token (set vectorised = false)",
                             sched->name);
        if (m->block >= L)
            return method_free(m),
                   error_set(e, HDLM_EINVAL,
                             "vectorised training: schedule %s has one block of %lld >= length "
                             "%d, so the clean copy would serve no block (set vectorised = false)",
                             sched->name, (long long)m->block, L);
        m->n_blocks = (int)((L + m->block - 1) / m->block);
        m->block_off = calloc((size_t)m->n_blocks + 1, sizeof *m->block_off);
        m->block_steps = malloc(rows * sizeof *m->block_steps);
        m->bucket_start = malloc((size_t)m->n_blocks * sizeof *m->bucket_start);
        if (!m->block_off || !m->block_steps || !m->bucket_start) {
            method_free(m);
            return error_set(e, HDLM_ENOMEM, "vectorised training: out of memory");
        }
        /* step s trains block k when the settled prefix is exactly k blocks and block k is not
         * all worthless (docs/method.md "Training": for block annealing, the steps [1 + kτ, 1 +
         * (k+1)τ)) */
        int64_t n = 0;
        for (int k = 0; k < m->n_blocks; k++) {
            m->bucket_start[k] = (int32_t)(k * m->block);
            m->block_off[k] = n;
            int64_t lo = k * m->block, hi = lo + m->block < L ? lo + m->block : L;
            for (int64_t s = 1; s <= m->n_steps; s++) {
                if (m->settled[s] != lo) continue;
                const int32_t *lv = m->levels + (size_t)s * L;
                int live = 0;
                for (int64_t i = lo; i < hi; i++)
                    live |= lv[i] < m->W;
                if (live) m->block_steps[n++] = s;
            }
            if (m->block_off[k] == n)
                return method_free(m),
                       error_set(e, HDLM_EINVAL,
                                 "vectorised training: schedule %s never has block %d "
                                 "(positions %lld..%lld) active right after the blocks before "
                                 "it settle",
                                 sched->name, k, (long long)lo, (long long)hi - 1);
        }
        m->block_off[m->n_blocks] = n;
        m->T = 2 * L;
    }
    return HDLM_OK;
}

static int ensure_buffers(method *m, int B, error *e) {
    if (B <= m->cap_B) return HDLM_OK;
    size_t n = (size_t)B * m->T;
    free(m->x0), free(m->xt), free(m->pos), free(m->t), free(m->sigma), free(m->loss);
    free(m->state), free(m->rows);
    m->x0 = malloc(n * sizeof *m->x0);
    m->xt = malloc(n * sizeof *m->xt);
    m->pos = malloc(n * sizeof *m->pos);
    m->t = malloc(n * sizeof *m->t);
    m->sigma = calloc(n, sizeof *m->sigma);
    m->loss = malloc(n * sizeof *m->loss);
    m->state = malloc(n);
    m->rows = malloc(n * sizeof *m->rows);
    if (!m->x0 || !m->xt || !m->pos || !m->t || !m->sigma || !m->loss || !m->state || !m->rows) {
        m->cap_B = 0;
        return error_set(e, HDLM_ENOMEM, "method: out of memory for a batch of %d", B);
    }
    m->cap_B = B;
    return HDLM_OK;
}

/* A uniform in [0, 1) for a sequence: i.i.d. from its stream, or stratified over the G sequences
 * of the optimizer step (one shared offset u0, u = (u0 + g/G) mod 1 for global index g). */
static double draw_u(const method *m, rng *r, double u0, int64_t g, int64_t G) {
    if (!m->cfg.low_discrepancy) return rng_uniform(r);
    double u = u0 + (double)g / (double)G;
    return u - floor(u);
}

/* The plugin's view of sequence b alone: a batch of one (B = 1) over its slice of the buffers. */
static void fill_seq(const method *m, hdlm_noise_batch *nb, int b) {
    size_t off = (size_t)b * m->T;
    memset(nb, 0, sizeof *nb);
    nb->struct_size = sizeof *nb;
    nb->B = 1;
    nb->L = m->T;
    nb->V = m->V;
    nb->Vp = m->Vp;
    /* settled-CE block weighting (γ): the blocks of the settled context (one block when they are
     * single tokens); the vectorised clean copy counts as one block */
    nb->block = m->cfg.vectorised ? 2 * (int64_t)m->L : (m->mask_w > 1 ? m->mask_w : m->L);
    nb->annealed = !m->continuous;
    nb->x0 = m->x0 + off;
    nb->xt = m->xt + off;
    nb->t = m->t + off;
    nb->state = m->state + off;
}

int method_prepare(method *m, const int32_t *windows, int B, rng *streams, double u0, int64_t g0,
                   int64_t G, error *e) {
    if (ensure_buffers(m, B, e) != HDLM_OK) return e->code;
    int L = m->L, T = m->T;
    int mask_w = m->mask_w;
    char err[512] = "";
    for (int b = 0; b < B; b++) {
        rng *r = &streams[b];
        const int32_t *w = windows + (size_t)b * L;
        int32_t *x0 = m->x0 + (size_t)b * T, *pos = m->pos + (size_t)b * T;
        float *t = m->t + (size_t)b * T;
        uint8_t *st = m->state + (size_t)b * T;
        attn_row *rows = m->rows + (size_t)b * T;
        for (int i = 0; i < L; i++)
            x0[i] = w[i], pos[i] = i;
        if (!m->cfg.vectorised) {
            if (m->continuous) {
                /* MDLM-style continuous time: one t per sequence, every position active */
                float tt = (1.0f - HYPER_SAMPLING_EPS) * (float)draw_u(m, r, u0, g0 + b, G) +
                           HYPER_SAMPLING_EPS;
                for (int i = 0; i < L; i++)
                    t[i] = tt, st[i] = HDLM_ACTIVE;
            } else {
                int64_t s = 1 + (int64_t)(draw_u(m, r, u0, g0 + b, G) * (double)m->n_steps);
                if (s > m->n_steps) s = m->n_steps;
                hyper_times(m->levels + (size_t)s * L, m->settled[s], L, m->W, HYPER_SAMPLING_EPS,
                            t, st);
            }
            mask_rows_from_states(rows, st, L, m->cfg.context, mask_w, m->cfg.block_type);
        } else {
            /* vectorised: clean copy [0, L), noisy copy [L, 2L) with one drawn step per block */
            for (int i = 0; i < L; i++) {
                x0[L + i] = w[i];
                pos[L + i] = i;
                t[i] = HYPER_SAMPLING_EPS;
                st[i] = HDLM_SETTLED;
            }
            for (int k = 0; k < m->n_blocks; k++) {
                int64_t cnt = m->block_off[k + 1] - m->block_off[k];
                int64_t s = m->block_steps[m->block_off[k] + (int64_t)rng_below(r, (uint64_t)cnt)];
                int lo = m->bucket_start[k], hi = lo + (int)m->block < L ? lo + (int)m->block : L;
                /* times of the block's levels as active positions (n_settled 0 in the block) */
                hyper_times(m->levels + (size_t)s * L + lo, 0, hi - lo, m->W, HYPER_SAMPLING_EPS,
                            t + L + lo, st + L + lo);
            }
            mask_rows_vectorised(rows, L, m->bucket_start, m->n_blocks, m->cfg.context, mask_w,
                                 m->cfg.block_type);
        }
        /* the corruption continues the sequence's stream after its step draws */
        hdlm_noise_batch nb;
        fill_seq(m, &nb, b);
        nb.rng = r;
        int rc = m->noise->corrupt(m->noise_self, &nb, err, sizeof err);
        if (rc != HDLM_OK) return error_set(e, HDLM_EPLUGIN, "noise corrupt: %s", err);
    }
    if (m->conditioned) {
        int rc =
            m->noise->conditioning(m->noise_self, (size_t)B * T, m->t, m->sigma, err, sizeof err);
        if (rc != HDLM_OK) return error_set(e, HDLM_EPLUGIN, "noise conditioning: %s", err);
    }
    return HDLM_OK;
}

int method_loss(method *m, int B, const float *logits, float *dlogits, double scale, double *total,
                error *e) {
    size_t per = (size_t)m->T * m->Vp; /* logits of one sequence */
    char err[512] = "";
    double sum = 0;
    for (int b = 0; b < B; b++) {
        hdlm_noise_batch nb;
        fill_seq(m, &nb, b);
        nb.logits = logits + (size_t)b * per;
        nb.loss = m->loss + (size_t)b * m->T;
        nb.dlogits = dlogits ? dlogits + (size_t)b * per : NULL;
        int rc = m->noise->loss(m->noise_self, &nb, err, sizeof err);
        if (rc != HDLM_OK) return error_set(e, HDLM_EPLUGIN, "noise loss: %s", err);
        sum += nb.total;
    }
    *total = sum * scale;
    if (dlogits && scale != 1.0) {
        size_t n = (size_t)B * per;
        float sc = (float)scale;
#pragma omp parallel for simd schedule(static) if (n >= 65536)
        for (size_t i = 0; i < n; i++)
            dlogits[i] *= sc;
    }
    return HDLM_OK;
}
