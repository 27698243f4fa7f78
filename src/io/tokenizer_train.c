/* tokenizer_train.c — learning a byte-level BPE vocabulary from a corpus (moec_tokenizer_train).
 *
 * The corpus is split into pre-tokens exactly as encoding splits it, and only the distinct pre-tokens ("words")
 * with their counts are kept: a few MB of English has tens of thousands of distinct words, so every later step
 * works on that small table, never on the corpus again. Each merge step:
 *   1. takes the most frequent adjacent pair (ties: smallest (left id, right id), as Hugging Face's trainer does)
 *      from a max-heap whose entries may be stale — an entry whose count no longer matches the pair's current
 *      count is re-pushed with the current count (counts only drop between pushes, so the true maximum is
 *      never missed);
 *   2. visits only the words that contain the pair (an index pair -> words, appended to as new pairs appear),
 *      removes each such word's pair counts, merges it left to right, and adds its new pair counts back.
 * Cost per merge is proportional to the words touched, not the corpus.
 */
#include "io/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct { int64_t count; int32_t a, b; } pair_entry;

/* One adjacent pair of symbols seen in the corpus. */
typedef struct {
    int32_t a, b;
    int64_t count;   /* occurrences, weighted by word counts */
    int32_t *words;  /* words that contain (or once contained) the pair; no immediate repeats */
    int32_t n_words, cap_words;
    int32_t stamp;   /* last merge step that pushed this pair on the heap (avoids duplicate pushes) */
} pair_info;

typedef struct {
    /* words: symbols of word w are sym[word_off[w] .. word_off[w] + word_len[w]) */
    int32_t *sym;
    int64_t *word_off, *word_count;
    int32_t *word_len;
    int32_t n_words;
    moec_tok_u64map pair_index; /* pair key -> index into pairs */
    pair_info *pairs;
    int32_t n_pairs, pairs_cap;
    /* max-heap of (count, pair) */
    pair_entry *heap;
    size_t heap_n, heap_cap;
} trainer;

static int entry_greater(pair_entry x, pair_entry y) {
    if (x.count != y.count) return x.count > y.count;
    return x.a != y.a ? x.a < y.a : x.b < y.b;
}

