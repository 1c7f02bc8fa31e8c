/* absorbing: MDLM masking noise (docs/method.md "absorbing"; docs/method.md "epsilon_hybrid"
 * "standard" loss; docs/method.md "Samplers" `original` step). An ACTIVE position is replaced by
 * the mask M = V with probability p = t; settled positions keep x0 and worthless ones are M. The
 * model predicts x0 with logits over V+1 classes. No σ conditioning and no corrections of visible
 * tokens: those belong to the sampler. Draw order of corrupt: one host->uniform per position of the
 * (B, L) batch, row-major, including positions whose draw goes unused, so the stream never depends
 * on the states. */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct absorbing {
    const hdlm_host *host;
    int32_t V; /* real tokens; the mask is id V */
} absorbing;

static int ab_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    if (!HDLM_HOST_HAS(host, softmax_ce)) { /* the loss uses the host's vectorised row */
        snprintf(err, err_cap, "this hdlm is older than the plugin: its host has no softmax_ce");
        return HDLM_EINVAL;
    }
    double vocab;
    vocab = args->vocab; /* checked by the host too */
    if (vocab < 2 || vocab > 16777216.0) {
        snprintf(err, err_cap, "option 'vocab' (number of real tokens) must be an integer >= 2");
        return HDLM_EINVAL;
    }
    absorbing *a = malloc(sizeof *a);
    if (!a) return HDLM_ENOMEM;
    a->host = host;
    a->V = (int32_t)vocab;
    *self = a;
    return HDLM_OK;
}

static void ab_destroy(void *self) {
    free(self);
}

/* Checks what every op relies on: the batch was made for this vocabulary and its arrays are
 * present. `need` lists the arrays the op reads. */
static int check_batch(const absorbing *a, const hdlm_noise_batch *b, const char *op,
                       const char *need, char *err, size_t err_cap) {
    if (!b || b->struct_size < sizeof(hdlm_noise_batch)) {
        snprintf(err, err_cap, "%s: batch struct of %u bytes, this plugin needs %zu", op,
                 b ? b->struct_size : 0u, sizeof(hdlm_noise_batch));
        return HDLM_EINVAL;
    }
    if (b->V != a->V || b->Vp != a->V + 1) {
        snprintf(err, err_cap, "%s: batch has V = %d, Vp = %d; this instance has vocab %d, Vp %d",
                 op, b->V, b->Vp, a->V, a->V + 1);
        return HDLM_EINVAL;
    }
    if (b->B < 0 || b->L < 0) {
        snprintf(err, err_cap, "%s: batch shape B = %lld, L = %lld must not be negative", op,
                 (long long)b->B, (long long)b->L);
        return HDLM_EINVAL;
    }
    const struct {
        char key;
        const void *p;
        const char *name;
    } arrays[] = {{'0', b->x0, "x0"},     {'x', b->xt, "xt"},       {'t', b->t, "t"},
                  {'s', b->s, "s"},       {'S', b->state, "state"}, {'g', b->logits, "logits"},
                  {'l', b->loss, "loss"}, {'p', b->probs, "probs"}, {'b', b->bound, "bound"}};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        if (strchr(need, arrays[i].key) && !arrays[i].p) {
            snprintf(err, err_cap, "%s: batch field '%s' is NULL", op, arrays[i].name);
            return HDLM_EINVAL;
        }
    return HDLM_OK;
}

static int bad_token(const char *op, const char *field, int64_t j, int32_t v, int32_t hi, char *err,
                     size_t err_cap) {
    snprintf(err, err_cap, "%s: %s[%lld] = %d is outside 0..%d", op, field, (long long)j, v, hi);
    return HDLM_EINVAL;
}

static int ab_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const absorbing *a = self;
    int rc = check_batch(a, b, "corrupt", "0xtS", err, err_cap);
    if (rc) return rc;
    const int32_t M = a->V;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->x0[j] < 0 || b->x0[j] >= a->V)
            return bad_token("corrupt", "x0", j, b->x0[j], a->V - 1, err, err_cap);
        double u = a->host->uniform(b->rng); /* drawn for every position: see the header */
        /* unannealed (continuous-time) batches treat every position as active, as the
         * reference's MDLM loss does */
        int st = b->annealed ? b->state[j] : HDLM_ACTIVE;
        if (st == HDLM_SETTLED)
            b->xt[j] = b->x0[j];
        else if (st == HDLM_WORTHLESS)
            b->xt[j] = M;
        else
            b->xt[j] = u < (double)b->t[j] ? M : b->x0[j];
    }
    return HDLM_OK;
}

