/* uniform: uniform-replacement noise over the V real tokens, no mask (docs/method.md "uniform" with
 * N = V), parametrised directly by t: with probability t a token is replaced by a uniform draw over
 * all V tokens (possibly itself), so q(x_t = x0) = 1 − t + t/V and q(x_t = y != x0) = t/V. The
 * model predicts x0 (logits over V classes); the reverse step is the exact posterior given that
 * prediction. No σ conditioning.
 * Draw order of corrupt: one uniform per position of the (B, L) batch, row-major (drawn also where
 * unused), then one uniform per replaced position (row-major) whose floor(u·V) is the new token.
 * limit: one uniform per position. */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct uniform_noise {
    const hdlm_host *host;
    int32_t V; /* tokens; no extra symbols */
} uniform_noise;

static int un_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
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
    uniform_noise *u = malloc(sizeof *u);
    if (!u) return HDLM_ENOMEM;
    u->host = host;
    u->V = (int32_t)vocab;
    *self = u;
    return HDLM_OK;
}

static void un_destroy(void *self) {
    free(self);
}

/* Checks what every op relies on: the batch was made for this vocabulary and the arrays the op
 * reads (`need`: one letter each) are present. */
static int check_batch(const uniform_noise *u, const hdlm_noise_batch *b, const char *op,
                       const char *need, char *err, size_t err_cap) {
    if (!b || b->struct_size < sizeof(hdlm_noise_batch)) {
        snprintf(err, err_cap, "%s: batch struct of %u bytes, this plugin needs %zu", op,
                 b ? b->struct_size : 0u, sizeof(hdlm_noise_batch));
        return HDLM_EINVAL;
    }
    if (b->V != u->V || b->Vp != u->V) {
        snprintf(err, err_cap, "%s: batch has V = %d, Vp = %d; this instance has vocab %d, Vp %d",
                 op, b->V, b->Vp, u->V, u->V);
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

static int32_t draw_token(const uniform_noise *u, void *rng) {
    int32_t y = (int32_t)(u->host->uniform(rng) * (double)u->V);
    return y < u->V ? y : u->V - 1;
}

/* Annealed batches: settled positions keep x0, worthless ones get a limit draw (a uniform token),
 * active ones are replaced with probability t. Unannealed batches treat every position as
 * active. */
static int un_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const uniform_noise *u = self;
    int rc = check_batch(u, b, "corrupt", "0xtS", err, err_cap);
    if (rc) return rc;
    const int64_t n = b->B * b->L;
    for (int64_t j = 0; j < n; j++) { /* pass 1: which positions are replaced (-1) */
        if (b->x0[j] < 0 || b->x0[j] >= u->V)
            return bad_token("corrupt", "x0", j, b->x0[j], u->V - 1, err, err_cap);
        double r = u->host->uniform(b->rng);
        int st = b->annealed ? b->state[j] : HDLM_ACTIVE;
        if (st == HDLM_SETTLED)
            b->xt[j] = b->x0[j];
        else if (st == HDLM_WORTHLESS)
            b->xt[j] = -1;
        else
            b->xt[j] = r < (double)b->t[j] ? -1 : b->x0[j];
    }
    for (int64_t j = 0; j < n; j++) /* pass 2: the new tokens */
        if (b->xt[j] == -1) b->xt[j] = draw_token(u, b->rng);
    return HDLM_OK;
}

static double logsumexp(const float *lg, int32_t n) {
    double mx = lg[0], z = 0;
    for (int32_t v = 1; v < n; v++)
        if (lg[v] > mx) mx = lg[v];
    for (int32_t v = 0; v < n; v++)
        z += exp((double)lg[v] - mx);
    return mx + log(z);
}

/* x0-prediction cross-entropy (over the V tokens) at every active position, unweighted (the
 * posterior of the reverse step needs only p(x0 | x_t), which the plain CE trains); normalised
 * like the absorbing "standard" loss: annealed by max(1, #active positions of the batch),
 * unannealed by B·L. */
static int un_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const uniform_noise *u = self;
    int rc = check_batch(u, b, "loss", "0xtSgl", err, err_cap);
    if (rc) return rc;
    const int32_t Vp = b->Vp;
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
        if (b->x0[j] < 0 || b->x0[j] >= u->V)
            return bad_token("loss", "x0", j, b->x0[j], u->V - 1, err, err_cap);
        if (b->xt[j] < 0 || b->xt[j] >= u->V)
            return bad_token("loss", "xt", j, b->xt[j], u->V - 1, err, err_cap);
        if (b->annealed && b->state[j] != HDLM_ACTIVE) continue;
        const double g = 1.0 / norm;
        const double ce = u->host->softmax_ce(lg, Vp, b->x0[j], g, dl); /* fills dl */
        b->loss[j] = (float)(ce / norm);
        b->total += ce / norm;
    }
    return HDLM_OK;
}

