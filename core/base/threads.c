/* See threads.h: the wait policy of OpenMP worker threads, set by re-executing with
 * GOMP_SPINCOUNT when the user has not chosen one. */
#include "threads.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void threads_set_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return; /* the user's choice */
    if (setenv("GOMP_SPINCOUNT", THREADS_DEFAULT_SPINCOUNT, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with libgomp's default; the variable is left set for any
     * child process this run starts */
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double threads_wait_seconds(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    double sum = 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/schedstat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue; /* the thread ended meanwhile */
        unsigned long long run_ns, wait_ns;
        if (fscanf(f, "%llu %llu", &run_ns, &wait_ns) == 2) {
            sum += 1e-9 * (double)wait_ns;
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n > 0 ? sum : -1;
}

int threads_adapt_decide(int max, int cur, double wait_per_s, int probe) {
    if (cur > 1 && wait_per_s > THREADS_ADAPT_WAIT) return cur / 2;
    if (cur < max && probe && wait_per_s <= THREADS_ADAPT_WAIT)
        return cur * 2 < max ? cur * 2 : max;
    return cur;
}

void threads_adapt_init(threads_adapt *a, int max) {
    memset(a, 0, sizeof *a);
    a->max = a->cur = max < 1 ? 1 : max;
    const char *dyn = getenv("OMP_DYNAMIC");
    int off = dyn && (!strcmp(dyn, "false") || !strcmp(dyn, "FALSE") || !strcmp(dyn, "0"));
    a->t_last = now_seconds();
    a->wait_last = threads_wait_seconds();
    a->enabled = a->max > 1 && !off && a->wait_last >= 0;
}

int threads_adapt_next(threads_adapt *a) {
    if (!a->enabled) return a->cur;
    double t = now_seconds();
    if (t - a->t_last < THREADS_ADAPT_WINDOW) return a->cur;
    double w = threads_wait_seconds();
    if (w < 0) return a->cur;
    int next = threads_adapt_decide(a->max, a->cur, (w - a->wait_last) / (t - a->t_last),
                                    t >= a->probe_at);
    if (next != a->cur) a->probe_at = t + THREADS_ADAPT_PROBE;
    a->cur = next;
    a->t_last = t;
    a->wait_last = w;
    return a->cur;
}
