/* tokenizer.h — moec's byte-level BPE tokenizer (GPT-2 style), compatible with Hugging Face tokenizer.json.
 *
 * Text is first split at special tokens (e.g. "<|endoftext|>", matched literally, leftmost-longest), then each
 * stretch between them is split into pre-tokens by the GPT-2 rule
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (implemented by hand over UTF-8, with a generated Unicode letter/number table), and each pre-token's bytes
 * are merged by BPE: starting from one token per byte, repeatedly merge the adjacent pair with the lowest merge
 * rank (leftmost first). That is what the Hugging Face `tokenizers` library does with the tokenizer.json that
 * moec_tokenizer_save_json writes, and tests/test_tokenizer.c checks the two agree id for id.
 *
 * Ids of a trained tokenizer: 0..255 are the single bytes (id b is byte b), then the merged tokens in merge
 * order, then the special tokens in the order given (so "<|endoftext|>" is the last id when it is the only
 * one). Bytes that are not valid UTF-8 are handled (each such byte is its own "other" character), so every
 * byte string round-trips: decode(encode(x)) == x.
 *
 * Llama 3 / Qwen2 byte-level files (pre_tokenizer Sequence[Split(Regex(PAT), Isolated), ByteLevel(use_regex=
 * false)]) are read too, when PAT is exactly one of those two models' patterns (hand-written splitters in
 * tokenizer_split.c); any other Split pattern is refused. Byte mapping and BPE are then as above.
 *
 * SentencePiece-style BPE (Llama 2 / Mistral tokenizer.json: "▁" for spaces, byte fallback to "<0xNN>" tokens,
 * Prepend/Replace normalizer or Metaspace pre-tokenizer) can be read, encoded and decoded too; see tokenizer_sp.c
 * for what is supported. Such a tokenizer is not written back (moec_tokenizer_save_json refuses it).
 *
 * A tokenizer is immutable once built; encode/decode may be called from several threads at once.
 */
#ifndef MOEC_IO_TOKENIZER_H
#define MOEC_IO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

typedef struct moec_tokenizer moec_tokenizer;

/* Learn a vocabulary of at most vocab_size ids (256 bytes + merges + n_special specials) from text. Occurrences
 * of the special tokens in text are not learned from. If the corpus runs out of pairs to merge first, the
 * vocabulary is smaller: moec_tokenizer_vocab_size() tells the real size. vocab_size must be >= 256+n_special.
 * Special tokens must be non-empty, valid UTF-8 and distinct. */
moec_status moec_tokenizer_train(moec_tokenizer **out, const char *text, size_t len, int vocab_size,
                                 const char *const *special_tokens, int n_special);

/* Encode text[0..len) into a fresh malloc'ed array *ids of *n ids (caller frees). Special tokens appearing
 * literally in the text become their id. No BOS/EOS is ever added (unlike Hugging Face's default
 * add_special_tokens=True): callers that want the file's BOS prepend moec_tokenizer_bos_id() themselves. */
moec_status moec_tokenizer_encode(const moec_tokenizer *t, const char *text, size_t len, int32_t **ids, int64_t *n);

/* Decode ids into a fresh malloc'ed, NUL-terminated *text of *len bytes (NUL not counted; caller frees).
 * Special tokens decode to their literal text. An id outside the vocabulary is an error. SentencePiece-style
 * tokenizers run the file's decoder ("▁" -> " ", byte tokens fused into UTF-8, one leading space stripped), as
 * Hugging Face's decode(ids, skip_special_tokens=False) does. */
moec_status moec_tokenizer_decode(const moec_tokenizer *t, const int32_t *ids, int64_t n, char **text, size_t *len);

/* Write a Hugging Face tokenizer.json (BPE model, ByteLevel pre-tokenizer without prefix space, ByteLevel
 * decoder, specials as added_tokens), atomically (temporary file, fsync, rename). */
moec_status moec_tokenizer_save_json(const moec_tokenizer *t, const char *path);

