/* test_data.c — checks the training-data pipeline (src/train/data.h).
 *
 * Oracles: the published splitmix64 reference outputs; the token file layout read back byte by byte as
 * data.h specifies it; the original corpus (decode(train.bin) + decode(val.bin) must equal it exactly); and the
 * shard's own token array for windows, recomputed here from the documented window-start rules.
 * Also: corrupt token files and impossible corpora are refused with errors (run under ASan too).
 *
 * Run from the repository root; MOEC_DATA_DIR (default ../shared/data) holds tinyshakespeare.txt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/data.h"
#include "test_util.h"

static int n_pass, n_fail;
static char tmpdir[] = "/tmp/moec_data_test_XXXXXX";

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "PASS" : "FAIL", what);
    if (ok) n_pass++; else n_fail++;
}

static uint32_t get_u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static int64_t get_i64(const char *p) { int64_t v; memcpy(&v, p, 8); return v; }

static void test_rng(void) {
    /* splitmix64 from state 0: reference values of the published algorithm (Vigna's splitmix64.c) */
    uint64_t st = 0;
    uint64_t a = moec_rng_next(&st), b = moec_rng_next(&st), c = moec_rng_next(&st);
    check(a == 0xe220a8397b1dcdafULL && b == 0x6e789e6aa1b965f4ULL && c == 0x06c45d188009454fULL &&
              st == 3 * 0x9e3779b97f4a7c15ULL,
          "splitmix64 reference outputs from seed 0");
}

/* Open a corrupted copy of a good token file; must fail with an error and no shard. */
static int refuses(const char *good, size_t n, size_t off, const void *patch, size_t plen, size_t new_len,
                   int vocab, const char *what) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.bin", tmpdir);
    char *copy = malloc(n + 64);
    memcpy(copy, good, n);
    memset(copy + n, 0, 64);
    if (patch) memcpy(copy + off, patch, plen);
    int ok = write_all(path, copy, new_len);
    free(copy);
    moec_token_shard *s = NULL;
    moec_status st = moec_shard_open(&s, path, vocab);
    printf("  %-40s -> %s: %s\n", what, moec_status_name(st), moec_error_message());
    ok = ok && st != MOEC_OK && s == NULL;
    moec_shard_close(s);
    return ok;
}

