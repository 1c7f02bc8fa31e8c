/* Training loop and checkpoints (see train.h). Each optimizer step draws `accum` micro-batches;
 * gradients are summed over them (and over the processes) and every loss term is normalised by
 * the step's global count (tokens, or sequences for the method's per-sequence plugin losses),
 * so accum x batch b equals one batch of accum*b, and N processes one, up to float summation
 * order. */
#include "train.h"

#include "base/json.h"
#include "base/log.h"
#include "base/progress.h"
#include "data/batch.h"
#include "dist/dist.h"
#include "nn/mask.h"
#include "nn/safetensors.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int train_objective_from_name(const char *s) {
    if (!strcmp(s, "ar")) return OBJ_AR;
    if (!strcmp(s, "mask")) return OBJ_MASK;
    if (!strcmp(s, "method")) return OBJ_METHOD;
    return 0;
}

const char *train_objective_name(int obj) {
    return obj == OBJ_AR ? "ar" : obj == OBJ_MASK ? "mask" : obj == OBJ_METHOD ? "method" : "?";
}

void trainer_free(trainer *t) {
    if (!t) return;
    model_free(&t->m);
    optim_free(&t->opt);
    method_free(&t->meth);
    free(t->window);
    free(t->inp);
    free(t->tgt);
    free(t->orow);
    free(t->pos);
    free(t->sigma);
    free(t->wloss);
    free(t->loss);
    free(t->dlogits);
    free(t->rows);
    free(t->streams);
    memset(t, 0, sizeof *t);
}

