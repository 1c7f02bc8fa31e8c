/* Lua bindings of the model and the trainer:
 *   db:train{...} -> Run (finished), with run.model the trained model (EMA weights by default);
 *     in two steps (l_train_prepare, l_train_execute) so that l_store.c creates or continues
 *     the run's row only once every option has been checked and the checkpoint loaded
 *   hdlm.model{d_model=..., ...} or hdlm.model{checkpoint="x.safetensors"} -> Model
 *   model:forward(tokens, {sigma=, states=, context=, block=, block_type=, positions=})
 *     -> logits (T x V)
 *   model:generate{prompt=, n=, temperature=, seed=, cache=} -> token ids (autoregressive)
 * Option tables are checked key by key; errors name the key and the allowed ones. */
#include "base/json.h"
#include "base/log.h"
#include "base/rng.h"
#include "data/tokenizer.h"
#include "data/tokfile.h"
#include "diffusion/train.h"
#include "dist/dist.h"
#include "l_internal.h"
#include "nn/mask.h"
#include "run/run_train.h"
#include "store/store.h"
#include "tensor/blas.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
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

void l_push_model(lua_State *L, model *m, const tokenizer *tok, int objective) {
    l_model *u = new_model_ud(L);
    u->m = *m;
    memset(m, 0, sizeof *m);
    u->objective = objective;
    if (tok) u->tok = *tok;
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
    "low_discrepancy",
    /* recorded in the run's config only (hdlm sweep) */
    "sweep", "sweep_key", NULL};

/* A noise instance owned by a userdata, so that a Lua error cannot leak it. */
typedef struct noise_guard {
    plugin_instance *inst;
} noise_guard;

