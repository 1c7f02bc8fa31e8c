/* The SQLite store: runs, plugins used, metrics, checkpoints, evaluations, samples and sampler
 * events. This module is the only one that includes sqlite3.h; its interface speaks the domain.
 * The schema is schema.sql at the top of the tree, embedded at build time. It is split into
 * numbered sections ("-- migration: N"); PRAGMA user_version records the last one applied, a new
 * database gets them all, an older one is migrated forward in one transaction, and a database
 * newer than the binary is refused. WAL, foreign keys, busy handling (several processes may write
 * one database at once). */
#ifndef HDLM_STORE_H
#define HDLM_STORE_H

#include "base/error.h"

#include <stdint.h>
#include <stdio.h>

typedef struct store store;

enum { STORE_READONLY = 1 << 0, STORE_FOLLOWER = 1 << 1 };

/* Opens (creating if needed, unless STORE_READONLY) and migrates. Errors name the file: not a
 * database, newer schema than this binary, read-only directory, locked beyond the busy timeout.
 * STORE_FOLLOWER is for ranks > 0 of a multi-process run (dist.h), where rank 0 writes the rows:
 * every write succeeds without writing (store_run_begin gives id 0; the caller takes rank 0's),
 * and queries read the file read-only when this machine has it (open it after rank 0 did). */
int store_open(const char *path, int flags, store **out, error *e);
void store_close(store *s); /* flushes buffered metrics; accepts NULL */
const char *store_path(const store *s);
int store_schema_version(store *s);    /* user_version of the open database */
int store_binary_schema_version(void); /* highest migration this binary knows */
/* Applies migrations 1..upto only (tests of the migration path). */
int store_open_at_version(const char *path, int upto, store **out, error *e);
/* How long a write waits for another process's transaction before failing with "database is
 * locked" (default 30000 ms). */
int store_set_busy_timeout(store *s, int ms);

/* ---- runs ---- */
typedef struct store_run_info {
    const char *name;
    const char *kind;        /* "train", "prepare", "script", "sample", "eval", ... */
    const char *config_json; /* full resolved config */
    int64_t seed;
    const char *git_rev;
    int git_dirty;
    const char *host;
    const char *cpu;
    const char *blas;
    int threads;
    int world_size;
    const char *script; /* script path or command line */
    const char *hdlm_version;
    /* the script's content (schema 4): its text goes to `scripts` once per distinct sha256 */
    const char *script_sha256; /* hex; NULL when there is no file (an embedded command) */
    const char *script_text;
    int64_t script_bytes;
    int64_t resumed_from; /* the run whose checkpoint this one resumed from; 0 = none */
} store_run_info;

int store_run_begin(store *s, const store_run_info *info, int64_t *run_id, error *e);
/* Continues a finished run (interrupted, failed or done) as 'running' again in this process:
 * clears error and ended_at, counts the resume in runs.resumes, records this host and pid, and
 * logs the metric 'resume' = step at `step`. Refuses a run that is 'running'. */
int store_run_continue(store *s, int64_t run_id, int64_t step, error *e);
/* status: "done", "failed", "interrupted"; error_text may be NULL. Flushes metrics first. */
int store_run_end(store *s, int64_t run_id, const char *status, const char *error_text, error *e);
int store_run_plugin(store *s, int64_t run_id, const char *kind, const char *name,
                     const char *version, int abi, const char *file, const char *hash,
                     const char *options_json, error *e);

/* ---- metrics: buffered and written in batched transactions ----
 * A batch is written when 256 rows are waiting, when the oldest waiting row is 2 s old (checked
 * at the next store_metric), and by store_flush, store_run_end, store_query* and store_close.
 * Logging the same (run, name, step) again replaces the value; NaN is stored as NULL. */
int store_metric(store *s, int64_t run_id, int64_t step, const char *name, double value, error *e);
int store_flush(store *s, error *e);

/* ---- checkpoints, evaluations, samples ---- */
int store_checkpoint(store *s, int64_t run_id, int64_t step, const char *path, const char *hash,
                     int64_t bytes, int64_t *checkpoint_id, error *e);
