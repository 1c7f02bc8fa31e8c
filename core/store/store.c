/* The SQLite store: opening and migrating the database, writing runs, plugins, metrics (buffered,
 * written in batched transactions), checkpoints, evaluations and samples, generic SQL queries and
 * printing their results as a table, CSV or JSON. The only file that includes sqlite3.h.
 * Every write is a BEGIN IMMEDIATE transaction so that several processes can share one database
 * without deadlocks; it does not retry beyond SQLite's busy timeout, and it does not check the
 * whole file for corruption on open (too slow for large databases). */
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* Generated at build time from schema.sql (scripts/embed_text.cmake). */
extern const char hdlm_schema_sql[];
extern const size_t hdlm_schema_sql_len;

enum {
    STORE_BUSY_MS_DEFAULT = 30000, /* how long a writer waits for another writer's transaction */
    STORE_METRIC_BATCH = 256,      /* metrics buffered before one transaction writes them */
    STORE_METRIC_AGE_MS = 2000,    /* ... or once the oldest is this old (live monitoring) */
    STORE_MAX_SECTIONS = 64,
};

/* ---- prepared statements: prepared on first use, kept until store_close ---- */

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_RUN_INSERT,
    ST_RUN_INSERT_V3,
    ST_SCRIPT,
    ST_RUN_CONTINUE,
    ST_RUN_END,
    ST_PLUGIN,
    ST_METRIC,
    ST_CHECKPOINT,
    ST_EVALUATION,
    ST_EVAL_ITEM,
    ST_SAMPLE,
    ST_EVENT,
    ST_REAP_SELECT,
    ST_REAP_UPDATE,
    ST_COUNT
};

#define STORE_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_RUN_INSERT] =
        "INSERT INTO runs (name, kind, status, config, seed, git_rev, git_dirty, host, "
        "cpu, blas, threads, world_size, script, hdlm_version, pid, script_sha256, resumed_from) "
        "VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    /* databases held at an older schema (store_open_at_version, the migration tests) */
    [ST_RUN_INSERT_V3] =
        "INSERT INTO runs (name, kind, status, config, seed, git_rev, git_dirty, host, "
        "cpu, blas, threads, world_size, script, hdlm_version, pid) "
        "VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [ST_SCRIPT] = "INSERT OR IGNORE INTO scripts (sha256, text, bytes) VALUES (?1, ?2, ?3)",
    [ST_RUN_CONTINUE] = "UPDATE runs SET status = 'running', error = NULL, ended_at = NULL, "
                        "pid = ?2, host = coalesce(?3, host), resumes = resumes + 1 "
                        "WHERE id = ?1 AND status <> 'running'",
    [ST_RUN_END] =
        "UPDATE runs SET status = ?2, error = ?3, ended_at = " STORE_NOW " WHERE id = ?1",
    [ST_PLUGIN] = "INSERT OR REPLACE INTO run_plugins (run_id, kind, name, version, abi, file, "
                  "hash, options) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_METRIC] = "INSERT OR REPLACE INTO metrics (run_id, step, name, value, at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_CHECKPOINT] = "INSERT INTO checkpoints (run_id, step, path, hash, bytes) "
                      "VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_EVALUATION] = "INSERT INTO evaluations (run_id, checkpoint_id, metric, value, std_error, "
                      "settings) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_EVAL_ITEM] =
        "INSERT INTO evaluation_items (evaluation_id, item, value) VALUES (?1, ?2, ?3)",
    [ST_SAMPLE] = "INSERT INTO samples (run_id, checkpoint_id, text, tokens, n_tokens, sampler, "
                  "schedule, noise, settings, seed, steps, nfe, wall_time, metrics) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [ST_EVENT] = "INSERT INTO sample_events (sample_id, seq, step, position, old_token, "
                 "new_token, prob, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_REAP_SELECT] = "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?1",
    [ST_REAP_UPDATE] = "UPDATE runs SET status = 'interrupted', error = ?2, ended_at = " STORE_NOW
                       " WHERE id = ?1 AND status = 'running'",
};

typedef struct metric_row {
    int64_t run_id, step;
    char *name; /* owned copy */
    double value;
    char at[32]; /* ISO-8601 UTC time of the store_metric call */
} metric_row;

struct store {
    sqlite3 *db;
    char *path;
    int readonly;
    int follower; /* STORE_FOLLOWER: writes are dropped, db may be NULL (no copy here) */
    int busy_ms;
    int version; /* schema version after open (and migration) */
    int last_rc; /* SQLite result code of the last failure (tells "busy" from other errors) */
    sqlite3_stmt *stmt[ST_COUNT];
    metric_row *metrics; /* (n_metrics) rows waiting for the next flush */
    size_t n_metrics, cap_metrics;
    double first_pending; /* monotonic seconds when metrics[0] was buffered */
};

/* ---- small helpers ---- */

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void time_now_iso(char out[32]) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000) % 1000u;
    snprintf(out + n, 32 - n, ".%03uZ", ms);
}

