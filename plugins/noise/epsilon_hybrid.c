/* epsilon_hybrid: the ε-hybrid noise of HDLM (docs/method.md "epsilon_hybrid" "hybrid" losses). A
 * position is masked with probability p = t, otherwise with probability ε replaced by a uniform
 * real token (possibly the same one); the model (logits over V+1 classes, x0-prediction) is trained
 * to fill masks and to repair visible tokens. The reverse step is the plain absorbing one:
 * correcting visible tokens (ACS) is the sampler's business, it reads the logits itself. Draw order
 * of corrupt (row-major over the (B, L) batch, as the reference): one mask uniform per position,
 * then one corruption uniform per position (both drawn also where unused), then one uniform per
 * corrupted position whose floor(u·V) is the replacement id. */
#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct eps_hybrid {
    const hdlm_host *host;
    int32_t V;      /* real tokens; the mask is id V */
    double epsilon; /* corruption probability of an unmasked token */
    double lambda;  /* weight of the visible-token terms */
    int consistent; /* annealed_weights = "consistent": keep the 1/(1−p) factors when annealed */
} eps_hybrid;

static int eh_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    if (!HDLM_HOST_HAS(host, softmax_ce)) { /* the loss uses the host's vectorised row */
        snprintf(err, err_cap, "this hdlm is older than the plugin: its host has no softmax_ce");
        return HDLM_EINVAL;
    }
    const void *opts = args->opts;
    double vocab, epsilon, lambda;
    const char *aw;
    vocab = args->vocab; /* checked by the host too */
    if (vocab < 2 || vocab > 16777216.0) {
        snprintf(err, err_cap, "option 'vocab' (number of real tokens) must be an integer >= 2");
        return HDLM_EINVAL;
    }
    if (host->opt_number(opts, "epsilon", &epsilon) || host->opt_number(opts, "lambda", &lambda) ||
        host->opt_string(opts, "annealed_weights", &aw)) {
        snprintf(err, err_cap, "a declared option is missing from the host's option set");
        return HDLM_EINVAL;
    }
    if (!(epsilon >= 0 && epsilon <= 1)) {
        snprintf(err, err_cap, "option 'epsilon' must be in [0, 1], got %g", epsilon);
        return HDLM_EINVAL;
    }
    if (!(lambda >= 0 && isfinite(lambda))) {
        snprintf(err, err_cap, "option 'lambda' must be a finite number >= 0, got %g", lambda);
        return HDLM_EINVAL;
    }
    if (strcmp(aw, "reference") != 0 && strcmp(aw, "consistent") != 0) {
        snprintf(err, err_cap,
                 "option 'annealed_weights' must be \"reference\" or \"consistent\", got \"%s\"",
                 aw);
        return HDLM_EINVAL;
    }
    eps_hybrid *h = malloc(sizeof *h);
    if (!h) return HDLM_ENOMEM;
    h->host = host;
    h->V = (int32_t)vocab;
    h->epsilon = epsilon;
    h->lambda = lambda;
    h->consistent = strcmp(aw, "consistent") == 0;
    *self = h;
    return HDLM_OK;
}

static void eh_destroy(void *self) {
    free(self);
}

static int32_t eh_n_extra(void *self) {
    (void)self;
    return 1;
}

/* Checks what every op relies on: the batch was made for this vocabulary and the arrays the op
 * reads (`need`: one letter each) are present. */
