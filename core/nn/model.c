/* DDiT model: parameter table and slabs, deterministic init, forward/backward over a batch with
 * saved activations, and cached incremental inference. The maths lives in layers.c; this file
 * only decides which buffer feeds which kernel. */
#include "model.h"

#include "base/mem.h"
#include "base/rng.h"
#include "tensor/bf16.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameter table ---------------------------------------------------------------------- */

enum { INIT_ONES, INIT_ZERO, INIT_LINEAR, INIT_EMBED };

typedef struct tensor_spec {
    model_tensor t;
    int init;
    float **slot; /* where the view pointer goes (in m->p); the grad view mirrors it in m->g */
    int64_t fan_in;
} tensor_spec;

static int add_spec(tensor_spec *s, int n, const char *name, int64_t r, int64_t c, int init,
                    int decay, float **slot, int64_t fan_in) {
    if (s) {
        tensor_spec *t = &s[n];
        memset(t, 0, sizeof *t);
        snprintf(t->t.name, sizeof t->t.name, "%s", name);
        t->t.ndim = c ? 2 : 1;
        t->t.shape[0] = r;
        t->t.shape[1] = c;
        t->t.size = (size_t)(r * (c ? c : 1));
        t->t.decay = decay;
        t->init = init;
        t->slot = slot;
        t->fan_in = fan_in;
    }
    return n + 1;
}

/* Enumerates the tensors (s may be NULL to count). Order = slab order = checkpoint order. */
static int build_specs(model *m, tensor_spec *s) {
    const model_config *c = &m->cfg;
    int64_t C = c->d_model, V = c->vocab;
    int n = 0;
    char nm[96];
    n = add_spec(s, n, "vocab_embed.embedding", V, C, INIT_EMBED, 1, &m->p.wte, C);
    if (c->cond) {
        n = add_spec(s, n, "sigma_map.mlp.0.weight", MODEL_COND_DIM, MODEL_TIME_DIM, INIT_LINEAR, 1,
                     &m->p.t_w1, MODEL_TIME_DIM);
        n = add_spec(s, n, "sigma_map.mlp.0.bias", MODEL_COND_DIM, 0, INIT_LINEAR, 0, &m->p.t_b1,
                     MODEL_TIME_DIM);
        n = add_spec(s, n, "sigma_map.mlp.2.weight", MODEL_COND_DIM, MODEL_COND_DIM, INIT_LINEAR, 1,
                     &m->p.t_w2, MODEL_COND_DIM);
        n = add_spec(s, n, "sigma_map.mlp.2.bias", MODEL_COND_DIM, 0, INIT_LINEAR, 0, &m->p.t_b2,
                     MODEL_COND_DIM);
    }
    for (int l = 0; l < c->n_layer; l++) {
        layer_params *lp = m->p.layers ? &m->p.layers[l] : NULL;
#define SLOT(f) (lp ? &lp->f : NULL)
        snprintf(nm, sizeof nm, "blocks.%d.norm1.weight", l);
        n = add_spec(s, n, nm, C, 0, INIT_ONES, 0, SLOT(ln1_w), 0);
        if (c->cond) {
            snprintf(nm, sizeof nm, "blocks.%d.adaLN_modulation.weight", l);
            n = add_spec(s, n, nm, 6 * C, MODEL_COND_DIM, INIT_ZERO, 1, SLOT(ada_w), 0);
            snprintf(nm, sizeof nm, "blocks.%d.adaLN_modulation.bias", l);
            n = add_spec(s, n, nm, 6 * C, 0, INIT_ZERO, 0, SLOT(ada_b), 0);
        }
        snprintf(nm, sizeof nm, "blocks.%d.attn_qkv.weight", l);
        n = add_spec(s, n, nm, 3 * C, C, INIT_LINEAR, 1, SLOT(qkv_w), C);
        snprintf(nm, sizeof nm, "blocks.%d.attn_out.weight", l);
        n = add_spec(s, n, nm, C, C, INIT_LINEAR, 1, SLOT(proj_w), C);
        snprintf(nm, sizeof nm, "blocks.%d.norm2.weight", l);
        n = add_spec(s, n, nm, C, 0, INIT_ONES, 0, SLOT(ln2_w), 0);
        snprintf(nm, sizeof nm, "blocks.%d.mlp.0.weight", l);
        n = add_spec(s, n, nm, 4 * C, C, INIT_LINEAR, 1, SLOT(fc1_w), C);
        snprintf(nm, sizeof nm, "blocks.%d.mlp.0.bias", l);
        n = add_spec(s, n, nm, 4 * C, 0, INIT_LINEAR, 0, SLOT(fc1_b), C);
        snprintf(nm, sizeof nm, "blocks.%d.mlp.2.weight", l);
        n = add_spec(s, n, nm, C, 4 * C, INIT_LINEAR, 1, SLOT(fc2_w), 4 * C);
        snprintf(nm, sizeof nm, "blocks.%d.mlp.2.bias", l);
        n = add_spec(s, n, nm, C, 0, INIT_LINEAR, 0, SLOT(fc2_b), 4 * C);
#undef SLOT
    }
    n = add_spec(s, n, "output_layer.norm_final.weight", C, 0, INIT_ONES, 0, &m->p.lnf_w, 0);
    n = add_spec(s, n, "output_layer.linear.weight", V, C, INIT_ZERO, 1, &m->p.out_w, 0);
    n = add_spec(s, n, "output_layer.linear.bias", V, 0, INIT_ZERO, 0, &m->p.out_b, 0);
    return n;
}

