/* Tests for nn/safetensors: bit-exact round trips of every dtype with metadata, the exact byte
 * layout of a small file, an independent Python/numpy reader (when /usr/bin/python3 has numpy),
 * refusal of malformed files with their messages, and atomic writes that never leave a broken
 * file or a temp file behind. */
#include "check.h"
#include "nn/safetensors.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef HDLM_SOURCE_DIR
#define HDLM_SOURCE_DIR "."
#endif

static char tmpdir[64];

static void path_in(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, fp);
    fclose(fp);
    return b;
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    if (n) fwrite(b, 1, n, fp);
    fclose(fp);
}

/* A hand-made file: LE length of header, header (unpadded), then dlen data bytes (0x5A). */
static void write_raw(const char *path, const char *header, size_t dlen) {
    size_t hl = strlen(header);
    unsigned char *b = malloc(8 + hl + dlen + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, 0x5A, dlen);
    write_bytes(path, b, 8 + hl + dlen);
    free(b);
}

/* Number of entries in dir whose name contains ".tmp." (leftover temp files). */
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static uint32_t crc32_bytes(const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static st_tensor make_tensor(const char *name, int dtype, int ndim, const int64_t *shape,
                             const void *data) {
    st_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.dtype = dtype;
    t.ndim = ndim;
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        t.shape[d] = shape[d];
        count *= shape[d];
    }
    t.data = data;
    t.nbytes = count * st_dtype_size(dtype);
    return t;
}

/* ---- the data set shared by the round trip and the Python cross-check ---- */

enum { N_RT = 8 };
static float w[3][4];       /* (3, 4) */
static int32_t ids[5];      /* (5) */
static uint8_t mask[7];     /* (7): odd size, so the next tensor starts unaligned */
static float late[2];       /* (2) */
static int64_t big[2];      /* (2) */
static double dd[2][2];     /* (2, 2) */
static float scalar = 3.5f; /* () */
static st_tensor rt[N_RT];
static const char *mkeys[] = {"format", "step", "note"};
static const char *mvals[] = {"pt", "123", "caf\xC3\xA9 \"quoted\"\n"};

static void make_roundtrip_set(void) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            w[i][j] = (float)(i * 4 + j) * 0.5f - 2.0f;
    uint32_t nan_bits = 0x7FC00001u; /* a NaN payload must survive bit-exactly */
    memcpy(&w[2][3], &nan_bits, 4);
    w[2][2] = -0.0f;
    for (int i = 0; i < 5; i++)
        ids[i] = (i - 2) * 1000003;
    for (int i = 0; i < 7; i++)
        mask[i] = (uint8_t)(i * 40);
    late[0] = 1.25f;
    late[1] = -7.0f;
    big[0] = INT64_MAX;
    big[1] = -5;
    dd[0][0] = 0.1;
    dd[0][1] = -2.5;
    dd[1][0] = 1e300; /* absorbs the others, so the sum is 1e300 in any summation order */
    dd[1][1] = -7.0;
    int64_t s34[] = {3, 4}, s5[] = {5}, s7[] = {7}, s2[] = {2}, s22[] = {2, 2}, s03[] = {0, 3};
    rt[0] = make_tensor("w", ST_F32, 2, s34, w);
    rt[1] = make_tensor("ids", ST_I32, 1, s5, ids);
    rt[2] = make_tensor("mask", ST_U8, 1, s7, mask);
    rt[3] = make_tensor("late", ST_F32, 1, s2, late);
    rt[4] = make_tensor("big", ST_I64, 1, s2, big);
    rt[5] = make_tensor("dd", ST_F64, 2, s22, dd);
    rt[6] = make_tensor("empty", ST_F32, 2, s03, NULL);
    rt[7] = make_tensor("scalar", ST_F32, 0, NULL, &scalar);
}

