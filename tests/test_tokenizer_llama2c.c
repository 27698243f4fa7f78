/* test_tokenizer_llama2c.c — moec reads the tokenizer.json that tests/llama2c_tokenizer.py makes from
 * stories260K's llama2.c tokenizer (tok512.bin), and encodes and decodes exactly as llama2.c does.
 *
 * Oracle: llama2.c's own encoding algorithm (dummy prefix " ", characters or byte fallback, best-scored pair
 * merged first), re-implemented in tests/llama2c_tokenizer.py from the tok512.bin pieces and scores, which
 * never looks at the tokenizer.json; the script's `verify` checks the Hugging Face `tokenizers` library against
 * the same oracle (run here too). Checked here: the file loads (512 ids, BOS 1); moec's ids equal the oracle's on the first 200
 * non-empty TinyStories lines plus lines that need byte fallback; the text llama2.c generated greedily
 * (greedy-200.txt, newlines included) encodes to the oracle's ids and decodes back byte for byte.
 *
 * Run from the repository root. Environment: MOEC_SHARED (default ../shared), MOEC_PYTHON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/tokenizer.h"
#include "test_util.h"

static int n_pass, n_fail;
static char tmpdir[] = "/tmp/moec_tok_llama2c_XXXXXX";

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (ok) n_pass++; else n_fail++;
}

static int run_script(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' tests/llama2c_tokenizer.py %s", python(), args);
    fflush(stdout); /* keep the script's output after ours */
    int rc = system(cmd);
    if (rc != 0) printf("  command failed (status %d): %s\n", rc, cmd);
    return rc == 0;
}

