/* tokenizer_access.c — read-only views of a tokenizer for exporters (GGUF): its kind, each token's
 * tokenizer.json spelling, special flags, merges, unk and byte-fallback pieces; and loading a tokenizer.json
 * held in memory (importers build one from another format's arrays). */
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer.h"
#include "io/tokenizer_internal.h"

moec_tokenizer_kind moec_tokenizer_kind_of(const moec_tokenizer *t) {
    if (t->sp) return MOEC_TOK_KIND_SENTENCEPIECE;
    if (t->pretok == MOEC_TOK_PRETOK_LLAMA3) return MOEC_TOK_KIND_LLAMA3;
    if (t->pretok == MOEC_TOK_PRETOK_QWEN2) return MOEC_TOK_KIND_QWEN2;
    return MOEC_TOK_KIND_GPT2;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    o[0] = (char)(0xe0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

char *moec_tokenizer_spelling(const moec_tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    const char *raw = t->blob + t->tok_off[id];
    size_t n = (size_t)t->tok_len[id];
    /* Special tokens and SentencePiece pieces are stored as spelled; byte-level tokens as raw bytes, spelled
     * with GPT-2's byte -> codepoint alphabet (every codepoint of it is below U+0800: 2 UTF-8 bytes at most). */
    int verbatim = t->sp || t->is_special[id];
    char *s = malloc(verbatim ? n + 1 : 2 * n + 1);
    if (!s) return NULL;
    size_t k = 0;
    if (verbatim) memcpy(s, raw, n), k = n;
    else
        for (size_t i = 0; i < n; i++) k += put_utf8(s + k, moec_tok_byte_to_cp((uint8_t)raw[i]));
    s[k] = '\0';
    if (len) *len = k;
    return s;
}

int moec_tokenizer_is_special(const moec_tokenizer *t, int id) {
    return id >= 0 && id < t->n_vocab && t->is_special[id];
}
int moec_tokenizer_n_merges(const moec_tokenizer *t) { return t->n_merges; }
void moec_tokenizer_merge(const moec_tokenizer *t, int rank, int32_t *left, int32_t *right, int32_t *result) {
    *left = t->merges[3 * rank];
    *right = t->merges[3 * rank + 1];
    if (result) *result = t->merges[3 * rank + 2];
}
int moec_tokenizer_unk_id(const moec_tokenizer *t) { return t->sp ? t->unk_id : -1; }
int moec_tokenizer_byte_piece(const moec_tokenizer *t, int byte) {
    return t->sp && byte >= 0 && byte < 256 ? t->byte_tok[byte] : -1;
}

int moec_tokenizer_sp_prefix_space(const moec_tokenizer *t) {
    if (!t->sp) return 0;
    for (int i = 0; i < t->n_norm; i++)
        if (t->norm[i].type == MOEC_TOK_STEP_PREPEND) return 1;
    return t->meta && t->meta_prepend != MOEC_TOK_PREPEND_NEVER;
}