static int check_batch(const eps_hybrid *h, const hdlm_noise_batch *b, const char *op,
                       const char *need, char *err, size_t err_cap) {
    if (!b || b->struct_size < sizeof(hdlm_noise_batch)) {
        snprintf(err, err_cap, "%s: batch struct of %u bytes, this plugin needs %zu", op,
                 b ? b->struct_size : 0u, sizeof(hdlm_noise_batch));
        return HDLM_EINVAL;
    }
    if (b->V != h->V || b->Vp != h->V + 1) {
        snprintf(err, err_cap, "%s: batch has V = %d, Vp = %d; this instance has vocab %d, Vp %d",
                 op, b->V, b->Vp, h->V, h->V + 1);
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

/* Uniform real token from one host uniform (53 bits: the bias of the floor is below 2^-29 for
 * any vocabulary the host accepts). */
static int32_t draw_token(const eps_hybrid *h, void *rng) {
    int32_t y = (int32_t)(h->host->uniform(rng) * (double)h->V);
    return y < h->V ? y : h->V - 1;
}

/* Annealed batches noise ACTIVE positions only (settled keep x0, worthless are M); unannealed
 * (continuous-time) batches noise every position, as the reference does. */
static int eh_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const eps_hybrid *h = self;
    int rc = check_batch(h, b, "corrupt", "0xtS", err, err_cap);
    if (rc) return rc;
    const int32_t M = h->V;
    const int64_t n = b->B * b->L;
    /* pass 1: masks; xt holds M, x0, or (settled/worthless) the final token */
    for (int64_t j = 0; j < n; j++) {
        if (b->x0[j] < 0 || b->x0[j] >= h->V)
            return bad_token("corrupt", "x0", j, b->x0[j], h->V - 1, err, err_cap);
        double u = h->host->uniform(b->rng);
        int st = b->annealed ? b->state[j] : HDLM_ACTIVE;
        if (st == HDLM_SETTLED)
            b->xt[j] = b->x0[j];
        else if (st == HDLM_WORTHLESS)
            b->xt[j] = M;
        else
            b->xt[j] = u < (double)b->t[j] ? M : b->x0[j];
    }
    /* pass 2: corruption indicators of the unmasked active positions; -1 marks "replace" */
    for (int64_t j = 0; j < n; j++) {
        double u = h->host->uniform(b->rng);
        int st = b->annealed ? b->state[j] : HDLM_ACTIVE;
        if (st == HDLM_ACTIVE && b->xt[j] != M && u < h->epsilon) b->xt[j] = -1;
    }
    /* pass 3: replacement ids, uniform over the V real tokens (may equal x0) */
    for (int64_t j = 0; j < n; j++)
        if (b->xt[j] == -1) b->xt[j] = draw_token(h, b->rng);
    return HDLM_OK;
}

/* The bound's forward draw: masking only (pass 1 of corrupt), the chain eh_reverse undoes. */
static int eh_bound_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const eps_hybrid *h = self;
    int rc = check_batch(h, b, "bound_corrupt", "0xtS", err, err_cap);
    if (rc) return rc;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->x0[j] < 0 || b->x0[j] >= h->V)
            return bad_token("bound_corrupt", "x0", j, b->x0[j], h->V - 1, err, err_cap);
        double u = h->host->uniform(b->rng);
        int st = b->annealed ? b->state[j] : HDLM_ACTIVE;
        b->xt[j] = st == HDLM_SETTLED                    ? b->x0[j]
                   : st == HDLM_WORTHLESS || u < b->t[j] ? h->V
                                                         : b->x0[j];
    }
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

/* docs/method.md "epsilon_hybrid" hybrid losses; CE over all V+1 classes, target always x0.
 *   unannealed: masked 1/max(p, 1e-4), visible corrupted λ(1−ε)/(1−p), visible clean λε/(1−p);
 *               normalised by B·L.
 *   annealed:   masked 1/max(p, 1e-4), visible corrupted λ(1−ε), visible clean λε — the
 *               reference drops the 1/(1−p) factors here (annealed_weights = "reference", the
 *               default); "consistent" keeps them. Non-active positions weigh 0; normalised by
 *               max(1, #active positions of the batch).
 * "Corrupted" is x_t != x0 among visible tokens. The reference uses its replacement indicator
 * instead, so a replacement that drew x0 itself (probability ε/V per visible token) weighs
 * λ(1−ε) there and λε here; the loss sees only (x0, x_t), and a model cannot tell such a token
 * from a clean one anyway. The reference's worked example cannot tell the two apart. */
