/* Install-layout lookups (paths.h). The relative install paths and the build tree's own folders
 * are compile definitions given to this file only (CMakeLists.txt), so no other module can start
 * reading build or source paths at run time. */
#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef HDLM_REL_PLUGINDIR /* bin -> plugins; CMake computes it from the install dirs */
#define HDLM_REL_PLUGINDIR "../lib/hdlm/plugins"
#endif
#ifndef HDLM_REL_DATADIR
#define HDLM_REL_DATADIR "../share/hdlm"
#endif

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int paths_exe_dir(char *out, size_t cap) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        if (cap) out[0] = '\0';
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    if ((size_t)snprintf(out, cap, "%s", exe) >= cap) {
        if (cap) out[0] = '\0';
        return -1;
    }
    return 0;
}

/* Whether the running binary lives inside the build tree it was built in (then that tree's
 * folders are its plugin and data folders; an installed copy never looks there). */
static int in_build_tree(const char *exe_dir) {
#ifdef HDLM_BUILD_DIR
    char build[PATH_MAX];
    if (!realpath(HDLM_BUILD_DIR, build)) return 0;
    size_t n = strlen(build);
    return !strncmp(exe_dir, build, n) && (exe_dir[n] == '\0' || exe_dir[n] == '/');
#else
    (void)exe_dir;
    return 0;
#endif
}

/* exe_dir/rel, resolved, when it is a folder */
static int installed_dir(const char *exe_dir, const char *rel, char *out, size_t cap) {
    char p[PATH_MAX + 64], real[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", exe_dir, rel);
    if (!is_dir(p) || !realpath(p, real)) return -1;
    return (size_t)snprintf(out, cap, "%s", real) < cap ? 0 : -1;
}

int paths_plugin_dir(char *out, size_t cap) {
    const char *env = getenv("HDLM_PLUGIN_DIR");
    if (env && *env) return (size_t)snprintf(out, cap, "%s", env) < cap ? 0 : -1;
    char exe_dir[PATH_MAX];
    if (cap) out[0] = '\0';
    if (paths_exe_dir(exe_dir, sizeof exe_dir) != 0) return -1;
    if (installed_dir(exe_dir, HDLM_REL_PLUGINDIR, out, cap) == 0) return 0;
#ifdef HDLM_BUILD_PLUGINDIR
    if (in_build_tree(exe_dir))
        return (size_t)snprintf(out, cap, "%s", HDLM_BUILD_PLUGINDIR) < cap ? 0 : -1;
#endif
    if (cap) out[0] = '\0';
    return -1;
}

int paths_data_dir(char *out, size_t cap, char *expected, size_t expected_cap) {
    char exe_dir[PATH_MAX];
    if (cap) out[0] = '\0';
    if (expected && expected_cap) expected[0] = '\0';
    if (paths_exe_dir(exe_dir, sizeof exe_dir) != 0) return -1;
    if (expected && expected_cap) {
        /* the installed location, spelled without .. when its parent exists */
        char p[PATH_MAX + 64], parent[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s/..", exe_dir, HDLM_REL_DATADIR);
        const char *leaf = strrchr(HDLM_REL_DATADIR, '/');
        if (realpath(p, parent))
            snprintf(expected, expected_cap, "%s/%s", parent, leaf ? leaf + 1 : HDLM_REL_DATADIR);
        else
            snprintf(expected, expected_cap, "%s/%s", exe_dir, HDLM_REL_DATADIR);
    }
    if (installed_dir(exe_dir, HDLM_REL_DATADIR, out, cap) == 0) return 0;
#ifdef HDLM_BUILD_DATADIR
    if (in_build_tree(exe_dir) && is_dir(HDLM_BUILD_DATADIR))
        return (size_t)snprintf(out, cap, "%s", HDLM_BUILD_DATADIR) < cap ? 0 : -1;
#endif
    if (cap) out[0] = '\0';
    return -1;
}
