/* `hdlm runs rm`, `hdlm runs gc` and `hdlm compare`: deleting runs with everything they own (one
 * transaction in the store, then their checkpoint files), collecting failed and empty runs and
 * checkpoint files no row refers to, and the paired comparison of two runs' bounds. Every
 * command prints what it deletes (or, with --dry-run, would delete). Files are removed only
 * after the rows' transaction committed, and never one that a remaining row, a directory's
 * `latest` or a running run may need. */
#include "app/store_cmds.h"

#include "base/error.h"
#include "store/compare.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int die(const error *e) {
    fprintf(stderr, "hdlm: %s\n", e->msg);
    return e->code == HDLM_OK ? 1 : (e->code < 0 ? -e->code : e->code);
}

/* "--db FILE" / "--db=FILE" out of argv (in place); returns the new argc. */
static int take_value(int argc, char **argv, const char *flag, const char **out) {
    size_t fl = strlen(flag);
    int w = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], flag) && i + 1 < argc) {
            *out = argv[++i];
            continue;
        }
        if (!strncmp(argv[i], flag, fl) && argv[i][fl] == '=') {
            *out = argv[i] + fl + 1;
            continue;
        }
        argv[w++] = argv[i];
    }
    return w;
}

static int take_flag(int argc, char **argv, const char *flag, int *out) {
    int w = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], flag)) {
            *out = 1;
            continue;
        }
        argv[w++] = argv[i];
    }
    return w;
}

int store_cmd_require_db(const char *db, const char *command) {
    struct stat st;
    if (!strcmp(db, ":memory:") || stat(db, &st) == 0) return 1;
    fprintf(stderr,
            "hdlm: %s: no such database file (hdlm %s reads an existing database; hdlm run and "
            "hdlm sweep create one)\n",
            db, command);
    return 0;
}

/* ---- small collections ---- */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static int strs_add(strs *s, const char *x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v, s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(x))) return -1;
    s->n++;
    return 0;
}

static int strs_has(const strs *s, const char *x) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return 1;
    return 0;
}

static void strs_free(strs *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Checkpoint paths as absolute ones: rows of an older hdlm hold paths relative to the directory
 * the run was started from, taken here as the current one. */
static void path_abs(const char *p, char *out, size_t cap) {
    char cwd[PATH_MAX];
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd))
        snprintf(out, cap, "%s", p);
    else
        snprintf(out, cap, "%s/%s", cwd, p);
}

static void path_dirname(const char *p, char *out, size_t cap) {
    const char *slash = strrchr(p, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else
        snprintf(out, cap, "%.*s", (int)(slash - p), p);
}

static int collect_text(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    if (vals[0].type != STORE_TEXT || !vals[0].s) return 0;
    char abs[PATH_MAX + 256];
    path_abs(vals[0].s, abs, sizeof abs);
    return strs_add(ud, abs) != 0;
}

static int collect_dir(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    if (vals[0].type != STORE_TEXT || !vals[0].s) return 0;
    char abs[PATH_MAX + 256], dir[PATH_MAX + 256];
    path_abs(vals[0].s, abs, sizeof abs);
    if (vals[1].i) /* a checkpoint file: its directory */
        path_dirname(abs, dir, sizeof dir);
    else
        snprintf(dir, sizeof dir, "%s", abs);
    return !strs_has(ud, dir) && strs_add(ud, dir) != 0;
}

static const char *human_bytes(int64_t b, char *out, size_t cap) {
    if (b >= 1 << 30)
        snprintf(out, cap, "%.1f GiB", (double)b / (1 << 30));
    else if (b >= 1 << 20)
        snprintf(out, cap, "%.1f MiB", (double)b / (1 << 20));
    else if (b >= 1 << 10)
        snprintf(out, cap, "%.1f KiB", (double)b / (1 << 10));
    else
        snprintf(out, cap, "%lld B", (long long)b);
    return out;
}

/* Deletes (or with dry_run only reports) one file; adds its size to *bytes. Missing: nothing. */
static int remove_file(const char *path, int dry_run, const char *why, int64_t *bytes,
                       int *n_files) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    char hb[32];
    if (!dry_run && unlink(path) != 0) {
        fprintf(stderr, "hdlm: %s: cannot delete: %s\n", path, strerror(errno));
        return -1;
    }
    printf("%s file %s (%s; %s)\n", dry_run ? "would delete" : "deleted", path,
           human_bytes((int64_t)st.st_size, hb, sizeof hb), why);
    *bytes += (int64_t)st.st_size;
    (*n_files)++;
    return 0;
}

