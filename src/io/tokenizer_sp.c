/* tokenizer_sp.c — SentencePiece-style BPE with byte fallback, as in Llama 2 / Mistral tokenizer.json files.
 *
 * The parts of such a file moec reads (vocab, merges and added_tokens are loaded by tokenizer_json.c, with each
 * token kept exactly as spelled: "▁the", "<0x0A>"):
 *   "normalizer":    null, Prepend{prepend}, Replace{pattern: {String}, content}, or a Sequence of these
 *                    (Llama 2: Sequence[Prepend("▁"), Replace(" " -> "▁")])
 *   "pre_tokenizer": null, or Metaspace{replacement, prepend_scheme first|always|never (older files:
 *                    add_prefix_space), split} (older Llama files); split=true starts a word at each "▁"
 *   "model":         BPE with byte_fallback (every "<0xNN>" byte token must be in the vocab), fuse_unk, unk_token
 *   "decoder":       null, or a step or a Sequence of steps among Replace, ByteFallback, Fuse, Strip, Metaspace
 *   "post_processor": null or TemplateProcessing; only its leading BOS is read (moec_tokenizer_bos_id): moec's
 *                    encode never adds it, callers do.
 * Encoding, as Hugging Face does it: split at added tokens; normalize each stretch between them separately;
 * apply Metaspace; then per word, each character becomes its vocab id, or if absent its UTF-8 bytes as <0xNN>
 * tokens (byte fallback), or unk (consecutive unks fused); then BPE merges by rank over the whole word.
 * Text that is not valid UTF-8 is accepted: each invalid byte is a character of its own (so it falls back to its
 * byte token and round-trips), something Hugging Face's str-only API never sees.
 * Decoding runs the decoder steps over the tokens' spellings, exactly as the library's decoders do.
 */
#include "io/tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *field(const cJSON *o, const char *name) { return cJSON_GetObjectItemCaseSensitive(o, name); }
static int is_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }
static const char *type_of(const cJSON *o) {
    const cJSON *v = field(o, "type");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Copy a JSON string of 1..15 bytes into dst; 0 if it is not one. */
static int short_string(const cJSON *v, char dst[16], int allow_empty) {
    if (!cJSON_IsString(v)) return 0;
    size_t n = strlen(v->valuestring);
    if (n >= 16 || (n == 0 && !allow_empty)) return 0;
    memcpy(dst, v->valuestring, n + 1);
    return 1;
}

/* Replace{pattern: {String: a}, content: b} into step. */
static moec_status parse_replace(const cJSON *o, moec_tok_step *step, const char *what, const char *path) {
    const cJSON *pat = field(o, "pattern");
    step->type = MOEC_TOK_STEP_REPLACE;
    if (!cJSON_IsObject(pat) || !short_string(field(pat, "String"), step->a, 0) ||
        !short_string(field(o, "content"), step->b, 1))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %s Replace must have a {\"String\": ...} pattern and a content string "
                        "(regex patterns are not supported)", path, what);
    return MOEC_OK;
}

/* prepend_scheme (or the older add_prefix_space) of a Metaspace object. */
static moec_status parse_prepend_scheme(const cJSON *o, int *scheme, const char *path) {
    const cJSON *ps = field(o, "prepend_scheme"), *aps = field(o, "add_prefix_space");
    if (cJSON_IsString(ps)) {
        if (!strcmp(ps->valuestring, "first")) *scheme = MOEC_TOK_PREPEND_FIRST;
        else if (!strcmp(ps->valuestring, "always")) *scheme = MOEC_TOK_PREPEND_ALWAYS;
        else if (!strcmp(ps->valuestring, "never")) *scheme = MOEC_TOK_PREPEND_NEVER;
        else return MOEC_ERR(MOEC_ERR_FORMAT, "%s: Metaspace prepend_scheme '%s' is unknown", path, ps->valuestring);
    } else if (!is_absent(ps)) {
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: Metaspace prepend_scheme is not a string", path);
    } else {
        *scheme = cJSON_IsFalse(aps) ? MOEC_TOK_PREPEND_NEVER : MOEC_TOK_PREPEND_ALWAYS;
    }
    return MOEC_OK;
}

static moec_status parse_norm_step(moec_tokenizer *t, const cJSON *o, const char *path) {
    const char *ty = type_of(o);
    if (t->n_norm == MOEC_TOK_MAX_STEPS) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: more than %d normalizers", path, MOEC_TOK_MAX_STEPS);
    moec_tok_step *step = &t->norm[t->n_norm];
    memset(step, 0, sizeof *step);
    if (ty && !strcmp(ty, "Prepend")) {
        step->type = MOEC_TOK_STEP_PREPEND;
        if (!short_string(field(o, "prepend"), step->a, 0))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: normalizer Prepend lacks a short \"prepend\" string", path);
    } else if (ty && !strcmp(ty, "Replace")) {
        MOEC_TRY(parse_replace(o, step, "normalizer", path));
    } else {
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: normalizer type '%s' is not supported (need Prepend, Replace or a "
                        "Sequence of them)", path, ty ? ty : "(none)");
    }
    t->n_norm++;
    return MOEC_OK;
}

