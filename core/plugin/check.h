/* Conformance checks of plugins (`hdlm plugins check FILE.so|NAME`): every op of an instance made
 * with the plugin's default options is called through the host (so under the crash guard) and its
 * results are compared with what hdlm/plugin.h and docs/writing-plugins.md promise:
 * - schedules: levels in 0..W, step 0 all worthless, levels never rise, the settled prefix grows
 *   as declared and only over denoised positions, every position reaches level 0 (or, active for
 *   one step only, is taken to clean by it), n_steps stable and long enough — over several lengths;
 * - noise: marginals are distributions and agree with corrupt (a statistical test), the loss
 *   gradient equals central differences, reverse rows are distributions, limit draws from the
 *   marginal at t = 1 (or the plugin reports a prior term);
 * - samplers: tokens stay in range and fixed positions are never touched.
 * One line per check: "ok   <kind> <name> <check>: <numbers>" or "FAIL ...: <reason>". */
#ifndef HDLM_PLUGIN_CHECK_H
#define HDLM_PLUGIN_CHECK_H

#include "base/error.h"
#include "plugin/host.h"

#include <stdio.h>

/* Checks one loaded plugin. Returns the number of failed checks (0: conforms), or a negative
 * status when the checks could not run (out of memory), with e set. */
int plugin_check(plugin_registry *r, const plugin_entry *en, FILE *out, error *e);

#endif
