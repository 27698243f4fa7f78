/* test_tokenizer_regex.c — checks moec's byte-level BPE tokenizer.json files whose pre-tokenizer is Llama 3 /
 * Qwen2's Sequence[Split(Regex(PAT), Isolated), ByteLevel(use_regex=false)] against the Hugging Face `tokenizers`
 * library.
 *
 * Oracle: tests/tokenizer_oracle.py regex-build trains one tokenizer per pattern (Llama 3: \p{N}{1,3}; Qwen2:
 * \p{N}) with the library itself on Tiny Shakespeare; moec's ids must equal encode(text, add_special_tokens=False)
 * .ids id for id, and moec's decode must equal decode(ids) and give the text back, on TinyStories text (first
 * 50 KB), a multilingual line, mixed-case contractions, runs of spaces/newlines/tabs/CR, numbers, and a long
 * pseudo-random mix of such pieces. Also: moec_tokenizer_save_json writes the same pre-tokenizer back (the
 * library encodes identically with the re-saved file), and other patterns / Split options are refused with a
 * one-line error.
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
static char tmpdir[] = "/tmp/moec_tok_regex_test_XXXXXX";

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (ok) n_pass++; else n_fail++;
}

/* Encode with moec and HF and compare ids; then decode moec's ids with both and compare text. */
static void compare(const moec_tokenizer *t, const char *json, const char *label, const char *text, size_t len) {
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
    snprintf(what, sizeof what, "%s: encode %s equals Hugging Face", json + strlen(tmpdir) + 1, label);
    check(ok, what);
    size_t dlen = 0, rlen = 0;
    char *dec = NULL, *rdec = ids ? oracle_decode(tmpdir, json, ids, n, &rlen) : NULL;
    ok = rdec && moec_tokenizer_decode(t, ids, n, &dec, &dlen) == MOEC_OK && dlen == rlen && memcmp(dec, rdec, rlen) == 0;
    /* byte-level decoding is lossless: moec's decode of its own ids gives the text back */
    int round = dec && dlen == len && memcmp(dec, text, len) == 0;
    if (!ok && dec && rdec)
        printf("  moec decode (%zu bytes) '%.80s' != HF (%zu bytes) '%.80s'\n", dlen, dec, rlen, rdec);
    snprintf(what, sizeof what, "%s: decode %s equals Hugging Face", json + strlen(tmpdir) + 1, label);
    check(ok, what);
    snprintf(what, sizeof what, "%s: decode(encode(%s)) == text", json + strlen(tmpdir) + 1, label);
    check(round, what);
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

static cJSON *split_of(cJSON *root) {
    return cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "pretokenizers"), 0);
}
static void edit_pattern(cJSON *root) { /* GPT-4o-style pattern: not one moec implements */
    cJSON *pat = cJSON_GetObjectItem(split_of(root), "pattern");
    cJSON_ReplaceItemInObject(pat, "Regex", cJSON_CreateString("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|\\s+"));
}
static void edit_behavior(cJSON *root) {
    cJSON_ReplaceItemInObject(split_of(root), "behavior", cJSON_CreateString("Removed"));
}
static void edit_string_pattern(cJSON *root) {
    cJSON *pat = cJSON_CreateObject();
    cJSON_AddStringToObject(pat, "String", " ");
    cJSON_ReplaceItemInObject(split_of(root), "pattern", pat);
}
static void edit_use_regex(cJSON *root) {
    cJSON *bl = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "pretokenizers"), 1);
    cJSON_ReplaceItemInObject(bl, "use_regex", cJSON_CreateTrue());
}

/* A deterministic pseudo-random text of pieces chosen to hit every alternative of the patterns and their
 * boundaries (contractions in any case, letter runs with a leading mark/space/tab, digit runs, punctuation with
 * trailing newlines, whitespace runs ending in newlines or not). malloc'ed, NUL-terminated. */