static moec_status parse_dec_step(moec_tokenizer *t, const cJSON *o, const char *path) {
    const char *ty = type_of(o);
    if (t->n_dec == MOEC_TOK_MAX_STEPS) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: more than %d decoders", path, MOEC_TOK_MAX_STEPS);
    moec_tok_step *step = &t->dec[t->n_dec];
    memset(step, 0, sizeof *step);
    if (ty && !strcmp(ty, "Replace")) {
        MOEC_TRY(parse_replace(o, step, "decoder", path));
    } else if (ty && !strcmp(ty, "ByteFallback")) {
        step->type = MOEC_TOK_STEP_BYTE_FALLBACK;
    } else if (ty && !strcmp(ty, "Fuse")) {
        step->type = MOEC_TOK_STEP_FUSE;
    } else if (ty && !strcmp(ty, "Strip")) {
        const cJSON *c = field(o, "content"), *a = field(o, "start"), *b = field(o, "stop");
        step->type = MOEC_TOK_STEP_STRIP;
        if (!short_string(c, step->a, 0) || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 ||
            b->valuedouble < 0 || a->valuedouble > 1e6 || b->valuedouble > 1e6)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: decoder Strip needs a content character and start/stop counts", path);
        size_t adv;
        if (moec_tok_utf8_decode((const uint8_t *)step->a, strlen(step->a), 0, &adv) < 0 || step->a[adv])
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: decoder Strip content must be one character", path);
        step->start = (int)a->valuedouble;
        step->stop = (int)b->valuedouble;
    } else if (ty && !strcmp(ty, "Metaspace")) {
        int scheme;
        step->type = MOEC_TOK_STEP_METASPACE;
        if (!short_string(field(o, "replacement"), step->a, 0))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: decoder Metaspace lacks a replacement string", path);
        MOEC_TRY(parse_prepend_scheme(o, &scheme, path));
        step->start = scheme != MOEC_TOK_PREPEND_NEVER;
    } else {
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: decoder type '%s' is not supported (need Replace, ByteFallback, Fuse, "
                        "Strip, Metaspace or a Sequence of them)", path, ty ? ty : "(none)");
    }
    t->n_dec++;
    return MOEC_OK;
}

