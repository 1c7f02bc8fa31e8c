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

#endif
