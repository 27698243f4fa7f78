/* safetensors.h — read and write Hugging Face .safetensors files.
 *
 * Format (https://github.com/huggingface/safetensors):
 *   bytes [0, 8)       N, the header length: unsigned 64-bit little-endian
 *   bytes [8, 8+N)     UTF-8 JSON object:
 *                        { "<tensor name>": { "dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end] },
 *                          ...,
 *                          "__metadata__": { "<key>": "<string value>", ... } }      (optional)
 *                      padded at the end with spaces (0x20); moec pads so the data starts 8-byte aligned
 *   bytes [8+N, EOF)   the data region; a tensor's bytes are data[begin, end), row-major, little-endian
 * dtype names and element sizes: BOOL U8 I8 F8_E4M3 F8_E5M2 (1), U16 I16 F16 BF16 (2), U32 I32 F32 (4),
 * U64 I64 F64 (8). A shape of [] is a scalar (one element).
 *
 * The reader maps the file read-only and trusts nothing: the header length must fit in the file, the JSON must
 * parse, every entry needs a known dtype, integer non-negative dims, offsets with begin <= end inside the data
 * region, end - begin == numel * element size (checked for overflow), no two tensors may overlap and no name may
 * repeat. Tensor data pointers point into the mapping (valid until moec_st_close) and may be unaligned when the
 * writer did not pad; moec_st_read_f32 copies safely whatever the alignment.
 */
#ifndef MOEC_IO_SAFETENSORS_H
#define MOEC_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#define MOEC_ST_MAX_DIMS 8

typedef enum {
    MOEC_ST_BOOL, MOEC_ST_U8, MOEC_ST_I8, MOEC_ST_F8_E4M3, MOEC_ST_F8_E5M2,
    MOEC_ST_U16, MOEC_ST_I16, MOEC_ST_F16, MOEC_ST_BF16,
    MOEC_ST_U32, MOEC_ST_I32, MOEC_ST_F32,
    MOEC_ST_U64, MOEC_ST_I64, MOEC_ST_F64,
    MOEC_ST_DTYPE_COUNT
} moec_st_dtype;

typedef struct {
    const char *name;
    moec_st_dtype dtype;
    int ndim;
    int64_t shape[MOEC_ST_MAX_DIMS];
    const void *data;  /* into the read-only mapping; may be unaligned */
    size_t nbytes;
} moec_st_tensor;

typedef struct moec_st_file moec_st_file;

/* "F32" etc.; NULL for an out-of-range value. */
const char *moec_st_dtype_name(moec_st_dtype d);
/* Bytes per element (0 for an out-of-range value). */
size_t moec_st_dtype_size(moec_st_dtype d);
/* Parse a dtype name; returns 0 and sets *d, or -1 if unknown. */
int moec_st_dtype_parse(const char *name, moec_st_dtype *d);
/* Product of the dims (1 for a scalar). */
int64_t moec_st_numel(const moec_st_tensor *t);

moec_status moec_st_open(moec_st_file **f, const char *path);
/* Open without mapping: the same validation, but only the header is read (with pread) and the descriptor stays
 * open; tensors' data pointers are NULL and their bytes are read on demand with moec_st_pread_f32. For streaming
 * tools (upcycling) whose address space must stay O(one tensor): a mapping counts toward RLIMIT_AS. */
moec_status moec_st_open_unmapped(moec_st_file **f, const char *path);
/* Validate a caller's buffer holding a whole .safetensors file (not copied: it must outlive f; data pointers
 * point into it). origin names it in messages. For fuzzing and for files already in memory. */
moec_status moec_st_open_memory(moec_st_file **f, const void *buf, size_t len, const char *origin);
void moec_st_close(moec_st_file *f);
const char *moec_st_path(const moec_st_file *f);
int moec_st_count(const moec_st_file *f);
/* Tensors in the order of their data offsets. */
const moec_st_tensor *moec_st_get(const moec_st_file *f, int i);
/* NULL if absent. */
const moec_st_tensor *moec_st_find(const moec_st_file *f, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *moec_st_metadata(const moec_st_file *f, const char *key);

/* Convert a float tensor (F64, F32, F16, BF16, F8_E4M3 (the "fn" variant: no inf), F8_E5M2) to fp32. n must be
 * the tensor's element count. F16/BF16/F8 conversions are exact, subnormals, infinities and NaNs included. */
moec_status moec_st_read_f32(const moec_st_tensor *t, float *out, int64_t n);
/* The same conversion for a tensor of f (mapped or unmapped), reading its bytes with pread when f is unmapped. */
moec_status moec_st_pread_f32(const moec_st_file *f, const moec_st_tensor *t, float *out, int64_t n);

/* Exact element conversions, exposed for tests and for kernels that read 16-bit weights. */
float moec_f16_to_f32(uint16_t h);
float moec_bf16_to_f32(uint16_t h);
float moec_f8e4m3_to_f32(uint8_t v);
float moec_f8e5m2_to_f32(uint8_t v);

/* ---- writing ---- */
typedef struct {
    const char *name;
    moec_st_dtype dtype;
    int ndim;
    int64_t shape[MOEC_ST_MAX_DIMS];
    const void *data;  /* numel * dtype size bytes, little-endian; ignored by moec_st_writer_begin */
} moec_st_write_entry;

/* Write a whole file atomically. meta_kv holds n_meta (key, value) pairs: meta_kv[2i], meta_kv[2i+1]. Data is
 * laid out in entry order. */
moec_status moec_st_write(const char *path, int n, const moec_st_write_entry *entries, const char *const *meta_kv,
                          int n_meta);

/* Streaming writer for models too large to assemble in memory: the header is written by begin (from the
 * entries' names, dtypes and shapes; their data pointers are ignored), then the tensors' bytes are appended
 * with put, in entry order, in as many pieces as convenient. finish checks that exactly the promised bytes
 * arrived and renames the file into place; abort discards it. finish and abort free w whatever happens. */
typedef struct moec_st_writer moec_st_writer;
moec_status moec_st_writer_begin(moec_st_writer **w, const char *path, int n, const moec_st_write_entry *entries,
                                 const char *const *meta_kv, int n_meta);
moec_status moec_st_writer_put(moec_st_writer *w, const void *data, size_t nbytes);
moec_status moec_st_writer_finish(moec_st_writer *w);
void moec_st_writer_abort(moec_st_writer *w);

#endif
