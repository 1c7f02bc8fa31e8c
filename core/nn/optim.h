/* AdamW (decoupled weight decay, applied to matrices only), learning-rate schedules (linear
 * warm-up then cosine / linear / constant), global-norm gradient clipping and an EMA of the
 * weights. State lives in slabs parallel to the parameter slab so checkpoints save it whole. */
#ifndef HDLM_OPTIM_H
#define HDLM_OPTIM_H

#include "base/error.h"
#include "nn/model.h"

#include <stddef.h>
#include <stdint.h>

enum { LR_COSINE = 0, LR_LINEAR = 1, LR_CONSTANT = 2 };

typedef struct optim_config {
    double lr, min_lr;     /* peak and final learning rate */
    int64_t warmup, steps; /* warm-up optimizer steps; total optimizer steps */
    int schedule;          /* LR_* */
    double beta1, beta2, eps, weight_decay;
    double clip; /* global-norm clip; <= 0: off */
    double ema;  /* EMA decay (warmed up as min(ema, (1+t)/(10+t))); 0: no EMA */
} optim_config;

typedef struct optim {
    optim_config cfg;
    size_t n;
    float *m, *v;   /* (n) first and second moments */
    float *ema;     /* (n) EMA weights, NULL without EMA */
    uint8_t *decay; /* (n) 1 where weight decay applies */
    int64_t t;      /* optimizer steps taken */
} optim;

int optim_init(optim *o, const optim_config *cfg, const model *m, error *e);
void optim_free(optim *o);
int lr_schedule_from_name(const char *s); /* -1 when unknown */
const char *lr_schedule_name(int s);
/* Learning rate for optimizer step t (0-based). */
double optim_lr(const optim_config *c, int64_t t);
/* Global L2 norm of grads (float64 accumulation). */
double optim_grad_norm(const float *g, size_t n);
/* Clips (when configured), takes one AdamW step at optim_lr(t), updates the EMA, t += 1.
 * Returns the pre-clip gradient norm in *gnorm and the learning rate used in *lr. */
void optim_step(optim *o, float *params, float *grads, double *gnorm, double *lr);

#endif