static double time_monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The directory part of path ("." when there is none), into out. */
static void path_dir(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == path)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/* SQL text shortened to one line for error messages: whitespace runs become one space. */
static void sql_one_line(const char *sql, char *out, size_t cap) {
    size_t n = 0;
    int space = 0;
    while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
        sql++;
    for (; *sql && n + 4 < cap; sql++) {
        int ws = *sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r';
        if (ws) {
            space = 1;
            continue;
        }
        if (space && n) out[n++] = ' ';
        space = 0;
        out[n++] = *sql;
    }
    if (*sql && cap >= 4) {
        while (*sql && (*sql == ' ' || *sql == '\n'))
            sql++;
        if (*sql) {
            memcpy(out + n, "...", 3);
            n += 3;
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* Fills e with "<path>: <what went wrong>[ (in: <sql>)]" for SQLite result rc; returns HDLM_EDB. */
static int db_fail(store *s, int rc, const char *sql, error *e) {
    s->last_rc = rc;
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    char what[512], in[256] = "";
    switch (rc & 0xff) {
    case SQLITE_BUSY:
        snprintf(what, sizeof what,
                 "database is locked by another connection (gave up after %d ms)", s->busy_ms);
        break;
    case SQLITE_NOTADB:
        snprintf(what, sizeof what, "not an SQLite database (%s)", msg);
        break;
    case SQLITE_CORRUPT:
        snprintf(what, sizeof what, "the database file is corrupt (%s)", msg);
        break;
    case SQLITE_READONLY:
        snprintf(what, sizeof what, "%s (writing needs write access to the file and its directory)",
                 msg);
        break;
    default:
        snprintf(what, sizeof what, "%s", msg);
        break;
    }
    if (sql) {
        char line[200];
        sql_one_line(sql, line, sizeof line);
        snprintf(in, sizeof in, " (in: %s)", line);
    }
    return error_set(e, HDLM_EDB, "%s: %s%s", s->path, what, in);
}

static int check_writable(store *s, const char *what, error *e) {
    if (!s->readonly) return HDLM_OK;
    return error_set(e, HDLM_ESTATE, "%s: opened read-only, cannot %s", s->path, what);
}

static sqlite3_stmt *stmt_get(store *s, int id, error *e) {
    if (s->stmt[id]) return s->stmt[id];
    int rc =
        sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL);
    if (rc != SQLITE_OK) {
        db_fail(s, rc, stmt_sql[id], e);
        sqlite3_finalize(s->stmt[id]);
        s->stmt[id] = NULL;
    }
    return s->stmt[id];
}

/* Steps a write statement to completion, then resets it for the next use. */
static int stmt_done(store *s, sqlite3_stmt *st, error *e) {
    int rc = sqlite3_step(st);
    int status = HDLM_OK;
    if (rc != SQLITE_DONE) status = db_fail(s, rc, sqlite3_sql(st), e);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return status;
}

static int stmt_run(store *s, int id, error *e) {
    sqlite3_stmt *st = stmt_get(s, id, e);
    return st ? stmt_done(s, st, e) : HDLM_EDB;
}

/* Binding helpers: the first failure is kept in *rc and later binds are skipped. */
static void bind_text(sqlite3_stmt *st, int i, const char *v, int *rc) {
    if (*rc != SQLITE_OK) return;
    *rc = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static void bind_int(sqlite3_stmt *st, int i, int64_t v, int *rc) {
    if (*rc == SQLITE_OK) *rc = sqlite3_bind_int64(st, i, v);
}

static void bind_id_or_null(sqlite3_stmt *st, int i, int64_t v, int *rc) {
    if (*rc == SQLITE_OK) *rc = v > 0 ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

static void bind_real(sqlite3_stmt *st, int i, double v, int *rc) {
    /* NaN is stored as NULL (SQLite has no NaN); infinities are kept. */
    if (*rc == SQLITE_OK) *rc = isnan(v) ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

static int bind_check(store *s, sqlite3_stmt *st, int rc, error *e) {
    if (rc == SQLITE_OK) return HDLM_OK;
    int status = db_fail(s, rc, sqlite3_sql(st), e);
    sqlite3_clear_bindings(st);
    return status;
}

/* Starts a write transaction unless the caller already has one open (e.g. a "BEGIN" sent through
 * store_query); *began says whether tx_end must commit. */
static int tx_begin(store *s, int *began, error *e) {
    *began = 0;
    if (!sqlite3_get_autocommit(s->db)) return HDLM_OK;
    int status = stmt_run(s, ST_BEGIN, e);
    if (status == HDLM_OK) *began = 1;
    return status;
}

/* Commits when status is HDLM_OK, rolls back otherwise; returns the first failure. */
static int tx_end(store *s, int began, int status, error *e) {
    if (!began) return status;
    if (status == HDLM_OK) {
        status = stmt_run(s, ST_COMMIT, e);
        if (status == HDLM_OK) return HDLM_OK;
    }
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_stmt *st = stmt_get(s, ST_ROLLBACK, NULL);
        if (st) {
            sqlite3_step(st);
            sqlite3_reset(st);
        }
    }
    return status;
}

/* Runs a statement returning at most one row; its first column goes to *iv and/or text (either
 * may be NULL). Returns the SQLite result code; on failure e is filled (naming the statement
 * unless it is one of open's internal checks, where only the file matters). */
static int db_scalar_impl(store *s, const char *sql, int show_sql, int64_t *iv, char *text,
                          size_t cap, error *e) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            if (iv) *iv = sqlite3_column_int64(st, 0);
            if (text) {
                const unsigned char *t = sqlite3_column_text(st, 0);
                snprintf(text, cap, "%s", t ? (const char *)t : "");
            }
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK) db_fail(s, rc, show_sql ? sql : NULL, e);
    sqlite3_finalize(st);
    return rc;
}

static int db_scalar(store *s, const char *sql, int64_t *iv, char *text, size_t cap, error *e) {
    return db_scalar_impl(s, sql, 1, iv, text, cap, e);
}

/* ---- schema sections ---- */

typedef struct schema_section {
    const char *text; /* from the "-- migration: N" line to the next one (not NUL-terminated) */
    size_t len;
} schema_section;

/* Splits the embedded schema; section N goes to out[N-1]. Returns the number of sections. The
 * numbering is checked here because a gap or a reordering is a bug in schema.sql. */
static int schema_sections(schema_section *out) {
    const char *p = hdlm_schema_sql, *end = hdlm_schema_sql + hdlm_schema_sql_len;
    static const char marker[] = "-- migration:";
    int n = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > sizeof marker - 1 && !memcmp(p, marker, sizeof marker - 1)) {
            int num = atoi(p + sizeof marker - 1);
            HDLM_ASSERT(num == n + 1 && n < STORE_MAX_SECTIONS);
            if (n > 0) out[n - 1].len = (size_t)(p - out[n - 1].text);
            out[n].text = p;
            out[n].len = 0;
            n++;
        }
        p = eol + 1;
    }
    if (n > 0) out[n - 1].len = (size_t)(end - out[n - 1].text);
    return n;
}

int store_binary_schema_version(void) {
    schema_section sec[STORE_MAX_SECTIONS];
    return schema_sections(sec);
}

/* Applies sections until user_version reaches upto. Each section is one BEGIN IMMEDIATE
 * transaction that re-reads user_version first: another process may be migrating the same file
 * at the same moment, and whoever comes second finds the work done. */
static int schema_migrate(store *s, int upto, error *e) {
    schema_section sec[STORE_MAX_SECTIONS];
    int known = schema_sections(sec);
    for (;;) {
        int began, status = tx_begin(s, &began, e);
        if (status != HDLM_OK) return status;
        int64_t v = 0, objects = 0;
        if (db_scalar(s, "PRAGMA user_version", &v, NULL, 0, e) != SQLITE_OK)
            return tx_end(s, began, HDLM_EDB, e);
        if (v > known) {
            status = error_set(e, HDLM_EDB,
                               "%s: database schema version %lld is newer than this hdlm (knows up "
                               "to %d); use a newer hdlm",
                               s->path, (long long)v, known);
            return tx_end(s, began, status, e);
        }
        if (v >= upto) return tx_end(s, began, HDLM_OK, e);
        if (v == 0) {
            if (db_scalar(s, "SELECT count(*) FROM sqlite_schema", &objects, NULL, 0, e) !=
                SQLITE_OK)
                return tx_end(s, began, HDLM_EDB, e);
            if (objects > 0) {
                status = error_set(e, HDLM_EDB,
                                   "%s: an SQLite database that hdlm did not create (user_version "
                                   "0 but %lld schema objects); refusing to add tables to it",
                                   s->path, (long long)objects);
                return tx_end(s, began, status, e);
            }
        }
        const schema_section *sc = &sec[v];
        char *sql = malloc(sc->len + 64);
        if (!sql)
            return tx_end(s, began, error_set(e, HDLM_ENOMEM, "%s: out of memory", s->path), e);
        memcpy(sql, sc->text, sc->len);
        snprintf(sql + sc->len, 64, "\n;PRAGMA user_version = %lld;", (long long)v + 1);
        char *msg = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
        free(sql);
        if (rc != SQLITE_OK) {
            s->last_rc = rc;
            status = error_set(e, HDLM_EDB, "%s: applying schema section %lld failed: %s", s->path,
                               (long long)v + 1, msg ? msg : sqlite3_errstr(rc));
        }
        sqlite3_free(msg);
        status = tx_end(s, began, status, e);
        if (status != HDLM_OK) return status;
    }
}

