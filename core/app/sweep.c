/* `hdlm sweep`: the coordinator, the worker entry and the status command. The coordinator hands
 * points whose worker is gone back to the queue, registers the sweep (core/app/sweep.lua, embedded
 * at build time), starts N workers (this binary again with --worker, so each has its own process,
 * Lua state and BLAS threads), waits for them and prints the outcome. A worker claims points in
 * write transactions until none is pending; then it looks for points whose worker died meanwhile
 * and, when it finds some, goes on with them. Whether a worker is alive is decided here: same host,
 * the pid exists, is not a zombie, and started when the claim says (a reused pid is not the
 * worker).
 */
#include "app/sweep.h"

#include "base/error.h"
#include "lua/lua_host.h"
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

extern const char hdlm_sweep_lua[]; /* core/app/sweep.lua, embedded at build time */

enum { SWEEP_MAX_WORKERS = 256 };

static const char sweep_usage[] =
    "usage: hdlm sweep FILE.lua [--db FILE] [--workers N] [--retry-failed] | hdlm sweep FILE.lua "
    "--worker ID [--db FILE] | hdlm sweep --status NAME_OR_ID [--db FILE]";

/* ---- is a claim's worker alive? ---- */

/* Field 3 (state) and field 22 (start time, clock ticks since boot) of /proc/PID/stat; returns 0
 * when the file cannot be read (no such process, or no /proc). */
static int proc_stat(long pid, char *state, long long *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || sscanf(p + 1, " %c", state) != 1) return 0;
    p += 2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p) p++;
    }
    *start = p ? strtoll(p, NULL, 10) : 0;
    return 1;
}

static long long self_start_time(void) {
    char state;
    long long start = 0;
    return proc_stat((long)getpid(), &state, &start) ? start : 0;
}

/* The caller holds no point while it reclaims, so a claim in its own pid is a dead worker's. */
static int worker_alive(long pid, long long claimed_start) {
    if (pid <= 0 || pid == (long)getpid()) return 0;
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return 0;
    char state;
    long long start;
    if (!proc_stat(pid, &state, &start)) return 1; /* exists; nothing more to tell without /proc */
    if (state == 'Z' || state == 'X') return 0;
    return claimed_start <= 0 || start == claimed_start;
}

typedef struct claim_list {
    int64_t (*rows)[4]; /* sweep_id, idx, pid, pid_start */
    int n, cap;
} claim_list;

static int collect_claim(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    claim_list *l = ud;
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 16;
        int64_t(*r)[4] = realloc(l->rows, (size_t)nc * sizeof *r);
        if (!r) return 1;
        l->rows = r, l->cap = nc;
    }
    for (int i = 0; i < 4 && i < ncol; i++)
        l->rows[l->n][i] = vals[i].type == STORE_INT ? vals[i].i : 0;
    l->n++;
    return 0;
}

/* Points of this host whose worker is gone go back to 'pending' (their next claim resumes from
 * the point's checkpoints). *n_back receives how many. */
static int sweep_reclaim(const char *db, int *n_back, error *e) {
    *n_back = 0;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) return HDLM_OK; /* cannot tell whose points */
    store *s = NULL;
    if (store_open(db, 0, &s, e) != HDLM_OK) return e->code;
    claim_list l = {0};
    store_value hv = {.type = STORE_TEXT, .s = host, .len = (int64_t)strlen(host)};
    int rc = store_query(s, "BEGIN IMMEDIATE", NULL, NULL, e);
    if (rc == HDLM_OK)
        rc = store_query_params(s,
                                "SELECT sweep_id, idx, pid, pid_start FROM sweep_points WHERE "
                                "status = 'running' AND host = ?",
                                1, &hv, collect_claim, &l, e);
    for (int i = 0; i < l.n && rc == HDLM_OK; i++) {
        if (worker_alive((long)l.rows[i][2], l.rows[i][3])) continue;
        char why[160];
        snprintf(why, sizeof why, "worker pid %lld ended while running it",
                 (long long)l.rows[i][2]);
        store_value p[4] = {{.type = STORE_INT, .i = l.rows[i][0]},
                            {.type = STORE_INT, .i = l.rows[i][1]},
                            {.type = STORE_INT, .i = l.rows[i][2]},
                            {.type = STORE_TEXT, .s = why, .len = (int64_t)strlen(why)}};
        rc = store_query_params(s,
                                "UPDATE sweep_points SET status = 'pending', error = ?4 WHERE "
                                "sweep_id = ?1 AND idx = ?2 AND pid = ?3 AND status = 'running'",
                                4, p, NULL, NULL, e);
        if (rc == HDLM_OK) (*n_back)++;
    }
    if (rc == HDLM_OK) {
        rc = store_query(s, "COMMIT", NULL, NULL, e);
    } else {
        error ignored = {0};
        store_query(s, "ROLLBACK", NULL, NULL, &ignored);
        *n_back = 0;
    }
    free(l.rows);
    store_close(s);
    return rc;
}