moec_status moec_tok_sp_parse_pipeline(moec_tokenizer *t, const void *cjson_root, const char *path) {
    const cJSON *root = cjson_root, *norm = field(root, "normalizer"), *pre = field(root, "pre_tokenizer"),
                *dec = field(root, "decoder"), *post = field(root, "post_processor");
    if (!is_absent(norm)) {
        const char *ty = type_of(norm);
        if (ty && !strcmp(ty, "Sequence")) {
            const cJSON *list = field(norm, "normalizers");
            if (!cJSON_IsArray(list)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: normalizer Sequence lacks a list", path);
            for (const cJSON *e = list->child; e; e = e->next) MOEC_TRY(parse_norm_step(t, e, path));
        } else {
            MOEC_TRY(parse_norm_step(t, norm, path));
        }
    }
    if (!is_absent(pre)) {
        const char *ty = type_of(pre);
        if (!ty || strcmp(ty, "Metaspace"))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: pre_tokenizer type '%s' is not supported (need ByteLevel, "
                            "Metaspace or null)", path, ty ? ty : "(none)");
        if (!short_string(field(pre, "replacement"), t->meta_repl, 0))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: Metaspace pre_tokenizer lacks a replacement string", path);
        MOEC_TRY(parse_prepend_scheme(pre, &t->meta_prepend, path));
        t->meta = 1;
        t->meta_split = !cJSON_IsFalse(field(pre, "split")); /* the library's default is true */
    }
    int replaces_space = t->meta;
    for (int i = 0; i < t->n_norm; i++)
        if (t->norm[i].type == MOEC_TOK_STEP_REPLACE && !strcmp(t->norm[i].a, " ")) replaces_space = 1;
    if (!replaces_space)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: neither normalizer nor pre_tokenizer replaces spaces (by \"\xE2\x96\x81\"); "
                        "not a SentencePiece-style tokenizer.json moec can read", path);
    if (!is_absent(dec)) {
        const char *ty = type_of(dec);
        if (ty && !strcmp(ty, "Sequence")) {
            const cJSON *list = field(dec, "decoders");
            if (!cJSON_IsArray(list)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: decoder Sequence lacks a list", path);
            for (const cJSON *e = list->child; e; e = e->next) MOEC_TRY(parse_dec_step(t, e, path));
        } else {
            MOEC_TRY(parse_dec_step(t, dec, path));
        }
    }
    (void)post; /* checked (and its BOS read) by moec_tok_read_post_processor once the vocab is known */
    return MOEC_OK;
}

moec_status moec_tok_sp_resolve(moec_tokenizer *t, const void *cjson_root, const char *path) {
    const cJSON *root = cjson_root, *model = field(root, "model"), *v;
    v = field(model, "byte_fallback");
    if (!is_absent(v) && !cJSON_IsBool(v)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: model.byte_fallback is not a boolean", path);
    t->byte_fallback = cJSON_IsTrue(v);
    t->fuse_unk = cJSON_IsTrue(field(model, "fuse_unk"));
    v = field(model, "unk_token");
    if (cJSON_IsString(v)) {
        t->unk_id = moec_tokenizer_token_id(t, v->valuestring);
        if (t->unk_id < 0) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: unk_token '%s' is not in the vocab", path, v->valuestring);
    } else if (!is_absent(v)) {
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: model.unk_token is not a string", path);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_tok[b] = (int32_t)moec_tok_strmap_get(&t->regular, name, 6, -1);
        if (t->byte_fallback && t->byte_tok[b] < 0)
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: model.byte_fallback is true but byte token %s is not in the vocab",
                            path, name);
    }
    return moec_tok_read_post_processor(t, field(root, "post_processor"), path);
}

/* post_processor: null, ByteLevel (offsets only), TemplateProcessing (its leading special token is the BOS that
 * moec_tokenizer_bos_id reports; moec's encode never adds it), or a Sequence of these (Llama 3 writes
 * Sequence[ByteLevel, TemplateProcessing]). Anything else is refused. Needs the vocab (ids are checked). */
moec_status moec_tok_read_post_processor(moec_tokenizer *t, const void *post_json, const char *path) {
    const cJSON *post = post_json;
    if (is_absent(post)) return MOEC_OK;
    const char *ty = type_of(post);
    if (ty && !strcmp(ty, "ByteLevel")) return MOEC_OK;
    if (ty && !strcmp(ty, "Sequence")) {
        const cJSON *list = field(post, "processors");
        if (!cJSON_IsArray(list)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: post_processor Sequence lacks \"processors\"", path);
        for (const cJSON *e = list->child; e; e = e->next) {
            const char *et = type_of(e);
            if (et && !strcmp(et, "Sequence"))
                return MOEC_ERR(MOEC_ERR_FORMAT, "%s: nested post_processor Sequences are not supported", path);
            MOEC_TRY(moec_tok_read_post_processor(t, e, path));
        }
        return MOEC_OK;
    }
    if (!ty || strcmp(ty, "TemplateProcessing") != 0)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: post_processor type '%s' is not supported (need TemplateProcessing, "
                        "ByteLevel, a Sequence of them, or null)", path, ty ? ty : "(none)");
    const cJSON *single = field(post, "single"), *specials = field(post, "special_tokens");
    if (!cJSON_IsArray(single) || !cJSON_IsObject(specials))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: TemplateProcessing lacks \"single\" or \"special_tokens\"", path);
    const cJSON *first = single->child, *sp = first ? field(first, "SpecialToken") : NULL;
    if (!sp) return MOEC_OK; /* the template does not start with a special token: no BOS */
    const cJSON *name = field(sp, "id");
    const cJSON *entry = cJSON_IsString(name) ? field(specials, name->valuestring) : NULL;
    const cJSON *ids = entry ? field(entry, "ids") : NULL;
    if (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) != 1 || !cJSON_IsNumber(ids->child) ||
        ids->child->valuedouble < 0 || ids->child->valuedouble >= t->n_vocab ||
        ids->child->valuedouble != (double)(int32_t)ids->child->valuedouble)
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: TemplateProcessing's leading special token has no single valid id", path);
    t->bos_id = (int32_t)ids->child->valuedouble;
    return MOEC_OK;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* A growable byte buffer. */
typedef struct { char *p; size_t n, cap; } sbuf;

static moec_status sbuf_add(sbuf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory for %zu bytes of text", c);
        b->p = q;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return MOEC_OK;
}

/* dst = src[0..n) with every occurrence of `from` replaced by `to` (dst is reset first). */
static moec_status replace_all(sbuf *dst, const char *src, size_t n, const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to);
    dst->n = 0;
    MOEC_TRY(sbuf_add(dst, "", 0));
    for (size_t i = 0; i < n;) {
        if (nf && i + nf <= n && memcmp(src + i, from, nf) == 0) {
            MOEC_TRY(sbuf_add(dst, to, nt));
            i += nf;
        } else {
            MOEC_TRY(sbuf_add(dst, src + i, 1));
            i++;
        }
    }
    return MOEC_OK;
}

