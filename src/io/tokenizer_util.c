/* tokenizer_util.c — the tokenizer's building blocks: two open-addressing hash maps, the GPT-2 byte-level
 * alphabet, UTF-8 decoding, codepoint classes and the GPT-2 pre-tokenizer (see tokenizer_internal.h). */
#include "io/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------------------ */
/* uint64 -> int64 map, linear probing, grown at 1/2 load. */

static size_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return (size_t)x;
}

int64_t moec_tok_u64map_get(const moec_tok_u64map *m, uint64_t key, int64_t missing) {
    if (m->cap == 0) return missing;
    size_t mask = m->cap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return m->vals[i];
        if (m->keys[i] == MOEC_TOK_EMPTY_KEY) return missing;
    }
}

static moec_status u64map_grow(moec_tok_u64map *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = malloc(cap * sizeof *keys);
    int64_t *vals = malloc(cap * sizeof *vals);
    if (!keys || !vals) {
        free(keys); free(vals);
        return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory growing a hash map to %zu slots", cap);
    }
    memset(keys, 0xff, cap * sizeof *keys); /* all MOEC_TOK_EMPTY_KEY */
    for (size_t j = 0; j < m->cap; j++) {
        if (m->keys[j] == MOEC_TOK_EMPTY_KEY) continue;
        size_t i = mix64(m->keys[j]) & (cap - 1);
        while (keys[i] != MOEC_TOK_EMPTY_KEY) i = (i + 1) & (cap - 1);
        keys[i] = m->keys[j];
        vals[i] = m->vals[j];
    }
    free(m->keys); free(m->vals);
    m->keys = keys; m->vals = vals; m->cap = cap;
    return MOEC_OK;
}

moec_status moec_tok_u64map_put(moec_tok_u64map *m, uint64_t key, int64_t val) {
    if ((m->n + 1) * 2 > m->cap) MOEC_TRY(u64map_grow(m));
    size_t mask = m->cap - 1;
    size_t i = mix64(key) & mask;
    while (m->keys[i] != MOEC_TOK_EMPTY_KEY && m->keys[i] != key) i = (i + 1) & mask;
    if (m->keys[i] == MOEC_TOK_EMPTY_KEY) { m->keys[i] = key; m->n++; }
    m->vals[i] = val;
    return MOEC_OK;
}

void moec_tok_u64map_free(moec_tok_u64map *m) {
    free(m->keys); free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* byte string -> int64 map. FNV-1a hash: simple, and word-sized keys keep it fast enough (MB/s). */

uint64_t moec_tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)s[i]; h *= 0x100000001b3ULL; }
    return h;
}

static size_t strmap_find(const moec_tok_strmap *m, const char *s, size_t n, uint64_t h) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)(h ^ (h >> 29)) & mask;
    for (;; i = (i + 1) & mask) {
        if (m->off[i] < 0) return i;
        if (m->hash[i] == h && m->len[i] == n && memcmp(m->arena + m->off[i], s, n) == 0) return i;
    }
}

int64_t moec_tok_strmap_get(const moec_tok_strmap *m, const char *s, size_t n, int64_t missing) {
    if (m->cap == 0) return missing;
    size_t i = strmap_find(m, s, n, moec_tok_hash_bytes(s, n));
    return m->off[i] < 0 ? missing : m->val[i];
}

static moec_status strmap_grow(moec_tok_strmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    moec_tok_strmap g = *m;
    g.cap = cap;
    g.hash = malloc(cap * sizeof *g.hash);
    g.off = malloc(cap * sizeof *g.off);
    g.len = malloc(cap * sizeof *g.len);
    g.val = malloc(cap * sizeof *g.val);
    if (!g.hash || !g.off || !g.len || !g.val) {
        free(g.hash); free(g.off); free(g.len); free(g.val);
        return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory growing a string map to %zu slots", cap);
    }
    for (size_t i = 0; i < cap; i++) g.off[i] = -1;
    for (size_t j = 0; j < m->cap; j++) {
        if (m->off[j] < 0) continue;
        size_t i = (size_t)(m->hash[j] ^ (m->hash[j] >> 29)) & (cap - 1);
        while (g.off[i] >= 0) i = (i + 1) & (cap - 1);
        g.hash[i] = m->hash[j]; g.off[i] = m->off[j]; g.len[i] = m->len[j]; g.val[i] = m->val[j];
    }
    free(m->hash); free(m->off); free(m->len); free(m->val);
    *m = g;
    return MOEC_OK;
}

moec_status moec_tok_strmap_put(moec_tok_strmap *m, const char *s, size_t n, int64_t val, int64_t *slot_val,
                                int *inserted) {
    if (n > UINT32_MAX) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer: string of %zu bytes is too long for a key", n);
    if ((m->n + 1) * 2 > m->cap) MOEC_TRY(strmap_grow(m));
    uint64_t h = moec_tok_hash_bytes(s, n);
    size_t i = strmap_find(m, s, n, h);
    if (m->off[i] >= 0) {
        if (slot_val) *slot_val = m->val[i];
        if (inserted) *inserted = 0;
        return MOEC_OK;
    }
    if (m->arena_len + n > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 4096;
        while (cap < m->arena_len + n) cap *= 2;
        char *a = realloc(m->arena, cap);
        if (!a) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory growing a string arena to %zu bytes", cap);
        m->arena = a; m->arena_cap = cap;
    }
    if (n) memcpy(m->arena + m->arena_len, s, n);
    m->hash[i] = h; m->off[i] = (int64_t)m->arena_len; m->len[i] = (uint32_t)n; m->val[i] = val;
    m->arena_len += n;
    m->n++;
    if (slot_val) *slot_val = val;
    if (inserted) *inserted = 1;
    return MOEC_OK;
}

