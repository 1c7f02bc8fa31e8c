/* Tests of the SQLite store on real files in a temporary directory: round trips of every kind of
 * row, schema versions and migration, refusal of foreign/newer/garbage files, read-only access,
 * lock timeouts, several processes writing one database, printed query output and reaping of
 * runs whose process died. */
#include "app/query_print.h"
#include "check.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[64];

static void path_in(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_dir, name);
}

/* Removes dir and everything under it. */
static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(p, 0700);
            rm_tree(p);
        } else {
            unlink(p);
        }
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* ---- collecting query rows as text: "a|b|c\n" per row, NULL as "NULL", reals as %.17g ---- */

typedef struct rows {
    char text[8192];
    size_t len;
    int n;
    int stop_after; /* 0: never stop */
} rows;

static int rows_cb(void *ud, int ncol, const char *const *names, const store_value *vals) {
    rows *r = ud;
    (void)names;
    for (int c = 0; c < ncol; c++) {
        const store_value *v = &vals[c];
        size_t cap = sizeof r->text - r->len;
        char *p = r->text + r->len;
        int w = 0;
        if (c) w += snprintf(p, cap, "|");
        switch (v->type) {
        case STORE_INT:
            w += snprintf(p + w, cap - (size_t)w, "%lld", (long long)v->i);
            break;
        case STORE_REAL:
            w += snprintf(p + w, cap - (size_t)w, "%.17g", v->d);
            break;
        case STORE_TEXT:
            w += snprintf(p + w, cap - (size_t)w, "%.*s", (int)v->len, v->s);
            break;
        case STORE_BLOB:
            w += snprintf(p + w, cap - (size_t)w, "<blob %lld>", (long long)v->len);
            break;
        default:
            w += snprintf(p + w, cap - (size_t)w, "NULL");
            break;
        }
        r->len += (size_t)w;
    }
    r->len += (size_t)snprintf(r->text + r->len, sizeof r->text - r->len, "\n");
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

/* Runs sql and returns its rows as text (in a static buffer: one call at a time). */
static const char *q(store *s, const char *sql) {
    static rows r;
    memset(&r, 0, sizeof r);
    error e = {0};
    if (store_query(s, sql, rows_cb, &r, &e) != HDLM_OK) {
        fprintf(stderr, "query failed: %s\n", e.msg);
        return "ERROR";
    }
    return r.text;
}

static int64_t q_int(store *s, const char *sql) {
    return strtoll(q(s, sql), NULL, 10);
}

/* ---- round trip ---- */

static void test_roundtrip(void) {
    char path[128], sql[512];
    path_in(path, sizeof path, "roundtrip.db");
    store *s = NULL, *other = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    CHECK_STR(store_path(s), path);
    CHECK_EQ(store_binary_schema_version(), 4);
    CHECK_EQ(store_schema_version(s), store_binary_schema_version());
    CHECK_STR(q(s, "PRAGMA journal_mode"), "wal\n");
    CHECK_STR(q(s, "PRAGMA foreign_keys"), "1\n");

    store_run_info info = {.name = "tiny",
                           .kind = "train",
                           .config_json = "{\"lr\":0.001}",
                           .seed = 42,
                           .git_rev = "abc123",
                           .git_dirty = 1,
                           .host = "hostA",
                           .cpu = "Test CPU",
                           .blas = "OpenBLAS openmp",
                           .threads = 2,
                           .world_size = 0, /* 0 means 1 */
                           .script = "exp.lua",
                           .hdlm_version = "0.1.0"};
    int64_t run = 0;
    CHECK_EQ(store_run_begin(s, &info, &run, &e), HDLM_OK);
    CHECK_EQ(run, 1);
    snprintf(sql, sizeof sql,
             "SELECT name, kind, status, error, config, seed, git_rev, git_dirty, host, cpu, blas, "
             "threads, world_size, script, hdlm_version, pid = %d, ended_at, "
             "started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:"
             "[0-9][0-9].[0-9][0-9][0-9]Z' FROM runs",
             (int)getpid());
    CHECK_STR(q(s, sql), "tiny|train|running|NULL|{\"lr\":0.001}|42|abc123|1|hostA|Test CPU|"
                         "OpenBLAS openmp|2|1|exp.lua|0.1.0|1|NULL|1\n");

    CHECK_EQ(store_run_plugin(s, run, "sampler", "acs", "1.2", 1, "/p/acs.so", "h1",
                              "{\"eta\":0.01}", &e),
             HDLM_OK);
    /* Same key again replaces. */
    CHECK_EQ(store_run_plugin(s, run, "sampler", "acs", "1.3", 1, "/p/acs.so", "h2", NULL, &e),
             HDLM_OK);
    CHECK_EQ(store_run_plugin(s, run, "noise", "loglinear", NULL, 1, NULL, NULL, NULL, &e),
             HDLM_OK);
    CHECK_STR(q(s, "SELECT run_id, kind, name, version, abi, file, hash, options FROM run_plugins "
                   "ORDER BY kind"),
              "1|noise|loglinear|NULL|1|NULL|NULL|NULL\n1|sampler|acs|1.3|1|/p/acs.so|h2|NULL\n");

    /* 300 metrics cross one batch boundary: a second connection sees the first 256 only, until
     * the flush. */
    for (int i = 0; i < 300; i++)
        CHECK_EQ(store_metric(s, run, i, "loss", i * 0.5, &e), HDLM_OK);
    CHECK_EQ(store_open(path, STORE_READONLY, &other, &e), HDLM_OK);
    if (other) CHECK_EQ(q_int(other, "SELECT count(*) FROM metrics"), 256);
    CHECK_EQ(store_flush(s, &e), HDLM_OK);
    if (other) CHECK_EQ(q_int(other, "SELECT count(*) FROM metrics"), 300);
    CHECK_STR(q(s, "SELECT count(*), sum(value), min(step), max(step) FROM metrics"),
              "300|22425|0|299\n");
    CHECK_EQ(store_metric(s, run, 7, "loss", 100.0, &e), HDLM_OK); /* replaces step 7 */
    CHECK_EQ(store_metric(s, run, 7, "lr", NAN, &e), HDLM_OK);     /* NaN is stored as NULL */
    CHECK_STR(q(s, "SELECT name, value FROM metrics WHERE step = 7 ORDER BY name"),
              "loss|100\nlr|NULL\n");
    CHECK_EQ(
        q_int(s, "SELECT count(*) FROM metrics WHERE at GLOB '20[0-9][0-9]-*T*.[0-9][0-9][0-9]Z'"),
        301);

    int64_t ck = 0;
    CHECK_EQ(store_checkpoint(s, run, 300, "ckpt/300.bin", "deadbeef", 123456, &ck, &e), HDLM_OK);
    CHECK_EQ(ck, 1);
    CHECK_STR(q(s, "SELECT id, run_id, step, path, hash, bytes, created_at IS NOT NULL FROM "
                   "checkpoints"),
              "1|1|300|ckpt/300.bin|deadbeef|123456|1\n");
    CHECK_EQ(store_evaluation(s, run, ck, "nll_bound", 3.25, 0.125, "{\"mc\":64}", &e), HDLM_OK);
    CHECK_EQ(store_evaluation(s, run, 0, "gen_ppl", 41.5, NAN, NULL, &e), HDLM_OK);
    CHECK_STR(q(s, "SELECT run_id, checkpoint_id, metric, value, std_error, settings FROM "
                   "evaluations ORDER BY id"),
              "1|1|nll_bound|3.25|0.125|{\"mc\":64}\n1|NULL|gen_ppl|41.5|NULL|NULL\n");

    const int32_t toks[4] = {5, 6, -1, 2147483647};
    store_sample_info si = {.run_id = run,
                            .checkpoint_id = ck,
                            .text = "hi \"there\"",
                            .tokens = toks,
                            .n_tokens = 4,
                            .sampler = "{\"name\":\"acs\",\"version\":\"1.3\",\"options\":{}}",
                            .schedule = "{\"name\":\"linear\"}",
                            .noise = "{\"name\":\"loglinear\"}",
                            .settings_json = "{\"T\":8}",
                            .seed = 7,
                            .steps = 8,
                            .nfe = 9,
                            .wall_time = 0.75,
                            .metrics_json = "{\"entropy\":1.5}"};
    store_event ev[3] = {{0, 1, 99, 6, 0.5, HDLM_EVENT_UNMASK},
                         {1, 0, 99, 5, 0.25, HDLM_EVENT_UNMASK},
                         {2, 1, 6, 7, 0.125, HDLM_EVENT_CORRECT}};
    int64_t sid = 0;
    CHECK_EQ(store_sample(s, &si, ev, 3, &sid, &e), HDLM_OK);
    CHECK_EQ(sid, 1);
    CHECK_STR(q(s, "SELECT run_id, checkpoint_id, text, tokens, n_tokens, sampler, schedule, "
                   "noise, settings, seed, steps, nfe, wall_time, metrics FROM samples"),
              "1|1|hi \"there\"|[5,6,-1,2147483647]|4|{\"name\":\"acs\",\"version\":\"1.3\","
              "\"options\":{}}|{\"name\":\"linear\"}|{\"name\":\"loglinear\"}|{\"T\":8}|7|8|9|"
              "0.75|{\"entropy\":1.5}\n");
    CHECK_STR(q(s, "SELECT sample_id, seq, step, position, old_token, new_token, prob, kind FROM "
                   "sample_events ORDER BY seq"),
              "1|0|0|1|99|6|0.5|unmask\n1|1|1|0|99|5|0.25|unmask\n1|2|2|1|6|7|0.125|correct\n");
    CHECK_EQ(q_int(s, "SELECT json_array_length(tokens) FROM samples"), 4);
    /* A sample without tokens or events. */
    store_sample_info empty = {.run_id = run, .text = ""};
    CHECK_EQ(store_sample(s, &empty, NULL, 0, &sid, &e), HDLM_OK);
    CHECK_EQ(sid, 2);
    CHECK_STR(q(s, "SELECT tokens, n_tokens, checkpoint_id FROM samples WHERE id = 2"),
              "[]|0|NULL\n");

    /* Bad input is refused with a message, and nothing is half-written. */
    store_event bad = {0, 0, 1, 2, 0.5, 9};
    CHECK_EQ(store_sample(s, &si, &bad, 1, &sid, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "kind 9");
    CHECK_EQ(q_int(s, "SELECT count(*) FROM samples"), 2);
    store_event mixed[2] = {{0, 0, 1, 2, 0.5, HDLM_EVENT_REMASK}, {0, 0, 1, 2, 0.5, 0}};
    CHECK_EQ(store_sample(s, &si, mixed, 2, &sid, &e), HDLM_EINVAL);
    CHECK_EQ(store_checkpoint(s, 999, 1, "x", NULL, 0, &ck, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, "FOREIGN KEY");
    CHECK_CONTAINS(e.msg, path);
    CHECK_EQ(ck, 0);
    CHECK_EQ(store_run_begin(s, &(store_run_info){.name = "x", .config_json = "{bad"}, &run, &e),
             HDLM_EINVAL); /* no kind */
    CHECK_EQ(store_run_begin(s, &(store_run_info){.kind = "x", .config_json = "{bad"}, &run, &e),
             HDLM_EDB); /* config is not JSON */
    CHECK_CONTAINS(e.msg, "CHECK constraint failed");
    CHECK_EQ(run, 0);
    run = 1;
    CHECK_EQ(store_run_end(s, run, "finished", NULL, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "'finished' is not one of done, failed, interrupted");
    CHECK_EQ(store_run_end(s, 77, "done", NULL, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "run 77 does not exist");

    /* Metrics buffered at run end are written before the run closes. */
    CHECK_EQ(store_metric(s, run, 1000, "val/nll", 2.5, &e), HDLM_OK);
    CHECK_EQ(store_run_end(s, run, "failed", "out of patience", &e), HDLM_OK);
    if (other) {
        CHECK_STR(q(other, "SELECT status, error, ended_at IS NOT NULL FROM runs"),
                  "failed|out of patience|1\n");
        CHECK_STR(q(other, "SELECT value FROM metrics WHERE name = 'val/nll'"), "2.5\n");
    }

    /* Queries: parameters, several statements, early stop, errors naming file and statement. */
    store_value params[2] = {{.type = STORE_TEXT, .s = "loss"}, {.type = STORE_INT, .i = 10}};
    rows r = {0};
    CHECK_EQ(store_query_params(s,
                                "SELECT step, value FROM metrics WHERE name = ?1 AND step < ?2 "
                                "ORDER BY step DESC LIMIT 2",
                                2, params, rows_cb, &r, &e),
             HDLM_OK);
    CHECK_STR(r.text, "9|4.5\n8|4\n");
    CHECK_EQ(store_query_params(s, "SELECT ?1, ?2, ?3", 2, params, rows_cb, &r, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "3 parameters, 2 given");
    memset(&r, 0, sizeof r);
    CHECK_EQ(store_query(s,
                         "CREATE TEMP TABLE tt(x); INSERT INTO tt VALUES (1), (2); "
                         "SELECT x FROM tt; SELECT 'end' -- trailing comment\n",
                         rows_cb, &r, &e),
             HDLM_OK);
    CHECK_STR(r.text, "1\n2\nend\n");
    memset(&r, 0, sizeof r);
    r.stop_after = 1;
    CHECK_EQ(store_query(s, "SELECT x FROM tt; SELECT 3", rows_cb, &r, &e), HDLM_OK);
    CHECK_STR(r.text, "1\n");
    CHECK_EQ(store_query(s, "SELECT * FROM foo", NULL, NULL, &e), HDLM_EDB);
    char want[256];
    snprintf(want, sizeof want, "%s: no such table: foo (in: SELECT * FROM foo)", path);
    CHECK_STR(e.msg, want);
    CHECK_EQ(store_query(s, "SELECT 1; SELECT nope FROM runs", NULL, NULL, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, "no such column: nope (in: SELECT nope FROM runs)");

    /* Deleting a run deletes everything that belongs to it. */
    CHECK_EQ(store_query(s, "DELETE FROM runs WHERE id = 1", NULL, NULL, &e), HDLM_OK);
    CHECK_STR(q(s, "SELECT (SELECT count(*) FROM metrics) + (SELECT count(*) FROM run_plugins) + "
                   "(SELECT count(*) FROM checkpoints) + (SELECT count(*) FROM evaluations) + "
                   "(SELECT count(*) FROM samples) + (SELECT count(*) FROM sample_events)"),
              "0\n");

    /* A read-only handle reads but does not write. */
    if (other) {
        CHECK_EQ(store_run_begin(other, &info, &run, &e), HDLM_ESTATE);
        CHECK_CONTAINS(e.msg, "read-only");
        CHECK_EQ(store_metric(other, 1, 1, "x", 1, &e), HDLM_ESTATE);
    }
    store_close(other);
    store_close(s);
}

/* A metric for a run that does not exist cannot be written: the batch is dropped and reported,
 * and later flushes work again. */
static void test_metric_failure(void) {
    char path[128];
    path_in(path, sizeof path, "metricfail.db");
    store *s = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) return;
    int64_t run = 0;
    CHECK_EQ(store_run_begin(s, &(store_run_info){.kind = "test"}, &run, &e), HDLM_OK);
    CHECK_EQ(store_metric(s, 55, 0, "loss", 1.0, &e), HDLM_OK);
    CHECK_EQ(store_metric(s, run, 0, "loss", 1.0, &e), HDLM_OK);
    CHECK_EQ(store_flush(s, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, "2 buffered metrics dropped");
    CHECK_CONTAINS(e.msg, "FOREIGN KEY");
    CHECK_EQ(store_metric(s, run, 1, "loss", 2.0, &e), HDLM_OK);
    CHECK_EQ(store_flush(s, &e), HDLM_OK);
    CHECK_STR(q(s, "SELECT step, value FROM metrics"), "1|2\n");
    /* Host defaults to this machine's name; world_size to 1. */
    char host[256] = "", sql[400];
    gethostname(host, sizeof host - 1);
    snprintf(sql, sizeof sql, "SELECT host = '%s', world_size, name FROM runs", host);
    CHECK_STR(q(s, sql), "1|1|NULL\n");
    store_close(s);
}

/* ---- schema versions ---- */

static void test_migration(void) {
    char path[128];
    path_in(path, sizeof path, "migrate.db");
    store *s = NULL;
    error e = {0};
    CHECK_EQ(store_open_at_version(path, 1, &s, &e), HDLM_OK);
    if (!s) return;
    CHECK_EQ(store_schema_version(s), 1);
    CHECK_STR(q(s, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"),
              "checkpoints\nmetrics\nrun_plugins\nruns\n");
    int64_t run = 0;
    CHECK_EQ(store_run_begin(s, &(store_run_info){.name = "old", .kind = "train"}, &run, &e),
             HDLM_OK);
    CHECK_EQ(store_metric(s, run, 3, "loss", 1.5, &e), HDLM_OK);
    store_close(s); /* flushes */

    s = NULL;
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) return;
    CHECK_EQ(store_schema_version(s), 4);
    CHECK_STR(q(s, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"),
              "checkpoints\nevaluation_items\nevaluations\nmetrics\nrun_plugins\nruns\n"
              "sample_events\nsamples\nscripts\nsweep_points\nsweeps\n");
    CHECK_STR(q(s, "SELECT r.name, m.step, m.value FROM runs r JOIN metrics m ON m.run_id = r.id"),
              "old|3|1.5\n");
    CHECK_EQ(store_evaluation(s, run, 0, "nll", 1.0, 0.1, NULL, &e), HDLM_OK);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM evaluations"), 1);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN "
                      "('samples_by_run', 'evaluations_by_run', 'checkpoints_by_run')"),
             3);
    store_close(s);
}

static void test_refusals(void) {
    char path[128], want[256];
    store *s = NULL;
    error e = {0};

    /* Newer schema than this binary. */
    path_in(path, sizeof path, "newer.db");
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (s) CHECK_EQ(store_query(s, "PRAGMA user_version = 99", NULL, NULL, &e), HDLM_OK);
    store_close(s);
    s = NULL;
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_EDB);
    CHECK(s == NULL);
    snprintf(want, sizeof want,
             "%s: database schema version 99 is newer than this hdlm (knows up to 4); use a newer "
             "hdlm",
             path);
    CHECK_STR(e.msg, want);
    CHECK_EQ(store_open(path, STORE_READONLY, &s, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, "newer");

    /* An SQLite database that hdlm did not make (user_version 0 but tables). */
    path_in(path, sizeof path, "foreign.db");
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (s) CHECK_EQ(store_query(s, "PRAGMA user_version = 0", NULL, NULL, &e), HDLM_OK);
    store_close(s);
    s = NULL;
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, path);
    CHECK_CONTAINS(e.msg, "did not create");
    CHECK_EQ(store_open(path, STORE_READONLY, &s, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, "did not create");

    /* An empty path is refused; ":memory:" is a private scratch database. */
    CHECK_EQ(store_open("", 0, &s, &e), HDLM_EINVAL);
    CHECK_EQ(store_open(":memory:", 0, &s, &e), HDLM_OK);
    if (s) CHECK_EQ(q_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"), 11);
    store_close(s);
    s = NULL;

    /* A file that is not a database at all. */
    path_in(path, sizeof path, "garbage.db");
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 200; i++)
            fputs("this is not a database, only text\n", f);
        fclose(f);
    }
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_EDB);
    CHECK(s == NULL);
    snprintf(want, sizeof want, "%s: not an SQLite database", path);
    CHECK_CONTAINS(e.msg, want);
    CHECK_EQ(store_open(path, STORE_READONLY, &s, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, want);
    /* ... and it was left alone. */
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 200 * 34);

    /* Missing directory; missing file for reading. */
    path_in(path, sizeof path, "nope/runs.db");
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_EIO);
    CHECK(s == NULL);
    CHECK_CONTAINS(e.msg, path);
    CHECK_CONTAINS(e.msg, "does not exist");
    path_in(path, sizeof path, "absent.db");
    CHECK_EQ(store_open(path, STORE_READONLY, &s, &e), HDLM_EIO);
    CHECK_CONTAINS(e.msg, "no such file");
    CHECK(access(path, F_OK) != 0);
}

/* ---- read-only files and directories ---- */

/* Opens path for writing (must fail with a message containing why) and read-only (must work and
 * read the one run). Returns the number of failed checks. */
static int readonly_case(const char *path, const char *why) {
    int before = check_failed_;
    store *s = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_EIO);
    CHECK(s == NULL);
    CHECK_CONTAINS(e.msg, path);
    CHECK_CONTAINS(e.msg, why);
    store_close(s);
    s = NULL;
    CHECK_EQ(store_open(path, STORE_READONLY, &s, &e), HDLM_OK);
    if (!s) {
        fprintf(stderr, "read-only open of %s: %s\n", path, e.msg);
        return check_failed_ - before;
    }
    CHECK_STR(q(s, "SELECT name, status FROM runs"), "ro|done\n");
    CHECK_EQ(store_run_begin(s, &(store_run_info){.kind = "x"}, &(int64_t){0}, &e), HDLM_ESTATE);
    store_close(s);
    return check_failed_ - before;
}

static void make_ro_db(const char *path) {
    store *s = NULL;
    error e = {0};
    int64_t run = 0;
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) return;
    CHECK_EQ(store_run_begin(s, &(store_run_info){.name = "ro", .kind = "x"}, &run, &e), HDLM_OK);
    CHECK_EQ(store_run_end(s, run, "done", NULL, &e), HDLM_OK);
    store_close(s);
}

static void test_readonly(void) {
    /* rw/ is writable by everyone and holds a read-only file; ro/ is a read-only directory
     * holding a writable file. */
    char rw[96], ro[96], p_rw[128], p_ro[128];
    path_in(rw, sizeof rw, "rw");
    path_in(ro, sizeof ro, "ro");
    snprintf(p_rw, sizeof p_rw, "%s/runs.db", rw);
    snprintf(p_ro, sizeof p_ro, "%s/runs.db", ro);
    CHECK(mkdir(rw, 0777) == 0 && mkdir(ro, 0755) == 0);
    make_ro_db(p_rw);
    make_ro_db(p_ro);
    chmod(rw, 0777);
    chmod(p_rw, 0444);
    chmod(p_ro, 0666);
    int root = geteuid() == 0;
    if (!root) {
        chmod(ro, 0555);
        readonly_case(p_rw, "the file is read-only");
        readonly_case(p_ro, "is not writable");
        chmod(ro, 0755);
        return;
    }
    /* Root writes through any permission bits, so the checks run in a child that drops to the
     * "nobody" user; it reports failures through its exit status. */
    chmod(g_dir, 0755);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
        int failed = readonly_case(p_rw, "the file is read-only");
        failed += readonly_case(p_ro, "is not writable");
        _exit(failed ? 1 : 0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        printf("test_store: running as root and cannot switch to uid 65534; skipping the "
               "read-only file and directory checks\n");
    else
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    chmod(g_dir, 0700);
}

/* ---- locks ---- */

static void test_locks(void) {
    char path[128];
    path_in(path, sizeof path, "locks.db");
    store *a = NULL, *b = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &a, &e), HDLM_OK);
    CHECK_EQ(store_open(path, 0, &b, &e), HDLM_OK);
    if (!a || !b) {
        store_close(a);
        store_close(b);
        return;
    }
    CHECK_EQ(store_set_busy_timeout(b, 100), HDLM_OK);
    CHECK_EQ(store_query(a, "BEGIN IMMEDIATE", NULL, NULL, &e), HDLM_OK);
    int64_t run = 0;
    /* a's own writes join its open transaction. */
    CHECK_EQ(store_run_begin(a, &(store_run_info){.kind = "x"}, &run, &e), HDLM_OK);
    CHECK_EQ(store_run_begin(b, &(store_run_info){.kind = "y"}, &run, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, path);
    CHECK_CONTAINS(e.msg, "locked");
    CHECK_CONTAINS(e.msg, "100 ms");
    /* Readers are not blocked by a writer (WAL). */
    CHECK_EQ(q_int(b, "SELECT count(*) FROM runs"), 0);
    CHECK_EQ(store_query(a, "ROLLBACK", NULL, NULL, &e), HDLM_OK);
    CHECK_EQ(q_int(a, "SELECT count(*) FROM runs"), 0);
    CHECK_EQ(store_run_begin(b, &(store_run_info){.kind = "y"}, &run, &e), HDLM_OK);
    CHECK_STR(q(a, "SELECT kind FROM runs"), "y\n");
    /* A busy database keeps buffered metrics for a later flush. */
    CHECK_EQ(store_metric(b, run, 1, "m", 1.0, &e), HDLM_OK);
    CHECK_EQ(store_query(a, "BEGIN IMMEDIATE", NULL, NULL, &e), HDLM_OK);
    CHECK_EQ(store_flush(b, &e), HDLM_EDB);
    CHECK_CONTAINS(e.msg, "locked");
    CHECK_EQ(store_query(a, "COMMIT", NULL, NULL, &e), HDLM_OK);
    CHECK_EQ(store_flush(b, &e), HDLM_OK);
    CHECK_EQ(q_int(a, "SELECT count(*) FROM metrics"), 1);
    store_close(a);
    store_close(b);
}

/* ---- several processes writing one database ---- */

enum { N_WRITERS = 4, RUNS_PER_WRITER = 50, METRICS_PER_RUN = 100 };

static int writer_main(const char *path, int w) {
    store *s = NULL;
    error e = {0};
    if (store_open(path, 0, &s, &e) != HDLM_OK) {
        fprintf(stderr, "writer %d: %s\n", w, e.msg);
        return 1;
    }
    int rc = HDLM_OK;
    for (int r = 0; r < RUNS_PER_WRITER && rc == HDLM_OK; r++) {
        char name[32];
        snprintf(name, sizeof name, "w%d-r%d", w, r);
        int64_t run = 0;
        rc = store_run_begin(s, &(store_run_info){.name = name, .kind = "train"}, &run, &e);
        for (int m = 0; m < METRICS_PER_RUN && rc == HDLM_OK; m++) {
            rc = store_metric(s, run, m, "loss", w * 1000 + m, &e);
            if (rc == HDLM_OK && m % 25 == 24) rc = store_flush(s, &e);
        }
        if (rc == HDLM_OK) rc = store_run_end(s, run, "done", NULL, &e);
    }
    if (rc != HDLM_OK) fprintf(stderr, "writer %d: %s\n", w, e.msg);
    store_close(s);
    return rc == HDLM_OK ? 0 : 1;
}

static void test_concurrent_writers(void) {
    char path[128];
    path_in(path, sizeof path, "shared.db"); /* created by whichever writer comes first */
    pid_t pids[N_WRITERS];
    for (int w = 0; w < N_WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) _exit(writer_main(path, w));
        CHECK(pids[w] > 0);
    }
    for (int w = 0; w < N_WRITERS; w++) {
        int status = 0;
        CHECK(pids[w] > 0 && waitpid(pids[w], &status, 0) == pids[w]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    store *s = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, STORE_READONLY, &s, &e), HDLM_OK);
    if (!s) return;
    CHECK_EQ(q_int(s, "SELECT count(*) FROM runs WHERE status = 'done'"),
             N_WRITERS * RUNS_PER_WRITER);
    CHECK_EQ(q_int(s, "SELECT count(DISTINCT name) FROM runs"), N_WRITERS * RUNS_PER_WRITER);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM metrics"),
             N_WRITERS * RUNS_PER_WRITER * METRICS_PER_RUN);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM (SELECT run_id FROM metrics GROUP BY run_id HAVING "
                      "count(*) = 100 AND sum(value) = 4950 + 100000 * CAST(substr((SELECT name "
                      "FROM runs WHERE id = run_id), 2, 1) AS INTEGER))"),
             N_WRITERS * RUNS_PER_WRITER);
    CHECK_EQ(store_schema_version(s), 4);
    store_close(s);
}

