/* A small, correct masking noise process (absorbing: an ACTIVE position becomes the mask M = V
 * with probability t) shared by the broken noise fixtures of this folder. Each fixture defines one
 * of the BROKEN_* macros before including it to break exactly one promise of hdlm/plugin.h, so
 * that `hdlm plugins check` must name that one failure:
 *   BROKEN_MARGINAL  marginal puts 1 - t + 0.05 on x0: rows sum to 1.05
 *   BROKEN_GRADIENT  dlogits of the loss is twice the true gradient
 *   BROKEN_CRASH     the loss dereferences NULL at its crash_at-th call (an option)
 *   BROKEN_CONCURRENT  info declares HDLM_INFO_CONCURRENT, but the loss depends on a call count
 *                    kept in self (weights scaled by 1 + 1e-9 · calls): state shared across calls
 */
#ifndef MINI_MASK_H
#define MINI_MASK_H

#include <hdlm/plugin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mini_mask {
    const hdlm_host *host;
    int32_t V;
    long calls, crash_at; /* BROKEN_CRASH */
} mini_mask;

static int mm_create(const hdlm_create_args *args, void **self, char *err, size_t err_cap) {
    (void)err, (void)err_cap;
    mini_mask *m = malloc(sizeof *m);
    if (!m) return HDLM_ENOMEM;
    m->host = args->host;
    m->V = args->vocab;
    m->calls = 0;
    double crash_at = 0;
#ifdef BROKEN_CRASH
    args->host->opt_number(args->opts, "crash_at", &crash_at);
#endif
    m->crash_at = (long)crash_at;
    *self = m;
    return HDLM_OK;
}

static void mm_destroy(void *self) {
    free(self);
}

static void mm_info(void *self, hdlm_info *info) {
#ifdef BROKEN_CONCURRENT
    info->flags = HDLM_INFO_CONCURRENT;
#endif
    info->n_extra = 1;
    info->mask_id = ((const mini_mask *)self)->V;
}

static int mm_corrupt(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const mini_mask *m = self;
    (void)err, (void)err_cap;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        double u = m->host->uniform(b->rng);
        b->xt[j] = b->state[j] == HDLM_SETTLED     ? b->x0[j]
                   : b->state[j] == HDLM_WORTHLESS ? m->V
                   : u < b->t[j]                   ? m->V
                                                   : b->x0[j];
    }
    return HDLM_OK;
}

/* Cross-entropy of x0 at masked ACTIVE positions, weighted 1/t, mean over active positions. */
static int mm_loss(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    mini_mask *m = self;
    (void)err, (void)err_cap;
    if (++m->calls == m->crash_at) {
        volatile int32_t *nowhere = NULL;
        *nowhere = 1; /* the bug this fixture stands for */
    }
    const int64_t n = b->B * b->L;
    int64_t n_active = 0;
    for (int64_t j = 0; j < n; j++)
        n_active += b->state[j] == HDLM_ACTIVE;
    const double norm = n_active > 0 ? (double)n_active : 1.0;
    b->total = 0;
    for (int64_t j = 0; j < n; j++) {
        const float *lg = b->logits + j * b->Vp;
        float *dl = b->dlogits ? b->dlogits + j * b->Vp : NULL;
        b->loss[j] = 0;
        if (dl) memset(dl, 0, sizeof(float) * (size_t)b->Vp);
        if (b->state[j] != HDLM_ACTIVE || b->xt[j] != m->V) continue;
        double mx = lg[0], z = 0;
        for (int32_t v = 1; v < b->Vp; v++)
            mx = lg[v] > mx ? lg[v] : mx;
        for (int32_t v = 0; v < b->Vp; v++)
            z += exp((double)lg[v] - mx);
        double w = 1.0 / b->t[j] / norm;
#ifdef BROKEN_CONCURRENT
        w *= 1 + 1e-9 * (double)m->calls;
#endif
        const double lse = mx + log(z);
        b->loss[j] = (float)(w * (lse - lg[b->x0[j]]));
        b->total += w * (lse - lg[b->x0[j]]);
        if (!dl) continue;
#ifdef BROKEN_GRADIENT
        const double g = 2 * w;
#else
        const double g = w;
#endif
        for (int32_t v = 0; v < b->Vp; v++)
            dl[v] = (float)(g * (exp((double)lg[v] - lse) - (v == b->x0[j])));
    }
    return HDLM_OK;
}

/* Masked positions unmask with probability 1 - s/t to a token drawn from the model's softmax
 * over the V real tokens; visible positions stay. */
static int mm_reverse(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    const mini_mask *m = self;
    (void)err, (void)err_cap;
    for (int64_t j = 0; j < b->B * b->L; j++) {
        if (b->state[j] != HDLM_ACTIVE) continue;
        double *p = b->probs + j * b->Vp;
        const float *lg = b->logits + j * b->Vp;
        memset(p, 0, sizeof(double) * (size_t)b->Vp);
        if (b->xt[j] != m->V) {
            p[b->xt[j]] = 1;
            continue;
        }
        const double stay = b->t[j] > 0 ? (double)b->s[j] / b->t[j] : 0;
        double z = 0;
        for (int32_t v = 0; v < m->V; v++)
            z += exp((double)lg[v]);
        for (int32_t v = 0; v < m->V; v++)
            p[v] = (1 - stay) * exp((double)lg[v]) / z;
        p[m->V] = stay;
    }
    return HDLM_OK;
}

static int mm_limit(void *self, hdlm_noise_batch *b, char *err, size_t err_cap) {
    (void)err, (void)err_cap;
    for (int64_t j = 0; j < b->B * b->L; j++)
        b->xt[j] = ((const mini_mask *)self)->V;
    return HDLM_OK;
}

static int mm_marginal(void *self, int32_t x0, double t, double *probs, char *err, size_t err_cap) {
    const mini_mask *m = self;
    (void)err, (void)err_cap;
    memset(probs, 0, sizeof(double) * (size_t)(m->V + 1));
    probs[m->V] = t;
#ifdef BROKEN_MARGINAL
    probs[x0] = 1 - t + 0.05;
#else
    probs[x0] = 1 - t;
#endif
    return HDLM_OK;
}

static const hdlm_noise_ops mm_ops = {
    .head = {.struct_size = sizeof(hdlm_noise_ops), .info = mm_info},
    .corrupt = mm_corrupt,
    .loss = mm_loss,
    .reverse = mm_reverse,
    .limit = mm_limit,
    .marginal = mm_marginal,
};

#endif