void moec_tok_strmap_set(moec_tok_strmap *m, const char *s, size_t n, int64_t val) {
    if (m->cap == 0) return;
    size_t i = strmap_find(m, s, n, moec_tok_hash_bytes(s, n));
    if (m->off[i] >= 0) m->val[i] = val;
}

void moec_tok_strmap_clear(moec_tok_strmap *m) {
    for (size_t i = 0; i < m->cap; i++) m->off[i] = -1;
    m->n = 0;
    m->arena_len = 0;
}

void moec_tok_strmap_free(moec_tok_strmap *m) {
    free(m->hash); free(m->off); free(m->len); free(m->val); free(m->arena);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* GPT-2's byte-level alphabet. Bytes that are printable and not whitespace ('!'..'~', 0xA1..0xAC, 0xAE..0xFF)
 * stand for themselves (as Latin-1 codepoints); the other 68 bytes, in increasing order, are given the
 * codepoints 256, 257, ... so every token of the vocabulary is a string of visible characters (space is 'Ġ'
 * U+0120, newline 'Ċ' U+010A). */

static int byte_is_self(uint8_t b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

uint32_t moec_tok_byte_to_cp(uint8_t b) {
    if (byte_is_self(b)) return b;
    uint32_t k = 0; /* rank of b among the non-self bytes */
    for (int c = 0; c < b; c++) k += !byte_is_self((uint8_t)c);
    return 256 + k;
}

int moec_tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_self((uint8_t)cp) ? (int)cp : -1;
    uint32_t k = cp - 256;
    for (int c = 0; c < 256; c++) {
        if (byte_is_self((uint8_t)c)) continue;
        if (k == 0) return c;
        k--;
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* UTF-8 and classes. */

int32_t moec_tok_utf8_decode(const uint8_t *s, size_t n, size_t i, size_t *adv) {
    uint8_t c = s[i];
    *adv = 1;
    if (c < 0x80) return c;
    size_t len;
    int32_t cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return -1;
    if (i + len > n) return -1;
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8 (a str never holds them). */
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *adv = len;
    return cp;
}

int moec_tok_class(int32_t cp) {
    if (cp < 0) return MOEC_TOK_OTHER;
    if (cp < 0x80) { /* fast path for ASCII */
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return MOEC_TOK_LETTER;
        if (cp >= '0' && cp <= '9') return MOEC_TOK_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return MOEC_TOK_SPACE;
        return MOEC_TOK_OTHER;
    }
    /* \s is Unicode White_Space (what Oniguruma, the regex engine of Hugging Face tokenizers, uses). */
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
        cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return MOEC_TOK_SPACE;
    size_t lo = 0, hi = moec_tok_n_class_ranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uint32_t)cp < moec_tok_class_ranges[mid][0]) hi = mid;
        else if ((uint32_t)cp > moec_tok_class_ranges[mid][1]) lo = mid + 1;
        else return (int)moec_tok_class_ranges[mid][2];
    }
    return MOEC_TOK_OTHER;
}

static int class_at(const uint8_t *s, size_t n, size_t i, size_t *adv) {
    return moec_tok_class(moec_tok_utf8_decode(s, n, i, adv));
}

/* The GPT-2 rule, alternative by alternative, as the regex engine tries them at position i:
 *   1. 's 't 're 've 'm 'll 'd  (lower case only, as in GPT-2)
 *   2-4. an optional single ' ' then a run of letters / of numbers / of "other" (not space, letter or number)
 *   5. \s+(?!\S): a whitespace run, minus its last character if a non-space follows (that character then
 *      becomes the optional ' ' of the next pre-token, or a pre-token of its own) — unless the run is one
 *      character long, when
 *   6. \s+ takes the whole run. */
size_t moec_tok_pretoken_end(const uint8_t *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        uint8_t c1 = s[i + 1];
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if (i + 2 < n) {
            uint8_t c2 = s[i + 2];
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
        }
    }
    size_t adv;
    size_t k = (s[i] == ' ' && i + 1 < n) ? i + 1 : i;
    int cls = class_at(s, n, k, &adv);
    if (cls != MOEC_TOK_SPACE) {
        size_t j = k + adv;
        while (j < n && class_at(s, n, j, &adv) == cls) j += adv;
        return j;
    }
    /* k == i + 1 with a space there means s[i] == ' ' is followed by whitespace: fall through from i. */
    size_t last = i, j = i;
    while (j < n && class_at(s, n, j, &adv) == MOEC_TOK_SPACE) { last = j; j += adv; }
    if (j == n || last == i) return j;
    return last;
}

moec_status moec_tokenizer_pretokenize(const char *text, size_t len, size_t **ends, int64_t *n) {
    *ends = NULL;
    *n = 0;
    size_t cap = 64, cnt = 0;
    size_t *e = malloc(cap * sizeof *e);
    if (!e) return MOEC_ERR(MOEC_ERR_NOMEM, "pretokenize: out of memory");
    for (size_t i = 0; i < len;) {
        size_t j = moec_tok_pretoken_end((const uint8_t *)text, len, i);
        if (cnt == cap) {
            size_t *g = realloc(e, 2 * cap * sizeof *g);
            if (!g) { free(e); return MOEC_ERR(MOEC_ERR_NOMEM, "pretokenize: out of memory"); }
            e = g; cap *= 2;
        }
        e[cnt++] = j;
        i = j;
    }
    *ends = e;
    *n = (int64_t)cnt;
    return MOEC_OK;
}
