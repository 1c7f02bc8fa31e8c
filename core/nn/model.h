/* The DDiT transformer of docs/method.md "The model" composed from the kernels of layers.c: untied
 * embedding (with the RADD input mix when conditioned), rotary attention with structured masks,
 * pre-LayerNorm blocks (weight, no bias), GELU-tanh MLP x4, optional per-token σ conditioning
 * through adaLN, final LayerNorm + zero-initialised linear head. Parameters, gradients and
 * activations are slabs; every parameter tensor has a stable name (SEDD/DDiT naming) used by
 * checkpoints.
 *
 * Dimensions: B batch, T positions per sequence (L, or 2L in the vectorised layout), N = B*T,
 * C = d_model, H heads, V = output size (vocabulary + extra symbols). */
#ifndef HDLM_MODEL_H
#define HDLM_MODEL_H

#include "base/error.h"
#include "nn/layers.h"

#include <stddef.h>
#include <stdint.h>

#define MODEL_TIME_DIM 256 /* sinusoidal σ features */
#define MODEL_COND_DIM 128 /* conditioning vector c */

typedef struct model_config {
    int vocab;   /* V: embedding rows and output size (base vocabulary + extra symbols) */
    int d_model; /* C */
    int n_layer;
    int n_head;
    int seq_len;     /* longest sequence the model is used with (positions are rotary) */
    int cond;        /* 1: per-token σ conditioning (adaLN + RADD input mix) */
    int mask_id;     /* mask symbol for the RADD input mix; -1: no mix */
    float mix_gamma; /* γ of the input mix weight exp(-γσ) */
    float dropout;   /* dropout on attention probabilities and on the attention-output and MLP
                        residual branches during training (as the reference); 0 = none */
} model_config;

/* Validates a config before anything is allocated; messages give the numbers. */
int model_config_check(const model_config *c, error *e);

enum { MODEL_INIT_NORMAL_ZERO = 0 };

typedef struct model_tensor {
    char name[96]; /* e.g. "blocks.3.attn_qkv.weight" */
    int ndim;
    int64_t shape[2];
    size_t offset; /* into the parameter slab, in floats */
    size_t size;   /* floats */
    int decay;     /* 1: AdamW weight decay applies (matrices only) */
} model_tensor;

typedef struct layer_params {
    float *ln1_w;         /* (C) */
    float *ada_w, *ada_b; /* (6C, COND), (6C) — conditioned only */
    float *qkv_w;         /* (3C, C) */
    float *proj_w;        /* (C, C) */
    float *ln2_w;         /* (C) */
    float *fc1_w, *fc1_b; /* (4C, C), (4C) */
    float *fc2_w, *fc2_b; /* (C, 4C), (C) */
} layer_params;

typedef struct model_params {
    float *wte;           /* (V, C) */
    float *t_w1, *t_b1;   /* (COND, TIME), (COND) — conditioned only */
    float *t_w2, *t_b2;   /* (COND, COND), (COND) */
    layer_params *layers; /* (n_layer) */
    float *lnf_w;         /* (C) */
    float *out_w, *out_b; /* (V, C), (V) */
} model_params;

typedef struct model_acts model_acts; /* saved activations for backward (model.c) */

typedef struct model {
    model_config cfg;
    size_t n_params;
    float *params;     /* slab (n_params) */
    float *grads;      /* slab (n_params), allocated by model_alloc_grads */
    model_params p, g; /* views into params / grads */
    model_tensor *tensors;
    int n_tensors;
    model_acts *acts; /* sized for the largest (B, T) seen */
    /* precision "bf16" (model_set_precision): every linear layer multiplies in bf16 with float32
     * accumulation against params16, a bf16 copy of the float32 parameters (which stay the
     * master weights). The copy is refreshed by the first forward after model_params_changed, so
     * once per optimizer step, not per product. */
    int bf16;
    int params16_stale;
    uint16_t *params16; /* (n_params) */
    uint16_t *scr16[2]; /* rounded activations / gradients, scr16_cap values each */
    size_t scr16_cap;
} model;

/* One forward/backward batch. */
typedef struct model_batch {
    int B, T;
    const int32_t *tokens;   /* (B, T) */
    const int32_t *pos;      /* (B, T) rotary positions */
    const float *sigma;      /* (B, T) conditioning; NULL when not conditioned */
    const attn_row *rows;    /* (B, T) attention mask rows */
    struct rng *dropout_rng; /* training with dropout draws its masks here; NULL = no dropout */
    /* Optional: logits only for these n_out rows of the B*T (ascending or not), and then logits
     * and dlogits are (n_out, V) in this order. A loss that ignores the other positions (the
     * masked-token task) spares the output layer their rows. NULL: every row. model_forward
     * only; the cached forward always returns every row. */
    const int32_t *out_rows;
    int n_out;
} model_batch;

/* Allocates the parameter slab and initialises it from seed (deterministic). */
int model_init(model *m, const model_config *cfg, uint64_t seed, error *e);
void model_free(model *m); /* accepts a zeroed model */
int model_alloc_grads(model *m, error *e);
void model_zero_grad(model *m);
/* Exchanges the parameter slab with *slab (same layout, e.g. the EMA weights) and re-points the
 * views; *slab receives the previous one. */
int model_swap_params(model *m, float **slab, error *e);
/* Precision of the matrix products: 0 = float32 (OpenBLAS), 1 = bf16 (tensor/bf16.h; refused
 * with bf16_check's message, prefixed by `what`, when oneDNN or the CPU feature is missing). */
int model_set_precision(model *m, int bf16, const char *what, error *e);
/* Call after writing m->params behind the model's back (optimizer step, loading weights): the
 * bf16 copy is rebuilt before the next forward. model_swap_params calls it itself. */
void model_params_changed(model *m);
const model_tensor *model_find_tensor(const model *m, const char *name);

/* Forward over a batch; returns the logits (N, V) in a model-owned buffer valid until the next
 * forward. Saves what backward needs. */
int model_forward(model *m, const model_batch *b, float **logits, error *e);
/* Accumulates parameter gradients from dlogits (N, V) for the batch of the last forward. */
void model_backward(model *m, const model_batch *b, const float *dlogits);

/* FLOPs (2 per multiply-add) of one forward pass per token, for GFLOP/s figures: matmul
 * parameters and the attention terms over T keys. Training ≈ 3x this (forward + backward). */
double model_flops_per_token(const model_config *c, int T);

/* ---- KV cache: exact incremental inference ------------------------------------------------- */
typedef struct kv_cache {
    int n_layer, B, Tmax, C;
    float *k, *v; /* (n_layer, B, Tmax, C), after rotary */
    int len;      /* committed positions [0, len) */
    float *att;   /* attention probabilities scratch */
    size_t att_cap;
} kv_cache;

int kv_cache_init(kv_cache *c, const model *m, int B, int Tmax, error *e);
void kv_cache_free(kv_cache *c);
/* Runs the T new positions of each of the B sequences against the cache: their keys/values go to
 * cache slots [len, len+T), attention rows index keys in [0, len+T) (rows (B,T) in key space).
 * When commit, len += T (the positions become part of the cached context); otherwise the slots
 * are scratch. logits (B*T, V) in a model-owned buffer. No activations are saved. */
int model_forward_cached(model *m, kv_cache *c, const model_batch *b, int commit, float **logits,
                         error *e);
/* The same where only the first n_commit of the T positions (per sequence) become cached context:
 * a settling prefix and the active positions after it share one pass over the weights. */
int model_forward_cached_n(model *m, kv_cache *c, const model_batch *b, int n_commit,
                           float **logits, error *e);

#endif
