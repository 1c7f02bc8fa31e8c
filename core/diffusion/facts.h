/* The facts a plugin instance reports through its ops' `info` op (hdlm/plugin.h): flags such as
 * continuous time or a conditioned process, the extra symbols and the input mix. The core asks
 * the instance instead of guessing from option names. */
#ifndef HDLM_FACTS_H
#define HDLM_FACTS_H

#include "hdlm/plugin.h"

#include <string.h>

/* ops: any hdlm_*_ops (they start with an hdlm_ops_head); self: what the ops take. Defaults of
 * fields the plugin leaves alone: 0, and mask_id -1. */
static inline hdlm_info facts_of(const void *ops, void *self) {
    hdlm_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    in.mask_id = -1;
    ((const hdlm_ops_head *)ops)->info(self, &in);
    return in;
}

#endif