/* The step `latest` of a checkpoint directory names, or -1. */
static long long latest_step(const char *dir) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/latest", dir);
    FILE *f = fopen(p, "r");
    long long step = -1;
    if (!f) return -1;
    if (fscanf(f, "%lld", &step) != 1) step = -1;
    fclose(f);
    return step;
}

/* A checkpoint file name "step_<digits><suffix>": its step and the weights file's name (the
 * three files of a step share the digits); -1 for anything else. */
static long long ckpt_file(const char *name, char *weights, size_t cap) {
    static const char *const suffixes[] = {".safetensors", ".ema.safetensors",
                                           ".state.safetensors"};
    if (strncmp(name, "step_", 5)) return -1;
    const char *p = name + 5;
    size_t digits = strspn(p, "0123456789");
    if (!digits || digits > 18) return -1;
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (!strcmp(p + digits, suffixes[i])) {
            snprintf(weights, cap, "step_%.*s.safetensors", (int)digits, p);
            return strtoll(p, NULL, 10);
        }
    return -1;
}

/* ---- what a run is, for the lines printed ---- */

typedef struct run_line {
    int64_t id;
    char name[128], kind[32], status[16], why[160];
} run_line;

typedef struct run_lines {
    run_line *v;
    size_t n, cap;
} run_lines;

static int collect_run(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    run_lines *r = ud;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        run_line *v = realloc(r->v, cap * sizeof *v);
        if (!v) return 1;
        r->v = v, r->cap = cap;
    }
    run_line *l = &r->v[r->n++];
    memset(l, 0, sizeof *l);
    l->id = vals[0].i;
    snprintf(l->name, sizeof l->name, "%s", vals[1].s ? vals[1].s : "");
    snprintf(l->kind, sizeof l->kind, "%s", vals[2].s ? vals[2].s : "");
    snprintf(l->status, sizeof l->status, "%s", vals[3].s ? vals[3].s : "");
    if (ncol > 4 && vals[4].type == STORE_TEXT) snprintf(l->why, sizeof l->why, "%s", vals[4].s);
    return 0;
}

/* "1 metric" / "2 metrics" */
static const char *count_of(int64_t n, const char *one, const char *many, char *out, size_t cap) {
    snprintf(out, cap, "%lld %s", (long long)n, n == 1 ? one : many);
    return out;
}

static void print_counts(const run_line *l, const store_run_counts *c, int dry_run) {
    char m[48], ck[48], ev[48], it[48], sa[48], se[48], pl[48];
    printf("%s run %lld (%s%s%s, %s)%s%s: %s, %s, %s (%s), %s (%s), %s",
           dry_run ? "would delete" : "deleted", (long long)l->id, l->name, l->name[0] ? ", " : "",
           l->kind, l->status, l->why[0] ? ": " : "", l->why,
           count_of(c->metrics, "metric", "metrics", m, sizeof m),
           count_of(c->checkpoints, "checkpoint row", "checkpoint rows", ck, sizeof ck),
           count_of(c->evaluations, "evaluation", "evaluations", ev, sizeof ev),
           count_of(c->items, "item", "items", it, sizeof it),
           count_of(c->samples, "sample", "samples", sa, sizeof sa),
           count_of(c->events, "event", "events", se, sizeof se),
           count_of(c->plugins, "plugin row", "plugin rows", pl, sizeof pl));
    if (c->sweep_points)
        printf("; %lld sweep point%s lose%s their run", (long long)c->sweep_points,
               c->sweep_points == 1 ? "" : "s", c->sweep_points == 1 ? "s" : "");
    if (c->resumed_by)
        printf("; %lld run%s resumed from it keep%s its rows", (long long)c->resumed_by,
               c->resumed_by == 1 ? "" : "s", c->resumed_by == 1 ? "s" : "");
    printf("\n");
}