/* ---- the embedded Lua ---- */

/* Runs sweep.lua with mode and the key=value arguments in extra (NULL-terminated). Expected
 * failures ("sweep: ...") print their first line only; a bug keeps its traceback. */
static int run_lua(const char *db, const char *const *extra) {
    char *args[16];
    int n = 0;
    for (; extra[n] && n < 16; n++)
        args[n] = (char *)extra[n];
    lua_host_opts o = {
        .script = "=hdlm sweep", .n_args = n, .args = args, .db_path = db, .chunk = hdlm_sweep_lua};
    error e = {0};
    if (lua_host_run(&o, &e) != HDLM_OK) {
        if (!strncmp(e.msg, "sweep: ", 7)) e.msg[strcspn(e.msg, "\n")] = '\0';
        fprintf(stderr, "hdlm: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* ---- the coordinator ---- */

static pid_t children[SWEEP_MAX_WORKERS];
static int n_children;
static volatile sig_atomic_t got_signal;

static void forward_signal(int sig) {
    got_signal = sig;
    for (int i = 0; i < n_children; i++)
        if (children[i] > 0) kill(children[i], sig);
}

static pid_t start_worker(const char *self, const char *file, const char *db, int id, int threads) {
    char idtext[16];
    snprintf(idtext, sizeof idtext, "%d", id);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
#ifdef __linux__
    /* a worker ends with its coordinator: killing the coordinator stops the whole sweep */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (getppid() != parent) _exit(1);
    if (!getenv("OMP_NUM_THREADS")) {
        char t[16];
        snprintf(t, sizeof t, "%d", threads);
        setenv("OMP_NUM_THREADS", t, 1);
    }
    if (!getenv("HDLM_PROGRESS")) setenv("HDLM_PROGRESS", "off", 1); /* N bars would interleave */
    char *argv[] = {"hdlm", "sweep", (char *)file, "--db", (char *)db, "--worker", idtext, NULL};
    execv(self, argv);
    fprintf(stderr, "hdlm: sweep: cannot start a worker (%s): %s\n", self, strerror(errno));
    _exit(127);
}

static int coordinate(const char *file, const char *db, int workers, int retry_failed,
                      const char *cwdarg) {
    error e = {0};
    int n_back = 0;
    if (sweep_reclaim(db, &n_back, &e) != HDLM_OK) {
        fprintf(stderr, "hdlm: %s\n", e.msg);
        return 1;
    }
    char filearg[4200];
    snprintf(filearg, sizeof filearg, "file=%s", file);
    const char *plan[] = {"mode=plan", filearg, cwdarg,
                          retry_failed ? "retry_failed=true" : "retry_failed=false", NULL};
    if (run_lua(db, plan)) return 1;

    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        fprintf(stderr, "hdlm: sweep: cannot find the running binary (/proc/self/exe)\n");
        return 1;
    }
    self[len] = '\0';
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores > workers ? (int)(cores / workers) : 1;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    fflush(stdout); /* the children must not repeat our buffered output */
    fflush(stderr);
    n_children = 0;
    for (int i = 0; i < workers && !got_signal; i++) {
        pid_t pid = start_worker(self, file, db, i + 1, threads);
        if (pid < 0) {
            fprintf(stderr, "hdlm: sweep: fork failed: %s\n", strerror(errno));
            break;
        }
        children[n_children++] = pid;
    }
    int bad = 0;
    for (int left = n_children; left > 0;) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < n_children; i++) {
            if (children[i] != pid) continue;
            children[i] = 0;
            left--;
            if (WIFSIGNALED(status) && !got_signal) {
                fprintf(stderr, "hdlm: sweep: worker %d (pid %ld) was killed by signal %d\n", i + 1,
                        (long)pid, WTERMSIG(status));
                bad = 1;
            } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
                bad = 1;
            }
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (got_signal) {
        fprintf(stderr, "hdlm: sweep: stopped by signal %d; run the same command again to resume\n",
                (int)got_signal);
        return 128 + (int)got_signal;
    }
    if (sweep_reclaim(db, &n_back, &e) != HDLM_OK) {
        fprintf(stderr, "hdlm: %s\n", e.msg);
        return 1;
    }
    const char *final[] = {"mode=final", filearg, cwdarg, NULL};
    return run_lua(db, final) || bad;
}

/* ---- one worker ---- */

static int work(const char *file, const char *db, const char *id, const char *cwdarg) {
    char filearg[4200], worker[64], pid[64], start[64], host[300], hn[256] = "";
    gethostname(hn, sizeof hn - 1);
    snprintf(filearg, sizeof filearg, "file=%s", file);
    snprintf(worker, sizeof worker, "worker=%s", id);
    snprintf(pid, sizeof pid, "pid=%ld", (long)getpid());
    snprintf(start, sizeof start, "pid_start=%lld", self_start_time());
    snprintf(host, sizeof host, "host=%s", hn);
    const char *args[] = {"mode=worker", filearg, cwdarg, worker, pid, start, host, NULL};
    for (;;) {
        error e = {0};
        int n_back = 0;
        if (sweep_reclaim(db, &n_back, &e) != HDLM_OK) {
            fprintf(stderr, "hdlm: %s\n", e.msg);
            return 1;
        }
        if (run_lua(db, args)) return 1;
        /* the queue is empty: go on with the points of workers that died meanwhile, if any */
        if (sweep_reclaim(db, &n_back, &e) != HDLM_OK) {
            fprintf(stderr, "hdlm: %s\n", e.msg);
            return 1;
        }
        if (n_back == 0) return 0;
    }
}

/* ---- the command ---- */

/* "--flag VALUE" or "--flag=VALUE" at argv[*i]: the value (advancing *i), or NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag) {
    size_t fl = strlen(flag);
    if (strncmp(argv[*i], flag, fl)) return NULL;
    if (argv[*i][fl] == '=') return argv[*i] + fl + 1;
    if (argv[*i][fl] != '\0') return NULL;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

int sweep_main(int argc, char **argv) {
    const char *db = "runs.db", *file = NULL, *workers_s = "1", *status = NULL, *worker = NULL;
    int retry_failed = 0;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = flag_value(argc, argv, &i, "--db")))
            db = v;
        else if ((v = flag_value(argc, argv, &i, "--workers")))
            workers_s = v;
        else if ((v = flag_value(argc, argv, &i, "--status")))
            status = v;
        else if ((v = flag_value(argc, argv, &i, "--worker")))
            worker = v;
        else if (!strcmp(argv[i], "--retry-failed"))
            retry_failed = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "hdlm: sweep: unknown flag or missing value '%s'\n%s\n", argv[i],
                    sweep_usage);
            return 2;
        } else if (!file)
            file = argv[i];
        else {
            fprintf(stderr, "hdlm: sweep: unexpected argument '%s'\n%s\n", argv[i], sweep_usage);
            return 2;
        }
    }
    char cwd[4096], cwdarg[4200] = "cwd=";
    if (getcwd(cwd, sizeof cwd)) snprintf(cwdarg, sizeof cwdarg, "cwd=%s", cwd);

    if (status) {
        if (file) {
            fprintf(stderr, "hdlm: sweep: --status takes a sweep name or id, not a file ('%s')\n",
                    file);
            return 2;
        }
        /* a read-only open first: a missing file is one message, and no database is created */
        error e = {0};
        store *s = NULL;
        if (store_open(db, STORE_READONLY, &s, &e) != HDLM_OK) {
            fprintf(stderr, "hdlm: %s\n", e.msg);
            return 1;
        }
        store_close(s);
        int n_back;
        if (sweep_reclaim(db, &n_back, &e) != HDLM_OK) {
            fprintf(stderr, "hdlm: %s\n", e.msg);
            return 1;
        }
        char sweeparg[4200];
        snprintf(sweeparg, sizeof sweeparg, "sweep=%s", status);
        const char *args[] = {"mode=status", sweeparg, cwdarg, NULL};
        return run_lua(db, args);
    }
    if (!file) {
        fprintf(stderr, "hdlm: sweep: missing the sweep file\n%s\n", sweep_usage);
        return 2;
    }
    if (worker) return work(file, db, worker, cwdarg);
    char *end;
    long workers = strtol(workers_s, &end, 10);
    if (*end || end == workers_s || workers < 1 || workers > SWEEP_MAX_WORKERS) {
        fprintf(stderr, "hdlm: sweep: --workers expects an integer in 1..%d, got '%s'\n",
                SWEEP_MAX_WORKERS, workers_s);
        return 2;
    }
    return coordinate(file, db, (int)workers, retry_failed, cwdarg);
}
