/* gamma_hybrid: the γ-hybrid noise process of the reference (docs/method.md "gamma_hybrid") as a
 * noise plugin: rate matrix Q_γ = (1 − γ)·Q_absorb + γ·Q_uniform over V real tokens + the mask M =
 * V, a SEDD-style log-concrete-score model (scale_by_sigma), the reference's score entropy (or the
 * exact DSE of Q_γ), the analytic (Tweedie τ-leaping) reverse step and a DWDSE bound term.
 * Deliberately not here: level → time conversion, attention masks and efficient-mode stitching
 * (the core's job); the reference's float32/bf16 arithmetic (we compute in float64). */
#include "hdlm/plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* B = sequences, L = positions, V = real tokens, Vp = V + 1 model outputs, M = V (the mask). */

/* LogLinearNoise of the reference hard-codes eps = 5e-3: σ(t) = −log(1 − (1 − eps)·t). */
#define GH_LOGLIN_SPAN (1.0 - 5e-3)
/* The reference's guard added to denominators and logs of the γ score entropy (docs/method.md
 * "gamma_hybrid"). */
#define GH_SE_EPS 1e-12
/* Value written into the mask channel by post_process_logits (docs/method.md "The model" step 7).
 */
#define GH_MASK_SUPPRESS (-1000.0)
/* A reverse step whose target time is at most this is the last one of its position ("tokens to
 * denoise" of docs/method.md "gamma_hybrid": the sampler's s is 0.01·a = 1e-5 there; every other s
 * is ≥ a = 1e-3). */
#define GH_DENOISE_TIME 2e-4
/* sample_limit hard-codes σ_max = 4 (not the σ of worthless training positions, docs/method.md
 * "gamma_hybrid"). */
#define GH_LIMIT_SIGMA 4.0

typedef struct gamma_hybrid {
    const hdlm_host *host;
    double gamma;
    int32_t V;
    int geometric; /* noise == "geometric" */
    double sigma_min, sigma_max;
    int exact;      /* score == "exact" */
    int settled_ce; /* add the settled cross-entropy term */
    int pinned;     /* current_score == "pinned": the current token's log-score is 0 (SEDD) */
    int ref_limit;  /* limit == "reference": start from σ = 4 instead of the t = 1 marginal */
} gamma_hybrid;

/* ------------------------------------------------------------------------------------------- */
/* process quantities                                                                          */

/* σ(t) and σ'(t) of docs/method.md "gamma_hybrid". loglinear ignores sigma_min/sigma_max, as the
 * reference does. */
static double gh_sigma(const gamma_hybrid *g, double t, double *rate) {
    if (g->geometric) {
        double lr = log(g->sigma_max / g->sigma_min);
        double s = g->sigma_min * exp(t * lr); /* σ_min^{1−t} σ_max^t */
        if (rate) *rate = s * lr;
        return s;
    }
    if (rate) *rate = GH_LOGLIN_SPAN / (1.0 - GH_LOGLIN_SPAN * t);
    return -log1p(-GH_LOGLIN_SPAN * t);
}

/* e^σ − 1 with the reference's branch (docs/method.md "gamma_hybrid"): expm1 below 0.5, exp − 1
 * above. */
static double gh_esigm1(double sigma) {
    return sigma < 0.5 ? expm1(sigma) : exp(sigma) - 1.0;
}

/* scale_by_sigma (docs/method.md "The model" step 6): s = logits − (log(e^σ − 1) + log V). */
static double gh_shift(const gamma_hybrid *g, double sigma) {
    return log(gh_esigm1(sigma)) + log((double)g->V);
}

/* r·(log r − 1), continued by 0 at r = 0 (its limit). */
static double gh_k(double r) {
    return r > 0 ? r * (log(r) - 1.0) : 0.0;
}

/* ------------------------------------------------------------------------------------------- */
/* score entropies: s = log scores over Vp channels; grad (Vp) receives d SE / d s             */

/* The reference's QGamma.score_entropy (docs/method.md "gamma_hybrid" step 4): SEDD's absorbing
 * expression at a masked position and SEDD's uniform expression at a visible one, both at the FULL
 * σ, weighted (1 − γ) and γ, with the 1e-12 guards. Not the exact DSE of Q_γ; it is what the
 * reference optimises. */