/* "1,2,3" for an IN list (integers only, so no quoting issue). */
static char *id_list(const int64_t *ids, size_t n) {
    char *s = malloc(n * 24 + 2);
    if (!s) return NULL;
    size_t k = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, i ? ",%lld" : "%lld", (long long)ids[i]);
    if (!n) strcpy(s, "NULL");
    return s;
}

static int count_cb(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)ncol, (void)names;
    *(int64_t *)ud = vals[0].i;
    return 1;
}

/* Deletes the rows of runs ids (printing each), then the checkpoint files in paths that no
 * remaining row names, and a `latest` left naming a deleted step. */
static int delete_runs(store *s, const int64_t *ids, run_lines *lines, const strs *paths,
                       int dry_run, int keep_files, int *n_files, int64_t *bytes, error *e) {
    size_t n = lines->n;
    store_run_counts *counts = calloc(n ? n : 1, sizeof *counts);
    if (!counts) return error_set(e, HDLM_ENOMEM, "runs: out of memory");
    int rc = store_runs_delete(s, ids, n, dry_run, counts, e);
    for (size_t i = 0; i < n && rc == HDLM_OK; i++)
        print_counts(&lines->v[i], &counts[i], dry_run);
    free(counts);
    if (rc != HDLM_OK || keep_files) return rc;
    char *list = id_list(ids, n);
    if (!list) return error_set(e, HDLM_ENOMEM, "runs: out of memory");
    strs dirs = {0};
    for (size_t i = 0; i < paths->n && rc == HDLM_OK; i++) {
        /* a row of another run naming the same file keeps it (in a dry run the rows are still
         * there: those of the runs being deleted do not count) */
        char sql[256 + 64];
        int64_t refs = 0;
        snprintf(sql, sizeof sql, "SELECT count(*) FROM checkpoints WHERE path = ?1%s%s%s",
                 dry_run ? " AND run_id NOT IN (" : "", dry_run ? list : "", dry_run ? ")" : "");
        store_value p = {.type = STORE_TEXT, .s = paths->v[i]};
        if ((rc = store_query_params(s, sql, 1, &p, count_cb, &refs, e)) != HDLM_OK) break;
        if (refs) continue;
        const char *w = paths->v[i];
        size_t wl = strlen(w);
        static const char ext[] = ".safetensors";
        if (wl <= sizeof ext - 1 || strcmp(w + wl - (sizeof ext - 1), ext)) continue;
        char stem[PATH_MAX + 256], f[PATH_MAX + 300], dir[PATH_MAX + 256];
        snprintf(stem, sizeof stem, "%.*s", (int)(wl - (sizeof ext - 1)), w);
        remove_file(w, dry_run, "checkpoint of a deleted run", bytes, n_files);
        snprintf(f, sizeof f, "%s.ema.safetensors", stem);
        remove_file(f, dry_run, "checkpoint of a deleted run", bytes, n_files);
        snprintf(f, sizeof f, "%s.state.safetensors", stem);
        remove_file(f, dry_run, "checkpoint of a deleted run", bytes, n_files);
        path_dirname(w, dir, sizeof dir);
        if (!strs_has(&dirs, dir)) strs_add(&dirs, dir);
    }
    /* `latest` naming a step whose files are gone would make the next training fail to resume:
     * without it, the directory starts afresh */
    for (size_t i = 0; i < dirs.n && rc == HDLM_OK; i++) {
        long long step = latest_step(dirs.v[i]);
        if (step < 0) continue;
        char w[PATH_MAX + 64], lp[PATH_MAX + 16];
        snprintf(w, sizeof w, "%s/step_%08lld.safetensors", dirs.v[i], step);
        snprintf(lp, sizeof lp, "%s/latest", dirs.v[i]);
        struct stat st;
        int gone = dry_run ? strs_has(paths, w) : stat(w, &st) != 0;
        if (gone) remove_file(lp, dry_run, "it named a deleted checkpoint", bytes, n_files);
        if (!dry_run && rmdir(dirs.v[i]) == 0) printf("deleted empty directory %s\n", dirs.v[i]);
    }
    strs_free(&dirs);
    free(list);
    return rc;
}

static int open_for_admin(const char *db, store **s, error *e) {
    int rc = store_open(db, 0, s, e);
    if (rc == HDLM_OK) rc = store_reap_runs(*s, e); /* a dead process's run is not 'running' */
    return rc;
}

