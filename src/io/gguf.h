/* gguf.h — read and write GGUF files (the container of llama.cpp / ggml), versions 2 and 3, little-endian.
 *
 * Layout (all integers little-endian; a "string" is a u64 byte length followed by that many bytes, no NUL):
 *   "GGUF" magic, u32 version, u64 tensor count, u64 KV count
 *   KV pairs:      string key, u32 value type, value (an array is: u32 element type, u64 count, elements)
 *   tensor infos:  string name, u32 n_dims, u64 ne[n_dims] (ne[0] is the fastest-varying dimension, i.e. a
 *                  PyTorch [rows, cols] matrix has ne = {cols, rows}), u32 ggml type, u64 offset
 *   padding to general.alignment (u32 KV, default 32, a power of two)
 *   data region:   tensor bytes at their offsets (relative to the region's start, each aligned)
 * Block-quantized types store ne[0] in blocks: Q8_0 is blocks of 32 values, each an fp16 scale d then 32 int8
 * q, value = d * q.
 *
 * The reader maps the file read-only (or takes a caller's buffer) and trusts nothing: every length is checked
 * against the bytes that remain before it is used, counts against the smallest size their items could take,
 * products for overflow; nested arrays, duplicate keys or tensor names, unknown value or tensor types, n_dims
 * outside 1..4, zero dims, sizes that are not whole blocks, misaligned, out-of-range or overlapping tensor data
 * are refused with a message naming the problem. Types known to ggml but that moec cannot decode (IQ2_XXS,
 * ...) open fine; only converting their data is refused.
 */
#ifndef MOEC_IO_GGUF_H
#define MOEC_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

#define MOEC_GGUF_MAX_DIMS 4
#define MOEC_GGUF_DEFAULT_ALIGNMENT 32
/* ggml keeps tensor names in char[64]: longer names cannot be loaded by llama.cpp, so the writer refuses them. */
#define MOEC_GGUF_MAX_NAME 63

/* KV value types (the numbers are the file's). */
typedef enum {
    MOEC_GGUF_KV_U8 = 0, MOEC_GGUF_KV_I8 = 1, MOEC_GGUF_KV_U16 = 2, MOEC_GGUF_KV_I16 = 3,
    MOEC_GGUF_KV_U32 = 4, MOEC_GGUF_KV_I32 = 5, MOEC_GGUF_KV_F32 = 6, MOEC_GGUF_KV_BOOL = 7,
    MOEC_GGUF_KV_STRING = 8, MOEC_GGUF_KV_ARRAY = 9, MOEC_GGUF_KV_U64 = 10, MOEC_GGUF_KV_I64 = 11,
    MOEC_GGUF_KV_F64 = 12,
    MOEC_GGUF_KV_TYPE_COUNT
} moec_gguf_kv_type;

/* ggml tensor types (the numbers are ggml's). moec_gguf_tensor_read_f32 says which it converts to fp32. */
typedef enum {
    MOEC_GGML_F32 = 0, MOEC_GGML_F16 = 1, MOEC_GGML_Q4_0 = 2, MOEC_GGML_Q4_1 = 3, MOEC_GGML_Q5_0 = 6,
    MOEC_GGML_Q5_1 = 7, MOEC_GGML_Q8_0 = 8, MOEC_GGML_Q8_1 = 9, MOEC_GGML_Q2_K = 10, MOEC_GGML_Q3_K = 11,
    MOEC_GGML_Q4_K = 12, MOEC_GGML_Q5_K = 13, MOEC_GGML_Q6_K = 14, MOEC_GGML_Q8_K = 15,
    MOEC_GGML_IQ2_XXS = 16, MOEC_GGML_IQ2_XS = 17, MOEC_GGML_IQ3_XXS = 18, MOEC_GGML_IQ1_S = 19,
    MOEC_GGML_IQ4_NL = 20, MOEC_GGML_IQ3_S = 21, MOEC_GGML_IQ2_S = 22, MOEC_GGML_IQ4_XS = 23,
    MOEC_GGML_I8 = 24, MOEC_GGML_I16 = 25, MOEC_GGML_I32 = 26, MOEC_GGML_I64 = 27, MOEC_GGML_F64 = 28,
    MOEC_GGML_IQ1_M = 29, MOEC_GGML_BF16 = 30, MOEC_GGML_TQ1_0 = 34, MOEC_GGML_TQ2_0 = 35,
    MOEC_GGML_MXFP4 = 39,
    MOEC_GGML_TYPE_LIMIT = 40 /* one past the largest number above */
} moec_ggml_type;

