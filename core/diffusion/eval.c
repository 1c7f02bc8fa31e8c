/* Likelihood estimators (see eval.h). The consistent bound mirrors the sampling loop of sample.c
 * step for step — the same states, times, attention rows, σ conditioning and start distribution —
 * so that the number bounds the NLL of the process the sampler runs (eval.h says which). */
#include "eval.h"

#include "base/progress.h"
#include "base/rng.h"
#include "diffusion/facts.h"
#include "diffusion/plan.h"
#include "nn/mask.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_CONT_H 1e-4 /* continuous time: the bound's t -> t - h slope */

void eval_result_free(eval_result *r) {
    if (!r) return;
    free(r->per_seq);
    r->per_seq = NULL;
}

void eval_summarise(eval_result *r, int64_t tokens_per_seq) {
    double sum = 0, sq = 0;
    for (int64_t b = 0; b < r->n_seq; b++)
        sum += r->per_seq[b];
    double mean = r->n_seq ? sum / (double)r->n_seq : 0;
    for (int64_t b = 0; b < r->n_seq; b++)
        sq += (r->per_seq[b] - mean) * (r->per_seq[b] - mean);
    r->tokens = r->n_seq * tokens_per_seq;
    r->nats = r->tokens ? sum / (double)r->tokens : NAN;
    r->se = r->n_seq > 1
                ? sqrt(sq / (double)(r->n_seq - 1) / (double)r->n_seq) / (double)tokens_per_seq
                : NAN;
}

/* ---- the consistent bound ------------------------------------------------------------------ */

typedef struct ev {
    model *m;
    void *ns;
    const hdlm_noise_ops *noise;
    eval_config cfg;
    plan p; /* the schedule for L and the layout: steps, times, blocks, mask width */
    int L, T, conditioned, vectorised, continuous;
    int score; /* score-based process: its bound is the continuous-time DWDSE integrand */
    int32_t V, Vp;
    /* batch (cap, T) */
    int cap;
    int32_t *x0, *xt, *lim, *pos;
    float *tspec, *tnow, *tnext, *sigma;
    uint8_t *state, *cstate, *from_limit;
    double *w, *bound;
    attn_row *rows;
    int *owner; /* (cap) sequence of each row */
} ev;

static void ev_free(ev *v) {
    plan_free(&v->p);
    free(v->x0), free(v->xt), free(v->lim), free(v->pos), free(v->tspec);
    free(v->tnow), free(v->tnext), free(v->sigma), free(v->state), free(v->cstate);
    free(v->from_limit), free(v->w), free(v->bound), free(v->rows), free(v->owner);
}

static int ev_alloc_batch(ev *v, int cap, error *e) {
    size_t n = (size_t)cap * v->T;
    v->cap = cap;
    v->x0 = malloc(n * sizeof *v->x0), v->xt = malloc(n * sizeof *v->xt);
    v->lim = malloc(n * sizeof *v->lim), v->pos = malloc(n * sizeof *v->pos);
    v->tspec = malloc(n * sizeof *v->tspec), v->tnow = malloc(n * sizeof *v->tnow);
    v->tnext = malloc(n * sizeof *v->tnext), v->sigma = calloc(n, sizeof *v->sigma);
    v->state = malloc(n), v->cstate = malloc(n), v->from_limit = malloc(n);
    v->w = malloc(n * sizeof *v->w), v->bound = malloc(n * sizeof *v->bound);
    v->rows = malloc(n * sizeof *v->rows), v->owner = malloc((size_t)cap * sizeof *v->owner);
    if (!v->x0 || !v->xt || !v->lim || !v->pos || !v->tspec || !v->tnow || !v->tnext || !v->sigma ||
        !v->state || !v->cstate || !v->from_limit || !v->w || !v->bound || !v->rows || !v->owner)
        return error_set(e, HDLM_ENOMEM, "eval: out of memory for a batch of %d x %d", cap, v->T);
    return HDLM_OK;
}

/* Fills positions [lo, hi) of batch row r (offset off into the row) from schedule step s: the
 * sampler's state at s and the chain's reverse step (plan_move_at: from the limit at the first
 * active step, to 0 once settled), worthless positions from the limit, with term weight w. */