/* ---- printing ---- */

static char *print_to_string(store *s, const char *sql, int format, int *status) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    error e = {0};
    *status = query_print(s, sql, format, f, &e);
    fclose(f);
    return buf;
}

static void check_print(store *s, const char *sql, int format, const char *want) {
    int status = 0;
    char *got = print_to_string(s, sql, format, &status);
    CHECK_EQ(status, HDLM_OK);
    CHECK_STR(got, want);
    free(got);
}

static void test_print(void) {
    char path[128];
    path_in(path, sizeof path, "print.db");
    store *s = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) return;
    CHECK_EQ(store_query(s,
                         "CREATE TABLE t (id INTEGER, name TEXT, score REAL, note TEXT);"
                         "INSERT INTO t VALUES (1, 'alpha', 0.5, NULL),"
                         " (2, 'b,\"q\"', 12.25, 'line1' || char(10) || 'line2'),"
                         " (10, 'ü', NULL, 'tab' || char(9) || 'here')",
                         NULL, NULL, &e),
             HDLM_OK);
    const char *sql = "SELECT id, name, score, note FROM t ORDER BY id";
    check_print(s, sql, QUERY_FMT_TABLE,
                "id  name   score  note\n"
                "--  -----  -----  ------------\n"
                " 1  alpha    0.5\n"
                " 2  b,\"q\"  12.25  line1\\nline2\n"
                "10  ü             tab\\there\n"
                "(3 rows)\n");
    check_print(s, sql, QUERY_FMT_CSV,
                "id,name,score,note\n"
                "1,alpha,0.5,\n"
                "2,\"b,\"\"q\"\"\",12.25,\"line1\nline2\"\n"
                "10,ü,,tab\there\n");
    check_print(s, sql, QUERY_FMT_JSON,
                "[\n"
                "  {\"id\": 1, \"name\": \"alpha\", \"score\": 0.5, \"note\": null},\n"
                "  {\"id\": 2, \"name\": \"b,\\\"q\\\"\", \"score\": 12.25, \"note\": "
                "\"line1\\nline2\"},\n"
                "  {\"id\": 10, \"name\": \"ü\", \"score\": null, \"note\": \"tab\\there\"}\n"
                "]\n");
    /* No rows. */
    const char *none = "SELECT id, name FROM t WHERE id < 0";
    check_print(s, none, QUERY_FMT_TABLE, "id  name\n--  ----\n(0 rows)\n");
    check_print(s, none, QUERY_FMT_CSV, "id,name\n");
    check_print(s, none, QUERY_FMT_JSON, "[]\n");
    /* Escapes, exact reals, blobs, one row, and statements without rows print nothing. */
    check_print(s, "SELECT char(1) || '\\' AS \"c\"\"x\", 0.1 AS r, 1e308 * 10 AS inf",
                QUERY_FMT_JSON,
                "[\n  {\"c\\\"x\": \"\\u0001\\\\\", \"r\": 0.1, \"inf\": null}\n]\n");
    check_print(s, "SELECT 2.0/3 AS third, x'00ff' AS b", QUERY_FMT_CSV,
                "third,b\n0.6666666666666666,x'00ff'\n");
    check_print(s, "UPDATE t SET score = 1 WHERE id = 10; SELECT count(*) AS n FROM t",
                QUERY_FMT_TABLE, "n\n-\n3\n(1 row)\n");
    /* Two result sets: two tables. */
    check_print(s, "SELECT 1 AS a; SELECT 'x' AS bb", QUERY_FMT_TABLE,
                "a\n-\n1\n(1 row)\n\nbb\n--\nx\n(1 row)\n");
    int status = 0;
    char *got = print_to_string(s, "SELECT * FROM missing", QUERY_FMT_TABLE, &status);
    CHECK_EQ(status, HDLM_EDB);
    CHECK_STR(got, "");
    free(got);
    store_close(s);
}

