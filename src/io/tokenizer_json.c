/* tokenizer_json.c — reading and writing Hugging Face tokenizer.json files for byte-level BPE. SentencePiece-style
 * files (any pre_tokenizer other than ByteLevel) share the vocab/merges loading here; their normalizer, Metaspace
 * pre-tokenizer, decoder and post_processor are read by tokenizer_sp.c (format described there).
 *
 * The parts of the format moec writes and reads (everything else is written as null/false defaults):
 *   "added_tokens":  [{"id", "content", "special", ...}]  tokens matched literally in text before
 *                    pre-tokenizing; moec's special tokens. Their content also appears in model.vocab.
 *   "normalizer":    null (anything else is refused: moec does not normalize)
 *   "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, or (Llama 3 / Qwen2)
 *                    {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": PAT},
 *                    "behavior": "Isolated", "invert": false}, ByteLevel with "use_regex": false]} where PAT is
 *                    exactly one of moec_tok_split_pattern (other patterns: "unsupported pre-tokenizer pattern")
 *   "post_processor": null, ByteLevel, TemplateProcessing or a Sequence of them (see moec_tok_read_post_processor:
 *                     the template's leading special token is reported as BOS; encode never adds it)
 *   "decoder":       {"type": "ByteLevel"} (read: ignored)
 *   "model":         {"type": "BPE", "vocab": {token: id}, "merges": ["left right", ...] or [["left","right"]],
 *                    "ignore_merges": bool, no dropout, no subword prefix/suffix}
 * Regular tokens are spelled in the GPT-2 byte-level alphabet (each byte as one visible character, space as
 * 'Ġ'), so they never contain a space and "left right" is unambiguous. A merge's rank is its index.
 */
#include "io/tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "io/fsutil.h"

/* Largest tokenizer.json accepted; real ones are a few MB (a 1 GB one is corruption). */
#define MOEC_TOK_JSON_MAX_BYTES ((size_t)1 << 30)

/* Byte-level spelling of raw bytes: a malloc'ed NUL-terminated string (each byte becomes 1 or 2 UTF-8 bytes). */
static char *bytes_to_bytelevel(const char *s, size_t n) {
    char *out = malloc(2 * n + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = moec_tok_byte_to_cp((uint8_t)s[i]);
        if (cp < 0x80) out[k++] = (char)cp;
        else { out[k++] = (char)(0xC0 | (cp >> 6)); out[k++] = (char)(0x80 | (cp & 0x3F)); }
    }
    out[k] = '\0';
    return out;
}

/* Raw bytes of a byte-level spelling, written to out (room for strlen(s) bytes); -1 if s is not byte-level.
 * inv maps codepoints 0..511 to bytes (-1: not in the alphabet). */
static int64_t bytelevel_to_bytes(const char *s, const int16_t *inv, char *out) {
    size_t n = strlen(s), k = 0, adv;
    for (size_t i = 0; i < n; i += adv) {
        int32_t cp = moec_tok_utf8_decode((const uint8_t *)s, n, i, &adv);
        if (cp < 0 || cp >= 512 || inv[cp] < 0) return -1;
        out[k++] = (char)inv[cp];
    }
    return (int64_t)k;
}

/* ------------------------------------------------------------------------------------------------------------ */

static cJSON *bytelevel_obj(int decoder) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    /* The decoder's add_prefix_space only matters for word-piece style decoding; Hugging Face writes true. */
    cJSON_AddBoolToObject(o, "add_prefix_space", decoder);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", 1);
    return o;
}

