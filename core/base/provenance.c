/* Provenance: asks git about the source tree (rev-parse, status --porcelain) and reads the CPU
 * model from /proc/cpuinfo. Failures degrade to "unknown"; provenance never stops a run. */
#include "provenance.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int run_capture(const char *cmd, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int rc = pclose(f);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return rc;
}

static int shell_safe(const char *s) {
    for (; *s; s++)
        if (*s == '\'') return 0;
    return 1;
}

void provenance_collect(provenance *p, const char *src_dir) {
    memset(p, 0, sizeof *p);
    snprintf(p->git_rev, sizeof p->git_rev, "unknown");
    p->git_dirty = -1;
    if (src_dir && shell_safe(src_dir)) {
        char cmd[4096], buf[4096];
        snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", src_dir);
        if (run_capture(cmd, buf, sizeof buf) == 0 && buf[0]) {
            snprintf(p->git_rev, sizeof p->git_rev, "%.63s", buf);
            snprintf(cmd, sizeof cmd,
                     "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null | head -c 1",
                     src_dir);
            if (run_capture(cmd, buf, sizeof buf) == 0) p->git_dirty = buf[0] ? 1 : 0;
        }
    }
    if (gethostname(p->host, sizeof p->host - 1) != 0) snprintf(p->host, sizeof p->host, "unknown");
    snprintf(p->cpu, sizeof p->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    c++;
                    while (*c == ' ')
                        c++;
                    c[strcspn(c, "\n")] = '\0';
                    snprintf(p->cpu, sizeof p->cpu, "%s", c);
                }
                break;
            }
        }
        fclose(f);
    }
}