/* ---- reaping runs whose process died ---- */

static void test_reap(void) {
    char path[128], sql[256], want[128];
    path_in(path, sizeof path, "reap.db");
    store *s = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) return;
    pid_t child = fork();
    if (child == 0) _exit(0);
    CHECK(child > 0 && waitpid(child, NULL, 0) == child); /* child's pid now names no process */

    int64_t dead = 0, alive = 0, elsewhere = 0, finished = 0;
    CHECK_EQ(store_run_begin(s, &(store_run_info){.kind = "train"}, &dead, &e), HDLM_OK);
    CHECK_EQ(store_run_begin(s, &(store_run_info){.kind = "train"}, &alive, &e), HDLM_OK);
    CHECK_EQ(
        store_run_begin(s, &(store_run_info){.kind = "train", .host = "elsewhere"}, &elsewhere, &e),
        HDLM_OK);
    CHECK_EQ(store_run_begin(s, &(store_run_info){.kind = "train"}, &finished, &e), HDLM_OK);
    CHECK_EQ(store_run_end(s, finished, "done", NULL, &e), HDLM_OK);
    snprintf(sql, sizeof sql, "UPDATE runs SET pid = %d WHERE id IN (%lld, %lld, %lld)", (int)child,
             (long long)dead, (long long)elsewhere, (long long)finished);
    CHECK_EQ(store_query(s, sql, NULL, NULL, &e), HDLM_OK);
    CHECK_EQ(store_reap_runs(s, &e), HDLM_OK);
    snprintf(want, sizeof want, "interrupted|process %d ended without closing the run|1\n",
             (int)child);
    snprintf(sql, sizeof sql,
             "SELECT status, error, ended_at IS NOT NULL FROM runs WHERE id = %lld",
             (long long)dead);
    CHECK_STR(q(s, sql), want);
    CHECK_STR(q(s, "SELECT id, status FROM runs ORDER BY id"),
              "1|interrupted\n2|running\n3|running\n4|done\n");
    store_close(s);
}

