/* Fixture: a shared object that exports a symbol, but not hdlm_plugin_entry (as if someone put
 * an unrelated library in the plugin folder). The host must refuse it. */
#include "hdlm/plugin.h"

HDLM_EXPORT int fixture_not_a_plugin(int x);
HDLM_EXPORT int fixture_not_a_plugin(int x) {
    return x + 1;
}