/* ---- open / close ---- */

/* Percent-encodes the characters that mean something in a URI path. */
static int path_to_uri(const char *path, const char *query, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "file:");
    for (const char *p = path; *p; p++) {
        if (n + 4 >= cap) return -1;
        if (*p == '%' || *p == '?' || *p == '#')
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", (unsigned char)*p);
        else
            out[n++] = *p;
    }
    int w = snprintf(out + n, cap - n, "%s", query);
    return (w < 0 || (size_t)w >= cap - n) ? -1 : 0;
}

static int open_connection(store *s, const char *name, int flags, error *e) {
    int rc = sqlite3_open_v2(name, &s->db, flags, NULL);
    if (rc != SQLITE_OK) {
        char what[300];
        snprintf(what, sizeof what, "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_close(s->db);
        s->db = NULL;
        s->last_rc = rc;
        return error_set(e, HDLM_EIO, "%s: cannot open: %s", s->path, what);
    }
    sqlite3_busy_timeout(s->db, s->busy_ms);
    return HDLM_OK;
}

/* Sets WAL mode. Switching a new file to WAL needs a moment alone with it, and that step does not
 * always go through the busy handler, so it is retried here for the same time budget. */
static int open_wal(store *s, error *e) {
    char mode[32] = "";
    int waited = 0, rc;
    while ((rc = db_scalar(s, "PRAGMA journal_mode = WAL", NULL, mode, sizeof mode, e)) ==
               SQLITE_BUSY &&
           waited < s->busy_ms) {
        sleep_ms(10);
        waited += 10;
    }
    if (rc != SQLITE_OK) return HDLM_EDB;
    if (strcmp(mode, "wal") != 0)
        return error_set(e, HDLM_EDB, "%s: cannot switch to WAL journaling (journal_mode is %s)",
                         s->path, mode);
    return HDLM_OK;
}

static int store_open_impl(const char *path, int flags, int upto, store **out, error *e) {
    HDLM_ASSERT(path && out);
    *out = NULL;
    int known = store_binary_schema_version();
    HDLM_ASSERT(upto >= 1 && upto <= known);
    if (!*path) return error_set(e, HDLM_EINVAL, "store_open: the database path is empty");
    store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = str_dup(path))) {
        free(s);
        return error_set(e, HDLM_ENOMEM, "%s: out of memory", path);
    }
    s->follower = (flags & STORE_FOLLOWER) != 0;
    s->readonly = (flags & STORE_READONLY) != 0 || s->follower;
    s->busy_ms = STORE_BUSY_MS_DEFAULT;
    int memory = !strcmp(path, ":memory:"); /* a private in-memory database (tests, scratch) */
    if (s->follower && (memory || access(path, F_OK) != 0)) {
        *out = s; /* nothing to read on this machine; writes are dropped anyway */
        return HDLM_OK;
    }

    /* Clear reasons first: SQLite says only "unable to open database file" for all of these. */
    char dir[4096];
    struct stat st;
    int status = HDLM_OK;
    path_dir(path, dir, sizeof dir);
    int exists = stat(path, &st) == 0;
    if (memory)
        ;
    else if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        status = error_set(e, HDLM_EIO, "%s: cannot open: directory %s does not exist", path, dir);
    else if (s->readonly && !exists)
        status = error_set(e, HDLM_EIO, "%s: cannot open: no such file", path);
    else if (!s->readonly && access(dir, W_OK | X_OK) != 0)
        status = error_set(e, HDLM_EIO,
                           "%s: cannot open for writing: directory %s is not writable (SQLite "
                           "keeps its -wal and -shm files beside the database); open it read-only "
                           "to query it",
                           path, dir);
    else if (!s->readonly && exists && access(path, R_OK | W_OK) != 0)
        status = error_set(e, HDLM_EIO,
                           "%s: cannot open for writing: the file is read-only; open it read-only "
                           "to query it",
                           path);
    if (status != HDLM_OK) goto fail;

    int oflags = s->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    status = open_connection(s, path, oflags, e);
    if (status != HDLM_OK) goto fail;

    /* Reading the header and the schema is what reveals a file that is not a database. */
    int64_t version = 0, objects = 0;
    int rc = db_scalar_impl(s, "PRAGMA user_version", 0, &version, NULL, 0, e);
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    if ((rc == SQLITE_CANTOPEN || rc == SQLITE_READONLY) && s->readonly && access(dir, W_OK) != 0 &&
        access(wal, F_OK) != 0) {
        /* A WAL database in a directory we cannot write: SQLite cannot create the -shm file.
         * Without a -wal file nobody is writing it (nor can anyone start: they would have to
         * create one), so it is safe to read it as an immutable file. */
        char uri[4200];
        sqlite3_close(s->db);
        s->db = NULL;
        if (path_to_uri(path, "?immutable=1", uri, sizeof uri) != 0) {
            status = error_set(e, HDLM_EINVAL, "%s: cannot open: path too long", path);
            goto fail;
        }
        status = open_connection(s, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, e);
        if (status != HDLM_OK) goto fail;
        rc = db_scalar_impl(s, "PRAGMA user_version", 0, &version, NULL, 0, e);
    }
    if (rc == SQLITE_OK)
        rc = db_scalar_impl(s, "SELECT count(*) FROM sqlite_schema", 0, &objects, NULL, 0, e);
    if (rc != SQLITE_OK) {
        status = HDLM_EDB;
        goto fail;
    }
    if (!s->readonly && sqlite3_db_readonly(s->db, "main") == 1) {
        status = error_set(e, HDLM_EIO,
                           "%s: cannot open for writing: SQLite opened it read-only; open it "
                           "read-only to query it",
                           path);
        goto fail;
    }
    if (version > known) {
        status = error_set(e, HDLM_EDB,
                           "%s: database schema version %lld is newer than this hdlm (knows up to "
                           "%d); use a newer hdlm",
                           path, (long long)version, known);
        goto fail;
    }
    if (version == 0 && objects > 0) {
        /* The two reads above were separate statements: another process may have committed its
         * first migration (tables and user_version together) between them. Read both again in
         * one transaction, which sees a single snapshot, before calling the file foreign. */
        if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK) {
            rc = db_scalar_impl(s, "PRAGMA user_version", 0, &version, NULL, 0, e);
            if (rc == SQLITE_OK)
                rc = db_scalar_impl(s, "SELECT count(*) FROM sqlite_schema", 0, &objects, NULL, 0,
                                    e);
            sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
            if (rc != SQLITE_OK) {
                status = HDLM_EDB;
                goto fail;
            }
        }
    }
    if (version == 0 && objects > 0) { /* checked before WAL mode changes the file */
        status = error_set(e, HDLM_EDB,
                           "%s: an SQLite database that hdlm did not create (user_version 0 but "
                           "%lld schema objects); refusing to use it",
                           path, (long long)objects);
        goto fail;
    }
    if (s->readonly && version == 0) {
        status = error_set(e, HDLM_EDB, "%s: an empty database, not created by hdlm", path);
        goto fail;
    }
    if (!s->readonly) {
        if (!memory && (status = open_wal(s, e)) != HDLM_OK) goto fail;
        if (db_scalar(s, "PRAGMA synchronous = NORMAL", NULL, NULL, 0, e) != SQLITE_OK) {
            status = HDLM_EDB;
            goto fail;
        }
    }
    if (db_scalar(s, "PRAGMA foreign_keys = ON", NULL, NULL, 0, e) != SQLITE_OK) {
        status = HDLM_EDB;
        goto fail;
    }
    if (!s->readonly && version < upto && (status = schema_migrate(s, upto, e)) != HDLM_OK)
        goto fail;
    s->version = s->readonly || version >= upto ? (int)version : upto;
    *out = s;
    return HDLM_OK;