static double gh_se_reference(const gamma_hybrid *g, const double *s, int32_t xt, int32_t x0,
                              double sigma, double *grad) {
    const int32_t N = g->V;
    const double gam = g->gamma, e = gh_esigm1(sigma);
    for (int32_t y = 0; y <= N; y++)
        grad[y] = 0;
    if (xt == N) {
        double r = 1.0 / (e + GH_SE_EPS), pos = 0;
        for (int32_t y = 0; y < N; y++) {
            double ey = exp(s[y]);
            pos += ey;
            grad[y] = (1 - gam) * ey;
        }
        grad[x0] -= (1 - gam) * r;
        return (1 - gam) * (pos - r * s[x0] + r * (log(r + GH_SE_EPS) - 1.0));
    }
    /* π and ν leave out the current token: the reference's "mean − own/N" is exactly that sum/N */
    double rho = 1.0 - N / (e + N + GH_SE_EPS), sum_s = 0, sum_e = 0;
    for (int32_t y = 0; y < N; y++) {
        if (y == xt) continue;
        double ey = exp(s[y]);
        sum_s += s[y];
        sum_e += ey;
        grad[y] = ey;
    }
    double pi = sum_e / N, nu = sum_s / N;
    if (xt == x0) {
        for (int32_t y = 0; y < N; y++)
            if (y != xt) grad[y] = gam * (grad[y] - rho) / N;
        return gam * (pi - rho * nu + (double)(N - 1) / N * rho * (log(rho + GH_SE_EPS) - 1.0));
    }
    for (int32_t y = 0; y < N; y++)
        if (y != xt) grad[y] = gam * (grad[y] - 1.0) / N;
    grad[x0] -= gam / (e + GH_SE_EPS);
    double cst = ((-log(rho + GH_SE_EPS) - 1.0) / (rho + GH_SE_EPS) - (N - 2)) / N;
    return gam * (pi - nu - s[x0] / (e + GH_SE_EPS) + cst);
}

/* Exact denoising score entropy of Q_γ at one position (score = "exact").
 *
 * Derivation. With dp_t/dt = σ'(t)·Q p_t (Q(y, x) = rate x → y, columns sum to 0), SEDD's DSE at
 * x = x_t given x_0 is
 *     DSE = Σ_{y≠x} Q(x, y) · [ e^{s_y} − r_y s_y + r_y (log r_y − 1) ],
 *     r_y = q_σ(y | x_0) / q_σ(x | x_0)   (the true concrete score of y relative to x),
 * i.e. every state y that can jump INTO x contributes, weighted by that rate; each bracket is
 * ≥ 0 with equality iff s_y = log r_y, so DSE ≥ 0 and = 0 at the true score. For Q_γ:
 *   x = M:    rates into M are (1 − γ) from every real y (nothing leaves M). With the marginal
 *             A = e^{−(1−γ)σ}, B = e^{−γσ}: q(y|x0) = A(1−B)/V + [y = x0]·AB, q(M|x0) = 1 − A, so
 *             r_y = A(1−B)/(V(1−A)) + [y = x0]·AB/(1−A)   (γ = 0: SEDD-absorb, r_x0 = 1/(e^σ−1)).
 *   x real:   rates into x are γ/V from every other real y (M never jumps to a real token).
 *             x = x0: r_y = (1−B)/(VB + 1 − B) for y ≠ x;
 *             x ≠ x0: r_x0 = 1 + VB/(1−B), r_y = 1 for the other y ≠ x.
 * The gradient is d DSE/d s_y = Q(x, y)·(e^{s_y} − r_y); the M channel never enters. */
static double gh_se_exact(const gamma_hybrid *g, const double *s, int32_t xt, int32_t x0,
                          double sigma, double *grad) {
    const int32_t V = g->V;
    const double gam = g->gamma;
    const double A = exp(-(1 - gam) * sigma), one_m_a = -expm1(-(1 - gam) * sigma);
    const double B = exp(-gam * sigma), one_m_b = -expm1(-gam * sigma);
    for (int32_t y = 0; y <= V; y++)
        grad[y] = 0;
    double w, r_other, r_x0;
    if (xt == V) {
        w = 1 - gam;
        if (w <= 0) return 0; /* γ = 1: M is unreachable */
        r_other = A * one_m_b / (V * one_m_a);
        r_x0 = r_other + A * B / one_m_a;
    } else {
        w = gam / V;
        if (w <= 0) return 0; /* γ = 0: nothing jumps into a real token */
        if (xt == x0) {
            r_other = one_m_b / (V * B + one_m_b);
            r_x0 = r_other; /* unused: y = x is skipped */
        } else {
            r_other = 1.0;
            r_x0 = 1.0 + V * B / one_m_b;
        }
    }
    double dse = 0;
    for (int32_t y = 0; y < V; y++) {
        if (y == xt) continue;
        double r = y == x0 ? r_x0 : r_other, ey = exp(s[y]);
        dse += w * (ey - r * s[y] + gh_k(r));
        grad[y] = w * (ey - r);
    }
    return dse;
}

/* ------------------------------------------------------------------------------------------- */
/* checks                                                                                      */

static int gh_check_batch(const gamma_hybrid *g, const hdlm_noise_batch *b, const char *op,
                          char *err, size_t err_cap) {
    if (!b || b->struct_size < sizeof(hdlm_noise_batch)) {
        snprintf(err, err_cap, "%s: batch struct_size %u, this plugin needs at least %zu", op,
                 b ? b->struct_size : 0u, sizeof(hdlm_noise_batch));
        return HDLM_EINVAL;
    }
    if (b->V != g->V || b->Vp != g->V + 1) {
        snprintf(err, err_cap, "%s: batch has V = %d, Vp = %d; this instance has V = %d, Vp = %d",
                 op, b->V, b->Vp, g->V, g->V + 1);
        return HDLM_EINVAL;
    }
    if (b->B < 0 || b->L < 0) {
        snprintf(err, err_cap, "%s: batch shape B = %lld, L = %lld must be >= 0", op,
                 (long long)b->B, (long long)b->L);
        return HDLM_EINVAL;
    }
    return HDLM_OK;
}