/* ---- store hygiene (schema 4): scripts, resumes, evaluation items, views, deleting runs ---- */

static void test_hygiene(void) {
    char path[128], sql[512];
    path_in(path, sizeof path, "hygiene.db");
    store *s = NULL, *ro = NULL;
    error e = {0};
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) return;
    const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    store_run_info ia = {.name = "a",
                         .kind = "train",
                         .config_json = "{\"lr\":0.1}",
                         .script = "/abs/exp.lua",
                         .script_sha256 = sha,
                         .script_text = "print(1)\n",
                         .script_bytes = 9};
    int64_t a = 0, b = 0, c = 0;
    CHECK_EQ(store_run_begin(s, &ia, &a, &e), HDLM_OK);
    store_run_info ib = ia;
    ib.name = "b";
    ib.resumed_from = a;
    CHECK_EQ(store_run_begin(s, &ib, &b, &e), HDLM_OK);
    /* one scripts row for the two runs */
    CHECK_STR(q(s, "SELECT sha256, text, bytes FROM scripts"),
              "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef|print(1)\n|9\n");
    snprintf(sql, sizeof sql,
             "SELECT id, script, script_sha256 = '%s', resumed_from, resumes FROM runs ORDER BY id",
             sha);
    CHECK_STR(q(s, sql), "1|/abs/exp.lua|1|NULL|0\n2|/abs/exp.lua|1|1|0\n");

    /* what run a owns */
    CHECK_EQ(store_metric(s, a, 1, "loss", 3.0, &e), HDLM_OK);
    CHECK_EQ(store_metric(s, a, 1, "lr", 0.5, &e), HDLM_OK);
    CHECK_EQ(store_metric(s, a, 2, "loss", 2.0, &e), HDLM_OK);
    int64_t ck1 = 0, ck2 = 0, ev = 0, ev2 = 0, sid = 0;
    CHECK_EQ(store_checkpoint(s, a, 1, "/ck/step_00000001.safetensors", "h1", 10, &ck1, &e),
             HDLM_OK);
    CHECK_EQ(store_checkpoint(s, a, 2, "/ck/step_00000002.safetensors", "h2", 10, &ck2, &e),
             HDLM_OK);
    double items[4] = {1.0, 2.0, 3.0, 6.0};
    CHECK_EQ(store_evaluation_items(s, a, ck1, "nll_bound", 9.0, 1.0, "{\"estimator\":\"x\"}",
                                    items, 4, &ev, &e),
             HDLM_OK);
    CHECK_EQ(store_evaluation_items(s, a, ck2, "nll_bound", 3.0, 1.0,
                                    "{\"estimator\":\"consistent\",\"split\":\"valid\","
                                    "\"sequences\":4,\"length\":8,\"schedule\":{\"name\":\"ar\"}}",
                                    items, 4, &ev2, &e),
             HDLM_OK);
    CHECK(ev > 0 && ev2 == ev + 1);
    snprintf(sql, sizeof sql,
             "SELECT item, value FROM evaluation_items WHERE evaluation_id = %lld ORDER BY item",
             (long long)ev2);
    CHECK_STR(q(s, sql), "0|1\n1|2\n2|3\n3|6\n");
    /* a NaN item refuses the whole evaluation */
    double bad[2] = {1.0, NAN};
    CHECK_EQ(store_evaluation_items(s, a, 0, "nll_bound", 1.0, 0.1, NULL, bad, 2, &ev, &e),
             HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "item 1 is NaN");
    CHECK_EQ(ev, 0);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM evaluations"), 2);
    CHECK_EQ(store_evaluation(s, a, 0, "gen_nll", 2.5, 0.2, NULL, &e), HDLM_OK);
    const int32_t toks[3] = {1, 2, 3};
    store_sample_info si = {.run_id = a,
                            .checkpoint_id = ck2,
                            .text = "abc",
                            .tokens = toks,
                            .n_tokens = 3,
                            .sampler = "{\"name\":\"acs\",\"options\":{\"eta\":0.1}}",
                            .settings_json = "{\"temperature\":0.5}",
                            .metrics_json = "{\"gen_nll\":1.25}"};
    store_event evs[2] = {{0, 0, 9, 1, 0.5, HDLM_EVENT_UNMASK},
                          {1, 0, 1, 2, 0.5, HDLM_EVENT_CORRECT}};
    CHECK_EQ(store_sample(s, &si, evs, 2, &sid, &e), HDLM_OK);
    CHECK_EQ(store_run_plugin(s, a, "noise", "absorbing", "1", 1, NULL, NULL, NULL, &e), HDLM_OK);
    snprintf(
        sql, sizeof sql,
        "INSERT INTO sweeps (name, spec, status) VALUES ('sw', '{}', 'open'); "
        "INSERT INTO sweep_points (sweep_id, idx, key, config, checkpoint_dir, status, run_id) "
        "VALUES (1, 0, 'k', '{}', 'd', 'done', %lld)",
        (long long)a);
    CHECK_EQ(store_query(s, sql, NULL, NULL, &e), HDLM_OK);

    /* continuing: only a run that is not running; it is running again, resumes counted, the
     * step it resumed from logged as 'resume' */
    CHECK_EQ(store_run_continue(s, a, 2, &e), HDLM_ESTATE);
    CHECK_CONTAINS(e.msg, "still running");
    CHECK_EQ(store_run_end(s, a, "interrupted", "interrupted by SIGINT at step 2", &e), HDLM_OK);
    CHECK_EQ(store_run_continue(s, a, 2, &e), HDLM_OK);
    CHECK_EQ(store_run_continue(s, 99, 2, &e), HDLM_ESTATE);
    CHECK_CONTAINS(e.msg, "run 99 does not exist or is still running");
    snprintf(sql, sizeof sql,
             "SELECT status, error, ended_at, resumes, pid = %d FROM runs WHERE id = %lld",
             (int)getpid(), (long long)a);
    CHECK_STR(q(s, sql), "running|NULL|NULL|1|1\n");
    CHECK_STR(q(s, "SELECT step, value FROM metrics WHERE name = 'resume'"), "2|2\n");
    CHECK_EQ(store_run_end(s, a, "done", NULL, &e), HDLM_OK);
    CHECK_EQ(store_run_end(s, b, "done", NULL, &e), HDLM_OK);

    /* the views */
    snprintf(sql, sizeof sql,
             "SELECT run_id, run_name, evaluation_id = %lld, checkpoint_step, nats, se, "
             "printf('%%.6f', bits), estimator, schedule, split, sequences, length, n_items FROM "
             "v_latest_bound",
             (long long)ev2);
    CHECK_STR(q(s, sql), "1|a|1|2|3|1|4.328085|consistent|ar|valid|4|8|4\n");
    CHECK_STR(q(s, "SELECT run_id, step, loss, lr, valid_loss FROM v_loss_curve ORDER BY step"),
              "1|1|3|0.5|NULL\n1|2|2|NULL|NULL\n");
    CHECK_STR(q(s, "SELECT sample_id, run_name, checkpoint_step, sampler, sampler_options, "
                   "temperature, corrections, gen_nll, text FROM v_samples"),
              "1|a|2|acs|{\"eta\":0.1}|0.5|1|1.25|abc\n");

    /* deleting: a missing id or a running run refuses the whole call */
    CHECK_EQ(store_run_begin(s, &(store_run_info){.name = "c", .kind = "train"}, &c, &e), HDLM_OK);
    int64_t ids[3] = {a, 77, b};
    store_run_counts cnt[3];
    CHECK_EQ(store_runs_delete(s, ids, 3, 0, cnt, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "no run 77; nothing was deleted");
    ids[1] = c;
    CHECK_EQ(store_runs_delete(s, ids, 3, 0, cnt, &e), HDLM_ESTATE);
    CHECK_CONTAINS(e.msg, "run 3 is running");
    CHECK_EQ(q_int(s, "SELECT count(*) FROM runs"), 3);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM metrics WHERE run_id = 1"), 4);
    /* a dry run counts and changes nothing */
    memset(cnt, 0, sizeof cnt);
    CHECK_EQ(store_runs_delete(s, &a, 1, 1, cnt, &e), HDLM_OK);
    CHECK_EQ(cnt[0].metrics, 4); /* loss 1, lr 1, loss 2, resume 2 */
    CHECK_EQ(cnt[0].checkpoints, 2);
    CHECK_EQ(cnt[0].evaluations, 3);
    CHECK_EQ(cnt[0].items, 8);
    CHECK_EQ(cnt[0].samples, 1);
    CHECK_EQ(cnt[0].events, 2);
    CHECK_EQ(cnt[0].plugins, 1);
    CHECK_EQ(cnt[0].sweep_points, 1);
    CHECK_EQ(cnt[0].resumed_by, 1);
    CHECK_STR(q(s, "SELECT (SELECT count(*) FROM runs) || ' ' || (SELECT count(*) FROM metrics) "
                   "|| ' ' || (SELECT count(*) FROM evaluation_items) || ' ' || (SELECT count(*) "
                   "FROM sample_events) || ' ' || (SELECT count(*) FROM scripts)"),
              "3 4 8 2 1\n");
    /* the real delete: every dependent row goes, links to the run become NULL */
    memset(cnt, 0, sizeof cnt);
    CHECK_EQ(store_runs_delete(s, &a, 1, 0, cnt, &e), HDLM_OK);
    CHECK_EQ(cnt[0].items, 8);
    CHECK_STR(q(s, "SELECT (SELECT count(*) FROM metrics) + (SELECT count(*) FROM checkpoints) + "
                   "(SELECT count(*) FROM evaluations) + (SELECT count(*) FROM evaluation_items) "
                   "+ (SELECT count(*) FROM samples) + (SELECT count(*) FROM sample_events) + "
                   "(SELECT count(*) FROM run_plugins)"),
              "0\n");
    CHECK_STR(q(s, "SELECT status, run_id FROM sweep_points"), "done|NULL\n");
    CHECK_STR(q(s, "SELECT id, resumed_from FROM runs WHERE id = 2"), "2|NULL\n");
    CHECK_EQ(q_int(s, "SELECT count(*) FROM scripts"), 1); /* run b still refers to it */
    CHECK_EQ(store_run_end(s, c, "failed", "typo", &e), HDLM_OK);
    int64_t bc[2] = {b, c};
    CHECK_EQ(store_runs_delete(s, bc, 2, 0, NULL, &e), HDLM_OK);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM runs"), 0);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM scripts"), 0); /* no run refers to it any more */
    CHECK_STR(q(s, "PRAGMA foreign_key_check"), "");
    CHECK_STR(q(s, "PRAGMA integrity_check"), "ok\n");

    /* a read-only handle says so before SQLite's "attempt to write a readonly database" */
    CHECK_EQ(store_run_begin(s, &ia, &a, &e), HDLM_OK);
    CHECK_EQ(store_open(path, STORE_READONLY, &ro, &e), HDLM_OK);
    if (ro) {
        CHECK_EQ(store_query(ro, "SELECT 1; DELETE FROM runs", NULL, NULL, &e), HDLM_ESTATE);
        CHECK_CONTAINS(e.msg, "read-only, and the statement would change the database (in: "
                              "DELETE FROM runs)");
        CHECK_EQ(store_query(ro, "BEGIN; SELECT count(*) FROM runs; COMMIT", NULL, NULL, &e),
                 HDLM_OK);
        CHECK_EQ(store_runs_delete(ro, &a, 1, 0, NULL, &e), HDLM_ESTATE);
    }
    CHECK_EQ(q_int(s, "SELECT count(*) FROM runs"), 1);
    int64_t before = store_changes(s);
    CHECK_EQ(store_query(s, "UPDATE runs SET name = 'z'", NULL, NULL, &e), HDLM_OK);
    CHECK_EQ(store_changes(s) - before, 1);
    store_close(ro);
    store_close(s);
}