fail:
    store_close(s);
    return status;
}

int store_open(const char *path, int flags, store **out, error *e) {
    return store_open_impl(path, flags, store_binary_schema_version(), out, e);
}

int store_open_at_version(const char *path, int upto, store **out, error *e) {
    return store_open_impl(path, 0, upto, out, e);
}

void store_close(store *s) {
    if (!s) return;
    if (s->db && s->n_metrics) store_flush(s, NULL); /* callers who care call store_flush first */
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    for (size_t i = 0; i < s->n_metrics; i++)
        free(s->metrics[i].name);
    free(s->metrics);
    free(s->path);
    free(s);
}

const char *store_path(const store *s) {
    return s->path;
}

int store_schema_version(store *s) {
    int64_t v = 0;
    if (!s->db) return 0;
    if (db_scalar(s, "PRAGMA user_version", &v, NULL, 0, NULL) != SQLITE_OK) return HDLM_EDB;
    return (int)v;
}

int store_set_busy_timeout(store *s, int ms) {
    if (ms < 0) ms = 0;
    s->busy_ms = ms;
    if (!s->db) return HDLM_OK;
    return sqlite3_busy_timeout(s->db, ms) == SQLITE_OK ? HDLM_OK : HDLM_EDB;
}

/* ---- runs ---- */

int store_run_begin(store *s, const store_run_info *info, int64_t *run_id, error *e) {
    HDLM_ASSERT(s && info && run_id);
    *run_id = 0;
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "begin a run", e)) return HDLM_ESTATE;
    if (!info->kind) return error_set(e, HDLM_EINVAL, "%s: a run needs a kind", s->path);
    char host[256] = "";
    if (!info->host && gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    int v4 = s->version >= 4; /* script text and resume link: schema 4 */
    sqlite3_stmt *st = stmt_get(s, v4 ? ST_RUN_INSERT : ST_RUN_INSERT_V3, e);
    sqlite3_stmt *sc = st && v4 ? stmt_get(s, ST_SCRIPT, e) : NULL;
    if (!st || (v4 && !sc)) return HDLM_EDB;
    int rc = SQLITE_OK;
    bind_text(st, 1, info->name, &rc);
    bind_text(st, 2, info->kind, &rc);
    bind_text(st, 3, info->config_json, &rc);
    bind_int(st, 4, info->seed, &rc);
    bind_text(st, 5, info->git_rev, &rc);
    if (info->git_dirty >= 0) bind_int(st, 6, info->git_dirty, &rc); /* < 0: unknown, NULL */
    bind_text(st, 7, info->host ? info->host : host[0] ? host : NULL, &rc);
    bind_text(st, 8, info->cpu, &rc);
    bind_text(st, 9, info->blas, &rc);
    bind_int(st, 10, info->threads, &rc);
    bind_int(st, 11, info->world_size > 0 ? info->world_size : 1, &rc);
    bind_text(st, 12, info->script, &rc);
    bind_text(st, 13, info->hdlm_version, &rc);
    bind_int(st, 14, (int64_t)getpid(), &rc);
    int with_script = v4 && info->script_sha256 && info->script_text;
    if (v4) {
        bind_text(st, 15, with_script ? info->script_sha256 : NULL, &rc);
        bind_id_or_null(st, 16, info->resumed_from, &rc);
    }
    if (bind_check(s, st, rc, e)) return HDLM_EDB;
    if (with_script) {
        rc = SQLITE_OK;
        bind_text(sc, 1, info->script_sha256, &rc);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_text64(sc, 2, info->script_text, (sqlite3_uint64)info->script_bytes,
                                     SQLITE_TRANSIENT, SQLITE_UTF8);
        bind_int(sc, 3, info->script_bytes, &rc);
        if (bind_check(s, sc, rc, e)) {
            sqlite3_clear_bindings(st);
            return HDLM_EDB;
        }
    }
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) {
        sqlite3_clear_bindings(st);
        if (with_script) sqlite3_clear_bindings(sc);
        return status;
    }
    /* the script row first: the run's script_sha256 refers to it */
    if (with_script) status = stmt_done(s, sc, e);
    if (status == HDLM_OK)
        status = stmt_done(s, st, e);
    else
        sqlite3_clear_bindings(st);
    if (status == HDLM_OK) *run_id = sqlite3_last_insert_rowid(s->db);
    status = tx_end(s, began, status, e);
    if (status != HDLM_OK) *run_id = 0;
    return status;
}

