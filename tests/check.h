/* Minimal test harness: CHECK* record failures with file:line and keep going; check_report()
 * prints "N passed, M failed" and returns the exit status. */
#ifndef HDLM_CHECK_H
#define HDLM_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed_, check_failed_;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond)                                                                                  \
            check_passed_++;                                                                       \
        else {                                                                                     \
            check_failed_++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ == b_)                                                                              \
            check_passed_++;                                                                       \
        else {                                                                                     \
            check_failed_++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld\n", __FILE__, __LINE__,  \
                    #a, a_, #b, b_);                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        if (fabs(a_ - b_) <= (tol))                                                                \
            check_passed_++;                                                                       \
        else {                                                                                     \
            check_failed_++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.10g, %s = %.10g (tol %g)\n",         \
                    __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol));                            \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ && b_ && !strcmp(a_, b_))                                                           \
            check_passed_++;                                                                       \
        else {                                                                                     \
            check_failed_++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s = \"%s\", %s = \"%s\"\n", __FILE__,       \
                    __LINE__, #a, a_ ? a_ : "(null)", #b, b_ ? b_ : "(null)");                     \
        }                                                                                          \
    } while (0)

/* substring check: haystack contains needle */
#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ && n_ && strstr(h_, n_))                                                            \
            check_passed_++;                                                                       \
        else {                                                                                     \
            check_failed_++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK_CONTAINS failed: \"%s\" does not contain \"%s\"\n",      \
                    __FILE__, __LINE__, h_ ? h_ : "(null)", n_ ? n_ : "(null)");                   \
        }                                                                                          \
    } while (0)

static inline int check_report(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
