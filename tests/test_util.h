/* test_util.h — small helpers shared by the C tests (header-only: each test is one translation unit).
 * Whole-file read/write for fixtures, and the Python interpreter of the test virtualenv (MOEC_PYTHON, else
 * ~/.cache/moec/venv/bin/python, else python3). */
#ifndef MOEC_TEST_UTIL_H
#define MOEC_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The file's bytes, NUL-terminated, length in *n; NULL if it cannot be read. Caller frees. */
static inline char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) { buf[sz] = '\0'; *n = (size_t)sz; }
    return buf;
}

/* 1 if all n bytes were written. */
static inline int write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static inline const char *python(void) {
    static char buf[1024];
    const char *p = getenv("MOEC_PYTHON");
    if (p && *p) return p;
    const char *home = getenv("HOME");
    if (home) {
        snprintf(buf, sizeof buf, "%s/.cache/moec/venv/bin/python", home);
        if (access(buf, X_OK) == 0) return buf;
    }
    return "python3";
}

#endif
