/* The training loop: draws micro-batches from the corpus with the run's seeded rng, builds the
 * objective's inputs and attention rows, runs forward/backward, accumulates gradients over
 * `accum` micro-batches (for real: they are summed, then scaled), clips, steps AdamW, updates the
 * EMA, and checkpoints atomically with the full training state for exact resume.
 *
 * Objectives built into the core (the method's noise/schedule plugins plug in here later):
 *   "ar"   — autoregressive next-token cross-entropy with causal attention (a GPT);
 *   "mask" — masked-token (MDLM) loss: per sequence t ~ U(1e-3, 1), each token masked with
 *            probability t, loss = Σ_masked CE / t / (B·L), bidirectional attention.
 * and the method's objective over a noise plugin and a schedule plugin (method.h). */
#ifndef HDLM_TRAIN_H
#define HDLM_TRAIN_H

#include "base/error.h"
#include "base/rng.h"
#include "data/tokfile.h"
#include "diffusion/method.h"
#include "nn/model.h"
#include "nn/optim.h"

enum { OBJ_AR = 1, OBJ_MASK = 2, OBJ_METHOD = 3 };

typedef struct train_config {
    model_config model; /* vocab is filled from the corpus (+1 mask symbol for "mask") */
    optim_config opt;
    int objective;    /* OBJ_* */
    int batch, accum; /* micro-batch size; micro-batches per optimizer step */
    int64_t steps;    /* optimizer steps */
    uint64_t seed;
    int log_every, eval_every, ckpt_every, eval_batches;
    char ckpt_dir[1024]; /* "" = no checkpoints */
    int keep_ckpts;      /* how many step checkpoints to keep (latest always kept) */
    /* OBJ_METHOD: the plugins (borrowed; they outlive the trainer) and the layout */
    const hyper *sched;
    void *noise_self;
    const hdlm_noise_ops *noise;
    method_config method;
    char method_json[2048]; /* plugins + options + layout, checked on resume */
} train_config;

typedef struct train_stats {
    int64_t step; /* optimizer steps done after this one */
    double loss, lr, grad_norm, step_time, tokens_per_s;
} train_stats;

typedef struct trainer {
    train_config cfg;
    const corpus *data; /* borrowed */
    model m;
    optim opt;
    rng data_rng;       /* batch offsets: the data cursor */
    rng noise_rng;      /* masking draws */
    rng dropout_rng;    /* dropout masks (training only) */
    int64_t step;       /* optimizer steps done */
    int T;              /* positions per sequence fed to the model */
    int32_t *window;    /* (B, T+1) raw tokens */
    int32_t *inp, *tgt; /* (B, T) */
    int32_t *pos;       /* (B, T) */
    float *sigma;       /* (B, T) */
    float *wloss;       /* (B, T) per-token loss weight */
    float *loss;        /* (B, T) */
    float *dlogits;     /* (B*T, V) */
    attn_row *rows;     /* (B, T) */
    method meth;        /* OBJ_METHOD */
} trainer;

int train_objective_from_name(const char *s); /* 0 when unknown */
const char *train_objective_name(int obj);    /* "ar", "mask", "method" */
/* Validates the configuration against the corpus (seq_len vs split sizes, sizes > 0, memory)
 * and allocates everything. */
int trainer_init(trainer *t, const train_config *cfg, const corpus *data, error *e);
void trainer_free(trainer *t);
/* One optimizer step (accum micro-batches). Non-finite loss or gradients -> HDLM_ESTATE with a
 * message naming the step; parameters are then left as they were before the step. */
int trainer_step(trainer *t, train_stats *st, error *e);
/* Mean validation loss over eval_batches fixed windows (seeded), with EMA weights when use_ema. */
int trainer_eval(trainer *t, int use_ema, double *loss, error *e);
/* Writes step_<N>.safetensors (raw weights), step_<N>.ema.safetensors, step_<N>.state.safetensors
 * (optimizer moments, step, rng states, config) and then `latest` atomically. *path receives the
 * weights file (caller-provided buffer of cap bytes). */
int trainer_save(trainer *t, char *path, size_t cap, error *e);
/* Loads the newest complete checkpoint of cfg.ckpt_dir; returns HDLM_OK with *found = 0 when the
 * directory has none. Refuses a checkpoint whose config differs from cfg. */
int trainer_resume(trainer *t, int *found, error *e);
/* Swaps the EMA weights into the model (and back on the second call). */
int trainer_swap_ema(trainer *t, error *e);

#endif
