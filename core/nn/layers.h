/* Numerical kernels of the DDiT transformer (docs/method.md "The model"), llm.c style:
 * `<op>_forward` /
 * `<op>_backward` pairs over flat float32 arrays. Every backward ACCUMULATES (+=) into parameter
 * and input gradients (callers zero gradient buffers once); the exceptions, rope_backward and the
 * in-place transforms, say so. Kernels parallelise internally with OpenMP; do not call them from
 * inside a parallel region. The model layout (which buffer is which) belongs to the caller, not to
 * this file.
 *
 * Dimension letters: B batch, T query positions, Tk key positions, N rows (tokens, usually B*T),
 * C channels, OC output channels, H heads, hd = C/H head size, V classes (vocabulary). */
#ifndef HDLM_LAYERS_H
#define HDLM_LAYERS_H

#include <stdint.h>

/* ---- linear ---------------------------------------------------------------------------------- */

/* out(N,OC) = inp(N,C) · w(OC,C)^T + bias(OC) (bias may be NULL) */
/* At most n threads for the few-row products (N <= LINEAR_GEMV_MAX_N, i.e. decoding); 0 = as many
 * as OpenMP has. A row's value does not depend on which thread computes it, so this changes speed,
 * never results. The sampling loop lowers it while the machine is crowded (base/threads.h). */
void linear_set_gemv_threads(int n);
void linear_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C,
                    int OC);
/* dinp(N,C) += dout·w (dinp may be NULL); dw(OC,C) += dout^T·inp; dbias(OC) += Σ_n dout (or NULL)
 */
void linear_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC);
/* As linear_backward, but dinp (N,C) is overwritten instead of accumulated (dw, dbias still
 * accumulate): spares the caller a zeroing pass and the product a read of dinp. */
void linear_backward_into(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                          const float *w, int N, int C, int OC);
/* The same in bf16 (precision "bf16"): w16 (OC,C) is the bf16 copy of w; inp (and in the
 * backward dout) are rounded to bf16 into the scratch buffers, products accumulate in float32.
 * scr holds N*C values; scr_a and scr_b N*max(C,OC) each. dinp_into: overwrite dinp instead of
 * accumulating. Needs bf16_check() == HDLM_OK (tensor/bf16.h). */
void linear_forward_bf16(float *out, const float *inp, const uint16_t *w16, const float *bias,
                         int N, int C, int OC, uint16_t *scr);
void linear_backward_bf16(float *dinp, int dinp_into, float *dw, float *dbias, const float *dout,
                          const float *inp, const uint16_t *w16, int N, int C, int OC,
                          uint16_t *scr_a, uint16_t *scr_b);
/* Plain loops in double, for tests. */
void linear_forward_naive(float *out, const float *inp, const float *w, const float *bias, int N,
                          int C, int OC);

/* ---- embeddings ------------------------------------------------------------------------------ */

/* out(N,C) = wte(V,C)[tok(N)] */
void embedding_forward(float *out, const int32_t *tok, const float *wte, int N, int C);
void embedding_backward(float *dwte, const float *dout, const int32_t *tok, int N, int C);
/* RADD-style mix (docs/method.md "The model" step 1): out_n = w_n*E[tok_n] + (1-w_n)*E[mask_id]. No
 * gradient to w.
 */
void embedding_mix_forward(float *out, const int32_t *tok, const float *w, const float *wte,
                           int mask_id, int N, int C);
void embedding_mix_backward(float *dwte, const float *dout, const int32_t *tok, const float *w,
                            int mask_id, int N, int C);

/* ---- normalisation and adaLN ----------------------------------------------------------------- */

/* LayerNorm over C with weight, no bias, eps 1e-5, biased variance; saves mean, rstd (N). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       int N, int C);
void layernorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C);
/* adaLN modulation: out = inp*(1+scale)+shift. Token n uses row r = row[n] (row NULL: r = n) of
 * shift/scale, rows of stride ld (slices of an (R,6C) buffer); many tokens may share a row (one row
 * per distinct σ), and the backward sums their gradients into it. out may equal inp. */
void modulate_forward(float *out, const float *inp, const float *shift, const float *scale, int ld,
                      const int32_t *row, int N, int C);
void modulate_backward(float *dinp, float *dshift, float *dscale, const float *dout,
                       const float *inp, const float *scale, int ld, const int32_t *row, int N,
                       int C);
/* out = res + gate*x (gate row row[n] as above; gate NULL means 1). out may equal res. */
void residual_forward(float *out, const float *res, const float *x, const float *gate, int ld,
                      const int32_t *row, int N, int C);
/* dres += dout (dres NULL: skipped, for callers that keep dout as the residual gradient);
 * dx += gate*dout; dgate += dout*x (dgate NULL or gate NULL: skipped). */
void residual_backward(float *dres, float *dx, float *dgate, const float *dout, const float *x,
                       const float *gate, int ld, const int32_t *row, int N, int C);

/* ---- activations (flat arrays of n elements; out may equal inp) ------------------------------ */