static int gh_missing(const char *op, const char *field, char *err, size_t err_cap) {
    snprintf(err, err_cap, "%s: batch field '%s' is NULL", op, field);
    return HDLM_EINVAL;
}

#define GH_NEED(ptr, field)                                                                        \
    do {                                                                                           \
        if (!(ptr)) return gh_missing(op, field, err, err_cap);                                    \
    } while (0)

/* t must be in (0, 1]: σ(0) = 0 makes scale_by_sigma infinite. */
static int gh_check_time(const char *op, const char *what, double t, int64_t j, int64_t L,
                         int allow_zero, char *err, size_t err_cap) {
    if (isfinite(t) && (allow_zero ? t >= 0 : t > 0) && t <= 1) return HDLM_OK;
    snprintf(err, err_cap, "%s: %s = %g at (b %lld, i %lld) must be in %s0, 1]", op, what, t,
             (long long)(j / L), (long long)(j % L), allow_zero ? "[" : "(");
    return HDLM_EINVAL;
}

static int gh_check_token(const char *op, const char *what, int32_t tok, int32_t hi, int64_t j,
                          int64_t L, char *err, size_t err_cap) {
    if (tok >= 0 && tok <= hi) return HDLM_OK;
    snprintf(err, err_cap, "%s: %s token %d at (b %lld, i %lld) outside 0..%d", op, what, tok,
             (long long)(j / L), (long long)(j % L), hi);
    return HDLM_EINVAL;
}

/* ------------------------------------------------------------------------------------------- */
/* ops                                                                                         */

static int32_t gh_n_extra(void *self) {
    (void)self;
    return 1;
}

static int gh_conditioning(void *self, size_t n, const float *t, float *sigma, char *err,
                           size_t err_cap) {
    const gamma_hybrid *g = self;
    for (size_t j = 0; j < n; j++) {
        if (!(isfinite(t[j]) && t[j] >= 0 && t[j] <= 1)) {
            snprintf(err, err_cap, "conditioning: t[%zu] = %g must be in [0, 1]", j, (double)t[j]);
            return HDLM_EINVAL;
        }
        sigma[j] = (float)gh_sigma(g, t[j], NULL);
    }
    return HDLM_OK;
}

/* sample_transition (docs/method.md "gamma_hybrid") at every position — settled and worthless ones
 * too, as the reference perturbs the whole sequence, each with the σ of its own t. Draws, in order
 * per position: one uniform r; when r falls in the uniform-move band, one more for the new id. */
static int gh_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const gamma_hybrid *g = self;
    const char *op = "corrupt";
    int rc = gh_check_batch(g, b, op, err, err_cap);
    if (rc) return rc;
    GH_NEED(b->x0, "x0");
    GH_NEED(b->xt, "xt");
    GH_NEED(b->t, "t");
    GH_NEED(b->rng, "rng");
    const int32_t V = g->V;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if ((rc = gh_check_token(op, "x0", b->x0[j], V, j, b->L, err, err_cap)) ||
            (rc = gh_check_time(op, "t", b->t[j], j, b->L, 1, err, err_cap)))
            return rc;
        double sigma = gh_sigma(g, b->t[j], NULL);
        double p_absorb = -expm1(-(1 - g->gamma) * sigma);                           /* 1 − A */
        double p_uniform = exp(-(1 - g->gamma) * sigma) * -expm1(-g->gamma * sigma); /* A(1−B) */
        double r = g->host->uniform(b->rng);
        int32_t x = b->x0[j];
        if (x == V) {
            b->xt[j] = V; /* M is absorbing */
        } else if (r < p_absorb) {
            b->xt[j] = V;
        } else if (r < p_absorb + p_uniform) {
            int32_t y = (int32_t)(g->host->uniform(b->rng) * V);
            b->xt[j] = y < V ? y : V - 1; /* may equal x0, as in the reference */
        } else {
            b->xt[j] = x;
        }
    }
    return HDLM_OK;
}

/* Training loss (docs/method.md "gamma_hybrid", "The model" steps 6–7):
 *   s = logits − (log(e^σ − 1) + log V)            scale_by_sigma, a constant shift per position
 *   s[i][M] = −1000 where position i + 1 is settled  post_process_logits; it is part of the
 *                                                    reference's training forward pass, so the
 *                                                    gradient of that channel is 0 there
 *   D_b  = Σ_{i not settled} σ'(t_i)·SE_i·w_i        w = 1 active, 0.001 worthless
 *   CE_b = Σ_{i settled} g_i·(−log softmax(s_i)[x0_i]) / n_s   (settled_ce and n_s > 0)
 *          g_i = ⌊i/w⌋/(n_blocks − 1), n_blocks = ⌈n_s/w⌉, all ones for one block
 *   total = mean_b D_b + mean_b CE_b
 * loss[b, i] is the contribution of position i to total; dlogits the exact gradient of total
 * with respect to the raw logits (the shift is constant, so d/ds = d/dlogits). */
