/* Safetensors checkpoints: atomic writing and validated reading of the Hugging Face format
 * (u64 LE header length, JSON header, raw little-endian row-major data), so any safetensors reader
 * can open our checkpoints and we refuse malformed or hostile files with a one-line reason.
 * Supports the dtypes F32, BF16, F16, I32, U8, I64, F64 only; st_read_f32 widens BF16 and F16 to
 * F32 (how published models come); reads the whole file into memory (no mmap). */
#ifndef HDLM_SAFETENSORS_H
#define HDLM_SAFETENSORS_H

#include "base/error.h"

#include <stdint.h>

#define ST_MAX_NAME   128 /* bytes including the NUL: names are at most 127 bytes */
#define ST_MAX_NDIM   8
#define ST_MAX_HEADER (100 * 1000 * 1000) /* bytes; the reference implementation's limit */

typedef struct st_tensor { /* a tensor to write or one that was read */
    char name[ST_MAX_NAME];
    int dtype; /* ST_F32, ST_I32, ST_U8, ST_I64, ST_F64, ST_BF16, ST_F16 */
    int ndim;
    int64_t shape[ST_MAX_NDIM]; /* (ndim); ndim 0 is a scalar (one element) */
    /* write: borrowed pointer; read: points into the file's buffer, valid until st_close. It is
     * aligned to the dtype only if the tensors before it keep it so (the format has no padding
     * between tensors); st_read_f32 copies safely either way. */
    const void *data;
    int64_t nbytes;
} st_tensor;

enum { ST_F32 = 1, ST_I32, ST_U8, ST_I64, ST_F64, ST_BF16, ST_F16 };

/* Element size in bytes (0 for an unknown dtype) and the format's name ("F32"; NULL if unknown). */
int st_dtype_size(int dtype);
const char *st_dtype_name(int dtype);

/* Writes atomically: "<path>.tmp.<pid>" + fwrite + fflush + fsync + rename, then fsync of the
 * directory, so a crash never leaves a broken file at path. metadata: n_meta key/value string pairs
 * (may be 0). Tensors are written in the given order, contiguously; the header is padded with
 * spaces so the data section starts at a multiple of 8 bytes. Names must be unique, non-empty,
 * at most 127 bytes and not "__metadata__"; nbytes must equal dtype size x product(shape).
 * On any failure (bad tensor, disk full, read-only dir) the temp file is removed, path is
 * untouched, and the error names the path and the OS error. */
int st_write(const char *path, const st_tensor *tensors, int n, const char *const *meta_keys,
             const char *const *meta_vals, int n_meta, error *e);

typedef struct st_file st_file; /* opaque: the whole file read into memory */

/* Reads and validates: header length within the file and <= ST_MAX_HEADER, JSON well formed (no
 * duplicate keys), every entry has a known dtype, a shape of <= 8 non-negative dims and
 * data_offsets holding exactly dtype size x product(shape) bytes inside the data section; the
 * tensors tile the data section with no overlap and no gap (as the reference reader demands).
 * Errors are one line naming the file and the tensor, e.g. "model.safetensors: tensor
 * 'blocks.0.attn.qkv.weight': data_offsets [0, 100] hold 100 bytes, dtype F32 shape [3, 4] needs
 * 48". On failure *out is NULL. */
int st_open(const char *path, st_file **out, error *e);
void st_close(st_file *f); /* NULL ok */
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i); /* in header order; NULL if out of range */
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent */
const char *st_meta(const st_file *f, const char *key);       /* NULL if absent */
int st_meta_count(const st_file *f);
const char *st_meta_key_at(const st_file *f, int i); /* NULL if out of range */
const char *st_path(const st_file *f);               /* the path given to st_open */

/* Convenience: copy a tensor into dst after checking dtype and exact shape; the error names the
 * tensor and both shapes. F32 is copied; BF16 and F16 are widened to F32 (exact). */
int st_read_f32(const st_file *f, const char *name, float *dst, int ndim, const int64_t *shape,
                error *e);

/* Half-precision conversions (bit patterns as stored, little-endian in files). The widening ones
 * are exact; st_f32_to_bf16 rounds to nearest even (NaN stays NaN). */
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float x);
float st_f16_to_f32(uint16_t h);

#endif
