/* tokenizer.c — the tokenizer object, encoding and decoding (training is in tokenizer_train.c, tokenizer.json in
 * tokenizer_json.c, hash maps and the pre-tokenizer in tokenizer_util.c). See tokenizer.h for the contract.
 *
 * Encoding speed comes from two things: each distinct pre-token ("word") is merged once per encode call and then
 * served from a per-call cache (a text's words repeat heavily), and merging a word uses the rank hash map and a
 * small heap, O(w log w) in the word's length w, so even a megabyte-long run of letters is not quadratic.
 */
#include "io/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

moec_status moec_tok_alloc(moec_tokenizer **out, int32_t cap_vocab) {
    *out = NULL;
    moec_tokenizer *t = calloc(1, sizeof *t);
    if (cap_vocab < 16) cap_vocab = 16;
    if (t) {
        t->tok_off = malloc((size_t)cap_vocab * sizeof *t->tok_off);
        t->tok_len = malloc((size_t)cap_vocab * sizeof *t->tok_len);
        t->is_special = malloc((size_t)cap_vocab);
    }
    if (!t || !t->tok_off || !t->tok_len || !t->is_special) {
        moec_tokenizer_free(t);
        return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory allocating %d ids", (int)cap_vocab);
    }
    t->tok_cap = cap_vocab;
    for (int b = 0; b < 256; b++) t->byte_id[b] = t->byte_tok[b] = -1;
    t->bos_id = t->unk_id = -1;
    *out = t;
    return MOEC_OK;
}

/* Grow *p (elements of `size` bytes, *cap of them) to hold at least need. */
static int grow(void **p, int32_t *cap, int32_t need, size_t size) {
    if (need <= *cap) return 1;
    int64_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    if (c > INT32_MAX) c = INT32_MAX;
    void *q = realloc(*p, (size_t)c * size);
    if (!q) return 0;
    *p = q;
    *cap = (int32_t)c;
    return 1;
}

moec_status moec_tok_add_token(moec_tokenizer *t, const char *bytes, size_t n, int special) {
    if (t->n_vocab == INT32_MAX) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer: more than %d ids", INT32_MAX);
    int32_t need = t->n_vocab + 1, c1 = t->tok_cap, c2 = t->tok_cap, c3 = t->tok_cap;
    if (!grow((void **)&t->tok_off, &c1, need, sizeof *t->tok_off) ||
        !grow((void **)&t->tok_len, &c2, need, sizeof *t->tok_len) ||
        !grow((void **)&t->is_special, &c3, need, 1))
        return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory adding id %d", (int)t->n_vocab);
    t->tok_cap = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
    if (n > (size_t)INT32_MAX) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer: token of %zu bytes is too long", n);
    if (t->blob_len + n > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 4096;
        while (cap < t->blob_len + n) cap *= 2;
        char *b = realloc(t->blob, cap);
        if (!b) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory growing token bytes to %zu", cap);
        t->blob = b;
        t->blob_cap = cap;
    }
    int32_t id = t->n_vocab;
    if (n) memcpy(t->blob + t->blob_len, bytes, n);
    t->tok_off[id] = (int64_t)t->blob_len;
    t->tok_len[id] = (int32_t)n;
    t->is_special[id] = (uint8_t)(special != 0);
    t->blob_len += n;
    if (special) {
        if (!grow((void **)&t->special_ids, &t->special_cap, t->n_special + 1, sizeof *t->special_ids))
            return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory adding special token %d", (int)id);
        t->special_ids[t->n_special++] = id;
    } else {
        MOEC_TRY(moec_tok_strmap_put(&t->regular, bytes, n, id, NULL, NULL));
        if (n == 1 && t->byte_id[(uint8_t)bytes[0]] < 0) t->byte_id[(uint8_t)bytes[0]] = id;
    }
    t->n_vocab++;
    return MOEC_OK;
}

