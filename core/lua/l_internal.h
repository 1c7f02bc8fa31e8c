/* Shared pieces of the Lua bindings: the host context (an upvalue of every binding, not a
 * global), argument checks with "did you mean" messages, and Lua value <-> JSON. */
#ifndef HDLM_L_INTERNAL_H
#define HDLM_L_INTERNAL_H

#include "base/error.h"
#include "plugin/host.h"
#include "store/store.h"

#include <lauxlib.h>
#include <lua.h>

typedef struct l_run l_run; /* l_store.c */

typedef struct l_ctx {
    plugin_registry *plugins; /* loaded on first use */
    char refusals[8192];      /* plugins that were refused, one per line */
    l_run *open_runs;         /* runs begun and not yet ended (marked failed on a script error) */
    const char *db_path;
    const char *script;      /* as recorded in runs.script: the absolute path of a file */
    const char *script_text; /* the file's bytes as run (NULL for an embedded command) */
    size_t script_bytes;
    char script_sha256[65]; /* "" without a file */
} l_ctx;

#define L_CTX(L) ((l_ctx *)lua_touserdata((L), lua_upvalueindex(1)))

/* Checks that every string key of the table at idx is in allowed (NULL-terminated); otherwise
 * raises "<what>: unknown key 'x' (did you mean 'y'?); allowed: a, b, c". */
void l_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed);
/* Field readers for option tables: raise "<what>: key 'k' must be a <type>, got <type>". */
const char *l_opt_string(lua_State *L, int idx, const char *what, const char *key, const char *def);
double l_opt_number(lua_State *L, int idx, const char *what, const char *key, double def);
long long l_opt_integer(lua_State *L, int idx, const char *what, const char *key, long long def);
int l_opt_bool(lua_State *L, int idx, const char *what, const char *key, int def);
/* Raises the error's message as a Lua error. */
int l_raise(lua_State *L, const error *e);
/* Serialises the Lua value at idx to JSON (tables with keys 1..n are arrays, other tables
 * objects with sorted keys). Pushes the JSON string. Raises on cycles/functions. */
void l_push_json(lua_State *L, int idx);
/* A plugin spec in the form the store records ({name = "x", options = {...}}, optionally with
 * version and sha256) at idx is replaced in place by the short form {"x", key = value, ...}, so
 * that a spec read back from runs.config or a sample works wherever a spec is taken. Anything
 * else is left alone. */
void l_spec_normalize(lua_State *L, int idx);
/* The one plugin spec -> options parser of every binding: the spec table at t ({"name", key =
 * value, ...}, or the stored {name =, options =} form) is checked with one wording of errors
 * ("<what>: ..."), before anything is allocated, and turned into options; *name receives the
 * plugin name (kept alive by the table). For noise, "vocab" is a creation argument, not an option:
 * it fills args->vocab unless that is already > 0 (the corpus'). Caller owns the result
 * (plugin_instance_create takes it). */
plugin_opts *l_spec_to_opts(lua_State *L, int t, uint32_t kind, const char *what, const char **name,
                            plugin_create_args *args);
/* l_spec_to_opts, then plugin_instance_create with args (NULL: none). Raises "<what>: <message>"
 * on any failure, leaking nothing. */
plugin_instance *l_plugin_from_spec(lua_State *L, int t, uint32_t kind, const char *what,
                                    const plugin_create_args *args);
/* The model of a Model userdata (and its tokenizer when tok != NULL); raises when not one. */
struct model;
struct tokenizer;
struct model *l_model_of(lua_State *L, int idx, struct tokenizer *tok);
/* A Run userdata holds a C run (run/run.h): a row of a store and, once trained or attached, the
 * run's parts — model, noise, schedule, layout. Its uservalues only keep the Lua objects behind
 * them alive (1 store, 2 Model, 3 summary table, 4 Schedule). l_check_run: the run of the Run at
 * idx (raises when it is not one or its store was closed). l_run_parts: the same, raising
 * "<what>: run N has no model with a noise process" when it has no parts (an 'ar'/'mask' run, or
 * one neither trained in this script nor brought back). */
