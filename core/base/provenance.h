/* Run provenance: where and with what a run was made (git revision + dirty flag of the source the
 * binary was built from, host name, CPU model). Recorded with every run so a number in the store
 * can be traced back. */
#ifndef HDLM_PROVENANCE_H
#define HDLM_PROVENANCE_H

typedef struct provenance {
    char git_rev[64]; /* "unknown" when built outside a git checkout */
    int git_dirty;    /* 1 when built from uncommitted changes, -1 unknown */
    char host[256];
    char cpu[256];
} provenance;

/* Fills p; never fails (unknown fields say "unknown"). */
void provenance_collect(provenance *p);

#endif
