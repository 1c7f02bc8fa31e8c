/* CPU kernel variants chosen at run time. The default build targets the baseline of its
 * architecture (any x86-64); the hot kernels (core/nn/layers.c) are compiled again for AVX2 and
 * AVX-512 with per-function target attributes, and each call goes to the best variant this CPU
 * runs (__builtin_cpu_supports), or to the one named by HDLM_KERNELS=generic|avx2|avx512.
 * An HDLM_NATIVE build (-march=native) and builds for other architectures compile each kernel
 * once, for the build's flags, and have the one variant "native" or "generic".
 *
 * Adding a variant (e.g. AVX512_BF16): a CPU_ entry below (before CPU_N_VARIANTS), its name and
 * CPU check in cpu.c (variant_names, cpu_variant_supported), and its line in CPU_KERNEL. Kernels
 * that want hand-written intrinsics for one variant fill their own table the same way (see
 * gemv_rows in layers.c). */
#ifndef HDLM_CPU_H
#define HDLM_CPU_H

#include "base/error.h"

#if defined(__x86_64__) && !defined(HDLM_NATIVE)
#define HDLM_DISPATCH 1
#else
#define HDLM_DISPATCH 0
#endif

typedef enum cpu_variant {
    CPU_GENERIC = 0, /* the build's baseline flags (x86-64: SSE2); every CPU runs it */
    CPU_AVX2,        /* x86-64-v3: AVX2 + FMA */
    CPU_AVX512,      /* x86-64-v4: AVX-512 F/BW/CD/DQ/VL */
    CPU_N_VARIANTS
} cpu_variant;

/* "generic", "avx2", "avx512" ("native" for the one variant of an HDLM_NATIVE build) */
const char *cpu_variant_name(cpu_variant v);
/* Whether this build has the variant and this CPU can run it. */
int cpu_variant_supported(cpu_variant v);
/* The variant kernels use: the one set by cpu_variant_force, else $HDLM_KERNELS, else the best
 * supported. Cheap (one atomic load after the first call). */
cpu_variant cpu_variant_active(void);
/* Makes v the active variant; HDLM_EINVAL (message naming v and this CPU) when unsupported. */
int cpu_variant_force(cpu_variant v, error *e);
/* Reads $HDLM_KERNELS (unset or empty: the best supported) and makes it active; a name that is
 * unknown or that this CPU cannot run is HDLM_EINVAL with a message listing the supported ones.
 * main() calls it first, so a typo stops the command instead of being ignored. */
int cpu_variant_from_env(error *e);

#if HDLM_DISPATCH
/* Defines `static void name params` calling BODY args through the active variant. BODY is a
 * `static inline CPU_INLINE void` function; each variant is BODY inlined into a wrapper compiled
 * for that instruction set, so the loops in it are vectorised for it. Parallel regions stay in
 * the caller (the wrappers run on one thread's share). */
#define CPU_KERNEL(name, body, params, args)                                                       \
    __attribute__((target("arch=x86-64-v4"))) static void name##_avx512 params {                   \
        body args;                                                                                 \
    }                                                                                              \
    __attribute__((target("arch=x86-64-v3"))) static void name##_avx2 params {                     \
        body args;                                                                                 \
    }                                                                                              \
    static void name##_generic params {                                                            \
        body args;                                                                                 \
    }                                                                                              \
    static void(*const name##_variants[CPU_N_VARIANTS]) params = {                                 \
        [CPU_GENERIC] = name##_generic, [CPU_AVX2] = name##_avx2, [CPU_AVX512] = name##_avx512};   \
    static void name params {                                                                      \
        name##_variants[cpu_variant_active()] args;                                                \
    }
#else
#define CPU_KERNEL(name, body, params, args)                                                       \
    static void name params {                                                                      \
        body args;                                                                                 \
    }
#endif
#define CPU_INLINE __attribute__((always_inline))

#endif