static void ev_fill_step(ev *v, int r, int off, int lo, int hi, int64_t s, double w, double phi) {
    size_t base = (size_t)r * v->T + off;
    for (int i = lo; i < hi; i++) {
        size_t j = base + (i - lo);
        plan_move mv = plan_move_at(&v->p, s, i);
        uint8_t st = mv.state;
        v->state[j] = st;
        v->tspec[j] = mv.t;
        v->from_limit[j] = st == HDLM_WORTHLESS || mv.first;
        v->cstate[j] = st == HDLM_ACTIVE && !mv.first ? HDLM_ACTIVE : HDLM_SETTLED;
        v->tnow[j] = mv.t_now;
        v->tnext[j] = mv.t_next;
        v->w[j] = w;
        if (v->score && st == HDLM_ACTIVE) {
            /* the step's integral ∫_s^t σ'(u) DSE_u du by one uniform point u: x_u ~ q(x_u | x0)
             * at u, the bound's slope over [u − h, u], weighted by the step length */
            double t = v->tnow[j], sn = v->tnext[j], u = sn + phi * (t - sn);
            if (u <= 0) u = 1e-7;
            float uf = (float)u, lo_t = (float)(u - EVAL_CONT_H > 0 ? u - EVAL_CONT_H : 0);
            v->from_limit[j] = 0;
            v->cstate[j] = HDLM_ACTIVE;
            v->tspec[j] = v->tnow[j] = uf;
            v->tnext[j] = lo_t;
            v->w[j] = w * (t - sn) / ((double)uf - (double)lo_t);
        }
    }
}

/* Continuous time: every position active at t, the bound's slope over [t − h, t], one of `draws`
 * points of the average over t. */
static void ev_fill_cont(ev *v, int r, double t, int64_t draws) {
    size_t base = (size_t)r * v->T;
    double s = t - EVAL_CONT_H > 0 ? t - EVAL_CONT_H : 0;
    for (int i = 0; i < v->L; i++) {
        size_t j = base + i;
        v->state[j] = HDLM_ACTIVE;
        v->cstate[j] = HDLM_ACTIVE;
        v->from_limit[j] = 0;
        v->tspec[j] = v->tnow[j] = (float)t;
        v->tnext[j] = (float)s;
        v->w[j] = 1.0 / (((double)v->tnow[j] - (double)v->tnext[j]) * (double)draws);
    }
}

static double frac(double x) {
    return x - floor(x);
}

/* One batch of rows: noise the inputs, run the model, add the weighted terms to acc[owner]. */
static int ev_run_batch(ev *v, int B, rng *r, double *acc, error *e) {
    size_t n = (size_t)B * v->T;
    hdlm_noise_batch nb;
    memset(&nb, 0, sizeof nb);
    nb.struct_size = sizeof nb;
    nb.B = B, nb.L = v->T, nb.V = v->V, nb.Vp = v->Vp;
    nb.block = v->p.mask_w, nb.annealed = 1;
    nb.x0 = v->x0, nb.xt = v->xt, nb.t = v->tspec, nb.state = v->cstate, nb.rng = r;
    char perr[512] = "";
    int (*draw)(void *, hdlm_noise_batch *, char *, size_t) = v->noise->corrupt;
    if (v->noise->bound_corrupt)
        draw = v->noise->bound_corrupt; /* the generative chain's forward process */
    if (draw(v->ns, &nb, perr, sizeof perr) != HDLM_OK)
        return error_set(e, HDLM_EPLUGIN, "eval: noise corrupt: %s", perr);
    nb.xt = v->lim;
    if (v->noise->limit(v->ns, &nb, perr, sizeof perr) != HDLM_OK)
        return error_set(e, HDLM_EPLUGIN, "eval: noise limit: %s", perr);
    for (size_t j = 0; j < n; j++) {
        if (v->from_limit[j])
            v->xt[j] = v->lim[j];
        else if (v->state[j] == HDLM_SETTLED)
            v->xt[j] = v->x0[j];
    }
    if (v->conditioned &&
        v->noise->conditioning(v->ns, n, v->tspec, v->sigma, perr, sizeof perr) != HDLM_OK)
        return error_set(e, HDLM_EPLUGIN, "eval: noise conditioning: %s", perr);
    model_batch mb = {B,       v->T, v->xt, v->pos, v->conditioned ? v->sigma : NULL,
                      v->rows, NULL, NULL,  0};
    float *logits;
    if (model_forward(v->m, &mb, &logits, e) != HDLM_OK) return e->code;
    nb.xt = v->xt, nb.t = v->tnow, nb.s = v->tnext, nb.state = v->state;
    nb.logits = logits, nb.bound = v->bound;
    if (v->noise->bound(v->ns, &nb, perr, sizeof perr) != HDLM_OK)
        return error_set(e, HDLM_EPLUGIN, "eval: noise bound: %s", perr);
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int i = 0; i < v->T; i++) {
            size_t j = (size_t)b * v->T + i;
            if (v->state[j] == HDLM_ACTIVE) sum += v->w[j] * v->bound[j];
        }
        if (!isfinite(sum))
            return error_set(e, HDLM_EPLUGIN, "eval: the bound of sequence %d is not finite",
                             v->owner[b]);
        acc[v->owner[b]] += sum;
    }
    return HDLM_OK;
}

