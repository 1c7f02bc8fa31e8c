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
#include "diffusion/plan.h"
#include "hdlm/plugin.h"
#include "nn/layers.h"

#include <stdint.h>

typedef struct method_config {
    int context;         /* MASK_CTX_* for the settled region (default block_causal) */
    int block_type;      /* MASK_BLOCK_* inside the active region (default full) */
    int vectorised;      /* 2L layout (block-growth schedules only) */
    int low_discrepancy; /* steps (t for continuous) stratified over the batch */
    int context_width;   /* block width of block_causal settled context; 0 = the plan's default
                            (the schedule's block, 1 for token growth) */
} method_config;

typedef struct method {
    method_config cfg;
    const hyper *sched;          /* borrowed */
    void *noise_self;            /* borrowed */
    const hdlm_noise_ops *noise; /* borrowed */
    int32_t V, Vp;
    int L, T;  /* sequence length, positions the model sees (L or 2L) */
    plan plan; /* the schedule for L and the layout: steps, times, mask width, blocks */
    int conditioned;
    int concurrent_loss; /* the noise declared HDLM_INFO_CONCURRENT: one sequence per thread */
    /* per micro-batch buffers, (B, T) unless noted */
    int cap_B;
    int32_t *x0, *xt, *pos;
    float *t, *sigma, *loss;
    uint8_t *state;
    attn_row *rows;
    double *seq_total; /* [B] each sequence's loss total */
} method;

/* Compiles the schedule's plan for length L (which checks the schedule's invariants) and checks
 * the pairing (vectorised needs a schedule the 2L layout fits, plan.h). Errors name the
 * schedule/noise and the numbers. */
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
