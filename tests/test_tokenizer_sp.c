/* test_tokenizer_sp.c — checks moec's reading of SentencePiece-style BPE tokenizer.json files (Llama 2 /
 * Mistral layout: "▁" for spaces, byte fallback to <0xNN> tokens) against the Hugging Face `tokenizers` library.
 *
 * Oracle: tests/tokenizer_oracle.py sp-build trains three such tokenizers with the library itself (normalizer
 * Sequence[Prepend, Replace]; Metaspace prepend_scheme=first split=false; Metaspace always split=true, see
 * build_sp there), then for each moec's ids must equal encode(text, add_special_tokens=False).ids id for id,
 * and moec's decode must equal decode(ids, skip_special_tokens=False), on TinyStories text (first 50 KB), a
 * multilingual line whose Greek/CJK/emoji characters are outside the vocab (byte fallback), and whitespace,
 * newline, empty and special-token edge cases. Also: the template's BOS id, and malformed files (missing byte
 * tokens, unknown normalizer/decoder/pre-tokenizer) refused with a one-line error.
 *
 * Run from the repository root. Environment: MOEC_DATA_DIR (default ../shared/data), MOEC_PYTHON (default
 * ~/.cache/moec/venv/bin/python, else python3; needs `pip install tokenizers`).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "io/tokenizer.h"
#include "tokenizer_oracle.h"

static int n_pass, n_fail;
static char tmpdir[] = "/tmp/moec_tok_sp_test_XXXXXX";

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (ok) n_pass++; else n_fail++;
}

/* Encode with moec and HF and compare ids; then decode moec's ids with both and compare text. */
static void compare(const moec_tokenizer *t, const char *json, const char *label, const char *text, size_t len,
                    int want_bytes) {
    char what[512];
    int64_t n_ref = 0, n = 0;
    int32_t *ref = oracle_encode(tmpdir, json, text, len, &n_ref), *ids = NULL;
    int ok = ref != NULL;
    if (ok && moec_tokenizer_encode(t, text, len, &ids, &n) != MOEC_OK) {
        printf("  encode failed: %s\n", moec_error_message());
        ok = 0;
    }
    if (ok) {
        int64_t i = 0;
        while (i < n && i < n_ref && ids[i] == ref[i]) i++;
        ok = i == n && n == n_ref;
        if (!ok) printf("  first difference at id %lld (moec %lld ids, HF %lld): moec %d, HF %d\n", (long long)i,
                        (long long)n, (long long)n_ref, i < n ? ids[i] : -1, i < n_ref ? ref[i] : -1);
        else printf("  %lld ids identical\n", (long long)n);
    }
    if (ok && want_bytes) { /* some ids must be byte tokens <0xNN> (ids 3..258 in these files) */
        int64_t nb = 0;
        for (int64_t i = 0; i < n; i++) nb += ids[i] >= 3 && ids[i] <= 258;
        printf("  %lld byte-fallback tokens\n", (long long)nb);
        ok = nb > 0;
    }
    snprintf(what, sizeof what, "%s: encode %s equals Hugging Face", json + strlen(tmpdir) + 1, label);
    check(ok, what);
    size_t dlen = 0, rlen = 0;
    char *dec = NULL, *rdec = ids ? oracle_decode(tmpdir, json, ids, n, &rlen) : NULL;
    ok = rdec && moec_tokenizer_decode(t, ids, n, &dec, &dlen) == MOEC_OK && dlen == rlen && memcmp(dec, rdec, rlen) == 0;
    if (!ok && dec && rdec)
        printf("  moec decode (%zu bytes) '%.80s' != HF (%zu bytes) '%.80s'\n", dlen, dec, rlen, rdec);
    snprintf(what, sizeof what, "%s: decode %s equals Hugging Face", json + strlen(tmpdir) + 1, label);
    check(ok, what);
    free(dec); free(rdec); free(ids); free(ref);
}

/* Write a modified copy of src: edit(root) changes it; then loading must fail with a message containing want. */
static void check_refused(const char *src, const char *label, void (*edit)(cJSON *), const char *want) {
    size_t n;
    char *text = read_all(src, &n), path[512], what[256];
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    int ok = root != NULL;
    if (ok) {
        edit(root);
        char *out = cJSON_PrintUnformatted(root);
        snprintf(path, sizeof path, "%s/bad.json", tmpdir);
        ok = out && write_all(path, out, strlen(out));
        free(out);
        cJSON_Delete(root);
    }
    moec_tokenizer *t = NULL;
    if (ok) {
        ok = moec_tokenizer_load_json(&t, path) != MOEC_OK && t == NULL;
        const char *msg = moec_error_message();
        printf("  -> %s\n", msg);
        ok = ok && strstr(msg, want) && !strchr(msg, '\n');
    }
    moec_tokenizer_free(t);
    snprintf(what, sizeof what, "malformed file refused: %s", label);
    check(ok, what);
}