/* The prior term, once per position: KL( q(x_1 | x0) || start ) from the plugin's optional
 * `prior` op (absent: 0, the start is the t = 1 marginal), cached per token id. */
static int ev_add_prior(const ev *v, const int32_t *seqs, int64_t n_seq, double *acc, double *total,
                        error *e) {
    const hdlm_noise_ops *no = v->noise;
    *total = 0;
    if (!no->prior) return HDLM_OK;
    double *kl = malloc((size_t)v->V * sizeof *kl);
    uint8_t *have = calloc((size_t)v->V, 1);
    if (!kl || !have) {
        free(kl), free(have);
        return error_set(e, HDLM_ENOMEM, "eval: out of memory for the prior term");
    }
    int rc = HDLM_OK;
    char perr[512] = "";
    for (int64_t b = 0; b < n_seq && rc == HDLM_OK; b++) {
        double sum = 0;
        for (int i = 0; i < v->L; i++) {
            int32_t x = seqs[(size_t)b * v->L + i];
            assert(x >= 0 && x < v->V); /* callers pass clean tokens (eval.h) */
            if (!have[x]) {
                if (no->prior(v->ns, x, &kl[x], perr, sizeof perr) != HDLM_OK) {
                    rc = error_set(e, HDLM_EPLUGIN, "eval: noise prior: %s", perr);
                    break;
                }
                have[x] = 1;
            }
            sum += kl[x];
        }
        acc[b] += sum;
        *total += sum;
    }
    free(kl), free(have);
    return rc;
}