#define MOEC_Q8_0_BLOCK 32       /* values per Q8_0 block */
#define MOEC_Q8_0_BLOCK_BYTES 34 /* fp16 scale + 32 int8 */

/* "F32", "Q8_0", ...; NULL for a number ggml does not define. */
const char *moec_ggml_type_name(moec_ggml_type t);
/* Values per block and bytes per block (1 and the element size for plain types); 0 and 0 if unknown. */
int moec_ggml_type_block(moec_ggml_type t, size_t *block_bytes);
const char *moec_gguf_kv_type_name(moec_gguf_kv_type t);
/* Bytes of one value of a fixed-size KV type (0 for string, array or an unknown type). */
size_t moec_gguf_kv_type_size(moec_gguf_kv_type t);

/* The spec caps keys at 65535 bytes; moec applies the same cap to tensor names when reading (llama.cpp's own
 * cap, 63, is enforced only by the writer so that files of other tools still open). */
#define MOEC_GGUF_MAX_KEY 65535u

/* ---- reader ---- */
typedef struct {
    const char *key;            /* NUL-terminated copy */
    moec_gguf_kv_type type;     /* MOEC_GGUF_KV_ARRAY for arrays */
    moec_gguf_kv_type arr_type; /* element type of an array (never ARRAY: nested arrays are refused) */
    uint64_t n;                 /* array length; 1 for a scalar */
    const void *data;           /* scalar value / first element, in the file (may be unaligned); strings: see
                                 * moec_gguf_kv_str / moec_gguf_kv_arr_str */
} moec_gguf_kv;

typedef struct {
    const char *name;           /* NUL-terminated copy */
    moec_ggml_type type;
    int n_dims;
    int64_t ne[MOEC_GGUF_MAX_DIMS]; /* dims past n_dims are 1 */
    uint64_t offset;            /* within the data region */
    size_t nbytes;
    const void *data;           /* into the file (aligned to the file's alignment relative to its start) */
} moec_gguf_tensor;

typedef struct moec_gguf_file moec_gguf_file;

/* Map path read-only and validate it. */
moec_status moec_gguf_open(moec_gguf_file **f, const char *path);
/* Validate a caller's buffer (not copied: it must outlive f). origin names it in messages. */
moec_status moec_gguf_open_memory(moec_gguf_file **f, const void *buf, size_t len, const char *origin);
void moec_gguf_close(moec_gguf_file *f);

uint32_t moec_gguf_version(const moec_gguf_file *f);
uint32_t moec_gguf_alignment(const moec_gguf_file *f);
int64_t moec_gguf_kv_count(const moec_gguf_file *f);
const moec_gguf_kv *moec_gguf_kv_at(const moec_gguf_file *f, int64_t i); /* file order; NULL if out of range */
const moec_gguf_kv *moec_gguf_find_kv(const moec_gguf_file *f, const char *key); /* NULL if absent */
int64_t moec_gguf_tensor_count(const moec_gguf_file *f);
const moec_gguf_tensor *moec_gguf_tensor_at(const moec_gguf_file *f, int64_t i); /* file order */
const moec_gguf_tensor *moec_gguf_find_tensor(const moec_gguf_file *f, const char *name);
int64_t moec_gguf_tensor_numel(const moec_gguf_tensor *t);

/* Typed getters. Each returns MOEC_OK and the value, or an error naming the key when it is absent or has
 * another type. The integer getters accept any integer type whose value fits (a u8 or i64 count is fine). */
moec_status moec_gguf_get_u32(const moec_gguf_file *f, const char *key, uint32_t *v);
moec_status moec_gguf_get_i32(const moec_gguf_file *f, const char *key, int32_t *v);
moec_status moec_gguf_get_u64(const moec_gguf_file *f, const char *key, uint64_t *v);
moec_status moec_gguf_get_f32(const moec_gguf_file *f, const char *key, float *v);   /* F32 or F64 */
moec_status moec_gguf_get_bool(const moec_gguf_file *f, const char *key, int *v);
/* String value: pointer into the file (not NUL-terminated) and its length. */
moec_status moec_gguf_get_str(const moec_gguf_file *f, const char *key, const char **s, size_t *len);
/* Array of elem type: *kv is the KV (n elements at kv->data for fixed-size types). */
moec_status moec_gguf_get_arr(const moec_gguf_file *f, const char *key, moec_gguf_kv_type elem, const moec_gguf_kv **kv);