int store_evaluation(store *s, int64_t run_id, int64_t checkpoint_id /* 0 = none */,
                     const char *metric, double value, double std_error, const char *settings_json,
                     error *e);
/* The same with the per-sequence values items[0..n_items) (evaluation_items; nats per token, none
 * NaN) in one transaction; *evaluation_id (may be NULL) receives the new row's id. */
int store_evaluation_items(store *s, int64_t run_id, int64_t checkpoint_id, const char *metric,
                           double value, double std_error, const char *settings_json,
                           const double *items, int64_t n_items, int64_t *evaluation_id, error *e);

typedef struct store_sample_info {
    int64_t run_id;
    int64_t checkpoint_id; /* 0 = none */
    const char *text;
    const int32_t *tokens;
    int64_t n_tokens;
    const char *sampler;  /* JSON: {"name":..,"version":..,"options":{..}} */
    const char *schedule; /* JSON */
    const char *noise;    /* JSON */
    const char *settings_json;
    int64_t seed;
    int64_t steps;
    int64_t nfe;
    double wall_time;
    const char *metrics_json; /* may be NULL */
} store_sample_info;

typedef struct store_event {
    int64_t step, position;
    int32_t old_token, new_token;
    double prob;
    int kind; /* HDLM_EVENT_* */
} store_event;

int store_sample(store *s, const store_sample_info *info, const store_event *events,
                 int64_t n_events, int64_t *sample_id, error *e);

/* ---- generic queries ---- */
enum { STORE_NULL = 0, STORE_INT = 1, STORE_REAL = 2, STORE_TEXT = 3, STORE_BLOB = 4 };
typedef struct store_value {
    int type;
    int64_t i;
    double d;
    const char *s; /* text or blob bytes; valid during the callback only */
    int64_t len;
} store_value;

/* Called once per row; return non-zero to stop. names/vals have ncol entries. */
typedef int (*store_row_fn)(void *ud, int ncol, const char *const *names, const store_value *vals);

/* Runs sql (one or more statements; the rows of every statement that returns rows go to cb,
 * which may be NULL). Buffered metrics are flushed first, so queries see them.
 * Parameters: none (use store_query_params for bound values; each statement binds its own
 * ?1..?n from the start of params, and needing more than nparams is an error). */
int store_query(store *s, const char *sql, store_row_fn cb, void *ud, error *e);
int store_query_params(store *s, const char *sql, int nparams, const store_value *params,
                       store_row_fn cb, void *ud, error *e);

/* Called once per statement that returns columns, before its rows (also when it has none);
 * non-zero stops with an error. */
typedef int (*store_cols_fn)(void *ud, int ncol, const char *const *names);
/* store_query with the column names of each result set first (printing a header for no rows). */
int store_query_cols(store *s, const char *sql, store_cols_fn cols, store_row_fn rows, void *ud,
                     error *e);

/* Rows changed by the statements of this connection so far (inserts, updates, deletes). */
int64_t store_changes(store *s);

/* Marks runs left "running" by a process that no longer exists as "interrupted". */
int store_reap_runs(store *s, error *e);

/* What deleting a run takes with it (counted before the delete). */
typedef struct store_run_counts {
    int64_t metrics, checkpoints, evaluations, items, samples, events, plugins;
    int64_t sweep_points; /* points whose run_id becomes NULL (the points stay) */
    int64_t resumed_by;   /* runs whose resumed_from becomes NULL */
} store_run_counts;

/* Deletes the runs ids[0..n) and everything they own (metrics, checkpoints rows, evaluations and
 * their items, samples and their events, run_plugins) in one transaction, with foreign keys on;
 * sweep points and resumed_from links that named them become NULL. All or nothing: a missing id
 * or a run still 'running' (reap first) refuses the whole call, naming it. counts (n entries, may
 * be NULL) receives what each run took; dry_run counts and rolls back. Scripts no run refers to
 * any more are deleted too. */
int store_runs_delete(store *s, const int64_t *ids, size_t n, int dry_run, store_run_counts *counts,
                      error *e);

#endif