static int gh_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const gamma_hybrid *g = self;
    const char *op = "loss";
    int rc = gh_check_batch(g, b, op, err, err_cap);
    if (rc) return rc;
    GH_NEED(b->x0, "x0");
    GH_NEED(b->xt, "xt");
    GH_NEED(b->t, "t");
    GH_NEED(b->state, "state");
    GH_NEED(b->logits, "logits");
    GH_NEED(b->loss, "loss");
    if (b->block < 1) {
        snprintf(err, err_cap, "loss: block width %lld must be >= 1", (long long)b->block);
        return HDLM_EINVAL;
    }
    const int32_t V = g->V, Vp = V + 1;
    const int64_t B = b->B, L = b->L;
    double *s = malloc(2 * (size_t)Vp * sizeof *s); /* (Vp) log scores, then (Vp) d/ds */
    if (!s) {
        snprintf(err, err_cap, "loss: out of memory for %d channels", Vp);
        return HDLM_ENOMEM;
    }
    double *grad = s + Vp, total = 0;
    for (int64_t bi = 0; bi < B && rc == HDLM_OK; bi++) {
        const uint8_t *st = b->state + bi * L;
        int64_t n_s = 0;
        for (int64_t i = 0; i < L; i++)
            n_s += st[i] == HDLM_SETTLED;
        const int ce_on = g->settled_ce && n_s > 0;
        const int64_t n_blocks = (n_s + b->block - 1) / b->block;
        for (int64_t i = 0; i < L; i++) {
            const int64_t j = bi * L + i;
            const float *lg = b->logits + j * Vp;
            float *dl = b->dlogits ? b->dlogits + j * Vp : NULL;
            if (st[i] > HDLM_WORTHLESS) {
                snprintf(err, err_cap, "loss: state %u at (b %lld, i %lld) is not one of 0, 1, 2",
                         st[i], (long long)bi, (long long)i);
                rc = HDLM_EINVAL;
                break;
            }
            if ((rc = gh_check_token(op, "x0", b->x0[j], V - 1, j, L, err, err_cap)) ||
                (rc = gh_check_token(op, "xt", b->xt[j], V, j, L, err, err_cap)) ||
                (rc = gh_check_time(op, "t", b->t[j], j, L, 0, err, err_cap)))
                break;
            const int settled = st[i] == HDLM_SETTLED;
            if (settled && !ce_on) {
                b->loss[j] = 0;
                if (dl) memset(dl, 0, sizeof *dl * (size_t)Vp);
                continue;
            }
            double rate, sigma = gh_sigma(g, b->t[j], &rate), shift = gh_shift(g, sigma);
            for (int32_t y = 0; y < Vp; y++)
                s[y] = (double)lg[y] - shift;
            const int suppress = i + 1 < L && st[i + 1] == HDLM_SETTLED;
            if (suppress) s[V] = GH_MASK_SUPPRESS;
            double contrib;
            if (settled) {
                double gi = n_blocks <= 1 ? 1.0 : (double)(i / b->block) / (double)(n_blocks - 1);
                if (gi > 1) gi = 1;
                double mx = s[0], z = 0;
                for (int32_t y = 1; y < Vp; y++)
                    mx = s[y] > mx ? s[y] : mx;
                for (int32_t y = 0; y < Vp; y++)
                    z += exp(s[y] - mx);
                double lse = mx + log(z), scale = gi / ((double)n_s * (double)B);
                contrib = scale * (lse - s[b->x0[j]]);
                for (int32_t y = 0; y < Vp; y++)
                    grad[y] = scale * exp(s[y] - lse);
                grad[b->x0[j]] -= scale;
            } else {
                double w = st[i] == HDLM_ACTIVE ? 1.0 : 0.001;
                double se = g->exact ? gh_se_exact(g, s, b->xt[j], b->x0[j], sigma, grad)
                                     : gh_se_reference(g, s, b->xt[j], b->x0[j], sigma, grad);
                double scale = rate * w / (double)B;
                contrib = scale * se;
                for (int32_t y = 0; y < Vp; y++)
                    grad[y] *= scale;
            }
            if (suppress) grad[V] = 0;
            if (!isfinite(contrib)) {
                snprintf(err, err_cap,
                         "loss: non-finite loss %g at (b %lld, i %lld) (logits too large?)",
                         contrib, (long long)bi, (long long)i);
                rc = HDLM_EINVAL;
                break;
            }
            b->loss[j] = (float)contrib;
            total += contrib;
            if (dl)
                for (int32_t y = 0; y < Vp; y++)
                    dl[y] = (float)grad[y];
        }
    }
    free(s);
    if (rc == HDLM_OK) b->total = total;
    return rc;
}