struct run;
struct run *l_check_run(lua_State *L, int idx);
const struct run *l_run_parts(lua_State *L, int idx, const char *what);
/* run:sample{...} (l_sample.c), run:eval{...} and run:gen_eval{...} (l_eval.c); the Run is
 * argument 1. */
int l_run_sample(lua_State *L);
int l_run_eval(lua_State *L);
int l_run_gen_eval(lua_State *L);
/* Pushes a Model userdata that takes over *m (left zeroed). */
void l_push_model(lua_State *L, struct model *m, const struct tokenizer *tok, int objective);
/* db:attach{...} into the Run at run_idx (the Store is argument 1, the table argument 2). */
int l_attach_run(lua_State *L, int run_idx);
/* require "hdlm_run": { load = function(db, id) -> Run, {path =, step =} } (l_store.c). */
int l_open_hdlm_run(lua_State *L);
/* hdlm.json_decode(s) / hdlm.json_encode(v) */
int l_json_decode(lua_State *L);
int l_json_encode(lua_State *L);
/* Closest candidate by edit distance, or NULL when nothing is close. */
const char *l_closest(const char *key, const char *const *cands);

/* Data-parallel runs (l_dist.c): rank 0 calls the binding fn (with the caller's upvalue 1, the
 * context) and every rank returns its results or raises its error; alone, plain fn(L). */
int l_on_rank0(lua_State *L, lua_CFunction fn);

/* Opening functions of the binding files: each pushes nothing, registers into the module table
 * at the top of the stack, with the ctx upvalue at ctx_idx. */
void l_store_register(lua_State *L, int ctx_idx);
void l_data_register(lua_State *L, int ctx_idx);
void l_plugin_register(lua_State *L, int ctx_idx);
/* The context's plugin registry, loaded on first use (raises when it cannot be read). */
plugin_registry *l_plugins(lua_State *L, l_ctx *c);
/* The corpus of a Corpus userdata (raises when idx is not one). */
struct corpus;
const struct corpus *l_check_corpus(lua_State *L, int idx);
const char *l_corpus_path(lua_State *L, int idx);
/* db:train in two steps, so that nothing is written before training can start.
 * l_train_prepare checks the option table at opts_idx, builds the trainer on the corpus at
 * corpus_idx and resumes it from checkpoint_dir; it pushes a Training userdata and raises on
 * any refusal. l_train_info_of tells what it found. l_train_execute trains it into the Run r
 * (train = 1, logging to its row), or hands over the resumed weights without training (train =
 * 0: a finished run returned as it is); the Run then holds the model (EMA weights), the summary,
 * the schedule and the noise process (run/run_train.h: run_train). */
struct run_train_info;
int l_train_prepare(lua_State *L, int opts_idx, int corpus_idx, const struct corpus *data);
const struct run_train_info *l_train_info_of(lua_State *L, int idx);
void l_train_execute(lua_State *L, int prep_idx, int run_idx, int train, int64_t history_run);
void l_model_register(lua_State *L, int ctx_idx);
void l_noise_register(lua_State *L, int ctx_idx);
/* A caller-owned noise instance (free with plugin_instance_destroy) from the Noise userdata or the
 * spec table {"name", options...} at idx, made for `vocab` real tokens (a Noise's own vocab is
 * replaced; a table naming a different vocab is an error). Raises on failure. */
plugin_instance *l_to_noise(lua_State *L, int idx, int vocab);
/* hdlm.schedule and the Schedule userdata (l_schedule.c). l_check_schedule: the hyper of the
 * Schedule at idx (raises when it is not one); its Lua callbacks then run on L. l_to_schedule:
 * accepts a Schedule or a table ({"block_annealing", width = 4} or a Lua schedule) and pushes
 * the Schedule userdata, which owns the returned hyper: keep it on the stack while in use. */
struct hyper;
void l_schedule_register(lua_State *L, int ctx_idx);
const struct hyper *l_check_schedule(lua_State *L, int idx);
const struct hyper *l_to_schedule(lua_State *L, int idx);
/* The plugin instance behind the Schedule userdata at idx, or NULL for a schedule written in Lua.
 */
const plugin_instance *l_schedule_instance(lua_State *L, int idx);
/* Marks every open run ended with status (and error text); used by the host at script end. */
void l_runs_end_all(l_ctx *c, const char *status, const char *error_text);

#endif