int store_run_continue(store *s, int64_t run_id, int64_t step, error *e) {
    HDLM_ASSERT(s);
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "continue a run", e)) return HDLM_ESTATE;
    if (s->version < 4)
        return error_set(e, HDLM_ESTATE, "%s: schema %d cannot continue runs (needs 4)", s->path,
                         s->version);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    sqlite3_stmt *st = stmt_get(s, ST_RUN_CONTINUE, e);
    if (!st) return HDLM_EDB;
    int rc = SQLITE_OK;
    bind_int(st, 1, run_id, &rc);
    bind_int(st, 2, (int64_t)getpid(), &rc);
    bind_text(st, 3, host[0] ? host : NULL, &rc);
    if (bind_check(s, st, rc, e)) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) {
        sqlite3_clear_bindings(st);
        return status;
    }
    status = stmt_done(s, st, e);
    if (status == HDLM_OK && sqlite3_changes(s->db) == 0)
        status = error_set(e, HDLM_ESTATE, "%s: run %lld does not exist or is still running",
                           s->path, (long long)run_id);
    status = tx_end(s, began, status, e);
    if (status == HDLM_OK) status = store_metric(s, run_id, step, "resume", (double)step, e);
    return status;
}

int store_run_end(store *s, int64_t run_id, const char *status_text, const char *error_text,
                  error *e) {
    HDLM_ASSERT(s && status_text);
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "end a run", e)) return HDLM_ESTATE;
    if (strcmp(status_text, "done") && strcmp(status_text, "failed") &&
        strcmp(status_text, "interrupted"))
        return error_set(e, HDLM_EINVAL,
                         "%s: run %lld: status '%s' is not one of done, failed, interrupted",
                         s->path, (long long)run_id, status_text);
    /* The run is closed even when its last metrics cannot be written; the flush error wins. */
    error flush_err = {0};
    int flushed = store_flush(s, &flush_err);
    sqlite3_stmt *st = stmt_get(s, ST_RUN_END, e);
    if (!st) return HDLM_EDB;
    int rc = SQLITE_OK;
    bind_int(st, 1, run_id, &rc);
    bind_text(st, 2, status_text, &rc);
    bind_text(st, 3, error_text, &rc);
    if (bind_check(s, st, rc, e)) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) {
        sqlite3_clear_bindings(st);
        return status;
    }
    status = stmt_done(s, st, e);
    if (status == HDLM_OK && sqlite3_changes(s->db) == 0)
        status =
            error_set(e, HDLM_EINVAL, "%s: run %lld does not exist", s->path, (long long)run_id);
    status = tx_end(s, began, status, e);
    if (flushed != HDLM_OK) {
        if (e) *e = flush_err;
        return flushed;
    }
    return status;
}

int store_run_plugin(store *s, int64_t run_id, const char *kind, const char *name,
                     const char *version, int abi, const char *file, const char *hash,
                     const char *options_json, error *e) {
    HDLM_ASSERT(s && kind && name);
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "record a plugin", e)) return HDLM_ESTATE;
    sqlite3_stmt *st = stmt_get(s, ST_PLUGIN, e);
    if (!st) return HDLM_EDB;
    int rc = SQLITE_OK;
    bind_int(st, 1, run_id, &rc);
    bind_text(st, 2, kind, &rc);
    bind_text(st, 3, name, &rc);
    bind_text(st, 4, version, &rc);
    bind_int(st, 5, abi, &rc);
    bind_text(st, 6, file, &rc);
    bind_text(st, 7, hash, &rc);
    bind_text(st, 8, options_json, &rc);
    if (bind_check(s, st, rc, e)) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) {
        sqlite3_clear_bindings(st);
        return status;
    }
    return tx_end(s, began, stmt_done(s, st, e), e);
}

/* ---- metrics ---- */

int store_metric(store *s, int64_t run_id, int64_t step, const char *name, double value, error *e) {
    HDLM_ASSERT(s && name);
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "log a metric", e)) return HDLM_ESTATE;
    if (s->n_metrics == s->cap_metrics) {
        size_t cap = s->cap_metrics ? 2 * s->cap_metrics : STORE_METRIC_BATCH;
        metric_row *m = realloc(s->metrics, cap * sizeof *m);
        if (!m) return error_set(e, HDLM_ENOMEM, "%s: out of memory buffering metrics", s->path);
        s->metrics = m;
        s->cap_metrics = cap;
    }
    metric_row *r = &s->metrics[s->n_metrics];
    if (!(r->name = str_dup(name)))
        return error_set(e, HDLM_ENOMEM, "%s: out of memory buffering metrics", s->path);
    r->run_id = run_id;
    r->step = step;
    r->value = value;
    time_now_iso(r->at);
    double now = time_monotonic();
    if (s->n_metrics++ == 0) s->first_pending = now;
    int full = s->n_metrics >= STORE_METRIC_BATCH;
    int old = now - s->first_pending >= STORE_METRIC_AGE_MS / 1000.0;
    return full || old ? store_flush(s, e) : HDLM_OK;
}

int store_flush(store *s, error *e) {
    HDLM_ASSERT(s);
    if (!s->n_metrics) return HDLM_OK;
    s->last_rc = SQLITE_OK;
    sqlite3_stmt *st = stmt_get(s, ST_METRIC, e);
    if (!st) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    for (size_t i = 0; i < s->n_metrics && status == HDLM_OK; i++) {
        const metric_row *r = &s->metrics[i];
        int rc = SQLITE_OK;
        bind_int(st, 1, r->run_id, &rc);
        bind_int(st, 2, r->step, &rc);
        bind_text(st, 3, r->name, &rc);
        bind_real(st, 4, r->value, &rc);
        bind_text(st, 5, r->at, &rc);
        status = bind_check(s, st, rc, e);
        if (status == HDLM_OK) status = stmt_done(s, st, e);
    }
    status = tx_end(s, began, status, e);
    /* A busy database may free up later: keep the rows. Anything else (an unknown run id, ...)
     * would fail again on every flush, so those rows are dropped and the loss is reported. */
    if (status != HDLM_OK && (s->last_rc & 0xff) == SQLITE_BUSY) return status;
    if (status != HDLM_OK)
        error_wrap(e, "%zu buffered metric%s dropped", s->n_metrics, s->n_metrics == 1 ? "" : "s");
    for (size_t i = 0; i < s->n_metrics; i++)
        free(s->metrics[i].name);
    s->n_metrics = 0;
    return status;
}

/* ---- checkpoints, evaluations, samples ---- */

int store_checkpoint(store *s, int64_t run_id, int64_t step, const char *path, const char *hash,
                     int64_t bytes, int64_t *checkpoint_id, error *e) {
    HDLM_ASSERT(s && path);
    if (checkpoint_id) *checkpoint_id = 0;
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "record a checkpoint", e)) return HDLM_ESTATE;
    sqlite3_stmt *st = stmt_get(s, ST_CHECKPOINT, e);
    if (!st) return HDLM_EDB;
    int rc = SQLITE_OK;
    bind_int(st, 1, run_id, &rc);
    bind_int(st, 2, step, &rc);
    bind_text(st, 3, path, &rc);
    bind_text(st, 4, hash, &rc);
    bind_int(st, 5, bytes, &rc);
    if (bind_check(s, st, rc, e)) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) {
        sqlite3_clear_bindings(st);
        return status;
    }
    status = stmt_done(s, st, e);
    int64_t id = sqlite3_last_insert_rowid(s->db);
    status = tx_end(s, began, status, e);
    if (status == HDLM_OK && checkpoint_id) *checkpoint_id = id;
    return status;
}