static int eh_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const eps_hybrid *h = self;
    int rc = check_batch(h, b, "loss", "0xtSgl", err, err_cap);
    if (rc) return rc;
    const int32_t M = h->V, Vp = b->Vp;
    const int64_t n = b->B * b->L;
    int64_t n_active = 0;
    for (int64_t j = 0; j < n; j++)
        n_active += b->state[j] == HDLM_ACTIVE;
    const double norm =
        b->annealed ? (double)(n_active > 1 ? n_active : 1) : (double)(n > 1 ? n : 1);
    const int divide = !b->annealed || h->consistent; /* apply the 1/(1−p) factors */
    b->total = 0;
    for (int64_t j = 0; j < n; j++) {
        const float *lg = b->logits + j * Vp;
        float *dl = b->dlogits ? b->dlogits + j * Vp : NULL;
        b->loss[j] = 0;
        if (dl) memset(dl, 0, sizeof(float) * (size_t)Vp);
        if (b->x0[j] < 0 || b->x0[j] >= h->V)
            return bad_token("loss", "x0", j, b->x0[j], h->V - 1, err, err_cap);
        if (b->xt[j] < 0 || b->xt[j] > M)
            return bad_token("loss", "xt", j, b->xt[j], M, err, err_cap);
        if (b->annealed && b->state[j] != HDLM_ACTIVE) continue;
        const double p = b->t[j];
        double w;
        if (b->xt[j] == M) {
            w = 1.0 / (p > 1e-4 ? p : 1e-4);
        } else {
            w = h->lambda * (b->xt[j] != b->x0[j] ? 1 - h->epsilon : h->epsilon);
            if (divide && w != 0) {
                if (!(p >= 0 && p < 1)) {
                    snprintf(err, err_cap,
                             "loss: t[%lld] = %g at a visible position must be in [0, 1) "
                             "(the weight divides by 1 - t)",
                             (long long)j, p);
                    return HDLM_EINVAL;
                }
                w /= 1 - p;
            }
        }
        if (w == 0) continue;
        const double g = w / norm;
        const double ce = h->host->softmax_ce(lg, Vp, b->x0[j], g, dl); /* fills dl */
        b->loss[j] = (float)(w * ce / norm);
        b->total += w * ce / norm;
    }
    return HDLM_OK;
}

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

/* The absorbing ancestral step t -> s (docs/method.md "Samplers" `original`): a masked position
 * stays M with probability s/t, else takes y ~ softmax(logits) renormalised over the V real tokens
 * (drawing M as a "token" would waste the step); a visible position keeps its token. */
static int eh_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const eps_hybrid *h = self;
    int rc = check_batch(h, b, "reverse", "xtsSgp", err, err_cap);
    if (rc) return rc;
    const int32_t M = h->V, Vp = b->Vp;
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
        const double lse = logsumexp(lg, h->V);
        for (int32_t v = 0; v < h->V; v++)
            pr[v] = (1 - keep) * exp((double)lg[v] - lse);
        pr[M] = keep;
    }
    return HDLM_OK;
}

static int eh_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const eps_hybrid *h = self;
    int rc = check_batch(h, b, "limit", "x", err, err_cap);
    if (rc) return rc;
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = h->V;
    return HDLM_OK;
}

/* The absorbing NELBO term of t -> s (as the `absorbing` plugin): masked (t − s)/t · CE(x0) under
 * the real-token softmax, visible 0. Whatever ε the model was trained with, this bounds its NLL
 * when x_t comes from pure masking (docs/method.md "The reference-style estimator" evaluates ε
 * models the same way); a visible x_t != x0 cannot come from masking and is refused. */