/* Sequence[Split(Regex(pattern), Isolated), ByteLevel(use_regex=false)] of a Llama 3 / Qwen2 style tokenizer. */
static cJSON *split_sequence_obj(int kind) {
    cJSON *o = cJSON_CreateObject(), *split = cJSON_CreateObject(), *bl = bytelevel_obj(0);
    if (!o || !split || !bl) { cJSON_Delete(o); cJSON_Delete(split); cJSON_Delete(bl); return NULL; }
    cJSON_AddStringToObject(o, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(o, "pretokenizers");
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
    if (!list || !pat) { cJSON_Delete(o); cJSON_Delete(split); cJSON_Delete(bl); return NULL; }
    cJSON_AddStringToObject(pat, "Regex", moec_tok_split_pattern[kind]);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_ReplaceItemInObject(bl, "use_regex", cJSON_CreateFalse());
    cJSON_AddItemToArray(list, split);
    cJSON_AddItemToArray(list, bl);
    return o;
}

static moec_status build_json(const moec_tokenizer *t, cJSON *root, const char *path) {
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddItemToObject(root, "pre_tokenizer", t->pretok ? split_sequence_obj(t->pretok) : bytelevel_obj(0));
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", bytelevel_obj(1));
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    if (!added || !model) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building JSON", path);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddFalseToObject(model, "fuse_unk");
    cJSON_AddFalseToObject(model, "byte_fallback");
    cJSON_AddBoolToObject(model, "ignore_merges", t->ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    if (!vocab || !merges) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building JSON", path);

    char **spell = calloc((size_t)t->n_vocab, sizeof *spell); /* each id's vocab key */
    moec_tok_strmap seen = {0};
    moec_status st = spell ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
    for (int32_t id = 0; st == MOEC_OK && id < t->n_vocab; id++) {
        const char *raw = t->blob + t->tok_off[id];
        size_t n = (size_t)t->tok_len[id];
        if (t->is_special[id]) {
            spell[id] = malloc(n + 1);
            if (spell[id]) { memcpy(spell[id], raw, n); spell[id][n] = '\0'; }
        } else {
            spell[id] = bytes_to_bytelevel(raw, n);
        }
        if (!spell[id]) { st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path); break; }
        int inserted;
        st = moec_tok_strmap_put(&seen, spell[id], strlen(spell[id]), id, NULL, &inserted);
        if (st == MOEC_OK && !inserted)
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: token %d is spelled '%s' like another token; tokenizer.json needs "
                          "distinct spellings", path, (int)id, spell[id]);
        if (st == MOEC_OK && !cJSON_AddNumberToObject(vocab, spell[id], id))
            st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building JSON", path);
        if (st == MOEC_OK && t->is_special[id]) {
            cJSON *a = cJSON_CreateObject();
            if (!a || !cJSON_AddItemToArray(added, a)) { cJSON_Delete(a); st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: OOM", path); break; }
            cJSON_AddNumberToObject(a, "id", id);
            cJSON_AddStringToObject(a, "content", spell[id]);
            cJSON_AddFalseToObject(a, "single_word");
            cJSON_AddFalseToObject(a, "lstrip");
            cJSON_AddFalseToObject(a, "rstrip");
            cJSON_AddFalseToObject(a, "normalized");
            cJSON_AddTrueToObject(a, "special");
        }
    }
    for (int32_t m = 0; st == MOEC_OK && m < t->n_merges; m++) {
        const char *l = spell[t->merges[3 * m]], *r = spell[t->merges[3 * m + 1]];
        size_t nl = strlen(l), nr = strlen(r);
        char *s = malloc(nl + nr + 2);
        if (!s) { st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path); break; }
        memcpy(s, l, nl); s[nl] = ' '; memcpy(s + nl + 1, r, nr + 1);
        cJSON *item = cJSON_CreateString(s);
        free(s);
        if (!item || !cJSON_AddItemToArray(merges, item)) {
            cJSON_Delete(item);
            st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building JSON", path);
        }
    }
    for (int32_t id = 0; spell && id < t->n_vocab; id++) free(spell[id]);
    free(spell);
    moec_tok_strmap_free(&seen);
    return st;
}