int model_config_check(const model_config *c, error *e) {
    if (c->vocab < 2 || c->vocab > (1 << 24))
        return error_set(e, HDLM_EINVAL, "model: vocab must be in 2..16777216, got %d", c->vocab);
    if (c->d_model < 2 || c->n_layer < 1 || c->n_head < 1 || c->seq_len < 1)
        return error_set(e, HDLM_EINVAL,
                         "model: d_model (%d), n_layer (%d), n_head (%d), seq_len (%d) must be "
                         "positive",
                         c->d_model, c->n_layer, c->n_head, c->seq_len);
    if (c->d_model % c->n_head)
        return error_set(e, HDLM_EINVAL, "model: n_head %d does not divide d_model %d", c->n_head,
                         c->d_model);
    if ((c->d_model / c->n_head) % 2)
        return error_set(e, HDLM_EINVAL,
                         "model: head size d_model/n_head = %d must be even (rotary)",
                         c->d_model / c->n_head);
    if (c->mask_id >= c->vocab)
        return error_set(e, HDLM_EINVAL, "model: mask_id %d outside the vocabulary (%d)",
                         c->mask_id, c->vocab);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return error_set(e, HDLM_EINVAL, "model: dropout must be in [0, 1), got %g",
                         (double)c->dropout);
    if (c->d_model > 65536 || c->n_layer > 1024 || c->seq_len > (1 << 20))
        return error_set(e, HDLM_EINVAL, "model: d_model %d / n_layer %d / seq_len %d too large",
                         c->d_model, c->n_layer, c->seq_len);
    return HDLM_OK;
}

static void fill_views(model *m, float *slab, model_params *dst, const tensor_spec *specs) {
    /* specs' slots point into m->p; mirror the same offsets into dst */
    for (int i = 0; i < m->n_tensors; i++) {
        float **slot = specs[i].slot;
        size_t off = (size_t)((char *)slot - (char *)&m->p);
        float **target;
        if (off < sizeof(model_params)) {
            target = (float **)((char *)dst + off);
        } else { /* a layer field: find which layer */
            size_t loff = (size_t)((char *)slot - (char *)m->p.layers);
            size_t l = loff / sizeof(layer_params), f = loff % sizeof(layer_params);
            target = (float **)((char *)&dst->layers[l] + f);
        }
        *target = slab + specs[i].t.offset;
    }
}

int model_init(model *m, const model_config *cfg, uint64_t seed, error *e) {
    memset(m, 0, sizeof *m);
    int rc = model_config_check(cfg, e); /* e may be NULL: keep the code, not e->code */
    if (rc != HDLM_OK) return rc;
    m->cfg = *cfg;
    m->p.layers = calloc((size_t)cfg->n_layer, sizeof(layer_params));
    m->g.layers = calloc((size_t)cfg->n_layer, sizeof(layer_params));
    int n = build_specs(m, NULL);
    tensor_spec *specs = calloc((size_t)n, sizeof *specs);
    m->tensors = calloc((size_t)n, sizeof *m->tensors);
    if (!m->p.layers || !m->g.layers || !specs || !m->tensors) {
        free(specs);
        model_free(m);
        return error_set(e, HDLM_ENOMEM, "model: out of memory for the parameter table");
    }
    m->n_tensors = build_specs(m, specs);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        specs[i].t.offset = off;
        off += specs[i].t.size;
        m->tensors[i] = specs[i].t;
    }
    m->n_params = off;
    m->params = mem_alloc_large(off * sizeof(float));
    if (!m->params) {
        free(specs);
        model_free(m);
        return error_set(e, HDLM_ENOMEM, "model: cannot allocate %zu parameters (%.1f MiB)", off,
                         off * 4.0 / 1048576);
    }
    fill_views(m, m->params, &m->p, specs);
    /* Init as the reference (PyTorch defaults): Linear weights and biases U(-1/sqrt(fan_in), +),
     * the embedding Kaiming-uniform(a=sqrt(5)) = U(-1/sqrt(C), +), LayerNorm weights 1, adaLN
     * and the output layer zero. One rng stream per tensor keeps init independent of order. */
    rng base;
    rng_init(&base, seed);
    for (int i = 0; i < n; i++) {
        float *w = m->params + specs[i].t.offset;
        size_t sz = specs[i].t.size;
        switch (specs[i].init) {
        case INIT_ONES:
            for (size_t j = 0; j < sz; j++)
                w[j] = 1.0f;
            break;
        case INIT_ZERO:
            memset(w, 0, sz * sizeof *w);
            break;
        default: {
            rng r = rng_split(&base, (uint64_t)i + 1);
            double bound = 1.0 / sqrt((double)specs[i].fan_in);
            for (size_t j = 0; j < sz; j++)
                w[j] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
        }
        }
    }
    free(specs);
    return HDLM_OK;
}

/* ---- activations -------------------------------------------------------------------------- */

typedef struct layer_acts {
    float *x;                   /* (N, C) block input (residual stream) */
    float *ln1;                 /* (N, C) LayerNorm 1 output (before modulation) */
    float *ln1_mean, *ln1_rstd; /* (N) */
    float *m1;                  /* (N, C) modulated (== ln1 when unconditioned) */
    float *qkv;                 /* (N, 3C) after rotary on q, k */
    float *att;                 /* (B, H, T, T) attention probabilities */
    float *atty;                /* (N, C) attention output */
    float *proj;                /* (N, C) */
    float *x2;                  /* (N, C) after the attention residual */
    float *ln2, *ln2_mean, *ln2_rstd, *m2;
    float *fc1;         /* (N, 4C) pre-GELU */
    float *gl;          /* (N, 4C) GELU output */
    float *fc2;         /* (N, C) */
    float *ada;         /* (nu, 6C) shift1 scale1 gate1 shift2 scale2 gate2, one row per σ */
    uint8_t *keep_att;  /* (B, H, T, T) dropout masks (1 = kept), only with dropout */
    uint8_t *keep_proj; /* (N, C) */
    uint8_t *keep_fc2;  /* (N, C) */
} layer_acts;

