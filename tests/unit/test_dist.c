/* Tests of the single-process face of core/dist (what every plain `hdlm` and every unit test
 * sees, with or without MPI in the build): rank 0 of 1, collectives that leave buffers alone,
 * finalize passing the status through, and a build without MPI refusing a multi-process launch.
 * Also the store's follower mode that ranks > 0 use (rank 0 writes): every write is accepted and
 * dropped, queries read rank 0's file, a follower without a copy of the file says so. Real
 * multi-process runs: tests/integration/test_mpi.sh. */
#include "check.h"
#include "dist/dist.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count_cb(void *ud, int ncol, const char *const *names, const store_value *vals) {
    (void)names;
    if (ncol == 1 && vals[0].type == STORE_INT) *(int64_t *)ud = vals[0].i;
    return 0;
}

static int64_t count(store *s, const char *sql) {
    int64_t n = -1;
    error e = {0};
    if (store_query(s, sql, count_cb, &n, &e) != HDLM_OK) fprintf(stderr, "%s\n", e.msg);
    return n;
}

static void test_single_process(void) {
    error e = {0};
    /* ctest starts tests without a launcher: joining is a no-op */
    CHECK(!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_RANK"));
    int argc = 1;
    char arg0[] = "test_dist", *args[] = {arg0, NULL}, **argv = args;
    CHECK_EQ(dist_init(&argc, &argv, &e), HDLM_OK);
    CHECK_EQ(dist_rank(), 0);
    CHECK_EQ(dist_size(), 1);
    CHECK(strlen(dist_info()) > 0);
    float f[3] = {1.5f, -2.0f, 3.25f};
    double d[2] = {0.1, 1e300};
    char b[4] = "abc";
    CHECK_EQ(dist_allreduce_sum_float(f, 3, &e), HDLM_OK);
    CHECK_EQ(dist_allreduce_sum_double(d, 2, &e), HDLM_OK);
    CHECK_EQ(dist_broadcast(b, sizeof b, 0, &e), HDLM_OK);
    CHECK_EQ(dist_barrier(&e), HDLM_OK);
    CHECK(f[0] == 1.5f && f[1] == -2.0f && f[2] == 3.25f);
    CHECK(d[0] == 0.1 && d[1] == 1e300);
    CHECK_STR(b, "abc");
    CHECK_EQ(dist_finalize(0), 0);
    CHECK_EQ(dist_finalize(3), 3); /* alone: the status passes through, nothing aborts */

    /* a build without MPI must not let N launched copies each train alone */
    if (!strcmp(dist_info(), "no MPI")) {
        setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
        CHECK_EQ(dist_init(&argc, &argv, &e), HDLM_ESTATE);
        CHECK_CONTAINS(e.msg, "one of 4 MPI processes");
        CHECK_CONTAINS(e.msg, "built without MPI");
        setenv("OMPI_COMM_WORLD_SIZE", "1", 1); /* mpirun -np 1: fine */
        CHECK_EQ(dist_init(&argc, &argv, &e), HDLM_OK);
        unsetenv("OMPI_COMM_WORLD_SIZE");
        CHECK_EQ(dist_size(), 1);
    }
}

static void test_follower_store(const char *dir) {
    char path[512], missing[512];
    snprintf(path, sizeof path, "%s/runs.db", dir);
    snprintf(missing, sizeof missing, "%s/elsewhere.db", dir);
    error e = {0};
    store *lead = NULL, *fol = NULL;
    CHECK_EQ(store_open(path, 0, &lead, &e), HDLM_OK);
    if (!lead) return;
    store_run_info info = {.name = "r", .kind = "train", .world_size = 2};
    int64_t run = 0;
    CHECK_EQ(store_run_begin(lead, &info, &run, &e), HDLM_OK);
    CHECK_EQ(run, 1);
    CHECK_EQ(store_metric(lead, run, 1, "loss", 2.5, &e), HDLM_OK);
    CHECK_EQ(store_flush(lead, &e), HDLM_OK);

    /* the follower accepts every write and drops it */
    CHECK_EQ(store_open(path, STORE_FOLLOWER, &fol, &e), HDLM_OK);
    if (!fol) return;
    int64_t id = -1, ck = -1, sid = -1;
    CHECK_EQ(store_run_begin(fol, &info, &id, &e), HDLM_OK);
    CHECK_EQ(id, 0); /* the caller takes rank 0's id */
    CHECK_EQ(store_run_plugin(fol, run, "noise", "x", "1", 1, NULL, NULL, NULL, &e), HDLM_OK);
    CHECK_EQ(store_metric(fol, run, 2, "loss", 9.0, &e), HDLM_OK);
    CHECK_EQ(store_checkpoint(fol, run, 2, "/nowhere", "", 0, &ck, &e), HDLM_OK);
    CHECK_EQ(ck, 0);
    CHECK_EQ(store_evaluation(fol, run, 0, "nll", 1.0, 0.1, NULL, &e), HDLM_OK);
    store_sample_info si = {.run_id = run, .text = "t"};
    CHECK_EQ(store_sample(fol, &si, NULL, 0, &sid, &e), HDLM_OK);
    CHECK_EQ(sid, 0);
    CHECK_EQ(store_reap_runs(fol, &e), HDLM_OK);
    CHECK_EQ(store_run_end(fol, run, "failed", "a follower's opinion", &e), HDLM_OK);
    CHECK_EQ(store_flush(fol, &e), HDLM_OK);
    /* ... and reads what rank 0 wrote */
    CHECK_EQ(count(fol, "SELECT count(*) FROM metrics"), 1);
    CHECK_EQ(count(fol, "SELECT world_size FROM runs WHERE id = 1"), 2);
    CHECK_EQ(store_schema_version(fol), store_binary_schema_version());
    store_close(fol);
    /* nothing of the follower's reached the file */
    CHECK_EQ(count(lead, "SELECT count(*) FROM runs"), 1);
    CHECK_EQ(count(lead, "SELECT count(*) FROM metrics"), 1);
    CHECK_EQ(count(lead, "SELECT count(*) FROM run_plugins"), 0);
    CHECK_EQ(count(lead, "SELECT count(*) FROM checkpoints"), 0);
    CHECK_EQ(count(lead, "SELECT count(*) FROM evaluations"), 0);
    CHECK_EQ(count(lead, "SELECT count(*) FROM samples"), 0);
    CHECK_EQ(count(lead, "SELECT count(*) FROM runs WHERE status = 'running'"), 1);
    store_close(lead);

    /* a follower on a machine without the file: writes still dropped, queries explain */
    CHECK_EQ(store_open(missing, STORE_FOLLOWER, &fol, &e), HDLM_OK);
    if (!fol) return;
    CHECK_EQ(store_metric(fol, 1, 1, "loss", 1.0, &e), HDLM_OK);
    CHECK_EQ(store_run_end(fol, 1, "done", NULL, &e), HDLM_OK);
    CHECK_EQ(store_query(fol, "SELECT 1", NULL, NULL, &e), HDLM_EIO);
    CHECK_CONTAINS(e.msg, "elsewhere.db");
    CHECK_CONTAINS(e.msg, "follower rank");
    store_close(fol);
    CHECK(access(missing, F_OK) != 0); /* and it created nothing */
}

int main(void) {
    char dir[] = "/tmp/hdlm_test_dist_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_single_process();
    test_follower_store(dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_report("test_dist");
}