static moec_status heap_push(trainer *tr, pair_entry e) {
    if (tr->heap_n == tr->heap_cap) {
        size_t c = tr->heap_cap ? tr->heap_cap * 2 : 1024;
        pair_entry *h = realloc(tr->heap, c * sizeof *h);
        if (!h) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_train: out of memory for a %zu-entry heap", c);
        tr->heap = h;
        tr->heap_cap = c;
    }
    size_t i = tr->heap_n++;
    while (i > 0 && entry_greater(e, tr->heap[(i - 1) / 2])) { tr->heap[i] = tr->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    tr->heap[i] = e;
    return MOEC_OK;
}

static pair_entry heap_pop(trainer *tr) {
    pair_entry *h = tr->heap, top = h[0], last = h[--tr->heap_n];
    size_t i = 0, n = tr->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && entry_greater(h[c + 1], h[c])) c++;
        if (!entry_greater(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

/* Add delta to pair (a, b)'s count, creating it if needed; if note_word, record that word w contains it.
 * *idx_out (optional) receives the pair's index. */
static moec_status pair_add(trainer *tr, int32_t a, int32_t b, int64_t delta, int32_t w, int note_word,
                            int32_t *idx_out) {
    uint64_t key = moec_tok_pair_key(a, b);
    int64_t idx = moec_tok_u64map_get(&tr->pair_index, key, -1);
    if (idx < 0) {
        if (tr->n_pairs == tr->pairs_cap) {
            int32_t c = tr->pairs_cap ? tr->pairs_cap * 2 : 4096;
            pair_info *p = realloc(tr->pairs, (size_t)c * sizeof *p);
            if (!p) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_train: out of memory for %d pairs", (int)c);
            tr->pairs = p;
            tr->pairs_cap = c;
        }
        idx = tr->n_pairs++;
        tr->pairs[idx] = (pair_info){.a = a, .b = b, .stamp = -1};
        MOEC_TRY(moec_tok_u64map_put(&tr->pair_index, key, idx));
    }
    pair_info *p = &tr->pairs[idx];
    p->count += delta;
    if (note_word && (p->n_words == 0 || p->words[p->n_words - 1] != w)) {
        if (p->n_words == p->cap_words) {
            int32_t c = p->cap_words ? p->cap_words * 2 : 4;
            int32_t *l = realloc(p->words, (size_t)c * sizeof *l);
            if (!l) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_train: out of memory for a pair's word list");
            p->words = l;
            p->cap_words = c;
        }
        p->words[p->n_words++] = w;
    }
    if (idx_out) *idx_out = (int32_t)idx;
    return MOEC_OK;
}

static void trainer_free(trainer *tr) {
    free(tr->sym); free(tr->word_off); free(tr->word_count); free(tr->word_len);
    moec_tok_u64map_free(&tr->pair_index);
    for (int32_t i = 0; i < tr->n_pairs; i++) free(tr->pairs[i].words);
    free(tr->pairs); free(tr->heap);
}

/* Count the corpus's distinct pre-tokens (skipping special-token occurrences) and lay out their byte symbols. */
static moec_status collect_words(trainer *tr, const uint8_t *s, size_t len, const char *const *special, int n_special) {
    moec_tok_strmap words = {0};
    int64_t *counts = NULL;
    int32_t cap = 0;
    moec_status st = MOEC_OK;
    size_t pos = 0;
    while (st == MOEC_OK && pos < len) {
        /* leftmost-longest special occurrence, as encoding does */
        size_t stop = len, slen = 0;
        for (int k = 0; k < n_special; k++) {
            size_t kl = strlen(special[k]);
            /* search only up to where a hit could still beat the best so far */
            size_t end = stop < len && stop + kl < len ? stop + kl : len;
            const uint8_t *hit = memmem(s + pos, end - pos, special[k], kl);
            if (!hit) continue;
            size_t at = (size_t)(hit - s);
            if (at < stop || (at == stop && kl > slen)) { stop = at; slen = kl; }
        }
        for (size_t i = pos; st == MOEC_OK && i < stop;) {
            size_t j = moec_tok_pretoken_end(s, stop, i);
            int64_t w;
            int inserted;
            st = moec_tok_strmap_put(&words, (const char *)s + i, j - i, (int64_t)words.n, &w, &inserted);
            if (st != MOEC_OK) break;
            if (inserted) {
                if (w >= INT32_MAX) { st = MOEC_ERR(MOEC_ERR_ARG, "tokenizer_train: too many distinct words"); break; }
                if ((int32_t)w == cap) {
                    cap = cap ? cap * 2 : 4096;
                    int64_t *c = realloc(counts, (size_t)cap * sizeof *c);
                    if (!c) { st = MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_train: out of memory counting words"); break; }
                    counts = c;
                }
                counts[w] = 0;
            }
            counts[w]++;
            i = j;
        }
        pos = stop + slen;
    }
    int32_t n = (int32_t)words.n;
    if (st == MOEC_OK) {
        tr->n_words = n;
        tr->sym = malloc((words.arena_len + 1) * sizeof *tr->sym);
        tr->word_off = malloc(((size_t)n + 1) * sizeof *tr->word_off);
        tr->word_len = malloc(((size_t)n + 1) * sizeof *tr->word_len);
        tr->word_count = counts;
        counts = NULL;
        if (!tr->sym || !tr->word_off || !tr->word_len)
            st = MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_train: out of memory for %d words", (int)n);
    }
    /* The map's arena already holds every word's bytes in insertion (= index) order; ids 0..255 are the bytes. */
    for (size_t slot = 0; st == MOEC_OK && slot < words.cap; slot++) {
        if (words.off[slot] < 0) continue;
        int64_t w = words.val[slot];
        tr->word_off[w] = words.off[slot];
        tr->word_len[w] = (int32_t)words.len[slot];
        for (uint32_t k = 0; k < words.len[slot]; k++)
            tr->sym[words.off[slot] + k] = (uint8_t)words.arena[words.off[slot] + k];
    }
    free(counts);
    moec_tok_strmap_free(&words);
    return st;
}

static moec_status check_specials(const char *const *special, int n_special) {
    for (int k = 0; k < n_special; k++) {
        if (!special[k] || !special[k][0]) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_train: special token %d is empty", k);
        size_t n = strlen(special[k]), adv;
        for (size_t i = 0; i < n; i += adv)
            if (moec_tok_utf8_decode((const uint8_t *)special[k], n, i, &adv) < 0)
                return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_train: special token %d is not valid UTF-8", k);
        for (int j = 0; j < k; j++)
            if (strcmp(special[j], special[k]) == 0)
                return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_train: special token '%s' is listed twice", special[k]);
    }
    return MOEC_OK;
}

/* Merge pair pi = (a, b) into r in every word that contains it, keeping pair counts and the word index current.
 * step numbers the merge (for the heap-push stamps). */
static moec_status apply_merge(trainer *tr, int32_t pi, int32_t r, int32_t step) {
    int32_t a = tr->pairs[pi].a, b = tr->pairs[pi].b;
    int32_t *list = tr->pairs[pi].words, nl = tr->pairs[pi].n_words;
    /* (a, b) is never formed again (a merge only forms pairs containing its result), so its list is done with;
     * detach it because pair_add may move tr->pairs. */
    tr->pairs[pi].words = NULL;
    tr->pairs[pi].n_words = tr->pairs[pi].cap_words = 0;
    moec_status st = MOEC_OK;
    for (int32_t li = 0; st == MOEC_OK && li < nl; li++) {
        int32_t w = list[li];
        int32_t *s = tr->sym + tr->word_off[w], len = tr->word_len[w];
        int found = 0;
        for (int32_t i = 0; i + 1 < len && !found; i++) found = s[i] == a && s[i + 1] == b;
        if (!found) continue; /* a stale entry: an earlier merge took the pair away */
        int64_t c = tr->word_count[w];
        for (int32_t i = 0; st == MOEC_OK && i + 1 < len; i++) st = pair_add(tr, s[i], s[i + 1], -c, w, 0, NULL);
        int32_t j = 0;
        for (int32_t i = 0; i < len;) {
            if (i + 1 < len && s[i] == a && s[i + 1] == b) { s[j++] = r; i += 2; }
            else s[j++] = s[i++];
        }
        tr->word_len[w] = len = j;
        for (int32_t i = 0; st == MOEC_OK && i + 1 < len; i++)
            st = pair_add(tr, s[i], s[i + 1], c, w, s[i] == r || s[i + 1] == r, NULL);
    }
    /* Only pairs containing r can have grown; every other pair's count only fell, which the lazy heap allows.
     * Those pairs are found again through the words just merged. */
    for (int32_t li = 0; st == MOEC_OK && li < nl; li++) {
        int32_t w = list[li];
        int32_t *s = tr->sym + tr->word_off[w], len = tr->word_len[w];
        for (int32_t i = 0; st == MOEC_OK && i + 1 < len; i++) {
            if (s[i] != r && s[i + 1] != r) continue;
            int32_t idx = (int32_t)moec_tok_u64map_get(&tr->pair_index, moec_tok_pair_key(s[i], s[i + 1]), -1);
            pair_info *p = &tr->pairs[idx];
            if (p->stamp == step || p->count <= 0) continue;
            p->stamp = step;
            st = heap_push(tr, (pair_entry){p->count, p->a, p->b});
        }
    }
    free(list);
    return st;
}

moec_status moec_tokenizer_train(moec_tokenizer **out, const char *text, size_t len, int vocab_size,
                                 const char *const *special_tokens, int n_special) {
    *out = NULL;
    if (n_special < 0 || (n_special > 0 && !special_tokens))
        return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_train: bad special token list (n_special=%d)", n_special);
    if (vocab_size < 256 + n_special)
        return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_train: vocab_size %d is below 256 bytes + %d special tokens",
                        vocab_size, n_special);
    if (!text && len) return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_train: NULL text of length %zu", len);
    MOEC_TRY(check_specials(special_tokens, n_special));

    moec_tokenizer *t;
    MOEC_TRY(moec_tok_alloc(&t, vocab_size < 65536 ? vocab_size : 65536)); /* grows if the corpus allows more */
    trainer tr = {0};
    char *buf = NULL;
    moec_status st = MOEC_OK;
    for (int b = 0; b < 256 && st == MOEC_OK; b++) {
        char c = (char)b;
        st = moec_tok_add_token(t, &c, 1, 0);
    }
    if (st == MOEC_OK) st = collect_words(&tr, (const uint8_t *)text, len, special_tokens, n_special);
    for (int32_t w = 0; st == MOEC_OK && w < tr.n_words; w++) {
        int32_t *s = tr.sym + tr.word_off[w];
        for (int32_t i = 0; st == MOEC_OK && i + 1 < tr.word_len[w]; i++)
            st = pair_add(&tr, s[i], s[i + 1], tr.word_count[w], w, 1, NULL);
    }
    for (int32_t i = 0; st == MOEC_OK && i < tr.n_pairs; i++)
        st = heap_push(&tr, (pair_entry){tr.pairs[i].count, tr.pairs[i].a, tr.pairs[i].b});

    int32_t target = vocab_size - n_special;
    size_t buf_cap = 0;
    for (int32_t step = 0; st == MOEC_OK && t->n_vocab < target && tr.heap_n > 0; step++) {
        pair_entry e = heap_pop(&tr);
        int32_t pi = (int32_t)moec_tok_u64map_get(&tr.pair_index, moec_tok_pair_key(e.a, e.b), -1);
        int64_t now = tr.pairs[pi].count;
        if (now != e.count) { /* stale: re-queue with the current count */
            if (now > 0) st = heap_push(&tr, (pair_entry){now, e.a, e.b});
            continue;
        }
        if (now <= 0) continue;
        /* The new token's bytes; merges of different pairs can spell the same bytes ("a"+"bc", "ab"+"c"), and then
         * share one id, as in Hugging Face's trainer. */
        size_t la = (size_t)t->tok_len[e.a], lb = (size_t)t->tok_len[e.b];
        if (la + lb > buf_cap) {
            buf_cap = 2 * (la + lb);
            char *nb = realloc(buf, buf_cap);
            if (!nb) { st = MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_train: out of memory"); break; }
            buf = nb;
        }
        memcpy(buf, t->blob + t->tok_off[e.a], la);
        memcpy(buf + la, t->blob + t->tok_off[e.b], lb);
        int32_t r = (int32_t)moec_tok_strmap_get(&t->regular, buf, la + lb, -1);
        if (r < 0) {
            r = t->n_vocab;
            st = moec_tok_add_token(t, buf, la + lb, 0);
        }
        if (st == MOEC_OK) st = moec_tok_add_merge(t, e.a, e.b, r);
        if (st == MOEC_OK) st = apply_merge(&tr, pi, r, step);
    }
    for (int k = 0; st == MOEC_OK && k < n_special; k++)
        st = moec_tok_add_token(t, special_tokens[k], strlen(special_tokens[k]), 1);
    free(buf);
    trainer_free(&tr);
    if (st != MOEC_OK) {
        moec_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MOEC_OK;
}
