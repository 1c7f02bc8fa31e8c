/* Sampling loop (see sample.h). Per step: levels → times/states (float32, docs/method.md "From
 * levels to times"), attention rows (docs/method.md "Attention masks"), model on the active
 * positions (cached settled prefix when exact), reverse probabilities from the noise plugin
 * (float64), one sampler step, fixed positions checked. */
#include "sample.h"

#include "base/progress.h"
#include "base/rng.h"
#include "base/threads.h"
#include "diffusion/facts.h"
#include "diffusion/plan.h"
#include "nn/layers.h"
#include "nn/mask.h"
#include "tensor/blas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pair {
    double v, i;
} pair;

static int cmp_pair_desc(const void *a, const void *b) {
    const pair *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i;
}

int32_t sample_draw(const double *w, int32_t n, double temperature, int top_k, double top_p,
                    double u, double *scratch) {
    int32_t best = -1;
    for (int32_t i = 0; i < n; i++)
        if (w[i] > 0 && (best < 0 || w[i] > w[best])) best = i;
    if (best < 0) return 0; /* no mass anywhere: the caller's row was empty */
    if (temperature <= 0) return best;
    double *q = scratch; /* (n) tempered weights */
    double lmax = log(w[best]);
    int32_t npos = 0;
    for (int32_t i = 0; i < n; i++) {
        q[i] = w[i] > 0 ? exp((log(w[i]) - lmax) / temperature) : 0.0;
        npos += q[i] > 0;
    }
    int trunc_k = top_k > 0 && top_k < npos;
    int trunc_p = top_p > 0 && top_p < 1;
    if (trunc_k || trunc_p) {
        pair *pr = (pair *)(scratch + n); /* (npos) pairs in the last 2n doubles */
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++)
            if (q[i] > 0) pr[m].v = q[i], pr[m].i = i, m++;
        qsort(pr, (size_t)m, sizeof *pr, cmp_pair_desc);
        int32_t keep = trunc_k ? top_k : m;
        if (trunc_p) {
            double total = 0, acc = 0;
            for (int32_t j = 0; j < keep; j++)
                total += pr[j].v;
            int32_t j = 0;
            /* the smallest prefix (most probable first) whose mass reaches top_p */
            while (j < keep) {
                acc += pr[j].v;
                j++;
                if (acc >= top_p * total) break;
            }
            keep = j;
        }
        for (int32_t j = keep; j < m; j++)
            q[(int32_t)pr[j].i] = 0;
    }
    double total = 0;
    for (int32_t i = 0; i < n; i++)
        total += q[i];
    double target = u * total, acc = 0;
    int32_t last = best;
    for (int32_t i = 0; i < n; i++) {
        if (q[i] <= 0) continue;
        acc += q[i];
        last = i;
        if (target < acc) return i;
    }
    return last;
}

/* ---- the loop ------------------------------------------------------------------------------ */

typedef struct loop {
    const sample_config *cfg;
    void *noise_self;
    const hdlm_noise_ops *noise;
    int32_t V, n_extra; /* real tokens, extra symbols (the mask is id V when n_extra > 0) */
    rng r;
    sample_result *out;
    int64_t step;
    double *scratch; /* (3 Vp) */
    int failed;      /* event buffer could not grow */
} loop;

static int32_t core_draw(void *core, const double *w, int32_t n) {
    loop *lp = core;
    double u = rng_uniform(&lp->r);
    return sample_draw(w, n, lp->cfg->temperature, lp->cfg->top_k, lp->cfg->top_p, u, lp->scratch);
}

static void core_event(void *core, int64_t b, int64_t i, int32_t old_tok, int32_t new_tok, double p,
                       int kind) {
    loop *lp = core;
    if (!lp->cfg->record_events) return;
    sample_result *o = lp->out;
    if (o->n_events == o->cap_events) {
        int64_t nc = o->cap_events ? 2 * o->cap_events : 1024;
        sample_event *ev = realloc(o->events, (size_t)nc * sizeof *ev);
        if (!ev) {
            lp->failed = 1;
            return;
        }
        o->events = ev;
        o->cap_events = nc;
    }
    o->events[o->n_events++] = (sample_event){b, lp->step, i, old_tok, new_tok, p, kind};
}