static plugin_instance *noise_of_guard(lua_State *L, int idx) {
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
    if (g->inst->info.flags & HDLM_INFO_INPUT_MIX) /* the process's RADD input mix γ */
        cfg->model.mix_gamma = (float)g->inst->info.input_mix;
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
    run_train_info info;
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

const run_train_info *l_train_info_of(lua_State *L, int idx) {
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

/* The model's sizes and forward settings as the resolved config records them (pushed). */
static void push_model_config(lua_State *L, const model_config *mc) {
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
}

#define SET_I(k, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, t, (k)))
#define SET_N(k, v) (lua_pushnumber(L, (v)), lua_setfield(L, t, (k)))
#define SET_S(k, v) (lua_pushstring(L, (v)), lua_setfield(L, t, (k)))
#define SET_B(k, v) (lua_pushboolean(L, (v)), lua_setfield(L, t, (k)))

/* The optimisation and logging options into the config table at t. */
static void set_train_options(lua_State *L, int t, int o, const train_config *c) {
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
}

/* The resolved config (every option with the value training uses, defaults included) as JSON,
 * pushed. Keys sorted (l_push_json), so equal configs give equal text. */
static void push_resolved_config(lua_State *L, int o, const l_training *tr, const char *data_path,
                                 int sched_idx, int guard_idx) {
    const train_config *c = &tr->cfg;
    lua_createtable(L, 0, 48);
    int t = lua_gettop(L);
    lua_getfield(L, o, "name");
    lua_setfield(L, t, "name");
    char abs[4096];
    SET_S("data", data_path && realpath(data_path, abs) ? abs : data_path);
    SET_S("objective", train_objective_name(c->objective));
    push_model_config(L, &tr->t.m.cfg);
    lua_setfield(L, t, "model");
    set_train_options(L, t, o, c);
    SET_I("stop_after", tr->stop_after);
    if (tr->has_noise) {
        push_spec(L, noise_of_guard(L, guard_idx), NULL);
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
    l_push_json(L, t);
    lua_remove(L, t);
}
#undef SET_I
#undef SET_N
#undef SET_S
#undef SET_B

/* The objective (from `noise` and `objective`), the model and the optimisation options. */
static void read_train_config(lua_State *L, int o, train_config *cfg, int has_noise) {
    const char *W = "db:train";
    const char *obj = l_opt_string(L, o, W, "objective", has_noise ? "method" : "ar");
    cfg->objective = train_objective_from_name(obj);
    if (!cfg->objective)
        luaL_error(L, "db:train: key 'objective' must be 'ar', 'mask' or 'method', got '%s'", obj);
    if ((cfg->objective == OBJ_METHOD) != has_noise)
        luaL_error(L,
                   has_noise ? "db:train: objective '%s' does not take a noise process (leave "
                               "objective out to train the method)"
                             : "db:train: objective '%s' needs 'noise' and 'schedule'",
                   obj);
    lua_getfield(L, o, "model");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        luaL_error(L, "db:train: key 'model' must be a table, got %s", luaL_typename(L, -1));
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    cfg->model.mask_id = -1;
    read_model_config(L, lua_gettop(L), "db:train model", &cfg->model, 1);
    lua_pop(L, 1);
    cfg->steps = l_opt_integer(L, o, W, "steps", 100);
    cfg->batch = (int)l_opt_integer(L, o, W, "batch", 8);
    cfg->accum = (int)l_opt_integer(L, o, W, "accum", 1);
    cfg->seed = (uint64_t)l_opt_integer(L, o, W, "seed", 0);
    cfg->opt.lr = l_opt_number(L, o, W, "lr", 3e-4);
    cfg->opt.min_lr = l_opt_number(L, o, W, "min_lr", cfg->opt.lr * 0.1);
    cfg->opt.warmup = l_opt_integer(L, o, W, "warmup", 0);
    cfg->opt.steps = cfg->steps;
    const char *sched = l_opt_string(L, o, W, "lr_schedule", "cosine");
    cfg->opt.schedule = lr_schedule_from_name(sched);
    if (cfg->opt.schedule < 0)
        luaL_error(L, "db:train: key 'lr_schedule' must be cosine, linear or constant, got '%s'",
                   sched);
    cfg->opt.weight_decay = l_opt_number(L, o, W, "weight_decay", 0.1);
    cfg->opt.beta1 = l_opt_number(L, o, W, "beta1", 0.9);
    cfg->opt.beta2 = l_opt_number(L, o, W, "beta2", 0.95);
    cfg->opt.eps = l_opt_number(L, o, W, "eps", 1e-8);
    cfg->opt.clip = l_opt_number(L, o, W, "clip", 1.0);
    cfg->opt.ema = l_opt_number(L, o, W, "ema", 0.999);
    cfg->log_every = (int)l_opt_integer(L, o, W, "log_every", 10);
    cfg->eval_every = (int)l_opt_integer(L, o, W, "eval_every", 0);
    cfg->eval_batches = (int)l_opt_integer(L, o, W, "eval_batches", 4);
    cfg->ckpt_every = (int)l_opt_integer(L, o, W, "ckpt_every", 0);
    cfg->keep_ckpts = (int)l_opt_integer(L, o, W, "keep", 2);
}

/* checkpoint_dir into cfg (absolute, so that checkpoint rows and `hdlm sample`, `hdlm runs gc`
 * find the files from any directory; trailing slashes dropped so that paths compare equal).
 * Returns the directory as the script spelled it; *none_wanted: checkpoint_dir = false. */
static const char *read_ckpt_dir(lua_State *L, int o, train_config *cfg, int *none_wanted) {
    lua_getfield(L, o, "checkpoint_dir");
    *none_wanted = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    const char *dir = *none_wanted ? "" : l_opt_string(L, o, "db:train", "checkpoint_dir", "");
    char cwd[1024] = "";
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (dl && dir[0] != '/' && !getcwd(cwd, sizeof cwd))
        luaL_error(L, "db:train: cannot resolve checkpoint_dir '%s': %s", dir, strerror(errno));
    int wrote = snprintf(cfg->ckpt_dir, sizeof cfg->ckpt_dir, "%s%s%.*s", cwd, cwd[0] ? "/" : "",
                         (int)dl, dir);
    if (wrote < 0 || (size_t)wrote >= sizeof cfg->ckpt_dir - 40)
        luaL_error(L, "db:train: checkpoint_dir '%s' is too long (%d characters resolved)", dir,
                   wrote);
    return dir;
}

/* A new Training userdata (pushed) that keeps the corpus, the Schedule and the noise guard. */
static l_training *push_training(lua_State *L, int corpus_idx, int sched_idx, int guard_idx) {
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
    if (sched_idx) {
        lua_pushvalue(L, sched_idx);
        lua_setiuservalue(L, tr_idx, 2);
        lua_pushvalue(L, guard_idx);
        lua_setiuservalue(L, tr_idx, 3);
    }
    return tr;
}

/* Builds the trainer and resumes it from checkpoint_dir (resume = true). */
static void training_start(lua_State *L, l_training *tr, const train_config *cfg,
                           const corpus *data, int resume, const char *dir) {
    error e = {0};
    if (trainer_init(&tr->t, cfg, data, &e) != HDLM_OK) l_raise(L, &e);
    tr->live = 1;
    int found = 0;
    if (resume && trainer_resume(&tr->t, &found, &e) != HDLM_OK) {
        training_release(tr);
        l_raise(L, &e);
    }
    tr->cfg = tr->t.cfg;
    if (found && dist_rank() == 0)
        fprintf(stderr, "hdlm: resuming from step %lld of %s\n", (long long)tr->t.step, dir);
    if (found) {
        snprintf(tr->ckpt_path, sizeof tr->ckpt_path, "%s/step_%08lld.safetensors", cfg->ckpt_dir,
                 (long long)tr->t.step);
        snprintf(tr->given_path, sizeof tr->given_path, "%s/step_%08lld.safetensors", dir,
                 (long long)tr->t.step);
    }
    tr->info.resumed = found;
    tr->info.step = tr->t.step;
    tr->info.steps = cfg->steps;
    tr->info.ckpt_dir = tr->cfg.ckpt_dir;
    tr->info.ckpt_path = tr->ckpt_path;
    tr->info.given_path = tr->given_path;
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
    read_train_config(L, o, &cfg, has_noise);
    int no_ckpt_wanted;
    const char *dir = read_ckpt_dir(L, o, &cfg, &no_ckpt_wanted);
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
    l_training *tr = push_training(L, corpus_idx, sched_idx, guard_idx);
    int tr_idx = lua_gettop(L);
    tr->has_noise = has_noise;
    tr->stop_after = stop_after;
    snprintf(tr->given_dir, sizeof tr->given_dir, "%s", dir);
    training_start(L, tr, &cfg, data, resume, dir);
    push_resolved_config(L, o, tr, l_corpus_path(L, corpus_idx), sched_idx, guard_idx);
    lua_setiuservalue(L, tr_idx, 4);
    lua_getiuservalue(L, tr_idx, 4);
    tr->info.config_json = lua_tostring(L, -1); /* anchored by the uservalue */
    lua_pop(L, 1);
    lua_pushvalue(L, tr_idx);
    return 1;
}

/* ---- db:train, step 2: training into a run's row ---------------------------------------- */

static void push_summary(lua_State *L, const run_train_summary *s, const train_config *cfg,
                         int has_noise) {
    lua_createtable(L, 0, 9);
    lua_pushnumber(L, s->loss), lua_setfield(L, -2, "loss");
    lua_pushnumber(L, s->tokens_per_s), lua_setfield(L, -2, "tokens_per_s");
    lua_pushnumber(L, s->allreduce_time), lua_setfield(L, -2, "allreduce_time");
    lua_pushinteger(L, s->world), lua_setfield(L, -2, "world_size");
    lua_pushinteger(L, (lua_Integer)s->steps), lua_setfield(L, -2, "steps");
    lua_pushinteger(L, (lua_Integer)s->steps_trained), lua_setfield(L, -2, "steps_trained");
    if (has_noise) { /* the layout sampling must reuse */
        lua_pushstring(L, mask_context_name(cfg->method.context));
        lua_setfield(L, -2, "context");
        lua_pushstring(L, cfg->method.block_type == MASK_BLOCK_CAUSAL ? "causal" : "full");
        lua_setfield(L, -2, "block_type");
        lua_pushinteger(L, cfg->method.context_width);
        lua_setfield(L, -2, "context_width");
    }
}

void l_train_execute(lua_State *L, int prep_idx, int run_idx, int train, int64_t history_run) {
    prep_idx = lua_absindex(L, prep_idx);
    run_idx = lua_absindex(L, run_idx);
    l_training *tr = luaL_checkudata(L, prep_idx, TRAINING_MT);
    if (!tr->live) luaL_error(L, "db:train: this training was already run");
    run *r = l_check_run(L, run_idx);
    const train_config *cfg = &tr->cfg;
    lua_getiuservalue(L, prep_idx, 1);
    const corpus *data = l_check_corpus(L, -1);
    lua_getiuservalue(L, prep_idx, 2); /* the Schedule (nil without noise) */
    lua_getiuservalue(L, prep_idx, 3); /* the noise guard */
    noise_guard *g = luaL_testudata(L, -1, "hdlm.NoiseGuard");
    run_train_method pm = {g ? g->inst : NULL, tr->has_noise ? l_schedule_instance(L, -2) : NULL,
                           cfg->sched};
    run_train_summary sum;
    error e = {0};
    if (run_train(&tr->t, &pm, tr->stop_after, r->st, r->id, train, history_run, &sum, &e) !=
        HDLM_OK) {
        training_release(tr);
        l_raise(L, &e);
    }
    /* the Run takes the model (EMA weights in front), the schedule and the noise process */
    l_push_model(L, &tr->t.m, &data->tok, cfg->objective);
    r->m = l_model_of(L, -1, &r->tok);
    lua_setiuservalue(L, run_idx, 2);
    push_summary(L, &sum, cfg, tr->has_noise);
    lua_setiuservalue(L, run_idx, 3);
    if (tr->has_noise) {
        r->noise = g->inst;
        g->inst = NULL;
        r->h = cfg->sched;
        r->sched = pm.sched;
        r->layout =
            (run_layout){cfg->method.context, cfg->method.block_type, cfg->method.context_width};
        lua_pushvalue(L, -2);
        lua_setiuservalue(L, run_idx, 4);
    }
    training_release(tr);
    lua_pop(L, 3);
}

static const char *const attach_keys[] = {"run",     "model",      "noise",         "schedule",
                                          "context", "block_type", "context_width", NULL};

/* db:attach{run = id, model = Model, noise = spec|Noise, schedule = spec|Schedule, context =,
 * block_type =, context_width =} -> a (finished) Run that can sample: how a stored run is brought
 * back by hand. The Store is argument 1; the Run userdata comes from l_store.c. */
int l_attach_run(lua_State *L, int run_idx) {
    const char *W = "db:attach";
    run *r = l_check_run(L, run_idx);
    luaL_checktype(L, 2, LUA_TTABLE);
    l_check_keys(L, 2, W, attach_keys);
    lua_getfield(L, 2, "model");
    tokenizer tok;
    model *m = l_model_of(L, -1, &tok);
    lua_setiuservalue(L, run_idx, 2);
    lua_getfield(L, 2, "schedule");
    if (lua_isnil(L, -1)) return luaL_error(L, "%s: key 'schedule' is required", W);
    const hyper *h = l_to_schedule(L, lua_gettop(L));
    const plugin_instance *sp = l_schedule_instance(L, -1);
    lua_setiuservalue(L, run_idx, 4);
    lua_pop(L, 1);
    lua_getfield(L, 2, "noise");
    if (lua_isnil(L, -1)) return luaL_error(L, "%s: key 'noise' is required", W);
    int32_t V = m->cfg.mask_id >= 0 ? m->cfg.mask_id : (tok.vocab ? tok.vocab : m->cfg.vocab);
    run_layout lay = {mask_context_from_name(l_opt_string(L, 2, W, "context", "block_causal")),
                      mask_block_from_name(l_opt_string(L, 2, W, "block_type", "full")),
                      (int)l_opt_integer(L, 2, W, "context_width", 0)};
    plugin_instance *noise = l_to_noise(L, lua_gettop(L), V); /* the last thing that raises */
    plugin_instance_destroy(r->noise);
    r->noise = noise;
    r->m = m, r->tok = tok, r->h = h, r->sched = sp, r->layout = lay;
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
        l_model *u = new_model_ud(L);
        if (run_model_load(ckpt, &u->m, &u->tok, &u->objective, &e) != HDLM_OK)
            return l_raise(L, &e);
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

/* states = {"settled" | "active" | "worthless", ...} (T entries) into a userdata (pushed); without
 * states every position is settled with the given context (full = bidirectional). */
static uint8_t *read_states(lua_State *L, int o, int T) {
    uint8_t *state = lua_newuserdatauv(L, (size_t)T, 0);
    lua_getfield(L, o, "states");
    if (!lua_istable(L, -1)) {
        memset(state, HDLM_SETTLED, (size_t)T);
        lua_pop(L, 1);
        return state;
    }
    if ((int)lua_rawlen(L, -1) != T)
        luaL_error(L, "model:forward: 'states' has %d entries, tokens %d", (int)lua_rawlen(L, -1),
                   T);
    for (int i = 0; i < T; i++) {
        lua_rawgeti(L, -1, i + 1);
        const char *s = lua_tostring(L, -1);
        if (!s) luaL_error(L, "model:forward: states[%d] must be a string", i + 1);
        if (!strcmp(s, "settled"))
            state[i] = HDLM_SETTLED;
        else if (!strcmp(s, "active"))
            state[i] = HDLM_ACTIVE;
        else if (!strcmp(s, "worthless"))
            state[i] = HDLM_WORTHLESS;
        else
            luaL_error(L,
                       "model:forward: states[%d] must be settled, active or worthless, got '%s'",
                       i + 1, s);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return state;
}

/* sigma = a number or T numbers (a conditioned model only; pushed), NULL otherwise. */
static float *read_sigma(lua_State *L, int o, int T, const model *m) {
    if (!m->cfg.cond) return NULL;
    float *sigma = lua_newuserdatauv(L, (size_t)T * sizeof *sigma, 0);
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
        luaL_error(L, "model:forward: conditioned model needs 'sigma' (a number or %d numbers)", T);
    }
    lua_pop(L, 1);
    return sigma;
}

/* rotary positions: 0..T−1 unless given (any integers >= 0, e.g. an offset window); pushed */
static int32_t *read_positions(lua_State *L, int o, int T) {
    int32_t *pos = lua_newuserdatauv(L, (size_t)T * sizeof *pos, 0);
    lua_getfield(L, o, "positions");
    if (lua_isnil(L, -1)) {
        for (int i = 0; i < T; i++)
            pos[i] = i;
    } else {
        if (!lua_istable(L, -1) || (int)lua_rawlen(L, -1) != T)
            luaL_error(L, "model:forward: 'positions' must be a list of %d integers", T);
        for (int i = 0; i < T; i++) {
            lua_rawgeti(L, -1, i + 1);
            int ok;
            lua_Integer v = lua_tointegerx(L, -1, &ok);
            if (!ok || v < 0 || v > INT32_MAX)
                luaL_error(L, "model:forward: positions[%d] must be an integer >= 0", i + 1);
            pos[i] = (int32_t)v;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return pos;
}

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
    uint8_t *state = read_states(L, o, T);
    float *sigma = read_sigma(L, o, T, &u->m);
    int32_t *pos = read_positions(L, o, T);
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
    static const luaL_Reg methods[] = {
        {"forward", model_forward_l}, {"generate", model_generate}, {NULL, NULL}};
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