moec_status moec_tokenizer_save_json(const moec_tokenizer *t, const char *path) {
    if (t->sp)
        return MOEC_ERR(MOEC_ERR_ARG, "%s: writing SentencePiece-style tokenizers is not supported (only byte-level)", path);
    cJSON *root = cJSON_CreateObject();
    if (!root) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory building JSON", path);
    moec_status st = build_json(t, root, path);
    char *text = st == MOEC_OK ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (st != MOEC_OK) return st;
    if (!text) return MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory printing JSON", path);
    st = moec_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

/* ------------------------------------------------------------------------------------------------------------ */

static const cJSON *field(const cJSON *o, const char *name) { return cJSON_GetObjectItemCaseSensitive(o, name); }
static int is_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* Refuse the options that would make Hugging Face encode differently from moec: first the byte-level pipeline
 * around the model, then (check_model, for both kinds of file) the BPE model's own options. */
static int is_type(const cJSON *o, const char *type) {
    return cJSON_IsObject(o) && cJSON_IsString(field(o, "type")) && !strcmp(field(o, "type")->valuestring, type);
}

/* A pre_tokenizer Sequence whose last step is ByteLevel: a byte-level file (Llama 3 / Qwen2 layout). */
static int is_bytelevel_sequence(const cJSON *pre) {
    const cJSON *list = is_type(pre, "Sequence") ? field(pre, "pretokenizers") : NULL;
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    return n > 0 && is_type(cJSON_GetArrayItem(list, n - 1), "ByteLevel");
}

/* Sequence[Split(Regex(PAT), Isolated, invert false), ByteLevel(add_prefix_space false, use_regex false)] with
 * PAT the Llama 3 or Qwen2 pattern: sets *kind. */
static moec_status check_split_sequence(const cJSON *pre, int *kind, const char *path) {
    const cJSON *list = field(pre, "pretokenizers");
    const cJSON *split = cJSON_GetArrayItem(list, 0), *bl = cJSON_GetArrayItem(list, 1);
    if (cJSON_GetArraySize(list) != 2 || !is_type(split, "Split"))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: unsupported pre-tokenizer Sequence (only [Split(Regex), ByteLevel] is "
                        "supported)", path);
    const cJSON *pat = field(field(split, "pattern"), "Regex");
    if (!cJSON_IsString(pat))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: unsupported pre-tokenizer pattern (Split needs a Regex pattern)", path);
    const cJSON *beh = field(split, "behavior");
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") || cJSON_IsTrue(field(split, "invert")))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: unsupported pre-tokenizer Split options (need behavior Isolated, invert "
                        "false)", path);
    *kind = 0;
    for (int k = MOEC_TOK_PRETOK_LLAMA3; k <= MOEC_TOK_PRETOK_QWEN2; k++)
        if (!strcmp(pat->valuestring, moec_tok_split_pattern[k])) *kind = k;
    if (!*kind) {
        size_t len = strlen(pat->valuestring);
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: unsupported pre-tokenizer pattern '%.60s%s' (only the Llama 3 and Qwen2 "
                        "patterns are implemented)", path, pat->valuestring, len > 60 ? "..." : "");
    }
    if (cJSON_IsTrue(field(bl, "add_prefix_space")))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: ByteLevel add_prefix_space=true is not supported", path);
    if (!cJSON_IsFalse(field(bl, "use_regex")))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: ByteLevel after Split must have use_regex=false", path);
    return MOEC_OK;
}

static moec_status check_bytelevel_pipeline(moec_tokenizer *t, const cJSON *root, const char *path) {
    const cJSON *norm = field(root, "normalizer"), *pre = field(root, "pre_tokenizer");
    if (!is_absent(norm)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: normalizers are not supported (need \"normalizer\": null)", path);
    if (is_bytelevel_sequence(pre)) {
        MOEC_TRY(check_split_sequence(pre, &t->pretok, path));
    } else {
        if (!is_type(pre, "ByteLevel"))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: pre_tokenizer must be ByteLevel (GPT-2 style)", path);
        if (cJSON_IsTrue(field(pre, "add_prefix_space")))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: ByteLevel add_prefix_space=true is not supported", path);
        if (cJSON_IsFalse(field(pre, "use_regex")))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: ByteLevel use_regex=false is not supported", path);
    }
    return MOEC_OK; /* post_processor: moec_tok_read_post_processor, after the vocab is loaded */
}

static moec_status check_model(const cJSON *model, const char *path) {
    const cJSON *v = field(model, "type");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "BPE")))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: model type must be \"BPE\"", path);
    v = field(model, "dropout");
    if (!is_absent(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0.0))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: BPE dropout is not supported", path);
    const char *affix[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = field(model, affix[i]);
        if (!is_absent(v) && !(cJSON_IsString(v) && v->valuestring[0] == '\0'))
            return MOEC_ERR(MOEC_ERR_FORMAT, "%s: BPE %s is not supported", path, affix[i]);
    }
    v = field(model, "ignore_merges");
    if (v && !cJSON_IsBool(v)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: model.ignore_merges is not a boolean", path);
    return MOEC_OK;
}

/* A JSON number that is an integer id in [0, limit). */
static int valid_id(const cJSON *v, int64_t limit) {
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < (double)limit &&
           v->valuedouble == floor(v->valuedouble);
}

