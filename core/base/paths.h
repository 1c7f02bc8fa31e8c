/* Where the running hdlm finds its shipped plugins and data: relative to its own executable
 * (/proc/self/exe), so an installed tree can be moved as a whole. An installed binary at P/bin/hdlm
 * uses P/lib/hdlm/plugins and P/share/hdlm (the relative paths come from the install layout, see
 * CMakeLists.txt); a binary still inside its build tree uses that build's plugins/ folder and the
 * checkout's data/ folder. Nothing else is compiled in. */
#ifndef HDLM_PATHS_H
#define HDLM_PATHS_H

#include <stddef.h>

/* The folder holding the running executable (no trailing slash); 0 on success, -1 when
 * /proc/self/exe cannot be read (out is then ""). */
int paths_exe_dir(char *out, size_t cap);

/* The default plugin folder: $HDLM_PLUGIN_DIR when set, else the installed folder next to the
 * binary when it exists, else the build tree's plugins/ for a binary inside its build tree.
 * Returns 0 with out set, -1 when there is none (out is then ""). */
int paths_plugin_dir(char *out, size_t cap);

/* The data folder (GPT-2's files in gpt2/, get-data.sh): the installed P/share/hdlm next to the
 * binary when it exists, else the checkout's data/ for a binary inside its build tree. Returns 0
 * with out set, -1 when there is none; `expected` (may be NULL) receives the installed location
 * either way, for messages that say where files belong. */
int paths_data_dir(char *out, size_t cap, char *expected, size_t expected_cap);

#endif