int trainer_init(trainer *t, const train_config *cfg, const corpus *data, error *e) {
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->data = data;
    train_config *c = &t->cfg;
    if (!c->objective) return error_set(e, HDLM_EINVAL, "train: objective must be 'ar' or 'mask'");
    if (c->batch < 1 || c->accum < 1 || c->steps < 1)
        return error_set(e, HDLM_EINVAL,
                         "train: batch (%d), accum (%d) and steps (%lld) must be positive",
                         c->batch, c->accum, (long long)c->steps);
    t->world = c->world_size > 0 ? c->world_size : dist_size();
    t->rank = c->world_size > 0 ? c->rank : dist_rank();
    if (t->rank < 0 || t->rank >= t->world)
        return error_set(e, HDLM_EINVAL, "train: rank %d outside 0..%d", t->rank, t->world - 1);
    if (c->batch < t->world)
        return error_set(e, HDLM_EINVAL,
                         "train: batch %d is smaller than the %d processes; each needs at least "
                         "one sequence of every micro-batch (raise batch, use fewer processes)",
                         c->batch, t->world);
    t->b_lo = (int)((int64_t)t->rank * c->batch / t->world);
    t->b_hi = (int)((int64_t)(t->rank + 1) * c->batch / t->world);
    int Bl = t->b_hi - t->b_lo; /* this rank's sequences of each micro-batch */
    int T = c->model.seq_len;
    if (c->objective == OBJ_METHOD) {
        if (!c->sched || !c->noise)
            return error_set(e, HDLM_EINVAL,
                             "train: the method objective needs a noise process "
                             "and a schedule");
        int rc = method_init(&t->meth, &c->method, c->sched, c->noise_self, c->noise,
                             data->tok.vocab, T, e);
        if (rc != HDLM_OK) return rc;
        c->model.vocab = t->meth.Vp;
        c->model.mask_id = t->meth.Vp > t->meth.V ? t->meth.V : -1;
        c->model.cond = t->meth.conditioned;
    } else {
        c->model.vocab = data->tok.vocab + (c->objective == OBJ_MASK ? 1 : 0);
        c->model.mask_id = c->objective == OBJ_MASK ? data->tok.vocab : -1;
    }
    if (model_config_check(&c->model, e) != HDLM_OK) {
        method_free(&t->meth);
        return e->code;
    }
    int TM = c->objective == OBJ_METHOD ? t->meth.T : T; /* positions the model sees */
    int64_t need = T + (c->objective == OBJ_AR ? 1 : 0);
    if (data->n_train < need)
        return error_set(e, HDLM_EINVAL,
                         "train: the train split has %lld tokens, fewer than one window of %lld "
                         "(seq_len %d); use a shorter seq_len or a bigger corpus",
                         (long long)data->n_train, (long long)need, T);
    if (c->eval_every > 0 && data->n_valid < need)
        return error_set(e, HDLM_EINVAL,
                         "train: the valid split has %lld tokens, fewer than one window of %lld; "
                         "set eval_every = 0 or prepare with a larger valid fraction",
                         (long long)data->n_valid, (long long)need);
    /* refuse before allocating what the machine cannot hold */
    double C = c->model.d_model, V = c->model.vocab, N = (double)Bl * TM;
    double act_floats =
        c->model.n_layer * (N * C * 20 + (double)Bl * c->model.n_head * TM * TM) + N * V * 2;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    double mem = (double)pages * (double)psize;
    /* parameters, gradients, two AdamW moments and the EMA: five copies */
    double param_floats = c->model.n_layer * (12 * C * C + 9 * C) + 2 * V * C + V;
    double need_bytes = (act_floats + 5 * param_floats) * 4;
    if (pages > 0 && need_bytes > 0.8 * mem) {
        method_free(&t->meth);
        return error_set(e, HDLM_ENOMEM,
                         "train: d_model %d x %d layers with batch %d x seq_len %d needs about "
                         "%.1f GiB (%.1f GiB of weights and optimizer state, the rest "
                         "activations), this machine has %.1f GiB; lower batch (use accum), "
                         "seq_len or the model size",
                         c->model.d_model, c->model.n_layer, Bl, T, need_bytes / 1073741824.0,
                         5 * param_floats * 4 / 1073741824.0, mem / 1073741824.0);
    }

    if (model_init(&t->m, &c->model, c->seed, e) != HDLM_OK) {
        method_free(&t->meth);
        return e->code;
    }
    if (model_alloc_grads(&t->m, e) != HDLM_OK) goto fail;
    if (c->precision != TRAIN_F32 && c->precision != TRAIN_BF16) {
        error_set(e, HDLM_EINVAL, "train: precision %d, expected f32 or bf16", c->precision);
        goto fail;
    }
    if (model_set_precision(&t->m, c->precision == TRAIN_BF16, "train: precision \"bf16\"", e) !=
        HDLM_OK)
        goto fail;
    if (optim_init(&t->opt, &c->opt, &t->m, e) != HDLM_OK) goto fail;
    rng base;
    rng_init(&base, c->seed);
    t->data_rng = rng_split(&base, 1001);
    t->noise_rng = rng_split(&base, 1002);
    t->dropout_rng = rng_split(&base, 1003);
    t->T = T;
    size_t BT = (size_t)Bl * TM;
    t->window = malloc((size_t)Bl * (T + 1) * sizeof *t->window);
    t->inp = malloc(BT * sizeof *t->inp);
    t->tgt = malloc(BT * sizeof *t->tgt);
    t->orow = malloc(BT * sizeof *t->orow);
    t->pos = malloc(BT * sizeof *t->pos);
    t->sigma = calloc(BT, sizeof *t->sigma);
    t->wloss = malloc(BT * sizeof *t->wloss);
    t->loss = malloc(BT * sizeof *t->loss);
    t->dlogits = malloc(BT * (size_t)c->model.vocab * sizeof *t->dlogits);
    t->rows = malloc(BT * sizeof *t->rows);
    t->streams = malloc((size_t)Bl * sizeof *t->streams);
    if (!t->window || !t->inp || !t->tgt || !t->orow || !t->pos || !t->sigma || !t->wloss ||
        !t->loss || !t->dlogits || !t->rows || !t->streams) {
        error_set(e, HDLM_ENOMEM, "train: out of memory for batch buffers");
        goto fail;
    }
    for (int b = 0; b < Bl; b++)
        for (int i = 0; i < T; i++)
            t->pos[(size_t)b * T + i] = i;
    for (int b = 0; b < Bl; b++) {
        if (c->objective == OBJ_AR)
            mask_rows_causal(t->rows + (size_t)b * T, T);
        else
            mask_rows_full(t->rows + (size_t)b * T, T);
    }
    return HDLM_OK;
fail:
    trainer_free(t);
    return e->code;
}

/* The draws of one micro-batch: the step's (or evaluation batch's) streams, split by global
 * sequence index below. */
typedef struct draws {
    rng data, noise; /* per step: rng_split(root, step) */
    int64_t g0;      /* global index of the micro-batch's first sequence within the step */
    int64_t G;       /* sequences of the step (accum * batch): the low-discrepancy strata */
    double u0;       /* the step's shared low-discrepancy offset */
    rng *dropout;    /* NULL = no dropout */
} draws;

static draws step_draws(const rng *data_root, const rng *noise_root, int64_t step, int64_t G) {
    draws d = {.G = G};
    d.data = rng_split(data_root, (uint64_t)step);
    d.noise = rng_split(noise_root, (uint64_t)step);
    rng u = rng_split(&d.noise, UINT64_MAX); /* no sequence index reaches it */
    d.u0 = rng_uniform(&u);
    return d;
}

/* Fills inp/tgt/wloss/sigma for this rank's sequences of a micro-batch already in t->window. The
 * loss of the micro-batch is Σ wloss·CE; weights already carry the 1/(tokens of the whole step). */
