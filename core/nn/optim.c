/* AdamW, LR schedules, clipping, EMA. The update loop is elementwise and parallel; the norm is a
 * float64 sum in a fixed order whatever the thread count, so runs are deterministic. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int lr_schedule_from_name(const char *s) {
    if (!strcmp(s, "cosine")) return LR_COSINE;
    if (!strcmp(s, "linear")) return LR_LINEAR;
    if (!strcmp(s, "constant")) return LR_CONSTANT;
    return -1;
}

const char *lr_schedule_name(int s) {
    return s == LR_LINEAR ? "linear" : s == LR_CONSTANT ? "constant" : "cosine";
}

int optim_init(optim *o, const optim_config *cfg, const model *m, error *e) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = m->n_params;
    o->m = calloc(o->n, sizeof(float));
    o->v = calloc(o->n, sizeof(float));
    o->decay = calloc(o->n, 1);
    if (cfg->ema > 0) o->ema = malloc(o->n * sizeof(float));
    if (!o->m || !o->v || !o->decay || (cfg->ema > 0 && !o->ema)) {
        optim_free(o);
        return error_set(e, HDLM_ENOMEM, "optimizer: cannot allocate state for %zu parameters",
                         m->n_params);
    }
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].decay) memset(o->decay + m->tensors[i].offset, 1, m->tensors[i].size);
    if (o->ema) memcpy(o->ema, m->params, o->n * sizeof(float));
    return HDLM_OK;
}

void optim_free(optim *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    free(o->ema);
    free(o->decay);
    memset(o, 0, sizeof *o);
}

double optim_lr(const optim_config *c, int64_t t) {
    if (c->warmup > 0 && t < c->warmup) return c->lr * (double)(t + 1) / (double)c->warmup;
    if (c->schedule == LR_CONSTANT) return c->lr;
    int64_t span = c->steps - c->warmup;
    double p = span > 0 ? (double)(t - c->warmup) / (double)span : 1.0;
    if (p > 1) p = 1;
    if (p < 0) p = 0;
    if (c->schedule == LR_LINEAR) return c->lr + (c->min_lr - c->lr) * p;
    return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * p));
}

/* The sum is cut into a fixed number of blocks, each summed in index order, and the block sums
 * are added in block order: the same bits for any thread count. (An OpenMP `reduction` combines
 * the per-thread partials in the order threads finish, which with 3 or more threads changes the
 * last bits from call to call, and with it the clip scale.) */
#define NORM_BLOCKS 64

double optim_grad_norm(const float *g, size_t n) {
    double part[NORM_BLOCKS];
    size_t bs = (n + NORM_BLOCKS - 1) / NORM_BLOCKS;
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int b = 0; b < NORM_BLOCKS; b++) {
        size_t lo = (size_t)b * bs, hi = lo + bs < n ? lo + bs : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++)
            s += (double)g[i] * g[i];
        part[b] = s;
    }
    double s = 0;
    for (int b = 0; b < NORM_BLOCKS; b++)
        s += part[b];
    return sqrt(s);
}

void optim_step(optim *o, float *params, float *grads, double *gnorm, double *lr) {
    const optim_config *c = &o->cfg;
    double norm = optim_grad_norm(grads, o->n);
    float scale = 1.0f;
    if (c->clip > 0 && norm > c->clip) scale = (float)(c->clip / (norm + 1e-6));
    double a = optim_lr(c, o->t);
    o->t++;
    float b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    float bc1 = (float)(1.0 - pow(c->beta1, (double)o->t));
    float bc2 = (float)(1.0 - pow(c->beta2, (double)o->t));
    float alpha = (float)a, wd = (float)(a * c->weight_decay);
    /* EMA decay warms up as min(ema, (1+t)/(10+t)) so short runs are not dominated by the
     * initial weights (a warm-up in the style of diffusers' EMAModel) */
    double d = (1.0 + (double)o->t) / (10.0 + (double)o->t);
    float ema = (float)(c->ema < d ? c->ema : d);
    float *m = o->m, *v = o->v, *ew = o->ema;
    const uint8_t *dec = o->decay;
    size_t n = o->n;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i] * scale;
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float mh = m[i] / bc1, vh = v[i] / bc2;
        float p = params[i];
        if (dec[i]) p -= wd * p;
        p -= alpha * mh / (sqrtf(vh) + eps);
        params[i] = p;
        if (ew) ew[i] = ema * ew[i] + (1.0f - ema) * p;
    }
    if (gnorm) *gnorm = norm;
    if (lr) *lr = a;
}