static moec_status reserve(int32_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return MOEC_OK;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    int32_t *q = realloc(*p, c * sizeof *q);
    if (!q) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory for %zu token ids", c);
    *p = q;
    *cap = c;
    return MOEC_OK;
}

/* Encode one word w[0..n) (n >= 1): characters -> ids (byte fallback / unk), then BPE. */
static moec_status encode_word(const moec_tokenizer *t, const char *w, size_t n, int32_t **ids, size_t *n_ids,
                               size_t *cap) {
    if (t->ignore_merges) {
        int64_t id = moec_tok_strmap_get(&t->regular, w, n, -1);
        if (id >= 0) {
            MOEC_TRY(reserve(ids, cap, *n_ids + 1));
            (*ids)[(*n_ids)++] = (int32_t)id;
            return MOEC_OK;
        }
    }
    /* At most one symbol per byte. */
    int32_t *sym = malloc(3 * n * sizeof *sym);
    moec_tok_bpe_cand *heap = malloc(3 * n * sizeof *heap);
    if (!sym || !heap) {
        free(sym); free(heap);
        return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer: out of memory merging a %zu-byte word", n);
    }
    size_t k = 0, adv;
    int prev_unk = 0;
    for (size_t i = 0; i < n; i += adv) {
        (void)moec_tok_utf8_decode((const uint8_t *)w, n, i, &adv); /* only the character's length: adv */
        int64_t id = moec_tok_strmap_get(&t->regular, w + i, adv, -1);
        if (id >= 0) {
            sym[k++] = (int32_t)id;
            prev_unk = 0;
            continue;
        }
        if (t->byte_fallback) {
            for (size_t j = 0; j < adv; j++) sym[k++] = t->byte_tok[(uint8_t)w[i + j]];
            prev_unk = 0;
            continue;
        }
        if (t->unk_id < 0) continue; /* as Hugging Face: a character with no token and no unk is dropped */
        if (!(prev_unk && t->fuse_unk)) sym[k++] = t->unk_id;
        prev_unk = 1;
    }
    size_t m = 0;
    if (k) moec_tok_bpe(t, sym, k, &m, sym + n, heap);
    moec_status st = reserve(ids, cap, *n_ids + m);
    if (st == MOEC_OK) {
        memcpy(*ids + *n_ids, sym, m * sizeof *sym);
        *n_ids += m;
    }
    free(sym);
    free(heap);
    return st;
}