static void build_inputs(trainer *t, int B, double norm, const draws *d) {
    int T = t->T, mask_id = t->cfg.model.mask_id;
    for (int b = 0; b < B; b++) {
        const int32_t *w = t->window + (size_t)b * (T + 1);
        int32_t *in = t->inp + (size_t)b * T, *tg = t->tgt + (size_t)b * T;
        float *wl = t->wloss + (size_t)b * T, *sg = t->sigma + (size_t)b * T;
        if (t->cfg.objective == OBJ_AR) {
            for (int i = 0; i < T; i++) {
                in[i] = w[i];
                tg[i] = w[i + 1];
                wl[i] = (float)norm;
            }
        } else {
            rng nr = rng_split(&d->noise, (uint64_t)(d->g0 + t->b_lo + b));
            double tt = (1.0 - 1e-3) * rng_uniform(&nr) + 1e-3;
            float s = (float)(-log1p(-(1.0 - 5e-3) * tt));
            for (int i = 0; i < T; i++) {
                int masked = rng_uniform(&nr) < tt;
                in[i] = masked ? mask_id : w[i];
                tg[i] = masked ? w[i] : -1;
                wl[i] = masked ? (float)(norm / tt) : 0.0f;
                sg[i] = s;
            }
        }
    }
}

/* This rank's sequences [b_lo, b_hi) of one micro-batch: windows, inputs, forward, loss (added to
 * *loss_sum) and, when backward, gradients added to the model's. norm = 1/(tokens of the step). */
static int micro_batch(trainer *t, const int32_t *tokens, int64_t n, const draws *d, double norm,
                       int backward, double *loss_sum, error *e) {
    int B = t->b_hi - t->b_lo, T = t->T, V = t->cfg.model.vocab;
    if (t->cfg.objective == OBJ_METHOD) {
        method *me = &t->meth;
        for (int b = 0; b < B; b++) {
            uint64_t g = (uint64_t)(d->g0 + t->b_lo + b);
            rng dr = rng_split(&d->data, g);
            if (batch_draw(tokens, n, 1, T, &dr, t->window + (size_t)b * T, e) != HDLM_OK)
                return e->code;
            t->streams[b] = rng_split(&d->noise, g);
        }
        if (method_prepare(me, t->window, B, t->streams, d->u0, d->g0 + t->b_lo, d->G, e) !=
            HDLM_OK)
            return e->code;
        model_batch mb = {B,
                          me->T,
                          me->xt,
                          me->pos,
                          me->conditioned ? me->sigma : NULL,
                          me->rows,
                          backward && t->cfg.model.dropout > 0 ? d->dropout : NULL,
                          NULL,
                          0};
        float *logits;
        if (model_forward(&t->m, &mb, &logits, e) != HDLM_OK) return e->code;
        /* the plugin's loss of a sequence is a per-sequence mean; norm is 1/(tokens of the
         * step), so norm * T is 1/(sequences of the step) */
        double scale = norm * T, total;
        if (method_loss(me, B, logits, backward ? t->dlogits : NULL, scale, &total, e) != HDLM_OK)
            return e->code;
        *loss_sum += total;
        if (backward) model_backward(&t->m, &mb, t->dlogits);
        return HDLM_OK;
    }
    /* windows of T+1 tokens so the AR objective has its shifted targets (always: a split of
     * exactly T tokens must be refused for AR, not read one stale target past the window);
     * the mask objective makes do with T */
    int64_t span = t->cfg.objective == OBJ_AR || T + 1 <= n ? T + 1 : T;
    for (int b = 0; b < B; b++) {
        rng dr = rng_split(&d->data, (uint64_t)(d->g0 + t->b_lo + b));
        if (batch_draw(tokens, n, 1, span, &dr, t->window + (size_t)b * (T + 1), e) != HDLM_OK)
            return e->code;
    }
    build_inputs(t, B, norm, d);
    size_t BT = (size_t)B * T;
    /* Positions without a target (the unmasked ones of the mask task) contribute nothing to the
     * loss: the output layer runs on the others only, and tgt/wloss are compacted to match. */
    int nout = 0;
    for (size_t i = 0; i < BT; i++)
        if (t->tgt[i] >= 0) {
            t->orow[nout] = (int32_t)i;
            t->tgt[nout] = t->tgt[i];
            t->wloss[nout] = t->wloss[i];
            nout++;
        }
    model_batch mb = {B,
                      T,
                      t->inp,
                      t->pos,
                      t->cfg.model.cond ? t->sigma : NULL,
                      t->rows,
                      backward && t->cfg.model.dropout > 0 ? d->dropout : NULL,
                      (size_t)nout < BT ? t->orow : NULL,
                      nout};
    float *logits;
    if (model_forward(&t->m, &mb, &logits, e) != HDLM_OK) return e->code;
    crossentropy_forward(t->loss, logits, t->tgt, nout, V);
    double s = 0;
    for (int i = 0; i < nout; i++)
        s += (double)t->wloss[i] * t->loss[i];
    *loss_sum += s;
    if (backward) {
        size_t nd = (size_t)nout * V; /* (nout, V): the largest buffer of a step; all cores */
        float *dl = t->dlogits;
#pragma omp parallel for schedule(static) if (nd >= (1u << 18))
        for (size_t i = 0; i < nd; i++)
            dl[i] = 0.0f;
        crossentropy_backward(t->dlogits, logits, t->tgt, t->wloss, nout, V);
        model_backward(&t->m, &mb, t->dlogits);
    }
    return HDLM_OK;
}