struct model_acts {
    size_t cap_n, cap_att; /* capacity: rows and attention-probability entries */
    float *slab;
    layer_acts *layers;
    /* Conditioning depends on a token only through its σ, and a batch holds few distinct σ (one
     * per sequence for the masked-token task, one per block state for block schedules): the σ MLP
     * and the adaLN products run once per distinct value, and tokens index their row. */
    int nu;                           /* distinct σ values of the current batch */
    float *usig;                      /* (nu) the distinct values, in order of first appearance */
    int32_t *crow;                    /* (N) token -> row of usig / cvec / ada */
    int32_t *hslot;                   /* (hcap) open-addressing table used to find them */
    size_t hcap;                      /* power of two >= 2N */
    float *tf, *t1, *t1s, *t2, *cvec; /* (nu, TIME), (nu, COND) x4 */
    float *mixw;                      /* (N) RADD mix weights */
    float *xf;                        /* (N, C) final residual stream */
    float *lnf, *lnf_mean, *lnf_rstd;
    /* With selected output rows (model_batch.out_rows), the last block's MLP half, the final
     * LayerNorm and the output layer run on those rows only: nothing else reads the other rows
     * past the last attention (their keys and values were used inside it). */
    float *x2o;     /* (n_out, C) the selected rows of the last block's x2 */
    int32_t *crowo; /* (n_out) their conditioning rows */
    float *dxo;     /* (n_out, C) backward: gradient of the last block's output on those rows */
    float *logits;  /* (N, V), or (n_out, V) */
    int dropped;    /* the last forward applied dropout (its masks are in the layers) */
    /* backward scratch */
    float *dx, *dln, *dm, *dqkv, *datty, *dgl, *dada, *dc, *dlnf;
    float *dt2, *dt1;
};

static void acts_free(model_acts *a) {
    if (!a) return;
    free(a->slab);
    free(a->layers);
    free(a);
}

/* Carves all activation buffers for (B, T) from one slab (two passes: size, then pointers). */
static int acts_ensure(model *m, int B, int T, error *e) {
    const model_config *c = &m->cfg;
    size_t N = (size_t)B * T, C = (size_t)c->d_model, H = (size_t)c->n_head, V = (size_t)c->vocab;
    /* buffers are only ever used up to the current size, so a larger slab serves any smaller
     * batch: sampling steps of varying width do not reallocate */
    if (m->acts && m->acts->cap_n >= N && m->acts->cap_att >= (size_t)B * H * T * T) return HDLM_OK;
    acts_free(m->acts);
    m->acts = NULL;
    int cond = c->cond;
    model_acts *a = calloc(1, sizeof *a);
    if (!a) return error_set(e, HDLM_ENOMEM, "model: out of memory");
    a->cap_n = N;
    a->cap_att = (size_t)B * H * T * T;
    a->hcap = 1;
    while (a->hcap < 2 * N)
        a->hcap *= 2;
    a->layers = calloc((size_t)c->n_layer, sizeof *a->layers);
    if (!a->layers) {
        free(a);
        return error_set(e, HDLM_ENOMEM, "model: out of memory");
    }
    size_t total = 0;
    float *base = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t off = 0;
#define TAKE(ptr, n)                                                                               \
    do {                                                                                           \
        if (pass) (ptr) = base + off;                                                              \
        off += ((size_t)(n) + 15) & ~(size_t)15; /* 64-byte aligned sub-buffers */                 \
    } while (0)
        for (int l = 0; l < c->n_layer; l++) {
            layer_acts *la = &a->layers[l];
            TAKE(la->x, N * C);
            TAKE(la->ln1, N * C);
            TAKE(la->ln1_mean, N);
            TAKE(la->ln1_rstd, N);
            if (cond) TAKE(la->m1, N * C);
            TAKE(la->qkv, N * 3 * C);
            TAKE(la->att, (size_t)B * H * T * T);
            TAKE(la->atty, N * C);
            TAKE(la->proj, N * C);
            TAKE(la->x2, N * C);
            TAKE(la->ln2, N * C);
            TAKE(la->ln2_mean, N);
            TAKE(la->ln2_rstd, N);
            if (cond) TAKE(la->m2, N * C);
            TAKE(la->fc1, N * 4 * C);
            TAKE(la->gl, N * 4 * C);
            TAKE(la->fc2, N * C);
            if (cond) TAKE(la->ada, N * 6 * C);
            if (c->dropout > 0) { /* byte masks carved as floats: 4 masks per float slot */
                float *tmp = NULL;
                TAKE(tmp, ((size_t)B * H * T * T + 3) / 4);
                la->keep_att = (uint8_t *)tmp;
                TAKE(tmp, (N * C + 3) / 4);
                la->keep_proj = (uint8_t *)tmp;
                TAKE(tmp, (N * C + 3) / 4);
                la->keep_fc2 = (uint8_t *)tmp;
            }
            if (pass && !cond) {
                la->m1 = la->ln1;
                la->m2 = la->ln2;
            }
        }
        if (cond) {
            float *tmp = NULL;
            TAKE(a->usig, N);
            TAKE(tmp, N); /* int32 slots carved as floats (same size) */
            a->crow = (int32_t *)tmp;
            TAKE(tmp, a->hcap);
            a->hslot = (int32_t *)tmp;
            TAKE(a->tf, N * MODEL_TIME_DIM);
            TAKE(a->t1, N * MODEL_COND_DIM);
            TAKE(a->t1s, N * MODEL_COND_DIM);
            TAKE(a->t2, N * MODEL_COND_DIM);
            TAKE(a->cvec, N * MODEL_COND_DIM);
            TAKE(a->mixw, N);
            TAKE(a->dada, N * 6 * C);
            TAKE(a->dc, N * MODEL_COND_DIM);
            TAKE(a->dt2, N * MODEL_COND_DIM);
            TAKE(a->dt1, N * MODEL_COND_DIM);
        }
        TAKE(a->xf, N * C);
        TAKE(a->lnf, N * C);
        TAKE(a->lnf_mean, N);
        TAKE(a->lnf_rstd, N);
        TAKE(a->x2o, N * C);
        TAKE(a->dxo, N * C);
        {
            float *tmp = NULL;
            TAKE(tmp, N);
            a->crowo = (int32_t *)tmp;
        }
        TAKE(a->logits, N * V);
        TAKE(a->dx, N * C);
        TAKE(a->dln, N * C);
        TAKE(a->dm, N * C);
        TAKE(a->dqkv, N * 3 * C);
        TAKE(a->datty, N * C);
        TAKE(a->dgl, N * 4 * C);
        TAKE(a->dlnf, N * C);
#undef TAKE
        if (!pass) {
            total = off;
            base = mem_alloc_large(total * sizeof(float));
            if (!base) {
                free(a->layers);
                free(a);
                return error_set(e, HDLM_ENOMEM,
                                 "model: cannot allocate activations for batch %d x %d (%.1f MiB)",
                                 B, T, total * 4.0 / 1048576);
            }
        }
    }
    a->slab = base;
    m->acts = a;
    return HDLM_OK;
}

