/* tokenizer_internal.h — what the tokenizer_*.c files share and nobody else sees: the tokenizer struct, two
 * small open-addressing hash maps, the GPT-2 byte<->unicode table and the pre-tokenizer.
 *
 * Id layout of a tokenizer moec trains: ids 0..255 are the 256 single bytes (id b is byte b), then one id per
 * merge in merge order, then the special tokens. A tokenizer loaded from a tokenizer.json keeps that file's ids,
 * whatever their order; moec only requires them to be dense (0..n-1) so they index an embedding table.
 */
#ifndef MOEC_IO_TOKENIZER_INTERNAL_H
#define MOEC_IO_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "io/tokenizer.h"

/* ---- hash map: uint64 key -> int64 value (merge pairs, pair statistics). Key UINT64_MAX is reserved. ---- */
typedef struct {
    uint64_t *keys;
    int64_t *vals;
    size_t cap;  /* power of two, or 0 */
    size_t n;
} moec_tok_u64map;

#define MOEC_TOK_EMPTY_KEY UINT64_MAX
int64_t moec_tok_u64map_get(const moec_tok_u64map *m, uint64_t key, int64_t missing);
moec_status moec_tok_u64map_put(moec_tok_u64map *m, uint64_t key, int64_t val);
void moec_tok_u64map_free(moec_tok_u64map *m);

static inline uint64_t moec_tok_pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

/* ---- hash map: byte string -> int64 value; keys are copied into the map's own arena. ---- */
typedef struct {
    uint64_t *hash;
    int64_t *off;   /* key offset in arena; -1 marks an empty slot */
    uint32_t *len;
    int64_t *val;
    size_t cap, n;
    char *arena;
    size_t arena_len, arena_cap;
} moec_tok_strmap;

uint64_t moec_tok_hash_bytes(const char *s, size_t n);
/* Value stored for key s[0..n), or `missing`. */
int64_t moec_tok_strmap_get(const moec_tok_strmap *m, const char *s, size_t n, int64_t missing);
/* Insert key -> val unless present. *slot_val (optional) receives the value now stored (the old one if the key
 * was present); *inserted (optional) says whether it was new. */
moec_status moec_tok_strmap_put(moec_tok_strmap *m, const char *s, size_t n, int64_t val, int64_t *slot_val,
                                int *inserted);
/* Overwrite the value of a present key (no-op if absent). */
void moec_tok_strmap_set(moec_tok_strmap *m, const char *s, size_t n, int64_t val);
void moec_tok_strmap_clear(moec_tok_strmap *m);
void moec_tok_strmap_free(moec_tok_strmap *m);

/* ---- SentencePiece-style pipeline (Llama 2 / Mistral tokenizer.json; tokenizer_sp.c) ---- */
/* One step of the normalizer or of the decoder, in file order. Strings are short ("▁", " ") and NUL-terminated. */
enum {
    MOEC_TOK_STEP_PREPEND,        /* normalizer Prepend(a): put a before non-empty text */
    MOEC_TOK_STEP_REPLACE,        /* normalizer/decoder Replace(String a -> b) */
    MOEC_TOK_STEP_BYTE_FALLBACK,  /* decoder: runs of <0xNN> tokens -> their bytes (U+FFFD each if not UTF-8) */
    MOEC_TOK_STEP_FUSE,           /* decoder: join all tokens into one */
    MOEC_TOK_STEP_STRIP,          /* decoder Strip(a, start, stop): per token, up to start/stop copies of a */
    MOEC_TOK_STEP_METASPACE,      /* decoder Metaspace(a): a -> ' ', but dropped in the first token (if prepend) */
};
#define MOEC_TOK_MAX_STEPS 8
typedef struct {
    int type;
    char a[16], b[16];
    int start, stop;   /* STRIP counts; METASPACE: start = 1 unless prepend_scheme is "never" */
} moec_tok_step;
enum { MOEC_TOK_PREPEND_NEVER = 0, MOEC_TOK_PREPEND_FIRST, MOEC_TOK_PREPEND_ALWAYS };

/* ---- the tokenizer ---- */
struct moec_tokenizer {
    int32_t n_vocab;       /* ids are 0..n_vocab-1 */
    int32_t tok_cap, special_cap, merge_cap; /* allocated lengths of the arrays below */
    char *blob;            /* raw bytes of every token, back to back */
    size_t blob_len, blob_cap;
    int64_t *tok_off;      /* [n_vocab] offset of token id's bytes in blob */
    int32_t *tok_len;      /* [n_vocab] */
    uint8_t *is_special;   /* [n_vocab] 1 for tokens matched literally in text (added tokens) */
    int32_t byte_id[256];  /* id of the single-byte token for each byte */
    moec_tok_strmap regular;   /* raw bytes -> id, non-special tokens */
    int32_t n_special;
    int32_t *special_ids;  /* [n_special] */
    int32_t n_merges;
    int32_t *merges;       /* [n_merges][3]: left id, right id, result id; index = rank */
    moec_tok_u64map ranks; /* pair key -> rank << 32 | result id */
    int ignore_merges;     /* HF option: a word that is itself a token is emitted whole, before merging */
    int32_t bos_id;        /* BOS the post_processor template puts first (callers add it), or -1 */
    int pretok;            /* byte-level pre-tokenizer: MOEC_TOK_PRETOK_* */

