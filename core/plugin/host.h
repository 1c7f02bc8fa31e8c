/* The plugin host: finds shared objects (the shipped plugin folder, then HDLM_PLUGIN_PATH),
 * loads them with dlopen, checks ABI version, descriptor size, kind and unique name, and keeps a
 * registry. The only module that calls dlopen. Also validates option sets against a plugin's
 * declared options and makes instances. */
#ifndef HDLM_PLUGIN_HOST_H
#define HDLM_PLUGIN_HOST_H

#include "base/error.h"
#include "hdlm/plugin.h"

#include <stddef.h>

typedef struct plugin_registry plugin_registry;

typedef struct plugin_entry {
    const hdlm_plugin *desc;
    const char *file; /* absolute path of the shared object */
    const char *hash; /* sha256 of the file, hex */
} plugin_entry;

/* ---- options: a validated key -> value set (what a plugin reads through the host table) ---- */
typedef struct plugin_opts plugin_opts;

plugin_opts *plugin_opts_new(void);
void plugin_opts_free(plugin_opts *o);
/* Setters copy key and value; setting a key again replaces it. */
int plugin_opts_set_number(plugin_opts *o, const char *key, double v);
int plugin_opts_set_string(plugin_opts *o, const char *key, const char *v);
int plugin_opts_set_bool(plugin_opts *o, const char *key, int v);
/* "key=value" text (CLI): numbers parse as numbers, true/false as bools, the rest as strings. */
int plugin_opts_set_text(plugin_opts *o, const char *key, const char *text);
size_t plugin_opts_count(const plugin_opts *o);
const char *plugin_opts_key(const plugin_opts *o, size_t i);
/* Checks every key against decl (unknown key -> error naming it, the closest declared name and
 * the list of allowed ones), checks types (integer options must be integral and finite, numbers
 * finite, strings within `allow`), fills defaults; missing required -> error. `what` names the
 * plugin in messages. */
int plugin_opts_validate(plugin_opts *o, const hdlm_option *decl, const char *what, error *e);
/* The resolved options as a JSON object (for run provenance). Caller frees. */
char *plugin_opts_json(const plugin_opts *o);
/* Host-table readers (opts = const plugin_opts *). */
int plugin_opts_number(const void *opts, const char *key, double *out);
int plugin_opts_string(const void *opts, const char *key, const char **out);

/* ---- registry ---- */
int plugin_registry_open(plugin_registry **out, error *e);
void plugin_registry_close(plugin_registry *r); /* dlcloses in reverse load order; accepts NULL */
/* Loads every descriptor of one shared object. Refusals (wrong ABI, missing entry symbol, short
 * struct, unknown kind, duplicate name, no descriptors) leave the registry unchanged and return
 * HDLM_EPLUGIN with one message naming the file and both sides of the mismatch. */
int plugin_registry_load_file(plugin_registry *r, const char *path, error *e);
/* Loads every *.so in dir (sorted by name). Refusals do not stop the scan; each message is
 * appended to `refusals` (one per line) when it is not NULL. Returns the number loaded, or a
 * negative status when dir cannot be read. */
int plugin_registry_load_dir(plugin_registry *r, const char *dir, char *refusals, size_t cap,
                             error *e);
/* The shipped plugins (base/paths.h: $HDLM_PLUGIN_DIR, else the installed folder next to the
 * binary, else the build tree's) then each folder of HDLM_PLUGIN_PATH (colon-separated). */
int plugin_registry_load_default(plugin_registry *r, char *refusals, size_t cap, error *e);
size_t plugin_registry_count(const plugin_registry *r);
const plugin_entry *plugin_registry_at(const plugin_registry *r, size_t i);
/* NULL when absent; then plugin_registry_names(r, kind, buf, cap) lists the known names. */
const plugin_entry *plugin_registry_find(const plugin_registry *r, uint32_t kind, const char *name);
void plugin_registry_names(const plugin_registry *r, uint32_t kind, char *buf, size_t cap);
const char *plugin_kind_name(uint32_t kind); /* "noise", "schedule", "sampler" */
int plugin_kind_from_name(const char *name); /* 0 when unknown */

/* ---- instances ---- */
/* What the host passes to create besides the options (hdlm_create_args). */
typedef struct plugin_create_args {
    int32_t vocab;   /* noise: V real tokens (required, 2..2^24); samplers: V or 0 */
    int32_t n_extra; /* samplers: the noise process's extra symbols, -1 unknown */
    int32_t mask_id; /* samplers: its mask id, -1 none/unknown */
} plugin_create_args;

/* An instance as the core sees it. `self` and `ops` are the host's guarded pair: every op runs
 * the plugin's op under the crash guard (plugin/guard.h); a crash in an op that returns a status
 * comes back as HDLM_ECRASH with "plugin X crashed in op Y (signal)"; in an op without a status
 * (n_levels, n_steps, growth, destroy) the message is printed and the process exits with 70. */
typedef struct plugin_instance {
    const plugin_entry *entry;
    void *self;        /* pass to the ops below; not the plugin's own self */
    plugin_opts *opts; /* owned by the instance; noise instances also hold "vocab" */
    const void *ops;   /* guarded hdlm_noise_ops / hdlm_schedule_ops / hdlm_sampler_ops */
    hdlm_info info;    /* the facts the plugin reported at creation (checked) */
    int32_t vocab;     /* V as passed to create (noise: always; samplers: 0 when not known) */
    const char *label; /* "absorbing#2": the instance in messages and log lines */
    void *plugin_self; /* the plugin's own self (for extension interfaces) */
} plugin_instance;

/* Validates opts (taking ownership, also on failure), calls create with args (NULL: none) and
 * reads and checks the instance's info. Unknown name -> error listing the known names of that
 * kind. */
int plugin_instance_create(plugin_registry *r, uint32_t kind, const char *name, plugin_opts *opts,
                           const plugin_create_args *args, plugin_instance **out, error *e);
void plugin_instance_destroy(plugin_instance *p); /* accepts NULL */
/* The plugin's interface for id (its ops' extension hook), NULL when it has none. */
const void *plugin_instance_extension(const plugin_instance *p, const char *id);
/* fn(ctx, message) is called once before the process exits after a crash in an op without a
 * status (the message says which plugin and op), so that a run in progress is recorded as failed
 * with it rather than left to look interrupted. NULL clears it. One hook per process. */
void plugin_set_fatal_hook(void (*fn)(void *ctx, const char *msg), void *ctx);
/* The op an instance crashed in, NULL while it has not. */
const char *plugin_instance_crashed(const plugin_instance *p);
const hdlm_host *plugin_host_table(void);

/* Prints every plugin: kind, name, version, file, summary, options with defaults and help. */
void plugin_registry_print(const plugin_registry *r, FILE *out);

#endif