void model_free(model *m) {
    if (!m) return;
    free(m->params);
    free(m->grads);
    free(m->p.layers);
    free(m->g.layers);
    free(m->tensors);
    acts_free(m->acts);
    free(m->params16);
    free(m->scr16[0]);
    free(m->scr16[1]);
    memset(m, 0, sizeof *m);
}

/* Points the views dst (m->p or m->g) at slab, at the offsets of the tensor table. */
static int bind_views(model *m, float *slab, model_params *dst) {
    int n = build_specs(m, NULL);
    tensor_spec *specs = calloc((size_t)n, sizeof *specs);
    if (!specs) return HDLM_ENOMEM;
    build_specs(m, specs);
    for (int i = 0; i < n; i++)
        specs[i].t.offset = m->tensors[i].offset;
    fill_views(m, slab, dst, specs);
    free(specs);
    return HDLM_OK;
}

int model_alloc_grads(model *m, error *e) {
    if (m->grads) return HDLM_OK;
    m->grads = mem_calloc_large(m->n_params * sizeof(float));
    if (!m->grads || bind_views(m, m->grads, &m->g) != HDLM_OK) {
        /* leave no slab without views: the early return above would accept it */
        free(m->grads);
        m->grads = NULL;
        return error_set(e, HDLM_ENOMEM, "model: cannot allocate gradients (%.1f MiB)",
                         m->n_params * 4.0 / 1048576);
    }
    return HDLM_OK;
}

int model_swap_params(model *m, float **slab, error *e) {
    float *old = m->params;
    m->params = *slab;
    if (bind_views(m, m->params, &m->p) != HDLM_OK) {
        m->params = old;
        return error_set(e, HDLM_ENOMEM, "model: out of memory");
    }
    *slab = old;
    model_params_changed(m);
    return HDLM_OK;
}

int model_set_precision(model *m, int bf16, const char *what, error *e) {
    if (!bf16) {
        m->bf16 = 0;
        return HDLM_OK;
    }
    if (bf16_check(what, e) != HDLM_OK) return e->code;
    if (!m->params16) {
        m->params16 = mem_calloc_large(m->n_params * sizeof(uint16_t));
        if (!m->params16)
            return error_set(e, HDLM_ENOMEM, "%s: cannot allocate the bf16 weights (%.1f MiB)",
                             what, m->n_params * 2.0 / 1048576);
    }
    m->bf16 = 1;
    m->params16_stale = 1;
    return HDLM_OK;
}

void model_params_changed(model *m) {
    m->params16_stale = 1;
}

/* Before a bf16 forward over N rows: the weights' bf16 copy current, scratch for the widest
 * linear layer (its input or output: V, 6C for adaLN, 4C, the σ features). */
static int bf16_prepare(model *m, size_t N, error *e) {
    if (m->params16_stale) {
        bf16_convert(m->params16, m->params, m->n_params);
        m->params16_stale = 0;
    }
    const model_config *c = &m->cfg;
    size_t w = (size_t)c->vocab;
    size_t alt[] = {6 * (size_t)c->d_model, MODEL_TIME_DIM, MODEL_COND_DIM};
    for (int i = 0; i < 3; i++)
        w = alt[i] > w ? alt[i] : w;
    size_t need = N * w;
    if (need <= m->scr16_cap) return HDLM_OK;
    for (int i = 0; i < 2; i++) {
        free(m->scr16[i]);
        m->scr16[i] = mem_calloc_large(need * sizeof(uint16_t));
    }
    if (!m->scr16[0] || !m->scr16[1]) {
        m->scr16_cap = 0;
        return error_set(e, HDLM_ENOMEM, "model: cannot allocate bf16 scratch (%.1f MiB)",
                         need * 4.0 / 1048576);
    }
    m->scr16_cap = need;
    return HDLM_OK;
}

/* The linear layers at the model's precision. w points into m->params; its bf16 copy sits at the
 * same offset of m->params16. */
static const uint16_t *w16_of(const model *m, const float *w) {
    return m->params16 + (w - m->params);
}

static void lin_fwd(const model *m, float *out, const float *inp, const float *w, const float *bias,
                    int N, int C, int OC) {
    if (m->bf16)
        linear_forward_bf16(out, inp, w16_of(m, w), bias, N, C, OC, m->scr16[0]);
    else
        linear_forward(out, inp, w, bias, N, C, OC);
}

/* into: dinp is overwritten (linear_backward_into) rather than accumulated. */
static void lin_bwd(const model *m, int into, float *dinp, float *dw, float *dbias,
                    const float *dout, const float *inp, const float *w, int N, int C, int OC) {
    if (m->bf16)
        linear_backward_bf16(dinp, into, dw, dbias, dout, inp, w16_of(m, w), N, C, OC, m->scr16[0],
                             m->scr16[1]);
    else if (into)
        linear_backward_into(dinp, dw, dbias, dout, inp, w, N, C, OC);
    else
        linear_backward(dinp, dw, dbias, dout, inp, w, N, C, OC);
}

static void zero_floats(float *p, size_t n);

void model_zero_grad(model *m) {
    if (m->grads) zero_floats(m->grads, m->n_params);
}

