/* AdamW, LR schedules, clipping, EMA. The update loop is elementwise and parallel; the norm is a
 * float64 sum in a fixed order whatever the thread count, so runs are deterministic. */
#include "optim.h"

#include "base/cpu.h"
#include "base/mem.h"

#include <math.h>
#include <omp.h>
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
    o->m = mem_calloc_large(o->n * sizeof(float));
    o->v = mem_calloc_large(o->n * sizeof(float));
    o->decay = calloc(o->n, 1);
    if (cfg->ema > 0) o->ema = mem_alloc_large(o->n * sizeof(float));
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
        /* vector lanes, combined in an order fixed at compile time: still the same bits for any
         * thread count */
#pragma omp simd reduction(+ : s)
        for (size_t i = lo; i < hi; i++)
            s += (double)g[i] * g[i];
        part[b] = s;
    }
    double s = 0;
    for (int b = 0; b < NORM_BLOCKS; b++)
        s += part[b];
    return sqrt(s);
}

typedef struct adamw_args {
    float *m, *v, *ema_w;
    const uint8_t *decay;
    float *params;
    const float *grads;
    float scale, b1, b2, bc1, bc2, alpha, wd, ema, eps;
} adamw_args;

/* One AdamW step over n parameters (and the EMA when with_ema): branch-free, so it vectorises;
 * sqrtf is inlined because the project builds with -fno-math-errno. */
static inline CPU_INLINE void adamw_update(const adamw_args *w, size_t lo, size_t hi,
                                           int with_ema) {
    float *m = w->m, *v = w->v, *ew = w->ema_w, *params = w->params;
    const float *grads = w->grads;
    const uint8_t *dec = w->decay;
    float scale = w->scale, b1 = w->b1, b2 = w->b2, bc1 = w->bc1, bc2 = w->bc2;
    float alpha = w->alpha, wd = w->wd, ema = w->ema, eps = w->eps;
#pragma omp simd
    for (size_t i = lo; i < hi; i++) {
        float g = grads[i] * scale;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mh = mi / bc1, vh = vi / bc2;
        float p = params[i];
        p -= (dec[i] ? wd : 0.0f) * p;
        p -= alpha * mh / (sqrtf(vh) + eps);
        params[i] = p;
        if (with_ema) ew[i] = ema * ew[i] + (1.0f - ema) * p;
    }
}
static inline CPU_INLINE void adamw_ema_body(const adamw_args *w, size_t lo, size_t hi) {
    adamw_update(w, lo, hi, 1);
}
static inline CPU_INLINE void adamw_plain_body(const adamw_args *w, size_t lo, size_t hi) {
    adamw_update(w, lo, hi, 0);
}
CPU_KERNEL(adamw_ema_k, adamw_ema_body, (const adamw_args *w, size_t lo, size_t hi), (w, lo, hi))
CPU_KERNEL(adamw_plain_k, adamw_plain_body, (const adamw_args *w, size_t lo, size_t hi),
           (w, lo, hi))

/* each thread one contiguous share (as schedule(static) did), in the CPU's kernel variant */
static void adamw_run(const adamw_args *w, size_t n) {
#pragma omp parallel
    {
        size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        if (hi > lo) {
            if (w->ema_w)
                adamw_ema_k(w, lo, hi);
            else
                adamw_plain_k(w, lo, hi);
        }
    }
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
    adamw_args w = {o->m, o->v, o->ema, o->decay, params, grads, scale, b1,
                    b2,   bc1,  bc2,    alpha,    wd,     ema,   eps};
    /* two instances of one inlined body, so that neither carries a branch on the EMA and both
     * vectorise */
    adamw_run(&w, o->n);
    if (gnorm) *gnorm = norm;
    if (lr) *lr = a;
}