/* Split a merge entry into its two spellings (pointing into the entry, or into *buf for "left right"). */
static int merge_parts(const cJSON *m, char **buf, const char **l, const char **r) {
    if (cJSON_IsString(m)) {
        const char *sp = strchr(m->valuestring, ' ');
        if (!sp || sp == m->valuestring || !sp[1] || strchr(sp + 1, ' ')) return 0;
        size_t n = strlen(m->valuestring);
        free(*buf);
        *buf = malloc(n + 1);
        if (!*buf) return 0;
        memcpy(*buf, m->valuestring, n + 1);
        (*buf)[sp - m->valuestring] = '\0';
        *l = *buf;
        *r = *buf + (sp - m->valuestring) + 1;
        return 1;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *l = m->child->valuestring;
        *r = m->child->next->valuestring;
        return 1;
    }
    return 0;
}

/* sp: tokens are kept as spelled (SentencePiece style) rather than read in the byte-level alphabet. */
static moec_status load_model(moec_tokenizer *t, const cJSON *root, const cJSON *model, const char *path, int sp) {
    const cJSON *vocab = field(model, "vocab"), *merges = field(model, "merges"), *added = field(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: model.vocab is missing or not an object", path);
    if (!cJSON_IsArray(merges)) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: model.merges is missing or not an array", path);
    if (!is_absent(added) && !cJSON_IsArray(added))
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: added_tokens is not an array", path);
    int64_t n_vocab = cJSON_GetArraySize(vocab), n_added = added ? cJSON_GetArraySize(added) : 0;
    int64_t limit = n_vocab + n_added; /* no id can be this large if ids are dense */
    if (limit > INT32_MAX) return MOEC_ERR(MOEC_ERR_FORMAT, "%s: %lld tokens is too many", path, (long long)limit);
    moec_tok_strmap spell = {0}; /* vocab key -> id */
    const char **name = calloc((size_t)limit + 1, sizeof *name);
    uint8_t *special = calloc((size_t)limit + 1, 1);
    char *raw = NULL, *buf = NULL;
    moec_status st = name && special ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path);
    int64_t n_ids = 0;
    for (const cJSON *e = vocab->child; st == MOEC_OK && e; e = e->next) {
        if (!valid_id(e, limit)) {
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: vocab entry '%s' has an invalid id (need an integer in [0, %lld))",
                          path, e->string, (long long)limit);
            break;
        }
        int id = (int)e->valuedouble, inserted;
        if (name[id]) { st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: id %d is used by '%s' and '%s'", path, id, name[id], e->string); break; }
        name[id] = e->string;
        n_ids++;
        st = moec_tok_strmap_put(&spell, e->string, strlen(e->string), id, NULL, &inserted);
        if (st == MOEC_OK && !inserted) st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: vocab key '%s' appears twice", path, e->string);
    }
    for (const cJSON *a = added ? added->child : NULL; st == MOEC_OK && a; a = a->next) {
        const cJSON *id_v = field(a, "id"), *content = field(a, "content");
        if (!valid_id(id_v, limit) || !cJSON_IsString(content) || !content->valuestring[0]) {
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: an added_tokens entry lacks a valid id or non-empty content", path);
            break;
        }
        int id = (int)id_v->valuedouble;
        int64_t known = moec_tok_strmap_get(&spell, content->valuestring, strlen(content->valuestring), -1);
        if (known >= 0 && known != id) {
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: added token '%s' has id %d but the vocab says %lld", path,
                          content->valuestring, id, (long long)known);
            break;
        }
        if (known < 0) {
            if (name[id]) { st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: id %d is used by '%s' and '%s'", path, id, name[id], content->valuestring); break; }
            name[id] = content->valuestring;
            n_ids++;
        }
        special[id] = 1;
    }
    for (int64_t id = 0; st == MOEC_OK && id < n_ids; id++)
        if (!name[id]) st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: ids are not dense: id %lld is unused but %lld ids exist",
                                     path, (long long)id, (long long)n_ids);
    /* Ids dense and unique: add the tokens in id order. */
    int16_t inv[512];
    for (int i = 0; i < 512; i++) inv[i] = -1;
    for (int b = 0; b < 256; b++) inv[moec_tok_byte_to_cp((uint8_t)b)] = (int16_t)b;
    for (int64_t id = 0; st == MOEC_OK && id < n_ids; id++) {
        size_t n = strlen(name[id]);
        if (special[id] || sp) { st = moec_tok_add_token(t, name[id], n, special[id]); continue; }
        char *r = realloc(raw, n + 1);
        if (!r) { st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path); break; }
        raw = r;
        int64_t k = bytelevel_to_bytes(name[id], inv, raw);
        if (k <= 0) {
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: token %lld '%s' is not spelled in the byte-level alphabet", path,
                          (long long)id, name[id]);
            break;
        }
        st = moec_tok_add_token(t, raw, (size_t)k, 0);
    }
    for (int b = 0; st == MOEC_OK && !sp && b < 256; b++)
        if (t->byte_id[b] < 0) st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: byte 0x%02x has no single-byte token", path, b);
    int64_t mi = 0;
    for (const cJSON *m = merges->child; st == MOEC_OK && m; m = m->next, mi++) {
        const char *l, *r;
        if (!merge_parts(m, &buf, &l, &r)) {
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: merge %lld is not \"left right\" or [\"left\", \"right\"]", path, (long long)mi);
            break;
        }
        int64_t a = moec_tok_strmap_get(&spell, l, strlen(l), -1), b = moec_tok_strmap_get(&spell, r, strlen(r), -1);
        if (a < 0 || b < 0) {
            st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: merge %lld references unknown token '%s'", path, (long long)mi, a < 0 ? l : r);
            break;
        }
        size_t nl = strlen(l), nr = strlen(r);
        char *cat = malloc(nl + nr + 1);
        if (!cat) { st = MOEC_ERR(MOEC_ERR_NOMEM, "%s: out of memory", path); break; }
        memcpy(cat, l, nl); memcpy(cat + nl, r, nr + 1);
        int64_t res = moec_tok_strmap_get(&spell, cat, nl + nr, -1);
        if (res < 0) st = MOEC_ERR(MOEC_ERR_FORMAT, "%s: merge %lld ('%s' + '%s') yields '%s', which is not in the vocab",
                                   path, (long long)mi, l, r, cat);
        free(cat);
        if (st == MOEC_OK) st = moec_tok_add_merge(t, (int32_t)a, (int32_t)b, (int32_t)res);
    }
    free(buf);
    free(raw);
    free(name);
    free(special);
    moec_tok_strmap_free(&spell);
    return st;
}