static void test_roundtrip(void) {
    char path[256];
    path_in(path, sizeof path, "rt.safetensors");
    error e = {0};
    CHECK_EQ(st_write(path, rt, N_RT, mkeys, mvals, 3, &e), 0);
    CHECK_EQ(count_tmp_files(tmpdir), 0);

    st_file *f = NULL;
    int rc = st_open(path, &f, &e);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "  st_open: %s\n", e.msg);
        return;
    }
    CHECK_STR(st_path(f), path);
    CHECK_EQ(st_count(f), N_RT);
    for (int i = 0; i < N_RT; i++) {
        const st_tensor *t = st_at(f, i);
        CHECK_STR(t->name, rt[i].name); /* header order = write order */
        CHECK_EQ(t->dtype, rt[i].dtype);
        CHECK_EQ(t->ndim, rt[i].ndim);
        for (int d = 0; d < t->ndim; d++)
            CHECK_EQ(t->shape[d], rt[i].shape[d]);
        CHECK_EQ(t->nbytes, rt[i].nbytes);
        CHECK(t->nbytes == 0 || !memcmp(t->data, rt[i].data, (size_t)t->nbytes));
        CHECK(st_find(f, rt[i].name) == t);
    }
    CHECK(st_at(f, -1) == NULL);
    CHECK(st_at(f, N_RT) == NULL);
    CHECK(st_find(f, "nope") == NULL);
    CHECK(st_find(f, "") == NULL);
    CHECK_EQ(st_meta_count(f), 3);
    CHECK_STR(st_meta_key_at(f, 0), "format");
    CHECK(st_meta_key_at(f, 3) == NULL);
    CHECK_STR(st_meta(f, "format"), "pt");
    CHECK_STR(st_meta(f, "step"), "123");
    CHECK_STR(st_meta(f, "note"), mvals[2]);
    CHECK(st_meta(f, "missing") == NULL);

    /* st_read_f32: values, including from an unaligned tensor (after 7 U8 bytes) */
    float got[12];
    int64_t s34[] = {3, 4}, s43[] = {4, 3}, s2[] = {2};
    CHECK_EQ(st_read_f32(f, "w", got, 2, s34, &e), 0);
    CHECK(!memcmp(got, w, sizeof w));
    CHECK_EQ(st_read_f32(f, "late", got, 1, s2, &e), 0);
    CHECK(got[0] == 1.25f && got[1] == -7.0f);
    CHECK_EQ(((uintptr_t)st_find(f, "late")->data) % 4 != 0, 1);
    CHECK_EQ(st_read_f32(f, "scalar", got, 0, NULL, &e), 0);
    CHECK(got[0] == 3.5f);
    char want[512];
    CHECK_EQ(st_read_f32(f, "w", got, 2, s43, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor 'w' has shape [3, 4], expected [4, 3]", path);
    CHECK_STR(e.msg, want);
    CHECK_EQ(st_read_f32(f, "ids", got, 1, (int64_t[]){5}, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor 'ids' has dtype I32, expected F32 (or BF16/F16)", path);
    CHECK_STR(e.msg, want);
    CHECK_EQ(st_read_f32(f, "wq", got, 2, s34, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor 'wq' not found (the file has 8 tensors)", path);
    CHECK_STR(e.msg, want);
    st_close(f);
    st_close(NULL);

    /* no tensors and no metadata is a valid file: "{}" padded to 8 bytes */
    CHECK_EQ(st_write(path, NULL, 0, NULL, NULL, 0, &e), 0);
    size_t n = 0;
    unsigned char *b = read_bytes(path, &n);
    CHECK_EQ(n, 16);
    CHECK(b && b[0] == 8 && !memcmp(b + 8, "{}      ", 8));
    free(b);
    CHECK_EQ(st_open(path, &f, &e), 0);
    CHECK_EQ(st_count(f), 0);
    CHECK(st_find(f, "w") == NULL);
    CHECK(st_meta(f, "format") == NULL);
    st_close(f);
}

static void test_layout(void) {
    char path[256];
    path_in(path, sizeof path, "layout.safetensors");
    float a[2] = {1.0f, -2.0f};
    uint8_t bb[3] = {1, 2, 3};
    int64_t s2[] = {2}, s3[] = {3};
    st_tensor t[2] = {make_tensor("a", ST_F32, 1, s2, a), make_tensor("b", ST_U8, 1, s3, bb)};
    const char *k[] = {"k"}, *v[] = {"v"};
    error e = {0};
    CHECK_EQ(st_write(path, t, 2, k, v, 1, &e), 0);
    const char *hdr = "{\"__metadata__\":{\"k\":\"v\"},"
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
    CHECK_EQ(strlen(hdr), 132);
    size_t n = 0;
    unsigned char *b = read_bytes(path, &n);
    CHECK_EQ(n, 8 + 136 + 11);
    if (!b || n != 8 + 136 + 11) {
        free(b);
        return;
    }
    /* u64 little-endian 136 = 132 bytes of JSON + 4 spaces, so the data starts at 144 = 18 * 8 */
    const unsigned char len8[8] = {136, 0, 0, 0, 0, 0, 0, 0};
    CHECK(!memcmp(b, len8, 8));
    CHECK(!memcmp(b + 8, hdr, 132));
    CHECK(!memcmp(b + 8 + 132, "    ", 4));
    CHECK(!memcmp(b + 144, a, 8));
    const unsigned char f32_le[8] = {0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0}; /* 1, -2 */
    CHECK(!memcmp(b + 144, f32_le, 8));
    CHECK(!memcmp(b + 152, bb, 3));
    free(b);
}

static void test_python_crosscheck(void) {
    if (access("/usr/bin/python3", X_OK) ||
        system("/usr/bin/python3 -c 'import numpy' 2>/dev/null")) {
        printf("python cross-check: skipped (no /usr/bin/python3 with numpy)\n");
        return;
    }
    char path[256], cmd[1024];
    path_in(path, sizeof path, "py.safetensors");
    error e = {0};
    CHECK_EQ(st_write(path, rt, N_RT, mkeys, mvals, 2, &e),
             0); /* 2: keep the output one line each */
    const char *src = getenv("HDLM_SRC") ? getenv("HDLM_SRC") : HDLM_SOURCE_DIR;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/data/st_crosscheck.py' '%s' 2>&1", src,
             path);
    FILE *pp = popen(cmd, "r");
    CHECK(pp != NULL);
    if (!pp) return;
    char out[4096];
    size_t got = fread(out, 1, sizeof out - 1, pp);
    out[got] = '\0';
    int status = pclose(pp);
    CHECK_EQ(status, 0);

    /* the same report computed here from the arrays we wrote */
    st_file *f = NULL;
    CHECK_EQ(st_open(path, &f, &e), 0);
    if (!f) return;
    char want[4096];
    size_t k = 0;
    size_t n = 0;
    unsigned char *raw = read_bytes(path, &n);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = (header_len << 8) | raw[i];
    free(raw);
    k += (size_t)snprintf(want + k, sizeof want - k, "header %llu data_start %llu\n",
                          (unsigned long long)header_len, (unsigned long long)header_len + 8);
    k += (size_t)snprintf(want + k, sizeof want - k, "meta format=pt\nmeta step=123\n");
    for (int i = 0; i < N_RT; i++) {
        const st_tensor *t = &rt[i];
        double sum = 0;
        int64_t count = t->nbytes / st_dtype_size(t->dtype);
        for (int64_t j = 0; j < count; j++) {
            switch (t->dtype) {
            case ST_F32:
                sum += ((const float *)t->data)[j];
                break;
            case ST_I32:
                sum += ((const int32_t *)t->data)[j];
                break;
            case ST_U8:
                sum += ((const uint8_t *)t->data)[j];
                break;
            case ST_I64:
                sum += (double)((const int64_t *)t->data)[j];
                break;
            case ST_F64:
                sum += ((const double *)t->data)[j];
                break;
            }
        }
        char dims[64] = "scalar";
        size_t dk = 0;
        for (int d = 0; d < t->ndim; d++)
            dk += (size_t)snprintf(dims + dk, sizeof dims - dk, "%s%lld", d ? "x" : "",
                                   (long long)t->shape[d]);
        char sums[400];
        if (isnan(sum))
            snprintf(sums, sizeof sums, "nan"); /* C may print "-nan"; Python never does */
        else
            snprintf(sums, sizeof sums, "%.6f", sum);
        k += (size_t)snprintf(want + k, sizeof want - k, "tensor %s %s %s %lld crc=%08x sum=%s\n",
                              t->name, st_dtype_name(t->dtype), dims, (long long)t->nbytes,
                              crc32_bytes(t->data, (size_t)t->nbytes), sums);
    }
    st_close(f);
    /* sums are exact or order-independent (w holds a NaN; ids sum to 0; dd to 1e300) */
    CHECK_STR(out, want);
}

/* st_open(path) must fail with exactly "<path>: <want>". */
static void check_refused(const char *path, const char *want) {
    st_file *f = (st_file *)1;
    error e = {0};
    int rc = st_open(path, &f, &e);
    CHECK(rc < 0);
    CHECK(f == NULL);
    char full[1024];
    snprintf(full, sizeof full, "%s: %s", path, want);
    CHECK_STR(e.msg, full);
    if (!rc) st_close(f);
}

static void test_refusals(void) {
    char p[256];
    path_in(p, sizeof p, "model.safetensors");

    write_bytes(p, "\x08\0\0\0\0", 5);
    check_refused(p, "file has 5 bytes, too short for the 8-byte header length (truncated?)");

    write_raw(p, "{}", 0);
    unsigned char b[10] = {0xE8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'}; /* claims 1000 bytes */
    write_bytes(p, b, 10);
    check_refused(p, "header length 1000 exceeds the 2 bytes after the length prefix (truncated?)");

    unsigned char huge[10] = {0x00, 0xC2, 0xEB, 0x0B, 0, 0, 0, 0, '{', '}'}; /* 200000000 */
    write_bytes(p, huge, 10);
    check_refused(p, "header length 200000000 exceeds the limit of 100000000 bytes");

    /* a good file cut short: inside the data, then inside the header */
    char lp[256];
    path_in(lp, sizeof lp, "layout.safetensors");
    size_t n = 0;
    unsigned char *good = read_bytes(lp, &n);
    CHECK_EQ(n, 155);
    write_bytes(p, good, n - 3);
    check_refused(p, "tensor 'b': data_offsets [8, 11] exceed the data section of 8 bytes "
                     "(truncated file?)");
    write_bytes(p, good, 40);
    check_refused(p, "header length 136 exceeds the 32 bytes after the length prefix (truncated?)");
    free(good);

    write_raw(p, "[1]", 0);
    check_refused(p, "header does not start with '{'");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",}}", 0);
    check_refused(p, "header: JSON: trailing comma at offset 19");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\" \"shape\":[]}}", 0);
    check_refused(p, "header: JSON: expected ',' or '}' at offset 20 (found '\"')");

    write_raw(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
              12);
    check_refused(p, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    /* the same two tensors listed in the other order: the message still follows the offsets */
    write_raw(p,
              "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
              12);
    check_refused(p, "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    write_raw(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
              8);
    check_refused(p, "tensors 'a' [0, 8] and 'b' [0, 8] overlap");
    write_raw(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
              20);
    check_refused(p, "data bytes [8, 12] belong to no tensor (gap before 'b')");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12);
    check_refused(p, "data section has 12 bytes but the tensors end at 8 (trailing data)");

    write_raw(p,
              "{\"blocks.0.attn.qkv.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],"
              "\"data_offsets\":[0,100]}}",
              100);
    check_refused(p, "tensor 'blocks.0.attn.qkv.weight': data_offsets [0, 100] hold 100 bytes, "
                     "dtype F32 shape [3, 4] needs 48");
    write_raw(p, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    check_refused(p,
                  "tensor 'a': unknown dtype 'F8_E4M3' (supported: F32, BF16, F16, I32, U8, I64, "
                  "F64)");
    write_raw(p, "{\"a\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    check_refused(p, "tensor 'a': \"dtype\" is a number, expected a string");
    write_raw(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0);
    check_refused(p, "tensor 'a': shape entry 0 is not a non-negative integer");
    write_raw(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[2.0],\"data_offsets\":[0,2]}}", 2);
    check_refused(p, "tensor 'a': shape entry 0 is not a non-negative integer");
    write_raw(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
              1);
    check_refused(p, "tensor 'a': shape has 9 dimensions, at most 8");
    write_raw(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[2]}}", 2);
    check_refused(p,
                  "tensor 'a': \"data_offsets\" must be [begin, end], two non-negative integers");
    write_raw(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,0]}}", 2);
    check_refused(p, "tensor 'a': data_offsets [2, 0] end before they begin");
    write_raw(p,
              "{\"a\":{\"dtype\":\"I64\",\"shape\":[4611686018427387904,4],"
              "\"data_offsets\":[0,8]}}",
              8);
    check_refused(p, "tensor 'a': dtype I64 shape [4611686018427387904, 4] is too large");
    write_raw(p, "{\"a\":[1]}", 0);
    check_refused(p, "tensor 'a': entry is an array, expected an object");
    write_raw(p,
              "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
              "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
              2);
    check_refused(p, "header: JSON: duplicate key \"a\" at offset 53");
    write_raw(p, "{\"__metadata__\":{\"step\":3}}", 0);
    check_refused(p, "\"__metadata__\" value of 'step' is a number, expected a string");
    write_raw(p, "{\"__metadata__\":[]}", 0);
    check_refused(p, "\"__metadata__\" is an array, expected an object");
    char hdr[400], longname[140];
    memset(longname, 'x', 130);
    longname[130] = '\0';
    snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
             longname);
    write_raw(p, hdr, 0);
    char want[400];
    snprintf(want, sizeof want,
             "tensor name '%.64s...' (130 bytes): names must be 1..127 bytes without NUL",
             longname);
    check_refused(p, want);

    /* empty tensors (zero bytes) may sit at a boundary; scalars need one element */
    write_raw(p,
              "{\"z\":{\"dtype\":\"F32\",\"shape\":[4,0],\"data_offsets\":[4,4]},"
              "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
              4);
    st_file *f = NULL;
    error e = {0};
    CHECK_EQ(st_open(p, &f, &e), 0);
    CHECK_EQ(st_count(f), 2);
    CHECK_EQ(st_find(f, "z")->nbytes, 0);
    CHECK_EQ(st_find(f, "s")->ndim, 0);
    st_close(f);

    char missing[256];
    path_in(missing, sizeof missing, "does-not-exist.safetensors");
    check_refused(missing, "cannot open: No such file or directory");
    check_refused(tmpdir, "not a regular file");
}

