/* tokenizer_oracle.h — the C side of tests/tokenizer_oracle.py, shared by the tokenizer tests (header-only).
 * The Hugging Face `tokenizers` library is the oracle: it runs as a subprocess that exchanges files in `dir`.
 * Run from the repository root. */
#ifndef MOEC_TEST_TOKENIZER_ORACLE_H
#define MOEC_TEST_TOKENIZER_ORACLE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "test_util.h"

/* Runs `python tests/tokenizer_oracle.py ARGS`; 1 on success (exit 77 means `tokenizers` is missing). */
static inline int run_oracle(const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' tests/tokenizer_oracle.py %s", python(), args);
    int rc = system(cmd);
    if (rc != 0) {
        printf("  oracle command failed (status %d): %s\n", rc, cmd);
        if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) printf("  -> pip install tokenizers into %s\n", python());
    }
    return rc == 0;
}

/* HF ids of text (no BOS); malloc'ed or NULL. */
static inline int32_t *oracle_encode(const char *dir, const char *json, const char *text, size_t len, int64_t *n) {
    char in[512], out[512], args[2048];
    snprintf(in, sizeof in, "%s/in.txt", dir);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    if (!write_all(in, text, len)) return NULL;
    snprintf(args, sizeof args, "encode-raw '%s' '%s' '%s'", json, in, out);
    if (!run_oracle(args)) return NULL;
    size_t nb;
    int32_t *ids = (int32_t *)read_all(out, &nb);
    if (ids) *n = (int64_t)(nb / 4);
    return ids;
}

/* HF decode of ids (keeping specials); malloc'ed or NULL. */
static inline char *oracle_decode(const char *dir, const char *json, const int32_t *ids, int64_t n, size_t *len) {
    char in[512], out[512], args[2048];
    snprintf(in, sizeof in, "%s/ids.bin", dir);
    snprintf(out, sizeof out, "%s/text.txt", dir);
    if (!write_all(in, ids, (size_t)n * 4)) return NULL;
    snprintf(args, sizeof args, "decode '%s' '%s' '%s'", json, in, out);
    if (!run_oracle(args)) return NULL;
    return read_all(out, len);
}

#endif
