/* How idle worker threads wait. libgomp (the OpenMP runtime of hdlm and of Debian's OpenMP
 * OpenBLAS) lets a thread that reaches a barrier spin for GOMP_SPINCOUNT rounds (300,000 by
 * default) before it sleeps. On a quiet machine that saves a wake-up per parallel region; on a
 * machine shared with another CPU-bound process the spinning threads take the core the working
 * thread needs, and training or sampling ran up to 100x slower (README "Threads on a shared
 * machine" has the measurements). libgomp reads its settings once, when it is loaded, before
 * main(); so the only way to change the default is to start again with the variable set. */
#ifndef HDLM_THREADS_H
#define HDLM_THREADS_H

/* The spin count hdlm uses when the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT. */
#define THREADS_DEFAULT_SPINCOUNT "1000"

/* When neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set: sets GOMP_SPINCOUNT to the default and
 * re-executes the program (/proc/self/exe, same argv) so that libgomp starts with it. Returns
 * only when nothing had to be done or the re-exec failed (then the run goes on with libgomp's
 * own default). Call first thing in main, before any thread or MPI exists. */
void threads_set_wait_policy(char **argv);

/* Fewer threads while the machine is crowded, for loops of many small parallel regions (decoding:
 * a few dozen regions per token). When another process takes a core, every barrier waits for a
 * thread that is not running, and decoding ran 3x slower than on one thread alone. The signal is
 * our own threads' run-queue wait (/proc/self/task/N/schedstat, field 2): time they were runnable
 * but not running, which a busy neighbour causes and a quiet machine does not, whatever the host
 * or container. Checked at most every THREADS_ADAPT_WINDOW seconds; above THREADS_ADAPT_WAIT
 * seconds of waiting per second of wall time the count halves, and every THREADS_ADAPT_PROBE
 * seconds it tries twice as many again. Only for work whose results do not depend on the thread
 * count: the sampling loop applies it to the few-row products (nn/layers.h
 * linear_set_gemv_threads), which split output rows, never a sum (tests/unit/test_threads.c).
 * Off when OMP_DYNAMIC is false (the OpenMP variable for "dynamic adjustment of threads") or
 * schedstat is missing. */
#define THREADS_ADAPT_WINDOW 0.05
#define THREADS_ADAPT_WAIT   0.2
#define THREADS_ADAPT_PROBE  1.0

typedef struct threads_adapt {
    int max, cur; /* the configured count; the count to use now */
    int enabled;
    double t_last, wait_last; /* at the last check: wall and summed run-queue wait, seconds */
    double probe_at;          /* when below max: when to try more threads again */
} threads_adapt;

void threads_adapt_init(threads_adapt *a, int max);
/* The thread count to use from now on (reads schedstat at most once per window). */
int threads_adapt_next(threads_adapt *a);
/* The decision alone, for tests: the count after a window of wait_per_s seconds of run-queue
 * wait per wall second at count cur (probe: the probe time has come). */
int threads_adapt_decide(int max, int cur, double wait_per_s, int probe);
/* Sum of the run-queue wait of this process's threads in seconds, -1 when unavailable. */
double threads_wait_seconds(void);

#endif