const model_tensor *model_find_tensor(const model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

double model_flops_per_token(const model_config *c, int T) {
    double C = c->d_model, V = c->vocab;
    double mm = (double)c->n_layer * 12.0 * C * C + V * C;
    if (c->cond)
        mm += MODEL_TIME_DIM * MODEL_COND_DIM + MODEL_COND_DIM * MODEL_COND_DIM +
              (double)c->n_layer * MODEL_COND_DIM * 6 * C;
    return 2.0 * mm + 4.0 * c->n_layer * (double)T * C; /* qk^T and pv over T keys */
}

/* ---- forward / backward ------------------------------------------------------------------- */

/* Gradient buffers are zeroed before kernels accumulate into them: ~24 N·C floats per layer per
 * step, worth doing on every core. */
static void zero_floats(float *p, size_t n) {
#pragma omp parallel for schedule(static) if (n >= (1u << 18))
    for (size_t i = 0; i < n; i++)
        p[i] = 0.0f;
}

/* The distinct values of sigma (N) by their bits, in order of first appearance, into a->usig, and
 * each token's row into a->crow; sets a->nu. Runs of equal σ (the common layout) skip the table. */
static void sigma_groups(model_acts *a, const float *sigma, int N) {
    size_t mask = a->hcap - 1;
    memset(a->hslot, 0xff, a->hcap * sizeof *a->hslot); /* -1: empty */
    int nu = 0, last = -1;
    uint32_t last_bits = 0;
    for (int n = 0; n < N; n++) {
        uint32_t bits;
        memcpy(&bits, &sigma[n], sizeof bits);
        if (last < 0 || bits != last_bits) {
            size_t h = (size_t)(bits * 2654435761u) & mask;
            for (;;) {
                int32_t u = a->hslot[h];
                if (u < 0) { /* new value */
                    a->hslot[h] = nu;
                    a->usig[nu] = sigma[n];
                    last = nu++;
                    break;
                }
                uint32_t ub;
                memcpy(&ub, &a->usig[u], sizeof ub);
                if (ub == bits) {
                    last = u;
                    break;
                }
                h = (h + 1) & mask;
            }
            last_bits = bits;
        }
        a->crow[n] = last;
    }
    a->nu = nu;
}

/* σ -> c (nu, COND) for the distinct σ of the batch, each token's row, and the input mix weights
 * (N); shared by training and cached inference. */
static void cond_forward(const model *m, model_acts *a, const float *sigma, int N) {
    const model_params *p = &m->p;
    sigma_groups(a, sigma, N);
    int U = a->nu;
    timestep_features(a->tf, a->usig, U, MODEL_TIME_DIM);
    lin_fwd(m, a->t1, a->tf, p->t_w1, p->t_b1, U, MODEL_TIME_DIM, MODEL_COND_DIM);
    silu_forward(a->t1s, a->t1, (int64_t)U * MODEL_COND_DIM);
    lin_fwd(m, a->t2, a->t1s, p->t_w2, p->t_b2, U, MODEL_COND_DIM, MODEL_COND_DIM);
    silu_forward(a->cvec, a->t2, (int64_t)U * MODEL_COND_DIM);
    for (int i = 0; i < N; i++)
        a->mixw[i] = expf(-m->cfg.mix_gamma * sigma[i]);
}

static void embed_forward(const model *m, model_acts *a, float *out, const int32_t *tok, int N) {
    if (m->cfg.cond && m->cfg.mask_id >= 0)
        embedding_mix_forward(out, tok, a->mixw, m->p.wte, m->cfg.mask_id, N, m->cfg.d_model);
    else
        embedding_forward(out, tok, m->p.wte, N, m->cfg.d_model);
}

/* a->x2o = the selected rows of x2 (N, C), a->crowo their conditioning rows. */
static void select_rows(model_acts *a, const float *x2, const int32_t *crow, const model_batch *b,
                        int C) {
    int n = b->n_out;
    const int32_t *idx = b->out_rows;
#pragma omp parallel for schedule(static) if ((int64_t)n * C >= 65536)
    for (int i = 0; i < n; i++)
        memcpy(a->x2o + (size_t)i * C, x2 + (size_t)idx[i] * C, (size_t)C * sizeof(float));
    if (crow)
        for (int i = 0; i < n; i++)
            a->crowo[i] = crow[idx[i]];
}

static int check_batch(const model *m, const model_batch *b, error *e) {
    if (b->B < 1 || b->T < 1)
        return error_set(e, HDLM_EINVAL, "model: empty batch (%d x %d)", b->B, b->T);
    if (m->cfg.cond && !b->sigma)
        return error_set(e, HDLM_EINVAL, "model: conditioned model needs sigma");
    int64_t N = (int64_t)b->B * b->T;
    if (b->out_rows) {
        if (b->n_out < 0 || b->n_out > N)
            return error_set(e, HDLM_EINVAL, "model: %d output rows for a batch of %lld", b->n_out,
                             (long long)N);
        for (int i = 0; i < b->n_out; i++)
            if (b->out_rows[i] < 0 || b->out_rows[i] >= N)
                return error_set(e, HDLM_EINVAL, "model: output row %d outside 0..%lld",
                                 b->out_rows[i], (long long)N - 1);
    }
    for (int64_t i = 0; i < N; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= m->cfg.vocab)
            return error_set(e, HDLM_EINVAL, "model: token %d at index %lld outside 0..%d",
                             b->tokens[i], (long long)i, m->cfg.vocab - 1);
    return HDLM_OK;
}

/* Dropout masks: 1 = kept; drawn in a fixed order from the batch's rng (deterministic). */
static void draw_keep(uint8_t *keep, size_t n, float p, rng *r) {
    for (size_t i = 0; i < n; i++)
        keep[i] = rng_uniform_f32(r) >= p;
}

/* x = x * keep / (1 - p), in place (also the backward of itself). */
static void apply_keep(float *x, const uint8_t *keep, size_t n, float p) {
    float sc = 1.0f / (1.0f - p);
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++)
        x[i] = keep[i] ? x[i] * sc : 0.0f;
}