static void edit_drop_byte(cJSON *root) { /* rename <0x41> so ids stay dense but the byte token is gone */
    cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "vocab");
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(vocab, "<0x41>");
    cJSON_AddItemToObject(vocab, "<byte 41>", v);
}
static void edit_normalizer(cJSON *root) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "NFKC");
    cJSON_ReplaceItemInObject(root, "normalizer", o);
}
static void edit_decoder(cJSON *root) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "WordPiece");
    cJSON_ReplaceItemInObject(root, "decoder", o);
}
static void edit_pretok(cJSON *root) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Whitespace");
    cJSON_ReplaceItemInObject(root, "pre_tokenizer", o);
}
static void edit_regex(cJSON *root) {
    cJSON *seq = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "normalizer"), "normalizers");
    cJSON *rep = cJSON_GetArrayItem(seq, 1), *pat = cJSON_CreateObject();
    cJSON_AddStringToObject(pat, "Regex", " +");
    cJSON_ReplaceItemInObject(rep, "pattern", pat);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    const char *data_dir = getenv("MOEC_DATA_DIR");
    char corpus[1024], args[2048];
    snprintf(corpus, sizeof corpus, "%s/tinystories-sample.txt", data_dir && *data_dir ? data_dir : "../shared/data");
    size_t n_story = 0;
    char *story = read_all(corpus, &n_story);
    check(story != NULL, "read TinyStories sample");
    if (!story) { printf("%d passed, %d failed\n", n_pass, n_fail); return 1; }
    if (n_story > 50000) n_story = 50000;
    while (n_story > 0 && ((uint8_t)story[n_story] & 0xC0) == 0x80) n_story--; /* cut on a character boundary */

    snprintf(args, sizeof args, "sp-build '%s' '%s'", corpus, tmpdir);
    int built = run_oracle(args);
    check(built, "Hugging Face trains the SentencePiece-style tokenizers (oracle)");

    const char *multi = "Caf\xC3\xA9 na\xC3\xAFve \xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1 "
                        "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80\xF0\x9F\x9A\x80 done.";
    static const struct { const char *label, *text; } edge[] = {
        {"empty string", ""},
        {"single space", " "},
        {"leading/trailing spaces", "  Hello world  "},
        {"multiple inner spaces", "a    b  c"},
        {"newlines", "\nOnce upon a time.\n\nThe end.\n"},
        {"tabs and CR", "a\tb\r\nc"},
        {"special tokens in text", "<s>Once</s> upon <unk>a time<s>"},
        {"only specials", "<s></s>"},
        {"space after special", "</s> The"},
    };
    const char *variants[3] = {"sp_prepend.json", "sp_meta_first.json", "sp_meta_split.json"};
    for (int v = 0; built && v < 3; v++) {
        char json[600], what[700];
        snprintf(json, sizeof json, "%s/%s", tmpdir, variants[v]);
        moec_tokenizer *t = NULL;
        moec_status s = moec_tokenizer_load_json(&t, json);
        if (s != MOEC_OK) printf("  %s\n", moec_error_message());
        snprintf(what, sizeof what, "%s: loads", variants[v]);
        check(s == MOEC_OK, what);
        if (s != MOEC_OK) continue;
        snprintf(what, sizeof what, "%s: BOS id from the template is <s> = 1", variants[v]);
        check(moec_tokenizer_bos_id(t) == 1 && moec_tokenizer_token_id(t, "<s>") == 1, what);
        compare(t, json, "TinyStories (50 KB)", story, n_story, 0);
        compare(t, json, "multilingual line (byte fallback)", multi, strlen(multi), 1);
        for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
            compare(t, json, edge[i].label, edge[i].text, strlen(edge[i].text), 0);
        if (v == 0) {
            /* Prepend/Replace + Strip decoder: decode(encode(x)) == x for valid UTF-8 text. */
            int32_t *ids; int64_t n; char *back; size_t bl;
            int ok = moec_tokenizer_encode(t, multi, strlen(multi), &ids, &n) == MOEC_OK;
            ok = ok && moec_tokenizer_decode(t, ids, n, &back, &bl) == MOEC_OK;
            if (ok) { ok = bl == strlen(multi) && !memcmp(back, multi, bl); free(back); free(ids); }
            check(ok, "sp_prepend.json: decode(encode(multilingual)) == text");
            /* Invalid UTF-8 (not reachable through Python): each bad byte falls back to its byte token. */
            const char bad[] = "ab\xFF\xC3";
            ok = moec_tokenizer_encode(t, bad, 4, &ids, &n) == MOEC_OK;
            int found = 0;
            for (int64_t i = 0; ok && i < n; i++) found += ids[i] == moec_tokenizer_token_id(t, "<0xFF>") ||
                                                          ids[i] == moec_tokenizer_token_id(t, "<0xC3>");
            if (ok) free(ids);
            check(ok && found == 2, "sp_prepend.json: invalid UTF-8 bytes become their byte tokens");
            check(moec_tokenizer_save_json(t, "/dev/null") != MOEC_OK, "saving a SentencePiece-style tokenizer is refused");
        }
        moec_tokenizer_free(t);
    }
    if (built) {
        char src[600];
        snprintf(src, sizeof src, "%s/sp_prepend.json", tmpdir);
        check_refused(src, "byte_fallback without <0x41>", edit_drop_byte, "<0x41>");
        check_refused(src, "normalizer NFKC", edit_normalizer, "NFKC");
        check_refused(src, "decoder WordPiece", edit_decoder, "WordPiece");
        check_refused(src, "pre_tokenizer Whitespace", edit_pretok, "Whitespace");
        check_refused(src, "Replace with a regex", edit_regex, "regex");
    }
    free(story);
    snprintf(args, sizeof args, "rm -rf '%s'", tmpdir);
    if (system(args) != 0) printf("  could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
