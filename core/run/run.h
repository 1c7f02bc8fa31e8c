/* A run as the platform works with it: its row in the store, its model, noise process,
 * hyperschedule and attention layout. Brought back from the store (run_load: the newest
 * checkpoint, EMA weights when saved, the plugins recorded in run_plugins, the layout of the run's
 * config) or assembled by a caller that holds the parts (the Lua bindings after db:train). The
 * work done with it lives beside it: run_sample.h (sample and store), run_eval.h (bound, quality
 * of generated text), run_train.h (train and log into a run's row). The Lua bindings and the
 * command line both call these; neither holds any of the logic. */
#ifndef HDLM_RUN_H
#define HDLM_RUN_H

#include "base/error.h"
#include "data/tokenizer.h"
#include "diffusion/hyper.h"
#include "nn/model.h"
#include "plugin/host.h"
#include "store/store.h"

#include <stdint.h>

/* The attention layout sampling and evaluation reuse from training (MASK_CTX_*, MASK_BLOCK_*;
 * context_width 0 = hyper_mask_width's default). */
typedef struct run_layout {
    int context, block_type, context_width;
} run_layout;

typedef struct run {
    store *st; /* borrowed */
    int64_t id;
    model *m; /* the weights sampling and evaluation use */
    tokenizer tok;
    plugin_instance *noise;       /* owned (run_free destroys it); NULL: no noise process */
    const hyper *h;               /* the hyperschedule */
    const plugin_instance *sched; /* the plugin behind h; NULL for a schedule written in Lua */
    run_layout layout;
    /* what run_load made (owned; NULL/0 otherwise) */
    model *own_model;
    plugin_instance *own_sched;
    hyper own_h;
    int objective;     /* OBJ_* of the checkpoint run_load brought back */
    int64_t ckpt_step; /* that checkpoint */
    char ckpt_path[1300];
} run;

/* Brings run id of st back (out must stay where it is: out->h points into it): refuses a missing
 * run, a run without checkpoint, without noise and schedule (objective 'ar' or 'mask'), or with a
 * schedule written in Lua, each with one message naming the run. reg: the plugin registry the
 * recorded plugins are made from. */
int run_load(store *st, int64_t id, plugin_registry *reg, run *out, error *e);
/* Frees what the run owns (its noise instance, and what run_load made). Accepts a zeroed run. */
void run_free(run *r);

/* The real tokens of the run's model (its vocabulary minus the noise process's extra symbols). */
int32_t run_real_tokens(const run *r);
/* The newest checkpoint row of run id (0 when none). */
int run_latest_checkpoint(store *st, int64_t id, int64_t *ckpt_id, error *e);

/* The corpus file recorded in run id's config (*path malloc'd; NULL when it records none). */
int run_config_corpus(store *st, int64_t id, char **path, error *e);

/* A model from an hdlm checkpoint file: its config, forward settings and tokenizer (kind 0 when
 * it names none or cannot be loaded), the objective it was trained with (OBJ_*, 0 unknown).
 * Refuses a tokenizer whose vocabulary changed since training. */
int run_model_load(const char *path, model *m, tokenizer *tok, int *objective, error *e);

/* Plugin instances as runs use them. A noise process made for `vocab` real tokens (the option
 * `vocab` is set; its extra-symbol count is checked). A schedule with its hyper (h filled; h->ctx
 * is the instance). Both take ownership of opts, also on failure; `what` starts messages. */
int run_noise_new(plugin_registry *reg, const char *name, plugin_opts *opts, int32_t vocab,
                  const char *what, plugin_instance **out, error *e);
int run_schedule_new(plugin_registry *reg, const char *name, plugin_opts *opts,
                     plugin_instance **out, hyper *h, error *e);
/* {"name":..,"version":..,"options":{..},"sha256":..} of a plugin instance, or of the Lua schedule
 * h when pi is NULL ({"name":..,"version":"lua","options":{}}). Caller frees. */
char *run_plugin_json(const plugin_instance *pi, const hyper *h);
/* A stored plugin option object (JSON text) as an option set; NULL json: none. */
int run_opts_from_json(const char *json, plugin_opts **out, error *e);

/* "did you mean": HDLM_EINVAL with "<what>: unknown key 'k' (did you mean 'x'?); allowed: ..." when
 * key is not in allowed (NULL-terminated). The message the Lua option tables give too. */
int run_check_key(const char *key, const char *const *allowed, const char *what, error *e);

#endif