/* Reverse step t → s of one ACTIVE position (the "analytic" predictor, docs/method.md): with
 * S = exp(scale_by_sigma(logits)) at σ(t) (current token's entry 1 when pinned), dσ = σ(t) − σ(s),
 *   absorbing staggered score  S^a = e^{dσ}S,  S^a[M] += (1 − e^{dσ})·Σ_all S
 *   uniform staggered score    S^u_y = ((e^{−dσ} − 1)/(V e^{−dσ}))·Σ_real S + S_y/e^{−dσ},
 *                              S^u[M] = S[M]
 *   P = ((1 − γ)S^a + γS^u) ⊙ T(x_t)   (transposed transition of docs/method.md "gamma_hybrid" at
 * dσ) with P[M] = 0 at the last step of a position (s ≤ 2e-4), then negative entries clamped to 0
 * (the reference's argmax sampler never returns a token whose weight is negative) and the row
 * normalised in float64. Everything is linear in S, so S is computed relative to its largest
 * entry (the normalisation removes the factor). A row with no positive weight (only for absurd
 * outputs) falls back to keeping x_t, or to a uniform real token at a last step from M. */
static void gh_reverse_row(const gamma_hybrid *g, const float *lg, int32_t xt, double t_now,
                           double t_next, double *p) {
    const int32_t V = g->V, Vp = V + 1;
    const double gam = g->gamma;
    const double sig = gh_sigma(g, t_now, NULL), dsig = sig - gh_sigma(g, t_next, NULL);
    const double shift = gh_shift(g, sig);
    const int last = t_next <= GH_DENOISE_TIME;
    /* log scores; pinned: the current token's is 0 (ratio p(x_t)/p(x_t) = 1), as in SEDD. The
     * raw channel of a masked position is the mask channel, which no loss term trains: read as a
     * score it made "stay masked" negative (clipped to 0) for any dσ above ~1/V, so every
     * position unmasked at its first step. */
    for (int32_t y = 0; y < Vp; y++)
        p[y] = g->pinned && y == xt ? 0.0 : (double)lg[y] - shift;
    double mx = p[0];
    for (int32_t y = 1; y < Vp; y++)
        mx = p[y] > mx ? p[y] : mx;
    double sum_all = 0, sum_real = 0;
    for (int32_t y = 0; y < Vp; y++) {
        p[y] = exp(p[y] - mx); /* S relative to its largest entry */
        sum_all += p[y];
        if (y < V) sum_real += p[y];
    }
    const double ed = exp(dsig), em1 = expm1(dsig); /* e^{dσ}, e^{dσ} − 1 */
    /* T(x_t)[j] */
    double t_real, t_self, t_mask;
    if (xt == V) {
        t_real = -expm1(-(1 - gam) * dsig);
        t_self = t_real;
        t_mask = 1;
    } else {
        t_real = exp(-(1 - gam) * dsig) * -expm1(-gam * dsig) / V;
        t_self = t_real + exp(-dsig);
        t_mask = 0;
    }
    double total = 0;
    for (int32_t y = 0; y < Vp; y++) {
        double sa, su, tr;
        if (y < V) {
            sa = ed * p[y];
            su = -em1 / V * sum_real + ed * p[y]; /* (e^{−dσ} − 1)/(V e^{−dσ}) = −(e^{dσ} − 1)/V */
            tr = y == xt ? t_self : t_real;
        } else {
            sa = ed * p[y] - em1 * sum_all;
            su = p[y];
            tr = t_mask;
        }
        double v = ((1 - gam) * sa + gam * su) * tr;
        if (y == V && last) v = 0;
        p[y] = v > 0 ? v : 0;
        total += p[y];
    }
    if (total > 0 && isfinite(total)) {
        for (int32_t y = 0; y < Vp; y++)
            p[y] /= total;
        return;
    }
    for (int32_t y = 0; y < Vp; y++)
        p[y] = 0;
    if (xt == V && last)
        for (int32_t y = 0; y < V; y++)
            p[y] = 1.0 / V;
    else
        p[xt] = 1;
}