moec_status moec_tok_sp_encode_span(const moec_tokenizer *t, const uint8_t *s, size_t n, int at_start,
                                    int32_t **ids, size_t *n_ids, size_t *cap) {
    if (n == 0) return MOEC_OK;
    sbuf a = {0}, b = {0};
    moec_status st = sbuf_add(&a, s, n);
    for (int i = 0; st == MOEC_OK && i < t->n_norm; i++) {
        const moec_tok_step *step = &t->norm[i];
        b.n = 0;
        if (step->type == MOEC_TOK_STEP_PREPEND) {
            if (a.n == 0) continue;
            st = sbuf_add(&b, step->a, strlen(step->a));
            if (st == MOEC_OK) st = sbuf_add(&b, a.p, a.n);
        } else {
            st = replace_all(&b, a.p, a.n, step->a, step->b);
        }
        sbuf tmp = a; a = b; b = tmp;
    }
    if (st == MOEC_OK && t->meta) {
        size_t nr = strlen(t->meta_repl);
        st = replace_all(&b, a.p, a.n, " ", t->meta_repl);
        sbuf tmp = a; a = b; b = tmp;
        int prepend = t->meta_prepend == MOEC_TOK_PREPEND_ALWAYS || (t->meta_prepend == MOEC_TOK_PREPEND_FIRST && at_start);
        if (st == MOEC_OK && prepend && !(a.n >= nr && memcmp(a.p, t->meta_repl, nr) == 0)) {
            b.n = 0;
            st = sbuf_add(&b, t->meta_repl, nr);
            if (st == MOEC_OK) st = sbuf_add(&b, a.p, a.n);
            tmp = a; a = b; b = tmp;
        }
    }
    /* Words: the whole text, or (Metaspace split) a new word at each replacement character but the first. */
    size_t nr = strlen(t->meta_repl);
    for (size_t i = 0; st == MOEC_OK && i < a.n;) {
        size_t j = a.n;
        if (t->meta && t->meta_split)
            for (j = i + 1; j < a.n; j++)
                if (j + nr <= a.n && memcmp(a.p + j, t->meta_repl, nr) == 0) break;
        st = encode_word(t, a.p + i, j - i, ids, n_ids, cap);
        i = j;
    }
    free(a.p);
    free(b.p);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Decoding: a list of token strings (tokens back to back in buf, token i ending at end[i]) transformed by each
 * decoder step into a new list, then concatenated. */
typedef struct { sbuf buf; size_t *end; size_t n, cap; } toklist;

static moec_status tl_end(toklist *l) {
    if (l->n == l->cap) {
        size_t c = l->cap ? 2 * l->cap : 64;
        size_t *q = realloc(l->end, c * sizeof *q);
        if (!q) return MOEC_ERR(MOEC_ERR_NOMEM, "tokenizer_decode: out of memory for %zu tokens", c);
        l->end = q;
        l->cap = c;
    }
    l->end[l->n++] = l->buf.n;
    return MOEC_OK;
}

static moec_status tl_push(toklist *l, const char *s, size_t n) {
    MOEC_TRY(sbuf_add(&l->buf, s, n));
    return tl_end(l);
}

/* The byte of a "<0xNN>" spelling (either hex case, as the library parses it), or -1. */
static int byte_of(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = 16 * v + d;
    }
    return v;
}

static int valid_utf8(const char *s, size_t n) {
    size_t adv;
    for (size_t i = 0; i < n; i += adv)
        if (moec_tok_utf8_decode((const uint8_t *)s, n, i, &adv) < 0) return 0;
    return 1;
}