int model_forward(model *m, const model_batch *b, float **logits, error *e) {
    int rc = check_batch(m, b, e);
    if (rc == HDLM_OK) rc = acts_ensure(m, b->B, b->T, e);
    if (rc == HDLM_OK && m->bf16) rc = bf16_prepare(m, (size_t)b->B * b->T, e);
    if (rc != HDLM_OK) return rc;
    model_acts *a = m->acts;
    const model_config *c = &m->cfg;
    int B = b->B, T = b->T, N = B * T, C = c->d_model, H = c->n_head, hd = C / H;
    int drop = c->dropout > 0 && b->dropout_rng;
    if (c->cond) cond_forward(m, a, b->sigma, N);
    const int32_t *crow = c->cond ? a->crow : NULL;
    embed_forward(m, a, a->layers[0].x, b->tokens, N);
    for (int l = 0; l < c->n_layer; l++) {
        const layer_params *lp = &m->p.layers[l];
        layer_acts *la = &a->layers[l];
        float *xout = l + 1 < c->n_layer ? a->layers[l + 1].x : a->xf;
        const float *shift1 = NULL, *scale1 = NULL, *gate1 = NULL;
        const float *shift2 = NULL, *scale2 = NULL, *gate2 = NULL;
        if (c->cond) {
            lin_fwd(m, la->ada, a->cvec, lp->ada_w, lp->ada_b, a->nu, MODEL_COND_DIM, 6 * C);
            shift1 = la->ada, scale1 = la->ada + C, gate1 = la->ada + 2 * C;
            shift2 = la->ada + 3 * C, scale2 = la->ada + 4 * C, gate2 = la->ada + 5 * C;
        }
        layernorm_forward(la->ln1, la->ln1_mean, la->ln1_rstd, la->x, lp->ln1_w, N, C);
        if (c->cond) modulate_forward(la->m1, la->ln1, shift1, scale1, 6 * C, crow, N, C);
        lin_fwd(m, la->qkv, la->m1, lp->qkv_w, NULL, N, C, 3 * C);
        rope_forward(la->qkv, 3 * C, b->pos, N, 2 * H, hd);
        if (drop) {
            draw_keep(la->keep_att, (size_t)B * H * T * T, c->dropout, b->dropout_rng);
            draw_keep(la->keep_proj, (size_t)N * C, c->dropout, b->dropout_rng);
            draw_keep(la->keep_fc2, (size_t)N * C, c->dropout, b->dropout_rng);
        }
        attention_forward_dropout(la->atty, la->att, la->qkv, 3 * C, la->qkv + C, 3 * C,
                                  la->qkv + 2 * C, 3 * C, (int64_t)T * 3 * C, b->rows, B, T, T, C,
                                  H, drop ? la->keep_att : NULL, c->dropout);
        lin_fwd(m, la->proj, la->atty, lp->proj_w, NULL, N, C, C);
        if (drop) apply_keep(la->proj, la->keep_proj, (size_t)N * C, c->dropout);
        residual_forward(la->x2, la->x, la->proj, gate1, 6 * C, crow, N, C);
        /* MLP half: on the Nm rows of x2m (all rows, or the last block's selected rows) */
        const float *x2m = la->x2;
        const int32_t *rowm = crow;
        int Nm = N;
        if (l + 1 == c->n_layer && b->out_rows) {
            select_rows(a, la->x2, crow, b, C);
            x2m = a->x2o, rowm = crow ? a->crowo : NULL, Nm = b->n_out;
        }
        layernorm_forward(la->ln2, la->ln2_mean, la->ln2_rstd, x2m, lp->ln2_w, Nm, C);
        if (c->cond) modulate_forward(la->m2, la->ln2, shift2, scale2, 6 * C, rowm, Nm, C);
        lin_fwd(m, la->fc1, la->m2, lp->fc1_w, lp->fc1_b, Nm, C, 4 * C);
        gelu_forward(la->gl, la->fc1, (int64_t)Nm * 4 * C);
        lin_fwd(m, la->fc2, la->gl, lp->fc2_w, lp->fc2_b, Nm, 4 * C, C);
        if (drop) apply_keep(la->fc2, la->keep_fc2, (size_t)Nm * C, c->dropout);
        residual_forward(xout, x2m, la->fc2, gate2, 6 * C, rowm, Nm, C);
    }
    int Nf = b->out_rows ? b->n_out : N; /* rows of xf: all, or the selected ones in order */
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->xf, m->p.lnf_w, Nf, C);
    lin_fwd(m, a->logits, a->lnf, m->p.out_w, m->p.out_b, Nf, C, c->vocab);
    a->dropped = drop;
    *logits = a->logits;
    return HDLM_OK;
}