static int gh_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const gamma_hybrid *g = self;
    const char *op = "reverse";
    int rc = gh_check_batch(g, b, op, err, err_cap);
    if (rc) return rc;
    GH_NEED(b->xt, "xt");
    GH_NEED(b->t, "t");
    GH_NEED(b->s, "s");
    GH_NEED(b->state, "state");
    GH_NEED(b->logits, "logits");
    GH_NEED(b->probs, "probs");
    const int32_t V = g->V, Vp = V + 1;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        double *p = b->probs + j * Vp;
        if ((rc = gh_check_token(op, "xt", b->xt[j], V, j, b->L, err, err_cap))) return rc;
        if (b->state[j] != HDLM_ACTIVE) {
            /* not moved this step: a point mass on the current token keeps the row meaningful */
            for (int32_t y = 0; y < Vp; y++)
                p[y] = 0;
            p[b->xt[j]] = 1;
            continue;
        }
        if ((rc = gh_check_time(op, "t", b->t[j], j, b->L, 0, err, err_cap)) ||
            (rc = gh_check_time(op, "s", b->s[j], j, b->L, 1, err, err_cap)))
            return rc;
        if (b->s[j] > b->t[j]) {
            snprintf(err, err_cap, "reverse: s = %g > t = %g at (b %lld, i %lld); s must be <= t",
                     (double)b->s[j], (double)b->t[j], (long long)(j / b->L),
                     (long long)(j % b->L));
            return HDLM_EINVAL;
        }
        const float *lg = b->logits + j * Vp;
        for (int32_t y = 0; y < Vp; y++)
            if (!isfinite(lg[y])) {
                snprintf(err, err_cap, "reverse: logit %d at (b %lld, i %lld) is %g", y,
                         (long long)(j / b->L), (long long)(j % b->L), (double)lg[y]);
                return HDLM_EINVAL;
            }
        gh_reverse_row(g, lg, b->xt[j], b->t[j], b->s[j], p);
    }
    return HDLM_OK;
}

/* Probability of the mask in the start distribution; the rest is spread uniformly over the V
 * real tokens.
 *   limit = "marginal" (default): the forward marginal at t = 1 averaged over a uniform clean
 *     token, P(M) = 1 − e^{−(1−γ)σ(1)}: the sampler starts where the bound's chain starts, and
 *     the prior term KL(q(x_1 | x0) || start) is finite for every γ (A·log V at γ = 0).
 *   limit = "reference": sample_limit of the reference, σ_max = 4 hard-coded, P(M) = a/(a + u)
 *     with a = 1 − e^{−4(1−γ)}, u = (1 − e^{−4γ})e^{−4(1−γ)} (γ = 0: only masks). */
static double gh_start_mask(const gamma_hybrid *g) {
    if (g->gamma >= 1) return 0;
    if (!g->ref_limit) return -expm1(-(1 - g->gamma) * gh_sigma(g, 1.0, NULL));
    const double a = -expm1(-GH_LIMIT_SIGMA * (1 - g->gamma));
    const double u = -expm1(-GH_LIMIT_SIGMA * g->gamma) * exp(-GH_LIMIT_SIGMA * (1 - g->gamma));
    return a / (a + u);
}

/* Draws from the start distribution (gh_start_mask). Draws per position: one uniform for
 * M-or-not (skipped when γ = 1), one for the real token when not M. */
static int gh_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const gamma_hybrid *g = self;
    const char *op = "limit";
    int rc = gh_check_batch(g, b, op, err, err_cap);
    if (rc) return rc;
    GH_NEED(b->xt, "xt");
    GH_NEED(b->rng, "rng");
    const int32_t V = g->V;
    const double p_mask = gh_start_mask(g);
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (g->gamma < 1 && g->host->uniform(b->rng) < p_mask) {
            b->xt[j] = V;
            continue;
        }
        int32_t y = (int32_t)(g->host->uniform(b->rng) * V);
        b->xt[j] = y < V ? y : V - 1;
    }
    return HDLM_OK;
}

/* Per-position term (σ(t) − σ(s))·DSE_t for t → s of an ACTIVE position: the EXACT score entropy
 * of Q_γ (≥ 0) with the model's scores at t (scale_by_sigma, no post-processing: that is
 * training-only), times the σ increment. The evaluator (core eval.c) calls it on a short interval
 * [u − h, u] at a uniform point u of each schedule step and rescales by the step's length, which
 * makes the sum over steps an unbiased estimate of SEDD's DWDSE integral ∫ σ'(u)·DSE_u du over
 * [0, 1]; with the prior term (gh_prior) that is the NELBO of the continuous-time reverse
 * process. The current token's channel never enters (the DSE sums over y ≠ x_t). */