int store_evaluation(store *s, int64_t run_id, int64_t checkpoint_id, const char *metric,
                     double value, double std_error, const char *settings_json, error *e) {
    return store_evaluation_items(s, run_id, checkpoint_id, metric, value, std_error, settings_json,
                                  NULL, 0, NULL, e);
}

int store_evaluation_items(store *s, int64_t run_id, int64_t checkpoint_id, const char *metric,
                           double value, double std_error, const char *settings_json,
                           const double *items, int64_t n_items, int64_t *evaluation_id, error *e) {
    HDLM_ASSERT(s && metric && (items || n_items == 0) && n_items >= 0);
    if (evaluation_id) *evaluation_id = 0;
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "record an evaluation", e)) return HDLM_ESTATE;
    for (int64_t i = 0; i < n_items; i++)
        if (isnan(items[i]))
            return error_set(e, HDLM_EINVAL,
                             "%s: evaluation '%s' of run %lld: item %lld is NaN, expected a number",
                             s->path, metric, (long long)run_id, (long long)i);
    if (n_items > 0 && s->version < 4)
        return error_set(e, HDLM_ESTATE, "%s: schema %d has no evaluation_items (needs 4)", s->path,
                         s->version);
    sqlite3_stmt *st = stmt_get(s, ST_EVALUATION, e);
    sqlite3_stmt *it = st && n_items > 0 ? stmt_get(s, ST_EVAL_ITEM, e) : NULL;
    if (!st || (n_items > 0 && !it)) return HDLM_EDB;
    int rc = SQLITE_OK;
    bind_int(st, 1, run_id, &rc);
    bind_id_or_null(st, 2, checkpoint_id, &rc);
    bind_text(st, 3, metric, &rc);
    bind_real(st, 4, value, &rc);
    bind_real(st, 5, std_error, &rc);
    bind_text(st, 6, settings_json, &rc);
    if (bind_check(s, st, rc, e)) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) {
        sqlite3_clear_bindings(st);
        return status;
    }
    status = stmt_done(s, st, e);
    int64_t id = sqlite3_last_insert_rowid(s->db);
    for (int64_t i = 0; i < n_items && status == HDLM_OK; i++) {
        rc = SQLITE_OK;
        bind_int(it, 1, id, &rc);
        bind_int(it, 2, i, &rc);
        bind_real(it, 3, items[i], &rc);
        status = bind_check(s, it, rc, e);
        if (status == HDLM_OK) status = stmt_done(s, it, e);
    }
    status = tx_end(s, began, status, e);
    if (status == HDLM_OK && evaluation_id) *evaluation_id = id;
    return status;
}

static const char *event_kind_text(int kind) {
    switch (kind) {
    case HDLM_EVENT_UNMASK:
        return "unmask";
    case HDLM_EVENT_CORRECT:
        return "correct";
    case HDLM_EVENT_REMASK:
        return "remask";
    default:
        return NULL;
    }
}

/* "[t0,t1,...]" in a malloc'd string. */
static char *tokens_json(const int32_t *tokens, int64_t n) {
    size_t cap = 3 + (size_t)(n > 0 ? n : 0) * 12, len = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[len++] = '[';
    for (int64_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, i ? ",%d" : "%d", (int)tokens[i]);
    out[len++] = ']';
    out[len] = '\0';
    return out;
}

int store_sample(store *s, const store_sample_info *info, const store_event *events,
                 int64_t n_events, int64_t *sample_id, error *e) {
    HDLM_ASSERT(s && info && (events || n_events == 0) && n_events >= 0);
    HDLM_ASSERT(info->tokens || info->n_tokens == 0);
    if (sample_id) *sample_id = 0;
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "record a sample", e)) return HDLM_ESTATE;
    for (int64_t i = 0; i < n_events; i++)
        if (!event_kind_text(events[i].kind))
            return error_set(e, HDLM_EINVAL,
                             "%s: sample event %lld has kind %d, expected HDLM_EVENT_UNMASK (1), "
                             "CORRECT (2) or REMASK (3)",
                             s->path, (long long)i, events[i].kind);
    sqlite3_stmt *st = stmt_get(s, ST_SAMPLE, e), *ev = st ? stmt_get(s, ST_EVENT, e) : NULL;
    if (!ev) return HDLM_EDB;
    char *tokens = tokens_json(info->tokens, info->n_tokens);
    if (!tokens) return error_set(e, HDLM_ENOMEM, "%s: out of memory", s->path);
    int rc = SQLITE_OK;
    bind_int(st, 1, info->run_id, &rc);
    bind_id_or_null(st, 2, info->checkpoint_id, &rc);
    bind_text(st, 3, info->text, &rc);
    bind_text(st, 4, tokens, &rc);
    bind_int(st, 5, info->n_tokens, &rc);
    bind_text(st, 6, info->sampler, &rc);
    bind_text(st, 7, info->schedule, &rc);
    bind_text(st, 8, info->noise, &rc);
    bind_text(st, 9, info->settings_json, &rc);
    bind_int(st, 10, info->seed, &rc);
    bind_int(st, 11, info->steps, &rc);
    bind_int(st, 12, info->nfe, &rc);
    bind_real(st, 13, info->wall_time, &rc);
    bind_text(st, 14, info->metrics_json, &rc);
    free(tokens);
    if (bind_check(s, st, rc, e)) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) {
        sqlite3_clear_bindings(st);
        return status;
    }
    status = stmt_done(s, st, e);
    int64_t id = sqlite3_last_insert_rowid(s->db);
    for (int64_t i = 0; i < n_events && status == HDLM_OK; i++) {
        const store_event *x = &events[i];
        rc = SQLITE_OK;
        bind_int(ev, 1, id, &rc);
        bind_int(ev, 2, i, &rc);
        bind_int(ev, 3, x->step, &rc);
        bind_int(ev, 4, x->position, &rc);
        bind_int(ev, 5, x->old_token, &rc);
        bind_int(ev, 6, x->new_token, &rc);
        bind_real(ev, 7, x->prob, &rc);
        bind_text(ev, 8, event_kind_text(x->kind), &rc);
        status = bind_check(s, ev, rc, e);
        if (status == HDLM_OK) status = stmt_done(s, ev, e);
    }
    status = tx_end(s, began, status, e);
    if (status == HDLM_OK && sample_id) *sample_id = id;
    return status;
}