/* α(t) of the noise process: 1 − q(x_t = M | x0) from its exact marginal (any real x0: the
 * processes are symmetric in the real tokens); 1 without a mask symbol. */
static double core_alpha(void *core, double t) {
    loop *lp = core;
    if (lp->n_extra < 1 || !lp->noise->marginal) return 1.0;
    double *p = lp->scratch; /* (V + n_extra) <= 3 Vp */
    char err[256];
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    if (lp->noise->marginal(lp->noise_self, 0, t, p, err, sizeof err) != HDLM_OK) return 1.0 - t;
    double a = 1.0 - p[lp->V];
    return a < 0 ? 0 : a > 1 ? 1 : a;
}

void sample_result_free(sample_result *r) {
    if (!r) return;
    free(r->tokens);
    free(r->events);
    memset(r, 0, sizeof *r);
}

int sample_run(model *m, const hyper *h, void *noise_self, const hdlm_noise_ops *noise,
               const char *noise_name, void *sampler_self, const hdlm_sampler_ops *sampler,
               const char *sampler_name, const sample_config *cfg, sample_result *out, error *e) {
    memset(out, 0, sizeof *out);
    int B = cfg->B, L = cfg->L;
    const hdlm_info ni = facts_of(noise, noise_self), si = facts_of(sampler, sampler_self);
    int32_t Vp = m->cfg.vocab, n_extra = ni.n_extra, V = Vp - n_extra;
    int32_t mask_id = ni.mask_id;
    if (B < 1 || L < 1)
        return error_set(e, HDLM_EINVAL, "sample: batch %d and length %d must be positive", B, L);
    if (L > m->cfg.seq_len)
        return error_set(e, HDLM_EINVAL, "sample: length %d exceeds the model's seq_len %d", L,
                         m->cfg.seq_len);
    if (V < 2)
        return error_set(e, HDLM_EINVAL,
                         "sample: model outputs %d symbols, noise process %s adds %d extra", Vp,
                         noise_name, n_extra);
    if (si.needs & ~ni.flags)
        return error_set(
            e, HDLM_EINVAL, "sampler %s needs a %s noise process; %s is not one", sampler_name,
            (si.needs & ~ni.flags & HDLM_INFO_SCORE) ? "score-based" : "conditioned", noise_name);
    int conditioned = (ni.flags & HDLM_INFO_CONDITIONED) != 0;
    if (conditioned != (m->cfg.cond != 0))
        return error_set(e, HDLM_EINVAL,
                         "sample: noise process %s %s σ conditioning but the model %s", noise_name,
                         conditioned ? "needs" : "has no",
                         m->cfg.cond ? "is conditioned" : "is not");
    plan pl;
    plan_layout lay = {.context = cfg->context, .context_width = cfg->context_width};
    int rc = plan_compile(&pl, h, L, &lay, e);
    if (rc != HDLM_OK) return rc;
    int64_t n_steps = pl.K;
    int mw = pl.mask_w;
    /* settled K/V are functions of settled tokens only unless a settled row sees positions that
     * settle later (context full, or blocks wider than what settles at once) */
    int use_cache = cfg->cache && pl.cache_exact;
    size_t BL = (size_t)B * L;

    loop lp = {.cfg = cfg,
               .out = out,
               .noise_self = noise_self,
               .noise = noise,
               .V = V,
               .n_extra = n_extra};
    rng_init(&lp.r, cfg->seed);
    int32_t *x = malloc(BL * sizeof *x);
    float *tn = malloc(BL * sizeof *tn), *tx = malloc(BL * sizeof *tx),
          *tr = malloc(BL * sizeof *tr);
    float *sigma = calloc(BL, sizeof *sigma);
    uint8_t *st = malloc(BL), *fixed = calloc(BL, 1);
    uint8_t *filled = calloc((size_t)L, 1); /* logits rows that hold values */
    float *logits = calloc(BL * (size_t)Vp, sizeof *logits);
    double *probs = calloc(BL * (size_t)Vp, sizeof *probs);
    attn_row *rows = malloc(BL * sizeof *rows);
    int32_t *pos = malloc(BL * sizeof *pos), *ctok = malloc(BL * sizeof *ctok);
    float *csig = malloc(BL * sizeof *csig);
    attn_row *crow = malloc(BL * sizeof *crow);
    lp.scratch = malloc((size_t)Vp * 3 * sizeof *lp.scratch);
    kv_cache kc = {0};
    /* decoding is a few dozen small products per token, each a parallel region: fewer threads
     * for them while another process takes a core (base/threads.h); their values do not depend
     * on the thread count (nn/layers.h linear_set_gemv_threads) */
    threads_adapt ta;
    threads_adapt_init(&ta, blas_get_threads());
    if (!x || !tn || !tx || !tr || !sigma || !st || !fixed || !filled || !logits || !probs ||
        !rows || !pos || !ctok || !csig || !crow || !lp.scratch) {
        rc = error_set(e, HDLM_ENOMEM, "sample: out of memory for %d x %d samples", B, L);
        goto done;
    }
    if (use_cache && kv_cache_init(&kc, m, B, L, e) != HDLM_OK) {
        rc = e->code;
        goto done;
    }
    out->cache_used = use_cache;
    double t0 = progress_now();

    /* initial state: the limit distribution, fixed positions set */
    hdlm_noise_batch nb;
    memset(&nb, 0, sizeof nb);
    nb.struct_size = sizeof nb;
    nb.B = B, nb.L = L, nb.V = V, nb.Vp = Vp, nb.block = mw, nb.annealed = 1;
    nb.xt = x;
    nb.rng = &lp.r;
    char perr[512] = "";
    if ((rc = noise->limit(noise_self, &nb, perr, sizeof perr)) != HDLM_OK) {
        rc = error_set(e, HDLM_EPLUGIN, "%s: limit: %s", noise_name, perr);
        goto done;
    }
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            pos[(size_t)b * L + i] = i;
            if (cfg->fixed && cfg->fixed[i]) {
                fixed[(size_t)b * L + i] = 1;
                x[(size_t)b * L + i] = cfg->fixed_tok[i];
            }
        }

    progress pg;
    progress_init(&pg, NULL, "sample", n_steps);
    for (int64_t s = 1; s <= n_steps; s++) {
        lp.step = s;
        linear_set_gemv_threads(threads_adapt_next(&ta));
        int64_t ns = pl.settled[s];
        /* states, level times (σ conditioning) and the reverse step's t_now / t_next (plan.h:
         * a position's first active step starts from 1, it comes from the limit state; the step
         * ends at 0 for positions settled next and at the last step) */
        for (int i = 0; i < L; i++) {
            plan_move mv = plan_move_at(&pl, s, i);
            st[i] = mv.state, tn[i] = mv.t, tr[i] = mv.t_now, tx[i] = mv.t_next;
        }
        for (int b = 1; b < B; b++) {
            memcpy(tr + (size_t)b * L, tr, (size_t)L * sizeof *tr);
            memcpy(tn + (size_t)b * L, tn, (size_t)L * sizeof *tn);
            memcpy(tx + (size_t)b * L, tx, (size_t)L * sizeof *tx);
            memcpy(st + (size_t)b * L, st, (size_t)L);
        }
        /* the active window [a0, a1) and whether anything in it can change */
        int a0 = (int)ns, a1 = a0, free_active = 0;
        for (int i = a0; i < L; i++)
            if (st[i] == HDLM_ACTIVE) a1 = i + 1;
        for (int b = 0; b < B; b++)
            for (int i = a0; i < a1; i++)
                free_active |= st[i] == HDLM_ACTIVE && !fixed[(size_t)b * L + i];
        if (!free_active) { /* e.g. a prompt position's own step: nothing to sample */
            progress_update(&pg, s, -1, NULL, NAN);
            continue;
        }
        mask_rows_from_states(rows, st, L, cfg->context, mw, cfg->block_type);
        for (int b = 1; b < B; b++)
            memcpy(rows + (size_t)b * L, rows, (size_t)L * sizeof *rows);
        if (conditioned) {
            char ce[512] = "";
            if ((rc = noise->conditioning(noise_self, BL, tn, sigma, ce, sizeof ce)) != HDLM_OK) {
                rc = error_set(e, HDLM_EPLUGIN, "%s: conditioning: %s", noise_name, ce);
                goto done;
            }
        }
        float *lg;
        if (use_cache) {
            /* one pass: the positions that settled since the last step (their tokens are final;
             * their keys/values become cached context) followed by the active window */
            int c0 = kc.len, nc = (int)ns - c0, na = a1 - a0, n = nc + na;
            for (int b = 0; b < B; b++)
                for (int k = 0; k < n; k++) {
                    int p = c0 + k; /* nc + na positions are contiguous: a0 == ns */
                    size_t src = (size_t)b * L + p, dst = (size_t)b * n + k;
                    ctok[dst] = x[src], csig[dst] = sigma[src], crow[dst] = rows[p];
                    pos[dst] = p;
                }
            model_batch cb = {B, n, ctok, pos, conditioned ? csig : NULL, crow, NULL, NULL, 0};
            if ((rc = model_forward_cached_n(m, &kc, &cb, nc, &lg, e)) != HDLM_OK) goto done;
            for (int b = 0; b < B; b++)
                memcpy(logits + ((size_t)b * L + a0) * Vp, lg + ((size_t)b * n + nc) * Vp,
                       (size_t)na * Vp * sizeof *lg);
        } else {
            for (int b = 0; b < B; b++)
                for (int i = 0; i < L; i++)
                    pos[(size_t)b * L + i] = i;
            model_batch fb = {B, L, x, pos, conditioned ? sigma : NULL, rows, NULL, NULL, 0};
            if ((rc = model_forward(m, &fb, &lg, e)) != HDLM_OK) goto done;
            memcpy(logits, lg, BL * (size_t)Vp * sizeof *lg);
        }
        out->nfe++;
        /* only active rows are defined: clear the rows filled before that are not active now, so a
         * sampler reading them sees the same zeros with and without the cache (O(active) work per
         * step, not O(L): the uncached forward fills every row, so it clears all inactive ones) */
        for (int i = 0; i < L; i++) {
            if (st[i] == HDLM_ACTIVE) {
                filled[i] = 1;
            } else if (filled[i] || !use_cache) {
                for (int b = 0; b < B; b++)
                    memset(logits + ((size_t)b * L + i) * Vp, 0, (size_t)Vp * sizeof *logits);
                filled[i] = 0;
            }
        }
        /* reverse-step probabilities of the active positions */
        nb.xt = x, nb.t = tr, nb.s = tx, nb.state = st, nb.logits = logits, nb.probs = probs;
        if ((rc = noise->reverse(noise_self, &nb, perr, sizeof perr)) != HDLM_OK) {
            rc = error_set(e, HDLM_EPLUGIN, "%s: reverse at step %lld: %s", noise_name,
                           (long long)s, perr);
            goto done;
        }
        hdlm_sampler_ctx ctx = {
            .struct_size = sizeof ctx,
            .B = B,
            .L = L,
            .V = V,
            .Vp = Vp,
            .mask_id = mask_id,
            .step = s,
            .n_steps = n_steps,
            .x = x,
            .state = st,
            .fixed = fixed,
            .t_now = tr,
            .t_next = tx,
            .logits = logits,
            .probs = probs,
            .rng = &lp.r,
            .core = &lp,
            .draw = core_draw,
            .event = core_event,
            .alpha = core_alpha,
        };
        if ((rc = sampler->step(sampler_self, &ctx, perr, sizeof perr)) != HDLM_OK) {
            rc = error_set(e, HDLM_EPLUGIN, "%s: step %lld: %s", sampler_name, (long long)s, perr);
            goto done;
        }
        if (lp.failed) {
            rc = error_set(e, HDLM_ENOMEM, "sample: out of memory for sampler events");
            goto done;
        }
        for (size_t j = 0; j < BL; j++)
            if (fixed[j] && x[j] != cfg->fixed_tok[j % L]) {
                rc = error_set(e, HDLM_EPLUGIN,
                               "%s changed the fixed position %lld at step %lld (plugin bug)",
                               sampler_name, (long long)(j % L), (long long)s);
                goto done;
            }
        progress_update(&pg, s, -1, NULL, NAN);
    }
    progress_finish(&pg);
    out->steps = n_steps;
    out->wall = progress_now() - t0;
    out->tokens = x;
    x = NULL;
done:
    linear_set_gemv_threads(0);
    kv_cache_free(&kc);
    plan_free(&pl);
    free(x), free(tn), free(tx), free(tr), free(sigma), free(st);
    free(fixed), free(filled), free(logits), free(probs), free(rows), free(pos), free(ctok),
        free(csig);
    free(crow), free(lp.scratch);
    if (rc != HDLM_OK) sample_result_free(out);
    return rc;
}