/* A run of several real processes (not a shard computed alone in a test). */
static int collective(const trainer *t) {
    return t->world > 1 && dist_size() == t->world;
}

int trainer_accumulate(trainer *t, double *loss, error *e) {
    const train_config *c = &t->cfg;
    model_zero_grad(&t->m);
    /* normalise by the tokens of the whole step so accumulation (and ranks) sum exactly */
    double norm = 1.0 / ((double)c->accum * c->batch * t->T);
    int64_t G = (int64_t)c->accum * c->batch;
    draws d = step_draws(&t->data_rng, &t->noise_rng, t->step, G);
    rng drop_step = rng_split(&t->dropout_rng, (uint64_t)t->step);
    *loss = 0;
    for (int a = 0; a < c->accum; a++) {
        d.g0 = (int64_t)a * c->batch;
        rng drop = rng_split(&drop_step, (uint64_t)a * (uint64_t)t->world + (uint64_t)t->rank);
        d.dropout = &drop;
        if (micro_batch(t, t->data->train, t->data->n_train, &d, norm, 1, loss, e) != HDLM_OK)
            return e->code;
    }
    return HDLM_OK;
}

int trainer_step(trainer *t, train_stats *st, error *e) {
    const train_config *c = &t->cfg;
    if (t->world > 1 && !collective(t))
        return error_set(e, HDLM_ESTATE,
                         "train: configured for %d processes, but %d are running (start it with "
                         "mpirun -np %d)",
                         t->world, dist_size(), t->world);
    double t0 = progress_now();
    double loss, comm = 0;
    if (trainer_accumulate(t, &loss, e) != HDLM_OK) return e->code;
    if (collective(t)) {
        /* one fused buffer: the gradient slab is contiguous; the loss rides in a second, tiny
         * reduction (double: it is also what every rank's non-finite guard decides on) */
        double c0 = progress_now();
        if (dist_allreduce_sum_float(t->m.grads, t->m.n_params, e) != HDLM_OK ||
            dist_allreduce_sum_double(&loss, 1, e) != HDLM_OK)
            return e->code;
        comm = progress_now() - c0;
    }
    double gn = optim_grad_norm(t->m.grads, t->m.n_params);
    if (!isfinite(loss) || !isfinite(gn))
        return error_set(e, HDLM_ESTATE,
                         "train: non-finite %s at step %lld (loss %g, grad norm %g); stopping, the "
                         "last checkpoint is kept",
                         isfinite(loss) ? "gradient" : "loss", (long long)t->step + 1, loss, gn);
    double lr;
    optim_step(&t->opt, t->m.params, t->m.grads, &gn, &lr);
    model_params_changed(&t->m); /* the bf16 copy: once per step */
    t->step++;
    double dt = progress_now() - t0;
    if (st) {
        st->step = t->step;
        st->loss = loss;
        st->lr = lr;
        st->grad_norm = gn;
        st->step_time = dt;
        st->tokens_per_s = (double)c->accum * c->batch * t->T / dt;
        st->comm_time = comm;
    }
    return HDLM_OK;
}

int trainer_swap_ema(trainer *t, error *e) {
    if (!t->opt.ema) return HDLM_OK;
    return model_swap_params(&t->m, &t->opt.ema, e);
}

