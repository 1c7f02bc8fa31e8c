/* Training into a run's row: which row a training writes to (a new one, the run it continues, or
 * the finished run it returns), the row's creation with the script's provenance, and the training
 * loop that logs metrics, writes checkpoints with their rows and stops gracefully on a signal.
 * db:train is these steps around a trainer the bindings configure from the option table. */
#ifndef HDLM_RUN_TRAIN_H
#define HDLM_RUN_TRAIN_H

#include "diffusion/train.h"
#include "run/run.h"

/* The script a run row records (runs.script and its content). */
typedef struct run_script {
    const char *path; /* as recorded in runs.script */
    const char *text; /* the file's bytes (NULL for an embedded command) */
    size_t bytes;
    const char *sha256; /* hex, NULL without a file */
} run_script;

/* Begins a row (kind, name, seed, config JSON) with this machine's provenance and the script; a
 * collective call under mpirun (rank 0 inserts, every rank gets the id). */
int run_begin(store *st, const run_script *scr, const char *name, const char *kind, int64_t seed,
              const char *config, int64_t resumed_from, int64_t *id, error *e);

/* What a prepared training found (trainer_resume) and wants. */
typedef struct run_train_info {
    const char *config_json; /* the resolved config: every option, defaults included */
    int resumed;             /* a checkpoint was loaded */
    int64_t step, steps;     /* step reached (resumed at; 0 when fresh), steps wanted */
    const char *ckpt_dir;    /* absolute; "" = none */
    const char *ckpt_path;   /* weights file of the checkpoint resumed from ("" = none) */
    const char *given_path;  /* the same as checkpoint_dir was spelled (rows of older hdlm) */
} run_train_info;

/* Which row a training writes to. A training that resumed from a checkpoint belongs with the run
 * that wrote it (R: the run whose checkpoint row names the file; else the newest run with rows in
 * that directory; else the newest training run whose config names the directory). Then:
 *   R done, same name, nothing left to train       -> R itself is returned; no new row
 *   R interrupted, failed or done (stop_after), same name, same resolved config (apart from
 *     stop_after, resume, threads), same git revision and hdlm version  -> R's row continues
 *   otherwise (or R still running)                 -> a new row with resumed_from = R
 * A training that starts fresh always gets a new row. */
enum { RUN_TRAIN_NEW, RUN_TRAIN_CONTINUE, RUN_TRAIN_EXISTING };

typedef struct run_train_target {
    int mode;
    int64_t id;   /* RUN_TRAIN_CONTINUE / RUN_TRAIN_EXISTING: the run */
    int64_t from; /* RUN_TRAIN_NEW: the run resumed from (0 = none) */
} run_train_target;

/* Decides (rank 0) and shares the target; a continued row is marked running again. */
int run_train_choose(store *st, const run_train_info *ti, const char *name, run_train_target *out,
                     error *e);

/* The plugins of a method run (noise NULL: objective ar/mask), recorded in run_plugins. */
typedef struct run_train_method {
    const plugin_instance *noise;
    const plugin_instance *sched; /* NULL for a schedule written in Lua */
    const hyper *h;
} run_train_method;

typedef struct run_train_summary {
    double loss, tokens_per_s, allreduce_time; /* seconds per step */
    int world;
    int64_t steps, steps_trained;
} run_train_summary;

/* Trains t into run_id (train = 1: records the plugins and the parameter count, logs every
 * log_every steps, evaluates every eval_every, checkpoints every ckpt_every and at the end, stops
 * at stop_after (> 0) or on SIGINT/SIGTERM with a checkpoint), then puts the EMA weights in front.
 * train = 0: only that (a finished run returned as it is). The summary's loss is the last logged
 * one of history_run (or run_id) when no step was trained. */
int run_train(trainer *t, const run_train_method *pm, int64_t stop_after, store *st, int64_t run_id,
              int train, int64_t history_run, run_train_summary *out, error *e);

#endif