/* Read a byte-level BPE tokenizer.json (ours or a compatible Hugging Face one), or a SentencePiece-style BPE one
 * (any pre_tokenizer other than ByteLevel: Metaspace or null). Everything is validated: ids dense and unique,
 * every byte present as a token (byte-level: as a single-byte token; SentencePiece with byte_fallback: as
 * "<0xNN>"), merges naming known tokens whose concatenation is a token; options moec does not implement
 * (other normalizers/pre-tokenizers/decoders, prefix space on byte-level, subword prefixes, dropout) are refused. */
moec_status moec_tokenizer_load_json(moec_tokenizer **out, const char *path);

int moec_tokenizer_vocab_size(const moec_tokenizer *t);
/* The BOS id that the tokenizer.json's TemplateProcessing post_processor puts first, or -1 (no template, or a
 * tokenizer moec trained). moec_tokenizer_encode never adds it; callers do. */
int moec_tokenizer_bos_id(const moec_tokenizer *t);
/* Id of the token whose raw bytes are exactly `token` (NUL-terminated), special tokens first; -1 if none.
 * Byte-level regular tokens are named by their bytes (" the"), not their tokenizer.json spelling ("Ġthe");
 * SentencePiece-style ones by their spelling ("▁the", "<0x0A>"). */
int moec_tokenizer_token_id(const moec_tokenizer *t, const char *token);
void moec_tokenizer_free(moec_tokenizer *t);

/* ---- read-only views for exporters (tokenizer_access.c) ---- */
typedef enum {
    MOEC_TOK_KIND_GPT2,          /* byte-level, GPT-2 pre-tokenizer regex */
    MOEC_TOK_KIND_LLAMA3,        /* byte-level, Llama 3 Split regex */
    MOEC_TOK_KIND_QWEN2,         /* byte-level, Qwen2 Split regex */
    MOEC_TOK_KIND_SENTENCEPIECE, /* "▁" pieces with byte fallback (Llama 2 / Mistral) */
} moec_tokenizer_kind;
moec_tokenizer_kind moec_tokenizer_kind_of(const moec_tokenizer *t);
/* Token id as tokenizer.json spells it ("Ġthe", "▁the", "<0x0A>", "<|endoftext|>"): a fresh malloc'ed,
 * NUL-terminated string of *len bytes (len may be NULL); NULL for an unknown id or out of memory. */
char *moec_tokenizer_spelling(const moec_tokenizer *t, int id, size_t *len);
/* 1 for an added special token (matched literally in text). */
int moec_tokenizer_is_special(const moec_tokenizer *t, int id);
/* Merges in rank order: rank r joins ids left and right into result. */
int moec_tokenizer_n_merges(const moec_tokenizer *t);
void moec_tokenizer_merge(const moec_tokenizer *t, int rank, int32_t *left, int32_t *right, int32_t *result);
/* SentencePiece-style only (else -1): the unknown-token id, and the "<0xNN>" byte-fallback piece of a byte. */
int moec_tokenizer_unk_id(const moec_tokenizer *t);
int moec_tokenizer_byte_piece(const moec_tokenizer *t, int byte);
/* SentencePiece-style: 1 if a "▁" is put before the text (normalizer Prepend, or Metaspace prepending). */
int moec_tokenizer_sp_prefix_space(const moec_tokenizer *t);
/* moec_tokenizer_load_json on a tokenizer.json already in memory (text[0..len), need not be NUL-terminated);
 * origin names it in messages. */
moec_status moec_tokenizer_load_json_text(moec_tokenizer **out, const char *text, size_t len, const char *origin);

/* The pre-tokenizer alone, exposed for tests: end offsets of the consecutive pre-tokens (special tokens are
 * not treated specially here) of text[0..len); *ends is malloc'ed, caller frees. */
moec_status moec_tokenizer_pretokenize(const char *text, size_t len, size_t **ends, int64_t *n);

#endif