void model_backward(model *m, const model_batch *b, const float *dlogits) {
    HDLM_ASSERT(m->grads && m->acts && m->acts->cap_n >= (size_t)b->B * b->T);
    model_acts *a = m->acts;
    const model_config *c = &m->cfg;
    model_params *g = &m->g;
    int B = b->B, T = b->T, N = B * T, C = c->d_model, H = c->n_head, hd = C / H;
    size_t NC = (size_t)N * C;

    /* dx holds d(loss)/d(residual stream) as it flows down; above the last attention it covers
     * the Nf rows of xf: every row, or the selected rows in their order (in dxo) */
    int sel = b->out_rows != NULL, Nf = sel ? b->n_out : N;
    float *dxf = sel ? a->dxo : a->dx;
    lin_bwd(m, 1, a->dlnf, g->out_w, g->out_b, dlogits, a->lnf, m->p.out_w, Nf, C, c->vocab);
    zero_floats(dxf, (size_t)Nf * C);
    layernorm_backward(dxf, g->lnf_w, a->dlnf, a->xf, m->p.lnf_w, a->lnf_mean, a->lnf_rstd, Nf, C);
    int U = c->cond ? a->nu : 0;
    const int32_t *crow = c->cond ? a->crow : NULL;
    if (c->cond) zero_floats(a->dc, (size_t)U * MODEL_COND_DIM);

    for (int l = c->n_layer - 1; l >= 0; l--) {
        const layer_params *lp = &m->p.layers[l];
        layer_params *lg = &g->layers[l];
        layer_acts *la = &a->layers[l];
        const float *scale1 = NULL, *gate1 = NULL, *scale2 = NULL, *gate2 = NULL;
        float *dshift1 = NULL, *dscale1 = NULL, *dgate1 = NULL;
        float *dshift2 = NULL, *dscale2 = NULL, *dgate2 = NULL;
        if (c->cond) {
            scale1 = la->ada + C, gate1 = la->ada + 2 * C;
            scale2 = la->ada + 4 * C, gate2 = la->ada + 5 * C;
            zero_floats(a->dada, (size_t)U * 6 * C);
            dshift1 = a->dada, dscale1 = a->dada + C, dgate1 = a->dada + 2 * C;
            dshift2 = a->dada + 3 * C, dscale2 = a->dada + 4 * C, dgate2 = a->dada + 5 * C;
        }
        /* MLP branch: x_out = x2 + gate2*fc2 ; dx (=d x_out) also flows straight to x2. In the
         * last block with selected rows it runs on those Nm rows (dxo, x2o, crowo). */
        int lastsel = sel && l + 1 == c->n_layer, Nm = lastsel ? Nf : N;
        size_t NmC = (size_t)Nm * C;
        float *dxm = lastsel ? a->dxo : a->dx;
        const float *x2m = lastsel ? a->x2o : la->x2;
        const int32_t *rowm = lastsel && crow ? a->crowo : crow;
        float *dfc2 = a->dm; /* (Nm, C) */
        zero_floats(dfc2, NmC);
        residual_backward(NULL, dfc2, dgate2, dxm, la->fc2, gate2, 6 * C, rowm, Nm, C);
        if (a->dropped) apply_keep(dfc2, la->keep_fc2, NmC, c->dropout);
        /* the *_into / *_inplace forms overwrite their output: no zeroing pass, no read of C */
        lin_bwd(m, 1, a->dgl, lg->fc2_w, lg->fc2_b, dfc2, la->gl, lp->fc2_w, Nm, 4 * C, C);
        gelu_backward_inplace(a->dgl, la->fc1, (int64_t)Nm * 4 * C); /* dgl becomes d fc1 */
        float *dm2 = a->dm;
        lin_bwd(m, 1, dm2, lg->fc1_w, lg->fc1_b, a->dgl, la->m2, lp->fc1_w, Nm, C, 4 * C);
        float *dln2 = dm2;
        if (c->cond) {
            zero_floats(a->dln, NmC);
            modulate_backward(a->dln, dshift2, dscale2, dm2, la->ln2, scale2, 6 * C, rowm, Nm, C);
            dln2 = a->dln;
        }
        layernorm_backward(dxm, lg->ln2_w, dln2, x2m, lp->ln2_w, la->ln2_mean, la->ln2_rstd, Nm, C);
        if (lastsel) { /* back to every row: the unselected rows' x2 fed nothing after here */
            zero_floats(a->dx, NC);
            for (int i = 0; i < Nm; i++)
                memcpy(a->dx + (size_t)b->out_rows[i] * C, a->dxo + (size_t)i * C,
                       (size_t)C * sizeof(float));
        }
        /* attention branch: x2 = x + gate1*proj */
        float *dproj = a->dm;
        zero_floats(dproj, NC);
        residual_backward(NULL, dproj, dgate1, a->dx, la->proj, gate1, 6 * C, crow, N, C);
        if (a->dropped) apply_keep(dproj, la->keep_proj, NC, c->dropout);
        lin_bwd(m, 1, a->datty, lg->proj_w, NULL, dproj, la->atty, lp->proj_w, N, C, C);
        attention_backward_dropout(a->dqkv, a->dqkv + C, a->dqkv + 2 * C, a->datty, la->att,
                                   la->qkv, 3 * C, la->qkv + C, 3 * C, la->qkv + 2 * C, 3 * C,
                                   (int64_t)T * 3 * C, b->rows, B, T, T, C, H,
                                   a->dropped ? la->keep_att : NULL, c->dropout, 0);
        rope_backward(a->dqkv, 3 * C, b->pos, N, 2 * H, hd);
        float *dm1 = a->dm;
        lin_bwd(m, 1, dm1, lg->qkv_w, NULL, a->dqkv, la->m1, lp->qkv_w, N, C, 3 * C);
        float *dln1 = dm1;
        if (c->cond) {
            zero_floats(a->dln, NC);
            modulate_backward(a->dln, dshift1, dscale1, dm1, la->ln1, scale1, 6 * C, crow, N, C);
            dln1 = a->dln;
            lin_bwd(m, 0, a->dc, lg->ada_w, lg->ada_b, a->dada, a->cvec, lp->ada_w, U,
                    MODEL_COND_DIM, 6 * C);
        }
        layernorm_backward(a->dx, lg->ln1_w, dln1, la->x, lp->ln1_w, la->ln1_mean, la->ln1_rstd, N,
                           C);
    }
    if (c->cond && c->mask_id >= 0)
        embedding_mix_backward(g->wte, a->dx, b->tokens, a->mixw, c->mask_id, N, C);
    else
        embedding_backward(g->wte, a->dx, b->tokens, N, C);
    if (c->cond) {
        size_t NK = (size_t)U * MODEL_COND_DIM;
        zero_floats(a->dt2, NK);
        silu_backward(a->dt2, a->t2, a->dc, (int64_t)NK);
        lin_bwd(m, 1, a->dt1, g->t_w2, g->t_b2, a->dt2, a->t1s, m->p.t_w2, U, MODEL_COND_DIM,
                MODEL_COND_DIM);
        zero_floats(a->dt2, NK);
        silu_backward(a->dt2, a->t1, a->dt1, (int64_t)NK);
        lin_bwd(m, 0, NULL, g->t_w1, g->t_b1, a->dt2, a->tf, m->p.t_w1, U, MODEL_TIME_DIM,
                MODEL_COND_DIM);
    }
}

/* ---- KV cache ------------------------------------------------------------------------------ */

