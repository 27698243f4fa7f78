/* gguf_tokenizer.c — tokenizers in GGUF (tokenizer.ggml.* keys), both ways.
 *
 * Export (as llama.cpp's convert_hf_to_gguf.py writes them):
 *   byte-level BPE:  model "gpt2", pre "gpt-2" | "llama-bpe" | "qwen2" (the pre-tokenizer regex llama.cpp must
 *                    use), tokens in tokenizer.json spelling ("Ġthe"), merges "left right", token_type NORMAL (1)
 *                    or CONTROL (3) for special tokens;
 *   SentencePiece:   model "llama", pre "default", tokens ("▁the", "<0x0A>"), scores, token_type with UNKNOWN (2),
 *                    CONTROL (3) and BYTE (6) pieces; merges too (llama.cpp ignores them for "llama"; moec's import
 *                    needs them). llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined piece has
 *                    the highest score, so a merge result's score is minus its merge rank: the pair Hugging Face
 *                    would merge first scores highest. Pieces no merge produces score -1e9.
 *   Padding to the model's vocab_size: "[PADi]" with type UNUSED (5), as convert_hf_to_gguf.py pads.
 *   bos/eos ids (config.json first, else the tokenizer's BOS template), add_bos_token when the tokenizer's
 *   post-processor prepends BOS, unknown_token_id and add_space_prefix for SentencePiece.
 * Import builds the tokenizer.json those keys describe (byte-level: ByteLevel or Split+ByteLevel pre-tokenizer;
 * SentencePiece: Llama 2's normalizer/decoder with byte fallback), which moec's tokenizer.json reader then
 * validates like any other file.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/tokenizer_internal.h" /* moec_tok_split_pattern: the exact Llama 3 / Qwen2 regexes */

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

moec_status moec_gguf_put_tokenizer(moec_gguf_writer *w, const moec_tokenizer *t, const moec_config *cfg, int n_vocab) {
    const moec_tokenizer_kind kind = moec_tokenizer_kind_of(t);
    const int sp = kind == MOEC_TOK_KIND_SENTENCEPIECE, nt = moec_tokenizer_vocab_size(t), nm = moec_tokenizer_n_merges(t);
    char **tok = calloc((size_t)n_vocab, sizeof *tok);
    char **mer = calloc((size_t)nm + 1, sizeof *mer);
    int32_t *type = calloc((size_t)n_vocab, sizeof *type);
    float *score = calloc((size_t)n_vocab, sizeof *score);
    moec_status s = tok && mer && type && score ? MOEC_OK : MOEC_ERR(MOEC_ERR_NOMEM, "out of memory exporting the tokenizer");
    for (int id = 0; s == MOEC_OK && id < n_vocab; id++) {
        if (id < nt) {
            tok[id] = moec_tokenizer_spelling(t, id, NULL);
            type[id] = moec_tokenizer_is_special(t, id) ? TT_CONTROL : TT_NORMAL;
        } else if ((tok[id] = malloc(24))) {
            snprintf(tok[id], 24, "[PAD%d]", id);
            type[id] = TT_UNUSED;
        }
        score[id] = -1e9f;
        if (!tok[id]) s = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory exporting the tokenizer");
    }
    if (s == MOEC_OK && sp) {
        int unk = moec_tokenizer_unk_id(t);
        if (unk >= 0) type[unk] = TT_UNKNOWN;
        for (int b = 0; b < 256; b++) {
            int id = moec_tokenizer_byte_piece(t, b);
            if (id >= 0) type[id] = TT_BYTE;
        }
    }
    for (int r = 0; s == MOEC_OK && r < nm; r++) {
        int32_t a, b, res;
        moec_tokenizer_merge(t, r, &a, &b, &res);
        size_t la = strlen(tok[a]), lb = strlen(tok[b]);
        if (!(mer[r] = malloc(la + lb + 2))) { s = MOEC_ERR(MOEC_ERR_NOMEM, "out of memory"); break; }
        memcpy(mer[r], tok[a], la);
        mer[r][la] = ' ';
        memcpy(mer[r] + la + 1, tok[b], lb + 1);
        if (score[res] == -1e9f) score[res] = -(float)r; /* a later duplicate pair does not demote it */
    }
    static const char *pre[] = {"gpt-2", "llama-bpe", "qwen2", "default"};
    if (s == MOEC_OK) s = moec_gguf_writer_kv_str(w, "tokenizer.ggml.model", sp ? "llama" : "gpt2");
    if (s == MOEC_OK) s = moec_gguf_writer_kv_str(w, "tokenizer.ggml.pre", pre[kind]);
    if (s == MOEC_OK) s = moec_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, NULL, (uint64_t)n_vocab);
    if (s == MOEC_OK && sp) s = moec_gguf_writer_kv_arr(w, "tokenizer.ggml.scores", MOEC_GGUF_KV_F32, score, (uint64_t)n_vocab);
    if (s == MOEC_OK) s = moec_gguf_writer_kv_arr(w, "tokenizer.ggml.token_type", MOEC_GGUF_KV_I32, type, (uint64_t)n_vocab);
    if (s == MOEC_OK) s = moec_gguf_writer_kv_arr_str(w, "tokenizer.ggml.merges", (const char *const *)mer, NULL, (uint64_t)nm);
    const int tbos = moec_tokenizer_bos_id(t), bos = cfg->bos_id >= 0 ? cfg->bos_id : tbos;
    if (s == MOEC_OK && bos >= 0) s = moec_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (s == MOEC_OK && cfg->eos_id >= 0) s = moec_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)cfg->eos_id);
    if (s == MOEC_OK && sp && moec_tokenizer_unk_id(t) >= 0)
        s = moec_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)moec_tokenizer_unk_id(t));
    if (s == MOEC_OK) s = moec_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", tbos >= 0);
    if (s == MOEC_OK && sp) s = moec_gguf_writer_kv_bool(w, "tokenizer.ggml.add_space_prefix", moec_tokenizer_sp_prefix_space(t));
    for (int id = 0; tok && id < n_vocab; id++) free(tok[id]);
    for (int r = 0; mer && r < nm; r++) free(mer[r]);
    free(tok);
    free(mer);
    free(type);
    free(score);
    return s;
}