int store_cmd_runs_rm(int argc, char **argv, const char *db) {
    int dry_run = 0, keep_files = 0;
    argc = take_value(argc, argv, "--db", &db);
    argc = take_flag(argc, argv, "--dry-run", &dry_run);
    argc = take_flag(argc, argv, "--keep-files", &keep_files);
    if (argc < 1) {
        fprintf(stderr, "hdlm: runs rm: expected run ids (hdlm runs rm ID... [--db FILE] "
                        "[--dry-run] [--keep-files])\n");
        return 2;
    }
    int64_t *ids = calloc((size_t)argc, sizeof *ids);
    if (!ids) return 1;
    for (int i = 0; i < argc; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(argv[i], &end, 10);
        if (*end || end == argv[i] || errno || v < 1) {
            fprintf(stderr, "hdlm: runs rm: expected a run id (a positive integer), got '%s'\n",
                    argv[i]);
            free(ids);
            return 2;
        }
        ids[i] = v;
    }
    if (!store_cmd_require_db(db, "runs rm")) {
        free(ids);
        return 1;
    }
    error e = {0};
    store *s = NULL;
    int rc = open_for_admin(db, &s, &e);
    char *list = rc == HDLM_OK ? id_list(ids, (size_t)argc) : NULL;
    run_lines lines = {0};
    strs paths = {0};
    if (rc == HDLM_OK && !list) rc = error_set(&e, HDLM_ENOMEM, "runs rm: out of memory");
    if (rc == HDLM_OK) {
        /* in the order given, one line each (a missing id is refused by the delete) */
        for (int i = 0; i < argc && rc == HDLM_OK; i++) {
            store_value p = {.type = STORE_INT, .i = ids[i]};
            size_t before = lines.n;
            rc = store_query_params(s, "SELECT id, name, kind, status FROM runs WHERE id = ?", 1,
                                    &p, collect_run, &lines, &e);
            if (rc == HDLM_OK && lines.n == before)
                rc = error_set(&e, HDLM_EINVAL, "%s: no run %lld; nothing was deleted", db,
                               (long long)ids[i]);
        }
    }
    if (rc == HDLM_OK) {
        char sql[128];
        char *q = malloc(strlen(list) + sizeof sql);
        if (!q) rc = error_set(&e, HDLM_ENOMEM, "runs rm: out of memory");
        if (q) {
            sprintf(q, "SELECT DISTINCT path FROM checkpoints WHERE run_id IN (%s)", list);
            rc = store_query(s, q, collect_text, &paths, &e);
            free(q);
        }
    }
    int n_files = 0;
    int64_t bytes = 0;
    if (rc == HDLM_OK)
        rc = delete_runs(s, ids, &lines, &paths, dry_run, keep_files, &n_files, &bytes, &e);
    if (rc == HDLM_OK) {
        char hb[32];
        printf("%s %zu run%s and %d file%s (%s)%s\n", dry_run ? "would delete" : "deleted", lines.n,
               lines.n == 1 ? "" : "s", n_files, n_files == 1 ? "" : "s",
               human_bytes(bytes, hb, sizeof hb),
               dry_run ? "; nothing was changed (--dry-run)" : "");
    }
    free(list);
    free(lines.v);
    strs_free(&paths);
    free(ids);
    store_close(s);
    return rc == HDLM_OK ? 0 : die(&e);
}

/* Orphaned checkpoint files: in a directory that holds this database's checkpoints, the
 * step_N files no checkpoints row names, except the step `latest` names (a run killed between
 * moving `latest` and committing its row resumes from it) and directories a running run uses. */