/* Exact posterior of the kernel, for s < t.
 * Forward from 0: keep with probability 1 − t, else a uniform token. Keeping is multiplicative
 * (a replaced token stays uniform whatever happens next), so the one-step kernel from s to t keeps
 * with probability (1 − t)/(1 − s), i.e. replaces with r = (t − s)/(1 − s):
 *   q(x_t = k | x_s = y) = (1 − r)[k = y] + r/V
 *   q(x_s = y | x0 = a)  = (1 − s)[y = a] + s/V
 *   q(x_t = k | x0 = a)  = (1 − t)[k = a] + t/V =: Z(a)
 * Bayes: q(x_s = y | x_t = k, x0 = a) = q(k | y) q(y | a) / Z(a). With the model's x̂0 ~ p̂ and
 * c_a = p̂(a)/Z(a), C = Σ_a c_a, expanding the product of the two kernels gives
 *   p(x_s = y | x_t = k) = Σ_a p̂(a) q(y | k, a)
 *     = [y = k]·((1 − r)(1 − s) c_k + (1 − r)(s/V) C) + (r/V)(1 − s) c_y + (r s/V²) C,
 * which sums to Σ_a p̂(a) = 1 and costs O(V). Z takes two values: Z_k = 1 − t + t/V at a = k and
 * Z_o = t/V elsewhere. */
typedef struct post {
    double r, s, V, Zk, Zo, ck, C;
    int32_t k;
} post;

static post post_make(double t, double s, int32_t V, int32_t k, double pk) {
    post q;
    q.r = s < 1 ? (t - s) / (1 - s) : 0;
    q.s = s;
    q.V = V;
    q.k = k;
    q.Zk = 1 - t + t / V;
    q.Zo = t / V;
    q.ck = pk / q.Zk;
    q.C = q.ck + (1 - pk) / q.Zo;
    return q;
}

/* p(x_s = y | x_t = k) given p̂(y) */
static double post_model(const post *q, int32_t y, double py) {
    double cy = y == q->k ? q->ck : py / q->Zo;
    double p = (q->r / q->V) * (1 - q->s) * cy + q->r * q->s / (q->V * q->V) * q->C;
    if (y == q->k) p += (1 - q->r) * (1 - q->s) * q->ck + (1 - q->r) * (q->s / q->V) * q->C;
    return p;
}

/* q(x_s = y | x_t = k, x0 = a), the true posterior */
static double post_true(const post *q, int32_t y, int32_t a) {
    double fwd = (1 - q->r) * (y == q->k) + q->r / q->V;
    double from0 = (1 - q->s) * (y == a) + q->s / q->V;
    return fwd * from0 / (a == q->k ? q->Zk : q->Zo);
}

static int check_times(const hdlm_noise_batch *b, int64_t j, const char *op, char *err,
                       size_t err_cap) {
    const double t = b->t[j], s = b->s[j];
    if (!(t > 0 && t <= 1 && s >= 0 && s <= t && s < 1)) {
        snprintf(err, err_cap,
                 "%s: position %lld has t = %g, s = %g; need 0 <= s <= t <= 1, t > 0, s < 1", op,
                 (long long)j, t, s);
        return HDLM_EINVAL;
    }
    return HDLM_OK;
}