moec_status moec_tokenizer_load_json(moec_tokenizer **out, const char *path) {
    *out = NULL;
    char *data;
    size_t n;
    MOEC_TRY(moec_read_file(path, &data, &n, MOEC_TOK_JSON_MAX_BYTES));
    moec_status st = moec_tokenizer_load_json_text(out, data, n, path);
    free(data);
    return st;
}

moec_status moec_tokenizer_load_json_text(moec_tokenizer **out, const char *data, size_t n, const char *path) {
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, n, &end, 0);
    if (!root) {
        long at = end ? (long)(end - data) : -1;
        return MOEC_ERR(MOEC_ERR_FORMAT, "%s: not valid JSON (parse stopped near byte %ld of %zu)", path, at, n);
    }
    const cJSON *model = field(root, "model");
    moec_status st = cJSON_IsObject(root) && cJSON_IsObject(model)
                         ? check_model(model, path)
                         : MOEC_ERR(MOEC_ERR_FORMAT, "%s: no \"model\" object; not a tokenizer.json", path);
    /* A ByteLevel pre-tokenizer makes a GPT-2 style file; anything else is read as SentencePiece style. */
    const cJSON *pre = st == MOEC_OK ? field(root, "pre_tokenizer") : NULL;
    int sp = !(is_type(pre, "ByteLevel") || is_bytelevel_sequence(pre));
    moec_tokenizer *t = NULL;
    if (st == MOEC_OK) st = moec_tok_alloc(&t, 1024);
    if (st == MOEC_OK) st = sp ? moec_tok_sp_parse_pipeline(t, root, path) : check_bytelevel_pipeline(t, root, path);
    if (st == MOEC_OK) {
        t->sp = sp;
        t->ignore_merges = cJSON_IsTrue(field(model, "ignore_merges"));
        st = load_model(t, root, model, path, sp);
    }
    if (st == MOEC_OK && sp) st = moec_tok_sp_resolve(t, root, path);
    if (st == MOEC_OK && !sp) st = moec_tok_read_post_processor(t, field(root, "post_processor"), path);
    cJSON_Delete(root);
    if (st != MOEC_OK) {
        moec_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MOEC_OK;
}