moec_status moec_tok_add_merge(moec_tokenizer *t, int32_t a, int32_t b, int32_t r) {
    if (!grow((void **)&t->merges, &t->merge_cap, 3 * (t->n_merges + 1), sizeof *t->merges))
        return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory adding merge %d", (int)t->n_merges);
    int32_t *m = t->merges + 3 * (size_t)t->n_merges;
    m[0] = a; m[1] = b; m[2] = r;
    MOEC_TRY(moec_tok_u64map_put(&t->ranks, moec_tok_pair_key(a, b), ((int64_t)t->n_merges << 32) | (uint32_t)r));
    t->n_merges++;
    return MOEC_OK;
}

void moec_tokenizer_free(moec_tokenizer *t) {
    if (!t) return;
    free(t->blob); free(t->tok_off); free(t->tok_len); free(t->is_special); free(t->special_ids); free(t->merges);
    moec_tok_strmap_free(&t->regular);
    moec_tok_u64map_free(&t->ranks);
    free(t);
}

int moec_tokenizer_vocab_size(const moec_tokenizer *t) { return t->n_vocab; }
int moec_tokenizer_bos_id(const moec_tokenizer *t) { return t->bos_id; }

int moec_tokenizer_token_id(const moec_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int32_t i = 0; i < t->n_special; i++) {
        int32_t id = t->special_ids[i];
        if ((size_t)t->tok_len[id] == n && memcmp(t->blob + t->tok_off[id], token, n) == 0) return id;
    }
    return (int)moec_tok_strmap_get(&t->regular, token, n, -1);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* BPE on one word, exactly as Hugging Face's Word::merge_all: a min-heap of candidate merges ordered by (rank,
 * position); pop the best, skip it if stale (its left symbol was merged away, or the pair there no longer merges
 * to the same token), else merge and push the two pairs the new symbol forms with its neighbours. */

typedef moec_tok_bpe_cand bpe_cand;

static int cand_less(bpe_cand x, bpe_cand y) { return x.rank != y.rank ? x.rank < y.rank : x.pos < y.pos; }

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0 && cand_less(c, h[(i - 1) / 2])) { h[i] = h[(i - 1) / 2]; i = (i - 1) / 2; }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static void push_pair(const moec_tokenizer *t, bpe_cand *h, size_t *nh, int32_t pos, int32_t a, int32_t b) {
    int64_t v = moec_tok_u64map_get(&t->ranks, moec_tok_pair_key(a, b), -1);
    if (v >= 0) heap_push(h, nh, (bpe_cand){(int32_t)(v >> 32), pos, (int32_t)(v & 0xffffffff)});
}

void moec_tok_bpe(const moec_tokenizer *t, int32_t *sym, size_t n, size_t *n_out, int32_t *links, bpe_cand *heap) {
    int32_t *prev = links, *next = links + n;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, heap, &nh, (int32_t)i, sym[i], sym[i + 1]);
    while (nh > 0) {
        bpe_cand c = heap_pop(heap, &nh);
        int32_t p = c.pos;
        if (sym[p] < 0 || next[p] < 0) continue;
        int32_t q = next[p];
        int64_t v = moec_tok_u64map_get(&t->ranks, moec_tok_pair_key(sym[p], sym[q]), -1);
        if (v < 0 || (int32_t)(v & 0xffffffff) != c.result) continue;
        sym[p] = c.result;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0) push_pair(t, heap, &nh, prev[p], sym[prev[p]], sym[p]);
        if (next[p] >= 0) push_pair(t, heap, &nh, p, sym[p], sym[next[p]]);
    }
    size_t k = 0; /* compact in place: k <= i always */
    for (int32_t i = 0; i >= 0; i = next[i]) sym[k++] = sym[i];
    *n_out = k;
}

/* Merge word w[0..n) (n >= 1) into ids written to out[0..*n_out). scratch holds >= 6n int32 (symbols, links)
 * and heap holds >= 3n candidates (n initial pairs, at most two more per merge). */