int eval_bound(model *m, const hyper *h, void *noise_self, const hdlm_noise_ops *noise,
               const eval_config *cfg, const int32_t *seqs, int64_t n_seq, int L, int32_t V,
               eval_result *out, error *e) {
    memset(out, 0, sizeof *out);
    if (!noise->bound || !noise->limit || !noise->corrupt)
        return error_set(e, HDLM_EPLUGIN, "eval: the noise process has no bound/limit/corrupt op");
    if (n_seq < 1 || L < 1 || L > m->cfg.seq_len)
        return error_set(e, HDLM_EINVAL,
                         "eval: need >= 1 sequence of length 1..%d (the model's seq_len), got %lld "
                         "of %d",
                         m->cfg.seq_len, (long long)n_seq, L);
    ev v;
    memset(&v, 0, sizeof v);
    v.m = m, v.ns = noise_self, v.noise = noise, v.cfg = *cfg, v.L = L, v.V = V;
    const hdlm_info ni = facts_of(noise, noise_self);
    v.Vp = V + ni.n_extra;
    if (v.Vp != m->cfg.vocab)
        return error_set(e, HDLM_EINVAL,
                         "eval: the model has %d outputs but the noise process needs %d (vocab %d "
                         "+ %d extra)",
                         m->cfg.vocab, v.Vp, V, v.Vp - V);
    v.conditioned = (ni.flags & HDLM_INFO_CONDITIONED) != 0;
    v.score = (ni.flags & HDLM_INFO_SCORE) != 0;
    if (v.conditioned != (m->cfg.cond != 0))
        return error_set(
            e, HDLM_EINVAL, "eval: the noise process %s σ conditioning but the model %s",
            v.conditioned ? "needs" : "has no", m->cfg.cond ? "is conditioned" : "is not");
    int mc = cfg->mc;
    int continuous =
        cfg->continuous >= 0 ? cfg->continuous : (h->flags & HDLM_INFO_CONTINUOUS) != 0;
    if (mc < 0 || (mc == 0 && continuous))
        return error_set(e, HDLM_EINVAL,
                         "eval: mc = %d; need >= 1 draws per sequence (0 = exact, discrete only)",
                         mc);
    plan_layout lay = {.context = cfg->context, .context_width = cfg->context_width};
    int rc = plan_compile(&v.p, h, L, &lay, e);
    if (rc != HDLM_OK) return rc;
    v.continuous = continuous;
    double *acc = calloc((size_t)n_seq, sizeof *acc);
    if (!acc) {
        ev_free(&v);
        return error_set(e, HDLM_ENOMEM, "eval: out of memory");
    }
    if (!v.continuous) {
        if (cfg->vectorised == 1 && !v.p.vectorisable) {
            rc = error_set(e, HDLM_EINVAL,
                           "eval: vectorised = true, but schedule %s (with this context) does not "
                           "activate one whole block at a time right after the settled prefix "
                           "(the 2L layout %s)",
                           h->name, v.p.why_not);
            goto done;
        }
        v.vectorised = cfg->vectorised != 0 && v.p.vectorisable;
    }
    v.T = v.vectorised ? 2 * L : L;
    int cap = cfg->batch > 0 ? cfg->batch : 8;
    if ((rc = ev_alloc_batch(&v, cap, e))) goto done;

    /* draws per sequence: mc, or every step / the longest block's steps when exact */
    int64_t draws = mc;
    if (mc == 0) {
        draws = v.p.K;
        if (v.vectorised) {
            draws = 0;
            for (int k = 0; k < v.p.n_blocks; k++) {
                int64_t cnt;
                plan_block_steps(&v.p, k, &cnt);
                if (cnt > draws) draws = cnt;
            }
        }
    }
    rng base, noise_rng;
    rng_init(&base, cfg->seed);
    noise_rng = rng_split(&base, UINT64_MAX);
    double *u0 = malloc(((size_t)(v.vectorised ? v.p.n_blocks : 1)) * sizeof *u0);
    if (!u0) {
        rc = error_set(e, HDLM_ENOMEM, "eval: out of memory");
        goto done;
    }
    progress pg;
    progress_init(&pg, NULL, "eval", n_seq * draws);
    double t0 = progress_now();
    int B = 0;
    for (int64_t b = 0; b < n_seq && rc == HDLM_OK; b++) {
        rng rb = rng_split(&base, (uint64_t)b);
        for (int k = 0; k < (v.vectorised ? v.p.n_blocks : 1); k++)
            u0[k] = rng_uniform(&rb);
        const int32_t *x = seqs + (size_t)b * L;
        for (int64_t j = 0; j < draws && rc == HDLM_OK; j++) {
            int r = B;
            size_t base_j = (size_t)r * v.T;
            for (int i = 0; i < v.T; i++)
                v.x0[base_j + i] = x[i % L], v.pos[base_j + i] = i % L;
            if (v.continuous) {
                ev_fill_cont(&v, r, 1.0 - frac(u0[0] + (double)j / (double)draws), draws);
                mask_rows_from_states(v.rows + base_j, v.state + base_j, L, cfg->context,
                                      v.p.mask_w, cfg->block_type);
            } else if (!v.vectorised) {
                int64_t s = mc == 0 ? j + 1 : plan_step_of(&v.p, frac(u0[0] + (double)j / mc));
                ev_fill_step(&v, r, 0, 0, L, s, mc == 0 ? 1.0 : (double)v.p.K / mc,
                             v.score ? rng_uniform(&rb) : 0);
                mask_rows_from_states(v.rows + base_j, v.state + base_j, L, cfg->context,
                                      v.p.mask_w, cfg->block_type);
            } else {
                /* clean copy: settled context for every block */
                for (int i = 0; i < L; i++) {
                    v.state[base_j + i] = v.cstate[base_j + i] = HDLM_SETTLED;
                    v.from_limit[base_j + i] = 0;
                    v.tspec[base_j + i] = v.tnow[base_j + i] = HYPER_SAMPLING_EPS;
                    v.tnext[base_j + i] = 0, v.w[base_j + i] = 0;
                }
                for (int k = 0; k < v.p.n_blocks; k++) {
                    int64_t cnt;
                    const int64_t *steps = plan_block_steps(&v.p, k, &cnt);
                    int lo = v.p.block_start[k], hi = plan_block_end(&v.p, k);
                    if (mc == 0 && j >= cnt) { /* this block has no step left: inert */
                        for (int i = lo; i < hi; i++) {
                            size_t q = base_j + L + i;
                            v.state[q] = HDLM_WORTHLESS, v.cstate[q] = HDLM_SETTLED;
                            v.from_limit[q] = 1, v.tspec[q] = 1.0f - HYPER_SAMPLING_EPS;
                            v.tnow[q] = 1.0f, v.tnext[q] = 1.0f, v.w[q] = 0;
                        }
                        continue;
                    }
                    int64_t idx = mc == 0 ? j : (int64_t)(frac(u0[k] + (double)j / mc) * cnt);
                    if (idx >= cnt) idx = cnt - 1;
                    int64_t s = steps[idx];
                    /* the block's positions as the sampler sees them at step s (settled prefix =
                     * the blocks before it, which the clean copy stands for) */
                    ev_fill_step(&v, r, L + lo, lo, hi, s, mc == 0 ? 1.0 : (double)cnt / mc,
                                 v.score ? rng_uniform(&rb) : 0);
                }
                mask_rows_vectorised(v.rows + base_j, L, v.p.block_start, v.p.n_blocks,
                                     cfg->context, v.p.mask_w, cfg->block_type);
            }
            v.owner[r] = (int)b;
            if (++B == cap) {
                rc = ev_run_batch(&v, B, &noise_rng, acc, e);
                out->forwards++;
                B = 0;
                progress_update(&pg, b * draws + j + 1, -1, NULL, NAN);
            }
        }
    }
    if (rc == HDLM_OK && B > 0) {
        rc = ev_run_batch(&v, B, &noise_rng, acc, e);
        out->forwards++;
    }
    progress_finish(&pg);
    free(u0);
    double prior_sum = 0;
    if (rc == HDLM_OK) rc = ev_add_prior(&v, seqs, n_seq, acc, &prior_sum, e);
    if (rc != HDLM_OK) goto done;
    out->prior = prior_sum / ((double)n_seq * L);
    out->process = v.continuous ? "continuous-time process of the noise plugin (MDLM-style)"
                   : v.score    ? "continuous-time reverse process with the model's scores over "
                                  "the run's schedule, from the sampler's start distribution (the "
                                  "sampler runs its tau-leaping discretisation)"
                                : "the discrete-time chain the sampler runs (temperature 1)";
    out->n_seq = n_seq, out->L = L, out->per_seq = acc, acc = NULL;
    out->exact = mc == 0 && !v.score, out->vectorised = v.vectorised,
    out->continuous = v.continuous;
    out->n_steps = v.p.K, out->mc = draws;
    out->wall = progress_now() - t0;
    eval_summarise(out, L);
done:
    free(acc);
    ev_free(&v);
    return rc;
}