static int same_ids(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

int main(void) {
    const char *shared = getenv("MOEC_SHARED") ? getenv("MOEC_SHARED") : "../shared";
    char tok_bin[1024], sample[1024], greedy[1024], json[1024], lines_path[1024], ids_path[1024], args[4096];
    snprintf(tok_bin, sizeof tok_bin, "%s/models/stories260K/tok512.bin", shared);
    snprintf(sample, sizeof sample, "%s/data/tinystories-sample.txt", shared);
    snprintf(greedy, sizeof greedy, "%s/models/stories260K/greedy-200.txt", shared);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(json, sizeof json, "%s/tokenizer.json", tmpdir);
    snprintf(lines_path, sizeof lines_path, "%s/lines.txt", tmpdir);
    snprintf(ids_path, sizeof ids_path, "%s/ids.bin", tmpdir);

    snprintf(args, sizeof args, "convert '%s' '%s' > /dev/null", tok_bin, json);
    moec_tokenizer *t = NULL;
    int ok = run_script(args) && moec_tokenizer_load_json(&t, json) == MOEC_OK;
    if (!ok && !t) printf("  %s\n", moec_error_message());
    check(ok && moec_tokenizer_vocab_size(t) == 512 && moec_tokenizer_bos_id(t) == 1 &&
          moec_tokenizer_token_id(t, "<0x0A>") == 13 && moec_tokenizer_token_id(t, "\xe2\x96\x81the") == 265,
          "converted tok512 loads: 512 ids, BOS 1, <0x0A> = 13, \"\xe2\x96\x81the\" = 265 (llama2.c's ' the')");
    if (!t) goto done;
    snprintf(args, sizeof args, "verify '%s' '%s' '%s' 200", tok_bin, json, sample);
    check(run_script(args), "Hugging Face tokenizers on the file == llama2.c's algorithm (200 lines + extras)");

    /* The lines: first 200 TinyStories lines with a non-blank character, then byte-fallback cases. */
    size_t n_text;
    char *text = read_all(sample, &n_text);
    FILE *f = fopen(lines_path, "wb");
    int n_lines = 0;
    for (char *p = text; text && p < text + n_text && n_lines < 200;) {
        char *e = memchr(p, '\n', (size_t)(text + n_text - p));
        if (!e) e = text + n_text;
        int blank = 1;
        for (char *q = p; q < e; q++) blank &= *q == ' ' || *q == '\t' || *q == '\r';
        if (!blank) { fwrite(p, 1, (size_t)(e - p), f); fputc('\n', f); n_lines++; }
        p = e + 1;
    }
    fputs("Zo\xc3\xab said \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 to the caf\xc3\xa9\n  two  spaces,\ta tab  \nx\n", f);
    n_lines += 3;
    fclose(f);
    free(text);
    snprintf(args, sizeof args, "encode-lines '%s' '%s' %d '%s'", tok_bin, lines_path, n_lines, ids_path);
    size_t n_lt = 0, n_ib = 0;
    char *lt = run_script(args) ? read_all(lines_path, &n_lt) : NULL;
    int32_t *want = lt ? (int32_t *)read_all(ids_path, &n_ib) : NULL;
    int n_same = 0, n_checked = 0;
    int64_t n_ids = 0, n_byte = 0, w = 0, n_words = want ? (int64_t)(n_ib / 4) : 0;
    for (char *p = lt; want && p < lt + n_lt; n_checked++) {
        char *e = memchr(p, '\n', (size_t)(lt + n_lt - p));
        int32_t *ids = NULL;
        int64_t n = 0, nw = w < n_words ? want[w] : -1;
        if (nw < 0 || w + 1 + nw > n_words) break;
        if (moec_tokenizer_encode(t, p, (size_t)(e - p), &ids, &n) == MOEC_OK && same_ids(ids, n, want + w + 1, nw))
            n_same++;
        else if (n_checked - n_same <= 3)
            printf("  line %d '%.60s': moec %lld ids, llama2.c %lld ids\n", n_checked, p, (long long)n, (long long)nw);
        for (int64_t i = 0; i < nw; i++) n_byte += want[w + 1 + i] >= 3 && want[w + 1 + i] < 259;
        n_ids += nw;
        w += 1 + nw;
        free(ids);
        p = e + 1;
    }
    printf("  %d of %d lines identical (%lld ids, %lld byte-fallback)\n", n_same, n_checked, (long long)n_ids,
           (long long)n_byte);
    check(n_checked == n_lines && n_same == n_lines && n_byte > 0,
          "encode equals llama2.c's algorithm on 200 TinyStories lines + byte-fallback lines");
    free(lt);
    free(want);

    /* greedy-200.txt: what llama2.c printed (its decoder drops the space after BOS), newlines included. */
    size_t n_g = 0, n_gi = 0;
    char *g = read_all(greedy, &n_g);
    snprintf(args, sizeof args, "encode-file '%s' '%s' '%s'", tok_bin, greedy, ids_path);
    int32_t *gi = g && run_script(args) ? (int32_t *)read_all(ids_path, &n_gi) : NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    ok = gi && moec_tokenizer_encode(t, g, n_g, &ids, &n) == MOEC_OK && same_ids(ids, n, gi, (int64_t)(n_gi / 4));
    printf("  greedy-200.txt: %zu bytes, %lld ids\n", n_g, (long long)n);
    check(ok, "greedy-200.txt encodes to llama2.c's ids");
    char *dec = NULL;
    size_t n_dec = 0;
    ok = gi && moec_tokenizer_decode(t, gi, (int64_t)(n_gi / 4), &dec, &n_dec) == MOEC_OK && n_dec == n_g &&
         memcmp(dec, g, n_g) == 0;
    check(ok, "greedy-200.txt ids decode back to the text byte for byte");
    /* With BOS first (what generation starts from), the decoder output is the same text. */
    if (gi) {
        int32_t *with_bos = malloc(n_gi + 4);
        with_bos[0] = 1;
        memcpy(with_bos + 1, gi, n_gi);
        char *dec2 = NULL;
        size_t n_dec2 = 0;
        ok = moec_tokenizer_decode(t, with_bos, (int64_t)(n_gi / 4) + 1, &dec2, &n_dec2) == MOEC_OK;
        printf("  decode(<s> + ids) = %zu bytes, starts '%.12s'\n", n_dec2, dec2 ? dec2 : "");
        free(dec2);
        free(with_bos);
    }
    free(dec);
    free(ids);
    free(gi);
    free(g);

done:
    moec_tokenizer_free(t);
    snprintf(args, sizeof args, "rm -rf '%s'", tmpdir);
    if (system(args) != 0) printf("  could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