/* log-sum-exp of n logits, in double */
static double logsumexp(const float *lg, int32_t n) {
    double mx = lg[0], z = 0;
    for (int32_t v = 1; v < n; v++)
        if (lg[v] > mx) mx = lg[v];
    for (int32_t v = 0; v < n; v++)
        z += exp((double)lg[v] - mx);
    return mx + log(z);
}

/* docs/method.md "epsilon_hybrid" "standard": annealed: Σ_{active, masked} CE/p / max(1, #active
 * positions of the batch); unannealed: Σ_{masked} CE/p / (B·L). CE is over all V+1 classes (the
 * reference does not suppress the mask logit). dlogits = w/norm · (softmax − onehot(x0)) at masked
 * positions, else 0.
 */
static int ab_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const absorbing *a = self;
    int rc = check_batch(a, b, "loss", "0xtSgl", err, err_cap);
    if (rc) return rc;
    const int32_t M = a->V, Vp = b->Vp;
    const int64_t n = b->B * b->L;
    int64_t n_active = 0;
    for (int64_t j = 0; j < n; j++)
        n_active += b->state[j] == HDLM_ACTIVE;
    const double norm =
        b->annealed ? (double)(n_active > 1 ? n_active : 1) : (double)(n > 1 ? n : 1);
    b->total = 0;
    for (int64_t j = 0; j < n; j++) {
        const float *lg = b->logits + j * Vp;
        float *dl = b->dlogits ? b->dlogits + j * Vp : NULL;
        b->loss[j] = 0;
        if (dl) memset(dl, 0, sizeof(float) * (size_t)Vp);
        if (b->x0[j] < 0 || b->x0[j] >= a->V)
            return bad_token("loss", "x0", j, b->x0[j], a->V - 1, err, err_cap);
        if (b->xt[j] < 0 || b->xt[j] > M)
            return bad_token("loss", "xt", j, b->xt[j], M, err, err_cap);
        if (b->annealed && b->state[j] != HDLM_ACTIVE) continue;
        if (b->xt[j] != M) continue;
        const double p = b->t[j];
        if (!(p > 0 && p <= 1)) {
            snprintf(err, err_cap, "loss: t[%lld] = %g at a masked position must be in (0, 1]",
                     (long long)j, p);
            return HDLM_EINVAL;
        }
        const double w = 1.0 / p;
        const double g = w / norm;
        const double ce = a->host->softmax_ce(lg, Vp, b->x0[j], g, dl); /* fills dl */
        b->loss[j] = (float)(w * ce / norm);
        b->total += w * ce / norm;
    }
    return HDLM_OK;
}

/* Checks 0 <= s <= t <= 1 and t > 0 at an active position. */
static int check_times(const hdlm_noise_batch *b, int64_t j, const char *op, char *err,
                       size_t err_cap) {
    const double t = b->t[j], s = b->s[j];
    if (!(t > 0 && t <= 1 && s >= 0 && s <= t)) {
        snprintf(err, err_cap, "%s: position %lld has t = %g, s = %g; need 0 <= s <= t <= 1, t > 0",
                 op, (long long)j, t, s);
        return HDLM_EINVAL;
    }
    return HDLM_OK;
}

/* MDLM ancestral step t -> s (docs/method.md "Samplers" `original`): a masked position stays M with
 * probability s/t and otherwise takes y with probability softmax(logits)[y] renormalised over the V
 * real tokens. Choice: the reference's Gumbel-max runs over all V+1 classes and can "unmask" to M;
 * that is a wasted step, so the mask class is dropped and the rest renormalised. A visible
 * position keeps its token (carry-over). */