static int gh_bound(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const gamma_hybrid *g = self;
    const char *op = "bound";
    int rc = gh_check_batch(g, b, op, err, err_cap);
    if (rc) return rc;
    GH_NEED(b->x0, "x0");
    GH_NEED(b->xt, "xt");
    GH_NEED(b->t, "t");
    GH_NEED(b->s, "s");
    GH_NEED(b->state, "state");
    GH_NEED(b->logits, "logits");
    GH_NEED(b->bound, "bound");
    const int32_t V = g->V, Vp = V + 1;
    double *s = malloc(2 * (size_t)Vp * sizeof *s); /* (Vp) log scores, then (Vp) scratch */
    if (!s) {
        snprintf(err, err_cap, "bound: out of memory for %d channels", Vp);
        return HDLM_ENOMEM;
    }
    for (int64_t j = 0; j < b->B * b->L; j++) {
        b->bound[j] = 0;
        if (b->state[j] != HDLM_ACTIVE) continue;
        if ((rc = gh_check_token(op, "x0", b->x0[j], V - 1, j, b->L, err, err_cap)) ||
            (rc = gh_check_token(op, "xt", b->xt[j], V, j, b->L, err, err_cap)) ||
            (rc = gh_check_time(op, "t", b->t[j], j, b->L, 0, err, err_cap)) ||
            (rc = gh_check_time(op, "s", b->s[j], j, b->L, 1, err, err_cap)))
            break;
        if (b->s[j] > b->t[j]) {
            snprintf(err, err_cap, "bound: s = %g > t = %g at (b %lld, i %lld); s must be <= t",
                     (double)b->s[j], (double)b->t[j], (long long)(j / b->L),
                     (long long)(j % b->L));
            rc = HDLM_EINVAL;
            break;
        }
        double sig = gh_sigma(g, b->t[j], NULL), dsig = sig - gh_sigma(g, b->s[j], NULL);
        double shift = gh_shift(g, sig);
        const float *lg = b->logits + j * Vp;
        for (int32_t y = 0; y < Vp; y++)
            s[y] = (double)lg[y] - shift;
        double term = dsig * gh_se_exact(g, s, b->xt[j], b->x0[j], sig, s + Vp);
        if (!isfinite(term)) {
            snprintf(err, err_cap, "bound: non-finite term at (b %lld, i %lld) (logits too large?)",
                     (long long)(j / b->L), (long long)(j % b->L));
            rc = HDLM_EINVAL;
            break;
        }
        b->bound[j] = term;
    }
    free(s);
    return rc;
}

/* Exact forward marginal (docs/method.md "gamma_hybrid"), A = e^{−(1−γ)σ}, B = e^{−γσ}:
 * q(M) = 1 − A, q(x0) = AB + A(1 − B)/V, q(y ≠ x0) = A(1 − B)/V; M stays M. */
static int gh_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t cap) {
    const gamma_hybrid *g = self;
    const int32_t V = g->V;
    if (x0 < 0 || x0 > V) {
        snprintf(err, cap, "marginal: x0 = %d outside 0..%d", x0, V);
        return HDLM_EINVAL;
    }
    if (!(isfinite(t) && t >= 0 && t <= 1)) {
        snprintf(err, cap, "marginal: t = %g must be in [0, 1]", t);
        return HDLM_EINVAL;
    }
    for (int32_t y = 0; y <= V; y++)
        probs[y] = 0;
    if (x0 == V) {
        probs[V] = 1;
        return HDLM_OK;
    }
    double sigma = gh_sigma(g, t, NULL);
    double A = exp(-(1 - g->gamma) * sigma), spread = A * -expm1(-g->gamma * sigma) / V;
    for (int32_t y = 0; y < V; y++)
        probs[y] = spread;
    probs[x0] += A * exp(-g->gamma * sigma);
    probs[V] = -expm1(-(1 - g->gamma) * sigma);
    return HDLM_OK;
}

/* KL( q(x_1 | x0) || start ) per position (nats): the bound's prior term. q(x_1 | x0) has three
 * kinds of entries (M, x0, the V − 1 other real tokens), the start two (M, each real token). */
static int gh_prior(void *self, int32_t x0, double *kl, char *err, size_t cap) {
    const gamma_hybrid *g = self;
    const int32_t V = g->V;
    if (x0 < 0 || x0 >= V) {
        snprintf(err, cap, "prior: x0 = %d outside 0..%d", x0, V - 1);
        return HDLM_EINVAL;
    }
    const double sigma = gh_sigma(g, 1.0, NULL);
    const double A = exp(-(1 - g->gamma) * sigma), B = exp(-g->gamma * sigma);
    const double q_mask = -expm1(-(1 - g->gamma) * sigma),
                 q_other = A * -expm1(-g->gamma * sigma) / V;
    const double q_x0 = A * B + q_other;
    const double p_mask = gh_start_mask(g), p_real = (1 - p_mask) / V;
    const double q[3] = {q_mask, q_x0, q_other}, p[3] = {p_mask, p_real, p_real};
    const double n[3] = {1, 1, V - 1};
    double sum = 0;
    for (int k = 0; k < 3; k++) {
        if (q[k] <= 0) continue;
        if (p[k] <= 0) {
            snprintf(err, cap,
                     "prior: the start distribution (limit = '%s') gives probability 0 to %s, "
                     "which the forward process reaches at t = 1 with probability %.3g: the bound "
                     "is infinite (use limit = 'marginal')",
                     g->ref_limit ? "reference" : "marginal", k == 0 ? "the mask" : "real tokens",
                     q[k]);
            return HDLM_EINVAL;
        }
        sum += n[k] * q[k] * log(q[k] / p[k]);
    }
    *kl = sum > 0 ? sum : 0; /* rounding can leave −1e-17 when start = marginal */
    return HDLM_OK;
}

/* ------------------------------------------------------------------------------------------- */
/* descriptor                                                                                  */