static moec_status flush_bytes(toklist *out, sbuf *pending) {
    if (pending->n == 0) return MOEC_OK;
    if (valid_utf8(pending->p, pending->n)) MOEC_TRY(tl_push(out, pending->p, pending->n));
    else
        for (size_t i = 0; i < pending->n; i++) MOEC_TRY(tl_push(out, "\xEF\xBF\xBD", 3)); /* U+FFFD per byte */
    pending->n = 0;
    return MOEC_OK;
}

static moec_status apply_step(const moec_tok_step *step, const toklist *in, toklist *out, sbuf *tmp) {
    if (step->type == MOEC_TOK_STEP_FUSE) {
        MOEC_TRY(sbuf_add(&out->buf, in->buf.p, in->buf.n));
        return tl_end(out);
    }
    for (size_t i = 0; i < in->n; i++) {
        size_t s0 = i ? in->end[i - 1] : 0, n = in->end[i] - s0;
        const char *s = in->buf.p + s0;
        switch (step->type) {
        case MOEC_TOK_STEP_REPLACE:
            MOEC_TRY(replace_all(tmp, s, n, step->a, step->b));
            MOEC_TRY(tl_push(out, tmp->p, tmp->n));
            break;
        case MOEC_TOK_STEP_METASPACE:
            MOEC_TRY(replace_all(tmp, s, n, step->a, i == 0 && step->start ? "" : " "));
            MOEC_TRY(tl_push(out, tmp->p, tmp->n));
            break;
        case MOEC_TOK_STEP_STRIP: {
            size_t na = strlen(step->a), lo = 0, hi = n;
            for (int k = 0; k < step->start && lo + na <= hi && memcmp(s + lo, step->a, na) == 0; k++) lo += na;
            for (int k = 0; k < step->stop && hi >= lo + na && memcmp(s + hi - na, step->a, na) == 0; k++) hi -= na;
            MOEC_TRY(tl_push(out, s + lo, hi - lo));
            break;
        }
        case MOEC_TOK_STEP_BYTE_FALLBACK: {
            int b = byte_of(s, n);
            if (b >= 0) {
                uint8_t c = (uint8_t)b;
                MOEC_TRY(sbuf_add(tmp, &c, 1));
                break;
            }
            MOEC_TRY(flush_bytes(out, tmp));
            MOEC_TRY(tl_push(out, s, n));
            break;
        }
        default:
            return MOEC_ERR(MOEC_ERR_ARG, "tokenizer_decode: decoder step type %d is not implemented", step->type);
        }
    }
    if (step->type == MOEC_TOK_STEP_BYTE_FALLBACK) MOEC_TRY(flush_bytes(out, tmp));
    return MOEC_OK;
}

moec_status moec_tok_sp_decode(const moec_tokenizer *t, const int32_t *ids, int64_t n, char **text, size_t *len) {
    toklist a = {0}, b = {0};
    sbuf tmp = {0};
    moec_status st = MOEC_OK;
    for (int64_t i = 0; st == MOEC_OK && i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            st = MOEC_ERR(MOEC_ERR_ARG, "tokenizer_decode: id %d at position %lld is outside the vocabulary [0, %d)",
                          (int)ids[i], (long long)i, (int)t->n_vocab);
        else
            st = tl_push(&a, t->blob + t->tok_off[ids[i]], (size_t)t->tok_len[ids[i]]);
    }
    for (int k = 0; st == MOEC_OK && k < t->n_dec; k++) {
        b.buf.n = 0;
        b.n = 0;
        tmp.n = 0;
        st = apply_step(&t->dec[k], &a, &b, &tmp);
        toklist x = a; a = b; b = x;
    }
    if (st == MOEC_OK) st = sbuf_add(&a.buf, "", 0); /* ensure an allocated, NUL-terminated buffer */
    free(b.buf.p); free(b.end); free(a.end); free(tmp.p);
    if (st != MOEC_OK) {
        free(a.buf.p);
        return st;
    }
    *text = a.buf.p;
    *len = a.buf.n;
    return MOEC_OK;
}