static int gc_files(store *s, int dry_run, int *n_files, int64_t *bytes, error *e) {
    strs dirs = {0}, busy = {0}, refs = {0};
    int rc = store_query(s,
                         "SELECT path, 1 FROM checkpoints UNION SELECT json_extract(config, "
                         "'$.checkpoint_dir'), 0 FROM runs WHERE kind = 'train' AND "
                         "json_extract(config, '$.checkpoint_dir') <> ''",
                         collect_dir, &dirs, e);
    if (rc == HDLM_OK)
        rc = store_query(s,
                         "SELECT c.path, 1 FROM checkpoints c JOIN runs r ON r.id = c.run_id "
                         "WHERE r.status = 'running' UNION SELECT json_extract(config, "
                         "'$.checkpoint_dir'), 0 FROM runs WHERE status = 'running' AND "
                         "json_extract(config, '$.checkpoint_dir') <> ''",
                         collect_dir, &busy, e);
    if (rc == HDLM_OK) rc = store_query(s, "SELECT path FROM checkpoints", collect_text, &refs, e);
    for (size_t i = 0; i < dirs.n && rc == HDLM_OK; i++) {
        const char *dir = dirs.v[i];
        if (strs_has(&busy, dir)) {
            printf("skipped %s: a running run writes there\n", dir);
            continue;
        }
        DIR *d = opendir(dir);
        if (!d) continue; /* gone already, or another machine's path */
        long long latest = latest_step(dir);
        struct dirent *de;
        strs victims = {0};
        while ((de = readdir(d))) {
            char wname[64], w[PATH_MAX + 128];
            long long step = ckpt_file(de->d_name, wname, sizeof wname);
            if (step < 0 || step == latest) continue;
            snprintf(w, sizeof w, "%s/%s", dir, wname);
            if (strs_has(&refs, w)) continue;
            snprintf(w, sizeof w, "%s/%s", dir, de->d_name);
            strs_add(&victims, w);
        }
        closedir(d);
        for (size_t k = 0; k < victims.n; k++)
            remove_file(victims.v[k], dry_run, "no checkpoint row names it", bytes, n_files);
        strs_free(&victims);
    }
    strs_free(&dirs);
    strs_free(&busy);
    strs_free(&refs);
    return rc;
}

int store_cmd_runs_gc(int argc, char **argv, const char *db) {
    int dry_run = 0;
    argc = take_value(argc, argv, "--db", &db);
    argc = take_flag(argc, argv, "--dry-run", &dry_run);
    if (argc > 0) {
        fprintf(stderr,
                "hdlm: runs gc: unexpected argument '%s' (hdlm runs gc [--db FILE] "
                "[--dry-run])\n",
                argv[0]);
        return 2;
    }
    if (!store_cmd_require_db(db, "runs gc")) return 1;
    error e = {0};
    store *s = NULL;
    int rc = open_for_admin(db, &s, &e);
    /* What gc takes: runs that hold nothing worth keeping.
     *   failed: status 'failed' and no checkpoint, evaluation or sample (a failed run with
     *           checkpoints can be resumed: delete it with `runs rm` if it should go)
     *   empty:  status 'done' and nothing recorded: no checkpoint, evaluation or sample and no
     *           metric other than 'params' (the 0-step runs an older hdlm added when a finished
     *           script ran again) */
    run_lines lines = {0};
    if (rc == HDLM_OK)
        rc = store_query(
            s,
            "SELECT id, name, kind, status, CASE status WHEN 'failed' THEN 'failed: ' || "
            "CASE WHEN length(coalesce(error, '?')) > 80 THEN substr(error, 1, 77) || '...' "
            "ELSE coalesce(error, '?') END ELSE 'done with nothing recorded' END "
            "FROM runs r WHERE status IN ('failed', 'done') "
            "AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE run_id = r.id) "
            "AND NOT EXISTS (SELECT 1 FROM evaluations WHERE run_id = r.id) "
            "AND NOT EXISTS (SELECT 1 FROM samples WHERE run_id = r.id) "
            "AND (status = 'failed' OR NOT EXISTS (SELECT 1 FROM metrics WHERE run_id = r.id "
            "AND name <> 'params')) ORDER BY id",
            collect_run, &lines, &e);
    int64_t *ids = rc == HDLM_OK ? calloc(lines.n + 1, sizeof *ids) : NULL;
    if (rc == HDLM_OK && !ids) rc = error_set(&e, HDLM_ENOMEM, "runs gc: out of memory");
    for (size_t i = 0; i < lines.n && ids; i++)
        ids[i] = lines.v[i].id;
    strs none = {0}; /* gc's runs own no checkpoint rows */
    int n_files = 0;
    int64_t bytes = 0;
    if (rc == HDLM_OK) rc = delete_runs(s, ids, &lines, &none, dry_run, 0, &n_files, &bytes, &e);
    if (rc == HDLM_OK) rc = gc_files(s, dry_run, &n_files, &bytes, &e);
    if (rc == HDLM_OK) {
        char hb[32];
        printf("%s %zu run%s and %d file%s (%s)%s\n", dry_run ? "would delete" : "deleted", lines.n,
               lines.n == 1 ? "" : "s", n_files, n_files == 1 ? "" : "s",
               human_bytes(bytes, hb, sizeof hb),
               dry_run ? "; nothing was changed (--dry-run)" : "");
    }
    free(ids);
    free(lines.v);
    store_close(s);
    return rc == HDLM_OK ? 0 : die(&e);
}