/* ---- the reference's estimator --------------------------------------------------------------- */

int eval_reference(model *m, void *noise_self, const hdlm_noise_ops *noise,
                   const eval_ref_config *cfg, const int32_t *seqs, int64_t n_seq, int L, int32_t V,
                   eval_result *out, error *e) {
    memset(out, 0, sizeof *out);
    const hdlm_info ni = facts_of(noise, noise_self);
    int32_t Vp = V + ni.n_extra;
    if (Vp == V)
        return error_set(e, HDLM_EINVAL,
                         "eval (reference): the noise process has no mask symbol; the reference "
                         "estimator masks tokens (use the consistent bound)");
    if (Vp != m->cfg.vocab)
        return error_set(e, HDLM_EINVAL, "eval (reference): the model has %d outputs, expected %d",
                         m->cfg.vocab, Vp);
    if (n_seq < 1 || L < 2 || L > m->cfg.seq_len)
        return error_set(e, HDLM_EINVAL,
                         "eval (reference): need >= 1 sequence of length 2..%d, got %lld of %d",
                         m->cfg.seq_len, (long long)n_seq, L);
    if (!(cfg->eps >= 0 && cfg->eps < 1) || cfg->B_mc < 1 || cfg->rounds < 1)
        return error_set(e, HDLM_EINVAL,
                         "eval (reference): eps must be in [0, 1), B_mc and rounds >= 1 (got %g, "
                         "%d, %d)",
                         cfg->eps, cfg->B_mc, cfg->rounds);
    int conditioned = (ni.flags & HDLM_INFO_CONDITIONED) != 0;
    int R = cfg->B_mc;
    size_t n = (size_t)R * L;
    int32_t *xt = malloc(n * sizeof *xt), *pos = malloc(n * sizeof *pos);
    uint8_t *masked = malloc(n), *st = malloc((size_t)L);
    float *sigma = malloc(n * sizeof *sigma);
    attn_row *rows = malloc(n * sizeof *rows);
    double *p = malloc((size_t)R * sizeof *p);
    out->per_seq = calloc((size_t)n_seq, sizeof *out->per_seq);
    int rc = HDLM_OK;
    if (!xt || !pos || !masked || !st || !sigma || !rows || !p || !out->per_seq) {
        rc = error_set(e, HDLM_ENOMEM, "eval (reference): out of memory");
        goto done;
    }
    /* full bidirectional attention, no schedule (the reference ignores its metaschedule here) */
    memset(st, HDLM_ACTIVE, (size_t)L);
    mask_rows_from_states(rows, st, L, MASK_CTX_FULL, L, MASK_BLOCK_FULL);
    for (int r = 1; r < R; r++)
        memcpy(rows + (size_t)r * L, rows, (size_t)L * sizeof *rows);
    for (size_t j = 0; j < n; j++)
        pos[j] = (int32_t)(j % L), sigma[j] = (float)cfg->eps; /* σ = ε_e, not σ(t) */
    rng base;
    rng_init(&base, cfg->seed);
    double t0 = progress_now();
    progress pg;
    progress_init(&pg, NULL, "eval", n_seq * cfg->rounds);
    for (int64_t b = 0; b < n_seq && rc == HDLM_OK; b++) {
        rng rb = rng_split(&base, (uint64_t)b);
        const int32_t *x = seqs + (size_t)b * L;
        double total = 0;
        int used = 0;
        for (int round = 0; round < cfg->rounds; round++) {
            double u0 = rng_uniform(&rb);
            int any = 0;
            for (int r = 0; r < R; r++) {
                double t = frac(u0 + (double)r / R);
                p[r] = (1 - cfg->eps) * t + cfg->eps;
                for (int i = 0; i < L; i++) {
                    size_t j = (size_t)r * L + i;
                    masked[j] = rng_uniform(&rb) < p[r];
                    xt[j] = masked[j] ? V : x[i];
                    any |= masked[j];
                }
            }
            progress_update(&pg, b * cfg->rounds + round + 1, -1, NULL, NAN);
            if (!any) continue; /* the reference skips a round with nothing masked */
            model_batch mb = {R, L, xt, pos, conditioned ? sigma : NULL, rows, NULL, NULL, 0};
            float *lg;
            if ((rc = model_forward(m, &mb, &lg, e)) != HDLM_OK) break;
            out->forwards++;
            double round_loss = 0;
            for (int r = 0; r < R; r++)
                for (int i = 0; i < L; i++) {
                    size_t j = (size_t)r * L + i;
                    if (!masked[j]) continue;
                    const float *row = lg + j * Vp;
                    double mx = row[0], z = 0;
                    for (int32_t y = 1; y < Vp; y++)
                        if (row[y] > mx) mx = row[y];
                    for (int32_t y = 0; y < Vp; y++)
                        z += exp((double)row[y] - mx);
                    round_loss += (mx + log(z) - row[x[i]]) / p[r]; /* CE over all V' outputs */
                }
            total += round_loss / R;
            used++;
        }
        out->per_seq[b] = used ? total / used : 0;
    }
    progress_finish(&pg);
    if (rc != HDLM_OK) goto done;
    out->n_seq = n_seq, out->L = L, out->mc = (int64_t)R * cfg->rounds;
    out->wall = progress_now() - t0;
    eval_summarise(out, L - 1); /* the reference's denominator */
done:
    free(xt), free(pos), free(masked), free(st), free(sigma), free(rows), free(p);
    if (rc != HDLM_OK) eval_result_free(out);
    return rc;
}