/* GELU, tanh approximation, with a vectorised tanh (abs error < 1e-6 vs libm). */
void gelu_forward(float *out, const float *inp, int64_t n);
void gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n);
/* d = GELU'(inp)·d in place (the gradient buffer becomes the input gradient). */
void gelu_backward_inplace(float *d, const float *inp, int64_t n);
void silu_forward(float *out, const float *inp, int64_t n);
void silu_backward(float *dinp, const float *inp, const float *dout, int64_t n);

/* ---- positions and time ---------------------------------------------------------------------- */

/* Sinusoidal features of sigma (N) -> out (N, dim): [cos(σω_k) k<dim/2, sin(σω_k) k<dim/2],
 * ω_k = exp(-ln(10000)·k/(dim/2)); odd dim leaves a zero last column. No gradient. */
void timestep_features(float *out, const float *sigma, int N, int dim);
/* Rotary, NeoX half-split: for each row n (position pos[n]) and head h, x' = x*cos + rot(x)*sin,
 * rot(x) = concat(-x[hd/2:], x[:hd/2]), theta_{p,k} = p*10000^(-2k/hd). In place on rows of stride
 * ld; x points at the first head, H heads of hd each, contiguous (pass 2H for q and k together
 * when k follows q, as in a (N,3C) qkv buffer). hd even. */
void rope_forward(float *x, int ld, const int32_t *pos, int N, int H, int hd);
/* In place: applies the inverse rotation to the gradient (dx := R^T dx, NOT accumulated). */
void rope_backward(float *dx, int ld, const int32_t *pos, int N, int H, int hd);

/* ---- attention with structured masks --------------------------------------------------------- */

/* Which keys a query row may attend to: [lo1,hi1) ∪ [lo2,hi2) in key index space (empty when
 * lo>=hi; non-empty ranges must lie in [0,Tk); they may overlap). A row with both ranges empty is
 * "fully blocked": per docs/method.md "Attention masks" its scores are replaced by zeros before the
 * softmax, i.e. it attends UNIFORMLY to all Tk keys (including blocked ones); it passes no gradient
 * to q/k. */
typedef struct attn_row {
    int32_t lo1, hi1, lo2, hi2;
} attn_row;

/* out(B,T,C) heads concatenated head-major; att(B,H,T,Tk) saves the probabilities for backward
 * (0 on blocked keys). q of (b,t) head h at q + (b*T+t)*ldq + h*hd; key j of batch b head h at
 * k + b*kv_bstride + j*ldk + h*hd (v likewise with ldv). rows (B,T). scale = 1/sqrt(hd).
 * kv_bstride may be 0 (all batch rows share one K/V). */
void attention_forward(float *out, float *att, const float *q, int ldq, const float *k, int ldk,
                       const float *v, int ldv, int64_t kv_bstride, const attn_row *rows, int B,
                       int T, int Tk, int C, int H);
/* dq/dk/dv have the layouts/strides of q/k/v and are accumulated (+=); any may be NULL. */
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att,
                        const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                        int64_t kv_bstride, const attn_row *rows, int B, int T, int Tk, int C,
                        int H);
/* The same with dropout on the attention probabilities (training): keep (B,H,T,Tk) is 1 where a
 * probability is kept (scaled by 1/(1-pdrop)), 0 where dropped; att still saves the probabilities
 * before dropout. keep NULL = no dropout. In the backward, accumulate = 0 overwrites the head
 * columns of dq/dk/dv instead of adding (every row of them is written: no zeroing needed). */
void attention_forward_dropout(float *out, float *att, const float *q, int ldq, const float *k,
                               int ldk, const float *v, int ldv, int64_t kv_bstride,
                               const attn_row *rows, int B, int T, int Tk, int C, int H,
                               const uint8_t *keep, float pdrop);
void attention_backward_dropout(float *dq, float *dk, float *dv, const float *dout,
                                const float *att, const float *q, int ldq, const float *k, int ldk,
                                const float *v, int ldv, int64_t kv_bstride, const attn_row *rows,
                                int B, int T, int Tk, int C, int H, const uint8_t *keep,
                                float pdrop, int accumulate);
/* Plain loops in double with the same semantics, for tests. */
void attention_forward_naive(float *out, float *att, const float *q, int ldq, const float *k,
                             int ldk, const float *v, int ldv, int64_t kv_bstride,
                             const attn_row *rows, int B, int T, int Tk, int C, int H);

/* ---- loss ------------------------------------------------------------------------------------ */

/* loss(N) = logsumexp(logits_n) - logits_n[target_n] over V classes (float, max-subtracted);
 * rows with target < 0 get loss 0. */
void crossentropy_forward(float *loss, const float *logits, const int32_t *target, int N, int V);
/* dlogits(N,V) += (softmax - onehot) * dloss[n] (dloss NULL = all 1); rows with target < 0 get
 * no gradient. */
void crossentropy_backward(float *dlogits, const float *logits, const int32_t *target,
                           const float *dloss, int N, int V);
/* One row: returns logsumexp(x) - x[y] in double (vectorised double exps, within a few ulp, summed
 * in double). With d, also writes d(V) = g·(softmax(x) - onehot(y)) in float (one exp per logit).
 * What the plugin host offers noise processes as host->softmax_ce. */
double crossentropy_row(float *d, const float *x, int V, int y, double g);

#endif