int kv_cache_init(kv_cache *c, const model *m, int B, int Tmax, error *e) {
    memset(c, 0, sizeof *c);
    if (B < 1 || Tmax < 1)
        return error_set(e, HDLM_EINVAL, "kv cache: batch %d and length %d must be positive", B,
                         Tmax);
    c->n_layer = m->cfg.n_layer;
    c->B = B;
    c->Tmax = Tmax;
    c->C = m->cfg.d_model;
    size_t n = (size_t)c->n_layer * B * Tmax * c->C;
    c->k = mem_alloc_large(n * sizeof(float));
    c->v = mem_alloc_large(n * sizeof(float));
    if (!c->k || !c->v) {
        kv_cache_free(c);
        return error_set(e, HDLM_ENOMEM, "kv cache: cannot allocate %.1f MiB", n * 8.0 / 1048576);
    }
    return HDLM_OK;
}

void kv_cache_free(kv_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->att);
    memset(c, 0, sizeof *c);
}

int model_forward_cached(model *m, kv_cache *kc, const model_batch *b, int commit, float **logits,
                         error *e) {
    return model_forward_cached_n(m, kc, b, commit ? b->T : 0, logits, e);
}

int model_forward_cached_n(model *m, kv_cache *kc, const model_batch *b, int n_commit,
                           float **logits, error *e) {
    if (n_commit < 0 || n_commit > b->T)
        return error_set(e, HDLM_EINVAL, "kv cache: commit %d of %d positions", n_commit, b->T);
    int rc = check_batch(m, b, e);
    if (rc != HDLM_OK) return rc;
    if (b->out_rows)
        return error_set(e, HDLM_EINVAL, "kv cache: output row selection is not supported");
    if (b->B != kc->B)
        return error_set(e, HDLM_EINVAL, "kv cache: batch %d, cache built for %d", b->B, kc->B);
    if (kc->len + b->T > kc->Tmax)
        return error_set(e, HDLM_EINVAL, "kv cache: %d cached + %d new positions exceed %d",
                         kc->len, b->T, kc->Tmax);
    /* inference reuses the layer-0 activation buffers for every layer (nothing is saved) */
    rc = acts_ensure(m, b->B, b->T, e);
    if (rc == HDLM_OK && m->bf16) rc = bf16_prepare(m, (size_t)b->B * b->T, e);
    if (rc != HDLM_OK) return rc;
    size_t need = (size_t)b->B * m->cfg.n_head * b->T * (kc->len + b->T);
    if (need > kc->att_cap) {
        float *att = realloc(kc->att, need * sizeof(float));
        if (!att) return error_set(e, HDLM_ENOMEM, "kv cache: out of memory");
        kc->att = att;
        kc->att_cap = need;
    }
    model_acts *a = m->acts;
    const model_config *c = &m->cfg;
    int B = b->B, T = b->T, N = B * T, C = c->d_model, H = c->n_head, hd = C / H;
    int Tk = kc->len + T;
    layer_acts *la = &a->layers[0];
    float *x = a->xf; /* residual stream, updated in place */
    if (c->cond) cond_forward(m, a, b->sigma, N);
    const int32_t *crow = c->cond ? a->crow : NULL;
    embed_forward(m, a, x, b->tokens, N);
    for (int l = 0; l < c->n_layer; l++) {
        const layer_params *lp = &m->p.layers[l];
        const float *shift1 = NULL, *scale1 = NULL, *gate1 = NULL;
        const float *shift2 = NULL, *scale2 = NULL, *gate2 = NULL;
        if (c->cond) {
            lin_fwd(m, la->ada, a->cvec, lp->ada_w, lp->ada_b, a->nu, MODEL_COND_DIM, 6 * C);
            shift1 = la->ada, scale1 = la->ada + C, gate1 = la->ada + 2 * C;
            shift2 = la->ada + 3 * C, scale2 = la->ada + 4 * C, gate2 = la->ada + 5 * C;
        }
        layernorm_forward(la->ln1, la->ln1_mean, la->ln1_rstd, x, lp->ln1_w, N, C);
        if (c->cond) modulate_forward(la->m1, la->ln1, shift1, scale1, 6 * C, crow, N, C);
        lin_fwd(m, la->qkv, la->m1, lp->qkv_w, NULL, N, C, 3 * C);
        rope_forward(la->qkv, 3 * C, b->pos, N, 2 * H, hd);
        /* append this step's keys/values after the committed ones */
        size_t lay = (size_t)l * B * kc->Tmax * C;
        for (int bb = 0; bb < B; bb++)
            for (int t = 0; t < T; t++) {
                const float *src = la->qkv + ((size_t)bb * T + t) * 3 * C;
                size_t dst = lay + ((size_t)bb * kc->Tmax + kc->len + t) * C;
                memcpy(kc->k + dst, src + C, (size_t)C * sizeof(float));
                memcpy(kc->v + dst, src + 2 * C, (size_t)C * sizeof(float));
            }
        attention_forward(la->atty, kc->att, la->qkv, 3 * C, kc->k + lay, C, kc->v + lay, C,
                          (int64_t)kc->Tmax * C, b->rows, B, T, Tk, C, H);
        lin_fwd(m, la->proj, la->atty, lp->proj_w, NULL, N, C, C);
        residual_forward(x, x, la->proj, gate1, 6 * C, crow, N, C);
        layernorm_forward(la->ln2, la->ln2_mean, la->ln2_rstd, x, lp->ln2_w, N, C);
        if (c->cond) modulate_forward(la->m2, la->ln2, shift2, scale2, 6 * C, crow, N, C);
        lin_fwd(m, la->fc1, la->m2, lp->fc1_w, lp->fc1_b, N, C, 4 * C);
        gelu_forward(la->gl, la->fc1, (int64_t)N * 4 * C);
        lin_fwd(m, la->fc2, la->gl, lp->fc2_w, lp->fc2_b, N, 4 * C, C);
        residual_forward(x, x, la->fc2, gate2, 6 * C, crow, N, C);
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, x, m->p.lnf_w, N, C);
    lin_fwd(m, a->logits, a->lnf, m->p.out_w, m->p.out_b, N, C, c->vocab);
    kc->len += n_commit;
    *logits = a->logits;
    return HDLM_OK;
}
