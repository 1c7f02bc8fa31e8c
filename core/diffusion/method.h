/* The method's training objective (docs/method.md "Training", "Attention masks", "Noise
 * processes"): for every sequence of a micro-batch draw one hyperschedule step (not one per batch:
 * lower variance than the reference), turn its levels into times, states and attention rows,
 * corrupt the active positions with the noise plugin, condition the model on σ when the process
 * wants it, and score the model's output with the plugin's loss. The vectorised ("efficient",
 * BD3-LM style) layout doubles the sequence — a clean copy and a noisy copy holding one drawn step
 * per block — so every block trains in one pass. The core knows no schedule or noise process by
 * name: both come through their ABI. */
#ifndef HDLM_METHOD_H
#define HDLM_METHOD_H

#include "base/error.h"
#include "base/rng.h"
#include "diffusion/hyper.h"
#include "hdlm/plugin.h"
#include "nn/layers.h"

#include <stdint.h>

typedef struct method_config {
    int context;         /* MASK_CTX_* for the settled region (default block_causal) */
    int block_type;      /* MASK_BLOCK_* inside the active region (default full) */
    int vectorised;      /* 2L layout (block-growth schedules only) */
    int low_discrepancy; /* steps (t for continuous) stratified over the batch */
    int context_width;   /* block width of block_causal settled context; 0 = hyper_mask_width's
                            default (the schedule's block, 1 for token growth) */
} method_config;

typedef struct method {
    method_config cfg;
    const hyper *sched;          /* borrowed */
    void *noise_self;            /* borrowed */
    const hdlm_noise_ops *noise; /* borrowed */
    int32_t V, Vp, W;
    int L, T;               /* sequence length, positions the model sees (L or 2L) */
    int64_t n_steps, block; /* schedule steps for L; growth block (1 = tokens) */
    uint32_t growth;
    int mask_w; /* block width of block_causal settled context (hyper_mask_width) */
    int conditioned, continuous;
    int32_t *levels;       /* (n_steps + 1, L) level table */
    int64_t *settled;      /* (n_steps + 1) settled prefix per step */
    int n_blocks;          /* vectorised: blocks of the sequence */
    int64_t *block_steps;  /* vectorised: steps where block k is the active one */
    int64_t *block_off;    /* (n_blocks + 1) offsets into block_steps */
    int32_t *bucket_start; /* (n_blocks) */
    /* per micro-batch buffers, (B, T) unless noted */
    int cap_B;
    int32_t *x0, *xt, *pos;
    float *t, *sigma, *loss;
    uint8_t *state;
    attn_row *rows;
} method;

/* Builds the level tables for length L; checks the pairing (vectorised needs block growth).
 * Errors name the schedule/noise and the numbers. */
int method_init(method *m, const method_config *cfg, const hyper *sched, void *noise_self,
                const hdlm_noise_ops *noise, int32_t V, int L, error *e);
void method_free(method *m);

/* From B clean windows (B, L): draws each sequence's schedule step (t for continuous schedules,
 * one step per block for the vectorised layout) and then its corruption from that sequence's own
 * stream streams[b], so a sequence's noise depends only on its stream — not on the batch or the
 * process it lands in (data-parallel ranks and accumulation see the same global batch). With
 * low_discrepancy, sequence b takes u = (u0 + (g0 + b) / G) mod 1: u0 is shared by the G
 * sequences of an optimizer step, g0 + b is the sequence's index among them. Fills
 * m->x0/xt/pos/t/state/sigma/rows for the model (B, T). */
int method_prepare(method *m, const int32_t *windows, int B, rng *streams, double u0, int64_t g0,
                   int64_t G, error *e);
/* Loss of the prepared batch given the model's logits (B*T, Vp). The noise plugin scores each
 * sequence on its own (a batch of one), so the batch loss is *total = scale * Σ_b loss_b: a sum
 * over sequences that splits across processes and micro-batches exactly (the plugin's own
 * normalisation then applies per sequence: per active position for annealed losses, as the
 * reference's one-step-per-batch draws do). dlogits (B*T, Vp) = d(*total)/d(logits) when not
 * NULL. */
int method_loss(method *m, int B, const float *logits, float *dlogits, double scale, double *total,
                error *e);

#endif