int trainer_eval(trainer *t, int use_ema, double *loss, error *e) {
    const train_config *c = &t->cfg;
    int nb = c->eval_batches > 0 ? c->eval_batches : 4;
    rng droot, nroot;
    rng_init(&droot, 0x5eed0001u); /* the same windows and masks at every evaluation */
    rng_init(&nroot, 0x5eed0002u);
    if (use_ema && trainer_swap_ema(t, e) != HDLM_OK) return e->code;
    double sum = 0;
    int rc = HDLM_OK;
    for (int i = 0; i < nb && rc == HDLM_OK; i++) {
        draws d = step_draws(&droot, &nroot, i, c->batch);
        rc = micro_batch(t, t->data->valid, t->data->n_valid, &d,
                         1.0 / ((double)nb * c->batch * t->T), 0, &sum, e);
    }
    if (use_ema && trainer_swap_ema(t, rc == HDLM_OK ? e : NULL) != HDLM_OK && rc == HDLM_OK)
        rc = e->code;
    /* every rank reaches the reduction, also after a local failure (counted in v[1]), so nobody
     * waits forever and all ranks leave with a failure together */
    if (collective(t)) {
        double v[2] = {rc == HDLM_OK ? sum : 0.0, rc == HDLM_OK ? 0.0 : 1.0};
        error re = {0};
        if (dist_allreduce_sum_double(v, 2, &re) != HDLM_OK && rc == HDLM_OK) {
            *e = re;
            rc = re.code;
        }
        if (rc == HDLM_OK && v[1] > 0)
            rc =
                error_set(e, HDLM_ESTATE,
                          "train: evaluation failed on %g other rank(s); see their messages", v[1]);
        sum = v[0];
    }
    *loss = sum;
    return rc;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static int mkdir_p(const char *dir, error *e) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return error_set(e, HDLM_EIO, "%s: cannot create directory: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return error_set(e, HDLM_EIO, "%s: cannot create directory: %s", tmp, strerror(errno));
    return HDLM_OK;
}

static int write_weights(const model *m, const float *slab, const char *path, const char *const *mk,
                         const char *const *mv, int nm, error *e) {
    st_tensor *ts = calloc((size_t)m->n_tensors, sizeof *ts);
    if (!ts) return error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *mt = &m->tensors[i];
        snprintf(ts[i].name, sizeof ts[i].name, "%s", mt->name);
        ts[i].dtype = ST_F32;
        ts[i].ndim = mt->ndim;
        ts[i].shape[0] = mt->shape[0];
        ts[i].shape[1] = mt->shape[1];
        ts[i].data = slab + mt->offset;
        ts[i].nbytes = (int64_t)mt->size * 4;
    }
    int rc = st_write(path, ts, m->n_tensors, mk, mv, nm, e);
    free(ts);
    return rc;
}

static int read_weights(const model *m, float *slab, const char *path, error *e) {
    st_file *f = NULL;
    if (st_open(path, &f, e) != HDLM_OK) return e->code;
    int rc = HDLM_OK;
    for (int i = 0; i < m->n_tensors && rc == HDLM_OK; i++) {
        const model_tensor *mt = &m->tensors[i];
        rc = st_read_f32(f, mt->name, slab + mt->offset, mt->ndim, mt->shape, e);
    }
    st_close(f);
    return rc;
}

/* The config that must match for a resume (everything that shapes the computation). */
static void config_json(const trainer *t, json_buf *jb) {
    const train_config *c = &t->cfg;
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"objective\":\"%s\",\"vocab\":%d,\"d_model\":%d,\"n_layer\":%d,\"n_head\":%d,"
             "\"seq_len\":%d,\"cond\":%d,\"gamma\":%.9g,\"dropout\":%.9g,\"batch\":%d,\"accum\":%d,"
             "\"steps\":%lld,\"seed\":%llu,\"lr\":%.17g,\"min_lr\":%.17g,\"warmup\":%lld,"
             "\"schedule\":\"%s\",\"beta1\":%.17g,\"beta2\":%.17g,\"eps\":%.17g,"
             "\"weight_decay\":%.17g,\"clip\":%.17g,\"ema\":%.17g}",
             train_objective_name(c->objective), c->model.vocab, c->model.d_model, c->model.n_layer,
             c->model.n_head, c->model.seq_len, c->model.cond, (double)c->model.mix_gamma,
             (double)c->model.dropout, c->batch, c->accum, (long long)c->steps,
             (unsigned long long)c->seed, c->opt.lr, c->opt.min_lr, (long long)c->opt.warmup,
             lr_schedule_name(c->opt.schedule), c->opt.beta1, c->opt.beta2, c->opt.eps,
             c->opt.weight_decay, c->opt.clip, c->opt.ema);
    /* buf ends with '}': reopen it for the tokenizer (so a checkpoint decodes on its own) and,
     * for the method objective, the identity of its plugins and layout */
    buf[strlen(buf) - 1] = '\0';
    json_buf_raw(jb, buf);
    json_buf_raw(jb, ",\"tokenizer\":");
    json_buf_str(jb, tokenizer_label(&t->data->tok));
    json_buf_raw(jb, ",\"tokenizer_sha256\":");
    json_buf_str(jb, tokenizer_sha256(&t->data->tok));
    if (c->objective == OBJ_METHOD) {
        json_buf_raw(jb, ",\"method\":");
        json_buf_raw(jb, c->method_json[0] ? c->method_json : "null");
    }
    json_buf_raw(jb, "}");
}

static void rng_hex(const rng *r, char out[80]) {
    snprintf(out, 80, "%016llx%016llx%016llx%016llx", (unsigned long long)r->s[0],
             (unsigned long long)r->s[1], (unsigned long long)r->s[2], (unsigned long long)r->s[3]);
}

/* Exactly 64 hex digits, four 16-digit words. Checked digit by digit because strtoull alone
 * also takes leading blanks, a sign ("-000000000000001" is 2^64 - 1) and a "0x" prefix, so a
 * damaged sidecar would resume with rng roots it never saved. */
