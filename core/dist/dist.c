/* Cooperating processes (see dist.h): MPI when built with it (HDLM_HAVE_MPI, set by CMake when
 * FindMPI finds a C MPI), single-process stand-ins otherwise. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HDLM_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
#ifdef HDLM_HAVE_MPI
static int g_mpi = 0; /* this process called MPI_Init */
#endif

/* The process was started by an MPI launcher: each launcher leaves its own variables. */
static int launched_by_mpirun(int *size) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    *size = 0;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            *size = atoi(v);
            return 1;
        }
    }
    return getenv("PMIX_RANK") != NULL || getenv("PMI_RANK") != NULL;
}

#ifdef HDLM_HAVE_MPI
static int mpi_fail(int rc, const char *what, error *e) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return error_set(e, HDLM_EIO, "MPI rank %d of %d: %s failed: %s", g_rank, g_size, what, msg);
}

/* MPI counts are ints: large buffers go in slices. */
enum { SLICE = 1 << 28 };
#endif

/* Set in the environment of a rank once it joined: a process that a rank starts (a script's
 * os.execute("hdlm report ...")) inherits the launcher's variables too, and must not try to join
 * a job it is no part of (Open MPI's MPI_Init fails and the job hangs): it runs alone. */
#define CHILD_MARK "HDLM_MPI_PARENT_RANK"

int dist_init(int *argc, char ***argv, error *e) {
    int size = 0;
    int launched = launched_by_mpirun(&size);
    const char *force = getenv("HDLM_MPI");
    if (force && !strcmp(force, "1")) launched = 1;
    if (getenv(CHILD_MARK)) launched = 0;
#ifdef HDLM_HAVE_MPI
    if (!launched || g_mpi) return HDLM_OK;
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init", e);
    g_mpi = 1;
    /* errors come back as status codes (and become messages), not a fatal handler's exit */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    char mark[16];
    snprintf(mark, sizeof mark, "%d", g_rank);
    setenv(CHILD_MARK, mark, 1);
    return HDLM_OK;
#else
    (void)argc, (void)argv;
    if (launched && size > 1)
        return error_set(e, HDLM_ESTATE,
                         "started as one of %d MPI processes, but this hdlm was built without MPI "
                         "(every process would train alone and write the same files); install "
                         "libopenmpi-dev and re-run cmake, or run without mpirun",
                         size);
    return HDLM_OK;
#endif
}

int dist_finalize(int status) {
#ifdef HDLM_HAVE_MPI
    if (!g_mpi) return status;
    g_mpi = 0;
    fflush(stdout);
    fflush(stderr);
    if (status != 0 && g_size > 1)
        MPI_Abort(MPI_COMM_WORLD, status > 0 && status < 256 ? status : 1);
    MPI_Finalize();
#endif
    return status;
}

int dist_rank(void) {
    return g_rank;
}

int dist_size(void) {
    return g_size;
}

const char *dist_info(void) {
#ifdef HDLM_HAVE_MPI
    static char info[MPI_MAX_LIBRARY_VERSION_STRING];
    if (!info[0]) {
        int len = 0;
        MPI_Get_library_version(info, &len);
        info[strcspn(info, ",\n")] = '\0'; /* "Open MPI v4.1.4" without package details */
    }
    return info;
#else
    return "no MPI";
#endif
}

int dist_allreduce_sum_float(float *buf, size_t n, error *e) {
#ifdef HDLM_HAVE_MPI
    if (g_size < 2) return HDLM_OK;
    for (size_t off = 0; off < n; off += SLICE) {
        int cnt = (int)(n - off < SLICE ? n - off : SLICE);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "all-reduce of the gradients", e);
    }
#else
    (void)buf, (void)n, (void)e;
#endif
    return HDLM_OK;
}

int dist_allreduce_sum_double(double *buf, size_t n, error *e) {
#ifdef HDLM_HAVE_MPI
    if (g_size < 2) return HDLM_OK;
    for (size_t off = 0; off < n; off += SLICE) {
        int cnt = (int)(n - off < SLICE ? n - off : SLICE);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "all-reduce", e);
    }
#else
    (void)buf, (void)n, (void)e;
#endif
    return HDLM_OK;
}

int dist_broadcast(void *buf, size_t bytes, int root, error *e) {
#ifdef HDLM_HAVE_MPI
    if (g_size < 2) return HDLM_OK;
    char *p = buf;
    for (size_t off = 0; off < bytes; off += SLICE) {
        int cnt = (int)(bytes - off < SLICE ? bytes - off : SLICE);
        /* receivers may wait long (rank 0 writing a checkpoint, sampling for everyone): poll
         * with short sleeps instead of MPI's busy wait, which would take a core from rank 0
         * when the ranks share a machine; broadcasts are rare, a millisecond does not matter */
        MPI_Request req;
        int rc = MPI_Ibcast(p + off, cnt, MPI_BYTE, root, MPI_COMM_WORLD, &req);
        int done = 0;
        long nap = 20000; /* ns, doubling up to 1 ms */
        while (rc == MPI_SUCCESS && !(rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE)) && !done) {
            struct timespec ts = {0, nap};
            nanosleep(&ts, NULL);
            nap = nap < 1000000 ? 2 * nap : 1000000;
        }
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "broadcast", e);
    }
#else
    (void)buf, (void)bytes, (void)root, (void)e;
#endif
    return HDLM_OK;
}

int dist_barrier(error *e) {
#ifdef HDLM_HAVE_MPI
    if (g_size < 2) return HDLM_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "barrier", e);
#else
    (void)e;
#endif
    return HDLM_OK;
}