static void test_write_refusals(void) {
    char p[256];
    path_in(p, sizeof p, "args.safetensors");
    float x[4] = {0};
    int64_t s4[] = {4}, s2[] = {2}, sneg[] = {-1};
    error e = {0};
    char want[512];

    st_tensor t2[2] = {make_tensor("x", ST_F32, 1, s4, x), make_tensor("x", ST_F32, 1, s2, x)};
    CHECK_EQ(st_write(p, t2, 2, NULL, NULL, 0, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor name 'x' appears twice", p);
    CHECK_STR(e.msg, want);

    st_tensor t = make_tensor("x", ST_F32, 1, s4, x);
    t.nbytes = 12;
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor 'x': nbytes 12, dtype F32 shape [4] needs 16", p);
    CHECK_STR(e.msg, want);

    t = make_tensor("x", ST_F32, 1, s4, x);
    t.dtype = 9;
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor 'x': unknown dtype 9", p);
    CHECK_STR(e.msg, want);

    t = make_tensor("x", ST_F32, 1, sneg, x);
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor 'x': negative dimension in shape [-1]", p);
    CHECK_STR(e.msg, want);

    t = make_tensor("__metadata__", ST_F32, 1, s4, x);
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EINVAL);
    CHECK_CONTAINS(e.msg, "the name '__metadata__' is reserved");

    t = make_tensor("x", ST_F32, 1, s4, x);
    const char *k[] = {"a", "a"}, *v[] = {"1", "2"};
    CHECK_EQ(st_write(p, &t, 1, k, v, 2, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: metadata key 'a' appears twice", p);
    CHECK_STR(e.msg, want);

    t = make_tensor("bad\xFFname", ST_F32, 1, s4, x);
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: tensor 0: name is not valid UTF-8", p);
    CHECK_STR(e.msg, want);
    t = make_tensor("x", ST_F32, 1, s4, x);
    const char *bk[] = {"ok"}, *bv[] = {"\xC0\xAF"};
    CHECK_EQ(st_write(p, &t, 1, bk, bv, 1, &e), HDLM_EINVAL);
    snprintf(want, sizeof want, "%s: metadata entry 0: not valid UTF-8", p);
    CHECK_STR(e.msg, want);

    CHECK(access(p, F_OK) != 0); /* nothing was created */
    CHECK_EQ(count_tmp_files(tmpdir), 0);
}

static void test_atomic(void) {
    float x[4] = {1, 2, 3, 4};
    int64_t s4[] = {4};
    st_tensor t = make_tensor("x", ST_F32, 1, s4, x);
    error e = {0};
    char p[256], want[1024];

    /* a missing directory: no file, no temp file, the message names the path and the OS error */
    path_in(p, sizeof p, "no-such-dir/x.safetensors");
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EIO);
    snprintf(want, sizeof want,
             "%s: cannot create temporary file '%s.tmp.%ld': No such file or directory", p, p,
             (long)getpid());
    CHECK_STR(e.msg, want);

    /* a read-only directory (root writes anyway, so only as a normal user) */
    if (geteuid() != 0) {
        char ro[128];
        path_in(ro, sizeof ro, "ro");
        mkdir(ro, 0755);
        snprintf(p, sizeof p, "%s/x.safetensors", ro);
        chmod(ro, 0555);
        CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EIO);
        CHECK_CONTAINS(e.msg, p);
        CHECK_CONTAINS(e.msg, "Permission denied");
        CHECK_EQ(count_tmp_files(ro), 0);
        CHECK(access(p, F_OK) != 0);
        chmod(ro, 0755);
    } else {
        printf("read-only directory check: skipped (running as root)\n");
    }

    /* the path is a directory: the rename fails and the temp file is removed */
    path_in(p, sizeof p, "isdir");
    mkdir(p, 0755);
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), HDLM_EIO);
    CHECK_CONTAINS(e.msg, "Is a directory");
    CHECK_EQ(strncmp(e.msg, p, strlen(p)), 0);
    CHECK_EQ(count_tmp_files(tmpdir), 0);

    /* a good file survives a write that fails half way (file size limit -> EFBIG) */
    path_in(p, sizeof p, "good.safetensors");
    CHECK_EQ(st_write(p, &t, 1, NULL, NULL, 0, &e), 0);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = read_bytes(p, &n0);
    enum { NBIG = 1 << 18 };
    float *bigbuf = calloc(NBIG, sizeof *bigbuf); /* 1 MB */
    int64_t sb[] = {NBIG};
    st_tensor tb = make_tensor("x", ST_F32, 1, sb, bigbuf);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of being killed */
    CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = st_write(p, &tb, 1, NULL, NULL, 0, &e);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK_EQ(rc, HDLM_EIO);
    CHECK_CONTAINS(e.msg, "File too large");
    CHECK_EQ(strncmp(e.msg, p, strlen(p)), 0);
    CHECK_EQ(count_tmp_files(tmpdir), 0);
    unsigned char *after = read_bytes(p, &n1);
    CHECK_EQ(n1, n0);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0));
    free(before);
    free(after);

    /* and a successful write replaces it completely */
    CHECK_EQ(st_write(p, &tb, 1, NULL, NULL, 0, &e), 0);
    st_file *f = NULL;
    CHECK_EQ(st_open(p, &f, &e), 0);
    CHECK_EQ(st_find(f, "x")->nbytes, 4 * NBIG);
    st_close(f);
    free(bigbuf);
    CHECK_EQ(count_tmp_files(tmpdir), 0);
}

