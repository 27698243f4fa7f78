/* cli.c — flag parsing and error reporting shared by the moec subcommands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "io/model_dir.h"
#include "kernels/cpu/qmatmul.h"

/* ------------------------------------------------------------------ flags */


int fail(moec_status st) {
    fprintf(stderr, "moec: error: %s\n", moec_error_message()[0] ? moec_error_message() : moec_status_name(st));
    return 1;
}

int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "moec: error: %s%s%s (see `moec help`)\n", msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

/* Every flag takes a value: --name value. Unknown flags are rejected by the caller's `allowed` list. */
int parse_flags(flags *f, int argc, char **argv, const char *const *allowed) {
    f->n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) return usage_error("unexpected argument", a);
        int ok = 0;
        for (const char *const *p = allowed; *p; p++) ok |= strcmp(*p, a + 2) == 0;
        if (!ok) return usage_error("unknown flag", a);
        if (i + 1 >= argc) return usage_error("flag needs a value", a);
        if (f->n == (int)(sizeof f->items / sizeof f->items[0])) return usage_error("too many flags", NULL);
        f->items[f->n++] = (flag){a + 2, argv[++i]};
    }
    return 0;
}

const char *get(const flags *f, const char *name) {
    for (int i = f->n - 1; i >= 0; i--)
        if (strcmp(f->items[i].name, name) == 0) return f->items[i].value;
    return NULL;
}

int get_int(const flags *f, const char *name, long long lo, long long hi, long long *out) {
    const char *v = get(f, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "moec: error: --%s expects an integer in [%lld, %lld], got '%s'\n", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 1;
}

int get_float(const flags *f, const char *name, double lo, double hi, float *out) {
    const char *v = get(f, name);
    if (!v) return 0;
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "moec: error: --%s expects a number in [%g, %g], got '%s'\n", name, lo, hi, v);
        return -1;
    }
    *out = (float)x;
    return 1;
}

int setup_threads(const flags *f) {
    long long n = 0;
    if (get_int(f, "threads", 0, 1024, &n) < 0) return -1;
    moec_status st = moec_threads_init((int)n);
    return st == MOEC_OK ? 0 : fail(st);
}

int setup_activations(const flags *f) {
    const char *a = get(f, "activations");
    if (!a || !strcmp(a, "q8")) moec_qmat_set_activations(MOEC_QACT_Q8);
    else if (!strcmp(a, "f32")) moec_qmat_set_activations(MOEC_QACT_F32);
    else return usage_error("--activations must be q8 or f32", a);
    return 0;
}

int get_kv(const flags *f, moec_kv_dtype *kv) {
    const char *a = get(f, "kv");
    if (!a || !strcmp(a, "f16")) *kv = MOEC_KV_F16;
    else if (!strcmp(a, "f32")) *kv = MOEC_KV_F32;
    else return usage_error("--kv must be f16 or f32", a);
    return 0;
}

/* "i1 i2 i3" (spaces or commas) → ids. */
int parse_ids(const char *s, int32_t **ids, int64_t *n) {
    int64_t cap = 16, k = 0;
    int32_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return usage_error("out of memory", NULL);
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (end == s || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return usage_error("--ids must be non-negative integers separated by spaces", s);
        }
        if (k == cap) {
            int32_t *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!nv) {
                free(v);
                return usage_error("out of memory", NULL);
            }
            v = nv;
        }
        v[k++] = (int32_t)x;
        s = end;
    }
    if (k < 1) {
        free(v);
        return usage_error("--ids is empty", NULL);
    }
    *ids = v;
    *n = k;
    return 0;
}

moec_status load_model(moec_model *m, const char *dir) {
    moec_config cfg;
    moec_param_table table;
    float *params;
    MOEC_TRY(moec_model_dir_load(dir, &cfg, &table, &params));
    return moec_model_adopt(m, &cfg, &table, params);
}