static int rng_parse(const char *s, rng *r) {
    if (!s || strlen(s) != 64) return -1;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)s[i])) return -1;
    for (int i = 0; i < 4; i++) {
        char part[17];
        memcpy(part, s + 16 * i, 16);
        part[16] = '\0';
        r->s[i] = strtoull(part, NULL, 16);
    }
    return 0;
}

/* A decimal integer in [0, INT64_MAX], nothing else. strtoll(at, NULL, 10) read "abc" as 0, "-5"
 * as -5 and clamped overflow, silently restarting or breaking Adam's bias correction. */
static int adam_t_parse(const char *s, int64_t *out) {
    if (!s || !*s) return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v > (INT64_MAX - (*p - '0')) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

int train_precision_from_name(const char *s) {
    if (!strcmp(s, "f32")) return TRAIN_F32;
    if (!strcmp(s, "bf16")) return TRAIN_BF16;
    return -1;
}

const char *train_precision_name(int p) {
    return p == TRAIN_BF16 ? "bf16" : "f32";
}

int trainer_state_meta_parse(const st_file *sf, train_state_meta *out, error *e) {
    const char *path = st_path(sf);
    static const char *const rng_keys[3] = {"data_rng", "noise_rng", "dropout_rng"};
    rng *rngs[3] = {&out->data_rng, &out->noise_rng, &out->dropout_rng};
    const char *at = st_meta(sf, "adam_t");
    if (adam_t_parse(at, &out->adam_t))
        return error_set(e, HDLM_EINVAL,
                         "%s: training state metadata 'adam_t' is '%.40s', expected a "
                         "non-negative decimal integer",
                         path, at ? at : "(missing)");
    for (int i = 0; i < 3; i++) {
        const char *v = st_meta(sf, rng_keys[i]);
        if (rng_parse(v, rngs[i]))
            return error_set(e, HDLM_EINVAL,
                             "%s: training state metadata '%s' is '%.80s', expected 64 hex digits",
                             path, rng_keys[i], v ? v : "(missing)");
    }
    return HDLM_OK;
}

/* Format 2: the rng entries are the roots of per-step streams (format 1 held cursors of
 * sequential streams, a layout of draws this trainer no longer has). */
#define STATE_FORMAT "hdlm-state-2"

static void ckpt_name(const trainer *t, int64_t step, const char *suffix, char *out, size_t cap) {
    snprintf(out, cap, "%s/step_%08lld%s", t->cfg.ckpt_dir, (long long)step, suffix);
}

/* The step of a checkpoint file name "step_<N><suffix>" (any of the three suffixes), or -1. */
static int64_t ckpt_file_step(const char *name) {
    static const char *const suffixes[] = {".safetensors", ".ema.safetensors",
                                           ".state.safetensors"};
    if (strncmp(name, "step_", 5)) return -1;
    const char *p = name + 5;
    int64_t s = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
        s = s * 10 + (*p - '0');
    if (!digits) return -1;
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (!strcmp(p, suffixes[i])) return s;
    return -1;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Keeps the newest keep_ckpts step checkpoints up to the one just written (which counts) and
 * deletes the older ones. The directory is scanned rather than the steps guessed from
 * ckpt_every, so an off-grid final step or a changed ckpt_every leaves nothing behind. Later
 * steps (left by a killed run past `latest`) stay: the run overwrites them when it gets there.
 * Temporary files of killed saves go too (stale_tmp). Best effort: a failure to list or delete
 * is not an error of the save. */
/* 1 when name is "<checkpoint file>.tmp.<pid>" or "latest.tmp.<pid>" of a writer that no longer
 * runs (killed during a save: the files are never read, and each is as big as the weights).
 * Files of a live process (this one, or another on this machine) are left alone. */
static int stale_tmp(const char *name) {
    const char *p = strstr(name, ".tmp.");
    if (!p) return 0;
    size_t stem = (size_t)(p - name);
    char base[256];
    if (stem >= sizeof base) return 0;
    memcpy(base, name, stem);
    base[stem] = '\0';
    if (strcmp(base, "latest") && ckpt_file_step(base) < 0) return 0;
    char *end;
    long pid = strtol(p + 5, &end, 10);
    if (end == p + 5 || *end || pid <= 0 || (pid_t)pid == getpid()) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void prune_checkpoints(const trainer *t) {
    int keep = t->cfg.keep_ckpts > 0 ? t->cfg.keep_ckpts : 2;
    DIR *d = opendir(t->cfg.ckpt_dir);
    if (!d) return;
    int64_t *steps = NULL; /* (n) distinct older steps */
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (stale_tmp(de->d_name)) {
            char p[1400];
            snprintf(p, sizeof p, "%s/%s", t->cfg.ckpt_dir, de->d_name);
            unlink(p);
            continue;
        }
        int64_t s = ckpt_file_step(de->d_name);
        if (s < 0 || s >= t->step) continue;
        size_t i = 0;
        while (i < n && steps[i] != s)
            i++;
        if (i < n) continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            int64_t *ns = realloc(steps, nc * sizeof *ns);
            if (!ns) break;
            steps = ns;
            cap = nc;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (n) qsort(steps, n, sizeof *steps, cmp_desc);
    for (size_t i = (size_t)(keep - 1); i < n; i++) {
        char p[1200];
        ckpt_name(t, steps[i], ".safetensors", p, sizeof p);
        unlink(p);
        ckpt_name(t, steps[i], ".ema.safetensors", p, sizeof p);
        unlink(p);
        ckpt_name(t, steps[i], ".state.safetensors", p, sizeof p);
        unlink(p);
    }
    free(steps);
}

int trainer_save(trainer *t, char *path, size_t cap, error *e) {
    if (!t->cfg.ckpt_dir[0]) return error_set(e, HDLM_EINVAL, "train: no checkpoint directory");
    if (mkdir_p(t->cfg.ckpt_dir, e) != HDLM_OK) return e->code;
    char wpath[1200], epath[1200], spath[1200], stepbuf[32], dr[80], nr[80], pr[80];
    ckpt_name(t, t->step, ".safetensors", wpath, sizeof wpath);
    ckpt_name(t, t->step, ".ema.safetensors", epath, sizeof epath);
    ckpt_name(t, t->step, ".state.safetensors", spath, sizeof spath);
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)t->step);
    rng_hex(&t->data_rng, dr);
    rng_hex(&t->noise_rng, nr);
    rng_hex(&t->dropout_rng, pr);
    json_buf cj = {0};
    config_json(t, &cj);
    /* everything that shapes the forward pass, so a reload computes the trained model's logits
     * whatever the tokenizer (the mask id of a random corpus is not derivable from its name) */
    const model_config *mc = &t->m.cfg;
    char fwd[256];
    snprintf(fwd, sizeof fwd,
             "{\"vocab\":%d,\"d_model\":%d,\"n_layer\":%d,\"n_head\":%d,\"seq_len\":%d,"
             "\"cond\":%d,\"mask_id\":%d,\"mix_gamma\":%.9g}",
             mc->vocab, mc->d_model, mc->n_layer, mc->n_head, mc->seq_len, mc->cond, mc->mask_id,
             (double)mc->mix_gamma);
    /* precision: how the products of the steps so far were computed (the weights are float32
     * either way; informational, a resume may change it) */
    const char *prec = train_precision_name(t->cfg.precision);
    const char *mk[] = {"format", "step", "config", "model", "precision"};
    const char *mv[] = {"hdlm-ddit-1", stepbuf, cj.data, fwd, prec};
    int rc = write_weights(&t->m, t->m.params, wpath, mk, mv, 5, e);
    if (rc == HDLM_OK && t->opt.ema) rc = write_weights(&t->m, t->opt.ema, epath, mk, mv, 5, e);
    if (rc == HDLM_OK) {
        char tbuf[32];
        snprintf(tbuf, sizeof tbuf, "%lld", (long long)t->opt.t);
        st_tensor ts[2] = {{.name = "adam.m", .dtype = ST_F32, .ndim = 1},
                           {.name = "adam.v", .dtype = ST_F32, .ndim = 1}};
        ts[0].shape[0] = ts[1].shape[0] = (int64_t)t->m.n_params;
        ts[0].data = t->opt.m;
        ts[1].data = t->opt.v;
        ts[0].nbytes = ts[1].nbytes = (int64_t)t->m.n_params * 4;
        const char *sk[] = {"format",   "step",      "config",      "adam_t",
                            "data_rng", "noise_rng", "dropout_rng", "precision"};
        const char *sv[] = {STATE_FORMAT, stepbuf, cj.data, tbuf, dr, nr, pr, prec};
        rc = st_write(spath, ts, 2, sk, sv, 8, e);
    }
    json_buf_free(&cj);
    if (rc != HDLM_OK) return rc;
    /* `latest` names a complete set: written last, atomically */
    char lpath[1200], ltmp[1300];
    snprintf(lpath, sizeof lpath, "%s/latest", t->cfg.ckpt_dir);
    snprintf(ltmp, sizeof ltmp, "%s.tmp.%d", lpath, (int)getpid());
    FILE *f = fopen(ltmp, "w");
    if (!f) return error_set(e, HDLM_EIO, "%s: cannot write: %s", ltmp, strerror(errno));
    int ok = fprintf(f, "%lld\n", (long long)t->step) > 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(ltmp, lpath) != 0) {
        unlink(ltmp);
        return error_set(e, HDLM_EIO, "%s: cannot write: %s", lpath, strerror(errno));
    }
    prune_checkpoints(t);
    if (path) snprintf(path, cap, "%s", wpath);
    return HDLM_OK;
}

