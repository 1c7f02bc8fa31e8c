/* Fixture: a well-formed noise plugin, "fixture_noise", with one option of each type (number,
 * string with an allow list, integer, bool) so the host test can check that validated options
 * reach the plugin through the host table: n_extra returns `extra`, conditioning reports σ from
 * `eps` and `process`. The corruption and loss are a plain masked-diffusion stand-in. */
#include "hdlm/plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture_noise {
    const hdlm_host *host;
    double eps;
    int geometric; /* process == "geometric" */
    int32_t extra;
    int32_t V;
} fixture_noise;

static int fn_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double eps, extra, conditioned;
    const char *process;
    if (host->opt_number(opts, "eps", &eps) || host->opt_string(opts, "process", &process) ||
        host->opt_number(opts, "extra", &extra) ||
        host->opt_number(opts, "conditioned", &conditioned)) {
        snprintf(err, err_cap, "a declared option is missing");
        return HDLM_EINVAL;
    }
    if (!(eps > 0 && eps < 1)) {
        snprintf(err, err_cap, "eps must be in (0, 1), got %g", eps);
        return HDLM_EINVAL;
    }
    if (extra < 1 || extra > 16) {
        snprintf(err, err_cap, "extra must be in 1..16, got %g", extra);
        return HDLM_EINVAL;
    }
    /* a realistic warning, and a way for the host test to see which log_ctx it was given */
    if (conditioned != 0)
        host->log(host->log_ctx, HDLM_LOG_WARN, "conditioned = true is ignored by this fixture");
    fixture_noise *n = malloc(sizeof *n);
    if (!n) return HDLM_ENOMEM;
    n->host = host;
    n->eps = eps;
    n->geometric = strcmp(process, "geometric") == 0;
    n->extra = (int32_t)extra;
    n->V = args->vocab;
    *self = n;
    return HDLM_OK;
}

static void fn_destroy(void *self) {
    free(self);
}

/* Settled positions keep x0, worthless ones are the mask (id V), active ones are masked with
 * probability t using the host's rng. */
static int fn_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const fixture_noise *n = self;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->state[j] == HDLM_SETTLED)
            b->xt[j] = b->x0[j];
        else if (b->state[j] == HDLM_WORTHLESS)
            b->xt[j] = b->V;
        else
            b->xt[j] = n->host->uniform(b->rng) < b->t[j] ? b->V : b->x0[j];
    }
    return HDLM_OK;
}

static int fn_conditioning(void *self, size_t count, const float *t, float *sigma, char *err,
                           size_t err_cap) {
    const fixture_noise *n = self;
    for (size_t j = 0; j < count; j++)
        sigma[j] =
            n->geometric ? (float)(n->eps * t[j]) : (float)-log1p(-(1.0 - n->eps) * (double)t[j]);
    return HDLM_OK;
}

/* Cross-entropy of x0 at masked positions (softmax over the V real tokens only). */
static int fn_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    b->total = 0;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        const float *lg = b->logits + j * b->Vp;
        float *dl = b->dlogits ? b->dlogits + j * b->Vp : NULL;
        if (dl) memset(dl, 0, sizeof(float) * (size_t)b->Vp);
        b->loss[j] = 0;
        if (b->xt[j] != b->V || b->state[j] != HDLM_ACTIVE) continue;
        if (b->x0[j] < 0 || b->x0[j] >= b->V) {
            snprintf(err, err_cap, "x0 token %d outside 0..%d", b->x0[j], b->V - 1);
            return HDLM_EINVAL;
        }
        double mx = lg[0], z = 0;
        for (int32_t v = 1; v < b->V; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        for (int32_t v = 0; v < b->V; v++)
            z += exp(lg[v] - mx);
        b->loss[j] = (float)(log(z) + mx - lg[b->x0[j]]);
        b->total += b->loss[j];
        if (dl) {
            for (int32_t v = 0; v < b->V; v++)
                dl[v] = (float)(exp(lg[v] - mx) / z);
            dl[b->x0[j]] -= 1.0f;
        }
    }
    return HDLM_OK;
}

/* Reverse: a masked active position keeps the mask with probability s/t, else takes the model's
 * softmax over the V real tokens (the absorbing posterior); a visible one stays. */
static int fn_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->state[j] != HDLM_ACTIVE) continue;
        double *p = b->probs + j * b->Vp;
        const float *lg = b->logits + j * b->Vp;
        for (int32_t v = 0; v < b->Vp; v++)
            p[v] = 0;
        if (b->xt[j] != b->V) {
            p[b->xt[j]] = 1;
            continue;
        }
        double keep = b->s[j] / b->t[j], mx = lg[0], z = 0;
        for (int32_t v = 1; v < b->V; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        for (int32_t v = 0; v < b->V; v++)
            z += exp(lg[v] - mx);
        for (int32_t v = 0; v < b->V; v++)
            p[v] = (1 - keep) * exp(lg[v] - mx) / z;
        p[b->V] = keep;
    }
    return HDLM_OK;
}

static int fn_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = b->V;
    return HDLM_OK;
}

static int fn_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t cap) {
    const fixture_noise *n = self;
    for (int32_t v = 0; v < n->extra + 2; v++)
        probs[v] = 0;
    probs[x0] = 1 - t;
    probs[n->extra + 1] = t; /* a stand-in: the fixture does not know V here */
    return HDLM_OK;
}

static void fn_info(void *self, hdlm_info *info) {
    const fixture_noise *n = self;
    info->flags = HDLM_INFO_CONDITIONED;
    info->n_extra = n->extra;
    info->mask_id = n->V; /* the first extra symbol */
}

static const hdlm_noise_ops fn_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = fn_info},
    .corrupt = fn_corrupt,
    .conditioning = fn_conditioning,
    .loss = fn_loss,
    .reverse = fn_reverse,
    .limit = fn_limit,
    .marginal = fn_marginal,
};

static const hdlm_option fn_options[] = {
    {"eps", HDLM_OPT_NUMBER, "0.01", "smallest noise rate", NULL},
    {"process", HDLM_OPT_STRING, "loglinear", "shape of σ(t)", "loglinear|geometric"},
    {"extra", HDLM_OPT_INTEGER, "1", "extra output symbols after the V real ones", NULL},
    {"conditioned", HDLM_OPT_BOOL, "false", "whether the model takes σ", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin fn_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "fixture_noise",
    .version = "0.2.0",
    .summary = "test fixture: masking noise with one option of every type",
    .options = fn_options,
    .create = fn_create,
    .destroy = fn_destroy,
    .ops = &fn_ops,
};

HDLM_PLUGIN_DEFINE(fn_desc)
