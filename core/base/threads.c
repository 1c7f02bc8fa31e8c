/* See threads.h: the wait policy of OpenMP worker threads, set by re-executing with
 * GOMP_SPINCOUNT when the user has not chosen one. */
#include "threads.h"

#include <stdlib.h>
#include <unistd.h>

void threads_set_wait_policy(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return; /* the user's choice */
    if (setenv("GOMP_SPINCOUNT", THREADS_DEFAULT_SPINCOUNT, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with libgomp's default; the variable is left set for any
     * child process this run starts */
}