static int resume_local(trainer *t, int *found, error *e) {
    *found = 0;
    if (!t->cfg.ckpt_dir[0]) return HDLM_OK;
    char lpath[1200];
    snprintf(lpath, sizeof lpath, "%s/latest", t->cfg.ckpt_dir);
    FILE *f = fopen(lpath, "r");
    if (!f) return HDLM_OK; /* nothing to resume */
    long long step = -1;
    int n = fscanf(f, "%lld", &step);
    fclose(f);
    if (n != 1 || step < 0) return error_set(e, HDLM_EIO, "%s: expected a step number", lpath);
    char wpath[1200], epath[1200], spath[1200];
    ckpt_name(t, step, ".safetensors", wpath, sizeof wpath);
    ckpt_name(t, step, ".ema.safetensors", epath, sizeof epath);
    ckpt_name(t, step, ".state.safetensors", spath, sizeof spath);
    st_file *sf = NULL;
    if (st_open(spath, &sf, e) != HDLM_OK) return e->code;
    json_buf cj = {0};
    config_json(t, &cj);
    const char *saved = st_meta(sf, "config");
    int rc = HDLM_OK;
    if (!saved || strcmp(saved, cj.data))
        rc = error_set(e, HDLM_EINVAL,
                       "%s: checkpoint was made with a different config; saved %s, now %s", spath,
                       saved ? saved : "(none)", cj.data);
    json_buf_free(&cj);
    const char *fmt = st_meta(sf, "format");
    if (rc == HDLM_OK && (!fmt || strcmp(fmt, STATE_FORMAT)))
        rc = error_set(e, HDLM_EINVAL,
                       "%s: training state format '%s', this hdlm resumes '%s' only (an older "
                       "hdlm laid its random draws out differently, so the run could not continue "
                       "the same way); start afresh (resume = false) or use another "
                       "checkpoint_dir",
                       spath, fmt ? fmt : "(none)", STATE_FORMAT);
    int64_t shape[1] = {(int64_t)t->m.n_params};
    if (rc == HDLM_OK) rc = st_read_f32(sf, "adam.m", t->opt.m, 1, shape, e);
    if (rc == HDLM_OK) rc = st_read_f32(sf, "adam.v", t->opt.v, 1, shape, e);
    train_state_meta sm;
    if (rc == HDLM_OK && (rc = trainer_state_meta_parse(sf, &sm, e)) == HDLM_OK) {
        t->data_rng = sm.data_rng;
        t->noise_rng = sm.noise_rng;
        t->dropout_rng = sm.dropout_rng;
        t->opt.t = sm.adam_t;
    }
    st_close(sf);
    if (rc == HDLM_OK) rc = read_weights(&t->m, t->m.params, wpath, e);
    if (rc == HDLM_OK && t->opt.ema) rc = read_weights(&t->m, t->opt.ema, epath, e);
    model_params_changed(&t->m);
    if (rc != HDLM_OK) return rc;
    t->step = step;
    *found = 1;
    return HDLM_OK;
}