/* ---- hdlm compare ---- */

static const char *run_label(const compare_side *c, char *out, size_t cap) {
    if (c->run_name[0])
        snprintf(out, cap, "run %lld (%s)", (long long)c->run_id, c->run_name);
    else
        snprintf(out, cap, "run %lld", (long long)c->run_id);
    return out;
}

int store_cmd_compare(int argc, char **argv) {
    const char *db = "runs.db";
    argc = take_value(argc, argv, "--db", &db);
    if (argc != 2) {
        fprintf(stderr, "hdlm: compare: expected two run ids (hdlm compare RUN_A RUN_B [--db "
                        "FILE])\n");
        return 2;
    }
    int64_t id[2];
    for (int i = 0; i < 2; i++) {
        char *end;
        errno = 0;
        long long v = strtoll(argv[i], &end, 10);
        if (*end || end == argv[i] || errno || v < 1) {
            fprintf(stderr, "hdlm: compare: expected a run id (a positive integer), got '%s'\n",
                    argv[i]);
            return 2;
        }
        id[i] = v;
    }
    if (!store_cmd_require_db(db, "compare")) return 1;
    error e = {0};
    store *s = NULL;
    if (store_open(db, STORE_READONLY, &s, &e) != HDLM_OK) return die(&e);
    compare_result r;
    int rc = store_compare(s, id[0], id[1], &r, &e);
    store_close(s);
    if (rc != HDLM_OK) return die(&e);
    char la[200], lb[200];
    run_label(&r.a, la, sizeof la);
    run_label(&r.b, lb, sizeof lb);
    const double ln2 = log(2.0);
    if (r.has_bound) {
        printf("%s vs %s: nll_bound on the same %lld %s sequences of %lld tokens (%s estimator; "
               "sequences sha256 %.12s%s%s)\n",
               la, lb, (long long)r.a.n, r.split, (long long)r.length, r.estimator,
               r.sequences_sha256, r.data[0] ? ", " : "", r.data);
        printf("  run %lld: %.4f ± %.4f nats/token (evaluation %lld)\n", (long long)r.a.run_id,
               r.a.value, r.a.se, (long long)r.a.evaluation_id);
        printf("  run %lld: %.4f ± %.4f nats/token (evaluation %lld)\n", (long long)r.b.run_id,
               r.b.value, r.b.se, (long long)r.b.evaluation_id);
        printf("  difference %lld - %lld, paired over %lld sequences: %+.4f ± %.4f nats/token "
               "(%+.4f ± %.4f bits); unpaired SE would be %.4f\n",
               (long long)r.a.run_id, (long long)r.b.run_id, (long long)r.a.n, r.diff, r.diff_se,
               r.diff / ln2, r.diff_se / ln2, r.unpaired_se);
        printf("  run %lld has the lower bound on %lld of %lld sequences\n", (long long)r.a.run_id,
               (long long)r.a_lower, (long long)r.a.n);
    } else {
        printf("%s vs %s: %s\n", la, lb, r.note);
    }
    if (r.has_gen)
        printf("gen_nll under judge run %lld (unpaired: different samples): run %lld %.4f ± %.4f "
               "(%lld samples), run %lld %.4f ± %.4f (%lld samples); difference %+.4f ± %.4f "
               "nats/token\n",
               (long long)r.judge_run, (long long)r.gen_a.run_id, r.gen_a.value, r.gen_a.se,
               (long long)r.gen_a.n, (long long)r.gen_b.run_id, r.gen_b.value, r.gen_b.se,
               (long long)r.gen_b.n, r.gen_diff, r.gen_diff_se);
    return 0;
}