static int eh_bound(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const eps_hybrid *h = self;
    int rc = check_batch(h, b, "bound", "0xtsSgb", err, err_cap);
    if (rc) return rc;
    const int32_t M = h->V, Vp = b->Vp;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        b->bound[j] = 0;
        if (b->state[j] != HDLM_ACTIVE) continue;
        if (b->x0[j] < 0 || b->x0[j] >= h->V)
            return bad_token("bound", "x0", j, b->x0[j], h->V - 1, err, err_cap);
        if (b->xt[j] < 0 || b->xt[j] > M)
            return bad_token("bound", "xt", j, b->xt[j], M, err, err_cap);
        if ((rc = check_times(b, j, "bound", err, err_cap))) return rc;
        if (b->xt[j] == b->x0[j]) continue;
        if (b->xt[j] != M) {
            snprintf(err, err_cap,
                     "bound: position %lld is visible with x_t = %d != x0 = %d; the bound is the "
                     "absorbing one (make x_t by masking only)",
                     (long long)j, b->xt[j], b->x0[j]);
            return HDLM_EINVAL;
        }
        const float *lg = b->logits + j * Vp;
        const double t = b->t[j], s = b->s[j];
        b->bound[j] = (t - s) / t * (logsumexp(lg, h->V) - lg[b->x0[j]]);
    }
    return HDLM_OK;
}

/* docs/method.md "epsilon_hybrid": q(M) = p, q(x0) = (1 − p)((1 − ε) + ε/V), q(y != x0) = (1 −
 * p)ε/V. */
static int eh_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t err_cap) {
    const eps_hybrid *h = self;
    if (x0 < 0 || x0 > h->V) {
        snprintf(err, err_cap, "marginal: x0 = %d is outside 0..%d", x0, h->V);
        return HDLM_EINVAL;
    }
    if (!(t >= 0 && t <= 1)) {
        snprintf(err, err_cap, "marginal: t = %g must be in [0, 1]", t);
        return HDLM_EINVAL;
    }
    for (int32_t v = 0; v <= h->V; v++)
        probs[v] = 0;
    if (x0 == h->V) {
        probs[h->V] = 1;
        return HDLM_OK;
    }
    for (int32_t v = 0; v < h->V; v++)
        probs[v] = (1 - t) * h->epsilon / h->V;
    probs[x0] = (1 - t) * ((1 - h->epsilon) + h->epsilon / h->V);
    probs[h->V] = t;
    return HDLM_OK;
}

static void eh_info(void *self, hdlm_info *info) {
    info->flags = HDLM_INFO_CONCURRENT; /* loss reads self only */
    info->n_extra = eh_n_extra(self);
    info->mask_id = ((const eps_hybrid *)self)->V; /* the mask */
}

static const hdlm_noise_ops eh_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = eh_info},
    .corrupt = eh_corrupt,
    .conditioning = NULL,
    .loss = eh_loss,
    .reverse = eh_reverse,
    .limit = eh_limit,
    .bound = eh_bound,
    .bound_corrupt = eh_bound_corrupt,
    .marginal = eh_marginal,
};

static const hdlm_option eh_options[] = {
    {"epsilon", HDLM_OPT_NUMBER, "0.01",
     "probability that an unmasked token is replaced by a uniform real token", NULL},
    {"lambda", HDLM_OPT_NUMBER, "1.0", "weight of the visible-token loss terms", NULL},
    {"annealed_weights", HDLM_OPT_STRING, "reference",
     "annealed visible weights: reference (no 1/(1-t), as HDLM) or consistent (with it)",
     "reference|consistent"},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin eh_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "epsilon_hybrid",
    .version = "1.0.0",
    .summary = "HDLM eps-hybrid: mask with probability t, else replace by a uniform token with "
               "probability epsilon",
    .options = eh_options,
    .create = eh_create,
    .destroy = eh_destroy,
    .ops = &eh_ops,
};

HDLM_PLUGIN_DEFINE(eh_desc)