/* ---- generic queries ---- */

/* Where the rows of query_run go: on_columns once per statement that returns columns (before its
 * rows), on_row once per row. Either may be NULL. */
typedef struct query_sink {
    int (*on_columns)(void *ud, int ncol, const char *const *names);
    store_row_fn on_row;
    void *ud;
} query_sink;

static int query_bind(store *s, sqlite3_stmt *st, int nparams, const store_value *params,
                      error *e) {
    int want = sqlite3_bind_parameter_count(st);
    if (want > nparams) {
        char line[200];
        sql_one_line(sqlite3_sql(st), line, sizeof line);
        return error_set(e, HDLM_EINVAL, "%s: the statement has %d parameter%s, %d given (in: %s)",
                         s->path, want, want == 1 ? "" : "s", nparams, line);
    }
    int rc = SQLITE_OK;
    for (int i = 0; i < want && rc == SQLITE_OK; i++) {
        const store_value *v = &params[i];
        switch (v->type) {
        case STORE_INT:
            rc = sqlite3_bind_int64(st, i + 1, v->i);
            break;
        case STORE_REAL:
            rc = sqlite3_bind_double(st, i + 1, v->d);
            break;
        case STORE_TEXT:
            rc = v->s ? sqlite3_bind_text64(st, i + 1, v->s,
                                            v->len > 0 ? (sqlite3_uint64)v->len : strlen(v->s),
                                            SQLITE_TRANSIENT, SQLITE_UTF8)
                      : sqlite3_bind_null(st, i + 1);
            break;
        case STORE_BLOB:
            rc = sqlite3_bind_blob64(st, i + 1, v->s ? v->s : "", (sqlite3_uint64)v->len,
                                     SQLITE_TRANSIENT);
            break;
        default:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        }
    }
    return rc == SQLITE_OK ? HDLM_OK : db_fail(s, rc, sqlite3_sql(st), e);
}

/* Runs every statement in sql in turn; rows of each statement that returns rows go to the sink.
 * Statements with parameters take them from params, each statement starting at the first. */
static int query_run(store *s, const char *sql, int nparams, const store_value *params,
                     const query_sink *sink, error *e) {
    HDLM_ASSERT(s && sql && (params || nparams == 0));
    if (!s->db)
        return error_set(e, HDLM_EIO,
                         "%s: not on this machine; this process is a follower rank (rank 0 writes "
                         "the database) and can query it only on a shared filesystem",
                         s->path);
    /* Queries see every metric logged through this connection. */
    if (!s->readonly && s->n_metrics) {
        int status = store_flush(s, e);
        if (status != HDLM_OK) return status;
    }
    const char *p = sql;
    int status = HDLM_OK, stop = 0;
    const char **names = NULL;
    store_value *vals = NULL;
    while (*p && status == HDLM_OK && !stop) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        int rc = sqlite3_prepare_v2(s->db, p, -1, &st, &tail);
        if (rc != SQLITE_OK) {
            status = db_fail(s, rc, p, e);
            break;
        }
        p = tail;
        if (!st) continue; /* only whitespace or a comment was left */
        if (s->readonly && !sqlite3_stmt_readonly(st)) {
            /* said before SQLite's "attempt to write a readonly database", which sounds like
             * file permissions */
            char line[200];
            sql_one_line(sqlite3_sql(st), line, sizeof line);
            status = error_set(e, HDLM_ESTATE,
                               "%s: read-only, and the statement would change the database (in: "
                               "%s)",
                               s->path, line);
            sqlite3_finalize(st);
            break;
        }
        status = query_bind(s, st, nparams, params, e);
        int ncol = sqlite3_column_count(st);
        if (status == HDLM_OK && ncol > 0) {
            free(names);
            free(vals);
            names = malloc((size_t)ncol * sizeof *names);
            vals = malloc((size_t)ncol * sizeof *vals);
            if (!names || !vals) status = error_set(e, HDLM_ENOMEM, "%s: out of memory", s->path);
            for (int c = 0; c < ncol && status == HDLM_OK; c++) {
                names[c] = sqlite3_column_name(st, c);
                if (!names[c]) status = error_set(e, HDLM_ENOMEM, "%s: out of memory", s->path);
            }
            if (status == HDLM_OK && sink && sink->on_columns &&
                sink->on_columns(sink->ud, ncol, names) != 0)
                status = error_set(e, HDLM_EIO, "%s: writing the query result failed", s->path);
        }
        while (status == HDLM_OK) {
            rc = sqlite3_step(st);
            if (rc == SQLITE_DONE) break;
            if (rc != SQLITE_ROW) {
                status = db_fail(s, rc, sqlite3_sql(st), e);
                break;
            }
            if (!sink || !sink->on_row) continue;
            for (int c = 0; c < ncol; c++) {
                store_value *v = &vals[c];
                memset(v, 0, sizeof *v);
                switch (sqlite3_column_type(st, c)) {
                case SQLITE_INTEGER:
                    v->type = STORE_INT;
                    v->i = sqlite3_column_int64(st, c);
                    v->d = (double)v->i;
                    break;
                case SQLITE_FLOAT:
                    v->type = STORE_REAL;
                    v->d = sqlite3_column_double(st, c);
                    v->i = (int64_t)v->d;
                    break;
                case SQLITE_TEXT:
                    v->type = STORE_TEXT;
                    v->s = (const char *)sqlite3_column_text(st, c);
                    v->len = sqlite3_column_bytes(st, c);
                    break;
                case SQLITE_BLOB:
                    v->type = STORE_BLOB;
                    v->s = sqlite3_column_blob(st, c);
                    v->len = sqlite3_column_bytes(st, c);
                    break;
                default:
                    v->type = STORE_NULL;
                    break;
                }
            }
            if (sink->on_row(sink->ud, ncol, names, vals) != 0) {
                stop = 1;
                break;
            }
        }
        sqlite3_finalize(st);
    }
    free(names);
    free(vals);
    return status;
}

int store_query(store *s, const char *sql, store_row_fn cb, void *ud, error *e) {
    query_sink sink = {NULL, cb, ud};
    return query_run(s, sql, 0, NULL, &sink, e);
}

int store_query_params(store *s, const char *sql, int nparams, const store_value *params,
                       store_row_fn cb, void *ud, error *e) {
    query_sink sink = {NULL, cb, ud};
    return query_run(s, sql, nparams, params, &sink, e);
}

int store_query_cols(store *s, const char *sql, store_cols_fn cols, store_row_fn rows, void *ud,
                     error *e) {
    query_sink sink = {cols, rows, ud};
    return query_run(s, sql, 0, NULL, &sink, e);
}