static char *torture_text(size_t *len) {
    static const char *piece[] = {
        "'s", "'S", "'t", "'T", "'re", "'RE", "'rE", "'ve", "'Ve", "'m", "'M", "'ll", "'LL", "'lL", "'d", "'D",
        "'x", "'", "''", "\xC5\xBF", "don", "He", "WORLD", "a", "Z", "caf\xC3\xA9", "\xCE\xBA\xCE\xB1\xCE\xBB\xCF\x8C",
        "\xD0\xBC\xD0\xB8\xD1\x80", "\xE4\xBD\xA0\xE5\xA5\xBD", "\xF0\x9F\x98\x80", "1", "12", "123", "1234",
        "12345", "\xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4", "\xC2\xBD", "\xC2\xB2", ",", ".", "!!", "?", "-", "(", ")",
        "\"", "#", "$", " ", " ", " ", "  ", "   ", "\t", "\t\t", "\n", "\n", "\n\n", "\r\n", "\r", " \n ",
        "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x83", "\xCC\x81", "\x0B", "\x0C",
    };
    size_t np = sizeof piece / sizeof piece[0], cap = 64, n = 0;
    char *out = malloc(cap);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int k = 0; out && k < 20000; k++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        const char *p = piece[x % np];
        size_t m = strlen(p);
        if (n + m + 1 > cap) {
            char *g = realloc(out, cap * 2);
            if (!g) { free(out); return NULL; }
            out = g; cap *= 2;
        }
        memcpy(out + n, p, m);
        n += m;
    }
    if (out) out[n] = '\0';
    *len = n;
    return out;
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    const char *data_dir = getenv("MOEC_DATA_DIR");
    char corpus[1024], stories[1024], args[2048];
    const char *dd = data_dir && *data_dir ? data_dir : "../shared/data";
    snprintf(corpus, sizeof corpus, "%s/tinyshakespeare.txt", dd);
    snprintf(stories, sizeof stories, "%s/tinystories-sample.txt", dd);
    size_t n_story = 0;
    char *story = read_all(stories, &n_story);
    check(story != NULL, "read TinyStories sample");
    if (!story) { printf("%d passed, %d failed\n", n_pass, n_fail); return 1; }
    if (n_story > 50000) n_story = 50000;
    while (n_story > 0 && ((uint8_t)story[n_story] & 0xC0) == 0x80) n_story--; /* cut on a character boundary */

    snprintf(args, sizeof args, "regex-build '%s' '%s'", corpus, tmpdir);
    int built = run_oracle(args);
    check(built, "Hugging Face trains the Llama 3 / Qwen2 pattern tokenizers (oracle)");

    const char *multi = "Caf\xC3\xA9 na\xC3\xAFve \xCE\x9A\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xAD\xCF\x81\xCE\xB1 "
                        "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C "
                        "\xF0\x9F\x98\x80\xF0\x9F\x9A\x80 \xD9\xA1\xD9\xA2\xD9\xA3 12345 1,000,000 3.14159 x2 "
                        "\xC2\xBD\xC2\xB2 done.";
    size_t n_tort = 0;
    char *tort = torture_text(&n_tort);
    static const struct { const char *label, *text; } edge[] = {
        {"empty string", ""},
        {"single space", " "},
        {"contractions in mixed case", "DON'T He'S we'Re THEY'LL i'M she'd It'S 'tis 've"},
        {"long s contraction", "x'\xC5\xBF y'\xC5\xBFt"},
        {"spaces and newlines", "a  \n\n  b"},
        {"trailing spaces", "end.   "},
        {"leading spaces", "   start"},
        {"CRLF", "line one\r\nline two\r\n\r\n"},
        {"tabs", "a\tb\t\tc \t d\t"},
        {"punctuation then newlines", "Hi!!!\n\n\nThere...\r\n?"},
        {"newline then letters", "\nword\n word"},
        {"digits", "0 12 123 1234 12345 123456 1234567"},
        {"no-break and ideographic space", "a\xC2\xA0" "b\xE3\x80\x80" "c \xC2\xA0 d"},
        {"special tokens in text", "<|endoftext|>Once upon<|endoftext|> a time<|endoftext|>"},
    };
    const char *variants[2] = {"llama3.json", "qwen2.json"};
    for (int v = 0; built && v < 2; v++) {
        char json[600], what[700];
        snprintf(json, sizeof json, "%s/%s", tmpdir, variants[v]);
        moec_tokenizer *t = NULL;
        moec_status s = moec_tokenizer_load_json(&t, json);
        if (s != MOEC_OK) printf("  %s\n", moec_error_message());
        snprintf(what, sizeof what, "%s: loads", variants[v]);
        check(s == MOEC_OK, what);
        if (s != MOEC_OK) continue;
        compare(t, json, "TinyStories (50 KB)", story, n_story);
        compare(t, json, "multilingual line", multi, strlen(multi));
        for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
            compare(t, json, edge[i].label, edge[i].text, strlen(edge[i].text));
        if (tort) compare(t, json, "pseudo-random mix of pieces", tort, n_tort);
        /* Re-saved by moec, the file must keep the Split pattern: the library encodes identically with it. */
        char resaved[700];
        snprintf(resaved, sizeof resaved, "%s/resaved_%s", tmpdir, variants[v]);
        s = moec_tokenizer_save_json(t, resaved);
        if (s != MOEC_OK) printf("  %s\n", moec_error_message());
        snprintf(what, sizeof what, "%s: save_json succeeds", variants[v]);
        check(s == MOEC_OK, what);
        if (s == MOEC_OK) compare(t, resaved, "multilingual line (re-saved file)", multi, strlen(multi));
        if (s == MOEC_OK && tort) compare(t, resaved, "pseudo-random mix (re-saved file)", tort, n_tort);
        moec_tokenizer_free(t);
    }
    if (built) { /* Llama 3's own post_processor: Sequence[ByteLevel, TemplateProcessing adding BOS] */
        char src[600], dst[600];
        snprintf(src, sizeof src, "%s/llama3.json", tmpdir);
        snprintf(dst, sizeof dst, "%s/llama3_bos.json", tmpdir);
        size_t n;
        char *text = read_all(src, &n);
        cJSON *root = text ? cJSON_Parse(text) : NULL;
        free(text);
        moec_tokenizer *t0 = NULL;
        int bos = -1, ok = root && moec_tokenizer_load_json(&t0, src) == MOEC_OK;
        if (ok) bos = moec_tokenizer_token_id(t0, "<|endoftext|>");
        moec_tokenizer_free(t0);
        if (ok && bos >= 0) {
            char post[1024];
            snprintf(post, sizeof post,
                     "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                     "\"trim_offsets\":false,\"use_regex\":true},{\"type\":\"TemplateProcessing\",\"single\":"
                     "[{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
                     "\"type_id\":0}}],\"pair\":[],\"special_tokens\":{\"<|endoftext|>\":{\"id\":\"<|endoftext|>\","
                     "\"ids\":[%d],\"tokens\":[\"<|endoftext|>\"]}}}]}", bos);
            cJSON_ReplaceItemInObject(root, "post_processor", cJSON_Parse(post));
            char *out = cJSON_PrintUnformatted(root);
            ok = out && write_all(dst, out, strlen(out));
            free(out);
        }
        cJSON_Delete(root);
        moec_tokenizer *t = NULL;
        ok = ok && moec_tokenizer_load_json(&t, dst) == MOEC_OK;
        if (!ok) printf("  %s\n", moec_error_message());
        check(ok && moec_tokenizer_bos_id(t) == bos, "Llama 3 post_processor (ByteLevel + BOS template) loads, BOS read");
        if (ok) compare(t, dst, "multilingual line (with BOS template; encode adds no BOS)", multi, strlen(multi));
        moec_tokenizer_free(t);

        check_refused(src, "unknown Split pattern", edit_pattern, "unsupported pre-tokenizer pattern");
        check_refused(src, "Split behavior Removed", edit_behavior, "Split");
        check_refused(src, "Split with a String pattern", edit_string_pattern, "unsupported pre-tokenizer pattern");
        check_refused(src, "ByteLevel use_regex=true after Split", edit_use_regex, "use_regex");
    }
    free(tort);
    free(story);
    snprintf(args, sizeof args, "rm -rf '%s'", tmpdir);
    if (system(args) != 0) printf("  could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