static void bpe_word(const moec_tokenizer *t, const uint8_t *w, size_t n, int32_t *out, size_t *n_out,
                     int32_t *scratch, bpe_cand *heap) {
    for (size_t i = 0; i < n; i++) scratch[i] = t->byte_id[w[i]];
    moec_tok_bpe(t, scratch, n, n_out, scratch + n, heap);
    memcpy(out, scratch, *n_out * sizeof *out);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Encoding. */

/* Growable output plus the per-call word cache (word bytes -> offset into cache_ids << 16 | count). */
typedef struct {
    int32_t *ids;
    size_t n, cap;
    moec_tok_strmap cache;
    int32_t *cache_ids;
    size_t cache_n, cache_cap;
    int32_t *scratch;     /* for bpe_word */
    bpe_cand *heap;
    size_t scratch_cap;   /* words of this many bytes fit scratch/heap */
} encode_state;

/* Words longer than this are merged every time rather than cached (bounds the cache's memory per entry). */
#define MOEC_TOK_CACHE_MAX_WORD 256
/* The cache is emptied when its token arena reaches this size, bounding memory on huge, diverse inputs. */
#define MOEC_TOK_CACHE_MAX_IDS ((size_t)1 << 22)

static moec_status reserve_ids(int32_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return MOEC_OK;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    int32_t *q = realloc(*p, c * sizeof *q);
    if (!q) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory for %zu token ids", c);
    *p = q;
    *cap = c;
    return MOEC_OK;
}

static moec_status encode_word(const moec_tokenizer *t, encode_state *st, const uint8_t *w, size_t n) {
    if (t->ignore_merges) {
        int64_t id = moec_tok_strmap_get(&t->regular, (const char *)w, n, -1);
        if (id >= 0) {
            MOEC_TRY(reserve_ids(&st->ids, &st->cap, st->n + 1));
            st->ids[st->n++] = (int32_t)id;
            return MOEC_OK;
        }
    }
    int cacheable = n <= MOEC_TOK_CACHE_MAX_WORD;
    if (cacheable) {
        int64_t v = moec_tok_strmap_get(&st->cache, (const char *)w, n, -1);
        if (v >= 0) {
            size_t off = (size_t)(v >> 16), cnt = (size_t)(v & 0xffff);
            MOEC_TRY(reserve_ids(&st->ids, &st->cap, st->n + cnt));
            memcpy(st->ids + st->n, st->cache_ids + off, cnt * sizeof *st->ids);
            st->n += cnt;
            return MOEC_OK;
        }
    }
    if (n > st->scratch_cap) {
        size_t c = st->scratch_cap ? st->scratch_cap : 64;
        while (c < n) c *= 2;
        free(st->scratch);
        free(st->heap);
        st->scratch = malloc(6 * c * sizeof *st->scratch);
        st->heap = malloc(3 * c * sizeof *st->heap);
        st->scratch_cap = st->scratch && st->heap ? c : 0;
        if (!st->scratch_cap) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory merging a %zu-byte word", n);
    }
    MOEC_TRY(reserve_ids(&st->ids, &st->cap, st->n + n));
    size_t cnt;
    bpe_word(t, w, n, st->ids + st->n, &cnt, st->scratch, st->heap);
    if (cacheable) {
        if (st->cache_n + cnt > MOEC_TOK_CACHE_MAX_IDS) {
            moec_tok_strmap_clear(&st->cache);
            st->cache_n = 0;
        }
        MOEC_TRY(reserve_ids(&st->cache_ids, &st->cache_cap, st->cache_n + cnt));
        memcpy(st->cache_ids + st->cache_n, st->ids + st->n, cnt * sizeof *st->ids);
        MOEC_TRY(moec_tok_strmap_put(&st->cache, (const char *)w, n, (int64_t)(st->cache_n << 16 | cnt), NULL, NULL));
        st->cache_n += cnt;
    }
    st->n += cnt;
    return MOEC_OK;
}

static moec_status encode_span(const moec_tokenizer *t, encode_state *st, const uint8_t *s, size_t n, int at_start) {
    if (t->sp) return moec_tok_sp_encode_span(t, s, n, at_start, &st->ids, &st->n, &st->cap);
    for (size_t i = 0; i < n;) {
        size_t j = t->pretok ? moec_tok_pretoken_end_split(t->pretok, s, n, i) : moec_tok_pretoken_end(s, n, i);
        MOEC_TRY(encode_word(t, st, s + i, j - i));
        i = j;
    }
    return MOEC_OK;
}

/* Leftmost-longest occurrence of a special token in s[pos..n), as Hugging Face's added-token matcher finds it.
 * next_at[k] caches where special k next occurs (SIZE_MAX: nowhere), so each special's occurrences are searched
 * for once per call, not once per match. Returns the index into t->special_ids, or -1. */
static int32_t next_special(const moec_tokenizer *t, const uint8_t *s, size_t n, size_t pos, size_t *next_at,
                            size_t *where) {
    int32_t best = -1;
    for (int32_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special_ids[k];
        size_t len = (size_t)t->tok_len[id];
        if (next_at[k] != SIZE_MAX && next_at[k] < pos) {
            const void *hit = memmem(s + pos, n - pos, t->blob + t->tok_off[id], len);
            next_at[k] = hit ? (size_t)((const uint8_t *)hit - s) : SIZE_MAX;
        }
        if (next_at[k] == SIZE_MAX) continue;
        if (best < 0 || next_at[k] < *where ||
            (next_at[k] == *where && len > (size_t)t->tok_len[t->special_ids[best]])) {
            best = k;
            *where = next_at[k];
        }
    }
    return best;
}

moec_status moec_tokenizer_encode(const moec_tokenizer *t, const char *text, size_t len, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_encode: NULL text of length %zu", len);
    for (int b = 0; !t->sp && b < 256; b++)
        if (t->byte_id[b] < 0) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_encode: byte 0x%02x has no token", b);
    encode_state st = {0};
    size_t *next_at = calloc((size_t)t->n_special + 1, sizeof *next_at);
    moec_status s = next_at ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_encode: out of memory");
    const uint8_t *u = (const uint8_t *)text;
    /* First occurrence of each special; next_special searches again only once pos has passed it. */
    for (int32_t k = 0; next_at && k < t->n_special; k++) {
        int32_t id = t->special_ids[k];
        const void *hit = len ? memmem(u, len, t->blob + t->tok_off[id], (size_t)t->tok_len[id]) : NULL;
        next_at[k] = hit ? (size_t)((const uint8_t *)hit - u) : SIZE_MAX;
    }
    size_t pos = 0;
    while (s == MOEC_OK && pos < len) {
        size_t where = len;
        int32_t k = next_special(t, u, len, pos, next_at, &where);
        s = encode_span(t, &st, u + pos, (k >= 0 ? where : len) - pos, pos == 0);
        if (s != MOEC_OK || k < 0) break;
        s = reserve_ids(&st.ids, &st.cap, st.n + 1);
        if (s != MOEC_OK) break;
        int32_t id = t->special_ids[k];
        st.ids[st.n++] = id;
        pos = where + (size_t)t->tok_len[id];
    }
    free(next_at);
    free(st.scratch);
    free(st.heap);
    free(st.cache_ids);
    moec_tok_strmap_free(&st.cache);
    if (s != MOEC_OK) {
        free(st.ids);
        return s;
    }
    if (!st.ids) st.ids = malloc(sizeof *st.ids); /* a valid pointer even for empty text */
    if (!st.ids) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_encode: out of memory");
    *ids = st.ids;
    *n = (int64_t)st.n;
    return MOEC_OK;
}

moec_status moec_tokenizer_decode(const moec_tokenizer *t, const int32_t *ids, int64_t n, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (n < 0) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_decode: negative count %lld", (long long)n);
    if (t->sp) return moec_tok_sp_decode(t, ids, n, text, len);
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_decode: id %d at position %lld is outside the vocabulary [0, %d)",
                            (int)ids[i], (long long)i, (int)t->n_vocab);
        total += (size_t)t->tok_len[ids[i]];
    }
    char *out = malloc(total + 1);
    if (!out) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_decode: out of memory for %zu bytes", total + 1);
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        memcpy(out + k, t->blob + t->tok_off[ids[i]], (size_t)t->tok_len[ids[i]]);
        k += (size_t)t->tok_len[ids[i]];
    }
    out[k] = '\0';
    *text = out;
    *len = k;
    return MOEC_OK;
}
