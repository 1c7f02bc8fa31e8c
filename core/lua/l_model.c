/* Lua bindings of the model and the trainer:
 *   db:train{...} -> Run (finished), with run.model the trained model (EMA weights by default);
 *     in two steps (l_train_prepare, l_train_execute) so that l_store.c creates or continues
 *     the run's row only once every option has been checked and the checkpoint loaded
 *   hdlm.model{d_model=..., ...} or hdlm.model{checkpoint="x.safetensors"} -> Model
 *   model:forward(tokens, {sigma=, states=, context=, block=, block_type=, positions=})
 *     -> logits (T x V)
 *   model:generate{prompt=, n=, temperature=, seed=, cache=} -> token ids (autoregressive)
 * Option tables are checked key by key; errors name the key and the allowed ones. */
#include "base/interrupt.h"
#include "base/json.h"
#include "base/log.h"
#include "base/progress.h"
#include "base/rng.h"
#include "base/sha256.h"
#include "data/tokenizer.h"
#include "data/tokfile.h"
#include "diffusion/train.h"
#include "dist/dist.h"
#include "l_internal.h"
#include "nn/mask.h"
#include "nn/safetensors.h"
#include "store/store.h"
#include "tensor/blas.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL_MT "hdlm.Model"

typedef struct l_model {
    model m;
    int objective; /* OBJ_* the model was trained with; 0 unknown */
    tokenizer tok; /* kind 0 when unknown */
} l_model;

static l_model *check_model(lua_State *L, int idx) {
    l_model *u = luaL_checkudata(L, idx, MODEL_MT);
    if (!u->m.params) luaL_error(L, "model is not initialised");
    return u;
}

struct model *l_model_of(lua_State *L, int idx, tokenizer *tok) {
    l_model *u = check_model(L, idx);
    if (tok) *tok = u->tok;
    return &u->m;
}

static l_model *new_model_ud(lua_State *L) {
    l_model *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, MODEL_MT);
    return u;
}

/* check_keys: 0 when the caller already checked the table against a longer key list */
static void read_model_config(lua_State *L, int idx, const char *what, model_config *mc,
                              int check_keys) {
    static const char *const keys[] = {"d_model", "n_layer", "n_head", "seq_len", "cond",
                                       "vocab",   "mask_id", "gamma",  "dropout", NULL};
    if (check_keys) l_check_keys(L, idx, what, keys);
    mc->d_model = (int)l_opt_integer(L, idx, what, "d_model", 128);
    mc->n_layer = (int)l_opt_integer(L, idx, what, "n_layer", 4);
    mc->n_head = (int)l_opt_integer(L, idx, what, "n_head", 4);
    mc->seq_len = (int)l_opt_integer(L, idx, what, "seq_len", 128);
    mc->cond = l_opt_bool(L, idx, what, "cond", 0);
    mc->vocab = (int)l_opt_integer(L, idx, what, "vocab", mc->vocab);
    mc->mask_id = (int)l_opt_integer(L, idx, what, "mask_id", mc->mask_id);
    mc->mix_gamma = (float)l_opt_number(L, idx, what, "gamma", 0.01);
    mc->dropout = (float)l_opt_number(L, idx, what, "dropout", 0.0);
}

/* ---- db:train ---------------------------------------------------------------------------- */

static const char *const train_keys[] = {
    "name", "data", "objective", "model", "steps", "batch", "accum", "lr", "min_lr", "warmup",
    "lr_schedule", "weight_decay", "beta1", "beta2", "eps", "clip", "ema", "seed", "log_every",
    "eval_every", "eval_batches", "checkpoint_dir", "ckpt_every", "keep", "resume", "threads",
    "stop_after", "noise", "schedule", "vectorised", "context", "block_type", "context_width",
    "low_discrepancy", "precision",
    /* recorded in the run's config only (hdlm sweep) */
    "sweep", "sweep_key", NULL};

static int log_metric(store *st, int64_t run, int64_t step, const char *name, double v, error *e) {
    return store_metric(st, run, step, name, v, e);
}

/* Rank 0's outcome of work only it does (checkpoint files, their rows): every rank leaves the
 * training loop together, with the same status and message. Returns the shared status. */
static int share_status(int rc, error *e) {
    if (dist_size() < 2) return rc;
    struct {
        int rc;
        error e;
    } out = {rc, *e};
    error be = {0};
    if (dist_broadcast(&out, sizeof out, 0, &be) != HDLM_OK) {
        *e = be;
        return be.code;
    }
    if (out.rc != HDLM_OK) *e = out.e;
    return out.rc;
}

/* Writes a checkpoint of the current step and its row, with the SHA-256 and size of the weights
 * file so that what a later `hdlm sample` loads can be checked against it (rank 0; a collective
 * call). */
static int save_checkpoint(trainer *t, store *st, int64_t run_id, int lead, error *e) {
    int rc = trainer_sync(t, e);
    if (rc != HDLM_OK) return rc;
    if (lead) {
        char path[1200], hash[65] = "";
        int64_t cid;
        struct stat sb;
        /* metrics up to this step are durable before `latest` names it: a run killed
         * in between and resumed from here then logs every step once */
        rc = store_flush(st, e);
        /* a failed save (disk full, unwritable directory) leaves `latest` on the previous
         * complete set; the run fails rather than train on without a way back */
        if (rc == HDLM_OK && (rc = trainer_save(t, path, sizeof path, e)) != HDLM_OK)
            error_wrap(e, "checkpoint of step %lld failed (`latest` still names the previous one)",
                       (long long)t->step);
        if (rc == HDLM_OK) rc = sha256_hex_file(path, hash, e);
        if (rc == HDLM_OK && stat(path, &sb) != 0)
            rc = error_set(e, HDLM_EIO, "%s: cannot read its size: %s", path, strerror(errno));
        if (rc == HDLM_OK)
            rc = store_checkpoint(st, run_id, t->step, path, hash, (int64_t)sb.st_size, &cid, e);
        if (rc == HDLM_OK) rc = store_flush(st, e);
    }
    return share_status(rc, e);
}

/* A noise instance owned by a userdata, so that a Lua error cannot leak it. */
typedef struct noise_guard {
    plugin_instance *inst;
} noise_guard;

plugin_instance *l_noise_of_guard(lua_State *L, int idx) {
    noise_guard *g = luaL_testudata(L, idx, "hdlm.NoiseGuard");
    return g ? g->inst : NULL;
}

static int noise_guard_gc(lua_State *L) {
    noise_guard *g = lua_touserdata(L, 1);
    plugin_instance_destroy(g->inst);
    g->inst = NULL;
    return 0;
}

/* Appends {"name":..,"version":..,"options":{..}} of a plugin instance to jb: the identity a
 * checkpoint records and a resume compares (its form must not change, or old checkpoints would
 * no longer resume). */
