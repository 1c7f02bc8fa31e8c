/* Cooperating processes for data-parallel training: `mpirun -np N hdlm run x.lua` starts N copies
 * of the same script, each a "rank"; the trainer splits every micro-batch across them and sums the
 * gradients with one all-reduce per step. This module is the only one that includes mpi.h; its
 * interface speaks plain buffers. Built without MPI (or started without a launcher) every call is
 * the trivial single-process version: rank 0 of 1, reductions and broadcasts leave the buffer as
 * it is. Collective calls (allreduce, broadcast, barrier) must be made by every rank in the same
 * order; an MPI failure is returned as an error, never an exit. */
#ifndef HDLM_DIST_H
#define HDLM_DIST_H

#include "base/error.h"

#include <stddef.h>

/* Joins the launcher's group when the environment says this process was started by mpirun /
 * mpiexec (Open MPI, MPICH/Hydra, PMIx variables) or HDLM_MPI=1 forces it (a singleton); a plain
 * `hdlm` never touches MPI, so it starts as fast as before, and so does an `hdlm` that a rank
 * starts itself (marked in the environment: it runs alone). Refuses a launch of several
 * processes by a build without MPI (they would all think they were alone and write the same
 * files). */
int dist_init(int *argc, char ***argv, error *e);
/* Ends the group; returns status. A failing rank (status != 0) of a group of several aborts the
 * whole job instead: the other ranks may be waiting in a collective that would never complete. */
int dist_finalize(int status);
int dist_rank(void); /* 0 .. dist_size() - 1; 0 without MPI */
int dist_size(void); /* 1 without MPI */
/* "Open MPI v4.1.4, ..." when built with MPI, "no MPI" otherwise (for --version and tests). */
const char *dist_info(void);

/* In-place sums over all ranks (every rank receives the same result). */
int dist_allreduce_sum_float(float *buf, size_t n, error *e);
int dist_allreduce_sum_double(double *buf, size_t n, error *e);
/* Copies root's bytes to every rank. */
int dist_broadcast(void *buf, size_t bytes, int root, error *e);
int dist_barrier(error *e);

#endif
