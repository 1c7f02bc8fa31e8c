/* The training loop: draws micro-batches from the corpus with the run's seeded rng, builds the
 * objective's inputs and attention rows, runs forward/backward, accumulates gradients over
 * `accum` micro-batches (for real: they are summed, then scaled), clips, steps AdamW, updates the
 * EMA, and checkpoints atomically with the full training state for exact resume.
 *
 * Data parallel (dist.h): with N processes each micro-batch of `batch` sequences is split, rank r
 * computing the global sequences [r·batch/N, (r+1)·batch/N); the gradients are summed over the
 * ranks with one all-reduce and every rank applies the same clipped AdamW step and EMA. Every
 * random draw of a sequence (window offset, schedule step or t, corruption, masks) comes from a
 * stream split off the step's streams by the sequence's global index (step, micro-batch,
 * position in it), and every loss term is normalised by the global batch, so a step's batch,
 * loss and gradient do not depend on N (nor on how `accum` cuts it) up to float summation order.
 * Dropout masks are the exception: drawn per rank and micro-batch, they do depend on N.
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
#include "nn/safetensors.h"

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
    /* the processes sharing each micro-batch and this one's index among them; world_size 0 =
     * from dist (the normal case). Tests set them by hand to compute one shard in a single
     * process (trainer_accumulate); trainer_step then refuses unless dist has that many ranks. */
    int rank, world_size;
    /* TRAIN_F32: products in float32 (OpenBLAS); TRAIN_BF16: every linear layer's products in
     * bf16 with float32 accumulation (oneDNN), float32 master weights, optimizer, EMA, norms,
     * softmax and losses. Recorded in checkpoints ("precision") but not part of the resume
     * config: a run may resume at the other precision. */
    int precision;
} train_config;

enum { TRAIN_F32 = 0, TRAIN_BF16 = 1 };
/* "f32" / "bf16" <-> TRAIN_*; -1 when unknown. */
int train_precision_from_name(const char *s);
const char *train_precision_name(int p);

typedef struct train_stats {
    int64_t step;                                        /* optimizer steps done after this one */
    double loss, lr, grad_norm, step_time, tokens_per_s; /* global over all processes */
    double comm_time; /* seconds in the all-reduce (incl. waiting for the slowest rank); 0 alone */
} train_stats;

typedef struct trainer {
    train_config cfg;
    const corpus *data; /* borrowed */
    model m;
    optim opt;
    /* roots of the draws, fixed for the run (from the seed): step s uses rng_split(root, s), and
     * each sequence a stream split from that by its global index, so the draws of any step are
     * known without replaying the ones before it (resume at any step, on any number of ranks) */
    rng data_rng;       /* window offsets */
    rng noise_rng;      /* masks, schedule steps, corruption */
    rng dropout_rng;    /* dropout masks (training only; per rank and micro-batch) */
    int64_t step;       /* optimizer steps done */
    int rank, world;    /* this process's shard: global sequences [b_lo, b_hi) of each */
    int b_lo, b_hi;     /* micro-batch of cfg.batch */
    int T;              /* positions per sequence fed to the model */
    int32_t *window;    /* (B, T+1) raw tokens */
    int32_t *inp, *tgt; /* (B, T) */
    int32_t *pos;       /* (B, T) */
    float *sigma;       /* (B, T) */
    float *wloss;       /* (B, T) per-token loss weight */
    int32_t *orow;      /* (B*T) rows with a target (tgt, wloss are compacted to these) */
    float *loss;        /* (B, T) */
    float *dlogits;     /* (B*T, V) */
    attn_row *rows;     /* (B, T) */
    rng *streams;       /* (B) per-sequence noise streams of the method objective */
    method meth;        /* OBJ_METHOD */
} trainer;
/* Buffers above hold this rank's b_hi - b_lo sequences (B = cfg.batch with one process). */

int train_objective_from_name(const char *s); /* 0 when unknown */
const char *train_objective_name(int obj);    /* "ar", "mask", "method" */
/* Validates the configuration against the corpus (seq_len vs split sizes, sizes > 0, memory)
 * and allocates everything. */
int trainer_init(trainer *t, const train_config *cfg, const corpus *data, error *e);
void trainer_free(trainer *t);
/* This process's share of the next optimizer step: zeroes the gradients and runs its slice of the
 * accum micro-batches. t->m.grads and *loss then hold its contribution; the sums over the ranks
 * are the step's gradient and loss. Changes nothing else. */
int trainer_accumulate(trainer *t, double *loss, error *e);
/* One optimizer step (accum micro-batches; with several processes a collective call: the
 * gradients and loss are all-reduced). Non-finite loss or gradients -> HDLM_ESTATE with a message
 * naming the step (the same on every rank); parameters are then left as they were. */
int trainer_step(trainer *t, train_stats *st, error *e);
/* Mean validation loss over eval_batches fixed windows (seeded), with EMA weights when use_ema.
 * Each rank scores its share of every evaluation batch and the sums are all-reduced: every rank
 * gets the same value, which does not depend on the number of ranks (a collective call). */
int trainer_eval(trainer *t, int use_ema, double *loss, error *e);
/* Writes step_<N>.safetensors (raw weights), step_<N>.ema.safetensors, step_<N>.state.safetensors
 * (optimizer moments, step, rng states, config) and then `latest` atomically. *path receives the
 * weights file (caller-provided buffer of cap bytes). */
int trainer_save(trainer *t, char *path, size_t cap, error *e);
/* Loads the newest complete checkpoint of cfg.ckpt_dir; returns HDLM_OK with *found = 0 when the
 * directory has none. Refuses a checkpoint whose config differs from cfg. The state is global
 * (step, weights, EMA, moments, rng roots), so a run saved by N processes resumes on any number.
 * With several processes rank 0 reads it and broadcasts it (and its failure: every rank returns
 * the same status and message), so only rank 0 needs the checkpoint directory. */
int trainer_resume(trainer *t, int *found, error *e);
/* The metadata of a step_<N>.state.safetensors sidecar that resume restores besides the
 * tensors (format and config are checked by trainer_resume against the running trainer). */
typedef struct train_state_meta {
    int64_t adam_t;                       /* Adam's step count: a decimal integer >= 0 */
    rng data_rng, noise_rng, dropout_rng; /* roots: 64 hex digits each */
} train_state_meta;
/* Parses and checks those entries of sf; the error names the file, the key and what it holds. */
int trainer_state_meta_parse(const st_file *sf, train_state_meta *out, error *e);
/* Copies rank 0's training state (step, weights, EMA, moments) to every rank. The ranks agree bit
 * for bit already (the same reduced gradients through the same arithmetic); called at
 * checkpoints, it guarantees that what rank 0 saves is what every rank trains on, even with an
 * MPI whose reductions differed by a rounding between ranks. Collective; no-op alone. */
int trainer_sync(trainer *t, error *e);
/* Swaps the EMA weights into the model (and back on the second call). */
int trainer_swap_ema(trainer *t, error *e);

#endif
