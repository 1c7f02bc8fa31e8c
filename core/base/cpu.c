/* Run-time kernel variant selection (cpu.h): CPU feature checks, HDLM_KERNELS, forcing. */
#include "base/cpu.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const variant_names[CPU_N_VARIANTS] = {
#if HDLM_DISPATCH || !defined(HDLM_NATIVE)
    [CPU_GENERIC] = "generic",
#else
    [CPU_GENERIC] = "native",
#endif
    [CPU_AVX2] = "avx2",
    [CPU_AVX512] = "avx512",
};

static atomic_int active = -1; /* -1: not chosen yet */

const char *cpu_variant_name(cpu_variant v) {
    return v >= 0 && v < CPU_N_VARIANTS ? variant_names[v] : "?";
}

int cpu_variant_supported(cpu_variant v) {
    if (v == CPU_GENERIC) return 1;
#if HDLM_DISPATCH
    __builtin_cpu_init();
    switch (v) {
    case CPU_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi2");
    case CPU_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && cpu_variant_supported(CPU_AVX2);
    default:
        return 0;
    }
#else
    return 0;
#endif
}

static cpu_variant best(void) {
    for (int v = CPU_N_VARIANTS - 1; v > 0; v--)
        if (cpu_variant_supported((cpu_variant)v)) return (cpu_variant)v;
    return CPU_GENERIC;
}

static void supported_list(char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (int v = 0; v < CPU_N_VARIANTS; v++)
        if (cpu_variant_supported((cpu_variant)v) && n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "",
                                  cpu_variant_name((cpu_variant)v));
}

int cpu_variant_force(cpu_variant v, error *e) {
    if (v < 0 || v >= CPU_N_VARIANTS || !cpu_variant_supported(v)) {
        char list[128];
        supported_list(list, sizeof list);
        return error_set(e, HDLM_EINVAL,
                         "kernel variant '%s' cannot run here (this build and CPU run: %s)",
                         cpu_variant_name(v), list);
    }
    atomic_store(&active, (int)v);
    return HDLM_OK;
}

int cpu_variant_from_env(error *e) {
    const char *s = getenv("HDLM_KERNELS");
    if (!s || !*s) {
        atomic_store(&active, (int)best());
        return HDLM_OK;
    }
    for (int v = 0; v < CPU_N_VARIANTS; v++) {
        if (strcmp(s, cpu_variant_name((cpu_variant)v))) continue;
        error fe = {0};
        if (cpu_variant_force((cpu_variant)v, &fe) != HDLM_OK)
            return error_set(e, HDLM_EINVAL, "HDLM_KERNELS=%s: %s", s, fe.msg);
        return HDLM_OK;
    }
    char list[128];
    supported_list(list, sizeof list);
    return error_set(e, HDLM_EINVAL, "HDLM_KERNELS=%s: unknown kernel variant, expected one of: %s",
                     s, list);
}

cpu_variant cpu_variant_active(void) {
    int v = atomic_load_explicit(&active, memory_order_relaxed);
    if (v >= 0) return (cpu_variant)v;
    /* first use without main's check (tests, fuzz targets): a bad HDLM_KERNELS is reported here
     * and the best variant used */
    error e = {0};
    if (cpu_variant_from_env(&e) != HDLM_OK) {
        fprintf(stderr, "hdlm: warning: %s; using %s\n", e.msg, cpu_variant_name(best()));
        atomic_store(&active, (int)best());
    }
    return (cpu_variant)atomic_load(&active);
}