static int gh_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double gamma, smin, smax, settled_ce, vocab;
    const char *noise, *score, *current, *limit;
    if (host->opt_number(opts, "gamma", &gamma) || host->opt_string(opts, "noise", &noise) ||
        host->opt_number(opts, "sigma_min", &smin) || host->opt_number(opts, "sigma_max", &smax) ||
        host->opt_string(opts, "score", &score) ||
        host->opt_number(opts, "settled_ce", &settled_ce) ||
        host->opt_string(opts, "current_score", &current) ||
        host->opt_string(opts, "limit", &limit)) {
        snprintf(err, err_cap, "a declared option is missing from the option set");
        return HDLM_EINVAL;
    }
    vocab = args->vocab; /* checked by the host too */
    if (!(vocab >= 2 && vocab <= 16777216.0) || vocab != floor(vocab)) {
        snprintf(err, err_cap,
                 "option 'vocab' (real tokens, set by the host) must be an integer "
                 "in 2..16777216");
        return HDLM_EINVAL;
    }
    if (!(gamma >= 0 && gamma <= 1)) {
        snprintf(err, err_cap, "option 'gamma' must be in [0, 1], got %g", gamma);
        return HDLM_EINVAL;
    }
    if (!(smin > 0 && isfinite(smin))) {
        snprintf(err, err_cap, "option 'sigma_min' must be > 0, got %g", smin);
        return HDLM_EINVAL;
    }
    if (!(smax > smin && isfinite(smax))) {
        snprintf(err, err_cap, "option 'sigma_max' must be > sigma_min = %g, got %g", smin, smax);
        return HDLM_EINVAL;
    }
    gamma_hybrid *g = malloc(sizeof *g);
    if (!g) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    g->host = host;
    g->gamma = gamma;
    g->V = (int32_t)vocab;
    g->geometric = strcmp(noise, "geometric") == 0;
    g->sigma_min = smin;
    g->sigma_max = smax;
    g->exact = strcmp(score, "exact") == 0;
    g->settled_ce = settled_ce != 0;
    g->pinned = strcmp(current, "reference") != 0;
    g->ref_limit = strcmp(limit, "reference") == 0;
    *self = g;
    return HDLM_OK;
}

static void gh_destroy(void *self) {
    free(self);
}

/* A score process conditioned on σ, whose model input mixes in the mask embedding with weight
 * e^{-γσ} (the RADD mix of docs/method.md "gamma_hybrid"). */
static void gh_info(void *self, hdlm_info *info) {
    const gamma_hybrid *g = self;
    /* concurrent: loss reads self only (its scratch is per call) */
    info->flags =
        HDLM_INFO_SCORE | HDLM_INFO_CONDITIONED | HDLM_INFO_INPUT_MIX | HDLM_INFO_CONCURRENT;
    info->n_extra = gh_n_extra(self);
    info->mask_id = g->V;
    info->input_mix = g->gamma;
}

static const hdlm_noise_ops gh_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = gh_info},
    .corrupt = gh_corrupt,
    .conditioning = gh_conditioning,
    .loss = gh_loss,
    .reverse = gh_reverse,
    .limit = gh_limit,
    .bound = gh_bound,
    .marginal = gh_marginal,
    .prior = gh_prior,
};

static const hdlm_option gh_options[] = {
    {"gamma", HDLM_OPT_NUMBER, "0.01", "uniform share of the rate matrix (0 absorbing, 1 uniform)",
     NULL},
    {"noise", HDLM_OPT_STRING, "loglinear",
     "σ(t): loglinear −log(1 − 0.995 t) (reference, ignores sigma_min/max) or geometric",
     "loglinear|geometric"},
    {"sigma_min", HDLM_OPT_NUMBER, "1e-4", "geometric noise: σ at t = 0", NULL},
    {"sigma_max", HDLM_OPT_NUMBER, "20", "geometric noise: σ at t = 1", NULL},
    {"score", HDLM_OPT_STRING, "reference",
     "score entropy: the reference's mixed SEDD formulas, or the exact DSE of Q_γ",
     "reference|exact"},
    {"settled_ce", HDLM_OPT_BOOL, "true",
     "add the block-weighted cross-entropy at settled positions", NULL},
    {"current_score", HDLM_OPT_STRING, "pinned",
     "reverse step: the current token's score pinned to 1 (SEDD), or read from its raw channel "
     "(the reference; makes sampling one-shot)",
     "pinned|reference"},
    {"limit", HDLM_OPT_STRING, "marginal",
     "start of sampling: the t = 1 marginal (consistent with the bound), or σ = 4 (reference)",
     "marginal|reference"},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin gh_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "gamma_hybrid",
    .version = "1.1.0",
    .summary = "γ-hybrid: (1−γ)·absorbing + γ·uniform rate matrix, SEDD-style score model",
    .options = gh_options,
    .create = gh_create,
    .destroy = gh_destroy,
    .ops = &gh_ops,
};

HDLM_PLUGIN_DEFINE(gh_desc)
