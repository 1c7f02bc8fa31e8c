/* Provenance: the git revision the binary was built from (recorded by the build, so an installed
 * hdlm needs no source tree) and the CPU model from /proc/cpuinfo. Failures degrade to "unknown";
 * provenance never stops a run. */
#include "provenance.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* scripts/buildinfo.cmake, generated at every build */
extern const char hdlm_build_git_rev[];
extern const int hdlm_build_git_dirty;

void provenance_collect(provenance *p) {
    memset(p, 0, sizeof *p);
    snprintf(p->git_rev, sizeof p->git_rev, "%.63s", hdlm_build_git_rev);
    p->git_dirty = hdlm_build_git_dirty;
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