static int ab_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const absorbing *a = self;
    int rc = check_batch(a, b, "reverse", "xtsSgp", err, err_cap);
    if (rc) return rc;
    const int32_t M = a->V, Vp = b->Vp;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->state[j] != HDLM_ACTIVE) continue;
        double *pr = b->probs + j * Vp;
        const float *lg = b->logits + j * Vp;
        if (b->xt[j] < 0 || b->xt[j] > M)
            return bad_token("reverse", "xt", j, b->xt[j], M, err, err_cap);
        if ((rc = check_times(b, j, "reverse", err, err_cap))) return rc;
        for (int32_t v = 0; v < Vp; v++)
            pr[v] = 0;
        if (b->xt[j] != M) {
            pr[b->xt[j]] = 1;
            continue;
        }
        const double keep = (double)b->s[j] / (double)b->t[j];
        const double lse = logsumexp(lg, a->V); /* real tokens only */
        for (int32_t v = 0; v < a->V; v++)
            pr[v] = (1 - keep) * exp((double)lg[v] - lse);
        pr[M] = keep;
    }
    return HDLM_OK;
}

static int ab_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const absorbing *a = self;
    int rc = check_batch(a, b, "limit", "x", err, err_cap);
    if (rc) return rc;
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = a->V;
    return HDLM_OK;
}

/* Per active position, the discrete-time absorbing NELBO term of t -> s, which is the KL between
 * the true posterior q(x_s | x_t, x0) and the reverse step above: masked positions
 * (t − s)/t · CE(x0), with CE under the softmax renormalised over the V real tokens (the
 * distribution `reverse` samples from; its CE is never above the all-classes CE of docs/method.md
 * "The reference-style estimator", so the bound is tighter and still valid); visible positions 0
 * (x_t = x0 there). Nats. */
static int ab_bound(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const absorbing *a = self;
    int rc = check_batch(a, b, "bound", "0xtsSgb", err, err_cap);
    if (rc) return rc;
    const int32_t M = a->V, Vp = b->Vp;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        b->bound[j] = 0;
        if (b->state[j] != HDLM_ACTIVE) continue;
        if (b->x0[j] < 0 || b->x0[j] >= a->V)
            return bad_token("bound", "x0", j, b->x0[j], a->V - 1, err, err_cap);
        if (b->xt[j] < 0 || b->xt[j] > M)
            return bad_token("bound", "xt", j, b->xt[j], M, err, err_cap);
        if ((rc = check_times(b, j, "bound", err, err_cap))) return rc;
        if (b->xt[j] == b->x0[j]) continue;
        if (b->xt[j] != M) {
            snprintf(err, err_cap,
                     "bound: position %lld is visible with x_t = %d != x0 = %d, impossible under "
                     "absorbing noise (make x_t by masking only)",
                     (long long)j, b->xt[j], b->x0[j]);
            return HDLM_EINVAL;
        }
        const float *lg = b->logits + j * Vp;
        const double t = b->t[j], s = b->s[j];
        b->bound[j] = (t - s) / t * (logsumexp(lg, a->V) - lg[b->x0[j]]);
    }
    return HDLM_OK;
}

/* q(x_t = M | x0) = t, q(x_t = x0 | x0) = 1 − t; the mask stays the mask. */
static int ab_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t err_cap) {
    const absorbing *a = self;
    if (x0 < 0 || x0 > a->V) {
        snprintf(err, err_cap, "marginal: x0 = %d is outside 0..%d", x0, a->V);
        return HDLM_EINVAL;
    }
    if (!(t >= 0 && t <= 1)) {
        snprintf(err, err_cap, "marginal: t = %g must be in [0, 1]", t);
        return HDLM_EINVAL;
    }
    for (int32_t v = 0; v <= a->V; v++)
        probs[v] = 0;
    if (x0 == a->V) {
        probs[a->V] = 1;
        return HDLM_OK;
    }
    probs[x0] = 1 - t;
    probs[a->V] = t;
    return HDLM_OK;
}

static void ab_info(void *self, hdlm_info *info) {
    info->flags = HDLM_INFO_CONCURRENT; /* loss reads self only */
    info->n_extra = 1;
    info->mask_id = ((const absorbing *)self)->V; /* the mask */
}

static const hdlm_noise_ops ab_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = ab_info},
    .corrupt = ab_corrupt,
    .conditioning = NULL,
    .loss = ab_loss,
    .reverse = ab_reverse,
    .limit = ab_limit,
    .bound = ab_bound,
    .marginal = ab_marginal,
};

static const hdlm_plugin ab_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "absorbing",
    .version = "1.0.0",
    .summary = "MDLM masking: mask with probability t; x0-prediction CE weighted 1/t",
    .options = NULL,
    .create = ab_create,
    .destroy = ab_destroy,
    .ops = &ab_ops,
};

HDLM_PLUGIN_DEFINE(ab_desc)