static int un_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const uniform_noise *u = self;
    int rc = check_batch(u, b, "reverse", "xtsSgp", err, err_cap);
    if (rc) return rc;
    const int32_t Vp = b->Vp;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->state[j] != HDLM_ACTIVE) continue;
        const int32_t k = b->xt[j];
        if (k < 0 || k >= u->V) return bad_token("reverse", "xt", j, k, u->V - 1, err, err_cap);
        if ((rc = check_times(b, j, "reverse", err, err_cap))) return rc;
        const float *lg = b->logits + j * Vp;
        double *pr = b->probs + j * Vp;
        const double lse = logsumexp(lg, Vp);
        post q = post_make(b->t[j], b->s[j], u->V, k, exp((double)lg[k] - lse));
        for (int32_t y = 0; y < u->V; y++)
            pr[y] = post_model(&q, y, exp((double)lg[y] - lse));
    }
    return HDLM_OK;
}

static int un_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const uniform_noise *u = self;
    int rc = check_batch(u, b, "limit", "x", err, err_cap);
    if (rc) return rc;
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = draw_token(u, b->rng);
    return HDLM_OK;
}

/* KL( q(x_s | x_t, x0) || p(x_s | x_t) ) in nats at every active position: the t -> s term of
 * the discrete-time NELBO of this process with the reverse step above (≥ 0). */
static int un_bound(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const uniform_noise *u = self;
    int rc = check_batch(u, b, "bound", "0xtsSgb", err, err_cap);
    if (rc) return rc;
    const int32_t Vp = b->Vp;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        b->bound[j] = 0;
        if (b->state[j] != HDLM_ACTIVE) continue;
        const int32_t k = b->xt[j], a = b->x0[j];
        if (a < 0 || a >= u->V) return bad_token("bound", "x0", j, a, u->V - 1, err, err_cap);
        if (k < 0 || k >= u->V) return bad_token("bound", "xt", j, k, u->V - 1, err, err_cap);
        if ((rc = check_times(b, j, "bound", err, err_cap))) return rc;
        const float *lg = b->logits + j * Vp;
        const double lse = logsumexp(lg, Vp);
        post q = post_make(b->t[j], b->s[j], u->V, k, exp((double)lg[k] - lse));
        double kl = 0;
        for (int32_t y = 0; y < u->V; y++) {
            double qt = post_true(&q, y, a);
            if (qt <= 0) continue;
            double pm = post_model(&q, y, exp((double)lg[y] - lse));
            kl += qt * (log(qt) - log(pm > 1e-300 ? pm : 1e-300));
        }
        b->bound[j] = kl > 0 ? kl : 0; /* rounding can leave -1e-17 for a perfect model */
    }
    return HDLM_OK;
}

static int un_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t err_cap) {
    const uniform_noise *u = self;
    if (x0 < 0 || x0 >= u->V) {
        snprintf(err, err_cap, "marginal: x0 = %d is outside 0..%d", x0, u->V - 1);
        return HDLM_EINVAL;
    }
    if (!(t >= 0 && t <= 1)) {
        snprintf(err, err_cap, "marginal: t = %g must be in [0, 1]", t);
        return HDLM_EINVAL;
    }
    for (int32_t v = 0; v < u->V; v++)
        probs[v] = t / u->V;
    probs[x0] += 1 - t;
    return HDLM_OK;
}

static void un_info(void *self, hdlm_info *info) {
    (void)self;
    info->flags = HDLM_INFO_CONCURRENT; /* loss reads self only */
    info->n_extra = 0;
    info->mask_id = -1; /* no mask: every symbol is a real token */
}

static const hdlm_noise_ops un_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = un_info},
    .corrupt = un_corrupt,
    .conditioning = NULL,
    .loss = un_loss,
    .reverse = un_reverse,
    .limit = un_limit,
    .bound = un_bound,
    .marginal = un_marginal,
};

static const hdlm_plugin un_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "uniform",
    .version = "1.0.0",
    .summary = "uniform replacement: with probability t a token becomes a uniform draw; no mask",
    .options = NULL,
    .create = un_create,
    .destroy = un_destroy,
    .ops = &un_ops,
};

HDLM_PLUGIN_DEFINE(un_desc)