int main(void) {
    if (!mkdtemp(tmpdir)) { printf("cannot create a temporary directory\n0 passed, 1 failed\n"); return 1; }
    const char *data_dir = getenv("MOEC_DATA_DIR");
    if (!data_dir || !*data_dir) data_dir = "../shared/data";
    char path[512], corpus_path[512], out_dir[512], train_path[600], val_path[600];
    snprintf(path, sizeof path, "%s/tinyshakespeare.txt", data_dir);
    snprintf(corpus_path, sizeof corpus_path, "%s/corpus.txt", tmpdir);
    snprintf(out_dir, sizeof out_dir, "%s/out/sub", tmpdir); /* two missing levels: prepare creates them */
    snprintf(train_path, sizeof train_path, "%s/train.bin", out_dir);
    snprintf(val_path, sizeof val_path, "%s/val.bin", out_dir);

    test_rng();

    size_t full_len;
    char *full = read_all(path, &full_len);
    check(full != NULL, "tinyshakespeare.txt readable (set MOEC_DATA_DIR if not in ../shared/data)");
    if (!full) goto done;
    size_t len = full_len < 200000 ? full_len : 200000;
    const char *specials[] = {"<|endoftext|>"};
    moec_tokenizer *t = NULL;
    if (moec_tokenizer_train(&t, full, 100000, 512, specials, 1) != MOEC_OK || !write_all(corpus_path, full, len)) {
        check(0, "set up tokenizer and corpus");
        goto done;
    }

    /* prepare */
    int64_t nt = 0, nv = 0;
    moec_status s = moec_data_prepare(corpus_path, t, out_dir, 0.1, &nt, &nv);
    if (s != MOEC_OK) printf("  prepare: %s\n", moec_error_message());
    check(s == MOEC_OK && nt > 0 && nv > 0, "data_prepare writes train.bin and val.bin");
    if (s != MOEC_OK) goto done;
    printf("  %zu bytes -> %lld train + %lld val tokens\n", len, (long long)nt, (long long)nv);

    size_t tn, vn;
    char *traw = read_all(train_path, &tn), *vraw = read_all(val_path, &vn);
    check(traw && vraw && tn == 32 + 4 * (size_t)nt && vn == 32 + 4 * (size_t)nv && !memcmp(traw, "MOECTOK1", 8) &&
              get_u32(traw + 8) == 1 && get_u32(traw + 12) == 4 && get_i64(traw + 16) == nt &&
              get_u32(traw + 24) == 512 && get_u32(traw + 28) == 0 && get_i64(vraw + 16) == nv,
          "file layout: magic, version 1, width 4, count, vocab 512, size 32 + 4N");
    {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -q tmp", out_dir);
        check(system(cmd) != 0, "no temporary files left behind");
    }

    moec_token_shard *tr = NULL, *va = NULL;
    s = moec_shard_open(&tr, train_path, 512);
    if (s == MOEC_OK) s = moec_shard_open(&va, val_path, 512);
    if (s != MOEC_OK) printf("  open: %s\n", moec_error_message());
    check(s == MOEC_OK && moec_shard_len(tr) == nt && moec_shard_len(va) == nv &&
              !memcmp(moec_shard_tokens(tr), traw + 32, 4 * (size_t)nt),
          "shard_open maps both files; tokens are the file's");
    if (s != MOEC_OK) goto done;
    {
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        int ok = moec_tokenizer_decode(t, moec_shard_tokens(tr), nt, &a, &na) == MOEC_OK &&
                 moec_tokenizer_decode(t, moec_shard_tokens(va), nv, &b, &nb) == MOEC_OK && na + nb == len &&
                 !memcmp(a, full, na) && !memcmp(b, full + na, nb);
        check(ok, "decode(train) + decode(val) == corpus byte for byte (contiguous split, nothing lost)");
        /* val is the tail: about 10% of the text, starting at a line start */
        check(ok && full[na - 1] == '\n' && nb > len / 20 && nb < len / 5, "val is the last ~10% of the text, from a line start");
        free(a);
        free(b);
    }

    /* sampling */
    {
        enum { B = 4, S = 64 };
        int32_t in1[B * S], tg1[B * S], in2[B * S], tg2[B * S];
        uint64_t r1 = 42, r2 = 42, r3 = 43;
        moec_shard_sample_batch(tr, &r1, B, S, in1, tg1);
        moec_shard_sample_batch(tr, &r2, B, S, in2, tg2);
        check(r1 == r2 && r1 != 42 && !memcmp(in1, in2, sizeof in1) && !memcmp(tg1, tg2, sizeof tg1),
              "sample_batch is deterministic given the rng state, and advances it");
        moec_shard_sample_batch(tr, &r3, B, S, in2, tg2);
        check(memcmp(in1, in2, sizeof in1) != 0, "a different seed gives different windows");
        int ok = 1;
        const int32_t *tok = moec_shard_tokens(tr);
        uint64_t r = 42;
        for (int b = 0; b < B; b++) {
            int64_t start = (int64_t)(moec_rng_next(&r) % (uint64_t)(nt - S));
            for (int j = 0; j < S; j++) {
                ok &= in1[b * S + j] == tok[start + j] && tg1[b * S + j] == tok[start + j + 1];
                if (j + 1 < S) ok &= tg1[b * S + j] == in1[b * S + j + 1];
            }
        }
        check(ok, "windows are the documented ones; targets are inputs shifted by one");
        /* many draws: every start stays in range (ASan would catch a read past the end) */
        for (int k = 0; k < 2000; k++) moec_shard_sample_batch(va, &r1, B, S, in1, tg1);
        check(1, "2000 sampled batches from the small val shard stay in bounds");

        int64_t nw = moec_shard_eval_windows(va, S);
        check(nw == (nv - 1) / S, "eval windows = (len - 1) / S");
        const int32_t *vt = moec_shard_tokens(va);
        char *seen = calloc((size_t)nv, 1);
        ok = seen != NULL;
        for (int64_t i = 0; ok && i < nw / B; i++) {
            moec_shard_eval_batch(va, i, B, S, in1, tg1);
            for (int b = 0; b < B; b++) {
                int64_t start = (i * B + b) * S;
                for (int j = 0; j < S; j++) {
                    ok &= in1[b * S + j] == vt[start + j] && tg1[b * S + j] == vt[start + j + 1];
                    ok &= !seen[start + j];
                    seen[start + j] = 1;
                }
            }
        }
        moec_shard_eval_batch(va, 0, B, S, in2, tg2);
        moec_shard_eval_batch(va, 0, B, S, in1, tg1);
        ok &= !memcmp(in1, in2, sizeof in1);
        check(ok, "eval batches: documented non-overlapping windows, each token once, deterministic");
        free(seen);
        /* a shard shorter than the window is read cyclically, not out of bounds */
        int L = (int)nv + 10;
        int32_t *bi = malloc((size_t)L * sizeof *bi), *bt = malloc((size_t)L * sizeof *bt);
        ok = bi && bt;
        if (ok) {
            moec_shard_sample_batch(va, &r1, 1, L, bi, bt);
            moec_shard_eval_batch(va, 3, 1, L, bi, bt);
            for (int j = 0; j < L; j++) ok &= bi[j] == vt[j % nv] && bt[j] == vt[(j + 1) % nv];
        }
        check(ok, "a window longer than the shard is read cyclically, in bounds");
        free(bi);
        free(bt);
    }
    moec_shard_close(va);
    moec_shard_close(tr);

    /* corruption */
    {
        int ok = 1;
        uint32_t two = 2, big_vocab = 100000;
        int64_t more = nt + 1, less = nt - 1, neg = -5, huge = INT64_MAX;
        int32_t bad_id = 512, neg_id = -1;
        ok &= refuses(traw, tn, 0, "MOECTOK2", 8, tn, 512, "wrong magic");
        ok &= refuses(traw, tn, 8, &two, 4, tn, 512, "version 2");
        ok &= refuses(traw, tn, 12, &two, 4, tn, 512, "2 bytes per token");
        ok &= refuses(traw, tn, 16, &more, 8, tn, 512, "count larger than the file");
        ok &= refuses(traw, tn, 16, &less, 8, tn, 512, "count smaller than the file");
        ok &= refuses(traw, tn, 16, &neg, 8, tn, 512, "negative count");
        ok &= refuses(traw, tn, 16, &huge, 8, tn, 512, "count INT64_MAX");
        ok &= refuses(traw, tn, 0, NULL, 0, tn - 3, 512, "truncated mid-token");
        ok &= refuses(traw, tn, 0, NULL, 0, 20, 512, "shorter than the header");
        ok &= refuses(traw, tn, 0, NULL, 0, 0, 512, "empty file");
        ok &= refuses(traw, tn, 24, &big_vocab, 4, tn, 512, "tokenizer vocab larger than the model's");
        ok &= refuses(traw, tn, 32 + 4 * 1000, &bad_id, 4, tn, 512, "token id == vocab size");
        ok &= refuses(traw, tn, 32 + 4 * (size_t)(nt - 1), &neg_id, 4, tn, 512, "negative token id (last token)");
        ok &= refuses(traw, tn, 0, NULL, 0, tn, 300, "model vocab smaller than the file's");
        moec_token_shard *x = NULL;
        snprintf(path, sizeof path, "%s/missing.bin", tmpdir);
        ok &= moec_shard_open(&x, path, 512) == MOEC_ERR_IO && !x;
        check(ok, "corrupt or mismatched token files are refused");
    }

    /* prepare errors */
    {
        int64_t a, b;
        int ok = 1;
        snprintf(path, sizeof path, "%s/tiny.txt", tmpdir);
        ok &= write_all(path, "", 0) && moec_data_prepare(path, t, out_dir, 0.1, &a, &b) == MOEC_ERR_FORMAT;
        printf("  empty corpus: %s\n", moec_error_message());
        ok &= write_all(path, "hello there", 11) && moec_data_prepare(path, t, out_dir, 0.1, &a, &b) == MOEC_ERR_FORMAT;
        printf("  one line: %s\n", moec_error_message());
        ok &= write_all(path, "hi\nx", 4) && moec_data_prepare(path, t, out_dir, 0.1, &a, &b) == MOEC_ERR_FORMAT;
        printf("  tiny: %s\n", moec_error_message());
        ok &= moec_data_prepare(corpus_path, t, out_dir, 0.0, &a, &b) == MOEC_ERR_ARG;
        ok &= moec_data_prepare(corpus_path, t, out_dir, 1.0, &a, &b) == MOEC_ERR_ARG;
        ok &= moec_data_prepare(corpus_path, t, out_dir, 0.0 / 0.0, &a, &b) == MOEC_ERR_ARG;
        snprintf(path, sizeof path, "%s/nope.txt", tmpdir);
        ok &= moec_data_prepare(path, t, out_dir, 0.1, &a, &b) == MOEC_ERR_IO;
        check(ok, "empty, one-line and tiny corpora, bad val_fraction and missing files are errors");
    }
    free(traw);
    free(vraw);
    moec_tokenizer_free(t);

done:
    free(full);
    {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) printf("  could not remove %s\n", tmpdir);
    }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
