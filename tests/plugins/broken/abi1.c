/* Broken fixture: a plugin built against ABI 1. hdlm/plugin.h of ABI 2 cannot build one, so the
 * ABI 1 descriptor layout is written out here (the fields up to `ops`, create taking the host,
 * the options and self). The host reads abi_version only and must refuse the file with one
 * message naming it and how to rebuild. */
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define ABI1_EXPORT __attribute__((visibility("default")))
#else
#define ABI1_EXPORT
#endif

typedef struct abi1_sampler_ops {
    uint32_t struct_size;
    uint32_t needs;
    int (*step)(void *self, void *ctx, char *err, size_t err_cap);
} abi1_sampler_ops;

typedef struct abi1_plugin {
    uint32_t abi_version, struct_size, kind;
    const char *name, *version, *summary;
    const void *options;
    int (*create)(const void *host, const void *opts, void **self, char *err, size_t err_cap);
    void (*destroy)(void *self);
    const void *ops;
} abi1_plugin;

static int a1_create(const void *host, const void *opts, void **self, char *err, size_t cap) {
    (void)host, (void)opts, (void)err, (void)cap;
    *self = NULL;
    return 0;
}

static void a1_destroy(void *self) {
    (void)self;
}

static int a1_step(void *self, void *ctx, char *err, size_t cap) {
    (void)self, (void)ctx, (void)err, (void)cap;
    return 0;
}

static const abi1_sampler_ops a1_ops = {sizeof(abi1_sampler_ops), 0, a1_step};

static const abi1_plugin a1_desc = {
    .abi_version = 1,
    .struct_size = sizeof(abi1_plugin),
    .kind = 3,
    .name = "broken_abi1",
    .version = "1.0.0",
    .summary = "broken fixture: built against plugin ABI 1",
    .create = a1_create,
    .destroy = a1_destroy,
    .ops = &a1_ops,
};

ABI1_EXPORT const abi1_plugin *hdlm_plugin_entry(uint32_t index);
ABI1_EXPORT const abi1_plugin *hdlm_plugin_entry(uint32_t index) {
    return index == 0 ? &a1_desc : NULL;
}
