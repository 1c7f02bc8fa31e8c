/* Fixture: "probe_noise" and "probe_noise_cond" (the same process with σ conditioning), a masking
 * process whose ops are simple and valid and whose `bound` is known in closed form, so the
 * evaluator's sums can be checked exactly, and which records what the core passes to `reverse`
 * and `bound` (probe.h) so the sampling loop's times and logits can be checked call by call.
 *
 * - one extra symbol, the mask (id V); limit: every position masked;
 * - corrupt: settled positions keep x0, worthless ones are masked, active ones are masked with
 *   probability t (host rng);
 * - reverse: the absorbing posterior (a masked position stays masked with probability s/t, else
 *   takes the softmax of the V real logits; a visible one stays);
 * - bound: per ACTIVE position the constant `value` (bound = "const"), or t − s (bound = "dt":
 *   summed over a position's active steps it telescopes to 1 when the chain starts at t = 1 and
 *   ends at s = 0, so the exact bound of a sequence is its length);
 * - conditioning (probe_noise_cond): σ = −log(1 − t).
 * The loss is the plain masked cross-entropy (not used by the tests that load this fixture). */
#include "probe.h"

#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pn_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    const hdlm_host *host = args->host;
    const void *opts = args->opts;
    double vocab, value;
    const char *mode;
    vocab = args->vocab;
    if (host->opt_number(opts, "value", &value) || host->opt_string(opts, "bound", &mode)) {
        snprintf(err, err_cap, "option value or bound is missing");
        return HDLM_EINVAL;
    }
    probe_noise_self *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, err_cap, "out of memory");
        return HDLM_ENOMEM;
    }
    p->host = host;
    p->V = (int32_t)vocab;
    p->dt = strcmp(mode, "dt") == 0;
    p->value = value;
    *self = p;
    return HDLM_OK;
}

static void pn_destroy(void *self) {
    probe_noise_self *p = self;
    if (!p) return;
    probe_log_free(&p->reverse);
    probe_log_free(&p->bound);
    free(p);
}

static int32_t pn_n_extra(void *self) {
    (void)self;
    return 1;
}

static int pn_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const probe_noise_self *p = self;
    const hdlm_host *host = p->host;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->state[j] == HDLM_SETTLED)
            b->xt[j] = b->x0[j];
        else if (b->state[j] == HDLM_WORTHLESS)
            b->xt[j] = b->V;
        else
            b->xt[j] = host->uniform(b->rng) < b->t[j] ? b->V : b->x0[j];
    }
    return HDLM_OK;
}

static int pn_conditioning(void *self, size_t n, const float *t, float *sigma, char *err,
                           size_t err_cap) {
    for (size_t j = 0; j < n; j++)
        sigma[j] = (float)-log1p(-(double)t[j]);
    return HDLM_OK;
}

static int pn_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
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

static int pn_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    probe_noise_self *p = self;
    if (probe_log_add(&p->reverse, -1, b->B, b->L, b->Vp, b->t, b->s, b->state, b->xt, b->logits,
                      NULL)) {
        snprintf(err, err_cap, "out of memory for the probe's record");
        return HDLM_ENOMEM;
    }
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->state[j] != HDLM_ACTIVE) continue;
        double *pr = b->probs + j * b->Vp;
        const float *lg = b->logits + j * b->Vp;
        for (int32_t v = 0; v < b->Vp; v++)
            pr[v] = 0;
        if (b->xt[j] != b->V) {
            pr[b->xt[j]] = 1;
            continue;
        }
        double keep = b->t[j] > 0 ? (double)b->s[j] / b->t[j] : 0, mx = lg[0], z = 0;
        for (int32_t v = 1; v < b->V; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        for (int32_t v = 0; v < b->V; v++)
            z += exp(lg[v] - mx);
        for (int32_t v = 0; v < b->V; v++)
            pr[v] = (1 - keep) * exp(lg[v] - mx) / z;
        pr[b->V] = keep;
    }
    return HDLM_OK;
}

static int pn_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = b->V;
    return HDLM_OK;
}

static int pn_bound(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    probe_noise_self *p = self;
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->bound[j] = b->state[j] != HDLM_ACTIVE ? 0
                      : p->dt                    ? (double)b->t[j] - (double)b->s[j]
                                                 : p->value;
    if (probe_log_add(&p->bound, -1, b->B, b->L, b->Vp, b->t, b->s, b->state, b->xt, b->logits,
                      b->bound)) {
        snprintf(err, err_cap, "out of memory for the probe's record");
        return HDLM_ENOMEM;
    }
    return HDLM_OK;
}

static int pn_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t cap) {
    const probe_noise_self *p = self;
    for (int32_t v = 0; v <= p->V; v++)
        probs[v] = 0;
    probs[x0] = 1 - t;
    probs[p->V] = t;
    return HDLM_OK;
}

static void pn_info(void *self, hdlm_info *info) {
    info->n_extra = pn_n_extra(self);
    info->mask_id = ((const probe_noise_self *)self)->V;
}

static void pn_cond_info(void *self, hdlm_info *info) {
    pn_info(self, info);
    info->flags = HDLM_INFO_CONDITIONED;
}

static const hdlm_noise_ops pn_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = pn_info},
    .corrupt = pn_corrupt,
    .conditioning = NULL,
    .loss = pn_loss,
    .reverse = pn_reverse,
    .limit = pn_limit,
    .bound = pn_bound,
    .marginal = pn_marginal,
};

static const hdlm_noise_ops pn_cond_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = pn_cond_info},
    .corrupt = pn_corrupt,
    .conditioning = pn_conditioning,
    .loss = pn_loss,
    .reverse = pn_reverse,
    .limit = pn_limit,
    .bound = pn_bound,
    .marginal = pn_marginal,
};

static const hdlm_option pn_options[] = {
    {"bound", HDLM_OPT_STRING, "const", "bound term per active position: const or t - s",
     "const|dt"},
    {"value", HDLM_OPT_NUMBER, "0.75", "the constant of bound = const", NULL},
    {NULL, 0, NULL, NULL, NULL},
};

static const hdlm_plugin pn_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "probe_noise",
    .version = "1.0.0",
    .summary = "test probe: masking with a closed-form bound; records reverse and bound calls",
    .options = pn_options,
    .create = pn_create,
    .destroy = pn_destroy,
    .ops = &pn_ops,
};

static const hdlm_plugin pn_cond_desc = {
    .abi_version = HDLM_ABI_VERSION,
    .struct_size = sizeof(hdlm_plugin),
    .kind = HDLM_KIND_NOISE,
    .name = "probe_noise_cond",
    .version = "1.0.0",
    .summary = "test probe: probe_noise with sigma conditioning",
    .options = pn_options,
    .create = pn_create,
    .destroy = pn_destroy,
    .ops = &pn_cond_ops,
};

HDLM_EXPORT const hdlm_plugin *hdlm_plugin_entry(uint32_t index);
HDLM_EXPORT const hdlm_plugin *hdlm_plugin_entry(uint32_t index) {
    return index == 0 ? &pn_desc : index == 1 ? &pn_cond_desc : NULL;
}