static void identity_json(json_buf *jb, const plugin_instance *pi) {
    const hdlm_plugin *d = pi->entry->desc;
    char *opts = plugin_opts_json(pi->opts);
    json_buf_raw(jb, "{\"name\":");
    json_buf_str(jb, d->name);
    json_buf_raw(jb, ",\"version\":");
    json_buf_str(jb, d->version);
    json_buf_raw(jb, ",\"options\":");
    json_buf_raw(jb, opts ? opts : "{}");
    json_buf_raw(jb, "}");
    free(opts);
}

static int record_plugin(store *st, int64_t run_id, const char *kind, const plugin_instance *pi,
                         error *e) {
    const hdlm_plugin *d = pi->entry->desc;
    char *opts = plugin_opts_json(pi->opts);
    int rc = store_run_plugin(st, run_id, kind, d->name, d->version, (int)d->abi_version,
                              pi->entry->file, pi->entry->hash, opts, e);
    free(opts);
    return rc;
}

/* Reads noise/schedule/layout options into cfg (objective "method"); leaves the schedule value,
 * the Schedule userdata, the noise value and the noise guard userdata on the stack (they must
 * outlive training). Writes nothing: the run's row does not exist yet. */
static void read_method(lua_State *L, int o, train_config *cfg, const corpus *data) {
    const char *W = "db:train";
    lua_getfield(L, o, "schedule");
    if (lua_isnil(L, -1))
        luaL_error(L, "db:train: key 'schedule' is required with 'noise' (e.g. schedule = "
                      "{\"block_annealing\", width = 16})");
    int sidx = lua_gettop(L);
    cfg->sched = l_to_schedule(L, sidx); /* pushes the Schedule userdata */
    const plugin_instance *sp = l_schedule_instance(L, -1);
    lua_getfield(L, o, "noise");
    int nidx = lua_gettop(L);
    noise_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->inst = NULL;
    if (luaL_newmetatable(L, "hdlm.NoiseGuard")) {
        lua_pushcfunction(L, noise_guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    g->inst = l_to_noise(L, nidx, data->tok.vocab);
    cfg->noise_self = g->inst->self;
    cfg->noise = g->inst->ops;
    double gamma;
    if (plugin_opts_number(g->inst->opts, "gamma", &gamma) == HDLM_OK)
        cfg->model.mix_gamma = (float)gamma; /* RADD input mix of a process that declares γ */
    const char *ctx = l_opt_string(L, o, W, "context", "block_causal");
    const char *bt = l_opt_string(L, o, W, "block_type", "full");
    cfg->method.context = mask_context_from_name(ctx);
    cfg->method.block_type = mask_block_from_name(bt);
    if (cfg->method.context < 0)
        luaL_error(L, "db:train: key 'context' must be full, causal or block_causal, got '%s'",
                   ctx);
    if (cfg->method.block_type < 0)
        luaL_error(L, "db:train: key 'block_type' must be full or causal, got '%s'", bt);
    cfg->method.context_width = (int)l_opt_integer(L, o, W, "context_width", 0);
    if (cfg->method.context_width < 0)
        luaL_error(L,
                   "db:train: key 'context_width' must be >= 1 (0 or absent: the default), got %d",
                   cfg->method.context_width);
    cfg->method.vectorised = l_opt_bool(L, o, W, "vectorised", 0);
    cfg->method.low_discrepancy = l_opt_bool(L, o, W, "low_discrepancy", 0);
    /* identity for resume checks */
    json_buf jb = {0};
    json_buf_raw(&jb, "{\"noise\":");
    identity_json(&jb, g->inst);
    json_buf_raw(&jb, ",\"schedule\":");
    if (sp) {
        identity_json(&jb, sp);
    } else { /* a schedule written in Lua */
        json_buf_raw(&jb, "{\"name\":");
        json_buf_str(&jb, cfg->sched->name ? cfg->sched->name : "lua");
        json_buf_raw(&jb, ",\"version\":\"lua\"}");
    }
    char tail[256], cw[48] = "";
    /* only when set, so that the configs (and resumes) of default runs stay as they were */
    if (cfg->method.context_width > 0)
        snprintf(cw, sizeof cw, ",\"context_width\":%d", cfg->method.context_width);
    snprintf(tail, sizeof tail,
             ",\"context\":\"%s\",\"block_type\":\"%s\"%s,\"vectorised\":%s,"
             "\"low_discrepancy\":%s}",
             ctx, bt, cw, cfg->method.vectorised ? "true" : "false",
             cfg->method.low_discrepancy ? "true" : "false");
    json_buf_raw(&jb, tail);
    int fits = jb.data && jb.len < sizeof cfg->method_json;
    if (fits) memcpy(cfg->method_json, jb.data, jb.len + 1);
    json_buf_free(&jb);
    if (!fits) luaL_error(L, "db:train: plugin options too long to record");
}

/* ---- db:train, step 1: a prepared training --------------------------------------------------
 * Everything db:train can refuse (unknown keys, bad values, a model too big for the machine, a
 * checkpoint made with another config) is refused here, before the run's row exists: a typo
 * leaves no failed run behind. */

#define TRAINING_MT "hdlm.Training"

typedef struct l_training {
    trainer t;
    int live; /* trainer_init succeeded and the trainer is not freed yet */
    l_train_info info;
    int has_noise;
    int64_t stop_after;
    char given_dir[1024]; /* checkpoint_dir as the script spelled it (messages) */
    char ckpt_path[1300]; /* weights file of the checkpoint resumed from */
    char given_path[1300];
    train_config cfg; /* a copy: trainer_free clears the trainer's */
} l_training;

static void training_release(l_training *tr) {
    if (tr->live) trainer_free(&tr->t);
    tr->live = 0;
}

static int training_gc(lua_State *L) {
    training_release(lua_touserdata(L, 1));
    return 0;
}

const l_train_info *l_train_info_of(lua_State *L, int idx) {
    l_training *tr = luaL_checkudata(L, idx, TRAINING_MT);
    return &tr->info;
}

/* A float option as the shortest decimal that reads back as the same float: the value the user
 * wrote (0.01, not 0.009999999776) and no other float. */
static void push_float(lua_State *L, float v) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    lua_pushnumber(L, strtod(buf, NULL));
}

/* {"name":..,"options":{..}} of a plugin instance (or of a Lua schedule: version "lua") as a Lua
 * table: the one form plugin specs take in a run's config. */
static void push_spec(lua_State *L, const plugin_instance *pi, const hyper *h) {
    lua_createtable(L, 0, 3);
    if (pi) {
        lua_pushstring(L, pi->entry->desc->name);
        lua_setfield(L, -2, "name");
        char *opts = plugin_opts_json(pi->opts);
        lua_pushcfunction(L, l_json_decode);
        lua_pushstring(L, opts ? opts : "{}");
        free(opts);
        lua_call(L, 1, 1);
        lua_setfield(L, -2, "options");
    } else {
        lua_pushstring(L, h && h->name ? h->name : "lua");
        lua_setfield(L, -2, "name");
        lua_newtable(L);
        lua_setfield(L, -2, "options");
        lua_pushstring(L, "lua");
        lua_setfield(L, -2, "version");
    }
}

/* The resolved config (every option with the value training uses, defaults included) as JSON,
 * pushed. Keys sorted (l_push_json), so equal configs give equal text. */
static void push_resolved_config(lua_State *L, int o, const l_training *tr, const char *data_path,
                                 int sched_idx, int guard_idx) {
    const train_config *c = &tr->cfg;
    const model_config *mc = &tr->t.m.cfg;
    lua_createtable(L, 0, 48);
    int t = lua_gettop(L);
#define SET_I(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, t, (k)))
#define SET_N(k, v) (lua_pushnumber(L, (v)), lua_setfield(L, t, (k)))
#define SET_S(k, v) (lua_pushstring(L, (v)), lua_setfield(L, t, (k)))
#define SET_B(k, v) (lua_pushboolean(L, (v)), lua_setfield(L, t, (k)))
    lua_getfield(L, o, "name");
    lua_setfield(L, t, "name");
    char abs[4096];
    SET_S("data", data_path && realpath(data_path, abs) ? abs : data_path);
    SET_S("objective", train_objective_name(c->objective));
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, mc->d_model), lua_setfield(L, -2, "d_model");
    lua_pushinteger(L, mc->n_layer), lua_setfield(L, -2, "n_layer");
    lua_pushinteger(L, mc->n_head), lua_setfield(L, -2, "n_head");
    lua_pushinteger(L, mc->seq_len), lua_setfield(L, -2, "seq_len");
    lua_pushboolean(L, mc->cond), lua_setfield(L, -2, "cond");
    push_float(L, mc->mix_gamma), lua_setfield(L, -2, "gamma");
    push_float(L, mc->dropout), lua_setfield(L, -2, "dropout");
    lua_pushinteger(L, mc->vocab), lua_setfield(L, -2, "vocab");
    lua_pushinteger(L, mc->mask_id), lua_setfield(L, -2, "mask_id");
    lua_setfield(L, t, "model");
    SET_I("steps", c->steps);
    SET_I("batch", c->batch);
    SET_I("accum", c->accum);
    SET_N("lr", c->opt.lr);
    SET_N("min_lr", c->opt.min_lr);
    SET_I("warmup", c->opt.warmup);
    SET_S("lr_schedule", lr_schedule_name(c->opt.schedule));
    SET_N("weight_decay", c->opt.weight_decay);
    SET_N("beta1", c->opt.beta1);
    SET_N("beta2", c->opt.beta2);
    SET_N("eps", c->opt.eps);
    SET_N("clip", c->opt.clip);
    SET_N("ema", c->opt.ema);
    SET_I("seed", c->seed);
    SET_I("log_every", c->log_every);
    SET_I("eval_every", c->eval_every);
    SET_I("eval_batches", c->eval_batches);
    if (c->ckpt_dir[0]) SET_S("checkpoint_dir", c->ckpt_dir); /* absolute */
    SET_I("ckpt_every", c->ckpt_every);
    SET_I("keep", c->keep_ckpts);
    SET_B("resume", l_opt_bool(L, o, "db:train", "resume", 1));
    SET_I("threads", l_opt_integer(L, o, "db:train", "threads", 0));
    SET_I("stop_after", tr->stop_after);
    SET_S("precision", train_precision_name(c->precision));
    if (tr->has_noise) {
        push_spec(L, l_noise_of_guard(L, guard_idx), NULL);
        lua_setfield(L, t, "noise");
        push_spec(L, l_schedule_instance(L, sched_idx), l_check_schedule(L, sched_idx));
        lua_setfield(L, t, "schedule");
        SET_B("vectorised", c->method.vectorised);
        SET_S("context", mask_context_name(c->method.context));
        SET_S("block_type", c->method.block_type == MASK_BLOCK_CAUSAL ? "causal" : "full");
        SET_I("context_width", c->method.context_width);
        SET_B("low_discrepancy", c->method.low_discrepancy);
    }
    /* recorded as given (hdlm sweep) */
    lua_getfield(L, o, "sweep");
    lua_setfield(L, t, "sweep");
    lua_getfield(L, o, "sweep_key");
    lua_setfield(L, t, "sweep_key");
#undef SET_I
#undef SET_N
#undef SET_S
#undef SET_B
    l_push_json(L, t);
    lua_remove(L, t);
}

