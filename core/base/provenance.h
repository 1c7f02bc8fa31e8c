/* Run provenance: where and with what a run was made (git revision + dirty flag of the project,
 * host name, CPU model). Recorded with every run so a number in the store can be traced back. */
#ifndef HDLM_PROVENANCE_H
#define HDLM_PROVENANCE_H

typedef struct provenance {
    char git_rev[64]; /* "unknown" outside a git checkout */
    int git_dirty;    /* 1 when the work tree has uncommitted changes, -1 unknown */
    char host[256];
    char cpu[256];
} provenance;

/* Fills p; never fails (unknown fields say "unknown"). src_dir is the project's source tree. */
void provenance_collect(provenance *p, const char *src_dir);

#endif