/* ---- housekeeping ---- */

int64_t store_changes(store *s) {
    return s->db ? (int64_t)sqlite3_total_changes64(s->db) : 0;
}

/* Runs sql with ?1 = id and returns its single integer (0 when no row); rc receives failures. */
static int64_t count_for(store *s, const char *sql, int64_t id, int *status, error *e) {
    if (*status != HDLM_OK) return 0;
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 1, id);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) *status = db_fail(s, rc, sql, e);
    sqlite3_finalize(st);
    return v;
}

int store_runs_delete(store *s, const int64_t *ids, size_t n, int dry_run, store_run_counts *counts,
                      error *e) {
    HDLM_ASSERT(s && (ids || n == 0));
    if (check_writable(s, "delete runs", e)) return HDLM_ESTATE;
    if (!s->db) return error_set(e, HDLM_ESTATE, "%s: not on this machine", s->path);
    if (s->version < 4)
        return error_set(e, HDLM_ESTATE, "%s: schema %d; open it with this hdlm first (needs 4)",
                         s->path, s->version);
    int status = store_flush(s, e); /* buffered metrics of these runs must not land after */
    if (status != HDLM_OK) return status;
    int began;
    if ((status = tx_begin(s, &began, e)) != HDLM_OK) return status;
    if (dry_run && !began) /* rolling back would end the caller's own transaction */
        return error_set(e, HDLM_ESTATE, "%s: a dry run cannot share an open transaction", s->path);
    for (size_t i = 0; i < n && status == HDLM_OK; i++) {
        int64_t id = ids[i];
        char st_text[32] = "", sql[160];
        int64_t pid = 0;
        snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld", (long long)id);
        if (db_scalar(s, sql, NULL, st_text, sizeof st_text, e) != SQLITE_OK) {
            status = HDLM_EDB;
            break;
        }
        if (!st_text[0]) {
            status = error_set(e, HDLM_EINVAL, "%s: no run %lld; nothing was deleted", s->path,
                               (long long)id);
            break;
        }
        if (!strcmp(st_text, "running")) {
            snprintf(sql, sizeof sql, "SELECT pid FROM runs WHERE id = %lld", (long long)id);
            db_scalar(s, sql, &pid, NULL, 0, NULL);
            status = error_set(e, HDLM_ESTATE,
                               "%s: run %lld is running (process %lld); stop it first; nothing was "
                               "deleted",
                               s->path, (long long)id, (long long)pid);
            break;
        }
        store_run_counts c = {0};
        c.metrics = count_for(s, "SELECT count(*) FROM metrics WHERE run_id = ?1", id, &status, e);
        c.checkpoints =
            count_for(s, "SELECT count(*) FROM checkpoints WHERE run_id = ?1", id, &status, e);
        c.evaluations =
            count_for(s, "SELECT count(*) FROM evaluations WHERE run_id = ?1", id, &status, e);
        c.items = count_for(s,
                            "SELECT count(*) FROM evaluation_items WHERE evaluation_id IN "
                            "(SELECT id FROM evaluations WHERE run_id = ?1)",
                            id, &status, e);
        c.samples = count_for(s, "SELECT count(*) FROM samples WHERE run_id = ?1", id, &status, e);
        c.events = count_for(s,
                             "SELECT count(*) FROM sample_events WHERE sample_id IN "
                             "(SELECT id FROM samples WHERE run_id = ?1)",
                             id, &status, e);
        c.plugins =
            count_for(s, "SELECT count(*) FROM run_plugins WHERE run_id = ?1", id, &status, e);
        c.sweep_points =
            count_for(s, "SELECT count(*) FROM sweep_points WHERE run_id = ?1", id, &status, e);
        c.resumed_by =
            count_for(s, "SELECT count(*) FROM runs WHERE resumed_from = ?1", id, &status, e);
        if (counts) counts[i] = c;
        /* the cascades (foreign keys are on in every hdlm connection) do the rest */
        count_for(s, "DELETE FROM runs WHERE id = ?1", id, &status, e);
    }
    if (status == HDLM_OK)
        count_for(s,
                  "DELETE FROM scripts WHERE ?1 = ?1 AND sha256 NOT IN "
                  "(SELECT script_sha256 FROM runs WHERE script_sha256 IS NOT NULL)",
                  0, &status, e);
    if (status == HDLM_OK && dry_run) {
        /* every count above is what the delete would take; nothing is kept */
        tx_end(s, began, HDLM_EINVAL, NULL);
        return HDLM_OK;
    }
    return tx_end(s, began, status, e);
}

int store_reap_runs(store *s, error *e) {
    HDLM_ASSERT(s);
    if (s->follower) return HDLM_OK; /* rank 0 writes */
    if (check_writable(s, "reap runs", e)) return HDLM_ESTATE;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) return HDLM_OK; /* cannot tell whose runs */
    sqlite3_stmt *sel = stmt_get(s, ST_REAP_SELECT, e);
    sqlite3_stmt *upd = sel ? stmt_get(s, ST_REAP_UPDATE, e) : NULL;
    if (!upd) return HDLM_EDB;
    int began, status = tx_begin(s, &began, e);
    if (status != HDLM_OK) return status;
    int64_t *dead = NULL;
    size_t n_dead = 0, cap = 0;
    int rc = sqlite3_bind_text(sel, 1, host, -1, SQLITE_TRANSIENT);
    while (rc == SQLITE_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (sqlite3_column_type(sel, 1) != SQLITE_INTEGER) continue;
        int64_t pid = sqlite3_column_int64(sel, 1);
        /* ESRCH only: EPERM means the process exists but belongs to someone else. */
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        if (n_dead == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *d = realloc(dead, 2 * cap * sizeof *d);
            if (!d) {
                status = error_set(e, HDLM_ENOMEM, "%s: out of memory", s->path);
                break;
            }
            dead = d;
        }
        dead[2 * n_dead] = sqlite3_column_int64(sel, 0);
        dead[2 * n_dead + 1] = pid;
        n_dead++;
    }
    if (status == HDLM_OK && rc != SQLITE_DONE) status = db_fail(s, rc, sqlite3_sql(sel), e);
    sqlite3_reset(sel);
    sqlite3_clear_bindings(sel);
    for (size_t i = 0; i < n_dead && status == HDLM_OK; i++) {
        char why[96];
        snprintf(why, sizeof why, "process %lld ended without closing the run",
                 (long long)dead[2 * i + 1]);
        rc = SQLITE_OK;
        bind_int(upd, 1, dead[2 * i], &rc);
        bind_text(upd, 2, why, &rc);
        status = bind_check(s, upd, rc, e);
        if (status == HDLM_OK) status = stmt_done(s, upd, e);
    }
    free(dead);
    return tx_end(s, began, status, e);
}
