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
    plan_free(&m->plan);
    free(m->x0);
    free(m->xt);
    free(m->pos);
    free(m->t);
    free(m->sigma);
    free(m->loss);
    free(m->seq_total);
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
    m->conditioned = (ni.flags & HDLM_INFO_CONDITIONED) != 0;
    m->concurrent_loss = (ni.flags & HDLM_INFO_CONCURRENT) != 0;
    if (m->conditioned && !noise->conditioning)
        return error_set(e, HDLM_EPLUGIN,
                         "noise plugin is flagged conditioned but has no conditioning function");
    plan_layout lay = {.context = cfg->context, .context_width = cfg->context_width};
    int rc = plan_compile(&m->plan, sched, L, &lay, e);
    if (rc != HDLM_OK) return rc;
    m->T = L;
    if (cfg->vectorised) {
        /* the 2L layout is the per-step computation only where plan.h says so; with context
         * 'full' the clean copy's rows would see the whole clean copy, so the clean tokens of the
         * block being denoised would reach its noisy copy through the deeper layers */
        if (!m->plan.vectorisable) {
            error_set(e, HDLM_EINVAL, "vectorised training %s (set vectorised = false)",
                      m->plan.why_not);
            method_free(m);
            return e->code;
        }
        m->T = 2 * L;
    }
    return HDLM_OK;
}

static int ensure_buffers(method *m, int B, error *e) {
    if (B <= m->cap_B) return HDLM_OK;
    size_t n = (size_t)B * m->T;
    free(m->x0), free(m->xt), free(m->pos), free(m->t), free(m->sigma), free(m->loss);
    free(m->state), free(m->rows), free(m->seq_total);
    m->x0 = malloc(n * sizeof *m->x0);
    m->xt = malloc(n * sizeof *m->xt);
    m->pos = malloc(n * sizeof *m->pos);
    m->t = malloc(n * sizeof *m->t);
    m->sigma = calloc(n, sizeof *m->sigma);
    m->loss = malloc(n * sizeof *m->loss);
    m->state = malloc(n);
    m->rows = malloc(n * sizeof *m->rows);
    m->seq_total = malloc((size_t)B * sizeof *m->seq_total);
    if (!m->x0 || !m->xt || !m->pos || !m->t || !m->sigma || !m->loss || !m->state || !m->rows ||
        !m->seq_total) {
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
    nb->block =
        m->cfg.vectorised ? 2 * (int64_t)m->L : (m->plan.mask_w > 1 ? m->plan.mask_w : m->L);
    nb->annealed = !m->plan.continuous;
    nb->x0 = m->x0 + off;
    nb->xt = m->xt + off;
    nb->t = m->t + off;
    nb->state = m->state + off;
}

int method_prepare(method *m, const int32_t *windows, int B, rng *streams, double u0, int64_t g0,
                   int64_t G, error *e) {
    if (ensure_buffers(m, B, e) != HDLM_OK) return e->code;
    const plan *p = &m->plan;
    int L = m->L, T = m->T;
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
            if (p->continuous) {
                /* MDLM-style continuous time: one t per sequence, every position active */
                float tt = (1.0f - HYPER_SAMPLING_EPS) * (float)draw_u(m, r, u0, g0 + b, G) +
                           HYPER_SAMPLING_EPS;
                for (int i = 0; i < L; i++)
                    t[i] = tt, st[i] = HDLM_ACTIVE;
            } else {
                int64_t s = plan_step_of(p, draw_u(m, r, u0, g0 + b, G));
                memcpy(t, plan_times(p, s), (size_t)L * sizeof *t);
                memcpy(st, plan_states(p, s), (size_t)L);
            }
            mask_rows_from_states(rows, st, L, m->cfg.context, p->mask_w, m->cfg.block_type);
        } else {
            /* vectorised: clean copy [0, L), noisy copy [L, 2L) with one drawn step per block */
            for (int i = 0; i < L; i++) {
                x0[L + i] = w[i];
                pos[L + i] = i;
                t[i] = HYPER_SAMPLING_EPS;
                st[i] = HDLM_SETTLED;
            }
            for (int k = 0; k < p->n_blocks; k++) {
                int64_t cnt;
                const int64_t *steps = plan_block_steps(p, k, &cnt);
                int64_t s = steps[rng_below(r, (uint64_t)cnt)];
                int lo = p->block_start[k], hi = plan_block_end(p, k);
                /* the block as it is at step s: right after the settled prefix */
                memcpy(t + L + lo, plan_times(p, s) + lo, (size_t)(hi - lo) * sizeof *t);
                memcpy(st + L + lo, plan_states(p, s) + lo, (size_t)(hi - lo));
            }
            mask_rows_vectorised(rows, L, p->block_start, p->n_blocks, m->cfg.context, p->mask_w,
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

/* The noise's loss, one call per sequence (its normalisation is per sequence). Sequences run on
 * the core's threads when the noise allows it (HDLM_INFO_CONCURRENT); each writes only its own
 * slices, and the totals are added in sequence order, so the result does not depend on the
 * thread count. */
int method_loss(method *m, int B, const float *logits, float *dlogits, double scale, double *total,
                error *e) {
    HDLM_ASSERT(B <= m->cap_B);        /* method_prepare sized the buffers */
    size_t per = (size_t)m->T * m->Vp; /* logits of one sequence */
    double *seq_total = m->seq_total;  /* [B] */
    int failed = -1;                   /* the first sequence whose call failed */
    char err[512] = "";
#pragma omp parallel for schedule(dynamic, 1) if (m->concurrent_loss && B > 1)
    for (int b = 0; b < B; b++) {
        hdlm_noise_batch nb;
        fill_seq(m, &nb, b);
        nb.logits = logits + (size_t)b * per;
        nb.loss = m->loss + (size_t)b * m->T;
        nb.dlogits = dlogits ? dlogits + (size_t)b * per : NULL;
        char berr[512] = "";
        int rc = m->noise->loss(m->noise_self, &nb, berr, sizeof berr);
        seq_total[b] = nb.total;
        if (rc != HDLM_OK) {
#pragma omp critical(method_loss_error)
            if (failed < 0 || b < failed) {
                failed = b;
                memcpy(err, berr, sizeof err);
            }
        }
    }
    if (failed >= 0) return error_set(e, HDLM_EPLUGIN, "noise loss: %s", err);
    double sum = 0;
    for (int b = 0; b < B; b++)
        sum += seq_total[b];
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