/* ---------------------------------------------------------------- import */

static cJSON *obj_type(const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (o) cJSON_AddStringToObject(o, "type", type);
    return o;
}
static cJSON *bytelevel(int use_regex) {
    cJSON *o = obj_type("ByteLevel");
    cJSON_AddFalseToObject(o, "add_prefix_space");
    cJSON_AddTrueToObject(o, "trim_offsets");
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}
static cJSON *replace(const char *from, const char *to) {
    cJSON *o = obj_type("Replace");
    cJSON *p = cJSON_AddObjectToObject(o, "pattern");
    cJSON_AddStringToObject(p, "String", from);
    cJSON_AddStringToObject(o, "content", to);
    return o;
}

/* NUL-terminated copy of string-array element i (NULL if it holds a NUL byte: not representable in JSON keys). */
static char *elem(const moec_gguf_file *f, const moec_gguf_kv *kv, uint64_t i) {
    size_t n;
    const char *p = moec_gguf_kv_arr_str(f, kv, i, &n);
    if (!p || memchr(p, 0, n)) return NULL;
    return strndup(p, n);
}

moec_status moec_gguf_tokenizer_json(const moec_gguf_file *f, char **json, const char **why) {
    *json = NULL;
    *why = NULL;
    const char *mname;
    size_t mn;
    if (!moec_gguf_find_kv(f, "tokenizer.ggml.model") || moec_gguf_get_str(f, "tokenizer.ggml.model", &mname, &mn) != MOEC_OK)
        return (*why = "no tokenizer.ggml.model", MOEC_OK);
    const int sp = mn == 5 && !memcmp(mname, "llama", 5);
    if (!sp && !(mn == 4 && !memcmp(mname, "gpt2", 4)))
        return (*why = "tokenizer.ggml.model is neither gpt2 (byte-level BPE) nor llama (SentencePiece)", MOEC_OK);
    int kind = MOEC_TOK_PRETOK_GPT2;
    if (!sp) {
        const char *pre = "gpt-2";
        size_t pn = 5;
        if (moec_gguf_find_kv(f, "tokenizer.ggml.pre")) moec_gguf_get_str(f, "tokenizer.ggml.pre", &pre, &pn);
        if (pn == 9 && !memcmp(pre, "llama-bpe", 9)) kind = MOEC_TOK_PRETOK_LLAMA3;
        else if (pn == 5 && !memcmp(pre, "qwen2", 5)) kind = MOEC_TOK_PRETOK_QWEN2;
        else if (!((pn == 5 && !memcmp(pre, "gpt-2", 5)) || (pn == 7 && !memcmp(pre, "default", 7))))
            return (*why = "tokenizer.ggml.pre names a pre-tokenizer moec does not implement", MOEC_OK);
    }
    const moec_gguf_kv *toks, *types = NULL, *merges;
    if (moec_gguf_get_arr(f, "tokenizer.ggml.tokens", MOEC_GGUF_KV_STRING, &toks) != MOEC_OK)
        return (*why = "tokenizer.ggml.tokens is missing or not strings", MOEC_OK);
    if (moec_gguf_get_arr(f, "tokenizer.ggml.merges", MOEC_GGUF_KV_STRING, &merges) != MOEC_OK)
        return (*why = "no tokenizer.ggml.merges (moec's tokenizers are merge-based BPE)", MOEC_OK);
    if (moec_gguf_find_kv(f, "tokenizer.ggml.token_type") &&
        (moec_gguf_get_arr(f, "tokenizer.ggml.token_type", MOEC_GGUF_KV_I32, &types) != MOEC_OK || types->n != toks->n))
        return (*why = "tokenizer.ggml.token_type is not one i32 per token", MOEC_OK);
    uint32_t bos = UINT32_MAX, unk = UINT32_MAX;
    int add_bos = sp, prefix = 1;
    if (moec_gguf_find_kv(f, "tokenizer.ggml.bos_token_id")) moec_gguf_get_u32(f, "tokenizer.ggml.bos_token_id", &bos);
    if (moec_gguf_find_kv(f, "tokenizer.ggml.unknown_token_id")) moec_gguf_get_u32(f, "tokenizer.ggml.unknown_token_id", &unk);
    if (moec_gguf_find_kv(f, "tokenizer.ggml.add_bos_token")) moec_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos);
    if (moec_gguf_find_kv(f, "tokenizer.ggml.add_space_prefix")) moec_gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &prefix);

    cJSON *root = cJSON_CreateObject();
    if (!root) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    if (sp) {
        cJSON *norm = obj_type("Sequence"), *list = cJSON_AddArrayToObject(norm, "normalizers");
        if (prefix) {
            cJSON *p = obj_type("Prepend");
            cJSON_AddStringToObject(p, "prepend", "\xE2\x96\x81");
            cJSON_AddItemToArray(list, p);
        }
        cJSON_AddItemToArray(list, replace(" ", "\xE2\x96\x81"));
        cJSON_AddItemToObject(root, "normalizer", norm);
        cJSON_AddNullToObject(root, "pre_tokenizer");
    } else {
        cJSON_AddNullToObject(root, "normalizer");
        if (kind == MOEC_TOK_PRETOK_GPT2) {
            cJSON_AddItemToObject(root, "pre_tokenizer", bytelevel(1));
        } else {
            cJSON *seq = obj_type("Sequence"), *list = cJSON_AddArrayToObject(seq, "pretokenizers"), *split = obj_type("Split");
            cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
            cJSON_AddStringToObject(pat, "Regex", moec_tok_split_pattern[kind]);
            cJSON_AddStringToObject(split, "behavior", "Isolated");
            cJSON_AddFalseToObject(split, "invert");
            cJSON_AddItemToArray(list, split);
            cJSON_AddItemToArray(list, bytelevel(0));
            cJSON_AddItemToObject(root, "pre_tokenizer", seq);
        }
    }
    const moec_status oom = MOEC_ERR_NOMEM;
    moec_status s = MOEC_OK;
    char *bos_name = NULL, *unk_name = NULL;
    cJSON *model = obj_type("BPE"), *vocab = cJSON_CreateObject(), *mlist = cJSON_CreateArray();
    for (uint64_t i = 0; i < toks->n && s == MOEC_OK; i++) {
        char *name = elem(f, toks, i);
        if (!name) { *why = "a token contains a NUL byte"; s = MOEC_ERR_FORMAT; break; }
        int tt = types ? (int)moec_gguf_kv_arr_num(types, i) : TT_NORMAL;
        cJSON_AddNumberToObject(vocab, name, (double)i);
        if (tt == TT_CONTROL || tt == TT_USER_DEFINED || (sp && tt == TT_UNKNOWN)) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", name);
            cJSON_AddFalseToObject(a, "single_word");
            cJSON_AddFalseToObject(a, "lstrip");
            cJSON_AddFalseToObject(a, "rstrip");
            cJSON_AddFalseToObject(a, "normalized");
            cJSON_AddBoolToObject(a, "special", tt != TT_USER_DEFINED);
            cJSON_AddItemToArray(added, a);
        }
        if (i == bos) bos_name = strdup(name);
        if (i == unk) unk_name = strdup(name);
        free(name);
    }
    for (uint64_t i = 0; i < merges->n && s == MOEC_OK; i++) {
        char *m = elem(f, merges, i);
        if (!m) { *why = "a merge contains a NUL byte"; s = MOEC_ERR_FORMAT; break; }
        cJSON_AddItemToArray(mlist, cJSON_CreateString(m));
        free(m);
    }
    if (add_bos && bos_name) {
        cJSON *post = obj_type("TemplateProcessing"), *single = cJSON_AddArrayToObject(post, "single");
        cJSON *a = cJSON_CreateObject(), *st = cJSON_AddObjectToObject(a, "SpecialToken");
        cJSON_AddStringToObject(st, "id", bos_name);
        cJSON_AddNumberToObject(st, "type_id", 0);
        cJSON_AddItemToArray(single, a);
        cJSON *b = cJSON_CreateObject(), *sq = cJSON_AddObjectToObject(b, "Sequence");
        cJSON_AddStringToObject(sq, "id", "A");
        cJSON_AddNumberToObject(sq, "type_id", 0);
        cJSON_AddItemToArray(single, b);
        cJSON *specials = cJSON_AddObjectToObject(post, "special_tokens"), *e = cJSON_AddObjectToObject(specials, bos_name);
        cJSON_AddStringToObject(e, "id", bos_name);
        cJSON *ids = cJSON_AddArrayToObject(e, "ids"), *tk = cJSON_AddArrayToObject(e, "tokens");
        cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)bos));
        cJSON_AddItemToArray(tk, cJSON_CreateString(bos_name));
        cJSON_AddItemToObject(root, "post_processor", post);
    } else {
        cJSON_AddNullToObject(root, "post_processor");
    }
    if (sp) {
        cJSON *dec = obj_type("Sequence"), *list = cJSON_AddArrayToObject(dec, "decoders");
        cJSON_AddItemToArray(list, replace("\xE2\x96\x81", " "));
        cJSON_AddItemToArray(list, obj_type("ByteFallback"));
        cJSON_AddItemToArray(list, obj_type("Fuse"));
        cJSON *strip = obj_type("Strip");
        cJSON_AddStringToObject(strip, "content", " ");
        cJSON_AddNumberToObject(strip, "start", prefix ? 1 : 0);
        cJSON_AddNumberToObject(strip, "stop", 0);
        cJSON_AddItemToArray(list, strip);
        cJSON_AddItemToObject(root, "decoder", dec);
    } else {
        cJSON *d = bytelevel(1);
        cJSON_ReplaceItemInObject(d, "add_prefix_space", cJSON_CreateTrue());
        cJSON_AddItemToObject(root, "decoder", d);
    }
    cJSON_AddNullToObject(model, "dropout");
    if (sp && unk_name) cJSON_AddStringToObject(model, "unk_token", unk_name);
    else cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", sp);
    cJSON_AddBoolToObject(model, "byte_fallback", sp);
    cJSON_AddFalseToObject(model, "ignore_merges");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", mlist);
    cJSON_AddItemToObject(root, "model", model);
    free(bos_name);
    free(unk_name);
    if (s == MOEC_OK && !(*json = cJSON_PrintUnformatted(root))) s = oom;
    cJSON_Delete(root);
    if (s == MOEC_ERR_FORMAT) return MOEC_OK; /* *why says what is not representable */
    if (s != MOEC_OK) return MOEC_ERR(MOEC_ERR_NOMEM, "out of memory building tokenizer.json");
    return MOEC_OK;
}
