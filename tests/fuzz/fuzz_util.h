/* Helpers shared by the fuzz targets: the parsers under test read files, so each input is written
 * to a fresh temporary file (in /dev/shm when it exists: tmpfs, so the fsyncs of the writers cost
 * nothing) that the target removes before returning, leaving no state between inputs. */
#ifndef HDLM_FUZZ_UTIL_H
#define HDLM_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where the temporary files go: tmpfs when there is one. */
static inline const char *fuzz_tmp_root(void) {
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* Writes n bytes to a new temporary file; path (cap >= 64) receives its name. 0 on success. */
static inline int fuzz_write_temp(const uint8_t *data, size_t n, char *path, size_t cap) {
    snprintf(path, cap, "%s/hdlm_fuzz_XXXXXX", fuzz_tmp_root());
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, data + done, n - done);
        if (w <= 0) {
            close(fd);
            unlink(path);
            return -1;
        }
        done += (size_t)w;
    }
    close(fd);
    return 0;
}

/* An invariant of the code under test was broken: crash loudly so libFuzzer (and the replay
 * driver) report the input. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
