/* Fixture: a noise plugin, "fixture_failing_noise", that works for a while and then fails: its
 * `loss` returns an error with a message at the fail_at-th call (counted per instance, one call
 * per sequence), as a plugin hitting a bad state mid-run would. The integration test
 * test_plugin_failure.sh trains with it through the real binary and checks that the run fails
 * with this message and leaves its earlier checkpoints and the store intact. Training only: the
 * corruption and loss are a plain masked-diffusion stand-in, reverse keeps x_t. */
#include "hdlm/plugin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct failing_noise {
    const hdlm_host *host;
    long calls, fail_at;
    int32_t V;
} failing_noise;

static int fl_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double fail_at;
    if (host->opt_number(opts, "fail_at", &fail_at) || fail_at < 1) {
        snprintf(err, err_cap, "fail_at must be a positive integer");
        return HDLM_EINVAL;
    }
    failing_noise *n = calloc(1, sizeof *n);
    if (!n) return HDLM_ENOMEM;
    n->host = host;
    n->fail_at = (long)fail_at;
    n->V = args->vocab;
    *self = n;
    return HDLM_OK;
}

static void fl_destroy(void *self) {
    free(self);
}

static int32_t fl_n_extra(void *self) {
    (void)self;
    return 1; /* the mask symbol, id V */
}

static int fl_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const failing_noise *n = self;
    (void)err, (void)err_cap;
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = b->state[j] == HDLM_SETTLED          ? b->x0[j]
                   : b->state[j] == HDLM_WORTHLESS      ? b->V
                   : n->host->uniform(b->rng) < b->t[j] ? b->V
                                                        : b->x0[j];
    return HDLM_OK;
}

/* Cross-entropy of x0 at masked active positions, until the fail_at-th call. */
static int fl_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    failing_noise *n = self;
    if (++n->calls == n->fail_at) {
        snprintf(err, err_cap, "fixture_failing_noise: simulated failure at loss call %ld",
                 n->calls);
        return HDLM_EPLUGIN;
    }
    b->total = 0;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        const float *lg = b->logits + j * b->Vp;
        float *dl = b->dlogits ? b->dlogits + j * b->Vp : NULL;
        if (dl) memset(dl, 0, sizeof(float) * (size_t)b->Vp);
        b->loss[j] = 0;
        if (b->xt[j] != b->V || b->state[j] != HDLM_ACTIVE) continue;
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

static int fl_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    (void)self, (void)err, (void)err_cap;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        double *p = b->probs + j * b->Vp;
        for (int32_t v = 0; v < b->Vp; v++)
            p[v] = v == b->xt[j];
    }
    return HDLM_OK;
}

static int fl_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    (void)self, (void)err, (void)err_cap;
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = b->V;
    return HDLM_OK;
}

static int fl_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t cap) {
    (void)self, (void)x0, (void)t, (void)probs;
    snprintf(err, cap, "fixture_failing_noise: marginal is not implemented");
    return HDLM_EPLUGIN;
}

static void fl_info(void *self, hdlm_info *info) {
    info->n_extra = fl_n_extra(self);
    info->mask_id = ((const failing_noise *)self)->V;
}

static const hdlm_noise_ops fl_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = fl_info},
    .corrupt = fl_corrupt,
    .loss = fl_loss,
    .reverse = fl_reverse,
    .limit = fl_limit,
    .marginal = fl_marginal,
};

static const hdlm_option fl_options[] = {
    {"fail_at", HDLM_OPT_INTEGER, "5", "the loss call (1-based, one per sequence) that fails",
     NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin fl_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "fixture_failing_noise",
    .version = "0.1.0",
    .summary = "test fixture: masking noise whose loss fails at the fail_at-th call",
    .options = fl_options,
    .create = fl_create,
    .destroy = fl_destroy,
    .ops = &fl_ops,
};

HDLM_PLUGIN_DEFINE(fl_desc)