/* The state every rank must share: rank 0's is broadcast. */
static int broadcast_state(trainer *t, error *e) {
    size_t nb = t->m.n_params * sizeof(float);
    int64_t hdr[2] = {t->step, t->opt.t};
    rng roots[3] = {t->data_rng, t->noise_rng, t->dropout_rng};
    if (dist_broadcast(hdr, sizeof hdr, 0, e) != HDLM_OK ||
        dist_broadcast(roots, sizeof roots, 0, e) != HDLM_OK ||
        dist_broadcast(t->m.params, nb, 0, e) != HDLM_OK ||
        dist_broadcast(t->opt.m, nb, 0, e) != HDLM_OK ||
        dist_broadcast(t->opt.v, nb, 0, e) != HDLM_OK ||
        (t->opt.ema && dist_broadcast(t->opt.ema, nb, 0, e) != HDLM_OK))
        return e->code;
    model_params_changed(&t->m);
    t->step = hdr[0];
    t->opt.t = hdr[1];
    t->data_rng = roots[0];
    t->noise_rng = roots[1];
    t->dropout_rng = roots[2];
    return HDLM_OK;
}

int trainer_sync(trainer *t, error *e) {
    return collective(t) ? broadcast_state(t, e) : HDLM_OK;
}

int trainer_resume(trainer *t, int *found, error *e) {
    if (!collective(t)) return resume_local(t, found, e);
    /* rank 0 reads; its outcome (status, message, found) goes to everyone, then its state */
    struct {
        int rc, found;
        error err;
    } out = {HDLM_OK, 0, {0}};
    if (t->rank == 0) out.rc = resume_local(t, &out.found, &out.err);
    *found = 0;
    if (dist_broadcast(&out, sizeof out, 0, e) != HDLM_OK) return e->code;
    if (out.rc != HDLM_OK) {
        if (e) *e = out.err;
        return out.rc;
    }
    if (out.found && broadcast_state(t, e) != HDLM_OK) return e->code;
    *found = out.found;
    return HDLM_OK;
}