/* BF16 and F16 tensors (as published models come) are written as raw bits and widened exactly by
 * st_read_f32; st_f32_to_bf16 rounds to nearest even. */
static void test_half(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/half.safetensors", tmpdir);
    /* bf16: 1, -2, 0.5, 3.140625 (0x4049), inf; f16: 1, -2, 65504, 2^-24 (smallest subnormal),
     * 2^-14 (smallest normal), -0 */
    uint16_t bf[5] = {0x3f80, 0xc000, 0x3f00, 0x4049, 0x7f80};
    uint16_t hf[6] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x8000};
    st_tensor t[2] = {0};
    snprintf(t[0].name, sizeof t[0].name, "b");
    t[0].dtype = ST_BF16, t[0].ndim = 1, t[0].shape[0] = 5, t[0].data = bf, t[0].nbytes = 10;
    snprintf(t[1].name, sizeof t[1].name, "h");
    t[1].dtype = ST_F16, t[1].ndim = 1, t[1].shape[0] = 6, t[1].data = hf, t[1].nbytes = 12;
    error e = {0};
    CHECK_EQ(st_write(path, t, 2, NULL, NULL, 0, &e), 0);
    st_file *f = NULL;
    CHECK_EQ(st_open(path, &f, &e), 0);
    if (!f) return;
    CHECK_STR(st_dtype_name(st_find(f, "b")->dtype), "BF16");
    float got[6];
    CHECK_EQ(st_read_f32(f, "b", got, 1, (int64_t[]){5}, &e), 0);
    CHECK(got[0] == 1.0f && got[1] == -2.0f && got[2] == 0.5f && got[3] == 3.140625f);
    CHECK(isinf(got[4]) && got[4] > 0);
    CHECK_EQ(st_read_f32(f, "h", got, 1, (int64_t[]){6}, &e), 0);
    CHECK(got[0] == 1.0f && got[1] == -2.0f && got[2] == 65504.0f);
    CHECK(got[3] == 0x1p-24f && got[4] == 0x1p-14f && got[5] == 0.0f && signbit(got[5]));
    st_close(f);
    CHECK_EQ(st_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ(st_f32_to_bf16(3.14159265f), 0x4049);
    CHECK_EQ(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);            /* tie: to even */
    CHECK_EQ(st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81); /* above the tie */
    CHECK(st_bf16_to_f32(st_f32_to_bf16(-0.15625f)) == -0.15625f);
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hdlm_test_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    make_roundtrip_set();
    test_roundtrip();
    test_layout();
    test_python_crosscheck();
    test_refusals(); /* uses layout.safetensors */
    test_write_refusals();
    test_atomic();
    test_half();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_safetensors");
}