/* A database made by the previous schema (3) is upgraded in place: rows kept, new columns at their
 * defaults, views and evaluation_items usable. Twice: one built here at version 3, and one written
 * by the hdlm of schema 3 itself (tests/data/store_v3.db: a trained run with checkpoints rows, a
 * sample and a bound, the 0-step re-run, a script run and a failed typo run). */
static void test_upgrade_v3(void) {
    char path[128];
    path_in(path, sizeof path, "v3.db");
    store *s = NULL;
    error e = {0};
    CHECK_EQ(store_open_at_version(path, 3, &s, &e), HDLM_OK);
    if (!s) return;
    int64_t run = 0;
    CHECK_EQ(store_run_begin(s, &(store_run_info){.name = "old", .kind = "train"}, &run, &e),
             HDLM_OK);
    CHECK_EQ(store_evaluation(s, run, 0, "nll_bound", 2.0, 0.1, "{}", &e), HDLM_OK);
    double one = 1.0;
    CHECK_EQ(store_evaluation_items(s, run, 0, "nll_bound", 1.0, 0.1, NULL, &one, 1, NULL, &e),
             HDLM_ESTATE); /* no items table before 4 */
    CHECK_EQ(store_run_end(s, run, "interrupted", "x", &e), HDLM_OK);
    store_close(s);
    s = NULL;
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) return;
    CHECK_EQ(store_schema_version(s), 4);
    CHECK_STR(q(s, "SELECT name, status, script_sha256, resumed_from, resumes FROM runs"),
              "old|interrupted|NULL|NULL|0\n");
    CHECK_STR(q(s, "SELECT run_name, nats, n_items FROM v_latest_bound"), "old|2|0\n");
    CHECK_EQ(store_run_continue(s, run, 5, &e), HDLM_OK);
    CHECK_STR(q(s, "SELECT status, resumes FROM runs"), "running|1\n");
    store_close(s);

    /* the real thing */
    const char *src = getenv("HDLM_SRC");
    char fixture[512], cmd[1200];
    snprintf(fixture, sizeof fixture, "%s/tests/data/store_v3.db", src ? src : "..");
    path_in(path, sizeof path, "fixture_v3.db");
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", fixture, path);
    CHECK_EQ(system(cmd), 0);
    s = NULL;
    CHECK_EQ(store_open(path, STORE_READONLY, &s, &e), HDLM_OK); /* read-only: no migration */
    if (s) CHECK_EQ(store_schema_version(s), 3);
    store_close(s);
    s = NULL;
    CHECK_EQ(store_open(path, 0, &s, &e), HDLM_OK);
    if (!s) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    CHECK_EQ(store_schema_version(s), 4);
    CHECK_STR(q(s, "SELECT group_concat(id || ':' || name || ':' || status, ' ') FROM runs"),
              "1:v3-train:done 2:v3-train:done 3:script-run:done 4:typo:failed\n");
    CHECK_STR(q(s, "SELECT (SELECT count(*) FROM metrics) || ' ' || (SELECT count(*) FROM "
                   "checkpoints) || ' ' || (SELECT count(*) FROM samples) || ' ' || (SELECT "
                   "count(*) FROM sample_events) || ' ' || (SELECT count(*) FROM evaluations)"),
              "33 2 2 32 1\n");
    CHECK_STR(q(s, "SELECT run_id, printf('%.6f', nats), n_items FROM v_latest_bound"),
              "1|5.971008|0\n");
    CHECK_STR(q(s, "SELECT count(*), min(sampler), min(checkpoint_step) FROM v_samples"),
              "2|ancestral|NULL\n"); /* schema 3's samples did not name their checkpoint */
    CHECK_EQ(q_int(s, "SELECT count(*) FROM v_loss_curve WHERE run_id = 1 AND loss IS NOT NULL"),
             6);
    CHECK_STR(q(s, "PRAGMA integrity_check"), "ok\n");
    CHECK_STR(q(s, "PRAGMA foreign_key_check"), "");
    /* deleting an upgraded run takes its rows with it */
    store_run_counts c;
    int64_t one_id = 1;
    CHECK_EQ(store_runs_delete(s, &one_id, 1, 0, &c, &e), HDLM_OK);
    CHECK_EQ(c.metrics, 31); /* 6 steps x 5 metrics + params */
    CHECK_EQ(c.checkpoints, 2);
    CHECK_EQ(c.samples, 2);
    CHECK_EQ(c.events, 32);
    CHECK_EQ(q_int(s, "SELECT count(*) FROM sample_events"), 0);
    store_close(s);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/hdlm_test_store_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_metric_failure();
    test_migration();
    test_refusals();
    test_readonly();
    test_locks();
    test_concurrent_writers();
    test_print();
    test_reap();
    test_hygiene();
    test_upgrade_v3();
    chmod(g_dir, 0700);
    rm_tree(g_dir);
    return check_report("test_store");
}