/* A string KV's bytes; a string array's element i. NULL for the wrong type or i out of range. */
const char *moec_gguf_kv_str(const moec_gguf_file *f, const moec_gguf_kv *kv, size_t *len);
const char *moec_gguf_kv_arr_str(const moec_gguf_file *f, const moec_gguf_kv *kv, uint64_t i, size_t *len);
/* Numeric array element i (any integer, float or bool element type) as double; NAN if not numeric. */
double moec_gguf_kv_arr_num(const moec_gguf_kv *kv, uint64_t i);

/* Convert a tensor to fp32 (F32, F16, BF16, Q4_0/1, Q5_0/1, Q8_0, Q2_K..Q6_K: io/ggml_quants.h); n must be its
 * element count. Other types (the IQ and ternary families, ...) are refused. */
moec_status moec_gguf_tensor_read_f32(const moec_gguf_tensor *t, float *out, int64_t n);

/* ---- element codecs (ggml's definitions) ---- */
/* n % 32 == 0. Per block: d = max|x| / 127 stored as fp16; q = roundf(x * (1/d)) (0 when d == 0). */
void moec_q8_0_quantize(const float *x, int64_t n, void *out);
void moec_q8_0_dequantize(const void *in, int64_t n, float *out);
/* Round to nearest even; NaN stays NaN, overflow becomes infinity. */
uint16_t moec_gguf_f32_to_f16(float x);
uint16_t moec_gguf_f32_to_bf16(float x);

/* ---- writer ----
 * Streaming and atomic: declare every KV and tensor (name, type, dims) first, then append the tensors' data in
 * declaration order with moec_gguf_writer_put (raw bytes of the declared type, any chunking) or
 * moec_gguf_writer_put_f32 (fp32 values converted to the current tensor's type; whole rows for Q8_0). The
 * header is written at the first put (or at finish), alignment padding is inserted between tensors, and
 * finish checks every promised byte arrived, fsyncs and renames the file into place; abort discards it.
 * finish and abort free w whatever happens. Declaring the same key or tensor name twice is an error. */
typedef struct moec_gguf_writer moec_gguf_writer;
moec_status moec_gguf_writer_begin(moec_gguf_writer **w, const char *path);
moec_status moec_gguf_writer_set_alignment(moec_gguf_writer *w, uint32_t alignment); /* writes general.alignment */
/* A scalar KV of any non-string, non-array type; value points to its little-endian bytes (1..8). */
moec_status moec_gguf_writer_kv(moec_gguf_writer *w, const char *key, moec_gguf_kv_type type, const void *value);
moec_status moec_gguf_writer_kv_u32(moec_gguf_writer *w, const char *key, uint32_t v);
moec_status moec_gguf_writer_kv_i32(moec_gguf_writer *w, const char *key, int32_t v);
moec_status moec_gguf_writer_kv_f32(moec_gguf_writer *w, const char *key, float v);
moec_status moec_gguf_writer_kv_bool(moec_gguf_writer *w, const char *key, int v);
moec_status moec_gguf_writer_kv_str(moec_gguf_writer *w, const char *key, const char *s);
moec_status moec_gguf_writer_kv_strn(moec_gguf_writer *w, const char *key, const char *s, size_t len);
/* Array of n fixed-size elements (elem not STRING/ARRAY), copied. */
moec_status moec_gguf_writer_kv_arr(moec_gguf_writer *w, const char *key, moec_gguf_kv_type elem, const void *data,
                                    uint64_t n);
/* Array of n strings; lens may be NULL (then strs are NUL-terminated). Copied. */
moec_status moec_gguf_writer_kv_arr_str(moec_gguf_writer *w, const char *key, const char *const *strs,
                                        const size_t *lens, uint64_t n);
/* ne[0] fastest (see above). Block types need ne[0] % block == 0. */
moec_status moec_gguf_writer_add_tensor(moec_gguf_writer *w, const char *name, moec_ggml_type type, int n_dims,
                                        const int64_t *ne);
moec_status moec_gguf_writer_put(moec_gguf_writer *w, const void *data, size_t nbytes);
/* n fp32 values of the current tensor (F32/F16/BF16/Q8_0); must not cross the tensor's end, and for Q8_0 the
 * current position and n must be multiples of 32. */
moec_status moec_gguf_writer_put_f32(moec_gguf_writer *w, const float *x, int64_t n);
moec_status moec_gguf_writer_finish(moec_gguf_writer *w);
void moec_gguf_writer_abort(moec_gguf_writer *w);

#endif