int l_train_prepare(lua_State *L, int o, int corpus_idx, const corpus *data) {
    const char *W = "db:train";
    o = lua_absindex(L, o);
    corpus_idx = lua_absindex(L, corpus_idx);
    l_check_keys(L, o, W, train_keys);
    train_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int threads = (int)l_opt_integer(L, o, W, "threads", 0);
    if (threads < 0 || threads > 256)
        return luaL_error(L, "db:train: key 'threads' must be in 0..256 (0 = all cores), got %d",
                          threads);
    if (threads > 0) blas_set_threads(threads);
    lua_getfield(L, o, "noise");
    int has_noise = !lua_isnil(L, -1);
    lua_pop(L, 1);
    const char *obj = l_opt_string(L, o, W, "objective", has_noise ? "method" : "ar");
    cfg.objective = train_objective_from_name(obj);
    if (!cfg.objective)
        return luaL_error(L, "db:train: key 'objective' must be 'ar', 'mask' or 'method', got '%s'",
                          obj);
    if ((cfg.objective == OBJ_METHOD) != has_noise)
        return luaL_error(L,
                          has_noise ? "db:train: objective '%s' does not take a noise process "
                                      "(leave objective out to train the method)"
                                    : "db:train: objective '%s' needs 'noise' and 'schedule'",
                          obj);
    lua_getfield(L, o, "model");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        return luaL_error(L, "db:train: key 'model' must be a table, got %s", luaL_typename(L, -1));
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    cfg.model.mask_id = -1;
    read_model_config(L, lua_gettop(L), "db:train model", &cfg.model, 1);
    lua_pop(L, 1);
    cfg.steps = l_opt_integer(L, o, W, "steps", 100);
    cfg.batch = (int)l_opt_integer(L, o, W, "batch", 8);
    cfg.accum = (int)l_opt_integer(L, o, W, "accum", 1);
    cfg.seed = (uint64_t)l_opt_integer(L, o, W, "seed", 0);
    cfg.opt.lr = l_opt_number(L, o, W, "lr", 3e-4);
    cfg.opt.min_lr = l_opt_number(L, o, W, "min_lr", cfg.opt.lr * 0.1);
    cfg.opt.warmup = l_opt_integer(L, o, W, "warmup", 0);
    cfg.opt.steps = cfg.steps;
    const char *sched = l_opt_string(L, o, W, "lr_schedule", "cosine");
    cfg.opt.schedule = lr_schedule_from_name(sched);
    if (cfg.opt.schedule < 0)
        return luaL_error(
            L, "db:train: key 'lr_schedule' must be cosine, linear or constant, got '%s'", sched);
    cfg.opt.weight_decay = l_opt_number(L, o, W, "weight_decay", 0.1);
    cfg.opt.beta1 = l_opt_number(L, o, W, "beta1", 0.9);
    cfg.opt.beta2 = l_opt_number(L, o, W, "beta2", 0.95);
    cfg.opt.eps = l_opt_number(L, o, W, "eps", 1e-8);
    cfg.opt.clip = l_opt_number(L, o, W, "clip", 1.0);
    cfg.opt.ema = l_opt_number(L, o, W, "ema", 0.999);
    cfg.log_every = (int)l_opt_integer(L, o, W, "log_every", 10);
    cfg.eval_every = (int)l_opt_integer(L, o, W, "eval_every", 0);
    cfg.eval_batches = (int)l_opt_integer(L, o, W, "eval_batches", 4);
    cfg.ckpt_every = (int)l_opt_integer(L, o, W, "ckpt_every", 0);
    cfg.keep_ckpts = (int)l_opt_integer(L, o, W, "keep", 2);
    const char *prec = l_opt_string(L, o, W, "precision", "f32");
    cfg.precision = train_precision_from_name(prec);
    if (cfg.precision < 0)
        return luaL_error(L, "db:train: key 'precision' must be 'f32' or 'bf16', got '%s'", prec);
    /* checkpoint_dir = false: no checkpoints, on purpose (no warning below) */
    lua_getfield(L, o, "checkpoint_dir");
    int no_ckpt_wanted = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    const char *dir = no_ckpt_wanted ? "" : l_opt_string(L, o, W, "checkpoint_dir", "");
    /* absolute, so that checkpoint rows (and `hdlm sample`, `hdlm runs gc`) find the files from
     * any directory; trailing slashes dropped so that paths compare equal */
    char cwd[1024] = "";
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (dl && dir[0] != '/' && !getcwd(cwd, sizeof cwd))
        return luaL_error(L, "db:train: cannot resolve checkpoint_dir '%s': %s", dir,
                          strerror(errno));
    int wrote = snprintf(cfg.ckpt_dir, sizeof cfg.ckpt_dir, "%s%s%.*s", cwd, cwd[0] ? "/" : "",
                         (int)dl, dir);
    if (wrote < 0 || (size_t)wrote >= sizeof cfg.ckpt_dir - 40)
        return luaL_error(L, "db:train: checkpoint_dir '%s' is too long (%d characters resolved)",
                          dir, wrote);
    int resume = l_opt_bool(L, o, W, "resume", 1);
    int64_t stop_after = l_opt_integer(L, o, W, "stop_after", 0);
    int top0 = lua_gettop(L);
    if (has_noise) read_method(L, o, &cfg, data);
    /* read_method left: the schedule value, the Schedule userdata, the noise value, the guard */
    int sched_idx = has_noise ? top0 + 2 : 0, guard_idx = has_noise ? top0 + 4 : 0;
    if (cfg.opt.ema < 0 || cfg.opt.ema >= 1)
        return luaL_error(L, "db:train: key 'ema' must be in [0, 1), got %f", cfg.opt.ema);
    if (cfg.log_every < 1) cfg.log_every = 1;
    /* stored runs are sampled and evaluated later from their checkpoints (hdlm sample/eval) */
    if (!cfg.ckpt_dir[0] && !no_ckpt_wanted && dist_rank() == 0)
        log_msg(HDLM_LOG_WARN,
                "db:train: this run cannot be sampled or evaluated later: no checkpoint_dir "
                "(checkpoint_dir = \"checkpoints/NAME\" keeps its weights; checkpoint_dir = "
                "false says you do not want them)");

    l_training *tr = lua_newuserdatauv(L, sizeof *tr, 4);
    memset(tr, 0, sizeof *tr);
    int tr_idx = lua_gettop(L);
    if (luaL_newmetatable(L, TRAINING_MT)) {
        lua_pushcfunction(L, training_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_pushvalue(L, corpus_idx); /* the trainer borrows the corpus */
    lua_setiuservalue(L, tr_idx, 1);
    if (has_noise) {
        lua_pushvalue(L, sched_idx);
        lua_setiuservalue(L, tr_idx, 2);
        lua_pushvalue(L, guard_idx);
        lua_setiuservalue(L, tr_idx, 3);
    }
    tr->has_noise = has_noise;
    tr->stop_after = stop_after;
    snprintf(tr->given_dir, sizeof tr->given_dir, "%s", dir);
    error e = {0};
    if (trainer_init(&tr->t, &cfg, data, &e) != HDLM_OK) return l_raise(L, &e);
    tr->live = 1;
    int found = 0;
    if (resume && trainer_resume(&tr->t, &found, &e) != HDLM_OK) {
        training_release(tr);
        return l_raise(L, &e);
    }
    tr->cfg = tr->t.cfg;
    if (found && dist_rank() == 0)
        fprintf(stderr, "hdlm: resuming from step %lld of %s\n", (long long)tr->t.step, dir);
    if (found) {
        snprintf(tr->ckpt_path, sizeof tr->ckpt_path, "%s/step_%08lld.safetensors", cfg.ckpt_dir,
                 (long long)tr->t.step);
        snprintf(tr->given_path, sizeof tr->given_path, "%s/step_%08lld.safetensors", dir,
                 (long long)tr->t.step);
    }
    push_resolved_config(L, o, tr, l_corpus_path(L, corpus_idx), sched_idx, guard_idx);
    lua_setiuservalue(L, tr_idx, 4);
    lua_getiuservalue(L, tr_idx, 4);
    tr->info.config_json = lua_tostring(L, -1); /* anchored by the uservalue */
    lua_pop(L, 1);
    tr->info.resumed = found;
    tr->info.step = tr->t.step;
    tr->info.steps = cfg.steps;
    tr->info.ckpt_dir = tr->cfg.ckpt_dir;
    tr->info.ckpt_path = tr->ckpt_path;
    tr->info.given_path = tr->given_path;
    lua_pushvalue(L, tr_idx);
    return 1;
}

/* The last logged training loss of a run (NaN when none): the summary of a call that trained no
 * step (its run finished earlier), instead of the 0 of a step never taken. */
static int last_loss_row(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    if (ncol >= 1 && (vals[0].type == STORE_REAL || vals[0].type == STORE_INT))
        *(double *)ud = vals[0].d;
    return 1;
}

static double last_loss(store *st, int64_t run_id) {
    double v = NAN;
    store_value p = {.type = STORE_INT, .i = run_id};
    if (run_id > 0)
        store_query_params(st,
                           "SELECT value FROM metrics WHERE run_id = ? AND name = 'loss' ORDER BY "
                           "step DESC LIMIT 1",
                           1, &p, last_loss_row, &v, NULL);
    return v;
}

/* ---- db:train, step 2: training into a run's row ---------------------------------------- */

int l_train_execute(lua_State *L, int prep_idx, store *st, int64_t run_id, int train,
                    int64_t history_run) {
    const char *W = "db:train";
    prep_idx = lua_absindex(L, prep_idx);
    l_training *tr = luaL_checkudata(L, prep_idx, TRAINING_MT);
    if (!tr->live) return luaL_error(L, "%s: this training was already run", W);
    trainer *t = &tr->t;
    const train_config *cfg = &tr->cfg;
    lua_getiuservalue(L, prep_idx, 1);
    const corpus *data = l_check_corpus(L, -1);
    lua_pop(L, 1); /* the Training keeps it */
    lua_getiuservalue(L, prep_idx, 2);
    int sched_idx = lua_gettop(L);
    lua_getiuservalue(L, prep_idx, 3);
    int guard_idx = lua_gettop(L);
    /* data parallel (dist.h): every rank trains its share of each batch; rank 0 alone writes
     * checkpoints, reports progress, and its store takes the rows (the others' drops them) */
    int lead = dist_rank() == 0;
    error e = {0};
    int rc = HDLM_OK;
    train_stats s = {0};
    double tok_s_sum = 0, comm_sum = 0;
    int tok_s_n = 0;
    int64_t start = t->step;
    if (train) {
        if (tr->has_noise) {
            const plugin_instance *sp = l_schedule_instance(L, sched_idx);
            rc = record_plugin(st, run_id, "noise", l_noise_of_guard(L, guard_idx), &e);
            if (rc == HDLM_OK && sp) {
                rc = record_plugin(st, run_id, "schedule", sp, &e);
            } else if (rc == HDLM_OK) { /* a schedule written in Lua */
                const char *nm = cfg->sched->name ? cfg->sched->name : "lua";
                rc = store_run_plugin(st, run_id, "schedule", nm, "lua", 0, NULL, NULL, NULL, &e);
            }
        }
        if (rc != HDLM_OK) {
            training_release(tr);
            return l_raise(L, &e);
        }
        store_metric(st, run_id, 0, "params", (double)t->m.n_params, &e);

        progress pg;
        progress_init(&pg, NULL, "train", cfg->steps);
        if (!lead) pg.out = NULL;
        int64_t saved_at = -1;
        /* SIGINT/SIGTERM stop at the next step boundary (interrupt.h). Single process only: with
         * several ranks they would have to agree on the step to stop at, so a signal keeps its
         * default action there (the run is reaped as interrupted and resumes from `latest`). */
        int armed = dist_size() < 2;
        if (armed) interrupt_arm();
        while (t->step < cfg->steps) {
            if ((rc = trainer_step(t, &s, &e)) != HDLM_OK) break;
            if (t->step > start + 1) { /* the first step includes allocation */
                tok_s_sum += s.tokens_per_s;
                comm_sum += s.comm_time;
                tok_s_n++;
            }
            if (t->step % cfg->log_every == 0 || t->step == cfg->steps) {
                log_metric(st, run_id, t->step, "loss", s.loss, &e);
                log_metric(st, run_id, t->step, "lr", s.lr, &e);
                log_metric(st, run_id, t->step, "grad_norm", s.grad_norm, &e);
                log_metric(st, run_id, t->step, "tokens_per_s", s.tokens_per_s, &e);
                if (t->world > 1)
                    log_metric(st, run_id, t->step, "allreduce_time", s.comm_time, &e);
                rc = log_metric(st, run_id, t->step, "step_time", s.step_time, &e);
                if (rc != HDLM_OK) break;
            }
            if (cfg->eval_every > 0 && (t->step % cfg->eval_every == 0 || t->step == cfg->steps)) {
                double vl;
                if ((rc = trainer_eval(t, t->opt.ema != NULL, &vl, &e)) != HDLM_OK) break;
                log_metric(st, run_id, t->step, "valid_loss", vl, &e);
            }
            if (cfg->ckpt_every > 0 && cfg->ckpt_dir[0] && t->step % cfg->ckpt_every == 0) {
                if ((rc = save_checkpoint(t, st, run_id, lead, &e)) != HDLM_OK) break;
                saved_at = t->step;
            }
            progress_update(&pg, t->step, s.tokens_per_s, "tok/s", s.loss);
            int sig = interrupt_signal();
            if (sig) { /* graceful stop: the step is done; keep it, then leave as 'interrupted' */
                if (cfg->ckpt_dir[0] && saved_at != t->step &&
                    (rc = save_checkpoint(t, st, run_id, lead, &e)) != HDLM_OK)
                    break;
                rc = error_set(&e, HDLM_ESTATE, "interrupted by %s at step %lld (%s)",
                               interrupt_name(sig), (long long)t->step,
                               cfg->ckpt_dir[0] ? "checkpoint written; run again to resume"
                                                : "no checkpoint_dir: progress not saved");
                break;
            }
            if (tr->stop_after > 0 && t->step >= tr->stop_after) break;
        }
        /* a run with a checkpoint_dir ends with a checkpoint of the step it reached, whatever
         * ckpt_every is (the last step, or stop_after's), so that it can be sampled and resumed */
        if (rc == HDLM_OK && cfg->ckpt_dir[0] && t->step > start && saved_at != t->step)
            rc = save_checkpoint(t, st, run_id, lead, &e);
        if (armed) interrupt_disarm();
        progress_finish(&pg);
        if (rc != HDLM_OK) {
            training_release(tr);
            return l_raise(L, &e);
        }
    }
    /* hand the model over (EMA weights in front: evaluation and sampling use them) */
    if (trainer_swap_ema(t, &e) != HDLM_OK) {
        training_release(tr);
        return l_raise(L, &e);
    }
    l_model *out = new_model_ud(L);
    int out_idx = lua_gettop(L);
    out->m = t->m;
    memset(&t->m, 0, sizeof t->m);
    out->objective = cfg->objective;
    out->tok = data->tok;
    int64_t steps_done = t->step; /* also right when a resumed run had nothing left to do */
    int world = t->world;
    int trained = steps_done > start;
    training_release(tr);
    lua_createtable(L, 0, 8);
    lua_pushnumber(L, trained ? s.loss : last_loss(st, history_run > 0 ? history_run : run_id));
    lua_setfield(L, -2, "loss");
    lua_pushnumber(L, tok_s_n ? tok_s_sum / tok_s_n : trained ? s.tokens_per_s : NAN);
    lua_setfield(L, -2, "tokens_per_s");
    lua_pushnumber(L, tok_s_n ? comm_sum / tok_s_n : s.comm_time); /* seconds per step */
    lua_setfield(L, -2, "allreduce_time");
    lua_pushinteger(L, world);
    lua_setfield(L, -2, "world_size");
    lua_pushinteger(L, (lua_Integer)steps_done);
    lua_setfield(L, -2, "steps");
    lua_pushinteger(L, (lua_Integer)(steps_done - start));
    lua_setfield(L, -2, "steps_trained");
    if (tr->has_noise) { /* the layout sampling must reuse */
        lua_pushstring(L, mask_context_name(cfg->method.context));
        lua_setfield(L, -2, "context");
        lua_pushstring(L, cfg->method.block_type == MASK_BLOCK_CAUSAL ? "causal" : "full");
        lua_setfield(L, -2, "block_type");
        lua_pushinteger(L, cfg->method.context_width);
        lua_setfield(L, -2, "context_width");
        lua_pushvalue(L, sched_idx);
        lua_pushvalue(L, guard_idx);
    } else {
        lua_pushnil(L);
        lua_pushnil(L);
    }
    (void)out_idx;
    (void)W;
    return 4; /* model, summary, Schedule, noise guard */
}

static const char *const attach_keys[] = {"run",     "model",      "noise",         "schedule",
                                          "context", "block_type", "context_width", NULL};

/* db:attach{run = id, model = Model, noise = spec|Noise, schedule = spec|Schedule, context =,
 * block_type =} -> a (finished) Run that can sample: how a stored run is brought back. The Store
 * is argument 1; the Run userdata comes from l_store.c (pushed by the caller at run_idx). */
int l_attach_run(lua_State *L, int run_idx) {
    const char *W = "db:attach";
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, attach_keys);
    lua_getfield(L, 2, "model");
    tokenizer tok;
    model *m = l_model_of(L, -1, &tok);
    lua_setiuservalue(L, run_idx, 2);
    lua_getfield(L, 2, "schedule");
    if (lua_isnil(L, -1)) return luaL_error(L, "%s: key 'schedule' is required", W);
    l_to_schedule(L, lua_gettop(L));
    lua_setiuservalue(L, run_idx, 4);
    lua_pop(L, 1);
    lua_getfield(L, 2, "noise");
    if (lua_isnil(L, -1)) return luaL_error(L, "%s: key 'noise' is required", W);
    int nidx = lua_gettop(L);
    noise_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->inst = NULL;
    if (luaL_newmetatable(L, "hdlm.NoiseGuard")) {
        lua_pushcfunction(L, noise_guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    int32_t V = m->cfg.mask_id >= 0 ? m->cfg.mask_id : (tok.vocab ? tok.vocab : m->cfg.vocab);
    g->inst = l_to_noise(L, nidx, V);
    lua_setiuservalue(L, run_idx, 5);
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, l_opt_string(L, 2, W, "context", "block_causal"));
    lua_setfield(L, -2, "context");
    lua_pushstring(L, l_opt_string(L, 2, W, "block_type", "full"));
    lua_setfield(L, -2, "block_type");
    lua_pushinteger(L, l_opt_integer(L, 2, W, "context_width", 0));
    lua_setfield(L, -2, "context_width");
    lua_setiuservalue(L, run_idx, 3);
    lua_settop(L, run_idx);
    return 1;
}

/* ---- hdlm.model ---------------------------------------------------------------------------- */

static const char *const model_keys[] = {"d_model", "n_layer", "n_head",     "seq_len",
                                         "cond",    "vocab",   "mask_id",    "gamma",
                                         "dropout", "seed",    "checkpoint", NULL};

static int l_model_new(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    l_check_keys(L, 1, "hdlm.model", model_keys);
    const char *ckpt = l_opt_string(L, 1, "hdlm.model", "checkpoint", NULL);
    model_config mc = {.vocab = 256, .mask_id = -1};
    error e = {0};
    if (ckpt) {
        st_file *f = NULL;
        if (st_open(ckpt, &f, &e) != HDLM_OK) return l_raise(L, &e);
        const char *cj = st_meta(f, "config");
        json_value *v = NULL;
        if (!cj || json_parse(cj, strlen(cj), &v, &e) != HDLM_OK) {
            st_close(f);
            if (!cj)
                return luaL_error(L, "%s: no 'config' metadata (not an hdlm checkpoint?)", ckpt);
            return l_raise(L, &e);
        }
#define GETI(k, dst)                                                                               \
    do {                                                                                           \
        const json_value *x = json_get(v, k);                                                      \
        if (x && json_type(x) == JSON_NUMBER) dst = (int)json_number(x);                           \
    } while (0)
        GETI("vocab", mc.vocab);
        GETI("d_model", mc.d_model);
        GETI("n_layer", mc.n_layer);
        GETI("n_head", mc.n_head);
        GETI("seq_len", mc.seq_len);
        GETI("cond", mc.cond);
#undef GETI
        const json_value *gm = json_get(v, "gamma");
        if (gm && json_type(gm) == JSON_NUMBER) mc.mix_gamma = (float)json_number(gm);
        const json_value *tk = json_get(v, "tokenizer"), *tsha = json_get(v, "tokenizer_sha256");
        tokenizer ctok = {0};
        /* a tokenizer that cannot be loaded here (a BPE directory gone) leaves the model without
         * one (ids only); one whose vocabulary changed since training is refused */
        if (tk && json_type(tk) == JSON_STRING &&
            tokenizer_init(&ctok, json_string(tk), NULL) != HDLM_OK)
            ctok = (tokenizer){0};
        if (ctok.kind && json_type(tsha) == JSON_STRING &&
            strcmp(json_string(tsha), tokenizer_sha256(&ctok))) {
            char msg[600];
            snprintf(msg, sizeof msg,
                     "%s: trained with tokenizer %s (vocabulary SHA-256 %.16s...), but %s now has "
                     "vocabulary %.16s...",
                     ckpt, json_string(tk), json_string(tsha), json_string(tk),
                     tokenizer_sha256(&ctok));
            json_free(v);
            st_close(f);
            return luaL_error(L, "%s", msg);
        }
        const json_value *ob = json_get(v, "objective");
        int objective =
            ob && json_type(ob) == JSON_STRING ? train_objective_from_name(json_string(ob)) : 0;
        if (objective == OBJ_MASK) mc.mask_id = mc.vocab - 1;
        json_free(v);
        if (objective == OBJ_METHOD) { /* the mask id follows the noise process: V real + extras */
            mc.mask_id = ctok.vocab > 0 && ctok.vocab < mc.vocab ? ctok.vocab : -1;
        }
        /* checkpoints record the forward pass's settings themselves (older ones do not): they
         * win over what the config and tokenizer name imply */
        const char *fj = st_meta(f, "model");
        json_value *fv = NULL;
        if (fj && json_parse(fj, strlen(fj), &fv, &e) == HDLM_OK) {
            const json_value *x;
            if ((x = json_get(fv, "mask_id")) && json_type(x) == JSON_NUMBER)
                mc.mask_id = (int)json_number(x);
            if ((x = json_get(fv, "mix_gamma")) && json_type(x) == JSON_NUMBER)
                mc.mix_gamma = (float)json_number(x);
            if ((x = json_get(fv, "cond")) && json_type(x) == JSON_NUMBER)
                mc.cond = (int)json_number(x);
            json_free(fv);
        } else if (fj) {
            st_close(f);
            return l_raise(L, &e);
        }
        l_model *u = new_model_ud(L);
        u->objective = objective;
        u->tok = ctok;
        if (model_init(&u->m, &mc, 0, &e) != HDLM_OK) {
            st_close(f);
            return l_raise(L, &e);
        }
        for (int i = 0; i < u->m.n_tensors; i++) {
            const model_tensor *mt = &u->m.tensors[i];
            if (st_read_f32(f, mt->name, u->m.params + mt->offset, mt->ndim, mt->shape, &e) !=
                HDLM_OK) {
                st_close(f);
                return l_raise(L, &e);
            }
        }
        st_close(f);
        return 1;
    }
    read_model_config(L, 1, "hdlm.model", &mc, 0);
    mc.vocab = (int)l_opt_integer(L, 1, "hdlm.model", "vocab", 256);
    long long seed = l_opt_integer(L, 1, "hdlm.model", "seed", 0);
    l_model *u = new_model_ud(L);
    if (model_init(&u->m, &mc, (uint64_t)seed, &e) != HDLM_OK) return l_raise(L, &e);
    return 1;
}

static int model_gc(lua_State *L) {
    l_model *u = luaL_checkudata(L, 1, MODEL_MT);
    model_free(&u->m);
    return 0;
}

/* Reads a Lua array of integers into a fresh userdata buffer (pushed); returns it. */
static int32_t *check_ids(lua_State *L, int idx, const char *what, int *n) {
    luaL_checktype(L, idx, LUA_TTABLE);
    int len = (int)lua_rawlen(L, idx);
    int32_t *ids = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *ids, 0);
    for (int i = 0; i < len; i++) {
        lua_rawgeti(L, idx, i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: entry %d is not an integer", what, i + 1);
        ids[i] = (int32_t)v;
        lua_pop(L, 1);
    }
    *n = len;
    return ids;
}

static const char *const forward_keys[] = {"sigma",      "states",    "context", "block",
                                           "block_type", "positions", "logits",  NULL};

/* model:forward(tokens, opts) -> logits table (T rows of V numbers) */
static int model_forward_l(lua_State *L) {
    l_model *u = check_model(L, 1);
    int o = 3;
    if (lua_isnoneornil(L, o)) { /* no options: an empty table in their slot */
        lua_settop(L, 2);
        lua_newtable(L);
    }
    int T;
    int32_t *tok = check_ids(L, 2, "model:forward tokens", &T);
    if (T < 1) return luaL_error(L, "model:forward: empty token list");
    luaL_checktype(L, o, LUA_TTABLE);
    l_check_keys(L, o, "model:forward", forward_keys);
    const char *ctx = l_opt_string(L, o, "model:forward", "context", "full");
    const char *bt = l_opt_string(L, o, "model:forward", "block_type", "full");
    int context = mask_context_from_name(ctx), btype = mask_block_from_name(bt);
    if (context < 0)
        return luaL_error(
            L, "model:forward: key 'context' must be full, causal or block_causal, got '%s'", ctx);
    if (btype < 0)
        return luaL_error(L, "model:forward: key 'block_type' must be full or causal, got '%s'",
                          bt);
    int block = (int)l_opt_integer(L, o, "model:forward", "block", 1);
    uint8_t *state = lua_newuserdatauv(L, (size_t)T, 0);
    lua_getfield(L, o, "states");
    if (lua_istable(L, -1)) {
        if ((int)lua_rawlen(L, -1) != T)
            return luaL_error(L, "model:forward: 'states' has %d entries, tokens %d",
                              (int)lua_rawlen(L, -1), T);
        for (int i = 0; i < T; i++) {
            lua_rawgeti(L, -1, i + 1);
            const char *s = lua_tostring(L, -1);
            if (!s) return luaL_error(L, "model:forward: states[%d] must be a string", i + 1);
            if (!strcmp(s, "settled"))
                state[i] = HDLM_SETTLED;
            else if (!strcmp(s, "active"))
                state[i] = HDLM_ACTIVE;
            else if (!strcmp(s, "worthless"))
                state[i] = HDLM_WORTHLESS;
            else
                return luaL_error(
                    L, "model:forward: states[%d] must be settled, active or worthless, got '%s'",
                    i + 1, s);
            lua_pop(L, 1);
        }
    } else {
        /* no states: every position settled with the given context (full = bidirectional) */
        memset(state, HDLM_SETTLED, (size_t)T);
    }
    lua_pop(L, 1);
    float *sigma = NULL;
    if (u->m.cfg.cond) {
        sigma = lua_newuserdatauv(L, (size_t)T * sizeof *sigma, 0);
        lua_getfield(L, o, "sigma");
        if (lua_type(L, -1) == LUA_TNUMBER) {
            for (int i = 0; i < T; i++)
                sigma[i] = (float)lua_tonumber(L, -1);
        } else if (lua_istable(L, -1) && (int)lua_rawlen(L, -1) == T) {
            for (int i = 0; i < T; i++) {
                lua_rawgeti(L, -1, i + 1);
                sigma[i] = (float)luaL_checknumber(L, -1);
                lua_pop(L, 1);
            }
        } else {
            return luaL_error(
                L, "model:forward: conditioned model needs 'sigma' (a number or %d numbers)", T);
        }
        lua_pop(L, 1);
    }
    /* rotary positions: 0..T−1 unless given (any integers >= 0, e.g. an offset window) */
    int32_t *pos = lua_newuserdatauv(L, (size_t)T * sizeof *pos, 0);
    lua_getfield(L, o, "positions");
    if (lua_isnil(L, -1)) {
        for (int i = 0; i < T; i++)
            pos[i] = i;
    } else {
        if (!lua_istable(L, -1) || (int)lua_rawlen(L, -1) != T)
            return luaL_error(L, "model:forward: 'positions' must be a list of %d integers", T);
        for (int i = 0; i < T; i++) {
            lua_rawgeti(L, -1, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < 0 || v > INT32_MAX)
                return luaL_error(L, "model:forward: positions[%d] must be an integer >= 0", i + 1);
            pos[i] = (int32_t)v;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    attn_row *rows = lua_newuserdatauv(L, (size_t)T * sizeof *rows, 0);
    mask_rows_from_states(rows, state, T, context, block, btype);
    model_batch mb = {1, T, tok, pos, sigma, rows, NULL, NULL, 0};
    float *logits;
    error e = {0};
    if (model_forward(&u->m, &mb, &logits, &e) != HDLM_OK) return l_raise(L, &e);
    /* logits = false: the pass only (timing a long window without a T x V Lua table) */
    if (!l_opt_bool(L, o, "model:forward", "logits", 1)) return 0;
    int V = u->m.cfg.vocab;
    lua_createtable(L, T, 0);
    for (int i = 0; i < T; i++) {
        lua_createtable(L, V, 0);
        for (int v = 0; v < V; v++) {
            lua_pushnumber(L, logits[(size_t)i * V + v]);
            lua_rawseti(L, -2, v + 1);
        }
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const char *const gen_keys[] = {"prompt", "n", "temperature", "seed", "cache", NULL};

/* Draws from softmax(logits / temperature) in float64 (inverse CDF); temperature 0 = argmax. */
static int32_t draw_token(const float *logits, int V, double temp, rng *r) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temp <= 0) return best;
    double mx = logits[best], z = 0;
    for (int v = 0; v < V; v++)
        z += exp(((double)logits[v] - mx) / temp);
    double u = rng_uniform(r) * z, acc = 0;
    for (int v = 0; v < V; v++) {
        acc += exp(((double)logits[v] - mx) / temp);
        if (u < acc) return v;
    }
    return V - 1;
}

/* model:generate{prompt = ids, n = tokens to add, temperature = 0, seed = 0, cache = true}
 * Autoregressive decoding with causal attention; with the cache each step runs one position. */
static int model_generate(lua_State *L) {
    l_model *u = check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, "model:generate", gen_keys);
    int np = 0;
    int32_t *prompt = NULL;
    lua_getfield(L, 2, "prompt");
    if (lua_istable(L, -1)) prompt = check_ids(L, lua_gettop(L), "model:generate prompt", &np);
    int n = (int)l_opt_integer(L, 2, "model:generate", "n", 32);
    double temp = l_opt_number(L, 2, "model:generate", "temperature", 0.0);
    long long seed = l_opt_integer(L, 2, "model:generate", "seed", 0);
    int cache = l_opt_bool(L, 2, "model:generate", "cache", 1);
    if (np < 1)
        return luaL_error(L, "model:generate: key 'prompt' must hold at least one token id");
    if (u->m.cfg.cond)
        return luaL_error(L,
                          "model:generate: autoregressive decoding needs an unconditioned model");
    int total = np + n;
    if (n < 0 || total > u->m.cfg.seq_len)
        return luaL_error(L, "model:generate: prompt %d + n %d exceeds the model's seq_len %d", np,
                          n, u->m.cfg.seq_len);
    int32_t *seq = lua_newuserdatauv(L, (size_t)total * sizeof *seq, 0);
    memcpy(seq, prompt, (size_t)np * sizeof *seq);
    int32_t *pos = lua_newuserdatauv(L, (size_t)total * sizeof *pos, 0);
    attn_row *rows = lua_newuserdatauv(L, (size_t)total * sizeof *rows, 0);
    for (int i = 0; i < total; i++)
        pos[i] = i;
    mask_rows_causal(rows, total);
    rng r;
    rng_init(&r, (uint64_t)seed);
    error e = {0};
    int V = u->m.cfg.vocab;
    float *logits;
    if (cache) {
        kv_cache kc;
        if (kv_cache_init(&kc, &u->m, 1, total, &e) != HDLM_OK) return l_raise(L, &e);
        /* the prompt in one pass, then one position per step */
        model_batch mb = {1, np, seq, pos, NULL, rows, NULL, NULL, 0};
        int rc = model_forward_cached(&u->m, &kc, &mb, 1, &logits, &e);
        for (int i = np; i < total && rc == HDLM_OK; i++) {
            seq[i] = draw_token(logits + (size_t)(i - np == 0 ? np - 1 : 0) * V, V, temp, &r);
            if (i + 1 == total) break;
            model_batch one = {1, 1, seq + i, pos + i, NULL, rows + i, NULL, NULL, 0};
            rc = model_forward_cached(&u->m, &kc, &one, 1, &logits, &e);
        }
        kv_cache_free(&kc);
        if (rc != HDLM_OK) return l_raise(L, &e);
    } else {
        for (int i = np; i < total; i++) {
            model_batch mb = {1, i, seq, pos, NULL, rows, NULL, NULL, 0};
            if (model_forward(&u->m, &mb, &logits, &e) != HDLM_OK) return l_raise(L, &e);
            seq[i] = draw_token(logits + (size_t)(i - 1) * V, V, temp, &r);
        }
    }
    lua_createtable(L, total, 0);
    for (int i = 0; i < total; i++) {
        lua_pushinteger(L, seq[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* model:set_precision("bf16" | "f32"): the precision of the model's products from now on
 * (decoding with bf16 weights); refused with the missing piece named when bf16 cannot run. */
static int model_set_precision_l(lua_State *L) {
    l_model *u = check_model(L, 1);
    const char *p = luaL_checkstring(L, 2);
    int prec = train_precision_from_name(p);
    if (prec < 0)
        return luaL_error(L, "model:set_precision: expected 'f32' or 'bf16', got '%s'", p);
    error e = {0};
    if (model_set_precision(&u->m, prec == TRAIN_BF16, "model:set_precision(\"bf16\")", &e) !=
        HDLM_OK)
        return l_raise(L, &e);
    lua_settop(L, 1);
    return 1;
}

/* model:save(path) writes the weights as safetensors */
static int model_index(lua_State *L) {
    l_model *u = luaL_checkudata(L, 1, MODEL_MT);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "n_params"))
        lua_pushinteger(L, (lua_Integer)u->m.n_params);
    else if (!strcmp(k, "vocab"))
        lua_pushinteger(L, u->m.cfg.vocab);
    else if (!strcmp(k, "d_model"))
        lua_pushinteger(L, u->m.cfg.d_model);
    else if (!strcmp(k, "n_layer"))
        lua_pushinteger(L, u->m.cfg.n_layer);
    else if (!strcmp(k, "n_head"))
        lua_pushinteger(L, u->m.cfg.n_head);
    else if (!strcmp(k, "seq_len"))
        lua_pushinteger(L, u->m.cfg.seq_len);
    else if (!strcmp(k, "precision"))
        lua_pushstring(L, u->m.bf16 ? "bf16" : "f32");
    else if (!strcmp(k, "objective"))
        lua_pushstring(L, u->objective ? train_objective_name(u->objective) : NULL);
    else {
        lua_getmetatable(L, 1);
        lua_getfield(L, -1, "__methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

static int model_tostring(lua_State *L) {
    l_model *u = luaL_checkudata(L, 1, MODEL_MT);
    lua_pushfstring(L, "hdlm.Model(d_model %d, %d layers, %d heads, vocab %d, %d params)",
                    u->m.cfg.d_model, u->m.cfg.n_layer, u->m.cfg.n_head, u->m.cfg.vocab,
                    (int)u->m.n_params);
    return 1;
}

void l_model_register(lua_State *L, int ctx_idx) {
    static const luaL_Reg methods[] = {{"forward", model_forward_l},
                                       {"generate", model_generate},
                                       {"set_precision", model_set_precision_l},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", model_gc}, {"__index", model_index}, {"__tostring", model_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, MODEL_MT);
    lua_pushvalue(L, ctx_idx);
    luaL_setfuncs(L, meta, 1);
    lua_newtable(L);
    lua_pushvalue(L, ctx_idx);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
    lua_pushvalue(L, ctx_idx);
    lua_pushcclosure(L, l_model_new, 1);
    lua_setfield(L, -2, "model");
}