    /* SentencePiece-style files (sp = 1): tokens are stored as spelled in the file ("▁the", "<0x0A>"), text is
     * normalized (norm steps, then the Metaspace pre-tokenizer if meta), merged by BPE over its characters, and
     * characters outside the vocab become byte tokens (byte fallback) or unk. Decoding runs the dec steps. */
    int sp;
    int n_norm, n_dec;
    moec_tok_step norm[MOEC_TOK_MAX_STEPS], dec[MOEC_TOK_MAX_STEPS];
    int meta;              /* Metaspace pre-tokenizer present */
    char meta_repl[16];    /* its replacement ("▁") */
    int meta_prepend;      /* MOEC_TOK_PREPEND_* */
    int meta_split;        /* split=true: each replacement character starts a new word */
    int byte_fallback, fuse_unk;
    int32_t unk_id;        /* -1: characters outside the vocab (and without byte fallback) are dropped, as in HF */
    int32_t byte_tok[256]; /* id of "<0xNN>" for each byte (byte_fallback), else -1 */
};

/* Allocate an empty tokenizer with room for cap_vocab ids (it grows). */
moec_status moec_tok_alloc(moec_tokenizer **out, int32_t cap_vocab);
/* Append a token (raw bytes) as id t->n_vocab. Regular tokens are also indexed by bytes (first id wins). */
moec_status moec_tok_add_token(moec_tokenizer *t, const char *bytes, size_t n, int special);
/* Append merge (a, b) -> r with the next rank; a later duplicate pair overrides (as in Hugging Face). */
moec_status moec_tok_add_merge(moec_tokenizer *t, int32_t a, int32_t b, int32_t r);

/* ---- BPE merging (tokenizer.c): merge the n >= 1 ids sym[0..n) in place by merge rank, as Hugging Face's
 * Word::merge_all; the result is sym[0..*n_out). links holds >= 2n int32, heap >= 3n candidates. */
typedef struct { int32_t rank, pos, result; } moec_tok_bpe_cand;
void moec_tok_bpe(const moec_tokenizer *t, int32_t *sym, size_t n, size_t *n_out, int32_t *links,
                  moec_tok_bpe_cand *heap);

/* ---- SentencePiece-style files (tokenizer_sp.c) ---- */
/* Read normalizer, pre_tokenizer (Metaspace or null), decoder and post_processor of a non-byte-level file. */
moec_status moec_tok_sp_parse_pipeline(moec_tokenizer *t, const void *cjson_root, const char *path);
/* After the vocab is loaded: resolve unk_token, the byte tokens and the BOS of the post_processor template. */
moec_status moec_tok_sp_resolve(moec_tokenizer *t, const void *cjson_root, const char *path);
/* Encode the text between two special tokens (at_start: it begins the whole text), appending to *ids. */
moec_status moec_tok_sp_encode_span(const moec_tokenizer *t, const uint8_t *s, size_t n, int at_start,
                                    int32_t **ids, size_t *n_ids, size_t *cap);
moec_status moec_tok_sp_decode(const moec_tokenizer *t, const int32_t *ids, int64_t n, char **text, size_t *len);

/* ---- GPT-2 byte-level alphabet: byte b is written as the codepoint moec_tok_byte_to_cp(b). ---- */
uint32_t moec_tok_byte_to_cp(uint8_t b);
/* Inverse: byte for a codepoint of the alphabet, or -1. */
int moec_tok_cp_to_byte(uint32_t cp);

/* ---- UTF-8 and codepoint classes ---- */
enum { MOEC_TOK_OTHER = 0, MOEC_TOK_LETTER = 1, MOEC_TOK_NUMBER = 2, MOEC_TOK_SPACE = 3 };
extern const uint32_t moec_tok_class_ranges[][3];
extern const size_t moec_tok_n_class_ranges;
/* Decode one codepoint at s[i] (i < n); *adv = its byte length. Invalid UTF-8 yields -1 with *adv = 1. */
int32_t moec_tok_utf8_decode(const uint8_t *s, size_t n, size_t i, size_t *adv);
int moec_tok_class(int32_t cp);
/* End (exclusive) of the GPT-2 pre-token starting at s[i], i < n. See tokenizer.c for the rules. */
size_t moec_tok_pretoken_end(const uint8_t *s, size_t n, size_t i);

/* Byte-level pre-tokenizers: GPT-2's (ByteLevel use_regex=true), or Split(Regex) with the Llama 3 / Qwen2
 * pattern followed by ByteLevel(use_regex=false) (tokenizer_split.c). */
enum { MOEC_TOK_PRETOK_GPT2 = 0, MOEC_TOK_PRETOK_LLAMA3, MOEC_TOK_PRETOK_QWEN2 };
extern const char *const moec_tok_split_pattern[3]; /* [kind]: the exact regex string (NULL for GPT2) */
/* End (exclusive) of the pre-token of pattern `kind` (LLAMA3 or QWEN2) starting at s[i], i < n. */
size_t moec_tok_pretoken_end_split(int kind, const uint8_t *s, size_t n, size_t i);

/* Reads a tokenizer.json post_processor (cJSON node): accepts null, ByteLevel, TemplateProcessing or a Sequence
 * of them, recording the template's leading special token as t->bos_id. Call after the vocab is loaded. */
moec_status moec_tok_read_post_processor(moec_tokenizer *t, const void *post_json, const char *path);

#endif
